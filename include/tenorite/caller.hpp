// SPDX-License-Identifier: BSL-1.0
// tenorite/caller.hpp — the client's handle on a service.
//
// Invariants:
// - every call completes exactly once: with the worker's response, or with an error that
//   carries the request back whenever it was never delivered;
// - a caller is a cheap copyable handle; every send form is const and safe to use on one
//   shared instance from many threads;
// - the service's queue stays open while at least one caller copy exists (weak_caller does
//   not count); when the last copy goes, the worker drains the queue and then sees the end;
// - a moved-from or default-constructed caller is empty: using it throws std::logic_error.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tenorite/call_forms.hpp>
#include <tenorite/channel.hpp>
#include <tenorite/deadline.hpp>
#include <tenorite/detail/cancellation.hpp>
#include <tenorite/detail/operation.hpp>
#include <tenorite/detail/service_state.hpp>
#include <tenorite/error.hpp>
#include <tenorite/join_handle.hpp>
#include <tenorite/metrics.hpp>
#include <tenorite/detail/reply_slot.hpp>
#include <tenorite/request.hpp>
#include <tenorite/runtime.hpp>
#include <tenorite/trace.hpp>
#include <utility>

namespace tenorite {

template <class Req, class Resp, class Err>
class weak_caller;

template <class Req, class Resp, class Err>
class permit;

template <class Req, class Resp, class Err>
class sharded_caller;

namespace detail {
struct caller_access;
}

/// A handle for calling a service: `co_await caller.send_request(req)`.
///
/// Req, Resp and Err must be move-constructible (they may be move-only). The request is
/// taken by value and comes back inside the error whenever it was not delivered.
///
/// Call forms (call_forms.hpp), each as an awaitable (`x`), a blocking call (`x_blocking`)
/// and an Asio async operation with any completion token (`async_x`):
/// - send_request: wait for room in the queue, then for the reply;
/// - try_send_request: fail at once with queue_full if the queue is full;
/// - send_request_for / _until: give up at a deadline with timed_out;
/// - notify: fire-and-forget (delivered with backpressure, no reply); try_notify never waits;
/// - reserve: wait for a free slot now, send later through the returned permit.
/// Every async form honours per-operation cancellation (see the guide for the exact rule).
template <class Req, class Resp, class Err>
class caller : public call_forms<caller<Req, Resp, Err>, Req, Resp, Err> {
  using forms = call_forms<caller<Req, Resp, Err>, Req, Resp, Err>;

 public:
  using request_type = Req;
  using response_type = Resp;
  using error_type = error<Req, Err>;
  using result_type = std::expected<Resp, error<Req, Err>>;
  /// What a notification yields: accepted into the queue, or why not.
  using notify_result = std::expected<void, error<Req, Err>>;
  using permit_type = permit<Req, Resp, Err>;
  using reserve_result = std::expected<permit_type, error<Req, Err>>;
  /// Completion signature of async_send_request (and the try and deadline forms).
  using signature = void(result_type);
  using clock = std::chrono::steady_clock;

  /// An empty caller (using it throws std::logic_error).
  caller() noexcept = default;
  caller(const caller&) = default;
  caller& operator=(const caller&) = default;
  caller(caller&& o) noexcept : core_(std::move(o.core_)), trace_(o.trace_) {}
  caller& operator=(caller&& o) noexcept {
    core_ = std::move(o.core_);
    trace_ = o.trace_;
    return *this;
  }

  /// A copy of this handle whose every call, notification and permit carries `trace` to the
  /// worker (responder::trace): `co_await kv.with_trace(ctx).send_request(req)`. An empty
  /// context makes a copy that carries none. Throws std::logic_error on an empty caller.
  caller with_trace(const trace_context& trace) const {
    caller c = checked_copy("with_trace");
    c.trace_ = trace;
    return c;
  }
  /// The trace this handle's calls carry (empty unless made by with_trace).
  const trace_context& trace() const noexcept { return trace_; }

  /// A snapshot of the service's counters, or an empty optional when the service was
  /// started without metrics (service_options::metrics). Safe from any thread.
  std::optional<metrics_snapshot> metrics() const {
    auto* st = checked("metrics");
    if (!st->metrics) return std::nullopt;
    auto [depth, accepted] = st->chan.counts();
    return st->metrics->snapshot(depth, accepted, st->restarts.load(std::memory_order_relaxed));
  }

  // ---- reserve: a slot now, the request later ----

