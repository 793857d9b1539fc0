// SPDX-License-Identifier: BSL-1.0
// tenorite/channel.hpp — a bounded multi-producer queue with async, blocking and try forms.
//
// The queue is two parts under one lock: the values (detail/ring.hpp) and the slot
// accounting (detail/slots.hpp: capacity, reservations, the FIFO of senders waiting for a
// slot, and grant(), the one place that decides who gets a freed slot). A send is a
// reservation and its commit, as in Tokio's bounded mpsc. This file adds the receivers, the
// end of the stream and the operations.
//
// Invariants (all under the channel's mutex):
// - at most capacity() items are buffered; a sender that finds the buffer full waits in a
//   FIFO of send waiters, holding its own value (backpressure: the (N+1)-th send waits);
// - receivers wait only while the buffer is empty and no waiting sender could enter it; a
//   sender that finds a waiting receiver hands its value straight to it;
// - senders wait only while there is no room: whenever a slot frees (a receive, a withdrawn
//   item, a reservation used or given back) the oldest waiting sender takes it — straight
//   to a waiting receiver if there is one (a pool's other workers may be waiting);
// - when a receiver takes an item and a sender is waiting, the oldest waiting sender's value
//   moves into the buffer in the same step (FIFO order is kept);
// - close() is final: every buffered item and every waiting sender's value is handed back
//   through the callbacks, so nothing queued is ever dropped; later sends fail with `closed`;
// - once the senders are gone (mark_no_senders) receivers drain the buffer, then get "end";
// - no callback and no completion handler ever runs under the mutex.
//
// Example:
//   tenorite::channel<int> ch(ex, 8);
//   co_await ch.async_send(1, boost::asio::use_awaitable);
//   auto [ec, v] = co_await ch.async_receive(
//       boost::asio::as_tuple(boost::asio::use_awaitable));
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/query.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tenorite/detail/cancellation.hpp>
#include <tenorite/detail/context_registry.hpp>
#include <tenorite/detail/inbox.hpp>
#include <tenorite/detail/operation.hpp>
#include <tenorite/detail/reply_slot.hpp>
#include <tenorite/detail/ring.hpp>
#include <tenorite/detail/slots.hpp>
#include <tenorite/detail/small_mutex.hpp>
#include <tenorite/detail/virtual_time.hpp>
#include <tenorite/detail/waiters.hpp>
#include <utility>
#include <vector>

namespace tenorite {

/// The outcome of a non-waiting send.
enum class send_status {
  sent,       ///< the value is in the channel (or with a receiver)
  waiting,    ///< (node sends only) the channel was full; the node waits in the channel
  full,       ///< (try_send only) the channel was full; the value was not taken
  closed,     ///< the channel is closed; the value was not taken
  self_call,  ///< the sender is the channel's own consumer: it would wait for itself forever
};

namespace detail {

/// Tells a node that started without waiting how it went: `sent` through on_accepted,
/// `closed` through on_closed. (`waiting`: the channel tells it later; the other outcomes
/// are the starter's to handle.)
template <class T>
void tell_outcome(send_waiter<T>* node, send_status status) noexcept {
  if (status == send_status::sent) {
    node->on_accepted(node);
  } else if (status == send_status::closed) {
    node->on_closed(node);
  }
}

}  // namespace detail

template <class T>
class channel final : private detail::context_registry::entry {
 public:
  using value_type = T;
  using executor_type = boost::asio::any_io_executor;
  /// Completion signature of async_send: on error (closed) the value comes back.
  using send_signature = void(boost::system::error_code, std::optional<T>);
  /// Completion signature of async_receive: an empty optional means the stream ended.
  using receive_signature = void(boost::system::error_code, std::optional<T>);

  /// `ex` runs handlers that have no executor of their own. Throws std::invalid_argument
  /// when capacity is 0.
  channel(executor_type ex, std::size_t capacity) : ex_(std::move(ex)), slots_(capacity) {
    if (capacity == 0)
      throw std::invalid_argument(
          "tenorite::channel: capacity must be at least 1 (it bounds how many items may wait "
          "in the queue)");
    detail::context_registry::add(ex_, this);
    // A receive ended from a thread outside the channel's io_context goes through its inbox.
    using io_executor = boost::asio::io_context::executor_type;
    if (const io_executor* e = ex_.template target<io_executor>())
      inbox_ = &detail::inbox::of(e->context());
  }
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;
  /// Whatever is still parked here ends now: waiting receivers with operation_aborted,
  /// waiting senders with broken_pipe and their value back; buffered items are destroyed.
  /// (A service closes its queue before it dies, so only a bare channel has any.)
  ~channel() {
    // A receive whose item is on its way to a handler that may still give it back (it was
    // cancelled late) finds the channel gone and keeps the item.
    if (life_) {
      std::lock_guard lk(life_->m);
      life_->alive = false;
    }
    detail::context_registry::remove(this);
    detail::fifo<detail::send_waiter<T>> senders;
    detail::fifo<detail::recv_waiter<T>> receivers;
    {
      std::lock_guard lk(m_);
      closed_ = true;
      senders = slots_.take_waiting();
      receivers = receivers_.take();
    }
    senders.drain([](auto* s) { s->on_closed(s); });
    receivers.drain(
        [](auto* r) { r->ready(r, boost::asio::error::operation_aborted, std::nullopt); });
    // Items may hold responders, whose destruction completes calls: never under the lock.
    detail::ring<T> items;
    {
      std::lock_guard lk(m_);
      items.swap(items_);
    }
    items.clear();
  }

