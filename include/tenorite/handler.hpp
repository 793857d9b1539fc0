// SPDX-License-Identifier: BSL-1.0
// tenorite/handler.hpp — a worker written as a stateful object; the library runs the loop.
//
//   struct kv_handler {
//     std::unordered_map<std::string, std::string> map;
//     std::expected<kv_response, kv_error> handle(kv_request req);  // or an awaitable of it
//     void on_start();  // optional (may also return boost::asio::awaitable<void>)
//     void on_stop();   // optional, runs when the queue ends (not after an exception)
//   };
//   using kv = tenorite::handler_service<kv_request, kv_response, kv_error, kv_handler>;
//   auto [task, caller] = kv{}.start_task(rt, 32, kv_handler{});
//
// Invariants:
// - requests are handled one at a time, in the order the queue accepted them, on the
//   worker's strand (the handler needs no locking for its own state);
// - a request whose caller already gave up (deadline, terminal cancellation) is skipped:
//   handle() is not called for it;
// - handle()'s result answers the call (a plain Response converts); an exception from
//   handle() ends the worker like any throwing worker: that call gets fetch_failure, and a
//   supervised service (service_options::restart) starts a fresh handler from its factory.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <expected>
#include <tenorite/receiver.hpp>
#include <tenorite/request.hpp>
#include <tenorite/service.hpp>
#include <type_traits>
#include <utility>

namespace tenorite {

namespace detail {

template <class T>
struct is_awaitable : std::false_type {};
template <class T, class Ex>
struct is_awaitable<boost::asio::awaitable<T, Ex>> : std::true_type {};

template <class H>
concept has_on_start = requires(H& h) { h.on_start(); };
template <class H>
concept has_on_stop = requires(H& h) { h.on_stop(); };

template <class F>
boost::asio::awaitable<void> run_hook(F& f) {
  using R = decltype(f());
  if constexpr (is_awaitable<R>::value) {
    co_await f();
  } else {
    f();
  }
  co_return;
}

template <class Handler, class Req, class Resp, class Err>
struct handler_loop {
  static_assert(std::is_invocable_v<decltype(&Handler::handle), Handler&, Req&&> ||
                    std::is_invocable_v<decltype(&Handler::handle), Handler&, Req&>,
                "tenorite::handler_service: Handler needs a member handle(Request) returning "
                "std::expected<Response, Error>, a Response, or an awaitable of either");

  static boost::asio::awaitable<void> task(receiver<request<Req, Resp, Err>> rx, Handler h) {
    if constexpr (has_on_start<Handler>) {
      auto start = [&h] { return h.on_start(); };  // a named local: see GCC 12 in the README
      co_await run_hook(start);
    }
    while (auto r = co_await rx.recv()) {
      // The caller gave up (a notification has no caller waiting, and is still handled).
      if (r->client.wants_reply() && r->client.is_closed()) continue;
      using R = decltype(h.handle(std::move(r->request)));
      if constexpr (is_awaitable<R>::value) {
        auto result = co_await h.handle(std::move(r->request));
        r->client.send(std::move(result));
      } else {
        r->client.send(h.handle(std::move(r->request)));
      }
    }
    if constexpr (has_on_stop<Handler>) {
      auto stop = [&h] { return h.on_stop(); };
      co_await run_hook(stop);
    }
    co_return;  // (also tells cppcheck this coroutine returns)
  }
};

}  // namespace detail

/// A service whose worker is a Handler object (see the top of this header). It is an
/// ordinary tenorite::service, so start_task, start (pools, supervision, metrics), caller
/// and join_handle all work as for a hand-written worker; Config is the Handler itself.
template <class Req, class Resp, class Err, class Handler>
using handler_service =
    service<Req, Resp, Err, detail::handler_loop<Handler, Req, Resp, Err>, Handler>;

}  // namespace tenorite
