// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/operation.hpp — the base of every asynchronous operation, and the one
// routine that completes a user's handler.
//
// Invariants every operation of the library keeps (they hold because nothing else
// completes a handler):
// - the operation's memory comes from the handler's associated allocator (or Asio's
//   per-thread recycling allocator when the handler has none), and the allocator used to
//   free it is the copy taken when it was made, never read again from a moved-from handler;
// - the operation is freed before its handler runs, so the handler may start the next
//   operation at once and reuse the memory;
// - the handler runs on its associated executor (the operation's fallback when it has none),
//   which counts as outstanding work while the operation is pending whenever it belongs to
//   another execution context than the operation's own;
// - "inside its own initiating function" is a per-thread chain of markers naming the
//   operations being started; freeing an operation, or making one at a reused address,
//   blanks every marker naming that address;
// - a handler completed from inside its own initiating function is deferred, except a
//   coroutine's (it is resumed at once: that is how a caller and a worker on one thread
//   hand off without the scheduler); inline resumptions nest up to a per-thread bound, then
//   they are deferred and the stack unwinds;
// - an exception escaping a handler run inline is rethrown from the handler's executor (so
//   it comes out of that executor's run(), as with Asio's own operations), never from a
//   noexcept completion path;
// - while an execution context is being destroyed (tenorite::runtime's destructor, or a
//   context whose tenorite operations are being destroyed), a handler that is not a
//   coroutine's and belongs to that context runs at once on the destroying thread instead
//   of being queued to a scheduler that will only destroy it: every call completes once.
//   A coroutine of the dying context is destroyed with it, as Asio does.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <memory>
#include <tuple>
#include <tenorite/detail/cancellation.hpp>
#include <tenorite/detail/config.hpp>
#include <tenorite/unhandled_exception.hpp>
#include <type_traits>
#include <utility>

// Clang (seen with 16 here) may compute a thread-local's address once in a coroutine and
// reuse it after the coroutine resumed on another thread. Asio reads its thread-local call
// stack when it allocates the frame of an operation started with use_awaitable; if that
// start is inlined into a user's coroutine, the frame can come from another thread's cache
// and the heap is corrupted. Every tenorite function that starts such an operation is kept
// out of line, so the thread-local is read afresh on each call.
#define TENORITE_AWAITABLE_ENTRY TENORITE_NOINLINE

namespace tenorite::detail {

/// How deep direct (inline) resumptions may nest on one thread before we defer instead.
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

/// The execution context being destroyed on this thread, if any (see the invariants).
inline const boost::asio::execution_context*& dying_context() noexcept {
  thread_local const boost::asio::execution_context* ctx = nullptr;
  return ctx;
}

/// Completions for a dying context that could not run at once (made inside their own
/// initiation, or past the inline depth): run, oldest first, when the destruction's scope
/// ends, iteratively (a callback that retries on every failure would otherwise recurse).
struct dying_node {
  virtual void run() noexcept = 0;
  virtual ~dying_node() = default;
  dying_node* next = nullptr;
};
template <class F>
struct dying_fn final : dying_node {
  explicit dying_fn(F&& fn) : f(std::move(fn)) {}
  void run() noexcept override {
    try {
      std::move(f)();
    } catch (...) {
      report_unhandled(std::current_exception());
    }
  }
  F f;
};
struct dying_queue {
  dying_node* head = nullptr;
  dying_node* tail = nullptr;
  static dying_queue& local() noexcept {
    static thread_local constinit dying_queue q;
    return q;
  }
  void push(dying_node* n) noexcept {
    (tail ? tail->next : head) = n;
    tail = n;
  }
  void drain() noexcept {
    while (dying_node* n = head) {
      head = n->next;
      if (!head) tail = nullptr;
      n->run();
      delete n;
    }
  }
};

struct dying_context_scope {
  explicit dying_context_scope(const boost::asio::execution_context* c) noexcept
      : saved_(dying_context()) {
    dying_context() = c;
  }
  ~dying_context_scope() {
    dying_queue::local().drain();
    dying_context() = saved_;
  }
  dying_context_scope(const dying_context_scope&) = delete;
  dying_context_scope& operator=(const dying_context_scope&) = delete;

