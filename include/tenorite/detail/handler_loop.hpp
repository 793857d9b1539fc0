// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/handler_loop.hpp — the loops that run a handler_service's Handler
// (handler.hpp): handler_machine, a chain of receives without a coroutine, for a Handler
// whose handle() and hooks are plain functions and that is not supervised; handler_loop's
// coroutine for every other Handler.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <cstddef>
#include <exception>
#include <expected>
#include <memory>
#include <optional>
#include <tenorite/detail/operation.hpp>
#include <tenorite/receiver.hpp>
#include <tenorite/request.hpp>
#include <tenorite/service.hpp>
#include <type_traits>
#include <utility>
#include <variant>

namespace tenorite::detail {

template <class T>
struct is_awaitable : std::false_type {};
template <class T, class Ex>
struct is_awaitable<boost::asio::awaitable<T, Ex>> : std::true_type {};

template <class H>
concept has_on_start = requires(H& h) {
  h.on_start();
};
template <class H>
concept has_on_stop = requires(H& h) {
  h.on_stop();
};

template <class F>
boost::asio::awaitable<void> run_hook(F& f) {
  using R = decltype(f());
  if constexpr (is_awaitable<R>::value) {
    co_await f();
  } else {
    f();
  }
  co_return;
}

// How many requests one step of the machine serves before it lets other work of its
// executor run (it then waits again, which completes through the executor's queue).
#ifndef TENORITE_HANDLER_BATCH
#define TENORITE_HANDLER_BATCH 64
#endif

/// The loop of a handler worker without a coroutine. The machine is owned by exactly one of:
/// the start handler posted to the worker's executor, or the one receive operation it has
/// parked in the queue (its completion handler, `step`), or the step running now, or the
/// continuation (`again`) deferred after a full batch. Whatever
/// destroys that owner unrun (the worker's execution context going away) destroys the
/// machine, and its worker_guard reports the worker's end (cancelled) exactly once, as the
/// destroyed frame of a task does.
template <class Handler, class Req, class Resp, class Err, class Executor>
class handler_machine {
 public:
  using item_type = request<Req, Resp, Err>;
  using guard_type = worker_guard<void, Req, Resp, Err>;
  static constexpr std::size_t batch = TENORITE_HANDLER_BATCH;

  // Frees a machine made on the heap; destroys one made in its service's block in place.
  // The guard holds a share of that block: it is moved out first and let go last, so the
  // block (and the machine's storage with it) outlives the machine's destruction.
  struct deleter {
    void operator()(handler_machine* m) const noexcept {
      if (!m->in_block_) {
        delete m;
        return;
      }
      guard_type keep(std::move(m->guard_));
      m->~handler_machine();
    }
  };
  using owner = std::unique_ptr<handler_machine, deleter>;

  handler_machine(Executor ex, config_source<Handler> source, guard_type guard, bool in_block)
      : ex_(std::move(ex)),
        guard_(std::move(guard)),
        state_(std::in_place_index<1>, std::move(source)),
        in_block_(in_block) {}

  /// A machine in `storage` (room for one, in the block `guard` shares), or on the heap.
  static owner make(void* storage, Executor ex, config_source<Handler> source,
                    guard_type guard) {
    if (!storage) return owner(new handler_machine(std::move(ex), std::move(source),
                                                   std::move(guard), false));
    return owner(::new (storage) handler_machine(std::move(ex), std::move(source),
                                                 std::move(guard), true));
  }

  /// Posts the first step (on_start, then the first receive) to the worker's executor.
  static void spawn(owner m) {
    Executor ex = m->ex_;
    boost::asio::post(ex, step{std::move(m)});
  }

 private:
  // The completion handler of the machine's receives (and of its start), run on the
  // worker's executor. It has no cancellation slot: abort() ends a parked receive through
  // the queue itself (channel::abort_receivers, thread-safe), which is all a machine waits
  // on, so the worker needs neither a cancellation signal nor a strand to emit it on.
  struct step {
    owner m;

    using executor_type = Executor;
    executor_type get_executor() const noexcept { return m->ex_; }

    void operator()() {
      if (m->dying()) return;
      handler_machine::start(std::move(m));
    }
    // The item is taken by reference: it stays where the completion holds it until served.
    void operator()(boost::system::error_code ec, std::optional<item_type>&& r) {
      if (m->dying()) return;  // `r` (its responder) and the machine go unrun, as below
      handler_machine::run(std::move(m), ec, r);
    }
  };

  // True while the worker's execution context is being destroyed on this thread. A step is
  // no coroutine, so a completion then runs it at once, on the destroying thread
  // (detail::complete_on): it must not serve, run on_stop or park a new receive that
  // nobody would collect. Returning drops the machine instead, and its guard reports the
  // worker cancelled, exactly as when the context destroys a parked step unrun.
  bool dying() const noexcept {
    const auto* d = dying_context();
    return d && d == &boost::asio::query(ex_, boost::asio::execution::context);
  }

  channel<item_type>& queue() noexcept { return guard_.state().chan; }

