// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/cancellation.hpp — connects a parked operation to Asio per-operation
// cancellation.
//
// Invariants:
// - the slot handler may outlive the operation (the slot belongs to the caller's signal), so
//   it holds a small shared block (cancel_ctl), never the operation itself;
// - the operation clears ctl->op under ctl->m before it completes (settle), so a
//   cancellation that arrives later does nothing, and one in progress finishes first;
// - a call arbitrates without the lock: its slot handler goes to `signal`, which decides
//   on `fsm` (call_fsm.hpp), and ctl->op stays set (the word says whether it may be used);
// - lock order: ctl->m, then the lock of the queue the operation is parked in.
#pragma once

#include <atomic>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <mutex>
#include <tenorite/detail/call_fsm.hpp>
#include <utility>

namespace tenorite::detail {

/// Shared by a cancellable call and the handler in its cancellation slot. The slot handler
/// may outlive the call (the slot belongs to the caller's signal), so it holds this small
/// block, not the call; `op` is cleared once the call completed.
struct cancel_ctl {
  std::atomic<int> refs{2};  // the call + the slot handler
  std::mutex m;
  void* op = nullptr;
  // A cancellation that came after the operation settled (its result already on the way).
  std::atomic<bool> late{false};
  void (*cancel)(void* op, boost::asio::cancellation_type,
                 std::unique_lock<std::mutex>&) noexcept = nullptr;
  // A call's protocol: when set, the slot handler calls it instead of taking `m`.
  void (*signal)(cancel_ctl*, boost::asio::cancellation_type) noexcept = nullptr;
  call_fsm fsm;
  cancel_ctl* next_free = nullptr;

  static cancel_ctl* make();
  void release() noexcept;
};

/// A few released blocks kept per thread: a worker whose coroutine has a cancellation slot
/// arms one for every receive it parks, and that must not cost a heap allocation. The list
/// is a trivially destructible thread_local (usable at any point of a thread's exit); a
/// separate guard frees it when the thread ends and from then on blocks are just deleted.
struct cancel_ctl_cache {
  static constexpr int capacity = 16;
  cancel_ctl* head = nullptr;
  int size = 0;
  bool ended = false;

  static cancel_ctl_cache& local() noexcept {
    static thread_local constinit cancel_ctl_cache cache;
    return cache;
  }
  static cancel_ctl* get() {
    auto& c = local();
    if (!c.head) return new cancel_ctl;
    cancel_ctl* ctl = std::exchange(c.head, c.head->next_free);
    --c.size;
    ctl->refs.store(2, std::memory_order_relaxed);
    ctl->op = nullptr;
    ctl->late.store(false, std::memory_order_relaxed);
    ctl->signal = nullptr;
    ctl->fsm.reset();
    ctl->next_free = nullptr;
    return ctl;
  }
  static void put(cancel_ctl* ctl) noexcept {
    struct guard {
      guard() = default;
      guard(const guard&) = delete;
      guard& operator=(const guard&) = delete;
      ~guard() {
        auto& c = local();
        c.ended = true;
        while (c.head) delete std::exchange(c.head, c.head->next_free);
        c.size = 0;
      }
    };
    static thread_local guard cleanup;
    auto& c = local();
    if (c.ended || c.size == capacity) {
      delete ctl;
      return;
    }
    ctl->next_free = std::exchange(c.head, ctl);
    ++c.size;
  }
};

inline cancel_ctl* cancel_ctl::make() { return cancel_ctl_cache::get(); }
inline void cancel_ctl::release() noexcept {
  if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) cancel_ctl_cache::put(this);
}

struct cancel_slot_handler {
  cancel_ctl* ctl;
  explicit cancel_slot_handler(cancel_ctl* c) noexcept : ctl(c) {}
  cancel_slot_handler(const cancel_slot_handler&) = delete;
  cancel_slot_handler& operator=(const cancel_slot_handler&) = delete;
  ~cancel_slot_handler() { ctl->release(); }
  void operator()(boost::asio::cancellation_type type) noexcept {
    if (ctl->signal) {
      ctl->signal(ctl, type);
      return;
    }
    std::unique_lock lk(ctl->m);
    if (ctl->op) {
      ctl->cancel(ctl->op, type, lk);
    } else {
      ctl->late.store(true, std::memory_order_release);
    }
  }
};

/// Held by a completion on its way to the handler: tells whether a cancellation arrived
/// meanwhile. A handler's cancellation is emitted where the handler runs, so by the time the
/// completion runs there, any cancellation requested before it is visible here.
class late_cancel_watch {
 public:
  /// Takes a reference of its own.
  explicit late_cancel_watch(cancel_ctl* c) noexcept : ctl_(c) {
    if (ctl_) ctl_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  struct adopt_t {};
  static constexpr adopt_t adopt{};
  /// Takes over the operation's reference: the block is then released where the
  /// completion runs, so it goes back to that thread's cache (a receive completed from a
  /// caller's thread would otherwise return it to the caller's cache, and the worker's next
  /// receive would allocate a new one).
  late_cancel_watch(cancel_ctl* c, adopt_t) noexcept : ctl_(c) {}
  late_cancel_watch(late_cancel_watch&& o) noexcept : ctl_(std::exchange(o.ctl_, nullptr)) {}
  late_cancel_watch(const late_cancel_watch&) = delete;
  late_cancel_watch& operator=(const late_cancel_watch&) = delete;
  late_cancel_watch& operator=(late_cancel_watch&&) = delete;
  ~late_cancel_watch() {
    if (ctl_) ctl_->release();
  }
  bool armed() const noexcept { return ctl_ != nullptr; }
  bool requested() const noexcept {
    return ctl_ && ctl_->late.load(std::memory_order_acquire);
  }

 private:
  cancel_ctl* ctl_;
};

/// The operation is completing: from now on its cancellation slot does nothing.
inline void settle(cancel_ctl* ctl) noexcept {
  if (!ctl) return;
  std::lock_guard lk(ctl->m);
  ctl->op = nullptr;
}

}  // namespace tenorite::detail
