// SPDX-License-Identifier: BSL-1.0
// tenorite/runtime.hpp — a thread pool running an io_context: where services live by default.
//
// Invariants:
// - a runtime's threads never die from an exception: whatever escapes a handler goes to the
//   unhandled-exception hook and the thread goes back to running handlers;
// - blocking calls (block_on, send_request_blocking, join_handle::wait) made on a thread of
//   any tenorite runtime throw std::logic_error instead of deadlocking that thread;
// - a thread with nothing to run looks again for TENORITE_SPIN_MICROSECONDS (default 20)
//   before it sleeps in the scheduler; a stopped runtime's threads return within that time;
// - destroying a runtime ends its services as if aborted (see service.hpp); it never joins
//   the thread it is destroyed on (exit() called from a runtime thread).
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tenorite/detail/cpu_relax.hpp>
#include <tenorite/detail/operation.hpp>
#include <tenorite/detail/reply_slot.hpp>
#include <tenorite/detail/virtual_time.hpp>
#include <tenorite/unhandled_exception.hpp>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace tenorite {

class runtime;

namespace detail {

inline const runtime*& this_thread_runtime() noexcept {
  thread_local const runtime* rt = nullptr;
  return rt;
}

/// Throws std::logic_error when called on a thread of a tenorite runtime, or on a thread that
/// owns or runs a testing::simulation (nothing would run the simulation while it waits).
inline void check_blocking_allowed(const char* what) {
  if (this_thread_runtime() != nullptr)
    throw std::logic_error(std::string(what) +
                           ": blocking call made on a thread of a tenorite runtime; it would "
                           "stall that runtime and can deadlock. Use the awaitable form "
                           "(co_await) or a completion token instead, or call from a plain "
                           "thread");
  check_not_simulation(what);
}
/// The same for `cls::what` (the name is only built when the call is refused).
inline void check_blocking_allowed(const char* cls, const char* what) {
  if (this_thread_runtime() != nullptr || on_simulation_thread())
    check_blocking_allowed((std::string(cls) + "::" + what).c_str());
}

/// Throws std::logic_error for a start on the default runtime from a thread that owns or runs
/// a testing::simulation: the service would run on real threads, outside the simulation.
inline void check_default_runtime_allowed(const char* what) {
  if (on_simulation_thread())
    throw std::logic_error(std::string("tenorite::service::") + what +
                           ": started on the default runtime from a thread that owns or runs a "
                           "tenorite::testing::simulation; the service would run on real "
                           "threads, outside the simulation. Start it on the simulation: "
                           "start(sim, ...)");
}

}  // namespace detail

class runtime {
 public:
  using executor_type = boost::asio::io_context::executor_type;

  /// Starts `threads` threads. Throws std::invalid_argument when threads is 0.
  explicit runtime(std::size_t threads)
      : ioc_(std::make_unique<boost::asio::io_context>(static_cast<int>(checked(threads)))),
        work_(boost::asio::make_work_guard(*ioc_)) {
    threads_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run_thread(); });
  }

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// Stops the threads, then ends every service and pending operation of this runtime (as
  /// if aborted): queued requests go back to their callers, joins yield is_cancelled().
  ~runtime() {
    work_.reset();
    ioc_->stop();
    bool on_own_thread = false;
    for (auto& t : threads_) {
      if (t.get_id() == std::this_thread::get_id()) {
        on_own_thread = true;
        t.detach();
      } else {
        t.join();
      }
    }
    if (on_own_thread) {
      // This thread is still inside io_context::run(): destroying the context under it
      // would be undefined. The process is exiting (the only way to get here), so leave it.
      (void)ioc_.release();
      return;
    }
    // Calls that complete while the context is destroyed complete here, at once (their
    // handlers would otherwise be queued to a scheduler that only destroys them).
    detail::dying_context_scope dying(ioc_.get());
    ioc_.reset();
  }

  executor_type executor() noexcept { return ioc_->get_executor(); }
  std::size_t thread_count() const noexcept { return threads_.size(); }

  /// True when the calling thread is one of this runtime's threads.
  bool running_in_this_thread() const noexcept { return detail::this_thread_runtime() == this; }

  /// Runs an awaitable on this runtime and blocks the calling (non-runtime) thread until it
  /// completes; returns its value or rethrows its exception. If the runtime is destroyed
  /// first, throws std::system_error (operation_canceled).
  template <class T, class Executor>
  T block_on(boost::asio::awaitable<T, Executor> aw) {
    detail::check_blocking_allowed("tenorite::runtime::block_on");
    block_state<T> st;
    boost::asio::co_spawn(*ioc_, run_and_signal<T, Executor>(std::move(aw), &st),
                          boost::asio::detached);
    st.flag.wait();
    if (st.error) std::rethrow_exception(st.error);
    if constexpr (!std::is_void_v<T>) return std::move(*st.value);
  }

  /// The default runtime, created on first use with one thread per core; shut down at exit.
  static runtime& global() {
    static runtime rt(std::max(1u, std::thread::hardware_concurrency()));
    return rt;
  }

 private:
