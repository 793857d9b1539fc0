// SPDX-License-Identifier: BSL-1.0
// tenorite/nats/detail/subscriber.hpp — one nats.c subscription delivering its messages to
// Derived::handle(natsMsg*), with the lifecycle every served subscription needs (an
// endpoint's, a service's discovery subjects').
//
// Two modes, chosen by the connection:
// - nats.c's threads: an asynchronous subscription; nats.c calls handle() on its delivery
//   thread. The state keeps itself alive (self_keep) until nats.c's last callback
//   (on_complete) has returned. stop() waits for that callback (at most 5 s) and hands the
//   state's own reference to the owner, who releases it on its thread: released on the
//   delivery thread it could end a local service there while the owner destroys that
//   service's execution context.
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

  /// Subscribes (queue group empty: none). Throws nats_error when nats.c refuses.
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
      self_keep = this->shared_from_this();
      loop = l;
      drainer = loop->add_drainer([w = this->weak_from_this()] {
        if (auto me = w.lock()) me->drain_sync();
      });
      return;
    }
    self_keep = this->shared_from_this();
    natsStatus s = queue_group.empty()
                       ? natsConnection_Subscribe(&sub, conn.native(), subject.c_str(), &on_msg,
                                                  &self)
                       : natsConnection_QueueSubscribe(&sub, conn.native(), subject.c_str(),
                                                       queue_group.c_str(), &on_msg, &self);
    if (s != NATS_OK) {
      self_keep.reset();
      throw nats_error("subscribe to " + subject, s);
    }
    (void)natsSubscription_SetPendingLimits(sub, pending_msgs, pending_bytes);
    if (natsSubscription_SetOnCompleteCB(sub, &on_complete, &self) != NATS_OK) {
      // Already closed (the connection went away): no callback will come.
      std::lock_guard lk(m);
      self_keep.reset();
    }
  }

  /// Stops taking messages and lets those received be handled; true when the subscription
  /// ended by `deadline` (blocks the calling thread).
  bool drain_subscription(std::chrono::steady_clock::time_point deadline) {
    if (loop) loop->refuse_blocking_wait("drain()");
    if (natsSubscription_Drain(sub) != NATS_OK) {
      (void)natsSubscription_Unsubscribe(sub);
      return false;
    }
    if (loop) loop->poke();  // what is queued is taken by the loop's drainer
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return natsSubscription_WaitForDrainCompletion(
               sub, static_cast<int64_t>(left.count() > 0 ? left.count() : 1)) == NATS_OK;
  }

  /// Stops taking messages; those nats.c already holds are still handled (a drain, bounded
  /// by 5 s; skipped on a thread of the loop's context, which the drain would wait for).
  /// Idempotent. Returns the state's own reference for the owner to release on its thread,
  /// after its own (see the top of this header).
  std::shared_ptr<Derived> stop_subscription() noexcept {
    std::shared_ptr<Derived> keep;
    if (stopped_) return keep;
    stopped_ = true;
    if (loop) {
      if (!loop->on_loop_context() && natsSubscription_Drain(sub) == NATS_OK) {
        loop->poke();  // the drainer takes what is queued
        (void)natsSubscription_WaitForDrainCompletion(sub, 5000);
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
    {
      // Before the unsubscription: nats.c's last callback may come at once and must then
      // leave the state to this thread.
      std::lock_guard lk(m);
      stopping = true;
    }
    // A drain: nats.c delivers what it holds, then calls on_complete.
    if (natsSubscription_Drain(sub) != NATS_OK) (void)natsSubscription_Unsubscribe(sub);
    {
      std::unique_lock lk(m);
      if (cv.wait_for(lk, std::chrono::seconds(5), [&] { return sub_done; })) {
        keep = std::move(self_keep);
      } else {
        stopping = false;  // nats.c never called back: its callback releases it later
      }
    }
    natsSubscription_Destroy(sub);
    return keep;
  }

 protected:
  ~subscriber() = default;

  std::mutex m;  // guards sub_done, stopping, self_keep's hand-over, and Derived's own fields
  std::condition_variable cv;

 private:
  /// Takes every message waiting on the synchronous subscription (on the event loop).
  void drain_sync() {
    while (!sync_stopped.load(std::memory_order_acquire)) {
      natsMsg* msg = nullptr;
      const natsStatus s = natsSubscription_NextMsg(&msg, sub, 0);
      if (s == NATS_OK) {
        static_cast<Derived&>(*this).handle(msg);
      } else if (s != NATS_SLOW_CONSUMER) {  // slow consumer: told once, messages follow
        return;                               // none waiting, or the subscription has ended
      }
    }
  }

  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    static_cast<Derived*>(closure)->handle(msg);
  }

  // nats.c's last callback. When stop_subscription() is waiting, the state's own reference
  // goes to it; nothing of `self` is touched after the unlock.
  static void on_complete(void* closure) {
    auto* self = static_cast<Derived*>(closure);
    std::shared_ptr<Derived> keep;
    {
      std::lock_guard lk(self->m);
      self->sub_done = true;
      if (!self->stopping) keep = std::move(self->self_keep);
      self->cv.notify_all();
    }
    // `keep` may be the last reference (nobody stopped us): released here, after the lock.
  }

  std::shared_ptr<Derived> self_keep;  // guarded by m once subscribed
  std::shared_ptr<event_loop> loop;
  std::uint64_t drainer = 0;
  std::atomic<bool> sync_stopped{false};
  bool sub_done = false;  // guarded by m
  bool stopping = false;  // guarded by m
  bool stopped_ = false;  // the owner's
};

}  // namespace tenorite::nats::detail