  std::size_t capacity() const noexcept { return slots_.capacity(); }
  const executor_type& get_executor() const noexcept { return ex_; }
  std::size_t size() const {
    std::lock_guard lk(m_);
    return items_.size();
  }
  bool is_closed() const {
    std::lock_guard lk(m_);
    return closed_;
  }

  // ---- producer side -------------------------------------------------------------------

  /// Sends without waiting: sent (value moved from), full or closed (value untouched).
  send_status try_send(T& value) {
    std::unique_lock lk(m_);
    if (closed_ || send_closed_) return send_status::closed;
    if (auto* r = receivers_.pop_front()) {
      ++accepted_;
      lk.unlock();
      delivering(value);
      r->ready(r, {}, std::optional<T>(std::move(value)));
      return send_status::sent;
    }
    if (!slots_.has_room(items_.size())) return send_status::full;
    push_locked(std::move(value));
    return send_status::sent;
  }

  /// Sends the node's value, or parks the node until there is room (status `waiting`).
  /// On `sent` the node's value is consumed, the node is not retained and on_accepted is NOT
  /// called (the caller knows); on `closed` the value stays in the node.
  /// `caller`, when given, is the executor of the sending coroutine: if it is the consumer's
  /// own executor (set_consumer), the send is refused with `self_call`.
  /// `self_if_waiting`: refuse a self-call only when the send would wait for room (a send
  /// that wants no reply waits for nothing else).
  send_status send_or_wait(detail::send_waiter<T>* node, const executor_type* caller = nullptr,
                           bool try_only = false, bool self_if_waiting = false) {
    std::unique_lock lk(m_);
    if (closed_ || send_closed_) return send_status::closed;
    const bool self = is_self_locked(caller);
    if (self && !self_if_waiting) return send_status::self_call;
    if (auto* r = receivers_.pop_front()) {
      ++accepted_;
      lk.unlock();
      std::optional<T> v(std::move(*node->value));
      node->value.reset();
      delivering(*v);
      r->ready(r, {}, std::move(v));
      return send_status::sent;
    }
    if (slots_.has_room(items_.size())) {
      push_locked(std::move(*node->value));
      node->value.reset();
      return send_status::sent;
    }
    if (try_only) return send_status::full;
    if (self) return send_status::self_call;
    slots_.wait(node);
    return send_status::waiting;
  }

  /// Takes a still-buffered item matching `pred` out of the queue (it will never be
  /// received). Empty when no buffered item matches (it was received, or never buffered).
  template <class Pred>
  std::optional<T> withdraw_buffered(Pred pred) {
    detail::send_waiter<T>* accepted = nullptr;
    std::optional<T> out = withdraw_buffered(std::move(pred), accepted);
    if (accepted) accepted->on_accepted(accepted);
    return out;
  }

  /// The same, but the waiting sender that took the freed slot (if it wants to be told) is
  /// returned in `accepted` for the caller to notify (call on_accepted) once it holds no
  /// lock: its handler may run inline.
  template <class Pred>
  std::optional<T> withdraw_buffered(Pred pred, detail::send_waiter<T>*& accepted) {
    std::optional<T> out;  // outside the lock's scope: never destroyed under it
    std::lock_guard lk(m_);
    out = items_.remove_first(pred);
    if (out) accepted = accept_one_locked();
    return out;
  }

  // ---- reservations: a slot now, its value later ----------------------------------------

  /// Reserves a slot now, or parks `node` (a node with reservation = true) until one frees.
  /// Returns sent (reserved), waiting, full (try_only) or closed.
  /// `caller`: as for send_or_wait; a self-call is refused when it would wait.
  send_status reserve_or_wait(detail::send_waiter<T>* node, bool try_only = false,
                              const executor_type* caller = nullptr) {
    std::lock_guard lk(m_);
    if (closed_ || send_closed_) return send_status::closed;
    if (slots_.try_reserve(items_.size())) return send_status::sent;
    if (try_only) return send_status::full;
    if (is_self_locked(caller)) return send_status::self_call;
    slots_.wait(node);
    return send_status::waiting;
  }

