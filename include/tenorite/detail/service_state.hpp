// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/service_state.hpp — what one service shares between its callers and its
// workers: the queue and the metrics (service_state), the operations a caller starts on it
// (call_op, notify_op), and the count of live callers (caller_core).
//
// Invariants: see caller.hpp (every call completes exactly once) and docs/ARCHITECTURE.md
// (the walk of one call, the lock order, who owns and frees what).
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
#include <tenorite/channel.hpp>
#include <tenorite/detail/cancellation.hpp>
#include <tenorite/detail/operation.hpp>
#include <tenorite/error.hpp>
#include <tenorite/detail/task_state.hpp>
#include <tenorite/metrics.hpp>
#include <tenorite/registry.hpp>
#include <tenorite/detail/reply_slot.hpp>
#include <tenorite/request.hpp>
#include <tenorite/runtime.hpp>
#include <utility>
#include <tenorite/call_forms.hpp>

namespace tenorite::detail {

/// Everything one service shares between its callers and its worker.
template <class Req, class Resp, class Err>
class service_state final : public abortable {
 public:
  using item_type = request<Req, Resp, Err>;
  using error_type = error<Req, Err>;
  using result_type = std::expected<Resp, error_type>;
  using notify_result = std::expected<void, error_type>;
  using responder_type = responder<Req, Resp, Err>;

  service_state(boost::asio::any_io_executor ex, std::size_t queue_size)
      : chan(std::move(ex), queue_size) {
    // The live worker holds work on this context; its receives need not count again.
    chan.set_operations_track_work(false);
  }

  channel<item_type> chan;
  // Set before the service starts (never changed after): null when metrics are off.
  std::shared_ptr<service_metrics> metrics;

  // ---- what a registry lists (registry.hpp); plain fields are set before the start ----
  std::size_t workers = 1;
  std::chrono::system_clock::time_point started{};
  std::atomic<service_kind> kind{service_kind::service};
  std::atomic<bool> draining{false};
  std::atomic<bool> ended{false};
  std::atomic<int> restarting{0};  // workers waiting for their restart
  std::atomic<std::uint64_t> restarts{0};
  failure_log failures;

  /// Counts calls from now on (before the start): the metrics, and the queue stamping when
  /// a worker takes each request.
  void measure(trace_hook hook, std::string service_name) {
    metrics = std::make_shared<service_metrics>(std::move(hook), std::move(service_name));
    chan.set_on_deliver(&stamp_delivery);
  }

  /// Lists the service (before the start); returns the name it got.
  std::string list_in(const std::shared_ptr<registry_list>& list, const std::string& name) {
    return listing.join(list, name, &describe, this);
  }

  void worker_failed(const std::exception_ptr& e) noexcept { failures.record(e); }

  static std::optional<error_kind> outcome_of(const result_type& r) noexcept {
    if (r) return std::nullopt;
    return r.error().kind();
  }

  void abort_receivers() noexcept override {
    chan.abort_receivers(boost::asio::error::operation_aborted);
  }
  void drain() noexcept override {
    draining.store(true, std::memory_order_relaxed);
    chan.close_for_send();
  }

  /// Closes the queue for good; every request still queued goes back to its caller.
  void close_and_return_queued() noexcept {
    ended.store(true, std::memory_order_relaxed);
// cppcheck-suppress throwInNoexceptFunction ; close throws only what on_item throws, and it does not
    chan.close(
        [](item_type&& it) {
          responder_access::fail_undelivered(it.client, std::move(it.request));
        },
        [](item_type& it) { responder_access::mark_returning(it.client); });
  }

