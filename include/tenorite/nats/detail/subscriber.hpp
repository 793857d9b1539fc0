// SPDX-License-Identifier: BSL-1.0
// tenorite/nats/detail/subscriber.hpp — one nats.c subscription delivering its messages to
// Derived::handle(natsMsg*), with the lifecycle every served subscription needs (an
// endpoint's, a service's discovery subjects').
//
// Two modes, chosen by the connection:
// - nats.c's threads: an asynchronous subscription; nats.c calls handle() on its delivery
//   thread. The state keeps itself alive (self_keep) until the owner stops it. stop() waits
//   for nats.c's last callback (on_complete) and hands the state's own reference to the
//   owner, who releases it on its thread: released on the delivery thread it could end a
//   local service there while the owner destroys that service's execution context. Only when
//   nats.c never calls back in time is the reference left to that callback.
// - an executor (connection_options::executor): a synchronous subscription drained on the
//   connection's loop after each read event (no nats.c thread). Once the drainer is removed
//   nothing of nats.c calls us.
// Invariants: handle() never runs after stop() returned; nothing of the state is touched by
// nats.c's last callback after it released its lock.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <tenorite/nats/connection.hpp>

namespace tenorite::nats::detail {

template <class Derived>
class subscriber : public std::enable_shared_from_this<Derived> {
 public:
  explicit subscriber(connection c) : conn(std::move(c)) {}
  subscriber(const subscriber&) = delete;
  subscriber& operator=(const subscriber&) = delete;

  connection conn;
  natsSubscription* sub = nullptr;

  /// How long a stop waits for nats.c to deliver what it holds.
  static constexpr int drain_ms = 5000;

  /// Subscribes (queue group empty: none). Throws nats_error when nats.c refuses, or
  /// std::bad_alloc; either way nothing is left subscribed.
  void subscribe(const std::string& subject, const std::string& queue_group, int pending_msgs,
                 int pending_bytes) {
    Derived& self = static_cast<Derived&>(*this);
    if (const auto& l = conn.loop_internal()) {
      natsStatus s = queue_group.empty()
                         ? natsConnection_SubscribeSync(&sub, conn.native(), subject.c_str())
                         : natsConnection_QueueSubscribeSync(&sub, conn.native(), subject.c_str(),
                                                             queue_group.c_str());
      if (s != NATS_OK) throw nats_error("subscribe to " + subject, s);
      (void)natsSubscription_SetPendingLimits(sub, pending_msgs, pending_bytes);
      try {
        loop = l;
        drainer = loop->add_drainer([w = this->weak_from_this()] {
          if (auto me = w.lock()) me->drain_sync();
        });
      } catch (...) {
        (void)natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
        sub = nullptr;
        loop.reset();
        throw;
      }
      self_keep = this->shared_from_this();
      return;
    }
    // nats.c's callbacks get a box of their own: a delivery locks the weak reference (never
    // the last one: the owner takes its reference only after on_complete, which follows the
    // last delivery), on_complete uses the raw one (alive: self_keep) and frees the box.
    auto* b = new callback_box{this->weak_from_this(), &self};
    self_keep = this->shared_from_this();
    natsStatus s = queue_group.empty()
                       ? natsConnection_Subscribe(&sub, conn.native(), subject.c_str(), &on_msg,
                                                  b)
                       : natsConnection_QueueSubscribe(&sub, conn.native(), subject.c_str(),
                                                       queue_group.c_str(), &on_msg, b);
    if (s != NATS_OK) {
      delete b;
      self_keep.reset();
      throw nats_error("subscribe to " + subject, s);
    }
    (void)natsSubscription_SetPendingLimits(sub, pending_msgs, pending_bytes);
    if (natsSubscription_SetOnCompleteCB(sub, &on_complete, b) != NATS_OK) {
      // Already closed (the connection went away): no on_complete will come, but a delivery
      // may still be under way, holding the box: the box is left to it (a few bytes, on this
      // path only), and the delivery's locked reference keeps the state.
      std::lock_guard lk(m);
      sub_done = true;
    }
  }

  /// Stops taking messages and lets those received be handled: when this returns true every
  /// message the subscription took has been handed to Derived::handle and returned from it.
  /// False when that did not happen by `deadline` (blocks the calling thread).
  bool drain_subscription(std::chrono::steady_clock::time_point deadline) {
    if (loop) loop->refuse_blocking_wait("drain()");
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const int64_t ms = left.count() > 0 ? left.count() : 1;
    if (natsSubscription_DrainTimeout(sub, ms) != NATS_OK) {
      (void)natsSubscription_Unsubscribe(sub);
      return false;
    }
    if (loop) {
      loop->poke();  // what is queued is taken by the loop's drainer
      const bool drained = natsSubscription_WaitForDrainCompletion(sub, ms) == NATS_OK;
      // nats.c counts the drain complete once the last message is taken, before it is
      // handled: removing the drainer waits for that call to return.
      sync_stopped.store(true, std::memory_order_release);
      loop->remove_drainer(drainer);
      return drained;
    }
    // on_complete comes after the last message callback returned; the drain's status says
    // whether every message was delivered (not when the connection closed meanwhile).
    std::unique_lock lk(m);
    if (!cv.wait_until(lk, deadline, [&] { return sub_done; })) return false;
    lk.unlock();
    return natsSubscription_DrainCompletionStatus(sub) == NATS_OK;
  }