  /// Sends into a reserved slot: never waits, never full. Returns closed (value untouched)
  /// when the channel was closed meanwhile.
  /// `caller`: as for send_or_wait (a call through a permit waits for its reply); on
  /// `self_call` the slot stays reserved.
  send_status send_reserved(T& value, const executor_type* caller = nullptr) {
    std::unique_lock lk(m_);
    if (closed_) return send_status::closed;
    if (is_self_locked(caller)) return send_status::self_call;
    if (receivers_.empty()) {
      // The one step that may fail (no memory to grow the ring) comes before the commit: a
      // failed send leaves the reservation as it was, for its owner to give back once.
      push_locked(std::move(value));
      slots_.commit();
      return send_status::sent;
    }
    // Built before anything is committed: a move that throws leaves the reservation as it was.
    std::optional<T> v(std::move(value));
    slots_.commit();
    if (auto* r = receivers_.pop_front()) {
      ++accepted_;
      // The value skips the buffer, so the reserved slot is free now: a waiting sender
      // takes it (else it would wait beside a free slot while the receiver sleeps).
      refill more;
      refill_locked(more);
      // That was the last reservation of a drained queue: the other receivers (a pool's
      // workers) see the end now, not when the last caller goes.
      detail::fifo<detail::recv_waiter<T>> ended;
      if (at_end_locked()) ended = receivers_.take();
      lk.unlock();
      delivering(*v);
      r->ready(r, {}, std::move(v));
      more.run();
      ended.drain([](auto* e) { e->ready(e, {}, std::nullopt); });
    }
    return send_status::sent;
  }

  /// Gives a reserved slot back unused.
  void release_reservation() noexcept {
    refill more;
    detail::fifo<detail::recv_waiter<T>> ended;
    {
      std::lock_guard lk(m_);
      if (closed_) return;
      slots_.release();
      // Receivers may be waiting (the buffer can be empty while reservations fill it).
// cppcheck-suppress throwInNoexceptFunction ; growing the buffer can only fail for lack of memory here
      refill_locked(more);
      if (at_end_locked()) ended = receivers_.take();
    }
    more.run();
    ended.drain([](auto* r) { r->ready(r, {}, std::nullopt); });
  }

  /// Called with each item as it leaves for a receiver (a service stamps when a worker took
  /// a request, for its metrics). Set before the channel is used; null (the default) costs
  /// one branch per item.
  using deliver_fn = void (*)(T&) noexcept;
  void set_on_deliver(deliver_fn f) noexcept { on_deliver_ = f; }

  /// Pending operations whose handlers run on the channel's own execution context count as
  /// outstanding work there unless the owner keeps that context busy itself (a service does,
  /// while its worker lives). Call before the channel is used.
  void set_operations_track_work(bool track) noexcept { track_work_ = track; }

  /// The consumer's executor (a strand), and how to tell that the calling thread runs it.
  /// An operation started from the consumer's strand whose handler would run on that strand
  /// would wait for the consumer itself: it is refused with `self_call` (calls always; sends
  /// and reservations only when they would wait for room). Shared, not copied: the
  /// executor lives in the worker's own block, and an idle channel stays small.
  void set_consumer(std::shared_ptr<const executor_type> ex,
                    bool (*running_in_this_thread)(const executor_type&)) {
    std::lock_guard lk(m_);
    consumer_ = std::move(ex);
    consumer_running_ = running_in_this_thread;
  }

  /// Sends the node's value or parks the node; the node's owner hears the outcome through
  /// its callbacks in every case (on_accepted at once when sent, on_closed when closed).
  void submit(detail::send_waiter<T>* node) { detail::tell_outcome(node, send_or_wait(node)); }

  /// Reserves a slot for a reservation node or parks it; outcome through its callbacks.
  void submit_reservation(detail::send_waiter<T>* node) {
    detail::tell_outcome(node, reserve_or_wait(node));
  }

  /// Takes a parked node back (its value still inside). False if the channel already took
  /// its value or handed it back.
  /// (Withdrawing a waiting sender never brings the end: a sender waits only while the
  /// buffer and the reservations fill the capacity, and they still do.)
  bool withdraw(detail::send_waiter<T>* node) {
    std::lock_guard lk(m_);
    return slots_.withdraw(node);
  }

  /// Takes a parked receiver back. False if an item, the end or an error is already on its
  /// way to it.
  bool withdraw_receiver(detail::recv_waiter<T>* node) {
    std::lock_guard lk(m_);
    if (!node->linked) return false;
    receivers_.unlink(node);
    return true;
  }

  /// How many values are buffered now, and how many the channel accepted so far.
  std::pair<std::size_t, std::uint64_t> counts() const {
    std::lock_guard lk(m_);
    return {items_.size(), accepted_};
  }