  /// Starts a call. `self` is the caller's share of the state: a cancellable call keeps it
  /// (its give-up withdraws from the queue, which must still exist then). `measured`: the
  /// call counts itself in the metrics (a timed call is counted by its deadline instead).
  template <class Handler, class R>
  void initiate_call(Handler handler, const std::shared_ptr<service_state>& self, R&& req,
                     call_mode mode, const trace_context& trace, bool measured = true) {
    auto* op = make_op<call_op<Handler>>(handler, chan.get_executor());
    // Built in place: the request is moved once on its way into the call. The responder is
    // pointed at the call only once the request is in: a request whose copy (a deferred
    // operation launched as an lvalue) or move throws must not complete the call as well.
    try {
      op->value.emplace(std::forward<R>(req), responder_type());
    } catch (...) {
      // Nothing knows the call yet: it goes with its handler, as if never started (a
      // coroutine's is left, as initiate_receive leaves one: destroying it here would tear
      // down the frames that are starting it).
      if constexpr (!is_coroutine_handler<Handler>::value) op->destroy();
      throw;
    }
    op->value->client = responder_type(op, trace);
    initiation_scope scope(op);
    if (boost::asio::get_associated_cancellation_slot(op->handler()).is_connected()) {
      op->state = self;
      // The request goes with the call: its responder must not answer the call it is in.
      arm_or_abandon(op, [op] { responder_access::release(op->value->client); });
    }
    // Counted once it can no longer vanish unstarted (request in, cancellation armed).
    if (metrics) {
      op->metrics = metrics;
      op->counted = measured;
      if (measured) {
        op->mark = metrics->call_started();
      } else {
        op->mark.start = service_metrics::clock::now();
      }
    }
    // A call whose reply would resume the worker's own strand waits for itself.
    const boost::asio::any_io_executor* caller_ex = &op->executor();
    send_status status;
    if (mode == call_mode::reserved) {
      // Take the item out first: once handed over, the reply may free `op` at any moment.
      item_type item(std::move(*op->value));
      op->value.reset();
      try {
        status = chan.send_reserved(item, caller_ex);
      } catch (...) {
        // No memory to queue it (the reservation is untouched, its owner gives it back): the
        // call goes with the exception, as if never started, and its responder must not
        // complete it on the way out.
        responder_access::release(item.client);
        if (op->ctl) op->ctl->fsm.abandon();
        if (op->metrics && op->counted)  // counted as started: it ends counted too
          op->metrics->call_completed(op->mark, error_kind::send_failure);
        if constexpr (!is_coroutine_handler<Handler>::value) op->destroy();
        throw;
      }
      if (status == send_status::closed) {
        responder_access::fail_undelivered(item.client, std::move(item.request));
      } else if (status == send_status::self_call) {
        // Settle first: giving the slot back may resume others inline, and one of them may
        // cancel this call.
        op->value.emplace(std::move(item));
        op->fail_before_delivery(error_kind::deadlock);
        chan.release_reservation();
      }
      return;
    }
    try {
      status = chan.send_or_wait(op, caller_ex, mode == call_mode::try_only);
    } catch (...) {
      // No memory to grow the queue's storage (the request is still the call's: the ring
      // grows before it moves anything): as for a reserved send, the call goes with the
      // exception, as if never started.
      if (op->value) responder_access::release(op->value->client);
      if (op->ctl) op->ctl->fsm.abandon();
      settle(op->ctl);  // a cancellation from now on finds nothing to cancel
      if (op->metrics && op->counted)
        op->metrics->call_completed(op->mark, error_kind::send_failure);
      if constexpr (!is_coroutine_handler<Handler>::value) op->destroy();
      throw;
    }
    switch (status) {
      case send_status::closed:
        op->on_closed(op);
        break;
      case send_status::full:
        op->fail_before_delivery(error_kind::queue_full);
        break;
      case send_status::self_call:
        op->fail_before_delivery(error_kind::deadlock);
        break;
      default:
        break;
    }
  }

  result_type call_blocking(Req&& req, call_mode mode, const trace_context& trace) {
    if (!metrics) return call_blocking_unmeasured(std::move(req), mode, nullptr, trace);
    auto mark = metrics->call_started();
    std::int64_t delivered = 0;
    // Out of memory queueing it: the call still ends counted (it throws bad_alloc).
    struct count_on_throw {
      service_metrics* m;
      const service_metrics::call_mark* mark;
      bool armed = true;
      ~count_on_throw() {
        if (armed) m->call_completed(*mark, error_kind::send_failure);
      }
    } guard{metrics.get(), &mark};
    result_type r = call_blocking_unmeasured(std::move(req), mode, &delivered, trace);
    guard.armed = false;
    metrics->call_completed(mark, outcome_of(r), delivered);
    return r;
  }