 private:
  const boost::asio::execution_context* saved_;
};

/// True for the handler type Asio uses to resume a coroutine (use_awaitable).
template <class H>
struct is_coroutine_handler : std::false_type {};
template <class Executor, class... Ts>
struct is_coroutine_handler<boost::asio::detail::awaitable_handler<Executor, Ts...>>
    : std::true_type {};
/// The library's own wrappers of a handler (a deadline race, a counted call) name the handler
/// they call as `wrapped_handler` and run on its executor: calling them resumes its coroutine.
template <class H>
  requires requires { typename H::wrapped_handler; }
struct is_coroutine_handler<H> : is_coroutine_handler<typename H::wrapped_handler> {};

/// Rethrows `e` from `ex`: it comes out of that executor's run().
inline void rethrow_from(const boost::asio::any_io_executor& ex,
                         const std::exception_ptr& e) noexcept {
  try {
    boost::asio::post(ex, [e] { std::rethrow_exception(e); });
  } catch (...) {  // the executor cannot take it either: nobody is left to tell
  }
}

/// True when `ex` is an io_context's executor, or a strand of one, that this thread runs now:
/// Asio's dispatch would run a function inline there, so it is called directly instead of
/// being type-erased into one of Asio's executor functions (an allocation and two moves of
/// everything it carries) on the way.
inline bool running_here(const boost::asio::any_io_executor& ex) noexcept {
  using io_executor = boost::asio::io_context::executor_type;
  if (const io_executor* e = ex.target<io_executor>()) return e->running_in_this_thread();
  if (const auto* s = ex.target<boost::asio::strand<io_executor>>())
    return s->running_in_this_thread();
  return false;
}

/// True when complete_on would run a handler of type Handler inline now: then the caller may
/// invoke it directly, with the values where they are (see operation::complete).
template <class Handler>
bool completes_inline(const boost::asio::any_io_executor& ex, bool immediate) noexcept {
  constexpr bool coroutine = is_coroutine_handler<std::decay_t<Handler>>::value;
  if (inline_depth() >= max_inline_depth) return false;
  if constexpr (!coroutine) {
    if (dying_context()) return false;  // complete_on's own rules for a dying context
  }
  return immediate ? coroutine : running_here(ex);
}

/// Runs `f` (which invokes a handler of type Handler) on the handler's executor `ex`.
///   immediate: we are still inside the operation's initiating function.
/// An exception from a handler run inline (Asio's dispatch lets it through) is rethrown
/// from `ex`; one from a handler run later comes out of run() by itself.
template <class Handler, class F>
void complete_on(const boost::asio::any_io_executor& ex, F&& f, bool immediate) noexcept {
  constexpr bool coroutine = is_coroutine_handler<std::decay_t<Handler>>::value;
  try {
    if constexpr (!coroutine) {
      if (const auto* dying = dying_context();
          dying && &boost::asio::query(ex, boost::asio::execution::context) == dying) {
        if (!immediate && inline_depth() < max_inline_depth) {
          inline_depth_scope scope;
          try {
            std::forward<F>(f)();
          } catch (...) {  // its executor is going: nobody else can be told
            report_unhandled(std::current_exception());
          }
        } else {
          dying_queue::local().push(new dying_fn<std::decay_t<F>>(std::forward<F>(f)));
        }
        return;
      }
    }
    if ((!immediate || coroutine) && inline_depth() < max_inline_depth) {
      inline_depth_scope scope;
      // Inside the initiation of a coroutine's operation we are already on its executor; on
      // a thread that runs `ex`, dispatch would run `f` inline.
      if (immediate || running_here(ex)) {
        std::forward<F>(f)();
      } else {
        boost::asio::dispatch(ex, std::forward<F>(f));
      }
    } else {
      // A continuation of the work in hand: Asio then queues it on this thread instead of
      // waking another one (a cross-core wake-up costs tens of microseconds on small VMs).
      boost::asio::defer(ex, std::forward<F>(f));
    }
  } catch (...) {
    rethrow_from(ex, std::current_exception());
  }
}

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

/// The handler's executor. When it runs on another execution context than the operation's
/// own, it counts as outstanding work there until the operation completes (so that context's
/// io_context::run() does not return under a pending call); on the service's own context
/// the live service already counts as work, and tracking each operation would only add two
/// contended atomic updates per call.
/// `always` forces tracking (operations of a bare channel, which no service keeps alive).
template <class Handler>
boost::asio::any_io_executor tracked_executor(const Handler& h,
                                              const boost::asio::any_io_executor& fallback,
                                              bool always = false) {
  boost::asio::any_io_executor ex = boost::asio::get_associated_executor(h, fallback);
  // The usual case, a handler on the operation's own executor, needs no property query.
  if (!always && ex == fallback) return ex;
  if (always || &boost::asio::query(ex, boost::asio::execution::context) !=
                    &boost::asio::query(fallback, boost::asio::execution::context))
    ex = boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked);
  return ex;
}

