// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/virtual_time.hpp — where the library reads the time and waits for it: the
// seam that lets a testing::simulation (testing.hpp) run every deadline, back-off and restart
// window in virtual time.
//
// Invariants:
// - an execution context that is a virtual_time_context has one virtual_clock; now_for(ex) of
//   an executor of it is that clock's time, and tenorite::timer waits on it in its queue;
// - every other context reads std::chrono::steady_clock and waits with a steady_timer: with no
//   simulation alive, the cost of the seam is one relaxed load;
// - the _for call forms count their duration in the time of the context whose timer enforces
//   it (timed_deadline, resolved where that timer is made);
// - on a thread that owns or runs a simulation, blocking waits are refused (nothing else would
//   run the simulation);
// - a wait in a clock's queue ends exactly once: fired (success), cancelled (operation_aborted),
//   or destroyed unrun when its simulation is destroyed (as an io_context destroys handlers);
// - the queue is guarded by the clock's mutex, never held while a handler runs or is destroyed.
#pragma once

#include <atomic>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tenorite/detail/config.hpp>
#include <utility>
#include <vector>

namespace tenorite::detail {

/// One pending async_wait of a tenorite::timer on a simulation.
struct virtual_wait {
  const void* owner = nullptr;  // the timer it belongs to (compared, never dereferenced)
  // Ends the wait: posts the handler with `ec` to its executor, or (run == false) destroys
  // it unrun; frees the wait either way.
  void (*finish)(virtual_wait*, boost::system::error_code ec, bool run) noexcept = nullptr;
};

/// A simulation's time and its timer queue. Shared with its timers: a timer that outlives its
/// simulation finds it closed.
class virtual_clock : public std::enable_shared_from_this<virtual_clock> {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;
  using key = std::pair<time_point, std::uint64_t>;

  explicit virtual_clock(time_point start) noexcept : now_(start.time_since_epoch().count()) {}

  time_point now() const noexcept {
    return time_point(duration(now_.load(std::memory_order_acquire)));
  }

  /// The key a wait for `at` will be queued under (made first, so that the wait's
  /// cancellation handler can be installed before the wait can end).
  key make_key(time_point at) {
    std::lock_guard lk(m_);
    return {at, next_seq_++};
  }
  /// Queues `w` under `k` (it ends, in key order, once the time reaches k.first). False when
  /// the simulation is gone (the caller still owns `w`).
  bool add(virtual_wait* w, const key& k) {
    std::lock_guard lk(m_);
    if (closed_) return false;
    queue_.emplace(k, w);
    return true;
  }
  bool closed() const {
    std::lock_guard lk(m_);
    return closed_;
  }

  /// Ends the waits of `owner` with operation_aborted; returns how many.
  std::size_t cancel_owner(const void* owner) noexcept {
    std::vector<virtual_wait*> done;
    {
      std::lock_guard lk(m_);
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (it->second->owner == owner) {
          done.push_back(it->second);
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto* w : done) w->finish(w, boost::asio::error::operation_aborted, true);
    return done.size();
  }

  /// Ends the wait queued under `k`, if it is still queued, with operation_aborted.
  void cancel_one(const key& k) noexcept {
    virtual_wait* w = nullptr;
    {
      std::lock_guard lk(m_);
      auto it = queue_.find(k);
      if (it == queue_.end()) return;
      w = it->second;
      queue_.erase(it);
    }
    w->finish(w, boost::asio::error::operation_aborted, true);
  }

  /// The earliest expiry queued, if any.
  bool next_expiry(time_point& out) const {
    std::lock_guard lk(m_);
    if (queue_.empty()) return false;
    out = queue_.begin()->first.first;
    return true;
  }
  std::size_t pending() const {
    std::lock_guard lk(m_);
    return queue_.size();
  }

  /// Moves the time to `t` (never back) and ends every wait due by then, in expiry order;
  /// returns how many ended. Their handlers are posted, not run.
  std::size_t advance_to(time_point t) {
    std::vector<virtual_wait*> due;
    {
      std::lock_guard lk(m_);
      if (t.time_since_epoch().count() > now_.load(std::memory_order_relaxed))
        now_.store(t.time_since_epoch().count(), std::memory_order_release);
      const auto now = this->now();
      while (!queue_.empty() && queue_.begin()->first.first <= now) {
        due.push_back(queue_.begin()->second);
        queue_.erase(queue_.begin());
      }
    }
    for (auto* w : due) w->finish(w, {}, true);
    return due.size();
  }

  /// The simulation is going: every wait is destroyed unrun, later ones are refused. Waits
  /// queued by the destructors run here are destroyed as well.
  /// Returns how many waits it destroyed.
  std::size_t close() noexcept {
    std::size_t total = 0;
    for (;;) {
      std::vector<virtual_wait*> doomed;
      {
        std::lock_guard lk(m_);
        closed_ = true;
        for (auto& [k, w] : queue_) doomed.push_back(w);
        queue_.clear();
      }
      if (doomed.empty()) return total;
      total += doomed.size();
      for (auto* w : doomed) w->finish(w, {}, false);
    }
  }

 private:
  mutable std::mutex m_;
  std::atomic<duration::rep> now_;
  std::map<key, virtual_wait*> queue_;
  std::uint64_t next_seq_ = 0;
  bool closed_ = false;
};

/// The base of an execution context that keeps virtual time (testing::simulation).
class virtual_time_context : public boost::asio::execution_context {
 public:
  const std::shared_ptr<virtual_clock>& clock() const noexcept { return clock_; }

