// SPDX-License-Identifier: BSL-1.0
// tenorite/deadline.hpp — a deadline for any operation, as a completion token adapter:
// tenorite::cancel_after(duration, token) and tenorite::cancel_at(time_point, token).
//
//   // a receive that gives up after 2 s (ec == boost::asio::error::timed_out then)
//   auto [ec, r] = co_await rx.async_recv(
//       tenorite::cancel_after(2s, asio::as_tuple(asio::use_awaitable)));
//   // a call: error_kind::timed_out, as send_request_for gives
//   auto v = co_await caller.async_send_request(req, tenorite::cancel_after(2s, asio::deferred));
//   // a join that waits at most 30 s (join_error::is_wait_cancelled(): the worker runs on)
//   auto j = co_await task.async_join(tenorite::cancel_after(30s, asio::use_awaitable));
//   // a notification or a reservation that waits for room at most until `t`
//   auto n = co_await caller.async_notify(req, tenorite::cancel_at(t, asio::use_awaitable));
//
// How it works: the operation races a tenorite::timer (timer.hpp: a steady_timer, or the
// simulation's virtual time in a test) that runs on the completion handler's
// executor; when the deadline passes first, the operation is cancelled
// (cancellation_type::all, emitted on that executor); when the operation ends first, the
// timer is cancelled. The handler completes exactly when, where and as the operation does
// (a callback on an execution context being destroyed still runs, as for the operation
// itself). For operations that are not tenorite's, the handler's executor should be a strand
// or single-threaded, as for any Asio cancellation. Every tenorite operation then ends at once: a
// queued call or notification is withdrawn and its request comes back, a delivered call is
// abandoned (the worker sees is_closed()), a parked receive, reservation or join is withdrawn and
// takes nothing.
//
// When the deadline is what ended the operation, the outcome says so:
// - a tenorite outcome std::expected<T, error<Req, Err>> of kind cancelled reads timed_out
//   (with the request when it was never delivered, as before);
// - a first argument error_code == operation_aborted reads boost::asio::error::timed_out;
// - anything else is passed on as the operation produced it (a join: wait_cancelled).
// The handler's own cancellation slot, if it has one, cancels the whole race: the outcome is
// then the operation's own (cancelled, operation_aborted).
//
// A cancel_after deadline is computed when the operation starts (a deferred operation
// launched later gets the full duration from its launch). The token works for any Asio
// operation with one completion signature; a plain callback without an associated executor
// runs its timer on the system executor: bind one (boost::asio::bind_executor) instead.
// An operation started while its handler's execution context is being destroyed (from a
// destructor that destruction runs) gets no timer there: its deadline is taken as passed.
// Per-operation cancellation of the adapted operation: any type, through the handler's slot.
#pragma once

#include <atomic>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstddef>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <tenorite/detail/operation.hpp>
#include <tenorite/error.hpp>
#include <tenorite/timer.hpp>
#include <type_traits>
#include <utility>