  /// Waits for a free slot in the queue and holds it in a permit; permit.send_request(req)
  /// then never waits for room. A permit dropped unused gives its slot back.
  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_reserve(Token&& token = {}) const {
    caller self = checked_copy("async_reserve");
    return boost::asio::async_initiate<Token, void(reserve_result)>(
        [](auto handler, const caller& self) { self.start_reserve(std::move(handler)); }, token,
        std::move(self));
  }
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<reserve_result> reserve() const {
    return async_reserve(boost::asio::use_awaitable);
  }
  reserve_result reserve_blocking() const {
    checked("reserve_blocking");
    detail::check_blocking_allowed(name, "reserve_blocking");
    detail::blocking_reply<reserve_result> reply;
    async_reserve(detail::blocking_handler<reserve_result>{&reply});
    return reply.wait();
  }
  /// Never waits: queue_full when there is no free slot.
  reserve_result try_reserve() const {
    auto* st = checked("try_reserve");
    detail::send_waiter<typename detail::service_state<Req, Resp, Err>::item_type> probe(nullptr,
                                                                                         nullptr);
    probe.reservation = true;
    switch (st->chan.reserve_or_wait(&probe, true)) {
      case send_status::sent:
        return reserve_result(std::in_place, permit_type(*this));
      case send_status::full:
        return reserve_result(std::unexpect, error_type::of_kind(error_kind::queue_full));
      default:
        return reserve_result(std::unexpect, error_type::send_failure());
    }
  }

  /// True when the service can no longer take calls (its worker has ended).
  bool is_closed() const { return checked("is_closed")->chan.is_closed(); }

  /// A handle that does not keep the service alive (see weak_caller).
  weak_caller<Req, Resp, Err> weak() const;

  /// False for an empty (moved-from or default-constructed) caller.
  explicit operator bool() const noexcept { return static_cast<bool>(core_); }

 private:
  template <class, class, class, class, class, class>
  friend class service;
  friend class weak_caller<Req, Resp, Err>;
  friend class permit<Req, Resp, Err>;
  friend class sharded_caller<Req, Resp, Err>;
  friend forms;
  friend struct detail::caller_access;

  using state_type = detail::service_state<Req, Resp, Err>;
  using item_type = typename state_type::item_type;

  explicit caller(std::shared_ptr<detail::caller_core<Req, Resp, Err>> core) noexcept
      : core_(std::move(core)) {}

  // ---- the primitives of call_forms (each form checked the handle first) ----

  static constexpr const char* name = "tenorite::caller";
  void check(const char* what) const { checked(what); }

  // The operation holds a caller until it starts: a lazy token (deferred, an awaitable not
  // awaited yet) keeps the service open like any caller copy, and dropping it unlaunched
  // lets go.
  template <class Token>
  // The request goes on by reference (an lvalue only when a deferred operation is launched
  // as one: it is then copied into the call, as the launch may be repeated).
  auto initiate_call(Req&& req, detail::call_mode mode, Token&& token) const {
    return boost::asio::async_initiate<Token, signature>(
        [mode](auto handler, caller self, auto&& r) {
          auto& st = self.core_->state;
          st->initiate_call(std::move(handler), st, std::forward<decltype(r)>(r), mode,
                            self.trace_);
        },
        token, *this, std::move(req));
  }
  template <class Token>
  auto initiate_call_until(Req&& req, detail::timed_deadline deadline, Token&& token) const {
    return boost::asio::async_initiate<Token, signature>(
        [](auto handler, const caller& self, Req r, detail::timed_deadline deadline) {
          self.start_timed(std::move(handler), std::move(r), deadline);
        },
        token, *this, std::move(req), deadline);
  }
  template <class Token>
  auto initiate_notify(Req&& req, Token&& token) const {
    return boost::asio::async_initiate<Token, void(notify_result)>(
        [](auto handler, caller self, auto&& r) {
          auto& st = self.core_->state;
          st->initiate_notify(std::move(handler), st, std::forward<decltype(r)>(r), self.trace_);
        },
        token, *this, std::move(req));
  }
  result_type call_blocking(Req&& req, detail::call_mode mode) const {
    return core_->state->call_blocking(std::move(req), mode, trace_);
  }
  result_type call_blocking_until(Req&& req, detail::timed_deadline deadline) const {
    detail::blocking_reply<result_type> reply;
    start_timed(detail::blocking_handler<result_type>{&reply}, std::move(req), deadline);
    return reply.wait();
  }
  notify_result notify_now(Req&& req, bool try_only) const {
    return core_->state->notify_now(std::move(req), try_only, trace_);
  }