  /// Puts an item a receive took back at the front (its receive was cancelled before its
  /// handler ran), or hands it to the oldest parked receiver. Moves from `v` only on
  /// success; false once the channel is closed.
  bool give_back(T& v) {
    detail::recv_waiter<T>* r = nullptr;
    {
      std::lock_guard lk(m_);
      if (closed_) return false;
      if (items_.empty() && !receive_error_ && !receivers_.empty()) {
        r = receivers_.pop_front();
      } else {
        items_.push_front(std::move(v), slots_.capacity());
        return true;
      }
    }
    r->ready(r, {}, std::optional<T>(std::move(v)));
    return true;
  }

  /// Sends, waiting for room. Completes with (error_code, std::optional<T>): success and an
  /// empty optional, or channel_closed-style `boost::asio::error::broken_pipe` and the value.
  template <class Token>
  TENORITE_AWAITABLE_ENTRY auto async_send(T value, Token&& token) {
    return boost::asio::async_initiate<Token, send_signature>(
        [this](auto handler, T v) { this->initiate_send(std::move(handler), std::move(v)); }, token,
        std::move(value));
  }

  /// Sends from a plain thread, waiting for room. Returns the value back when closed.
  std::optional<T> send_blocking(T value) {
    detail::check_not_simulation("tenorite::channel::send_blocking");
    struct node : detail::send_waiter<T> {
      node() : detail::send_waiter<T>(&on_accept, &on_close) {}
      static void on_accept(detail::send_waiter<T>* n) noexcept {
        static_cast<node*>(n)->accepted = true;
        static_cast<node*>(n)->flag.set();
      }
      static void on_close(detail::send_waiter<T>* n) noexcept {
        static_cast<node*>(n)->flag.set();
      }
      bool accepted = false;
      detail::wake_flag flag;
    } n;
    n.value.emplace(std::move(value));
    switch (send_or_wait(&n)) {
      case send_status::sent:
        return std::nullopt;
      case send_status::waiting:
        n.flag.wait();
        if (n.accepted) return std::nullopt;
        return std::move(n.value);
      default:
        return std::move(n.value);
    }
  }

  // ---- consumer side -------------------------------------------------------------------

  /// Takes an item if one is buffered.
  std::optional<T> try_receive() {
    detail::send_waiter<T>* refilled = nullptr;
    std::optional<T> v;
    {
      std::lock_guard lk(m_);
      if (items_.empty()) return std::nullopt;
      take_locked([&v](T&& it) { v.emplace(std::move(it)); }, refilled);
    }
    if (refilled) refilled->on_accepted(refilled);
    return v;
  }

  /// Receives without waiting whatever a receive would get now: an item, the end of the
  /// stream (an empty optional) or an error (operation_aborted after abort_receivers()).
  /// Returns false, leaving `ec` and `v` alone, when a receive would have to wait.
  bool poll_receive(boost::system::error_code& ec, std::optional<T>& v) {
    detail::send_waiter<T>* refilled = nullptr;
    if (!take_if_ready(ec, v, refilled)) return false;
    if (refilled) refilled->on_accepted(refilled);
    return true;
  }

  /// Takes up to `limit` buffered items at once, appending them to `out`; returns how many.
  std::size_t try_receive_many(std::vector<T>& out, std::size_t limit) {
    // The senders that took the freed slots, chained through their own `next` (they are out
    // of the senders' list): told after unlocking, also when `out` cannot grow any more.
    detail::send_waiter<T>* told = nullptr;
    detail::send_waiter<T>* told_tail = nullptr;
    auto tell = [&told]() noexcept {
      for (auto* s = std::exchange(told, nullptr); s;) {
        auto* next = s->next;
        s->on_accepted(s);
        s = next;
      }
    };
    std::size_t n = 0;
    try {
      std::lock_guard lk(m_);
      while (n < limit && !items_.empty()) {
        detail::send_waiter<T>* r = nullptr;
        take_locked([&out](T&& it) { out.push_back(std::move(it)); }, r);
        if (r) {
          r->next = nullptr;
          (told_tail ? told_tail->next : told) = r;
          told_tail = r;
        }
        ++n;
      }
    } catch (...) {
      tell();
      throw;
    }
    tell();
    return n;
  }

  /// Receives one item. Completes with (error_code, std::optional<T>): an item; an empty
  /// optional once the channel is closed or all senders are gone and the buffer is drained;
  /// or operation_aborted after abort_receivers().
  template <class Token>
  TENORITE_AWAITABLE_ENTRY auto async_receive(Token&& token) {
    return boost::asio::async_initiate<Token, receive_signature>(
        [this](auto handler) { this->initiate_receive(std::move(handler)); }, token);
  }