// How long an idle runtime thread keeps looking for work before it sleeps (0: never).
#ifndef TENORITE_SPIN_MICROSECONDS
#define TENORITE_SPIN_MICROSECONDS 20
#endif
  static constexpr std::chrono::microseconds spin_time{TENORITE_SPIN_MICROSECONDS};
// How many cpu_relax() pauses a looking thread makes between two looks at the queue.
#ifndef TENORITE_SPIN_PAUSES
#define TENORITE_SPIN_PAUSES 8
#endif
  static constexpr int spin_pauses = TENORITE_SPIN_PAUSES;

  static std::size_t checked(std::size_t threads) {
    if (threads == 0)
      throw std::invalid_argument(
          "tenorite::runtime: threads must be at least 1 (use e.g. "
          "std::thread::hardware_concurrency())");
    return threads;
  }

  void run_thread() {
    detail::this_thread_runtime() = this;
    for (;;) {
      try {
        run_spinning();
        return;
      } catch (...) {
        detail::report_unhandled(std::current_exception());
      }
    }
  }

  // Runs handlers; when none is ready, looks again for a short while before sleeping in the
  // scheduler. A thread asleep there is woken by the next post from another thread, and on
  // small VMs that wake-up (a futex and a context switch) costs more than many calls: under
  // load, the threads stay awake and hand work to each other without the kernel.
  void run_spinning() {
    auto& ioc = *ioc_;
    if constexpr (spin_time.count() == 0) {
      ioc.run();
      return;
    }
    for (;;) {
      if (ioc.poll() != 0) continue;
      bool found = false;
      const auto until = std::chrono::steady_clock::now() + spin_time;
      do {
        for (int i = 0; i < spin_pauses; ++i) detail::cpu_relax();
        found = ioc.poll_one() != 0;
      } while (!found && std::chrono::steady_clock::now() < until);
      if (found) continue;
      if (ioc.stopped() || ioc.run_one() == 0) return;
    }
  }

  template <class T>
  struct block_state {
    std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> value{};
    std::exception_ptr error;
    detail::wake_flag flag;
  };

  // Signals the blocked thread even when the coroutine frame is destroyed unfinished (its
  // runtime died): the flag is always set exactly once.
  template <class T>
  struct signal_on_exit {
    block_state<T>* st;
    bool done = false;
    ~signal_on_exit() {
      if (!done)
        st->error = std::make_exception_ptr(
            std::system_error(std::make_error_code(std::errc::operation_canceled),
                              "tenorite::runtime::block_on: the runtime was destroyed before "
                              "the awaitable completed"));
      st->flag.set();
    }
  };

  template <class T, class Executor>
  static boost::asio::awaitable<void, Executor> run_and_signal(
      boost::asio::awaitable<T, Executor> aw, block_state<T>* st) {
    signal_on_exit<T> guard{st};
    try {
      if constexpr (std::is_void_v<T>) {
        co_await std::move(aw);
      } else {
        st->value.emplace(co_await std::move(aw));
      }
    } catch (...) {
      st->error = std::current_exception();
    }
    guard.done = true;
  }

  std::unique_ptr<boost::asio::io_context> ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

}  // namespace tenorite
