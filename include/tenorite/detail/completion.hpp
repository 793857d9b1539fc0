// tenorite/detail/completion.hpp — how tenorite completes a user's handler.
//
// Rules every operation in the library follows:
// - an operation's state is allocated with the handler's associated allocator and freed
//   before the handler runs (so the handler may start the next operation at once);
// - a handler always runs on its associated executor;
// - a handler completed from inside its own initiating function is posted, except for
//   the handlers of Asio coroutines (awaitable_handler), which are resumed directly: that
//   is how a caller and a worker on one thread hand off without the scheduler;
// - direct resumption nests on the stack, so it is bounded by a per-thread depth: past the
//   bound the handler is posted and the stack unwinds.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <type_traits>
#include <utility>

// Clang (seen with 16 here) may compute a thread-local's address once in a coroutine and
// reuse it after the coroutine resumed on another thread. Asio reads its thread-local call
// stack when it allocates the frame of an operation started with use_awaitable; if that
// start is inlined into a user's coroutine, the frame can come from another thread's cache
// and the heap is corrupted. Every tenorite function that starts such an operation is kept
// out of line, so the thread-local is read afresh on each call.
#define TENORITE_AWAITABLE_ENTRY [[gnu::noinline]]

namespace tenorite::detail {

/// How deep direct (inline) resumptions may nest on one thread before we post instead.
#ifndef TENORITE_MAX_INLINE_DEPTH
#define TENORITE_MAX_INLINE_DEPTH 8
#endif
inline constexpr int max_inline_depth = TENORITE_MAX_INLINE_DEPTH;

inline int& inline_depth() noexcept {
  thread_local int depth = 0;
  return depth;
}

struct inline_depth_scope {
  inline_depth_scope() noexcept { ++inline_depth(); }
  ~inline_depth_scope() { --inline_depth(); }
  inline_depth_scope(const inline_depth_scope&) = delete;
  inline_depth_scope& operator=(const inline_depth_scope&) = delete;
};

/// True for the handler type Asio uses to resume a coroutine (use_awaitable).
template <class H>
struct is_coroutine_handler : std::false_type {};
template <class Executor, class... Ts>
struct is_coroutine_handler<boost::asio::detail::awaitable_handler<Executor, Ts...>>
    : std::true_type {};

/// Runs `f` (which invokes `handler`) on the handler's executor `ex`.
///   immediate: we are still inside the operation's initiating function.
template <class Handler, class Executor, class F>
void complete_on(const Executor& ex, F&& f, bool immediate) {
  constexpr bool coroutine = is_coroutine_handler<std::decay_t<Handler>>::value;
  if ((!immediate || coroutine) && inline_depth() < max_inline_depth) {
    inline_depth_scope scope;
    if (immediate) {
      // Inside the initiation of a coroutine's operation we are already on its executor.
      std::forward<F>(f)();
    } else {
      boost::asio::dispatch(ex, std::forward<F>(f));
    }
  } else {
    // A continuation of the work in hand: Asio then queues it on this thread instead of
    // waking another one (a cross-core wake-up costs tens of microseconds on small VMs).
    boost::asio::execution::execute(
        boost::asio::prefer(ex, boost::asio::execution::blocking.never,
                            boost::asio::execution::relationship.continuation),
        std::forward<F>(f));
  }
}

/// The handler's executor. When it runs on another execution context than the service's, it
/// counts as outstanding work there until the operation completes (so that context's
/// io_context::run() does not return under a pending call); on the service's own context
/// the live service already counts as work, and tracking each operation would only add two
/// contended atomic updates per call.
/// `always` forces tracking (operations of a bare channel, which no service keeps alive).
template <class Handler>
boost::asio::any_io_executor tracked_executor(const Handler& h,
                                              const boost::asio::any_io_executor& service_ex,
                                              bool always = false) {
  boost::asio::any_io_executor ex = boost::asio::get_associated_executor(h, service_ex);
  if (always || &boost::asio::query(ex, boost::asio::execution::context) !=
                    &boost::asio::query(service_ex, boost::asio::execution::context))
    ex = boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked);
  return ex;
}
template <class Handler, class Default>
using tracked_executor_t = boost::asio::any_io_executor;

/// The allocator for an operation's state: the handler's own, or, when it has none (the
/// default std::allocator, as coroutines and plain callbacks do), Asio's per-thread recycling
/// allocator — so a call in the steady state does not reach malloc.
template <class Handler>
auto op_allocator(const Handler& h) {
  auto alloc = boost::asio::get_associated_allocator(h);
  if constexpr (std::is_same_v<decltype(alloc), std::allocator<void>>) {
    return boost::asio::recycling_allocator<void>();
  } else {
    return alloc;
  }
}

/// Allocates and constructs an operation with op_allocator(handler).
template <class Op, class Handler, class... Args>
Op* new_op(Handler& handler, Args&&... args) {
  auto alloc = op_allocator(handler);
  using traits = typename std::allocator_traits<decltype(alloc)>::template rebind_traits<Op>;
  typename traits::allocator_type a(alloc);
  Op* p = traits::allocate(a, 1);
  try {
    return ::new (static_cast<void*>(p)) Op(std::move(handler), std::forward<Args>(args)...);
  } catch (...) {
    traits::deallocate(a, p, 1);
    throw;
  }
}

/// Destroys and frees an operation made by new_op. The handler must be moved out first or
/// still be inside (it is then destroyed).
template <class Op>
void delete_op(Op* op) noexcept {
  auto alloc = op_allocator(op->handler);
  using traits = typename std::allocator_traits<decltype(alloc)>::template rebind_traits<Op>;
  typename traits::allocator_type a(alloc);
  op->~Op();
  traits::deallocate(a, op, 1);
}

/// The thread-local marker of an operation whose initiating function is running.
inline const void*& initiating_op() noexcept {
  thread_local const void* op = nullptr;
  return op;
}

struct initiation_scope {
  explicit initiation_scope(const void* op) noexcept : saved_(initiating_op()) {
    initiating_op() = op;
  }
  ~initiation_scope() { initiating_op() = saved_; }
  initiation_scope(const initiation_scope&) = delete;
  initiation_scope& operator=(const initiation_scope&) = delete;

 private:
  const void* saved_;
};

}  // namespace tenorite::detail