  /// Receives from a plain thread (same outcomes as async_receive).
  std::optional<T> receive_blocking(boost::system::error_code& ec) {
    detail::check_not_simulation("tenorite::channel::receive_blocking");
    struct node : detail::recv_waiter<T> {
      node() : detail::recv_waiter<T>(&on_ready) {}
      static void on_ready(detail::recv_waiter<T>* n, boost::system::error_code e,
                           std::optional<T>&& v) noexcept {
        auto* self = static_cast<node*>(n);
        self->ec = e;
        self->value = std::move(v);
        self->flag.set();
      }
      boost::system::error_code ec;
      std::optional<T> value;
      detail::wake_flag flag;
    } n;
    if (receive_or_wait(&n)) n.flag.wait();
    ec = n.ec;
    return std::move(n.value);
  }

  /// Receives now, or parks `node` (returns true) until an item or the end arrives. When it
  /// returns false, node->ready has already been called.
  /// `on_park`, if set, runs under the lock just before the node is parked (an operation
  /// connects its cancellation there: only a parked receive can be cancelled, and an item
  /// may complete it as soon as the lock is released).
  bool receive_or_wait(detail::recv_waiter<T>* node,
                       void (*on_park)(detail::recv_waiter<T>*) = nullptr) {
    detail::send_waiter<T>* refilled = nullptr;
    std::optional<T> v;
    boost::system::error_code ec;
    {
      std::lock_guard lk(m_);
      if (!take_ready_locked(ec, v, refilled)) {
        if (on_park) on_park(node);
        receivers_.push_back(node);
        return true;
      }
    }
    if (refilled) refilled->on_accepted(refilled);
    node->ready(node, ec, std::move(v));
    return false;
  }

  // ---- lifetime ------------------------------------------------------------------------

  /// Closes the channel for good: `on_item(T&&)` gets every buffered item (oldest first),
  /// waiting senders get their values back (on_closed), waiting receivers get the
  /// end of the stream, and every later send fails with `closed`.
  /// `mark_locked(T&)`, run under the lock for each buffered item, lets the owner note that
  /// the item is on its way back before anyone can look for it in the queue. An exception
  /// from `on_item` comes out of close() once every waiter has been told; the items not yet
  /// handed over are then destroyed.
  template <class F, class G>
  void close(F&& on_item, G&& mark_locked) {
    detail::ring<T> items;
    detail::fifo<detail::send_waiter<T>> senders;
    detail::fifo<detail::recv_waiter<T>> receivers;
    std::shared_ptr<const executor_type> consumer;  // let go after the lock
    {
      std::lock_guard lk(m_);
      closed_ = true;
      consumer = std::move(consumer_);
      consumer_running_ = nullptr;
      items.swap(items_);
      senders = slots_.close();
      receivers = receivers_.take();
      items.for_each(mark_locked);
    }
    auto tell = [&]() noexcept {
      senders.drain([](auto* s) { s->on_closed(s); });
      receivers.drain([](auto* r) { r->ready(r, {}, std::nullopt); });
    };
    try {
      items.drain(on_item);
    } catch (...) {  // the waiters are told all the same; the items left are destroyed
      tell();
      throw;
    }
    tell();
  }

  template <class F>
  void close(F&& on_item) {
    close(std::forward<F>(on_item), [](T&) {});
  }

  /// Closes with no owner-side handling: buffered items are destroyed.
  void close() {
    close([](T&&) {});
  }

  /// Tells the receivers that no sender is left: they drain the buffer, then see the end.
  void mark_no_senders() {
    detail::fifo<detail::recv_waiter<T>> receivers;
    {
      std::lock_guard lk(m_);
      no_senders_ = true;
      if (at_end_locked()) receivers = receivers_.take();
    }
    receivers.drain([](auto* r) { r->ready(r, {}, std::nullopt); });
  }

  /// Graceful drain: later sends fail with `closed`; what is queued (and senders already
  /// waiting for room, and reserved slots) is still received; then receivers see the end.
  void close_for_send() {
    detail::fifo<detail::recv_waiter<T>> receivers;
    {
      std::lock_guard lk(m_);
      send_closed_ = true;
      if (at_end_locked()) receivers = receivers_.take();
    }
    receivers.drain([](auto* r) { r->ready(r, {}, std::nullopt); });
  }

  /// Makes every pending and later receive fail with `ec` (used by abort).
  void abort_receivers(boost::system::error_code ec) {
    detail::fifo<detail::recv_waiter<T>> receivers;
    {
      std::lock_guard lk(m_);
      receive_error_ = ec;
      receivers = receivers_.take();
    }
    receivers.drain([ec](auto* r) { r->ready(r, ec, std::nullopt); });
  }