  // `delivered`, when given, gets when a worker took the request (0: it never did).
  result_type call_blocking_unmeasured(Req&& req, call_mode mode, std::int64_t* delivered,
                                       const trace_context& trace) {
    struct node final : send_waiter<item_type> {
      node() : send_waiter<item_type>(nullptr, &return_request) {}
    } n;
    blocking_reply<result_type> reply;
    n.value.emplace(std::move(req), responder_type(&reply, trace));
    send_status status;
    if (mode == call_mode::reserved) {
      try {
        status = chan.send_reserved(*n.value);
      } catch (...) {  // no memory: the responder must not complete `reply` on the way out
        responder_access::release(n.value->client);
        throw;
      }
    } else {
      try {
        status = chan.send_or_wait(&n, nullptr, mode == call_mode::try_only);
      } catch (...) {  // the same: `reply` goes before `n`, its responder must not reach it
        responder_access::release(n.value->client);
        throw;
      }
    }
    if (status == send_status::closed) return_request(&n);
    if (status == send_status::full) {
      item_type item(std::move(*n.value));
      responder_access::release(item.client);
      return result_type(std::unexpect,
                         error_type::of_kind(error_kind::queue_full, std::move(item.request)));
    }
    // Read once the reply is in, after it was built in place as the result (no extra move).
    struct read_delivered {
      const blocking_reply<result_type>& reply;
      std::int64_t* out;
      ~read_delivered() {
        if (out) *out = reply.delivered();
      }
    } when{reply, delivered};
    return reply.wait();
  }

  // ---- notifications: delivered with backpressure, no reply ----

  template <class Handler, class R>
  void initiate_notify(Handler handler, std::shared_ptr<service_state> self, R&& req,
                       const trace_context& trace) {
    auto* op = make_op<notify_op<Handler>>(handler, chan.get_executor(), this);
    op->value.emplace(std::forward<R>(req), responder_type::for_notification(trace));
    initiation_scope scope(op);
    if (boost::asio::get_associated_cancellation_slot(op->handler()).is_connected()) {
      op->state = std::move(self);
      arm_or_abandon(op);
    }
    // Waiting for room from the worker's own strand would wait for the worker itself.
    send_status status;
    try {
      status = chan.send_or_wait(op, &op->executor(), false, true);
    } catch (...) {     // no memory to grow the queue: the notification goes with the exception
      settle(op->ctl);  // a cancellation from now on finds nothing to cancel
      if constexpr (!is_coroutine_handler<Handler>::value) op->destroy();
      throw;
    }
    if (status == send_status::self_call) {
      settle(op->ctl);
      op->give_back(error_kind::deadlock);
    } else {
      tell_outcome<item_type>(op, status);
    }
  }

  notify_result notify_now(Req&& req, bool try_only, const trace_context& trace) {
    struct node final : send_waiter<item_type> {
      node() : send_waiter<item_type>(&on_accept, &on_close) {}
      static void on_accept(send_waiter<item_type>* n) noexcept {
        static_cast<node*>(n)->accepted = true;
        static_cast<node*>(n)->flag.set();
      }
      static void on_close(send_waiter<item_type>* n) noexcept {
        static_cast<node*>(n)->flag.set();
      }
      bool accepted = false;
      wake_flag flag;
    } n;
    n.value.emplace(std::move(req), responder_type::for_notification(trace));
    switch (chan.send_or_wait(&n, nullptr, try_only)) {
      case send_status::sent:
        if (metrics) metrics->notification_accepted();
        return {};
      case send_status::waiting:
        n.flag.wait();
        if (n.accepted) {
          if (metrics) metrics->notification_accepted();
          return {};
        }
        break;
      case send_status::full:
        return notify_result(std::unexpect, error_type::of_kind(error_kind::queue_full,
                                                                std::move(n.value->request)));
      default:
        break;
    }
    return notify_result(std::unexpect, error_type::send_failure(std::move(n.value->request)));
  }