namespace tenorite {

/// The token made by cancel_after / cancel_at: `token`, with a deadline.
template <class Token>
struct deadline_token {
  using clock = std::chrono::steady_clock;
  /// Set by cancel_at; else the deadline is `after` from the operation's start.
  std::optional<clock::time_point> at;
  clock::duration after{};
  Token token;
};

/// `token`, cancelled when `d` has passed since the operation started (see the top of this
/// header).
template <class Rep, class Period, class Token>
deadline_token<std::decay_t<Token>> cancel_after(std::chrono::duration<Rep, Period> d,
                                                 Token&& token) {
  return {std::nullopt, std::chrono::duration_cast<std::chrono::steady_clock::duration>(d),
          std::forward<Token>(token)};
}

/// `token`, cancelled at the steady-clock time point `t` (see the top of this header).
template <class Token>
deadline_token<std::decay_t<Token>> cancel_at(std::chrono::steady_clock::time_point t,
                                              Token&& token) {
  return {t, {}, std::forward<Token>(token)};
}

namespace detail {

// A cancelled outcome, rewritten as the deadline's (see the top of this header).
inline void mark_timed_out(boost::system::error_code& ec) noexcept {
  if (ec == boost::asio::error::operation_aborted) ec = boost::asio::error::timed_out;
}
template <class T, class Req, class Err>
void mark_timed_out(std::expected<T, error<Req, Err>>& r) {
  if (!r && r.error().kind() == error_kind::cancelled)
    r = std::expected<T, error<Req, Err>>(
        std::unexpect, error<Req, Err>::of_kind(error_kind::timed_out, std::move(r.error().request())));
}
template <class T>
void mark_timed_out(T&) noexcept {}

template <class First, class... Rest>
void mark_first_timed_out(First& first, Rest&...) {
  mark_timed_out(first);
}
inline void mark_first_timed_out() noexcept {}

// One race between an operation and its deadline. The operation's handler owns the user's
// handler and completes it (so it completes exactly when, where and as the operation does,
// also while an execution context is being destroyed); the timer's handler only cancels the
// operation through `op_cancel`. Neither waits for the other. The timer is started after the
// operation (its slot is connected by then), under `m`, which also orders it against the
// operation's completion cancelling it on another thread.
struct deadline_block {
  // No timer on an execution context being destroyed: its services (the reactor) may be
  // destroyed before the completion that would cancel the timer runs, and the context will
  // never run a timer again anyway. The deadline is then taken as passed at once.
  deadline_block(const boost::asio::any_io_executor& ex,
                 std::chrono::steady_clock::time_point t) {
    if (dying_context() != &boost::asio::query(ex, boost::asio::execution::context))
      timer.emplace(ex, t);
  }
  std::optional<tenorite::timer> timer;
  boost::asio::cancellation_signal op_cancel;  // the operation's cancellation slot
  std::mutex m;                      // timer.async_wait against timer.cancel
  std::atomic<bool> done{false};     // the operation completed
  std::atomic<bool> fired{false};    // the deadline cancelled the operation
  std::atomic<bool> by_user{false};  // the user's own slot cancelled it

  void finish() noexcept {
    std::lock_guard lk(m);
    done.store(true, std::memory_order_release);
    try {
      if (timer) timer->cancel();
    } catch (...) {  // cannot fail on Linux; the timer then simply runs out
    }
  }
};

// Installed in the user's slot: the user's cancellation reaches the operation.
struct deadline_user_cancel {
  std::weak_ptr<deadline_block> block;
  void operator()(boost::asio::cancellation_type type) const {
    if (auto b = block.lock()) {
      b->by_user.store(true, std::memory_order_release);
      b->op_cancel.emit(type);
    }
  }
};

// The operation's handler in the race: on the user's handler's executor, with the race's
// cancellation slot. A named type, so that a coroutine's handler inside is still seen as
// one (detail::is_coroutine_handler: resumed at once, destroyed with a dying context).
template <class Handler, class UserSlot, class... Args>
struct deadline_done {
  using wrapped_handler = Handler;
  using executor_type = boost::asio::any_io_executor;
  using cancellation_slot_type = boost::asio::cancellation_slot;
  using allocator_type = boost::asio::associated_allocator_t<Handler>;
  Handler handler;
  std::shared_ptr<deadline_block> block;
  UserSlot user_slot;
  executor_type ex;
  cancellation_slot_type op_slot;  // block->op_cancel's (kept: a moved-from one has no block)

  executor_type get_executor() const noexcept { return ex; }
  cancellation_slot_type get_cancellation_slot() const noexcept { return op_slot; }
  allocator_type get_allocator() const noexcept {
    return boost::asio::get_associated_allocator(handler);
  }
  void operator()(Args... a) {
    block->finish();
    if (user_slot.is_connected()) user_slot.clear();
    if (block->fired.load(std::memory_order_acquire) &&
        !block->by_user.load(std::memory_order_acquire))
      mark_first_timed_out(a...);
    // cppcheck-suppress ignoredReturnValue ; the handler is called, std::move is a cast
    std::move(handler)(std::move(a)...);
  }
};

template <class Signature>
struct deadline_race;

template <class R, class... Args>
struct deadline_race<R(Args...)> {
  template <class Initiation>
  struct initiation {
    Initiation init;

