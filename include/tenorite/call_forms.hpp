// SPDX-License-Identifier: BSL-1.0
// tenorite/call_forms.hpp — the call forms every caller type offers, written once.
//
// caller, sharded_caller and nats::remote_caller derive from call_forms, which builds every form of
// a call and of a notification from a few primitives the derived class provides (it befriends
// call_forms and keeps them private):
//
//   initiate_call(req, call_mode, token)      the async call (wait for room, or try_only)
//   initiate_call_until(req, deadline, token) the async call racing a deadline (timed_out);
//                                             deadline: a detail::timed_deadline (a time point,
//                                             or a _for form's duration to resolve)
//   initiate_notify(req, token)               the async notification
//   call_blocking(req, call_mode)             a blocking call from a plain thread
//   call_blocking_until(req, deadline)        the same, racing a deadline
//   notify_now(req, try_only)                 a blocking (or never-waiting) notification
//   check(what)                               throws std::logic_error if the handle is empty
//   static constexpr const char* name         "tenorite::caller", for error messages
//
// Invariants:
// - every form has the same three shapes: `async_x` (any completion token), `x` (an
//   awaitable), `x_blocking` (a plain thread; std::logic_error on a runtime thread); the
//   deadline forms add `_for` (a duration) and `_until` (a time point) to each shape;
// - the awaitable and async entry points are kept out of line (TENORITE_AWAITABLE_ENTRY:
//   see the Clang note in the README);
// - an empty handle throws std::logic_error from every form, before anything is started.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <expected>
#include <tenorite/detail/config.hpp>
#include <tenorite/detail/operation.hpp>
#include <tenorite/detail/reply_slot.hpp>
#include <tenorite/detail/virtual_time.hpp>
#include <tenorite/error.hpp>
#include <tenorite/runtime.hpp>
#include <utility>

namespace tenorite {

namespace detail {

/// How a call enters the queue.
enum class call_mode {
  wait,      ///< wait for room when the queue is full
  try_only,  ///< queue_full instead of waiting
  reserved,  ///< into a slot reserved earlier (a permit)
};

/// The completion handler that wakes a plain thread (the blocking forms built on an async
/// primitive). It runs wherever the operation completes (inline_executor), so a blocking
/// call completes even when the service's execution context is being destroyed.
template <class R>
struct blocking_handler {
  blocking_reply<R>* reply;
  using executor_type = boost::asio::any_io_executor;
  executor_type get_executor() const noexcept { return inline_executor(); }
  void operator()(R r) const { reply->complete(std::move(r)); }
};

}  // namespace detail

/// The call forms of a caller type (see the top of this header for what Derived provides).
///
/// - send_request: wait for room in the queue, then for the reply;
/// - try_send_request: fail at once with queue_full if the queue is full;
/// - send_request_for / _until: give up at a deadline with timed_out (a request still
///   queued then is withdrawn and comes back in the error; one the worker already took is
///   abandoned: the worker sees client.is_closed());
/// - notify: fire-and-forget (delivered with backpressure, no reply); try_notify never waits.
/// Every async form honours per-operation cancellation (see the guide for the exact rule).
template <class Derived, class Req, class Resp, class Err>
class call_forms {
 public:
  using result_type = std::expected<Resp, error<Req, Err>>;
  /// What a notification yields: accepted into the queue, or why not.
  using notify_result = std::expected<void, error<Req, Err>>;
  /// Completion signature of async_send_request (and the try and deadline forms).
  using signature = void(result_type);
  using clock = std::chrono::steady_clock;

  // ---- send_request: the seed's call ----

  /// Sends a request and waits for the reply, with any completion token (use_awaitable,
  /// a callback, use_future, deferred...). Completes once with result_type.
  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_send_request(Req req, Token&& token = {}) const {
    self().check("async_send_request");
    return self().initiate_call(std::move(req), detail::call_mode::wait,
                                std::forward<Token>(token));
  }

  /// co_await caller.send_request(req) inside a boost::asio::awaitable coroutine.
  ///
  /// GCC 12 destroys an aggregate temporary built inside a co_await expression twice: build
  /// the request in a named variable first, then `co_await caller.send_request(std::move(r))`.
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<result_type> send_request(Req req) const {
    self().check("send_request");
    return self().initiate_call(std::move(req), detail::call_mode::wait,
                                boost::asio::use_awaitable);
  }

