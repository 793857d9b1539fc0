// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/inbox.hpp — completions handed to an io_context by threads that do not run
// it, in batches: one post to the context carries every completion that arrives before it
// runs.
//
// Why: a post from a thread outside the context allocates Asio's operation on that thread
// (freed on another: the allocator's slow, cross-thread path) and takes the scheduler's mutex
// against the context's own threads, which poll it while they spin. Ending ten thousand idle
// services from the main thread did that ten thousand times. Here a completion links its own
// operation into a lock-free list; only the one that finds the list empty posts.
//
// Invariants:
// - a pushed node is run exactly once, or destroyed unrun exactly once when the context shuts
//   down first (as Asio destroys a handler it never ran);
// - while the list is not empty, a drain posted to the context has not taken it yet (the push
//   that found the list empty posted it), so the context counts work for every node and its
//   run() does not return under one;
// - a drain runs what it took oldest first, so on a context run by one thread the nodes one
//   thread pushes run in the order it pushed them; with more threads two drains may overlap
//   (as two of Asio's own posts may);
// - once the context has shut down, a push destroys its node at once (the flag and the list
//   are sequentially consistent, so a push that lands after shutdown's drain sees the flag);
//   a push must not race the context's destruction itself, as a post must not;
// - what is destroyed unrun because the context shuts down is destroyed with the context
//   marked dying on this thread (operation.hpp): the completions it causes on that context
//   (a worker's end returning its queued calls) run at once instead of being queued to a
//   scheduler that is shutting down.
#pragma once

#include <atomic>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <tenorite/detail/operation.hpp>
#include <utility>

namespace tenorite::detail {

/// An operation waiting in an inbox. `fn(node, true)` completes it (on the context's thread);
/// `fn(node, false)` destroys it unrun.
struct inbox_node {
  using fn_type = void (*)(inbox_node*, bool run) noexcept;
  explicit inbox_node(fn_type f) noexcept : fn(f) {}
  fn_type fn;
  inbox_node* next = nullptr;
};

/// One per io_context (an Asio service of it).
class inbox final : public boost::asio::execution_context::service {
 public:
  static inline boost::asio::execution_context::id id;

  explicit inbox(boost::asio::execution_context& ctx)
      : boost::asio::execution_context::service(ctx),
        ex_(static_cast<boost::asio::io_context&>(ctx).get_executor()) {}

  static inbox& of(boost::asio::io_context& ctx) { return boost::asio::use_service<inbox>(ctx); }

  /// Hands `n` to the context. Any thread; never runs `n` here (but destroys it when the
  /// context is gone).
  void push(inbox_node* n) noexcept {
    inbox_node* old = head_.load(std::memory_order_relaxed);
    do {
      n->next = old;
    } while (!head_.compare_exchange_weak(old, n, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
    if (old) return;  // the drain posted for the first of them takes this one too
    if (closed_.load(std::memory_order_seq_cst)) return drain_dying();
    try {
      boost::asio::post(ex_, drainer(this));
    } catch (...) {
      // No memory for the post: the list cannot reach the context, and running it here
      // would run handlers off their executor. They are destroyed unrun, as if the context
      // had gone (each operation then ends as its owner's documented destruction says).
      drain(false);
    }
  }

 private:
  // Posted to the context; destroyed unrun (the context shutting down) it destroys what
  // the list holds.
  class drainer {
   public:
    explicit drainer(inbox* b) noexcept : box_(b) {}
    drainer(drainer&& o) noexcept : box_(std::exchange(o.box_, nullptr)) {}
    drainer& operator=(drainer&&) = delete;
    ~drainer() {
      if (box_) box_->drain_dying();
    }
    void operator()() { std::exchange(box_, nullptr)->drain(true); }

   private:
    inbox* box_;
  };

  void drain_dying() noexcept {
    dying_context_scope dying(&context());
    drain(false);
  }

  void drain(bool run) noexcept {
    inbox_node* n = head_.exchange(nullptr, std::memory_order_seq_cst);
    inbox_node* oldest = nullptr;
    while (n) {
      inbox_node* next = n->next;
      n->next = oldest;
      oldest = n;
      n = next;
    }
    while (oldest) {
      inbox_node* next = oldest->next;
      oldest->fn(oldest, run);
      oldest = next;
    }
  }

  void shutdown() override {
    closed_.store(true, std::memory_order_seq_cst);
    drain_dying();
  }

  boost::asio::io_context::executor_type ex_;
  std::atomic<inbox_node*> head_{nullptr};
  std::atomic<bool> closed_{false};
};

}  // namespace tenorite::detail
