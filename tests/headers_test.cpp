// SPDX-License-Identifier: BSL-1.0
// Each public header compiles on its own (the build uses -Wall -Wextra -Wpedantic -Werror),
// and the umbrella header brings every public name.
#include <gtest/gtest.h>

#include <tenorite/call_forms.hpp>
#include <tenorite/caller.hpp>
#include <tenorite/channel.hpp>
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
#include <tenorite/tenorite.hpp>
#include <tenorite/testing.hpp>
#include <tenorite/timer.hpp>
#include <tenorite/trace.hpp>
#include <tenorite/unhandled_exception.hpp>
#include <type_traits>

using req_t = int;
using resp_t = long;
using err_t = char;

static_assert(std::is_copy_constructible_v<tenorite::caller<req_t, resp_t, err_t>>);
static_assert(std::is_nothrow_move_constructible_v<tenorite::caller<req_t, resp_t, err_t>>);
static_assert(!std::is_copy_constructible_v<tenorite::join_handle<void>>);
static_assert(std::is_move_constructible_v<tenorite::join_handle<void>>);
static_assert(!std::is_copy_constructible_v<tenorite::responder<req_t, resp_t, err_t>>);
static_assert(!std::is_copy_constructible_v<tenorite::receiver<int>>);
static_assert(std::is_same_v<tenorite::caller<req_t, resp_t, err_t>::result_type,
                             std::expected<resp_t, tenorite::error<req_t, err_t>>>);

TEST(Headers, ErrorKindNames) {
  using tenorite::error_kind;
  for (auto k : {error_kind::send_failure, error_kind::fetch_failure, error_kind::service_error,
                 error_kind::queue_full, error_kind::timed_out, error_kind::cancelled,
                 error_kind::deadlock, error_kind::bad_request}) {
    auto e = tenorite::error<int, char>::of_kind(k);
    EXPECT_EQ(e.kind(), k);
    EXPECT_FALSE(e.message().empty());
    EXPECT_STRNE(tenorite::to_string(k), "unknown");
  }
}
