// tenorite/service.hpp — binds the five user types into a service and starts its worker.
//
//   struct kv_worker {
//     static boost::asio::awaitable<void>
//     task(tenorite::receiver<tenorite::request<kv_request, kv_response, kv_error>> rx,
//          kv_config config);
//   };
//   using kv_service = tenorite::service<kv_request, kv_response, kv_error, kv_worker,
//                                        kv_config>;
//   auto [task, caller] = kv_service{}.start_task(32, kv_config{});
//
// Lifecycle invariants:
// - the worker runs on a strand of the given executor and counts as outstanding work there
//   until it ends;
// - when it ends — returns, throws, is aborted, or its execution context is destroyed — the
//   queue is closed first (every still-queued request goes back to its caller as a send
//   failure, every later call fails at once), then the join outcome is set;
// - a request the worker held when it ended completes with fetch_failure (its responder is
//   destroyed unanswered).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/strand.hpp>
#include <cstddef>
#include <exception>
#include <expected>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tenorite/caller.hpp>
#include <tenorite/join_handle.hpp>
#include <tenorite/receiver.hpp>
#include <tenorite/request.hpp>
#include <tenorite/runtime.hpp>
#include <type_traits>
#include <utility>

namespace tenorite {

/// What start_task returns: bind it as `auto [task, caller] = service.start_task(...)`.
template <class TaskResult, class Req, class Resp, class Err>
struct started_task {
  join_handle<TaskResult> task;
  tenorite::caller<Req, Resp, Err> caller;
};

namespace detail {

/// Lives in the worker's coroutine frame — as a parameter, so it exists from the frame's
/// creation, before the body ever runs: it ends the service exactly once, also when the frame
/// is destroyed unfinished or never started (its execution context was destroyed first).
template <class T, class Req, class Resp, class Err>
class worker_guard {
 public:
  using result_type = std::expected<T, join_error>;

  worker_guard(std::shared_ptr<service_state<Req, Resp, Err>> st, std::shared_ptr<task_state<T>> ts,
               boost::asio::any_io_executor work)
      : st_(std::move(st)), ts_(std::move(ts)), work_(std::move(work)) {}
  worker_guard(worker_guard&& o) noexcept
      : st_(std::move(o.st_)),
        ts_(std::move(o.ts_)),
        work_(std::move(o.work_)),
        done_(std::exchange(o.done_, true)) {}
  worker_guard(const worker_guard&) = delete;
  worker_guard& operator=(const worker_guard&) = delete;
  worker_guard& operator=(worker_guard&&) = delete;

  const std::shared_ptr<service_state<Req, Resp, Err>>& state() const noexcept { return st_; }
  ~worker_guard() {
    if (!done_) finish(result_type(std::unexpect, join_error::cancelled()));
  }

  void finish(result_type r) noexcept {
    done_ = true;
    st_->close_and_return_queued();
    const bool aborted = ts_->finish();
    if (aborted) r = result_type(std::unexpect, join_error::cancelled());
    work_ = {};
    ts_->set_result(std::move(r));
  }

 private:
  std::shared_ptr<service_state<Req, Resp, Err>> st_;
  std::shared_ptr<task_state<T>> ts_;
  boost::asio::any_io_executor work_;  // outstanding work on the user's executor
  bool done_ = false;
};

template <class Worker, class Config, class T, class Req, class Resp, class Err>
boost::asio::awaitable<void> run_worker(worker_guard<T, Req, Resp, Err> guard, Config config) {
  using result_type = std::expected<T, join_error>;
  receiver<request<Req, Resp, Err>> rx(
      std::shared_ptr<channel<request<Req, Resp, Err>>>(guard.state(), &guard.state()->chan));
  try {
    auto task = Worker::task(std::move(rx), std::move(config));
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
      guard.finish(result_type());
    } else {
      T value = co_await std::move(task);
      guard.finish(result_type(std::in_place, std::move(value)));
    }
  } catch (...) {
    guard.finish(result_type(std::unexpect, join_error::panic(std::current_exception())));
  }
}

}  // namespace detail

/// A service: Request, Response, Error, the Worker type and its Config, bound together.
///
/// Worker must have `static boost::asio::awaitable<TaskResult>
/// task(tenorite::receiver<tenorite::request<Req, Resp, Err>>, Config)`.
/// Requirements: Req, Resp, Err, Config move-constructible (move-only is fine); TaskResult
/// move-constructible (it need not be default-constructible), or void.
template <class Req, class Resp, class Err, class Worker, class Config, class TaskResult = void>
class service {
 public:
  using request_type = Req;
  using response_type = Resp;
  using error_type = Err;
  using config_type = Config;
  using worker_type = Worker;
  using task_result_type = TaskResult;
  using caller_type = caller<Req, Resp, Err>;
  using weak_caller_type = weak_caller<Req, Resp, Err>;
  using receiver_type = receiver<request<Req, Resp, Err>>;
  using request_handle = request<Req, Resp, Err>;
  using join_handle_type = join_handle<TaskResult>;
  using started = started_task<TaskResult, Req, Resp, Err>;

  /// Starts the worker on the default runtime (runtime::global()).
  started start_task(std::size_t queue_size, Config config) const {
    return start_task(runtime::global().executor(), queue_size, std::move(config));
  }

  /// Starts the worker on a tenorite runtime.
  started start_task(runtime& rt, std::size_t queue_size, Config config) const {
    return start_task(rt.executor(), queue_size, std::move(config));
  }

  /// Starts the worker on an execution context (e.g. a boost::asio::io_context).
  template <class Context>
  requires std::is_convertible_v<Context&, boost::asio::execution_context&> started
  start_task(Context& ctx, std::size_t queue_size, Config config)
  const { return start_task(ctx.get_executor(), queue_size, std::move(config)); }

  /// Starts the worker on any Asio executor; it runs on a strand of that executor.
  /// Throws std::invalid_argument when queue_size is 0.
  template <class Executor>
  requires boost::asio::execution::executor<Executor> started start_task(const Executor& ex,
                                                                         std::size_t queue_size,
                                                                         Config config)
  const {
    if (queue_size == 0)
      throw std::invalid_argument(
          "tenorite::service::start_task: queue_size must be at least 1 (it is how many "
          "requests may wait for the worker; callers wait when it is full)");
    boost::asio::any_io_executor base(ex);
    auto strand = boost::asio::make_strand(ex);

    auto st = std::make_shared<detail::service_state<Req, Resp, Err>>(base, queue_size);
    auto ts = std::make_shared<detail::task_state<TaskResult>>(base);
    auto signal = std::make_shared<boost::asio::cancellation_signal>();
    ts->arm(boost::asio::any_io_executor(strand), signal, st);
    st->chan.set_consumer(boost::asio::any_io_executor(strand));

    auto core = std::make_shared<detail::caller_core<Req, Resp, Err>>(st);
    boost::asio::any_io_executor work(
        boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked));
    detail::worker_guard<TaskResult, Req, Resp, Err> guard(st, ts, std::move(work));
    auto worker = detail::run_worker<Worker, Config, TaskResult, Req, Resp, Err>(std::move(guard),
                                                                                 std::move(config));
    // The signal lives as long as the completion handler co_spawn holds, which outlives the
    // coroutine; abort() emits it on the strand.
    boost::asio::co_spawn(strand, std::move(worker),
                          boost::asio::bind_cancellation_slot(
                              signal->slot(), [signal](const std::exception_ptr&) noexcept {}));
    return started{join_handle<TaskResult>(std::move(ts)), caller_type(std::move(core))};
  }
};

}  // namespace tenorite
