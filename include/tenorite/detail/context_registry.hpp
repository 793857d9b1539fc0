// tenorite/detail/context_registry.hpp — the services living on one execution context.
//
// Why: a worker parked in recv() is held by tenorite (its handler sits in the channel), not
// by the io_context. When an io_context is destroyed, Asio destroys the handlers it holds;
// this registry (an Asio service of that context) does the same for the handlers tenorite
// holds, so the worker's coroutine frame is destroyed, its guard ends the service as
// aborted, and nothing waits forever.
#pragma once

#include <boost/asio/execution_context.hpp>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace tenorite::detail {

class context_registry final : public boost::asio::execution_context::service {
 public:
  using key_type = context_registry;
  static inline boost::asio::execution_context::id id;

  struct entry {
    /// The context is shutting down: destroy (do not run) the handlers tenorite holds.
    virtual void on_context_shutdown() noexcept = 0;
    virtual ~entry() = default;
  };

  explicit context_registry(boost::asio::execution_context& ctx)
      : boost::asio::execution_context::service(ctx) {}

  /// Returns false when the context is already shutting down.
  bool add(const std::shared_ptr<entry>& e) {
    std::lock_guard lk(m_);
    if (shut_down_) return false;
    entries_.emplace(e.get(), e);
    return true;
  }

  void remove(const entry* e) noexcept {
    std::lock_guard lk(m_);
    entries_.erase(e);
  }

 private:
  void shutdown() override {
    std::vector<std::shared_ptr<entry>> live;
    {
      std::lock_guard lk(m_);
      shut_down_ = true;
      for (auto& [key, weak] : entries_)
        if (auto e = weak.lock()) live.push_back(std::move(e));
      entries_.clear();
    }
    for (auto& e : live) e->on_context_shutdown();
  }

  std::mutex m_;
  bool shut_down_ = false;
  std::unordered_map<const entry*, std::weak_ptr<entry>> entries_;
};

}  // namespace tenorite::detail