 protected:
  explicit virtual_time_context(std::chrono::steady_clock::time_point start)
      : clock_(std::make_shared<virtual_clock>(start)) {
    std::lock_guard lk(registry_mutex());
    registry().push_back(this);
    alive().fetch_add(1, std::memory_order_release);
  }
  ~virtual_time_context() {
    std::lock_guard lk(registry_mutex());
    auto& r = registry();
    for (auto it = r.begin(); it != r.end(); ++it)
      if (*it == this) {
        r.erase(it);
        break;
      }
    alive().fetch_sub(1, std::memory_order_release);
  }

 private:
  friend std::shared_ptr<virtual_clock> virtual_clock_of(
      const boost::asio::execution_context&) noexcept;
  TENORITE_SHARED_STATE static std::atomic<int>& alive() noexcept {
    static std::atomic<int> n{0};
    return n;
  }
  TENORITE_SHARED_STATE static std::mutex& registry_mutex() noexcept {
    static std::mutex m;
    return m;
  }
  TENORITE_SHARED_STATE static std::vector<const virtual_time_context*>& registry() noexcept {
    static std::vector<const virtual_time_context*> r;
    return r;
  }

  std::shared_ptr<virtual_clock> clock_;
};

/// The virtual clock of `ctx`, or null for a context in real time. (No RTTI: the contexts
/// that keep virtual time are listed while they live; the share is taken under that list's
/// lock, so a simulation destroyed meanwhile on another thread leaves a readable clock.)
inline std::shared_ptr<virtual_clock> virtual_clock_of(
    const boost::asio::execution_context& ctx) noexcept {
  if (virtual_time_context::alive().load(std::memory_order_acquire) == 0) return nullptr;
  std::lock_guard lk(virtual_time_context::registry_mutex());
  for (const auto* v : virtual_time_context::registry())
    if (static_cast<const boost::asio::execution_context*>(v) == &ctx) return v->clock();
  return nullptr;
}

/// How many simulations this thread owns (constructed here, alive) or runs a handler of now
/// (set by testing.hpp). Read out of line: Clang 16 may keep a thread-local's address across a
/// coroutine's resumption on another thread.
inline int& this_thread_simulations() noexcept {
  thread_local int n = 0;
  return n;
}
TENORITE_NOINLINE inline bool on_simulation_thread() noexcept {
  return this_thread_simulations() != 0;
}

/// Throws std::logic_error on a thread that owns or runs a testing::simulation: a blocking
/// wait there waits for ever, since only this thread could run the simulation.
inline void check_not_simulation(const char* what) {
  if (on_simulation_thread())
    throw std::logic_error(std::string(what) +
                           ": blocking call made on a thread that owns or runs a "
                           "tenorite::testing::simulation; nothing would run the simulation "
                           "while it waits. Use the awaitable form inside the simulation "
                           "(simulation::block_on runs one to its end)");
}

/// The time as `ex`'s context keeps it.
template <class Executor>
std::chrono::steady_clock::time_point now_for(const Executor& ex) noexcept {
  if (auto c = virtual_clock_of(boost::asio::query(ex, boost::asio::execution::context)))
    return c->now();
  return std::chrono::steady_clock::now();
}

/// A call's deadline: a time point (the _until forms), or a duration (the _for forms) counted
/// from the time of the context whose timer enforces it, resolved where that timer is made (so
/// a simulation's handler gets virtual time, a real one real time, whichever thread calls).
class timed_deadline {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;
  timed_deadline(time_point at) noexcept : at_(at) {}  // NOLINT(google-explicit-constructor)
  static timed_deadline after(duration d) noexcept {
    timed_deadline t(time_point{});
    t.after_ = d;
    t.relative_ = true;
    return t;
  }
  template <class Executor>
  time_point resolve(const Executor& ex) const noexcept {
    return relative_ ? now_for(ex) + after_ : at_;
  }

 private:
  time_point at_;
  duration after_{};
  bool relative_ = false;
};

}  // namespace tenorite::detail