  // Ends the worker: the Handler goes first (as a task's frame does before its end is
  // reported), then the guard reports `r` and the machine is freed by its owner.
  void finish(std::expected<void, join_error> r) noexcept {
    state_.template emplace<0>();
    guard_.finish(std::move(r));
  }
  void fail(const std::exception_ptr& e) noexcept {
    guard_.state().worker_failed(e);
    finish(std::expected<void, join_error>(std::unexpect, join_error::panic(e)));
  }

  static void start(owner m) {
    try {
      Handler h = std::get<1>(m->state_).next();
      m->state_.template emplace<2>(std::move(h));
      if constexpr (has_on_start<Handler>) m->handler().on_start();
    } catch (...) {
      return m->fail(std::current_exception());
    }
    wait(std::move(m));
  }

  static void wait(owner m) {
    auto& q = m->queue();
    q.async_receive(step{std::move(m)});
  }

  // One step: serve the request received, then every one queued now (up to `batch`), then
  // wait for the next. An error ends the worker as a throwing recv() would (after abort(),
  // the join says cancelled); the end of the queue runs on_stop and ends it cleanly.
  static void run(owner m, boost::system::error_code ec, std::optional<item_type>& r) {
    for (std::size_t served = 0;;) {
      if (ec) return m->fail(std::make_exception_ptr(boost::system::system_error(ec)));
      if (!r) return m->stop();
      if (!m->serve(*r)) return;
      r.reset();
      if (++served == batch) return yield(std::move(m));
      if (!m->queue().poll_receive(ec, r)) break;
    }
    wait(std::move(m));
  }

  // A full batch served: let the other work of this thread run, then go on. Deferred (a
  // continuation), it stays in this thread's queue instead of waking the other thread (a
  // cross-core wake-up costs microseconds). Destroyed unrun, it drops the machine.
  struct again {
    owner m;
    void operator()() {
      if (m->dying()) return;
      wait(std::move(m));
    }
  };
  static void yield(owner m) {
    Executor ex = m->ex_;
    boost::asio::defer(ex, again{std::move(m)});
  }

  // False when handle() threw: the worker has ended (the call got fetch_failure when its
  // request, with the responder, was destroyed here).
  bool serve(item_type& it) noexcept {
    // The caller gave up (a notification has no caller waiting, and is still handled).
    if (it.client.wants_reply() && it.client.is_closed()) return true;
    try {
      it.client.send(handler().handle(std::move(it.request)));
      return true;
    } catch (...) {
      const std::exception_ptr e = std::current_exception();
      { item_type gone(std::move(it)); }
      fail(e);
      return false;
    }
  }

  void stop() noexcept {
    if constexpr (has_on_stop<Handler>) {
      try {
        handler().on_stop();
      } catch (...) {
        return fail(std::current_exception());
      }
    }
    finish({});
  }

  Executor ex_;
  guard_type guard_;
  Handler& handler() noexcept { return *std::get_if<2>(&state_); }

  // Nothing (ended), where the Handler comes from (before the start), or the Handler: one
  // of the two at a time, so an idle service does not keep its spent Config source.
  std::variant<std::monostate, config_source<Handler>, Handler> state_;
  bool in_block_;
};

template <class Handler, class Req, class Resp, class Err>
struct handler_loop {
  static_assert(std::is_invocable_v<decltype(&Handler::handle), Handler&, Req&&> ||
                    std::is_invocable_v<decltype(&Handler::handle), Handler&, Req&>,
                "tenorite::handler_service: Handler needs a member handle(Request) returning "
                "std::expected<Response, Error>, a Response, or an awaitable of either");

  /// handle() and the hooks are plain functions: the service may run the loop as a
  /// handler_machine instead of the coroutine below.
  static constexpr bool plain = [] {
    using R = decltype(std::declval<Handler&>().handle(std::declval<Req&&>()));
    bool p = !is_awaitable<R>::value;
    if constexpr (has_on_start<Handler>)
      p = p && !is_awaitable<decltype(std::declval<Handler&>().on_start())>::value;
    if constexpr (has_on_stop<Handler>)
      p = p && !is_awaitable<decltype(std::declval<Handler&>().on_stop())>::value;
    return p;
  }();

  template <class Executor>
  using machine = handler_machine<Handler, Req, Resp, Err, Executor>;

  static boost::asio::awaitable<void> task(receiver<request<Req, Resp, Err>> rx, Handler h) {
    if constexpr (has_on_start<Handler>) {
      auto start = [&h] { return h.on_start(); };  // a named local: see GCC 12 in the README
      co_await run_hook(start);
    }
    while (auto r = co_await rx.recv()) {
      // The caller gave up (a notification has no caller waiting, and is still handled).
      if (r->client.wants_reply() && r->client.is_closed()) continue;
      using R = decltype(h.handle(std::move(r->request)));
      if constexpr (is_awaitable<R>::value) {
        auto result = co_await h.handle(std::move(r->request));
        r->client.send(std::move(result));
      } else {
        r->client.send(h.handle(std::move(r->request)));
      }
    }
    if constexpr (has_on_stop<Handler>) {
      auto stop = [&h] { return h.on_stop(); };
      co_await run_hook(stop);
    }
    co_return;  // (also tells cppcheck this coroutine returns)
  }
};

}  // namespace tenorite::detail
