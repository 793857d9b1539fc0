// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/worker.hpp — the worker side of a started service: the worker group (the
// last worker to end closes the queue and sets the join outcome), the service's one block
// (queue + join outcome + group, and room for a single handler worker's machine), each
// worker's guard (its end reported exactly once, also when its frame or machine is
// destroyed unrun), where a worker's Config comes from, and the supervised restart loop.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <exception>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <tenorite/caller.hpp>
#include <tenorite/detail/config.hpp>
#include <tenorite/detail/small_mutex.hpp>
#include <tenorite/join_handle.hpp>
#include <tenorite/metrics.hpp>
#include <tenorite/receiver.hpp>
#include <tenorite/request.hpp>
#include <tenorite/runtime.hpp>
#include <tenorite/supervision.hpp>
#include <tenorite/timer.hpp>
#include <type_traits>
#include <utility>
#include <vector>

namespace tenorite::detail {

/// The workers of one service (one, or a pool): the last to end closes the queue (every
/// still-queued request goes back to its caller) and then sets the join outcome — the
/// first failure if any worker failed, else the (last) worker's result. It lives in the
/// service's block beside the state and the task it names.
template <class T, class Req, class Resp, class Err>
class worker_group {
 public:
  using result_type = std::expected<T, join_error>;

  worker_group(service_state<Req, Resp, Err>& st, task_state<T>& ts,
               boost::asio::any_io_executor work, std::size_t workers)
      : st_(st), ts_(ts), work_(std::move(work)), live_(workers) {}

  service_state<Req, Resp, Err>& state() const noexcept { return st_; }
  bool aborted() const { return ts_.is_aborted(); }

  void worker_done(result_type r) noexcept {
    std::optional<result_type> out;
    {
      std::lock_guard lk(m_);
      if (!outcome_ || (*outcome_ && !r)) outcome_.emplace(std::move(r));
      if (--live_ > 0) return;
      out.emplace(std::move(*outcome_));
      outcome_.reset();
    }
// cppcheck-suppress throwInNoexceptFunction ; close_and_return_queued is noexcept (its on_item does not throw)
    st_.close_and_return_queued();
    const bool aborted = ts_.finish();
    if (aborted) out.emplace(std::unexpect, join_error::cancelled());
    work_ = {};
    ts_.set_result(std::move(*out));
  }

 private:
  service_state<Req, Resp, Err>& st_;
  task_state<T>& ts_;
  boost::asio::any_io_executor work_;  // outstanding work on the user's executor
  small_mutex m_;  // taken once per worker end: 4 bytes instead of 40 in every service
  std::size_t live_;
  std::optional<result_type> outcome_;
};

/// A service block with room for the one machine of a single handler worker (handler.hpp):
/// an idle service is then one allocation, and its end frees nothing on the worker's thread.
template <class Block, class Machine>
struct block_with_machine : Block {
  using Block::Block;
  alignas(Machine) unsigned char machine_storage[sizeof(Machine)];
};

/// One allocation for what a started service shares: the queue and its metrics (what
/// callers, receivers and cancellable calls hold), the join outcome (what the join handle
/// holds) and the worker group (what the workers hold). Each holder has an aliasing
/// shared_ptr to its part; the block is freed when the last of them goes. Only the
/// destructions that mean something have their own count: the last caller (caller_core).
template <class T, class Req, class Resp, class Err>
struct service_block {
  service_block(const boost::asio::any_io_executor& ex, std::size_t queue_size,
                std::size_t workers)
      : state(ex, queue_size),
        task(state.chan.get_executor()),
        group(state, task,
              boost::asio::any_io_executor(
                  boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked)),
              workers) {
    task.set_service(&state);
  }
  service_state<Req, Resp, Err> state;
  task_state<T> task;
  worker_group<T, Req, Resp, Err> group;
};

/// Lives in a worker's coroutine frame — as a parameter, so it exists from the frame's
/// creation, before the body ever runs: it reports the worker's end exactly once, also when
/// the frame is destroyed unfinished or never started (its execution context was destroyed).
template <class T, class Req, class Resp, class Err>
class worker_guard {
 public:
  using result_type = std::expected<T, join_error>;
  using group_type = worker_group<T, Req, Resp, Err>;

  explicit worker_guard(std::shared_ptr<group_type> g) : group_(std::move(g)) {}
  worker_guard(worker_guard&& o) noexcept
      : group_(std::move(o.group_)), done_(std::exchange(o.done_, true)) {}
  worker_guard(const worker_guard&) = delete;
  worker_guard& operator=(const worker_guard&) = delete;
  worker_guard& operator=(worker_guard&&) = delete;
  ~worker_guard() {
    if (!done_) finish(result_type(std::unexpect, join_error::cancelled()));
  }

  service_state<Req, Resp, Err>& state() const noexcept { return group_->state(); }
  /// A share of the state for a receiver (it keeps the whole block alive).
  std::shared_ptr<service_state<Req, Resp, Err>> state_ptr() const noexcept {
    return std::shared_ptr<service_state<Req, Resp, Err>>(group_, &group_->state());
  }
  bool aborted() const { return group_->aborted(); }