  /// Stops taking messages; those nats.c already holds are still handled (a drain, bounded
  /// by drain_ms; skipped on a thread of the loop's context, which the drain would wait for,
  /// and while the connection is reconnecting, when no drain can complete). Idempotent.
  /// Returns the state's own reference for the owner to release on its thread, after its
  /// own (see the top of this header).
  std::shared_ptr<Derived> stop_subscription() noexcept {
    std::shared_ptr<Derived> keep;
    if (stopped_) return keep;
    stopped_ = true;
    const bool can_drain = !natsConnection_IsReconnecting(conn.native()) &&
                           !natsConnection_IsClosed(conn.native());
    if (loop) {
      if (can_drain && !loop->on_loop_context() &&
          natsSubscription_DrainTimeout(sub, drain_ms) == NATS_OK) {
        loop->poke();  // the drainer takes what is queued
        (void)natsSubscription_WaitForDrainCompletion(sub, drain_ms);
      }
      sync_stopped.store(true, std::memory_order_release);
      loop->remove_drainer(drainer);
      (void)natsSubscription_Unsubscribe(sub);
      natsSubscription_Destroy(sub);
      std::lock_guard lk(m);
      sub_done = true;
      keep = std::move(self_keep);
      return keep;
    }
    // A drain: nats.c delivers what it holds, then calls on_complete; at its timeout nats.c
    // ends the subscription itself, so on_complete follows either way.
    if (!can_drain || natsSubscription_DrainTimeout(sub, drain_ms) != NATS_OK)
      (void)natsSubscription_Unsubscribe(sub);
    std::unique_lock lk(m);
    if (!cv.wait_for(lk, std::chrono::milliseconds(drain_ms + 1000), [&] { return sub_done; })) {
      lk.unlock();
      (void)natsSubscription_Unsubscribe(sub);  // the drain is stuck: end it now
      lk.lock();
      (void)cv.wait_for(lk, std::chrono::seconds(1), [&] { return sub_done; });
    }
    if (sub_done) {
      keep = std::move(self_keep);
    } else {
      abandoned = true;  // nats.c never called back: its callback releases the state later
    }
    lk.unlock();
    natsSubscription_Destroy(sub);
    return keep;
  }

 protected:
  ~subscriber() = default;

  std::mutex m;  // guards sub_done, abandoned, self_keep's hand-over, and Derived's own fields
  std::condition_variable cv;

 private:
  /// Takes every message waiting on the synchronous subscription (on the event loop).
  void drain_sync() {
    while (!sync_stopped.load(std::memory_order_acquire)) {
      natsMsg* msg = nullptr;
      const natsStatus s = natsSubscription_NextMsg(&msg, sub, 0);
      if (s == NATS_OK) {
        deliver(msg);
      } else if (s != NATS_SLOW_CONSUMER && s != NATS_NO_RESPONDERS) {
        // slow consumer: told once, messages follow; no responders: a status message that
        // nats.c consumed (anyone may publish one here), the rest follow
        return;  // none waiting, or the subscription has ended
      }
    }
  }

  // Derived::handle must not throw (it answers failures itself); an exception escaping it
  // would unwind through nats.c's C frames or stop the event loop's reading for good.
  void deliver(natsMsg* msg) noexcept {
    try {
      static_cast<Derived&>(*this).handle(msg);
    } catch (...) {  // out of memory while handling: that message is lost, the next come
    }
  }

  struct callback_box {
    std::weak_ptr<Derived> weak;
    Derived* raw;
  };

  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    if (auto self = static_cast<callback_box*>(closure)->weak.lock()) {
      self->deliver(msg);
    } else {
      natsMsg_Destroy(msg);
    }
  }

  // nats.c's last callback. The owner takes the state's own reference (stop_subscription)
  // unless it gave up waiting for this callback: then it is released here. Nothing of `self`
  // is touched after the unlock.
  static void on_complete(void* closure) {
    auto* box = static_cast<callback_box*>(closure);
    auto* self = box->raw;
    delete box;  // no callback follows this one
    std::shared_ptr<Derived> keep;
    {
      std::lock_guard lk(self->m);
      self->sub_done = true;
      if (self->abandoned) keep = std::move(self->self_keep);
      self->cv.notify_all();
    }
    // `keep` may be the last reference: released here, after the lock.
  }

  std::shared_ptr<Derived> self_keep;  // guarded by m once subscribed
  std::shared_ptr<event_loop> loop;
  std::uint64_t drainer = 0;
  std::atomic<bool> sync_stopped{false};
  bool sub_done = false;   // guarded by m
  bool abandoned = false;  // guarded by m
  bool stopped_ = false;   // the owner's
};

}  // namespace tenorite::nats::detail
