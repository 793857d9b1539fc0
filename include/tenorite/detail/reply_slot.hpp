// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/reply_slot.hpp — the reply slot: one value, one waiter.
//
// Invariants:
// - a reply_slot is completed exactly once: by a response, by a service error, or by the
//   library when the request is handed back (send failure) or its responder is dropped
//   (fetch failure);
// - the waiter is known before the request is sent (it is the call itself), so completion
//   never races a waiter's arrival: whoever completes the slot runs the waiter's
//   continuation, and the slot is not touched afterwards;
// - the slot is owned by the call's operation state, so a call allocates nothing beyond its
//   operation (and that comes from the handler's allocator, recycled by Asio's coroutines).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <tenorite/detail/cpu_relax.hpp>
#include <utility>

namespace tenorite::detail {

/// A worker waiting for its caller to give up (responder::async_wait_closed).
struct closed_watch {
  using fire_fn = void (*)(closed_watch*) noexcept;
  explicit closed_watch(fire_fn f) noexcept : fire(f) {}
  fire_fn fire;
};

/// What registering a closed_watch on a reply slot did.
enum class watch_status {
  registered,    ///< it will fire when the waiter gives up (or the reply is sent)
  already_gone,  ///< the waiter has gone already: not registered
  never,         ///< this waiter cannot give up: not registered, it will never fire
  busy,          ///< another wait is registered on this call: not registered
};

/// The receiving half of a one-shot reply: whoever completes it owns the continuation.
template <class R>
class reply_slot {
 public:
  using value_type = R;
  /// Returns false when the waiter had already gone (the value was dropped).
  using complete_fn = bool (*)(reply_slot*, R&&) noexcept;

  explicit reply_slot(complete_fn fn) noexcept : complete_(fn) {}
  reply_slot(const reply_slot&) = delete;
  reply_slot& operator=(const reply_slot&) = delete;

  /// Delivers the value. The slot (and its owner) may be gone when this returns.
  bool complete(R&& value) noexcept { return complete_(this, std::move(value)); }

  /// True once the waiter gave up (deadline, terminal cancellation): a reply is dropped.
  bool waiter_gone() const noexcept { return waiter_gone_.load(std::memory_order_acquire); }

  /// Registers `w` to fire when the waiter gives up.
  watch_status watch(closed_watch* w) noexcept {
    return watch_ ? watch_(this, w, true) : watch_status::never;
  }
  /// The queue's close() took the undelivered request to hand it back (set and read under
  /// the queue's lock): a give-up must then leave the completion to that return.
  void mark_returning() noexcept { returning_.store(true, std::memory_order_relaxed); }
  bool returning() const noexcept { return returning_.load(std::memory_order_relaxed); }

  /// When a worker took the request (service_metrics::clock nanoseconds; 0: not yet, or not
  /// measured).
  /// Stamped by the queue as it hands the request out, read by whoever completes the slot.
  void stamp_delivered(std::int64_t at) noexcept { delivered_.store(at, std::memory_order_relaxed); }
  std::int64_t delivered() const noexcept { return delivered_.load(std::memory_order_relaxed); }

  /// Unregisters `w`; true when it was still registered (it will not fire).
  bool unwatch(closed_watch* w) noexcept {
    return watch_ && watch_(this, w, false) == watch_status::registered;
  }

 protected:
  ~reply_slot() = default;
  void mark_waiter_gone() noexcept { waiter_gone_.store(true, std::memory_order_release); }
  using watch_fn = watch_status (*)(reply_slot*, closed_watch*, bool add) noexcept;
  void set_watch(watch_fn fn) noexcept { watch_ = fn; }

 private:
  complete_fn complete_;
  watch_fn watch_ = nullptr;  // null: the waiter can never give up
  std::atomic<bool> waiter_gone_{false};
  std::atomic<bool> returning_{false};  // the lock orders it; atomic for the late reader
  std::atomic<std::int64_t> delivered_{0};
};

/// A one-time wake-up for a plain thread: set() once from any thread, wait() once.
///
/// Waiting spins briefly, then sleeps on a futex (std::atomic::wait). The setter's last
/// touch of the flag is the store of `done`, so the waiter may destroy it right after
/// wait() returns (the flag lives on the waiter's stack).
class wake_flag {
 public:
  void wait() noexcept {
    for (int i = 0; i < spin_limit; ++i) {
      if (state_.load(std::memory_order_acquire) == done) return;
      cpu_relax();
    }
    for (;;) {
      std::uint32_t s = state_.load(std::memory_order_acquire);
      if (s == done) return;
      if (s == empty) {
        state_.wait(empty, std::memory_order_acquire);
      } else {
        cpu_relax();  // between `notified` and `done`: a few instructions away
      }
    }
  }

  void set() noexcept {
    state_.store(notified, std::memory_order_release);
    state_.notify_one();
    state_.store(done, std::memory_order_release);
  }

 private:
  static constexpr std::uint32_t empty = 0, notified = 1, done = 2;
  static constexpr int spin_limit = 2000;

  std::atomic<std::uint32_t> state_{empty};
};

/// A reply slot that a plain thread blocks on (send_request_blocking).
template <class R>
class blocking_reply final : public reply_slot<R> {
 public:
  blocking_reply() noexcept : reply_slot<R>(&on_complete) {}

  R wait() {
    flag_.wait();
    return std::move(*value_);
  }

 private:
  static bool on_complete(reply_slot<R>* base, R&& value) noexcept {
    auto* self = static_cast<blocking_reply*>(base);
    self->value_.emplace(std::move(value));
    self->flag_.set();
    return true;
  }

  std::optional<R> value_;
  wake_flag flag_;
};

}  // namespace tenorite::detail