  /// Sends and blocks the calling thread until the reply. Throws std::logic_error on a thread
  /// of a tenorite runtime (it would stall the runtime); use send_request there.
  result_type send_request_blocking(Req req) const {
    self().check("send_request_blocking");
    detail::check_blocking_allowed(Derived::name, "send_request_blocking");
    return self().call_blocking(std::move(req), detail::call_mode::wait);
  }

  // ---- try_send_request: queue_full instead of waiting for room ----

  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_try_send_request(Req req, Token&& token = {}) const {
    self().check("async_try_send_request");
    return self().initiate_call(std::move(req), detail::call_mode::try_only,
                                std::forward<Token>(token));
  }
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<result_type> try_send_request(Req req) const {
    return async_try_send_request(std::move(req), boost::asio::use_awaitable);
  }
  result_type try_send_request_blocking(Req req) const {
    self().check("try_send_request_blocking");
    detail::check_blocking_allowed(Derived::name, "try_send_request_blocking");
    return self().call_blocking(std::move(req), detail::call_mode::try_only);
  }

  // ---- deadlines: timed_out ----

  /// Like async_send_request, but gives up at `deadline` with error_kind::timed_out.
  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_send_request_until(Req req, clock::time_point deadline,
                                                         Token&& token = {}) const {
    self().check("async_send_request_until");
    return self().initiate_call_until(std::move(req), deadline, std::forward<Token>(token));
  }
  template <class Rep, class Period,
            class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_send_request_for(Req req,
                                                       std::chrono::duration<Rep, Period> timeout,
                                                       Token&& token = {}) const {
    self().check("async_send_request_for");
    return self().initiate_call_until(std::move(req), after(timeout), std::forward<Token>(token));
  }
  template <class Rep, class Period>
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<result_type> send_request_for(
      Req req, std::chrono::duration<Rep, Period> timeout) const {
    return async_send_request_for(std::move(req), timeout, boost::asio::use_awaitable);
  }
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<result_type> send_request_until(
      Req req, clock::time_point deadline) const {
    return async_send_request_until(std::move(req), deadline, boost::asio::use_awaitable);
  }
  template <class Rep, class Period>
  result_type send_request_blocking_for(Req req, std::chrono::duration<Rep, Period> timeout) const {
    self().check("send_request_blocking_for");
    detail::check_blocking_allowed(Derived::name, "send_request_blocking_for");
    return self().call_blocking_until(std::move(req), after(timeout));
  }
  result_type send_request_blocking_until(Req req, clock::time_point deadline) const {
    self().check("send_request_blocking_until");
    detail::check_blocking_allowed(Derived::name, "send_request_blocking_until");
    return self().call_blocking_until(std::move(req), deadline);
  }

  // ---- notify: fire-and-forget ----

  /// Delivers a request that wants no reply (the worker sees client.wants_reply() == false),
  /// waiting for room like a call. Completes with notify_result once the request is queued.
  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_notify(Req req, Token&& token = {}) const {
    self().check("async_notify");
    return self().initiate_notify(std::move(req), std::forward<Token>(token));
  }
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<notify_result> notify(Req req) const {
    return async_notify(std::move(req), boost::asio::use_awaitable);
  }
  notify_result notify_blocking(Req req) const {
    self().check("notify_blocking");
    detail::check_blocking_allowed(Derived::name, "notify_blocking");
    return self().notify_now(std::move(req), false);
  }
  /// Never waits (usable anywhere, a runtime thread included): queue_full when there is no
  /// room.
  notify_result try_notify(Req req) const {
    self().check("try_notify");
    return self().notify_now(std::move(req), true);
  }

 protected:
  call_forms() = default;
  ~call_forms() = default;

  // A _for form's deadline: counted where the deadline's timer is made, in that context's time
  // (a simulation's is virtual: testing.hpp).
  template <class Rep, class Period>
  static detail::timed_deadline after(std::chrono::duration<Rep, Period> d) noexcept {
    return detail::timed_deadline::after(std::chrono::duration_cast<clock::duration>(d));
  }

 private:
  const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }
};

}  // namespace tenorite
