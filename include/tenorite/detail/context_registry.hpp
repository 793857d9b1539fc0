// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/context_registry.hpp — the tenorite objects holding handlers of a context.
//
// Why: a coroutine parked in a tenorite receive (a worker in recv(), any coroutine in
// channel::async_receive) is held by tenorite, not by its io_context. When an io_context is
// destroyed, Asio destroys the handlers it holds; this registry, an Asio service of that
// context, does the same for the handlers tenorite holds, so the coroutine frames are
// destroyed, a worker's guard ends its service as aborted, and nothing waits forever.
//
// Shutdown runs in two phases so that no lock is held while frames are destroyed (their
// destructors may destroy channels, which unregister here): first every registered object
// hands over its parked operations bound to this context, then they are destroyed.
#pragma once

#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <mutex>
#include <tenorite/detail/operation.hpp>
#include <tenorite/detail/virtual_time.hpp>
#include <vector>

namespace tenorite::detail {

/// A parked operation to destroy without running it.
struct parked_op {
  void* op;
  void (*destroy)(void*) noexcept;
};

class context_registry final : public boost::asio::execution_context::service {
 public:
  using key_type = context_registry;
  static inline boost::asio::execution_context::id id;

  class entry {
   public:
    /// Move out every parked operation whose handler runs on `ctx`, to be destroyed.
    virtual void collect_parked(const boost::asio::execution_context& ctx,
                                std::vector<parked_op>& out) noexcept = 0;

   protected:
    ~entry() = default;

   private:
    friend class context_registry;
    context_registry* registry_ = nullptr;  // null once unregistered or the context is gone
    entry* prev_ = nullptr;
    entry* next_ = nullptr;
  };

  explicit context_registry(boost::asio::execution_context& ctx)
      : boost::asio::execution_context::service(ctx), ctx_(ctx) {}

  /// Registers `e` with the registry of `ex`'s context (nothing if that context is shutting
  /// down).
  template <class Executor>
  static void add(const Executor& ex, entry* e) {
    boost::asio::execution_context& ctx = boost::asio::query(ex, boost::asio::execution::context);
    if (!boost::asio::has_service<context_registry>(ctx)) make_older_services(ex);
    auto& reg = boost::asio::use_service<context_registry>(ctx);
    std::lock_guard lk(mutex());
    if (reg.shut_down_) return;
    e->registry_ = &reg;
    e->prev_ = nullptr;
    e->next_ = reg.head_;
    if (reg.head_) reg.head_->prev_ = e;
    reg.head_ = e;
  }

  /// Unregisters `e`; safe after its context was destroyed.
  static void remove(entry* e) noexcept {
    std::lock_guard lk(mutex());
    context_registry* reg = e->registry_;
    if (!reg) return;
    (e->prev_ ? e->prev_->next_ : reg->head_) = e->next_;
    if (e->next_) e->next_->prev_ = e->prev_;
    e->prev_ = e->next_ = nullptr;
    e->registry_ = nullptr;
  }

 private:
  // A context shuts its services down newest first. The strands' and the timers' services
  // hold handlers whose destruction ends a tenorite worker (its first step, or co_spawn's
  // entry, queued on its strand) or operation (a deadline's wait), and so completes calls:
  // made before the registry, they shut down after it, when completions for the dying
  // context already run at once instead of being queued to a scheduler about to drop them.
  template <class Executor>
  static void make_older_services(const Executor& ex) {
    (void)boost::asio::make_strand(ex);
    // A simulation keeps its own timers (destroyed after its services' shutdown); a
    // steady_timer there would start a scheduler thread of its own in real time.
    if (!virtual_clock_of(boost::asio::query(ex, boost::asio::execution::context))) {
      boost::asio::steady_timer timer(ex);
    }
  }

  // One lock for every registry: it also guards each entry's registry_ pointer, which a
  // context's shutdown clears while the entry may be being destroyed on another thread.
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }

  // From the shutdown until the registry is destroyed (both on the thread destroying the
  // context, after which only other services' shutdown and destruction run), completions
  // for this context run at once instead of being queued to its dying scheduler.
  ~context_registry() override {
    if (dying_set_) {
      dying_queue::local().drain();
      dying_context() = dying_saved_;
    }
  }

  // May run more than once: newer Asio (Boost 1.88) shuts the services down from
  // io_context's destructor and again from execution_context's. Only the first call saves
  // what to restore (saving again would save this context itself, left set for ever after:
  // a later context at the same address would take itself for dying).
  void shutdown() override {
    if (!dying_set_) {
      dying_saved_ = dying_context();
      dying_set_ = true;
    }
    dying_context() = &ctx_;
    std::vector<parked_op> doomed;
    {
      std::lock_guard lk(mutex());
      shut_down_ = true;
      for (entry* e = head_; e;) {
        e->collect_parked(ctx_, doomed);
        entry* next = e->next_;
        e->registry_ = nullptr;
        e->prev_ = e->next_ = nullptr;
        e = next;
      }
      head_ = nullptr;
    }
    for (auto& p : doomed) p.destroy(p.op);
  }

  boost::asio::execution_context& ctx_;
  entry* head_ = nullptr;
  bool shut_down_ = false;
  bool dying_set_ = false;
  const boost::asio::execution_context* dying_saved_ = nullptr;
};

}  // namespace tenorite::detail