 private:
  static void stamp_delivery(item_type& it) noexcept {
    responder_access::stamp_delivered(it.client, service_metrics::stamp());
  }

  static void describe(const void* ctx, service_info& out) {
    const auto* s = static_cast<const service_state*>(ctx);
    out.kind = s->kind.load(std::memory_order_relaxed);
    out.workers = s->workers;
    out.queue_capacity = s->chan.capacity();
    auto [depth, accepted] = s->chan.counts();
    out.queue_depth = depth;
    out.started = s->started;
    out.restarts = s->restarts.load(std::memory_order_relaxed);
    out.last_failure = s->failures.last();
    if (s->ended.load(std::memory_order_relaxed)) {
      out.status = service_status::ended;
    } else if (s->restarting.load(std::memory_order_relaxed) > 0) {
      out.status = service_status::restarting;
    } else if (s->draining.load(std::memory_order_relaxed)) {
      out.status = service_status::draining;
    } else {
      out.status = service_status::running;
    }
    if (s->metrics) out.metrics = s->metrics->snapshot(depth, accepted, out.restarts);
  }

  // Last: it leaves the registry before anything describe() reads is destroyed.
  registry_entry listing;

  // The channel handed the undelivered request back: complete the call with send_failure.
  static void return_request(send_waiter<item_type>* n) noexcept {
    item_type item(std::move(*n->value));
    n->value.reset();
    responder_access::fail_undelivered(item.client, std::move(item.request));
  }

