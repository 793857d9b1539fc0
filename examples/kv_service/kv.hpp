// SPDX-License-Identifier: BSL-1.0
// The original's HashMap-as-a-Service, in C++: the five types of a tenorite service.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>
#include <tenorite/tenorite.hpp>
#include <unordered_map>
#include <utility>
#include <variant>

namespace kv {

// ---- Request: what a caller asks ----
struct set {
  std::string key;
  std::string value;
};
struct get {
  std::string key;
};
struct del {
  std::string key;
};
using request = std::variant<set, get, del>;

// ---- Response: what the worker answers ----
struct ok {};   // Set and Delete succeeded
struct found {  // Get: the value, if the key exists
  std::optional<std::string> value;
};
using response = std::variant<ok, found>;

// ---- Error: what the worker may fail with ----
struct invalid_key {  // the key is empty or contains a space
  std::string key;
};
struct unexpected {  // anything else (here: deleting a key that does not exist)
  std::string what;
};
using error = std::variant<invalid_key, unexpected>;

// ---- Config: what the worker starts with ----
struct config {
  std::unordered_map<std::string, std::string> initial;
};

// ---- Worker: the server loop, owning the map ----
struct worker {
  static boost::asio::awaitable<void> task(
      tenorite::receiver<tenorite::request<request, response, error>> receiver, config cfg) {
    std::unordered_map<std::string, std::string> map = std::move(cfg.initial);
    while (auto r = co_await receiver.recv()) {
      r->client.send(handle(map, std::move(r->request)));
    }
    // Every caller is gone and the queue is drained: the worker ends, its join completes.
  }

  static std::expected<response, error> handle(std::unordered_map<std::string, std::string>& map,
                                               request req) {
    const std::string& key = std::visit([](auto& r) -> const std::string& { return r.key; }, req);
    if (key.empty() || key.find(' ') != std::string::npos)
      return std::unexpected(error(invalid_key{key}));
    if (auto* s = std::get_if<set>(&req)) {
      map[s->key] = std::move(s->value);
      return response(ok{});
    }
    if (auto* g = std::get_if<get>(&req)) {
      auto it = map.find(g->key);
      return response(found{it == map.end() ? std::nullopt : std::optional(it->second)});
    }
    auto& d = std::get<del>(req);
    if (map.erase(d.key) == 0) return std::unexpected(error(unexpected{"no such key: " + d.key}));
    return response(ok{});
  }
};

using service = tenorite::service<request, response, error, worker, config>;
using caller = service::caller_type;

/// One line for a call's outcome (the examples print it). A remote caller's result is the
/// same type.
inline std::string describe(const caller::result_type& r) {
  if (r) {
    if (std::holds_alternative<ok>(*r)) return "ok";
    const auto& f = std::get<found>(*r);
    return f.value ? "found \"" + *f.value + "\"" : "not found";
  }
  const auto& e = r.error();
  if (e.is_service_error()) {
    if (auto* k = std::get_if<invalid_key>(&e.service_error()))
      return "error: invalid key \"" + k->key + "\"";
    return "error: " + std::get<unexpected>(e.service_error()).what;
  }
  return "call failed: " + e.message();
}

}  // namespace kv
