// SPDX-License-Identifier: BSL-1.0
// tenorite/timer.hpp — a steady-clock timer that also runs in a simulation's virtual time.
//
//   tenorite::timer t(ex, 30s);                  // ex: any executor, a simulation's included
//   co_await t.async_wait(asio::use_awaitable);  // 30 s later (in virtual time on a simulation)
//
// On a real execution context (an io_context, a runtime, a thread_pool) it is a
// boost::asio::steady_timer, with its exact behaviour. On a testing::simulation
// (testing.hpp) the wait is queued in the simulation's virtual time instead: it fires when
// the simulation's time reaches the expiry (simulation::run, block_on, advance), never in
// real time. The library's own deadlines, back-offs and restart windows use it; use it
// instead of steady_timer in code you want to test in virtual time.
//
// The interface is steady_timer's, in the part that matters: expires_at / expires_after
// (each cancels the pending waits and returns how many), expiry(), cancel(), and
// async_wait(token) completing with void(error_code): success at the expiry,
// boost::asio::error::operation_aborted when cancelled (also by the destructor).
// now() is the time as the timer's context keeps it.
// Per-operation cancellation of async_wait: terminal, partial and total; the wait then ends
// with operation_aborted.
// Not movable (hold it by value or in a shared_ptr), not copyable.
// A wait still pending when its simulation is destroyed is destroyed unrun, as an
// io_context destroys its handlers; starting a wait on a timer whose simulation is gone
// throws std::logic_error.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tenorite/detail/virtual_time.hpp>
#include <type_traits>
#include <utility>

namespace tenorite {

class timer {
 public:
  using clock_type = std::chrono::steady_clock;
  using time_point = clock_type::time_point;
  using duration = clock_type::duration;
  using executor_type = boost::asio::any_io_executor;

  /// A timer with no expiry set (it expires at once), on `ex`.
  explicit timer(const executor_type& ex) : ex_(ex) {
    // The timer's share keeps the clock readable after its simulation is gone.
    virtual_ = detail::virtual_clock_of(boost::asio::query(ex_, boost::asio::execution::context));
    if (!virtual_) real_.emplace(ex_);
  }
  /// A timer on an execution context's executor.
  template <class ExecutionContext>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  explicit timer(ExecutionContext& ctx) : timer(executor_type(ctx.get_executor())) {}
  timer(const executor_type& ex, time_point t) : timer(ex) { expires_at(t); }
  timer(const executor_type& ex, duration d) : timer(ex) { expires_after(d); }
  template <class ExecutionContext>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&> timer(
      ExecutionContext& ctx, time_point t)
      : timer(executor_type(ctx.get_executor()), t) {}
  template <class ExecutionContext>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&> timer(
      ExecutionContext& ctx, duration d)
      : timer(executor_type(ctx.get_executor()), d) {}

  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;

  /// Cancels the pending waits (they complete with operation_aborted).
  ~timer() {
    if (virtual_) virtual_->cancel_owner(this);
  }

  executor_type get_executor() const noexcept { return ex_; }

  /// The time as this timer's context keeps it (virtual on a simulation).
  time_point now() const noexcept { return virtual_ ? virtual_->now() : clock_type::now(); }

  time_point expiry() const { return real_ ? real_->expiry() : expiry_; }

  /// Sets the expiry; cancels the pending waits and returns how many there were.
  std::size_t expires_at(time_point t) {
    if (real_) return real_->expires_at(t);
    const std::size_t n = cancel();
    expiry_ = t;
    return n;
  }
  std::size_t expires_after(duration d) { return expires_at(now() + d); }

  /// Cancels the pending waits (they complete with operation_aborted); returns how many.
  std::size_t cancel() {
    if (real_) return real_->cancel();
    return virtual_->cancel_owner(this);
  }

  /// Waits for the expiry: void(error_code), success or operation_aborted.
  template <class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_wait(Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
        [](auto handler, timer* self) { self->start_wait(std::move(handler)); }, token, this);
  }

 private:
  template <class Handler>
  struct wait_op : detail::virtual_wait {
    Handler handler;
    boost::asio::any_io_executor ex;  // the handler's, counting as work until it runs

    wait_op(Handler&& h, const executor_type& timer_ex)
        : handler(std::move(h)),
          ex(boost::asio::prefer(boost::asio::get_associated_executor(handler, timer_ex),
                                 boost::asio::execution::outstanding_work.tracked)) {}

    // Posts the handler with `ec` to its executor; throws when it cannot (then `self` is
    // destroyed with its handler, unrun).
    static void post_completion(std::unique_ptr<wait_op> self, boost::system::error_code ec) {
      auto ex = self->ex;
      // The slot is cleared when the handler runs, never inside the emit that cancelled it.
      boost::asio::post(ex, [h = std::move(self->handler), ec]() mutable {
        auto s = boost::asio::get_associated_cancellation_slot(h);
        if (s.is_connected()) s.clear();
        std::move(h)(ec);
      });
    }

    static void finish_op(detail::virtual_wait* base, boost::system::error_code ec,
                          bool run) noexcept {
      std::unique_ptr<wait_op> self(static_cast<wait_op*>(base));
      if (!run) {
        auto slot = boost::asio::get_associated_cancellation_slot(self->handler);
        if (slot.is_connected()) slot.clear();
        return;  // the simulation is being destroyed: destroyed unrun
      }
      try {
        post_completion(std::move(self), ec);
      } catch (...) {  // no memory to post the completion: destroyed unrun, nothing to tell
      }
    }
  };

  struct wait_cancel {
    wait_cancel(const std::shared_ptr<detail::virtual_clock>& c, detail::virtual_clock::key k)
        : clock(c), key(k) {}
    std::weak_ptr<detail::virtual_clock> clock;
    detail::virtual_clock::key key;
    void operator()(boost::asio::cancellation_type t) const {
      if ((t & (boost::asio::cancellation_type::terminal | boost::asio::cancellation_type::partial |
                boost::asio::cancellation_type::total)) == boost::asio::cancellation_type::none)
        return;
      if (auto c = clock.lock()) c->cancel_one(key);
    }
  };

  template <class Handler>
  void start_wait(Handler handler) {
    if (real_) {
      real_->async_wait(std::move(handler));
      return;
    }
    auto op = std::make_unique<wait_op<Handler>>(std::move(handler), ex_);
    op->owner = this;
    op->finish = &wait_op<Handler>::finish_op;
    if (virtual_->closed())
      throw std::logic_error(
          "tenorite::timer::async_wait: the timer's simulation was destroyed; a timer can "
          "only wait while its execution context lives");
    if (expiry_ <= virtual_->now()) {  // already due: completes as soon as it may
      wait_op<Handler>::post_completion(std::move(op), {});  // throws as Asio's would
      return;
    }
    // The cancellation handler first, then the queue: once queued the wait may end at once.
    auto slot = boost::asio::get_associated_cancellation_slot(op->handler);
    const detail::virtual_clock::key key = virtual_->make_key(expiry_);
    if (slot.is_connected()) slot.template emplace<wait_cancel>(virtual_, key);
    if (!virtual_->add(op.get(), key)) {
      if (slot.is_connected()) slot.clear();
      throw std::logic_error(
          "tenorite::timer::async_wait: the timer's simulation was destroyed; a timer can "
          "only wait while its execution context lives");
    }
    (void)op.release();
  }

  executor_type ex_;
  std::optional<boost::asio::steady_timer> real_;
  std::shared_ptr<detail::virtual_clock> virtual_;
  time_point expiry_{};
};

}  // namespace tenorite