  // One in-flight call: its place in the queue (while waiting for room) and its reply slot.
  //
  // A cancellable call (ctl set) is arbitrated by ctl->fsm (detail/call_fsm.hpp): the
  // responder side (a reply, a dropped responder, the queue handing the request back) and
  // the caller's cancellation race on one atomic word, and the side that ends its pending
  // phase completes the handler. The call's memory is freed by the responder side, or by the
  // canceller when it withdrew the request (no responder side is left) or when it gave up and
  // the responder came while it was still using the call. A cancellable call holds the
  // service's state (`state`): its cancellation may come after the last caller and the
  // worker are gone.
  template <class Handler>
  struct call_op final : reply_slot<result_type>,
                         send_waiter<item_type>,
                         operation<call_op<Handler>, Handler> {
    using base = operation<call_op<Handler>, Handler>;
    using step = call_fsm::answer_step;
    call_op(Handler&& h, const boost::asio::any_io_executor& fallback)
        : reply_slot<result_type>(&on_complete),
          send_waiter<item_type>(nullptr, &return_request),
          base(std::move(h), fallback, false) {
      this->set_watch(&on_watch);
    }

    static bool on_complete(reply_slot<result_type>* s, result_type&& r) noexcept {
      auto* self = static_cast<call_op*>(s);
      cancel_ctl* ctl = self->ctl;
      if (!ctl) {  // nobody can give up: the common path
        self->finish(std::move(r));
        return true;
      }
      call_fsm::answer_result a = ctl->fsm.answer(false);
      if (a.step == step::complete) {
        if (a.watch) a.watch->fire(a.watch);  // answered: the watch ends too
        self->finish(std::move(r));
        return true;
      }
      if (a.step == step::park_first) {
        // A cancellation is running on the call: the answer waits in the call for it.
        // cppcheck-suppress throwInNoexceptFunction ; a result's move does not throw
        self->answer.emplace(std::move(r));
        a = ctl->fsm.answer(true);
      }
      switch (a.step) {
        case step::complete_stored:
          if (a.watch) a.watch->fire(a.watch);
          self->finish_stored();
          return true;
        case step::parked:
          return true;  // the canceller completes with it
        case step::free:
          self->destroy();  // the caller gave up and is done with the call
          return false;
        default:  // leave: the caller gave up and still uses the call; it frees it
          return false;
      }
    }

    // A worker's async_wait_closed registers here; only a cancellable call can give up.
    static watch_status on_watch(reply_slot<result_type>* s, closed_watch* w, bool add) noexcept {
      auto* self = static_cast<call_op*>(s);
      if (!self->ctl) return watch_status::never;
      if (!add) return self->ctl->fsm.unwatch(w) ? watch_status::registered : watch_status::never;
      switch (self->ctl->fsm.watch(w)) {
        case call_fsm::watch_step::registered:
          return watch_status::registered;
        case call_fsm::watch_step::busy:
          return watch_status::busy;
        default:
          return watch_status::already_gone;
      }
    }

    // Completes the handler and frees the call. `r` never lives in the call (it is the
    // responder's answer, or an error made for this completion).
    void finish(result_type&& r) noexcept {
      if (metrics) {
        if (counted) {
          metrics->call_completed(mark, outcome_of(r), this->delivered());
        } else {
          metrics->call_split(mark.start, this->delivered());
        }
      }
      this->base::complete_outside(std::move(r));
    }
    // Completes with the answer stored in the call (it is moved out first: finish frees it).
    void finish_stored() noexcept {
      result_type r(std::move(*answer));
      answer.reset();
      finish(std::move(r));
    }

    // Refused before entering the queue: complete at once with the request back. It goes
    // the responder side's way (a cancellation cannot start before the initiation returns,
    // but the word, not that rule, keeps it exactly once).
    void fail_before_delivery(error_kind kind) noexcept {
      item_type item(std::move(*this->value));
      this->value.reset();
      responder_access::release(item.client);
      on_complete(this,
                  result_type(std::unexpect, error_type::of_kind(kind, std::move(item.request))));
    }

    // The caller's cancellation slot (any thread that emits it; the call may be gone unless
    // the pin succeeds).
    static void on_signal(cancel_ctl* ctl, boost::asio::cancellation_type type) noexcept {
      const bool terminal = !!(type & boost::asio::cancellation_type::terminal);
      if (!ctl->fsm.pin(terminal)) return;  // settled, or the pinned canceller takes it
      auto* self = static_cast<call_op*>(ctl->op);
      channel<item_type>& chan = self->state->chan;
      // Still queued? Then it is withdrawn: never delivered, the request comes back.
      std::optional<item_type> item;
      send_waiter<item_type>* refilled = nullptr;  // took the freed slot: told afterwards
      if (chan.withdraw(self)) {
        item.emplace(std::move(*self->value));
        self->value.reset();
      } else {
        const void* me = static_cast<reply_slot<result_type>*>(self);
// cppcheck-suppress throwInNoexceptFunction ; growing the buffer can only fail for lack of memory here
        item = chan.withdraw_buffered(
            [me](const item_type& it) { return responder_access::slot(it.client) == me; },
            refilled);
      }
      if (item) {
        responder_access::release(item->client);
        ctl->fsm.withdraw();
        if (refilled) refilled->on_accepted(refilled);
        self->finish(result_type(
            std::unexpect, error_type::of_kind(error_kind::cancelled, std::move(item->request))));
        return;
      }
      self->settle_delivered(ctl, terminal);
    }

    // Neither queued nor buffered because the queue's close() took it (the service ended):
    // close() is handing the request back (send_failure), and giving up here would lose it.
    // Both flags are set under the queue's lock, which withdraw just took. Delivered: only
    // terminal cancellation abandons the wait; the worker sees it. Pinned on entry.
    void settle_delivered(cancel_ctl* ctl, bool terminal) noexcept {
      while (this->returned || this->returning() || !terminal) {
        if (!unpin(ctl)) return;
        terminal = true;  // a terminal cancellation came from another emitter meanwhile
      }
      give_up(ctl);
    }

    void give_up(cancel_ctl* ctl) noexcept {
      const call_fsm::give_up_result g = ctl->fsm.give_up();
      if (!g.gave_up) {  // answered first: its answer is parked in the call
        unpin(ctl);
        return;
      }
      this->mark_waiter_gone();
      Handler h(std::move(this->handler()));
      boost::asio::any_io_executor ex = this->executor();
      // The call completes here (the responder side will only free it): count it now.
      if (metrics && counted) metrics->call_completed(mark, error_kind::cancelled);
      // Still pinned: a worker answering from inside the watch's completion leaves the call.
      if (g.watch) g.watch->fire(g.watch);
      if (ctl->fsm.unpin().step == call_fsm::unpin_step::free) this->destroy();
      complete_on<Handler>(
          ex,
          [h = std::move(h)]() mutable {
            std::move(h)(result_type(std::unexpect, error_type::of_kind(error_kind::cancelled)));
          },
          false);
    }

    // The canceller lets go of a call that goes on waiting (or was answered meanwhile).
    // True: it still holds the pin, for a terminal cancellation that came meanwhile.
    bool unpin(cancel_ctl* ctl) noexcept {
      const call_fsm::unpin_result u = ctl->fsm.unpin();
      if (u.step == call_fsm::unpin_step::retry_terminal) return true;
      if (u.step != call_fsm::unpin_step::complete_parked) return false;
      if (u.watch) u.watch->fire(u.watch);
      finish_stored();
      return false;
    }

    std::shared_ptr<service_state> state;      // set when cancellable
    std::shared_ptr<service_metrics> metrics;  // set when the service counts its calls
    service_metrics::call_mark mark;
    bool counted = true;  // false: a timed call, counted by its deadline (the split is here)
    std::optional<result_type> answer;  // an answer that came while a cancellation ran
  };