  void finish(result_type r) noexcept {
    done_ = true;
    group_->worker_done(std::move(r));
  }

 private:
  std::shared_ptr<group_type> group_;
  bool done_ = false;
};

/// Where each (re)started worker gets its Config: the one given (moved in once), or a
/// factory called for every start.
template <class Config>
class config_source {
 public:
  explicit config_source(Config c) : once_(std::move(c)) {}
  explicit config_source(std::function<Config()> f) : factory_(std::move(f)) {}
  /// True when it holds one Config value and no factory (nothing to restart from).
  bool holds_value_only() const noexcept { return once_.has_value() && !factory_; }
  Config next() {
    if (once_) {
      Config c(std::move(*once_));
      once_.reset();
      return c;
    }
    if (!factory_)
      throw std::logic_error(
          "tenorite: a worker needs a Config for a restart, but the service was started with one "
          "move-only Config value; start it with a factory (a callable returning Config)");
    return factory_();
  }

 private:
  std::optional<Config> once_;
  std::function<Config()> factory_;
};

/// A Worker that can run its loop without a coroutine (handler.hpp's handler_loop with plain
/// handle() and hooks): it names `machine<Executor>`, made and spawned by the service.
template <class W>
concept runs_as_machine = requires { requires W::plain; };

TENORITE_NOINLINE inline boost::asio::awaitable<void> wait_before_restart(
    std::chrono::steady_clock::duration delay) {
  auto ex = co_await boost::asio::this_coro::executor;
  auto t = std::make_shared<tenorite::timer>(ex, delay);
  co_await t->async_wait(boost::asio::use_awaitable);
}

/// The completion handler of a worker spawned without supervision: it holds the worker's
/// guard (so a worker whose context is destroyed before it ends still reports, when Asio
/// destroys this handler unrun) and reports how the worker's coroutine ended.
template <class Req, class Resp, class Err>
struct worker_end {
  worker_guard<void, Req, Resp, Err> guard;
  // co_spawn's cancellation slot is this signal's: it must outlive the handler's call (the
  // task_state lets its own reference go when the worker finishes, inside that call).
  std::shared_ptr<boost::asio::cancellation_signal> signal;
  void operator()(const std::exception_ptr& e) {
    using result_type = std::expected<void, join_error>;
    if (e) {
      guard.state().worker_failed(e);
      guard.finish(result_type(std::unexpect, join_error::panic(e)));
    } else {
      guard.finish(result_type());
    }
  }
};

template <class Worker, class Config, class T, class Req, class Resp, class Err>
boost::asio::awaitable<void> run_worker(worker_guard<T, Req, Resp, Err> guard,
                                        config_source<Config> configs, restart_tracker restarts) {
  using result_type = std::expected<T, join_error>;
  for (;;) {
    std::exception_ptr failure;
    try {
      using queue_type = channel<request<Req, Resp, Err>>;
      receiver<request<Req, Resp, Err>> rx(
          std::shared_ptr<queue_type>(guard.state_ptr(), &guard.state().chan));
      auto task = Worker::task(std::move(rx), configs.next());
      if constexpr (std::is_void_v<T>) {
        co_await std::move(task);
        guard.finish(result_type());
      } else {
        T value = co_await std::move(task);
        guard.finish(result_type(std::in_place, std::move(value)));
      }
      co_return;
    } catch (...) {
      failure = std::current_exception();
    }
    // The frame of the failed task is gone: the request it held got fetch_failure.
    auto& st = guard.state();
    if (!guard.aborted()) st.worker_failed(failure);
    std::optional<std::chrono::steady_clock::duration> delay;
    if (!guard.aborted()) {
      // The restart window in the time of the worker's context (virtual in a simulation).
      auto ex = co_await boost::asio::this_coro::executor;
      const auto now = now_for(ex);
      delay = restarts.next(now);
    }
    if (!delay) {
      if (restarts.supervised() && !guard.aborted())
        failure = std::make_exception_ptr(restart_limit_reached(restarts.restarts(), failure));
      guard.finish(result_type(std::unexpect, join_error::panic(failure)));
      co_return;
    }
    st.restarts.fetch_add(1, std::memory_order_relaxed);
    // Restarting before the hook hears of it: what the hook does next sees the status.
    if (delay->count() > 0) st.restarting.fetch_add(1, std::memory_order_relaxed);
    restarts.notify(failure);
    if (delay->count() > 0) {
      bool cancelled = false;
      try {
        co_await wait_before_restart(*delay);
      } catch (...) {  // aborted (or the runtime is going away) during the back-off
        cancelled = true;
      }
      st.restarting.fetch_sub(1, std::memory_order_relaxed);
      if (cancelled) {
        guard.finish(result_type(std::unexpect, join_error::cancelled()));
        co_return;
      }
    }
  }
}

}  // namespace tenorite::detail