 private:
  static void dispose_unrun(void* n) noexcept {
    auto* node = static_cast<detail::inbox_node*>(n);
    node->fn(node, false);
  }
  void collect_parked(const boost::asio::execution_context& ctx,
                      std::vector<detail::parked_op>& out) noexcept override {
    std::lock_guard lk(m_);
    for (auto* r = receivers_.head; r;) {
      auto* next = detail::next_of(r);
      if (r->context == &ctx && r->fn) {
        receivers_.unlink(r);
        out.push_back({static_cast<detail::inbox_node*>(r), &dispose_unrun});
      }
      r = next;
    }
    slots_.withdraw_if([&](detail::send_waiter<T>* s) noexcept {
      if (s->context != &ctx || !s->destroy_fn) return false;
      out.push_back({s, s->destroy_fn});
      return true;
    });
  }

  template <class Handler>
  struct recv_op final : detail::recv_waiter<T>, detail::operation<recv_op<Handler>, Handler> {
    using base = detail::operation<recv_op<Handler>, Handler>;
    recv_op(Handler&& h, const executor_type& ex, bool track, channel* c)
        : detail::recv_waiter<T>(&on_ready, &dispose),
          base(std::move(h), ex, track),
          chan(c) {
      this->context = &boost::asio::query(this->executor(), boost::asio::execution::context);
      // The channel found the inbox of its own io_context; a handler on a plain executor of
      // that context may be ended through it.
      using io_executor = boost::asio::io_context::executor_type;
      if (c->inbox_ && this->executor().template target<io_executor>() &&
          this->context == &c->inbox_->context())
        box = c->inbox_;
    }
    // An item handed to a parked receive whose handler is then cancelled before it runs
    // (e.g. the other branch of `recv() || timer` won meanwhile) goes back to the front of
    // the queue and the receive ends with operation_aborted: a cancelled receive never
    // takes an item with it. One exception: if the channel was closed meanwhile there is no
    // queue to go back to, and the handler gets the item (a service closes its queue only
    // after its worker ended, so only a receive left pending past the worker sees this).
    static void on_ready(detail::recv_waiter<T>* n, boost::system::error_code ec,
                         std::optional<T>&& v) noexcept {
      auto* self = static_cast<recv_op*>(n);
      detail::settle(self->ctl);
      // With an item, the watch takes over the operation's reference to the block, so it
      // goes back to the cache of the thread where the completion runs.
      detail::late_cancel_watch watch(v ? std::exchange(self->ctl, nullptr) : nullptr,
                                      detail::late_cancel_watch::adopt);
      // Nothing to give back (no cancellation slot, or no item): the value goes straight to
      // the handler (`v` is the sender's, not the operation's). The end of the stream told
      // from a thread outside the handler's io_context (the last caller dropped there) goes
      // with the operation itself through the context's inbox: ending many services from one
      // thread then costs one post for all of them.
      if (!watch.armed()) {
        if (!v && !ec && self->box && !detail::dying_context() &&
            !self->executor()
                 .template target<boost::asio::io_context::executor_type>()
                 ->running_in_this_thread())
          return self->box->push(self);
        return self->complete_outside(ec, std::move(v));
      }
      // A cancellable receive may give its item back; it holds the channel's life block, as
      // the channel may be destroyed before the handler runs.
      std::shared_ptr<life> alive = self->chan->life_;
      channel* ch = self->chan;
// cppcheck-suppress throwInNoexceptFunction ; growing the buffer can only fail for lack of memory here
      self->complete_with([ec, v = std::move(v), watch = std::move(watch), ch,
                           alive = std::move(alive)](Handler&& h) mutable {
        if (watch.requested() && v && alive) {
          std::lock_guard lk(alive->m);
          if (alive->alive && ch->give_back(*v)) {
            v.reset();
            ec = boost::asio::error::operation_aborted;
          }
        }
        std::move(h)(ec, std::move(v));
      });
    }
    // run: the end of the stream, from the inbox's drain on the handler's io_context; else
    // freed unrun (its context shuts down, while parked or in the inbox).
    static void dispose(detail::inbox_node* n, bool run) noexcept {
      auto* self = static_cast<recv_op*>(static_cast<detail::recv_waiter<T>*>(n));
      if (run) return self->complete_outside(boost::system::error_code(), std::optional<T>());
      detail::settle(self->ctl);
      self->destroy();
    }
    // Any cancellation type: a parked receive has taken nothing yet, so ending it loses
    // nothing (the next item stays queued for the next receive).
    static void on_cancel(void* p, boost::asio::cancellation_type,
                          std::unique_lock<std::mutex>& lk) noexcept {
      auto* self = static_cast<recv_op*>(p);
      if (!self->chan->withdraw_receiver(self)) {  // an item or the end is on its way
        self->ctl->late.store(true, std::memory_order_release);
        return;
      }
      self->ctl->op = nullptr;
      lk.unlock();
// cppcheck-suppress throwInNoexceptFunction ; growing the buffer can only fail for lack of memory here
      on_ready(self, boost::asio::error::operation_aborted, std::nullopt);
    }
    channel* chan;
    detail::inbox* box = nullptr;  // the inbox its end may go through (see on_ready)
  };