    template <class Handler, class... InitArgs>
    void operator()(Handler handler, std::chrono::steady_clock::time_point deadline,
                    InitArgs&&... args) {
      boost::asio::any_io_executor ex = boost::asio::get_associated_executor(handler);
      auto slot = boost::asio::get_associated_cancellation_slot(handler);
      auto block = std::make_shared<deadline_block>(ex, deadline);
      if (slot.is_connected()) slot.template emplace<deadline_user_cancel>(block);
      using done_type = deadline_done<Handler, decltype(slot), Args...>;
      done_type done{std::move(handler), block, slot, ex, block->op_cancel.slot()};
      try {
        // (Asio up to 1.28 takes the token by lvalue reference.)
        boost::asio::async_initiate<done_type, void(Args...)>(std::move(init), done,
                                                              std::forward<InitArgs>(args)...);
      } catch (...) {  // the operation did not start: nothing is left to race
        block->done.store(true, std::memory_order_release);
        if (slot.is_connected()) slot.clear();
        throw;
      }
      // The timer's handler runs on `ex`, where the operation's cancellation is emitted
      // (Asio's cancellation slots are not thread-safe). Not started when the operation
      // has already completed.
      bool waiting = false;
      {
        std::lock_guard lk(block->m);
        if (block->done.load(std::memory_order_acquire)) return;
        if (block->timer) {
          try {
            block->timer->async_wait(
                boost::asio::bind_executor(ex, [block](boost::system::error_code ec) {
                  if (ec || block->done.load(std::memory_order_acquire)) return;
                  block->fired.store(true, std::memory_order_release);
                  block->op_cancel.emit(boost::asio::cancellation_type::all);
                }));
            waiting = true;
          } catch (...) {  // no memory for the wait: below
          }
        }
      }
      if (waiting) return;
      // The wait could not start (no memory, or `ex`'s context is being destroyed): the
      // deadline is taken as passed now (the operation must not wait without one), emitted
      // on `ex` if possible (outside `m`: the operation may complete inside the emit).
      block->fired.store(true, std::memory_order_release);
      auto emit = [block] {
        if (!block->done.load(std::memory_order_acquire))
          block->op_cancel.emit(boost::asio::cancellation_type::all);
      };
      try {
        if (!block->timer) {
          // A dying context runs nothing more: the emit waits in the destroying thread's
          // queue of completions (so the handler does not run inside the user's own call).
          dying_queue::local().push(new dying_fn<decltype(emit)>(decltype(emit)(emit)));
        } else {
          boost::asio::post(ex, emit);
        }
      } catch (...) {  // no memory: here, then
        emit();
      }
    }
  };
};

// The deadline is read when the operation starts (a lazy token starts it later).
template <class Inner>
struct deadline_start {
  Inner inner;
  std::optional<std::chrono::steady_clock::time_point> at;
  std::chrono::steady_clock::duration after;
  template <class Handler, class... A>
  void operator()(Handler&& h, A&&... a) {
    // The time as the handler's context keeps it (a simulation's is virtual).
    const auto deadline = at ? *at : now_for(boost::asio::get_associated_executor(h)) + after;
    inner(std::forward<Handler>(h), deadline, std::forward<A>(a)...);
  }
};

}  // namespace detail
}  // namespace tenorite

template <class Token, class R, class... Args>
struct boost::asio::async_result<tenorite::deadline_token<Token>, R(Args...)> {
  template <class Initiation, class RawToken, class... InitArgs>
  static auto initiate(Initiation&& init, RawToken&& t, InitArgs&&... args) {
    using race = tenorite::detail::deadline_race<R(std::decay_t<Args>...)>;
    using init_t = typename race::template initiation<std::decay_t<Initiation>>;
    using start = tenorite::detail::deadline_start<init_t>;
    // (Asio up to 1.28 takes the token by lvalue reference.)
    Token token(std::forward<RawToken>(t).token);
    return boost::asio::async_initiate<Token, void(std::decay_t<Args>...)>(
        start{init_t{std::forward<Initiation>(init)}, t.at, t.after}, token,
        std::forward<InitArgs>(args)...);
  }
};
