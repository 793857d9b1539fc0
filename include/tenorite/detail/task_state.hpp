// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/task_state.hpp — the lifecycle of a service's workers (task_control:
// running -> finished, abort and drain) and the join outcome with its one waiter
// (task_state). Both live in the service's block (detail/worker.hpp).
//
// Invariants: see join_handle.hpp (the outcome is set once and taken at most once; a panic
// nobody can join goes to the unhandled-exception hook once).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <tenorite/detail/cancellation.hpp>
#include <tenorite/detail/operation.hpp>
#include <tenorite/detail/small_mutex.hpp>
#include <tenorite/error.hpp>
#include <tenorite/detail/reply_slot.hpp>
#include <tenorite/runtime.hpp>
#include <tenorite/unhandled_exception.hpp>
#include <utility>
#include <vector>

namespace tenorite::detail {

/// What the join handle needs from a service: fail the worker's receives (abort), or stop
/// taking new calls while the queued ones are served (drain).
struct abortable {
  virtual void abort_receivers() noexcept = 0;
  virtual void drain() noexcept = 0;
  virtual ~abortable() = default;
};

/// The lifecycle of a service's workers (one, or a pool): running -> finished, with an abort
/// flag on the way.
class task_control {
 public:
  /// Where abort() emits a coroutine worker's cancellation: the signal and the worker's
  /// strand, in one block (cancellation slots are not thread-safe: emit where it runs).
  struct worker_signal {
    explicit worker_signal(boost::asio::any_io_executor ex) noexcept : executor(std::move(ex)) {}
    boost::asio::cancellation_signal signal;
    boost::asio::any_io_executor executor;
  };

  /// Called once per service before its workers start: what abort() and drain() reach.
  /// The service lives in the same block as this object (service.hpp's service_block).
  void set_service(abortable* service) noexcept {
    std::lock_guard lk(m_);
    service_ = service;
  }

  /// Called once per coroutine worker before it starts: where to post its cancellation. A
  /// worker without a signal (a handler machine: it waits only on the queue) is ended by
  /// the service's abort_receivers alone.
  void arm(std::shared_ptr<worker_signal> signal) {
    std::lock_guard lk(m_);
    if (!first_) {
      first_ = std::move(signal);
    } else {
      more_.push_back(std::move(signal));
    }
  }

  /// Requests cancellation; returns false when the workers had already finished.
  bool abort() {
    std::vector<std::shared_ptr<worker_signal>> workers;
    abortable* svc = nullptr;
    {
      std::lock_guard lk(m_);
      if (finished_) return false;
      aborted_ = true;
      if (first_) workers.push_back(first_);
      workers.insert(workers.end(), more_.begin(), more_.end());
      svc = service_;
    }
    // The caller holds a share of the block that holds the service: it outlives this call.
    if (svc) svc->abort_receivers();
    for (auto& w : workers) {
      // Emitted without the lock: the emission may resume the worker inline, which may end
      // it (finish() takes the lock). On the strand, the worker cannot end meanwhile.
      boost::asio::post(w->executor, [ctl = self_.lock(), w] {
        if (!ctl->is_finished()) w->signal.emit(boost::asio::cancellation_type::terminal);
      });
    }
    return true;
  }

  bool is_aborted() const {
    std::lock_guard lk(m_);
    return aborted_;
  }

  /// Marks the worker finished; returns whether it had been aborted. Drops the executors so
  /// nothing of the worker's execution context is kept past the worker.
  bool finish() noexcept {
    std::lock_guard lk(m_);
    finished_ = true;
    first_.reset();
    more_.clear();
    service_ = nullptr;
    return aborted_;
  }

  bool is_finished() const {
    std::lock_guard lk(m_);
    return finished_;
  }

  /// Stops new calls; the worker serves what is queued, then its recv() sees the end.
  void drain() {
    abortable* svc = nullptr;
    {
      std::lock_guard lk(m_);
      svc = service_;
    }
    if (svc) svc->drain();
  }

  /// The share abort() gives the emissions it posts (set once, by whoever made the block).
  void set_self(const std::shared_ptr<task_control>& self) noexcept { self_ = self; }

 private:
  mutable small_mutex m_;  // cold paths only: 4 bytes instead of 40 in every service
  bool finished_ = false;
  bool aborted_ = false;
  abortable* service_ = nullptr;
  std::shared_ptr<worker_signal> first_;  // the one worker of a plain service (no allocation)
  std::vector<std::shared_ptr<worker_signal>> more_;  // the others of a pool
  std::weak_ptr<task_control> self_;
};

/// The outcome of a worker and the one party waiting for it.
template <class T>
class task_state final : public task_control {
 public:
  using result_type = std::expected<T, join_error>;