  template <class Handler>
  struct notify_op final : send_waiter<item_type>, operation<notify_op<Handler>, Handler> {
    using base = operation<notify_op<Handler>, Handler>;
    notify_op(Handler&& h, const boost::asio::any_io_executor& fallback, service_state* s)
        : send_waiter<item_type>(&on_accept, &on_close),
          base(std::move(h), fallback, false),
          metrics(s->metrics) {}
    static void on_accept(send_waiter<item_type>* n) noexcept {
      auto* self = static_cast<notify_op*>(n);
      if (self->metrics) self->metrics->notification_accepted();
      settle(self->ctl);
      self->base::complete(notify_result());
    }
    static void on_close(send_waiter<item_type>* n) noexcept {
      auto* self = static_cast<notify_op*>(n);
      settle(self->ctl);
      self->give_back(error_kind::send_failure);
    }
    // Cancelled while waiting for room: withdrawn, the request comes back.
    static void on_cancel(void* p, boost::asio::cancellation_type,
                          std::unique_lock<std::mutex>& lk) noexcept {
      auto* self = static_cast<notify_op*>(p);
      if (!self->state->chan.withdraw(self)) return;  // accepted meanwhile: it completes
      self->ctl->op = nullptr;
      lk.unlock();
      self->give_back(error_kind::cancelled);
    }
    void give_back(error_kind kind) noexcept {
      item_type item(std::move(*this->value));
      this->value.reset();
      this->base::complete(
          notify_result(std::unexpect, error_type::of_kind(kind, std::move(item.request))));
    }
    std::shared_ptr<service_metrics> metrics;
    std::shared_ptr<service_state> state;  // set when cancellable
  };
};

/// Shared by every copy of one caller; its destruction is "the last caller is gone".
template <class Req, class Resp, class Err>
struct caller_core {
  explicit caller_core(std::shared_ptr<service_state<Req, Resp, Err>> s) noexcept
      : state(std::move(s)) {}
  caller_core(const caller_core&) = delete;
  caller_core& operator=(const caller_core&) = delete;
  ~caller_core() {
    state->draining.store(true, std::memory_order_relaxed);
    state->chan.mark_no_senders();
  }
  std::shared_ptr<service_state<Req, Resp, Err>> state;
};

}  // namespace tenorite::detail
