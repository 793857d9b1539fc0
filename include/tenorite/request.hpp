// SPDX-License-Identifier: BSL-1.0
// tenorite/request.hpp — what a worker receives: the caller's value and a one-shot responder.
//
// Invariants:
// - a responder answers at most once; a second send() throws std::logic_error;
// - a responder destroyed without answering completes its call with fetch_failure, so a
//   caller never waits for a reply that cannot come;
// - a responder is move-only; a moved-from responder is empty and answers nothing.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <expected>
#include <mutex>
#include <stdexcept>
#include <tenorite/detail/operation.hpp>
#include <tenorite/error.hpp>
#include <tenorite/detail/reply_slot.hpp>
#include <tenorite/trace.hpp>
#include <type_traits>
#include <utility>

namespace tenorite {

namespace detail {

// One worker waiting for its caller to give up. Shared (refcounted) by the wait operation,
// its registration on the reply slot and its cancellation-slot handler, which may each end
// on a different thread; `op` is taken exactly once, by whoever completes the wait.
template <class R>
struct closed_wait final : closed_watch {
  std::atomic<int> refs{1};
  std::mutex m;
  void* op = nullptr;
  void (*complete)(void*, boost::system::error_code) noexcept = nullptr;
  reply_slot<R>* slot = nullptr;  // while registered

  closed_wait() noexcept : closed_watch(&on_fire) {}
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void finish(boost::system::error_code ec) noexcept {
    void* p;
    {
      std::lock_guard lk(m);
      p = std::exchange(op, nullptr);
      slot = nullptr;
    }
    if (p) complete(p, ec);
  }
  // The caller gave up (or the reply went out): the registration ends here.
  static void on_fire(closed_watch* w) noexcept {
    auto* self = static_cast<closed_wait*>(w);
    self->finish({});
    self->release();
  }
  // The wait was cancelled: unregister first; if the watch is firing, it completes the wait.
  void cancel() noexcept {
    std::unique_lock lk(m);
    if (!op) return;
    bool was_registered = false;
    if (slot) {
      if (!slot->unwatch(this)) return;
      slot = nullptr;
      was_registered = true;
    }
    void* p = std::exchange(op, nullptr);
    lk.unlock();
    if (was_registered) release();
    complete(p, boost::asio::error::operation_aborted);
  }
};

/// The library's access to a responder's reply slot (not part of a worker's interface).
struct responder_access;

template <class R>
struct closed_wait_cancel {
  closed_wait<R>* w;
  explicit closed_wait_cancel(closed_wait<R>* c) noexcept : w(c) {}
  closed_wait_cancel(const closed_wait_cancel&) = delete;
  closed_wait_cancel& operator=(const closed_wait_cancel&) = delete;
  ~closed_wait_cancel() { w->release(); }
  void operator()(boost::asio::cancellation_type) noexcept { w->cancel(); }
};

}  // namespace detail

/// The worker's handle for answering one request (the original's oneshot sender).
template <class Req, class Resp, class Err>
class responder {
 public:
  /// What the caller receives.
  using result_type = std::expected<Resp, error<Req, Err>>;
  /// What the worker answers with: a response or its own error.
  using reply_type = std::expected<Resp, Err>;
  using slot_type = detail::reply_slot<result_type>;

  responder() noexcept = default;
  explicit responder(slot_type* slot, const trace_context& trace = {}) noexcept
      : slot_(slot), trace_(trace) {}
  /// The responder of a fire-and-forget request (caller::notify): nobody waits for a reply.
  static responder for_notification(const trace_context& trace = {}) noexcept {
    responder r;
    r.notification_ = true;
    r.trace_ = trace;
    return r;
  }
  responder(responder&& o) noexcept
      : slot_(std::exchange(o.slot_, nullptr)), trace_(o.trace_), notification_(o.notification_) {}
  responder& operator=(responder&& o) noexcept {
    if (this != &o) {
      reset();
      slot_ = std::exchange(o.slot_, nullptr);
      trace_ = o.trace_;
      notification_ = o.notification_;
    }
    return *this;
  }
  responder(const responder&) = delete;
  responder& operator=(const responder&) = delete;
  ~responder() { reset(); }

  /// Answers the call with a response or an error. Returns false when the caller is gone
  /// (it gave up: deadline or cancellation) or wants no reply (a notification).
  /// Throws std::logic_error if this responder has already answered (or is moved-from).
  bool send(reply_type reply) {
    if (notification_) return false;
    if (!slot_)
      throw std::logic_error(
          "tenorite::responder::send: this request has already been answered (a responder "
          "answers exactly once; a moved-from responder answers nothing)");
    slot_type* s = std::exchange(slot_, nullptr);
    if (reply) return s->complete(result_type(std::in_place, std::move(*reply)));
    return s->complete(
        result_type(std::unexpect, error<Req, Err>::service(std::move(reply.error()))));
  }

  /// The trace the call belongs to: what the caller attached (caller::with_trace), or what
  /// a NATS request's `traceparent` header said; empty (false) when the call carries none.
  /// It stays readable after the answer, for the worker's span to end with.
  const trace_context& trace() const noexcept { return trace_; }

  /// False for a fire-and-forget request (caller::notify): answering it is harmless.
  bool wants_reply() const noexcept { return !notification_; }

  /// True when no one waits for the answer any more: the caller gave up (deadline, terminal
  /// cancellation), it was a notification, or it was already answered. A worker may skip
  /// the work.
  bool is_closed() const noexcept { return !slot_ || slot_->waiter_gone(); }

