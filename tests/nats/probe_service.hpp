// SPDX-License-Identifier: BSL-1.0
// The service the NATS tests serve: each request kind produces one outcome.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>
#include <tenorite/tenorite.hpp>
#include <utility>
#include <variant>
#include <vector>

namespace probe {

struct echo {  // -> the text
  std::string text;
};
struct fail {  // -> service error with the text
  std::string text;
};
struct drop {};     // the worker drops the responder unanswered -> fetch_failure
struct hold {};     // the worker keeps the call until a release
struct release {};  // answers every held call with "released", then itself with their count
struct who {};      // -> the serving instance's name
struct big {        // -> a response of `size` bytes
  std::uint32_t size;
};
struct traced {};   // -> the traceparent the call carried to the worker, or "none"
using request = std::variant<echo, fail, drop, hold, release, who, big, traced>;
using response = std::string;
using error = std::string;

struct config {
  std::string name;
};

struct worker {
  static boost::asio::awaitable<void> task(
      tenorite::receiver<tenorite::request<request, response, error>> rx, config cfg) {
    std::vector<tenorite::responder<request, response, error>> held;
    while (auto r = co_await rx.recv()) {
      auto& req = r->request;
      if (auto* e = std::get_if<echo>(&req)) {
        r->client.send(std::move(e->text));
      } else if (auto* f = std::get_if<fail>(&req)) {
        r->client.send(std::unexpected(std::move(f->text)));
      } else if (std::holds_alternative<drop>(req)) {
        // the responder is destroyed unanswered
      } else if (std::holds_alternative<hold>(req)) {
        held.push_back(std::move(r->client));
      } else if (std::holds_alternative<release>(req)) {
        for (auto& h : held) h.send(std::string("released"));
        r->client.send(std::to_string(held.size()));
        held.clear();
      } else if (std::holds_alternative<who>(req)) {
        r->client.send(cfg.name);
      } else if (auto* b = std::get_if<big>(&req)) {
        r->client.send(std::string(b->size, 'x'));
      } else if (std::holds_alternative<traced>(req)) {
        const auto& t = r->client.trace();
        r->client.send(t ? t.traceparent() : std::string("none"));
      }
    }
  }
};

using service = tenorite::service<request, response, error, worker, config>;
using caller = service::caller_type;

}  // namespace probe
