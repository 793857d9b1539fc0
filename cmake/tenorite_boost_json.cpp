// SPDX-License-Identifier: BSL-1.0
// Boost.JSON's compiled part, from its own sources, for tenorite::nats_json
// (cmake/tenoriteBoostJson.cmake says why it is compiled here rather than linked prebuilt).
#include <boost/json/src.hpp>