  /// Completes when nobody waits for this answer any more: the caller gave up (its deadline
  /// passed or it was cancelled terminally), or the request was answered or was a
  /// notification. Signature void(boost::system::error_code): success then,
  /// operation_aborted when this wait itself is cancelled, or already_started when another
  /// wait on this request is still pending (one at a time: race that one instead). A call made without a deadline or
  /// cancellation slot can never give up, so the wait then ends only by its own cancellation:
  /// use it in a race, `co_await (work() || r->client.wait_closed())`, on a strand.
  /// Handlers without an executor of their own run on Asio's system executor.
  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_wait_closed(Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
        // The slot is read when the operation starts (a deferred or awaitable wait starts
        // later than this call, and the request may have been answered meanwhile).
        [](auto handler, responder* self) { start_wait_closed(std::move(handler), self->slot_); },
        token, this);
  }
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<void> wait_closed() {
    return async_wait_closed(boost::asio::use_awaitable);
  }

  /// True while the responder can still answer.
  bool can_answer() const noexcept { return slot_ != nullptr; }
  explicit operator bool() const noexcept { return slot_ != nullptr; }

 private:
  friend struct detail::responder_access;

  // The request never reached a worker: hand it back as a send failure.
  void fail_undelivered(Req&& req) noexcept {
    if (slot_type* s = std::exchange(slot_, nullptr))
      s->complete(result_type(std::unexpect, error<Req, Err>::send_failure(std::move(req))));
  }
  // Forget the slot without completing it (the call was withdrawn).
  void release() noexcept { slot_ = nullptr; }

  template <class Handler>
  struct wait_op final : detail::operation<wait_op<Handler>, Handler> {
    using base = detail::operation<wait_op<Handler>, Handler>;
    wait_op(Handler&& h, const boost::asio::any_io_executor& fallback,
            detail::closed_wait<result_type>* c)
        : base(std::move(h), fallback, false), wait(c) {}
    static void complete_wait(void* p, boost::system::error_code ec) noexcept {
      auto* self = static_cast<wait_op*>(p);
      auto* c = self->wait;
      self->complete(ec);
      c->release();
    }
    detail::closed_wait<result_type>* wait;
  };

  template <class Handler>
  static void start_wait_closed(Handler handler, slot_type* slot) {
    boost::asio::any_io_executor fallback(boost::asio::system_executor{});
    auto* c = new detail::closed_wait<result_type>;  // refs: 1, the operation's
    auto* op = detail::make_op<wait_op<Handler>>(handler, fallback, c);
    detail::initiation_scope scope(op);
    c->op = op;
    c->complete = &wait_op<Handler>::complete_wait;
    if (!slot || slot->waiter_gone()) {  // already closed: complete at once
      c->finish({});
      return;
    }
    auto cancel_slot = boost::asio::get_associated_cancellation_slot(op->handler());
    if (cancel_slot.is_connected()) {
      c->refs.fetch_add(1, std::memory_order_relaxed);
      cancel_slot.template emplace<detail::closed_wait_cancel<result_type>>(c);
    }
    {
      std::lock_guard lk(c->m);
      c->slot = slot;
    }
    c->refs.fetch_add(1, std::memory_order_relaxed);  // the registration's
    switch (slot->watch(c)) {
      case detail::watch_status::registered:
        break;  // fires later (or is unregistered by cancel)
      case detail::watch_status::already_gone:
        c->release();
        c->finish({});
        break;
      case detail::watch_status::busy:  // one wait per call at a time
        c->release();
        c->finish(boost::asio::error::already_started);
        break;
      case detail::watch_status::never: {
        {
          std::lock_guard lk(c->m);
          c->slot = nullptr;
        }
        c->release();  // not registered: only cancellation ends this wait
        break;
      }
    }
  }

  void reset() noexcept {
    if (slot_type* s = std::exchange(slot_, nullptr))
      s->complete(result_type(std::unexpect, error<Req, Err>::fetch_failure()));
  }

  slot_type* slot_ = nullptr;
  trace_context trace_{};
  bool notification_ = false;
};

namespace detail {
struct responder_access {
  template <class Req, class Resp, class Err>
  static void fail_undelivered(responder<Req, Resp, Err>& r,
                               std::type_identity_t<Req>&& req) noexcept {
    r.fail_undelivered(std::move(req));
  }
  template <class Req, class Resp, class Err>
  static void release(responder<Req, Resp, Err>& r) noexcept {
    r.release();
  }
  template <class Req, class Resp, class Err>
  static const void* slot(const responder<Req, Resp, Err>& r) noexcept {
    return r.slot_;
  }
  // The queue hands the request to a worker now (metrics on): the call's split starts here.
  template <class Req, class Resp, class Err>
  static void stamp_delivered(responder<Req, Resp, Err>& r, std::int64_t at) noexcept {
    if (r.slot_) r.slot_->stamp_delivered(at);
  }
  // Under the queue's lock: this undelivered request is on its way back to its caller.
  template <class Req, class Resp, class Err>
  static void mark_returning(responder<Req, Resp, Err>& r) noexcept {
    if (r.slot_) r.slot_->mark_returning();
  }
};
}  // namespace detail

/// One request as the worker sees it: `request` is the caller's value, `client` answers it.
template <class Req, class Resp, class Err>
struct request {
  using request_type = Req;
  using response_type = Resp;
  using error_type = Err;
  using responder_type = responder<Req, Resp, Err>;

  Req request;
  responder_type client;
};

}  // namespace tenorite