  /// Sets the outcome once, waking the waiting join if any.
  void set_result(result_type r) noexcept {
    reply_slot<result_type>* w = nullptr;
    {
      std::lock_guard lk(m_);
      if (waiter_) {
        w = std::exchange(waiter_, nullptr);
      } else if (joinable_locked()) {
        result_.emplace(std::move(r));
        return;
      }
    }
    if (w) {
      w->complete(std::move(r));
    } else {
      unjoinable(std::move(r));  // nobody will ever join
    }
  }

  /// Hands the outcome to `w` now or when it is set.
  void take(reply_slot<result_type>* w) noexcept {
    std::optional<result_type> r;
    {
      std::lock_guard lk(m_);
      if (!result_) {
        waiter_ = w;
        return;
      }
      r.emplace(std::move(*result_));
      result_.reset();
    }
    w->complete(std::move(*r));
  }

  bool is_taken() const noexcept {
    std::lock_guard lk(m_);
    return taken_;
  }

  /// Claims the outcome for one join; false if it was already claimed.
  bool mark_taken() noexcept {
    std::lock_guard lk(m_);
    return !std::exchange(taken_, true);
  }

  /// A cancelled join gives up its place: the outcome stays for a later join. False if the
  /// outcome is already on its way to `w`.
  bool withdraw(reply_slot<result_type>* w) noexcept {
    std::lock_guard lk(m_);
    if (waiter_ != w) return false;
    waiter_ = nullptr;
    taken_ = false;
    return true;
  }

  /// A join whose handler was cancelled before the outcome reached it gives it back.
  void put_back(result_type r) noexcept {
    {
      std::lock_guard lk(m_);
      taken_ = false;
      if (joinable_locked()) {
        result_.emplace(std::move(r));
        return;
      }
    }
    unjoinable(std::move(r));  // the handle is gone: nobody can join again
  }

  /// The join handle went away without taking the outcome (or after taking it).
  void handle_dropped() noexcept {
    std::optional<result_type> r;
    {
      std::lock_guard lk(m_);
      handle_alive_ = false;
      take_unjoinable_locked(r);
    }
    if (r) unjoinable(std::move(*r));
  }

  /// A lazy join (deferred, an awaitable not awaited yet) exists: it may still take the
  /// outcome, so a panic is not reported as unobserved meanwhile.
  void lazy_join_made() noexcept {
    std::lock_guard lk(m_);
    ++lazy_joins_;
  }
  /// The lazy join started (it has taken its place) or was dropped unlaunched.
  void lazy_join_gone() noexcept {
    std::optional<result_type> r;
    {
      std::lock_guard lk(m_);
      --lazy_joins_;
      take_unjoinable_locked(r);
    }
    if (r) unjoinable(std::move(*r));
  }

 private:
  bool joinable_locked() const noexcept { return handle_alive_ || lazy_joins_ > 0; }

  // A stored outcome that nobody can join any more (no handle, no lazy join) is taken out:
  // it lives in the service's block, and a value holding one of the service's callers
  // would otherwise keep that block alive for ever.
  // (Into `out`: T need not be assignable.)
  void take_unjoinable_locked(std::optional<result_type>& out) noexcept {
    if (joinable_locked() || !result_) return;
    out.emplace(std::move(*result_));
    result_.reset();
  }

  // Run without the lock: a panic goes to the hook, a value is destroyed (a user's
  // destructor).
  static void unjoinable(result_type r) noexcept {
    if (!r && r.error().is_panic()) report_unhandled(r.error().exception());
  }

  mutable small_mutex m_;
  std::size_t lazy_joins_ = 0;
  std::optional<result_type> result_;
  reply_slot<result_type>* waiter_ = nullptr;
  bool handle_alive_ = true;
  bool taken_ = false;
  const boost::asio::any_io_executor* default_executor_;

 public:
  /// Runs join handlers that have no executor of their own (the service's executor, which
  /// lives in the same block as this object).
  explicit task_state(const boost::asio::any_io_executor& ex) noexcept : default_executor_(&ex) {}
  const boost::asio::any_io_executor& default_executor() const noexcept {
    return *default_executor_;
  }
};

}  // namespace tenorite::detail
