// SPDX-License-Identifier: BSL-1.0
// tenorite/tenorite.hpp — everything a user of tenorite needs.
#pragma once

#include <tenorite/caller.hpp>
#include <tenorite/channel.hpp>
#include <tenorite/deadline.hpp>
#include <tenorite/error.hpp>
#include <tenorite/handler.hpp>
#include <tenorite/join_handle.hpp>
#include <tenorite/metrics.hpp>
#include <tenorite/prometheus.hpp>
#include <tenorite/receiver.hpp>
#include <tenorite/registry.hpp>
#include <tenorite/request.hpp>
#include <tenorite/runtime.hpp>
#include <tenorite/service.hpp>
#include <tenorite/sharded.hpp>
#include <tenorite/supervision.hpp>
#include <tenorite/timer.hpp>
#include <tenorite/trace.hpp>
#include <tenorite/unhandled_exception.hpp>
#include <tenorite/version.hpp>