  // A timed call's handler: counts the call with its final outcome. A named type, so that a
  // coroutine's handler inside is still seen as one (detail::is_coroutine_handler).
  // A timed call counted in: counted out when its handler runs, or, if the handler is never
  // run (starting the call threw, or its executor's context went first), as cancelled.
  struct timed_mark {
    std::shared_ptr<detail::service_metrics> metrics;
    detail::service_metrics::call_mark mark;
    timed_mark(std::shared_ptr<detail::service_metrics> m,
               detail::service_metrics::call_mark k) noexcept
        : metrics(std::move(m)), mark(k) {}
    timed_mark(timed_mark&&) noexcept = default;
    timed_mark& operator=(timed_mark&&) noexcept = default;
    ~timed_mark() {
      if (metrics) metrics->call_completed(mark, error_kind::cancelled);
    }
    void completed(std::optional<error_kind> outcome) noexcept {
      if (auto m = std::move(metrics)) m->call_completed(mark, outcome);
    }
  };
  template <class Handler, class Slot>
  struct timed_count {
    using wrapped_handler = Handler;
    using executor_type = boost::asio::any_io_executor;
    using cancellation_slot_type = Slot;
    using allocator_type = boost::asio::associated_allocator_t<Handler>;
    Handler handler;
    timed_mark count;
    executor_type ex;
    Slot slot;
    executor_type get_executor() const noexcept { return ex; }
    cancellation_slot_type get_cancellation_slot() const noexcept { return slot; }
    allocator_type get_allocator() const noexcept {
      return boost::asio::get_associated_allocator(handler);
    }
    void operator()(result_type r) {
      count.completed(state_type::outcome_of(r));
      std::move(handler)(std::move(r));
    }
  };

  // The call races its deadline (detail::deadline_race, as cancel_after does): the call's
  // own completion completes the handler, so it runs exactly when, where and as the call
  // ends, also on an execution context being destroyed. The deadline's cancellation
  // withdraws a queued request or abandons a delivered one.
  template <class Handler>
  void start_timed(Handler handler, Req req, detail::timed_deadline deadline,
                   detail::call_mode mode = detail::call_mode::wait) const {
    const auto& st = core_->state;
    auto ex = boost::asio::get_associated_executor(handler, st->chan.get_executor());
    // A _for deadline counts in the time of the context the deadline's timer runs on.
    const clock::time_point at = deadline.resolve(ex);
    // The caller's own cancellation slot cancels the whole timed call.
    auto slot = boost::asio::get_associated_cancellation_slot(handler);
    // The timed call is counted here, with its final outcome (timed_out or cancelled).
    std::shared_ptr<detail::service_metrics> metrics = st->metrics;
    detail::service_metrics::call_mark mark;
    if (metrics) mark = metrics->call_started();
    timed_count<Handler, decltype(slot)> counted{
        std::move(handler), timed_mark(std::move(metrics), mark), ex, slot};
    // The call's handler runs on `ex`: bound to it, the call is seen as what it is (a
    // worker calling itself through a deadline is refused too).
    auto start_call = [mode](auto h, caller self, Req r) {
      auto& s = self.core_->state;
      s->initiate_call(std::move(h), s, std::move(r), mode, self.trace_, false);
    };
    using race = typename detail::deadline_race<signature>::template initiation<
        decltype(start_call)>;
    race{start_call}(std::move(counted), at, *this, std::move(req));
  }

  template <class Handler>
  struct reserve_op final : detail::send_waiter<item_type>,
                            detail::operation<reserve_op<Handler>, Handler> {
    using base = detail::operation<reserve_op<Handler>, Handler>;
    reserve_op(Handler&& h, const boost::asio::any_io_executor& fallback, caller owner)
        : detail::send_waiter<item_type>(&on_accept, &on_close),
          base(std::move(h), fallback, false),
          owner(std::move(owner)) {
      this->reservation = true;
    }
    static void on_accept(detail::send_waiter<item_type>* n) noexcept {
      auto* self = static_cast<reserve_op*>(n);
      detail::settle(self->ctl);
      self->finish(reserve_result(std::in_place, permit_type(std::move(self->owner))));
    }
    static void on_close(detail::send_waiter<item_type>* n) noexcept {
      static_cast<reserve_op*>(n)->fail(error_kind::send_failure);
    }
    void fail(error_kind kind) noexcept {
      detail::settle(this->ctl);
      finish(reserve_result(std::unexpect, error_type::of_kind(kind)));
    }
    // Cancelled while waiting for a slot: withdrawn, nothing is reserved.
    static void on_cancel(void* p, boost::asio::cancellation_type,
                          std::unique_lock<std::mutex>& lk) noexcept {
      auto* self = static_cast<reserve_op*>(p);
      if (!self->owner.core_->state->chan.withdraw(self)) return;  // granted meanwhile
      self->ctl->op = nullptr;
      lk.unlock();
      self->finish(reserve_result(std::unexpect, error_type::of_kind(error_kind::cancelled)));
    }
    void finish(reserve_result&& r) noexcept {
      // The caller goes with the operation (before the handler runs), so the permit, if
      // any, is the only thing holding the service.
      caller keep(std::move(owner));
      this->base::complete(std::move(r));
    }
    caller owner;
  };

