// SPDX-License-Identifier: BSL-1.0
// The kv service's types (examples/kv_service/kv.hpp) described for tenorite::nats::json_codec.
// Here and not in kv.hpp, which must not depend on NATS nor on Boost.Describe: the free-standing
// BOOST_DESCRIBE_STRUCT, after the definitions and in their namespace, names the members.
// json_codec then writes, e.g.
//   kv::request{kv::set{"name", "tenorite"}}   {"set":{"key":"name","value":"tenorite"}}
//   kv::response{kv::found{std::nullopt}}      {"found":{"value":null}}
//   kv::response{kv::ok{}}                     {"ok":{}}
//   kv::error{kv::invalid_key{"a b"}}          {"invalid_key":{"key":"a b"}}
// (the tags are the struct names, json_codec's default). Other programs rely on these shapes.
#pragma once

#include <boost/describe/class.hpp>
#include <tenorite/nats/wire.hpp>

#include "kv_service/kv.hpp"

namespace kv {

BOOST_DESCRIBE_STRUCT(set, (), (key, value))
BOOST_DESCRIBE_STRUCT(get, (), (key))
BOOST_DESCRIBE_STRUCT(del, (), (key))
BOOST_DESCRIBE_STRUCT(ok, (), ())
BOOST_DESCRIBE_STRUCT(found, (), (value))
BOOST_DESCRIBE_STRUCT(invalid_key, (), (key))
BOOST_DESCRIBE_STRUCT(unexpected, (), (what))

/// What kv's errors mean to any NATS client: the Nats-Service-Error-Code and
/// Nats-Service-Error headers of a service error (found by argument-dependent lookup).
inline tenorite::nats::error_header nats_error_header(const error& e) {
  if (const auto* k = std::get_if<invalid_key>(&e)) return {400, "invalid key \"" + k->key + "\""};
  return {404, std::get<unexpected>(e).what};
}

}  // namespace kv