/// The operations whose initiating functions are running on this thread, innermost first:
/// a chain of scopes on the stack. An entry is blanked when its operation is freed on this
/// thread, and any entry naming an address is blanked when a new operation is made there, so
/// no entry ever names a later operation at a reused address (whatever the nesting: an
/// outer start whose operation was freed inside an inner one included).
struct initiation_scope {
  explicit initiation_scope(const void* op) noexcept : op_(op), prev_(top()) { top() = this; }
  ~initiation_scope() { top() = prev_; }
  initiation_scope(const initiation_scope&) = delete;
  initiation_scope& operator=(const initiation_scope&) = delete;

  /// The operation whose initiating function is innermost on this thread (null if none, or
  /// if that operation was freed meanwhile).
  static const void* current() noexcept { return top() ? top()->op_ : nullptr; }
  /// No running start names `op` any more (it is freed, or a new operation is made there).
  static void forget(const void* op) noexcept {
    for (initiation_scope* s = top(); s; s = s->prev_)
      if (s->op_ == op) s->op_ = nullptr;
  }

 private:
  static initiation_scope*& top() noexcept {
    thread_local initiation_scope* t = nullptr;
    return t;
  }
  const void* op_;
  initiation_scope* prev_;
};

inline const void* initiating_op() noexcept { return initiation_scope::current(); }

/// The base of an operation type Derived completing a Handler. Derived is made with
/// make_op and ends with exactly one of complete_with / complete / destroy.
template <class Derived, class Handler>
class operation {
 public:
  using handler_type = Handler;
  using allocator_type = decltype(op_allocator(std::declval<const Handler&>()));

  operation(const operation&) = delete;
  operation& operator=(const operation&) = delete;

  Handler& handler() noexcept { return handler_; }
  const boost::asio::any_io_executor& executor() const noexcept { return executor_; }

  /// Frees the operation, then runs `f(Handler&&)` on the handler's executor. The one place
  /// where a handler is completed.
  template <class F>
  void complete_with(F&& f) noexcept {
    Derived* self = static_cast<Derived*>(this);
    Handler h(std::move(handler_));
    boost::asio::any_io_executor ex(std::move(executor_));
    const bool immediate = initiating_op() == self;
    destroy();
    complete_on<Handler>(
        ex,
        [h = std::move(h), f = std::forward<F>(f)]() mutable { std::move(f)(std::move(h)); },
        immediate);
  }

  /// Completes with `handler(args...)`. The values are moved out first: they may live in the
  /// operation, which is freed before the handler runs.
  template <class... Args>
  void complete(Args&&... args) noexcept {
    complete_values(std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...));
  }

  /// As complete, for values that live outside the operation (a reply on the responder's
  /// stack): a handler run inline takes them from where they are, without a copy.
  template <class... Args>
  void complete_outside(Args&&... args) noexcept {
    complete_values(std::forward_as_tuple(std::forward<Args>(args)...));
  }

  // complete_with for a handler called with `values`: run inline, it is called directly (the
  // common case: a caller resumed on the thread that answers it); queued, the values go with
  // it.
  template <class... Vs>
  void complete_values(std::tuple<Vs...>&& values) noexcept {
    Derived* self = static_cast<Derived*>(this);
    Handler h(std::move(handler_));
    boost::asio::any_io_executor ex(std::move(executor_));
    const bool immediate = initiating_op() == self;
    destroy();
    if (completes_inline<Handler>(ex, immediate)) {
      inline_depth_scope scope;
      try {
        std::apply(std::move(h), std::move(values));
      } catch (...) {  // as complete_on: out of the executor's run(), not a noexcept path
        rethrow_from(ex, std::current_exception());
      }
      return;
    }
    complete_on<Handler>(
        ex,
        [h = std::move(h), v = std::tuple<std::decay_t<Vs>...>(std::move(values))]() mutable {
          std::apply(std::move(h), std::move(v));
        },
        immediate);
  }

  /// Frees the operation without running its handler (its execution context is going).
  void destroy() noexcept {
    Derived* self = static_cast<Derived*>(this);
    // Freed inside its own initiation (it completed at once): its address no longer names a
    // starting operation. Left set, the marker would outlive the memory, and an operation
    // made later at the same address within the same initiation (the handler it resumed at
    // once starts another one) would take itself for starting and resume its coroutine here,
    // on whatever thread completes it, off the coroutine's executor.
    initiation_scope::forget(self);
    cancel_ctl* c = std::exchange(ctl, nullptr);
    using traits =
        typename std::allocator_traits<allocator_type>::template rebind_traits<Derived>;
    typename traits::allocator_type a(alloc_);
    self->~Derived();
    traits::deallocate(a, self, 1);
    if (c) c->release();
  }

  /// The cancellation block connecting the handler's slot to this operation, if any.
  cancel_ctl* ctl = nullptr;

  /// Connects the handler's cancellation slot (if it has one) to Derived::on_signal (a call,
  /// arbitrated lock-free by ctl->fsm) or Derived::on_cancel (run under ctl->m).
  void arm_cancellation() {
    auto slot = boost::asio::get_associated_cancellation_slot(handler_);
    if (!slot.is_connected()) return;
    ctl = cancel_ctl::make();
    ctl->op = static_cast<Derived*>(this);
    if constexpr (requires { &Derived::on_signal; }) {
      ctl->signal = &Derived::on_signal;  // arbitrated by ctl->fsm (a call)
    } else {
      ctl->cancel = &Derived::on_cancel;
    }
    try {
      slot.template emplace<cancel_slot_handler>(ctl);
    } catch (...) {  // out of memory: the slot never took its reference
      ctl->release();
      throw;
    }
  }

 protected:
  operation(Handler&& h, const boost::asio::any_io_executor& fallback, bool track_always)
      : alloc_(op_allocator(h)),
        executor_(tracked_executor(h, fallback, track_always)),
        handler_(std::move(h)) {}
  ~operation() = default;

 private:
  template <class Op, class H, class... Args>
  friend Op* make_op(H& handler, Args&&... args);

  [[no_unique_address]] allocator_type alloc_;  // Asio's recycling allocator takes no room
  boost::asio::any_io_executor executor_;
  Handler handler_;
};