  template <class Handler>
  void start_reserve(Handler handler) const {
    auto* st = core_->state.get();
    auto* op = detail::make_op<reserve_op<Handler>>(handler, st->chan.get_executor(), *this);
    detail::initiation_scope scope(op);
    // The operation's caller goes with it (a coroutine's operation is left, without it).
    detail::arm_or_abandon(op, [op] { caller drop(std::move(op->owner)); });
    // Waiting for room from the worker's own strand would wait for the worker itself.
    const send_status status = st->chan.reserve_or_wait(op, false, &op->executor());
    if (status == send_status::self_call) {
      op->fail(error_kind::deadlock);
    } else {
      detail::tell_outcome<request<Req, Resp, Err>>(op, status);
    }
  }

  state_type* checked(const char* what) const {
    if (!core_)
      throw std::logic_error(std::string("tenorite::caller::") + what +
                             ": this caller is empty (moved-from or default-constructed); use a "
                             "copy of a live caller");
    return core_->state.get();
  }
  caller checked_copy(const char* what) const {
    checked(what);
    return *this;
  }

  std::shared_ptr<detail::caller_core<Req, Resp, Err>> core_;
  trace_context trace_{};
};

/// A reserved slot in a service's queue (from caller::reserve): sending through it never
/// waits and never fails for lack of room. Move-only; single use; dropped unused, it gives
/// the slot back. It keeps the service's queue open while it exists.
template <class Req, class Resp, class Err>
class permit {
 public:
  using caller_type = caller<Req, Resp, Err>;
  using result_type = typename caller_type::result_type;
  using clock = std::chrono::steady_clock;

  permit(permit&& o) noexcept : owner_(std::move(o.owner_)) {}
  permit& operator=(permit&& o) noexcept {
    if (this != &o) {
      release();
      owner_ = std::move(o.owner_);
    }
    return *this;
  }
  permit(const permit&) = delete;
  permit& operator=(const permit&) = delete;
  ~permit() { release(); }

  /// Sends through the reserved slot and waits for the reply (any completion token).
  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  /// The permit moves into the operation at once: a lazy token dropped unlaunched gives the
  /// slot back (as a dropped permit does).
  TENORITE_AWAITABLE_ENTRY auto async_send_request(Req req, Token&& token = {}) {
    if (!owner_) take("async_send_request");  // throws: already used
    return boost::asio::async_initiate<Token, typename caller_type::signature>(
        [](auto handler, permit p, Req r) {
          caller_type owner = std::move(p.owner_);
          auto& st = owner.core_->state;
          try {
            st->initiate_call(std::move(handler), st, std::move(r), detail::call_mode::reserved,
                              owner.trace_);
          } catch (...) {  // the call never started (no memory): the slot goes back
            st->chan.release_reservation();
            throw;
          }
        },
        token, std::move(*this), std::move(req));
  }
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<result_type> send_request(Req req) {
    return async_send_request(std::move(req), boost::asio::use_awaitable);
  }
  result_type send_request_blocking(Req req) {
    detail::check_blocking_allowed("tenorite::permit::send_request_blocking");
    caller_type owner = take("send_request_blocking");
    try {
      return owner.core_->state->call_blocking(std::move(req), detail::call_mode::reserved,
                                               owner.trace_);
    } catch (...) {  // the call never started (no memory): the slot goes back
      owner.core_->state->chan.release_reservation();
      throw;
    }
  }