  template <class Handler>
  struct send_op final : detail::send_waiter<T>, detail::operation<send_op<Handler>, Handler> {
    using base = detail::operation<send_op<Handler>, Handler>;
    send_op(Handler&& h, const executor_type& ex, bool track)
        : detail::send_waiter<T>(&on_accept, &on_close), base(std::move(h), ex, track) {
      this->context = &boost::asio::query(this->executor(), boost::asio::execution::context);
      this->destroy_fn = &on_destroy;
    }
    static void on_destroy(void* n) noexcept {
      static_cast<send_op*>(static_cast<detail::send_waiter<T>*>(n))->destroy();
    }
    static void on_accept(detail::send_waiter<T>* n) noexcept {
      static_cast<send_op*>(n)->complete(boost::system::error_code(), std::optional<T>());
    }
    static void on_close(detail::send_waiter<T>* n) noexcept {
      auto* self = static_cast<send_op*>(n);
      std::optional<T> back(std::move(self->value));
      self->complete(boost::system::error_code(boost::asio::error::broken_pipe), std::move(back));
    }
  };

  template <class Handler>
  void initiate_receive(Handler handler) {
    // Ready now (an item, the end, an error): no operation is made; only a receive that
    // parks needs one (to be found, cancelled, or collected when its context dies).
    detail::send_waiter<T>* refilled = nullptr;
    std::optional<T> v;
    boost::system::error_code ec;
    if (take_if_ready(ec, v, refilled)) {
      if (!refilled) {
        detail::complete_now(std::move(handler), ex_, ec, std::move(v));
        return;
      }
      // Telling the sender may run its handler inline, and that may destroy this channel
      // (a bare channel owned by that handler): nothing of `*this` is read after it.
      boost::asio::any_io_executor fallback(ex_);
      refilled->on_accepted(refilled);
      detail::complete_now(std::move(handler), fallback, ec, std::move(v));
      return;
    }
    auto* op = detail::make_op<recv_op<Handler>>(handler, ex_, track_work_, this);
    detail::initiation_scope scope(op);
    try {
      receive_or_wait(op, [](detail::recv_waiter<T>* n) {
        auto* self = static_cast<recv_op<Handler>*>(n);
        self->arm_cancellation();
        // Under the lock: a cancellable receive makes the life block its completion may need.
        if (self->ctl && !self->chan->life_) self->chan->life_ = std::make_shared<life>();
      });
    } catch (...) {
      // Out of memory before the receive parked: only its cancellation slot (if armed)
      // knows the operation, and is told first that it is gone. A plain handler is then
      // dropped with it (what it owns ends as when its context dies); a coroutine's is left
      // (destroying an awaitable's handler posts its frames' teardown, which may need the
      // memory we lack, from a destructor).
      detail::settle(op->ctl);
      if constexpr (!detail::is_coroutine_handler<Handler>::value) op->destroy();
      throw;
    }
  }

  template <class Handler>
  void initiate_send(Handler handler, T value) {
    auto* op = detail::make_op<send_op<Handler>>(handler, ex_, track_work_);
    op->value.emplace(std::move(value));
    detail::initiation_scope scope(op);
    submit(op);
  }

  // What a receive gets without waiting: an error, an item (and the waiting sender that took
  // its slot, to be told after unlocking), or the end. False: it would have to wait.
  bool take_if_ready(boost::system::error_code& ec, std::optional<T>& v,
                     detail::send_waiter<T>*& refilled) {
    std::lock_guard lk(m_);
    return take_ready_locked(ec, v, refilled);
  }
  bool take_ready_locked(boost::system::error_code& ec, std::optional<T>& v,
                         detail::send_waiter<T>*& refilled) {
    if (receive_error_) {
      ec = receive_error_;
    } else if (!items_.empty()) {
      take_locked([&v](T&& it) { v.emplace(std::move(it)); }, refilled);
    } else if (!at_end_locked()) {
      return false;
    }
    return true;
  }

  void push_locked(T&& v) {
    items_.push_back(std::move(v), slots_.capacity());
    ++accepted_;
  }

  // Moves the oldest item into `put(T&&)` (an emplace: the item is moved once on its way
  // out), then refills the buffer from the oldest waiting sender. If `put` throws, the item
  // stays queued.
  template <class Put>
  void take_locked(Put&& put, detail::send_waiter<T>*& refilled) {
    if (on_deliver_) {
      items_.pop_front([&put, f = on_deliver_](T&& it) {
        f(it);
        put(std::move(it));
      });
    } else {
      items_.pop_front(std::forward<Put>(put));
    }
    refilled = accept_one_locked();
  }

  void delivering(T& v) const noexcept {
    if (on_deliver_) on_deliver_(v);
  }

  bool is_self_locked(const executor_type* caller) const noexcept {
    return caller && consumer_running_ && consumer_ && consumer_running_(*consumer_) &&
           *caller == *consumer_;
  }