/// Connects `op`'s cancellation slot. If that fails (out of memory), the operation goes as
/// if it never started, before the exception leaves the initiation: `forget()` first lets go
/// of whatever points at it, then a plain handler is destroyed with it; a coroutine's is left
/// (its frames are being started: tearing them down from here may need the memory we lack),
/// as channel::initiate_receive does.
template <class Op, class Forget>
void arm_or_abandon(Op* op, Forget&& forget) {
  try {
    op->arm_cancellation();
  } catch (...) {
    std::forward<Forget>(forget)();
    if constexpr (!is_coroutine_handler<typename Op::handler_type>::value) op->destroy();
    throw;
  }
}
template <class Op>
void arm_or_abandon(Op* op) {
  arm_or_abandon(op, [] {});
}

/// Allocates and constructs an operation with op_allocator(handler): Op(handler, args...).
template <class Op, class Handler, class... Args>
Op* make_op(Handler& handler, Args&&... args) {
  auto alloc = op_allocator(handler);
  using traits = typename std::allocator_traits<decltype(alloc)>::template rebind_traits<Op>;
  typename traits::allocator_type a(alloc);
  Op* p = traits::allocate(a, 1);
  initiation_scope::forget(p);  // a start still naming this address is an older operation's
  try {
    return ::new (static_cast<void*>(p)) Op(std::move(handler), std::forward<Args>(args)...);
  } catch (...) {
    traits::deallocate(a, p, 1);
    throw;
  }
}

/// Completes `h(args...)` from inside its own initiating function when the outcome is ready
/// at once, so no operation is made: the rules of operation::complete_with with `immediate`
/// (a coroutine resumes at once within the depth bound; any other handler is deferred to its
/// executor, `fallback` when it has none). A deferred handler counts as work there by itself.
template <class Handler, class... Args>
void complete_now(Handler h, const boost::asio::any_io_executor& fallback,
                  Args&&... args) noexcept {
  using H = Handler;
  boost::asio::any_io_executor ex = boost::asio::get_associated_executor(h, fallback);
  if constexpr (is_coroutine_handler<H>::value) {
    if (inline_depth() < max_inline_depth) {
      inline_depth_scope scope;
      try {
        // cppcheck-suppress ignoredReturnValue ; the handler is called, std::move is a cast
        std::move(h)(std::forward<Args>(args)...);
      } catch (...) {  // as complete_on: out of the executor's run(), not a noexcept path
        rethrow_from(ex, std::current_exception());
      }
      return;
    }
  }
  complete_on<H>(
      ex,
      [h = std::move(h), ... a = std::forward<Args>(args)]() mutable {
        std::move(h)(std::move(a)...);
      },
      true);
}

/// The executor of the library's own blocking handlers: they only wake a waiting thread, so
/// they run wherever the operation completes, whatever happens to any execution context.
inline boost::asio::any_io_executor inline_executor() {
  return boost::asio::any_io_executor(boost::asio::system_executor());
}

}  // namespace tenorite::detail