  /// Sends through the reserved slot and waits for the reply until `deadline`, then gives up
  /// with error_kind::timed_out as the caller's forms do (a request still buffered then
  /// comes back in the error; one the worker took is abandoned: it sees client.is_closed()).
  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_send_request_until(Req req, clock::time_point deadline,
                                                         Token&& token = {}) {
    if (!owner_) take("async_send_request_until");  // throws: already used
    return initiate_timed(std::move(req), deadline, std::forward<Token>(token));
  }
  template <class Rep, class Period,
            class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_send_request_for(Req req,
                                                       std::chrono::duration<Rep, Period> timeout,
                                                       Token&& token = {}) {
    if (!owner_) take("async_send_request_for");  // throws: already used
    return initiate_timed(std::move(req), after(timeout), std::forward<Token>(token));
  }
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<result_type> send_request_until(
      Req req, clock::time_point deadline) {
    return async_send_request_until(std::move(req), deadline, boost::asio::use_awaitable);
  }
  template <class Rep, class Period>
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<result_type> send_request_for(
      Req req, std::chrono::duration<Rep, Period> timeout) {
    return async_send_request_for(std::move(req), timeout, boost::asio::use_awaitable);
  }
  result_type send_request_blocking_until(Req req, clock::time_point deadline) {
    detail::check_blocking_allowed("tenorite::permit::send_request_blocking_until");
    return blocking_timed(std::move(req), deadline, "send_request_blocking_until");
  }
  template <class Rep, class Period>
  result_type send_request_blocking_for(Req req, std::chrono::duration<Rep, Period> timeout) {
    detail::check_blocking_allowed("tenorite::permit::send_request_blocking_for");
    return blocking_timed(std::move(req), after(timeout), "send_request_blocking_for");
  }

  /// False once used (or moved from).
  explicit operator bool() const noexcept { return static_cast<bool>(owner_); }

 private:
  friend class caller<Req, Resp, Err>;
  explicit permit(caller_type owner) noexcept : owner_(std::move(owner)) {}

  template <class Rep, class Period>
  static detail::timed_deadline after(std::chrono::duration<Rep, Period> d) noexcept {
    return detail::timed_deadline::after(std::chrono::duration_cast<clock::duration>(d));
  }
  template <class Token>
  auto initiate_timed(Req&& req, detail::timed_deadline deadline, Token&& token) {
    return boost::asio::async_initiate<Token, typename caller_type::signature>(
        [](auto handler, permit p, Req r, detail::timed_deadline d) {
          caller_type owner = std::move(p.owner_);
          try {
            owner.start_timed(std::move(handler), std::move(r), d, detail::call_mode::reserved);
          } catch (...) {  // the call never started (no memory): the slot goes back
            owner.core_->state->chan.release_reservation();
            throw;
          }
        },
        token, std::move(*this), std::move(req), deadline);
  }
  result_type blocking_timed(Req&& req, detail::timed_deadline deadline, const char* what) {
    caller_type owner = take(what);
    detail::blocking_reply<result_type> reply;
    try {
      owner.start_timed(detail::blocking_handler<result_type>{&reply}, std::move(req), deadline,
                        detail::call_mode::reserved);
    } catch (...) {  // the call never started (no memory): the slot goes back
      owner.core_->state->chan.release_reservation();
      throw;
    }
    return reply.wait();
  }

  caller_type take(const char* what) {
    if (!owner_)
      throw std::logic_error(std::string("tenorite::permit::") + what +
                             ": this permit was already used (or moved from); reserve again");
    return std::move(owner_);
  }
  void release() noexcept {
    if (owner_) std::exchange(owner_, caller_type{}).core_->state->chan.release_reservation();
  }

  caller_type owner_;
};

/// A caller that does not keep its service's queue open: for a worker (or a registry) that
/// holds a handle on its own service. lock() gives a caller while one still exists.
template <class Req, class Resp, class Err>
class weak_caller {
 public:
  weak_caller() noexcept = default;
  std::optional<caller<Req, Resp, Err>> lock() const {
    if (auto core = core_.lock()) return caller<Req, Resp, Err>(std::move(core));
    return std::nullopt;
  }
  bool expired() const noexcept { return core_.expired(); }

 private:
  friend class caller<Req, Resp, Err>;
  explicit weak_caller(std::weak_ptr<detail::caller_core<Req, Resp, Err>> c) noexcept
      : core_(std::move(c)) {}
  std::weak_ptr<detail::caller_core<Req, Resp, Err>> core_;
};

template <class Req, class Resp, class Err>
weak_caller<Req, Resp, Err> caller<Req, Resp, Err>::weak() const {
  checked("weak");
  return weak_caller<Req, Resp, Err>(core_);
}

namespace detail {
/// The library's own way to a caller's service state (start_sharded marks its shards).
struct caller_access {
  template <class Req, class Resp, class Err>
  static service_state<Req, Resp, Err>& state(const caller<Req, Resp, Err>& c) {
    return *c.core_->state;
  }
};
}  // namespace detail

}  // namespace tenorite
