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
// - requests are handled one at a time, in the order the queue accepted them, never two
//   at once (the handler needs no locking for its own state): on the worker's strand, or
//   for the coroutine-free loop below on the executor itself, one step after the other;
// - a request whose caller already gave up (deadline, terminal cancellation) is skipped:
//   handle() is not called for it;
// - handle()'s result answers the call (a plain Response converts); an exception from
//   handle() ends the worker like any throwing worker: that call gets fetch_failure, and a
//   supervised service (service_options::restart) starts a fresh handler from its factory.
//
// How it runs: when handle() and the hooks are plain functions and the service is not
// supervised, the loop is no coroutine but a chain of receive operations whose completion
// handler owns the Handler (detail/handler_loop.hpp): an idle service is then one parked
// receive, without the coroutine frames of a task (the worker's own, co_spawn's, the
// receive's). Each step serves every request already queued (up to a batch) before it waits
// again. Otherwise (an awaitable handle() or hook, or a restart policy) the loop is the
// coroutine handler_loop::task.
#pragma once

#include <tenorite/detail/handler_loop.hpp>
#include <tenorite/service.hpp>

namespace tenorite {

/// A service whose worker is a Handler object (see the top of this header). It is an
/// ordinary tenorite::service, so start_task, start (pools, supervision, metrics), caller
/// and join_handle all work as for a hand-written worker; Config is the Handler itself.
template <class Req, class Resp, class Err, class Handler>
using handler_service =
    service<Req, Resp, Err, detail::handler_loop<Handler, Req, Resp, Err>, Handler>;

}  // namespace tenorite
