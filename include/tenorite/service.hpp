// SPDX-License-Identifier: BSL-1.0
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
// - the worker runs on a strand of the given executor (a plain handler worker, see
//   handler.hpp: on the executor itself, one step at a time) and counts as outstanding work
//   there until it ends;
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
#include <boost/asio/steady_timer.hpp>
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
#include <string>
#include <string_view>
#include <tenorite/caller.hpp>
#include <tenorite/detail/config.hpp>
#include <tenorite/detail/small_mutex.hpp>
#include <tenorite/detail/worker.hpp>
#include <tenorite/join_handle.hpp>
#include <tenorite/metrics.hpp>
#include <tenorite/receiver.hpp>
#include <tenorite/registry.hpp>
#include <tenorite/request.hpp>
#include <tenorite/runtime.hpp>
#include <tenorite/supervision.hpp>
#include <type_traits>
#include <utility>
#include <vector>

namespace tenorite {

/// What start_task returns: bind it as `auto [task, caller] = service.start_task(...)`.
template <class TaskResult, class Req, class Resp, class Err>
struct started_task {
  join_handle<TaskResult> task;
  tenorite::caller<Req, Resp, Err> caller;
};

/// How a service is run: queue size, pool size, supervision, metrics. Every field has a
/// default: set only what differs (`opts.workers = 4;`). A designated initializer that
/// leaves fields out (`service_options{.workers = 4}`) is valid C++, but GCC 12 warns about
/// it under -Wextra (-Wmissing-field-initializers), an error with -Werror.
struct service_options {
  /// How many requests may wait for the workers (callers wait when it is full); at least 1.
  std::size_t queue_size = 32;
  /// Workers serving the one queue: 1 is the original's model; more make a pool (each
  /// worker gets its own Config from the factory, or a copy of the one given).
  std::size_t workers = 1;
  /// Restart a worker that throws (supervision); empty: a throwing worker ends the service.
  std::optional<restart_policy> restart;
  /// Count calls (caller.metrics()); off by default (then it costs one branch per call).
  bool metrics = false;
  /// Called at every call's start and completion (turns metrics on).
  trace_hook trace;
  /// The name it is listed under (registry.hpp) and that its trace events and exported
  /// metrics carry; empty: the Worker type's name (e.g. "kv_worker"). A name already taken
  /// in the registry gets a suffix ("kv-2").
  std::string name{};
  /// The registry that lists it while it lives; nullptr: not listed anywhere.
  service_registry* registry = &service_registry::global();
};

namespace detail {

/// The unqualified name of T as the compiler spells it ("kv_worker" for ns::kv_worker).
template <class T>
std::string type_name() {
#if defined(__clang__) || defined(__GNUC__)
  std::string_view f = __PRETTY_FUNCTION__;
  // GCC: "... [with T = ns::kv_worker; std::string = ...]"; Clang: "... [T = ns::kv_worker]".
  const auto at = f.find("T = ");
  if (at == std::string_view::npos) return "service";
  f.remove_prefix(at + 4);
  std::size_t end = 0;
  int depth = 0;
  for (; end < f.size(); ++end) {
    const char c = f[end];
    if (c == '<' || c == '(') ++depth;
    if (c == '>' || c == ')') --depth;
    if (depth == 0 && (c == ';' || c == ']')) break;
    if (depth < 0) break;
  }
  f = f.substr(0, end);
  // The last component outside template arguments: ns::kv_worker -> kv_worker.
  std::size_t last = 0;
  depth = 0;
  for (std::size_t i = 0; i + 1 < f.size(); ++i) {
    if (f[i] == '<') ++depth;
    if (f[i] == '>') --depth;
    if (depth == 0 && f[i] == ':' && f[i + 1] == ':') last = i + 2;
  }
  f.remove_prefix(last);
  return f.empty() ? std::string("service") : std::string(f);
#else
  return "service";
#endif
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
    detail::check_default_runtime_allowed("start_task");
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

  /// Starts the worker on any Asio executor; it runs on a strand of that executor (a plain
  /// handler worker on the executor itself, one step at a time).
  /// Throws std::invalid_argument when queue_size is 0.
  template <class Executor>
  requires boost::asio::execution::executor<Executor> started start_task(const Executor& ex,
                                                                         std::size_t queue_size,
                                                                         Config config)
  const {
    service_options opts;
    opts.queue_size = queue_size;
    return launch(ex, std::move(opts), detail::config_source<Config>(std::move(config)));
  }

  // ---- start: the same, with service_options (pools, supervision, metrics) ----
  //
  // `config` is a Config (copied for each worker and restart: it must then be copyable,
  // unless there is one worker and no restart) or a factory: a callable returning Config,
  // called for each worker and for each restart.

  /// Starts on any Asio executor. Throws std::invalid_argument for a queue_size or workers
  /// of 0, or a pool whose workers return a value (TaskResult must be void for a pool).
  template <class Executor, class ConfigOrFactory>
  requires boost::asio::execution::executor<Executor> started
  start(const Executor& ex, service_options opts, ConfigOrFactory&& config) const {
    auto source = make_source(opts, std::forward<ConfigOrFactory>(config));
    return launch(ex, std::move(opts), std::move(source));
  }
  /// Starts on a tenorite runtime.
  template <class ConfigOrFactory>
  started start(runtime& rt, service_options opts, ConfigOrFactory&& config) const {
    return start(rt.executor(), std::move(opts), std::forward<ConfigOrFactory>(config));
  }
  /// Starts on an execution context (e.g. a boost::asio::io_context).
  template <class Context, class ConfigOrFactory>
  requires std::is_convertible_v<Context&, boost::asio::execution_context&> started
  start(Context& ctx, service_options opts, ConfigOrFactory&& config) const {
    return start(ctx.get_executor(), std::move(opts), std::forward<ConfigOrFactory>(config));
  }
  /// Starts on the default runtime (runtime::global()).
  template <class ConfigOrFactory>
  started start(service_options opts, ConfigOrFactory&& config) const {
    detail::check_default_runtime_allowed("start");
    return start(runtime::global().executor(), std::move(opts),
                 std::forward<ConfigOrFactory>(config));
  }

 private:
  template <class C>
  static detail::config_source<Config> make_source(const service_options& opts, C&& c) {
    using D = std::decay_t<C>;
    if constexpr (std::is_invocable_r_v<Config, D&> && !std::is_convertible_v<C, Config>) {
      return detail::config_source<Config>(std::function<Config()>(std::forward<C>(c)));
    } else if constexpr (std::is_copy_constructible_v<Config>) {
      if (opts.workers <= 1 && !opts.restart)
        return detail::config_source<Config>(Config(std::forward<C>(c)));
      return detail::config_source<Config>(
          std::function<Config()>([c = Config(std::forward<C>(c))] { return c; }));
    } else {
      if (opts.workers > 1 || opts.restart)
        throw std::invalid_argument(
            "tenorite::service::start: a pool or a supervised service needs a Config for each "
            "worker and restart, and this Config is move-only: pass a factory (a callable "
            "returning Config) instead of a value");
      return detail::config_source<Config>(Config(std::forward<C>(c)));
    }
  }

  // Templated on the executor: a strand of the concrete executor executes without the
  // property queries (and their allocations) a strand of any_io_executor makes per call.
  template <class Executor>
  started launch(const Executor& ex, service_options opts,
                 detail::config_source<Config> configs) const {
    boost::asio::any_io_executor base(ex);
    if (opts.queue_size == 0)
      throw std::invalid_argument(
          "tenorite::service::start_task: queue_size must be at least 1 (it is how many "
          "requests may wait for the worker; callers wait when it is full)");
    if (opts.workers == 0)
      throw std::invalid_argument(
          "tenorite::service::start: workers must be at least 1 (how many workers serve the "
          "queue)");
    if (!std::is_void_v<TaskResult> && opts.workers > 1)
      throw std::invalid_argument(
          "tenorite::service::start: a pool (workers > 1) needs a Worker whose task returns "
          "void; there is one join outcome for the whole pool");

    using block_type = detail::service_block<TaskResult, Req, Resp, Err>;
    std::shared_ptr<block_type> block;
    void* machine_storage = nullptr;  // room for the machine of a single handler worker
    if constexpr (std::is_void_v<TaskResult> && detail::runs_as_machine<Worker>) {
      if (!opts.restart && opts.workers == 1) {
        using machine = typename Worker::template machine<Executor>;
        auto b = std::make_shared<detail::block_with_machine<block_type, machine>>(
            base, opts.queue_size, opts.workers);
        machine_storage = b->machine_storage;
        block = std::move(b);
      }
    }
    if (!block) block = std::make_shared<block_type>(base, opts.queue_size, opts.workers);
    std::shared_ptr<detail::service_state<Req, Resp, Err>> st(block, &block->state);
    std::shared_ptr<detail::task_state<TaskResult>> ts(block, &block->task);
    std::shared_ptr<detail::worker_group<TaskResult, Req, Resp, Err>> group(block, &block->group);
    ts->set_self(ts);
    st->workers = opts.workers;
    st->started = std::chrono::system_clock::now();
    if (opts.workers > 1) st->kind.store(service_kind::pool, std::memory_order_relaxed);
    std::string name = opts.name.empty() ? detail::type_name<Worker>() : std::move(opts.name);
    // Measured before it is listed: a snapshot may describe it from then on.
    if (opts.metrics || opts.trace) st->measure(std::move(opts.trace), name);
    if (opts.registry) {
      name = st->list_in(opts.registry->list(), name);
      if (st->metrics) st->metrics->rename(name);
    }
    auto core = std::make_shared<detail::caller_core<Req, Resp, Err>>(st);
    block.reset();

    // Each worker pulls its Config (for its start and each restart) from the one source;
    // pool workers run on different strands, so they share it under a lock.
    std::vector<detail::config_source<Config>> sources;
    if (opts.workers == 1) {
      sources.push_back(std::move(configs));
    } else {
      struct shared_source {
        explicit shared_source(detail::config_source<Config> s) : src(std::move(s)) {}
        std::mutex m;
        detail::config_source<Config> src;
      };
      auto shared = std::make_shared<shared_source>(std::move(configs));
      for (std::size_t i = 0; i < opts.workers; ++i)
        sources.push_back(detail::config_source<Config>(std::function<Config()>([shared] {
          std::lock_guard lk(shared->m);
          return shared->src.next();
        })));
    }

    for (std::size_t i = 0; i < opts.workers; ++i) {
      if constexpr (std::is_void_v<TaskResult> && detail::runs_as_machine<Worker>) {
        // A handler worker with plain functions, not supervised: no coroutine, and no strand
        // or cancellation signal either. Its steps follow one another by construction (one
        // owner at a time), and abort() ends its parked receive through the queue.
        if (!opts.restart) {
          detail::worker_guard<TaskResult, Req, Resp, Err> guard(group);
          using machine = typename Worker::template machine<Executor>;
          machine::spawn(
              machine::make(machine_storage, ex, std::move(sources[i]), std::move(guard)));
          continue;
        }
      }
      // The guard first: whatever throws below (no memory) reports this worker ended, so the
      // group still counts every worker it was made for and closes the queue after the last.
      detail::worker_guard<TaskResult, Req, Resp, Err> guard(group);
      auto strand = boost::asio::make_strand(ex);
      auto ws = std::make_shared<detail::task_control::worker_signal>(
          boost::asio::any_io_executor(strand));
      std::shared_ptr<boost::asio::cancellation_signal> signal(ws, &ws->signal);
      // One worker: a call from the worker's own strand would wait for itself. In a pool
      // another worker may serve it, so there is nothing to refuse.
      if (opts.workers == 1)
        st->chan.set_consumer(
            std::shared_ptr<const boost::asio::any_io_executor>(ws, &ws->executor),
            [](const boost::asio::any_io_executor& e) {
              const auto* s = e.target<decltype(strand)>();
              return s && s->running_in_this_thread();
            });
      ts->arm(std::move(ws));
      if constexpr (std::is_void_v<TaskResult>) {
        // The common case (one worker, no supervision, one Config): the worker's own
        // coroutine is spawned directly, its guard in the completion handler. That saves
        // the restart loop's coroutine frame in every idle service.
        if (!opts.restart && sources[i].holds_value_only()) {
          receiver_type rx(std::shared_ptr<channel<request_handle>>(st, &st->chan));
          auto task = Worker::task(std::move(rx), sources[i].next());
          boost::asio::co_spawn(
              strand, std::move(task),
              boost::asio::bind_cancellation_slot(
                  signal->slot(), detail::worker_end<Req, Resp, Err>{std::move(guard), signal}));
          continue;
        }
      }
      auto worker = detail::run_worker<Worker, Config, TaskResult, Req, Resp, Err>(
          std::move(guard), std::move(sources[i]), detail::restart_tracker(opts.restart));
      // The signal lives as long as the completion handler co_spawn holds, which outlives
      // the coroutine; abort() emits it on the strand.
      boost::asio::co_spawn(strand, std::move(worker),
                            boost::asio::bind_cancellation_slot(
                                signal->slot(), [signal](const std::exception_ptr&) noexcept {}));
    }
    return started{join_handle<TaskResult>(std::move(ts)), caller_type(std::move(core))};
  }
};

}  // namespace tenorite
