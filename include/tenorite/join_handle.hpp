// SPDX-License-Identifier: BSL-1.0
// tenorite/join_handle.hpp — the owner's view of a running worker: join, wait, abort.
//
// Invariants:
// - the task's outcome is set exactly once, after the worker's queue is closed (so any call
//   made after a join returned fails with send_failure at once);
// - the outcome is taken at most once (join() or wait()); a second take throws; a join whose
//   wait is cancelled (Asio per-operation cancellation) gives its claim back;
// - abort() before the outcome is set makes the outcome is_cancelled(), whatever the worker
//   does next; after it, abort() does nothing;
// - a panic that no join will observe (the handle was dropped) goes to the unhandled-
//   exception hook exactly once.
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
#include <tenorite/detail/task_state.hpp>
#include <tenorite/error.hpp>
#include <tenorite/detail/reply_slot.hpp>
#include <tenorite/runtime.hpp>
#include <tenorite/unhandled_exception.hpp>
#include <utility>
#include <vector>

namespace tenorite {

/// The owner's handle on a worker (the original's JoinHandle).
///
/// Movable, not copyable. Dropping it detaches the worker, which keeps serving.
template <class T>
class join_handle {
 public:
  using value_type = T;
  using result_type = std::expected<T, join_error>;

  join_handle() noexcept = default;
  explicit join_handle(std::shared_ptr<detail::task_state<T>> st) noexcept
      : state_(std::move(st)) {}
  join_handle(join_handle&& o) noexcept
      : state_(std::move(o.state_)) {}
  join_handle& operator=(join_handle&& o) noexcept {
    if (this != &o) {
      release();
      state_ = std::move(o.state_);
    }
    return *this;
  }
  join_handle(const join_handle&) = delete;
  join_handle& operator=(const join_handle&) = delete;
  ~join_handle() { release(); }

  /// Waits for the worker to end, with any completion token; signature void(result_type).
  /// Throws std::logic_error if the handle is empty, or if the outcome was already taken
  /// (the claim is made when the operation starts: a lazy join — deferred, an awaitable
  /// not awaited yet — that is dropped unlaunched takes nothing).
  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_join(Token&& token = {}) {
    if (!state_)
      throw std::logic_error("tenorite::join_handle::async_join: empty join handle (moved-from)");
    if (state_->is_taken()) claim(state_, "tenorite::join_handle::async_join");  // throws
    return boost::asio::async_initiate<Token, void(result_type)>(
        [](auto handler, lazy_join j) {
          auto s = j.state;
          claim(s, "tenorite::join_handle::async_join");
          using handler_t = decltype(handler);
          auto* op = detail::make_op<join_op<handler_t>>(handler, s->default_executor(), s);
          detail::initiation_scope scope(op);
          detail::arm_or_abandon(op);
          s->take(op);
        },
        token, lazy_join(state_));
  }

  /// co_await task.join(): the worker's result, or a join_error.
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<result_type> join() {
    return async_join(boost::asio::use_awaitable);
  }

  /// Blocks a plain thread until the worker ends. Throws std::logic_error on a runtime
  /// thread, if the outcome was already taken, or if the handle is empty.
  result_type wait() {
    detail::check_blocking_allowed("tenorite::join_handle::wait");
    auto st = take_state("tenorite::join_handle::wait");
    detail::blocking_reply<result_type> reply;
    st->take(&reply);
    return reply.wait();
  }

  /// Cancels the worker (from any thread). Its join then yields is_cancelled(), unless it
  /// had already finished. recv() in the worker throws operation_aborted from now on.
  void abort() {
    if (!state_) throw std::logic_error("tenorite::join_handle::abort: empty join handle");
    state_->abort();
  }

  /// Graceful stop: from now on every new call fails with send_failure (its request comes
  /// back), every request already queued is still served, and the join completes after the
  /// last one (once the worker's loop sees the end of the queue and returns).
  void drain() {
    if (!state_) throw std::logic_error("tenorite::join_handle::drain: empty join handle");
    state_->drain();
  }

  /// True once the worker has ended (its queue is closed).
  bool is_finished() const { return state_ && state_->is_finished(); }

  /// False for a moved-from or default-constructed handle.
  explicit operator bool() const noexcept { return static_cast<bool>(state_); }

 private:
  template <class Handler>
  struct join_op final : detail::reply_slot<result_type>,
                         detail::operation<join_op<Handler>, Handler> {
    using base = detail::operation<join_op<Handler>, Handler>;
    join_op(Handler&& h, const boost::asio::any_io_executor& fallback,
            std::shared_ptr<detail::task_state<T>> s)
        : detail::reply_slot<result_type>(&on_complete),
          base(std::move(h), fallback, false),
          state(std::move(s)) {}
    static bool on_complete(detail::reply_slot<result_type>* s, result_type&& r) noexcept {
      finish(static_cast<join_op*>(s), std::move(r), true);
      return true;
    }
    // An outcome on its way to a handler that is cancelled before it runs (the other branch
    // of `join() || timer` won) is put back, so a later join still gets it.
    static void finish(join_op* self, result_type&& r, bool watch_late) noexcept {
      detail::settle(self->ctl);
      detail::late_cancel_watch watch(watch_late ? self->ctl : nullptr);
      auto st = std::move(self->state);
      self->complete_with([r = std::move(r), watch = std::move(watch),
                           st = std::move(st)](Handler&& h) mutable {
        if (watch.requested()) {  // (no assignment: T need not be assignable)
          st->put_back(std::move(r));
          std::move(h)(result_type(std::unexpect, join_error::wait_cancelled()));
          return;
        }
        std::move(h)(std::move(r));
      });
    }
    // Any cancellation type: giving up the wait changes nothing for the worker.
    static void on_cancel(void* p, boost::asio::cancellation_type,
                          std::unique_lock<std::mutex>& lk) noexcept {
      auto* self = static_cast<join_op*>(p);
      if (!self->state->withdraw(self)) {  // the outcome is on its way
        self->ctl->late.store(true, std::memory_order_release);
        return;
      }
      self->ctl->op = nullptr;
      lk.unlock();
      finish(self, result_type(std::unexpect, join_error::wait_cancelled()), false);
    }
    std::shared_ptr<detail::task_state<T>> state;
  };

  // Held by a join operation until it starts: while it exists, the outcome can still be
  // joined (the handle may be gone meanwhile).
  struct lazy_join {
    explicit lazy_join(std::shared_ptr<detail::task_state<T>> s) noexcept : state(std::move(s)) {
      state->lazy_join_made();
    }
    lazy_join(lazy_join&& o) noexcept : state(std::move(o.state)) {}
    lazy_join(const lazy_join& o) noexcept : state(o.state) {
      if (state) state->lazy_join_made();
    }
    lazy_join& operator=(const lazy_join&) = delete;
    ~lazy_join() {
      if (state) state->lazy_join_gone();
    }
    std::shared_ptr<detail::task_state<T>> state;
  };

  static void claim(const std::shared_ptr<detail::task_state<T>>& st, const char* what) {
    if (!st->mark_taken())
      throw std::logic_error(std::string(what) +
                             ": the worker's outcome was already taken (or a join is still "
                             "waiting for it); join()/wait() yield it once");
  }

  std::shared_ptr<detail::task_state<T>> take_state(const char* what) {
    if (!state_) throw std::logic_error(std::string(what) + ": empty join handle (moved-from)");
    claim(state_, what);
    return state_;
  }

  void release() noexcept {
    if (state_) state_->handle_dropped();
    state_.reset();
  }

  std::shared_ptr<detail::task_state<T>> state_;
};

}  // namespace tenorite
