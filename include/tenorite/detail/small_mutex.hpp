// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/small_mutex.hpp — the queue's lock: one atomic word, one atomic operation to
// lock and one to unlock when nobody else wants it.
//
// States: 0 free, 1 held, 2 held and someone may sleep on it (Drepper, "Futexes Are Tricky",
// mutex 2). A contended lock spins briefly (the queue's critical sections are a few dozen
// instructions), then sleeps in std::atomic::wait (a futex on Linux). An unlock that finds
// state 2 wakes one sleeper, which takes the lock in state 2 (it cannot know whether others
// sleep too), so no wake-up is lost.
//
// Why not std::mutex: glibc's pthread_mutex_lock/unlock cost about 60 instructions per pair
// through their type dispatch, and the call path takes the queue's lock twice per call.
//
// Invariants: lock() returns with the state 1 or 2, acquired; unlock() is called only by the
// holder and is the release of everything done under the lock. Like std::mutex, the mutex
// may be destroyed once unlocked, even while an unlocking thread is still in notify_one (the
// wake is then a futex call on an address nobody waits on: harmless, as with glibc).
#pragma once

#include <atomic>
#include <cstdint>
#include <tenorite/detail/config.hpp>
#include <tenorite/detail/cpu_relax.hpp>

namespace tenorite::detail {

class small_mutex {
 public:
  small_mutex() = default;
  small_mutex(const small_mutex&) = delete;
  small_mutex& operator=(const small_mutex&) = delete;

  void lock() noexcept {
    std::uint32_t c = 0;
    if (state_.compare_exchange_strong(c, 1, std::memory_order_acquire,
                                       std::memory_order_relaxed))
      return;
    lock_contended(c);
  }

  bool try_lock() noexcept {
    std::uint32_t c = 0;
    return state_.compare_exchange_strong(c, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  void unlock() noexcept {
    if (state_.exchange(0, std::memory_order_release) == 2) state_.notify_one();
  }

 private:
  TENORITE_NOINLINE void lock_contended(std::uint32_t c) noexcept {
    for (int i = 0; i < spin_limit && c != 2; ++i) {
      cpu_relax();
      c = state_.load(std::memory_order_relaxed);
      if (c == 0 && state_.compare_exchange_weak(c, 1, std::memory_order_acquire,
                                                 std::memory_order_relaxed))
        return;
    }
    // From here on we may sleep, so the lock is taken in state 2: its holder must wake.
    c = state_.exchange(2, std::memory_order_acquire);
    while (c != 0) {
      state_.wait(2, std::memory_order_relaxed);
      c = state_.exchange(2, std::memory_order_acquire);
    }
  }

  static constexpr int spin_limit = 100;
  std::atomic<std::uint32_t> state_{0};
};

}  // namespace tenorite::detail