  bool at_end_locked() const noexcept {
    return closed_ || ((no_senders_ || send_closed_) && items_.empty() &&
                       slots_.reserved() == 0 && !slots_.has_waiting());
  }

  // Waiting senders that took free slots while receivers may be waiting: built under the
  // lock, run after it. Each value goes to a waiting receiver (pairs, oldest first) or into
  // the buffer; the senders that want to be told are told. The nodes are chained through
  // their own `next` (they are out of the channel's lists, so withdraw leaves them alone).
  struct refill {
    deliver_fn on_deliver = nullptr;           // the channel's, for the handed values
    detail::send_waiter<T>* handed = nullptr;  // paired, in order, with `to`
    detail::send_waiter<T>* handed_tail = nullptr;
    detail::recv_waiter<T>* to = nullptr;
    detail::recv_waiter<T>* to_tail = nullptr;
    detail::send_waiter<T>* told = nullptr;  // accepted into the buffer, or reservations
    detail::send_waiter<T>* told_tail = nullptr;

    void hand(detail::send_waiter<T>* s, detail::recv_waiter<T>* r) noexcept {
      s->next = nullptr;
      r->next = nullptr;
      (handed_tail ? handed_tail->next : handed) = s;
      handed_tail = s;
      if (to_tail)
        to_tail->next = r;
      else
        to = r;
      to_tail = r;
    }
    void tell(detail::send_waiter<T>* s) noexcept {
      s->next = nullptr;
      (told_tail ? told_tail->next : told) = s;
      told_tail = s;
    }
    void run() noexcept {
      // A handed node is alive until its value is out: it is the caller's own (its reply,
      // which could free it, needs the request delivered first) or it waits to be told.
      for (auto* s = handed; s;) {
        auto* next_s = s->next;
        auto* r = to;
        to = detail::next_of(r);
        std::optional<T> v(std::move(*s->value));
        s->value.reset();
        if (s->on_accepted) s->on_accepted(s);
        if (on_deliver) on_deliver(*v);
        r->ready(r, {}, std::move(v));
        s = next_s;
      }
      for (auto* s = told; s;) {
        auto* next_s = s->next;
        s->on_accepted(s);
        s = next_s;
      }
    }
  };

  void refill_locked(refill& out) {
    out.on_deliver = on_deliver_;
    while (auto* s = slots_.grant(items_.size())) {
      if (!s->reservation) {
        if (auto* r = receivers_.pop_front()) {
          ++accepted_;
          out.hand(s, r);  // the value skips the buffer: the slot stays free for the next
          continue;
        }
        if (!place_locked(s)) return;  // out of memory: it waits on, first in line
      }
      if (s->on_accepted) out.tell(s);  // a reservation granted, or a value placed
    }
  }

  // Moves a granted sender's value into the ring. Out of memory, the sender goes back first
  // in line and waits for the next freed slot (nothing is lost; the callers of grant() run
  // where an exception cannot go).
  bool place_locked(detail::send_waiter<T>* s) noexcept {
    try {
      push_locked(std::move(*s->value));
    } catch (...) {
      slots_.regrant_later(s);
      return false;
    }
    s->value.reset();
    return true;
  }

  // A slot freed while no receiver can be waiting (the buffer was not empty): the oldest
  // waiting sender's value (or reservation) takes it. Returns the node to notify after
  // unlocking, if it wants to be told.
  detail::send_waiter<T>* accept_one_locked() {
    auto* s = slots_.grant(items_.size());
    if (!s) return nullptr;
    if (!s->reservation && !place_locked(s)) return nullptr;
    return s->on_accepted ? s : nullptr;
  }

  // Whether the channel still exists, for completions already on their way (lock order:
  // life::m, then m_). Made on the first cancellable receive: most channels never need it.
  struct life {
    detail::small_mutex m;
    bool alive = true;
  };
  std::shared_ptr<life> life_;
  detail::inbox* inbox_ = nullptr;  // of the channel's io_context, if its executor is plain

  // The lock and the flags in one word's room (an idle service holds a channel).
  mutable detail::small_mutex m_;
  bool closed_ = false;
  bool send_closed_ = false;
  bool no_senders_ = false;
  bool track_work_ = true;
  deliver_fn on_deliver_ = nullptr;
  std::uint64_t accepted_ = 0;  // values that entered the buffer or went straight to a receiver
  executor_type ex_;
  detail::ring<T> items_;        // the values (storage grows on demand: an idle queue has none)
  detail::slot_ledger<T> slots_;  // who holds a slot, who waits for one
  std::shared_ptr<const executor_type> consumer_;
  bool (*consumer_running_)(const executor_type&) = nullptr;
  boost::system::error_code receive_error_;
  detail::fifo<detail::recv_waiter<T>> receivers_;
};

}  // namespace tenorite
