// SPDX-License-Identifier: BSL-1.0
// tenorite/sharded.hpp — N workers each owning a part of the state, behind one caller that
// routes each request by a key (as Seastar's sharded<> does).
//
//   auto [tasks, caller] = tenorite::start_sharded(
//       kv_service{}, rt, 4, tenorite::service_options{},
//       [](std::size_t shard) { return kv_config{.shard = shard}; },   // or one Config to copy
//       [](const kv_request& r) { return std::hash<std::string>{}(key_of(r)); });
//   auto r = co_await caller.send_request(kv_request{...});  // goes to shard key % 4
//
// Invariants:
// - a request always goes to shard key(request) % shards(), so requests with equal keys are
//   served by the same worker, in the order each caller sent them;
// - each shard is an ordinary service (its own queue, options, join handle): one shard
//   ending does not end the others; calls routed to an ended shard fail with send_failure;
// - sharded_caller has the call forms of caller with the same outcomes.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <tenorite/caller.hpp>
#include <tenorite/service.hpp>
#include <type_traits>
#include <utility>
#include <vector>

namespace tenorite {

template <class Req, class Resp, class Err>
class sharded_caller {
 public:
  using caller_type = caller<Req, Resp, Err>;
  using result_type = typename caller_type::result_type;
  using notify_result = typename caller_type::notify_result;
  using key_function = std::function<std::size_t(const Req&)>;

  sharded_caller() = default;
  sharded_caller(std::vector<caller_type> shards, key_function key)
      : shards_(std::make_shared<const std::vector<caller_type>>(std::move(shards))),
        key_(std::make_shared<const key_function>(std::move(key))) {
    if (shards_->empty())
      throw std::invalid_argument("tenorite::sharded_caller: at least one shard is needed");
    if (!*key_) throw std::invalid_argument("tenorite::sharded_caller: empty key function");
  }

  /// The caller of the shard that serves `req`.
  const caller_type& shard_for(const Req& req) const {
    return (*checked("shard_for"))[(*key_)(req) % shards_->size()];
  }
  const caller_type& shard(std::size_t i) const { return checked("shard")->at(i); }
  std::size_t shards() const noexcept { return shards_ ? shards_->size() : 0; }
  explicit operator bool() const noexcept { return static_cast<bool>(shards_); }

  template <class... Args>
  auto async_send_request(Req req, Args&&... args) const {
    const auto& c = shard_for(req);
    return c.async_send_request(std::move(req), std::forward<Args>(args)...);
  }
  auto send_request(Req req) const {
    const auto& c = shard_for(req);
    return c.send_request(std::move(req));
  }
  result_type send_request_blocking(Req req) const {
    const auto& c = shard_for(req);
    return c.send_request_blocking(std::move(req));
  }
  template <class... Args>
  auto async_try_send_request(Req req, Args&&... args) const {
    const auto& c = shard_for(req);
    return c.async_try_send_request(std::move(req), std::forward<Args>(args)...);
  }
  auto try_send_request(Req req) const {
    const auto& c = shard_for(req);
    return c.try_send_request(std::move(req));
  }
  result_type try_send_request_blocking(Req req) const {
    const auto& c = shard_for(req);
    return c.try_send_request_blocking(std::move(req));
  }
  template <class... Args>
  auto async_send_request_for(Req req, Args&&... args) const {
    const auto& c = shard_for(req);
    return c.async_send_request_for(std::move(req), std::forward<Args>(args)...);
  }
  template <class... Args>
  auto async_send_request_until(Req req, Args&&... args) const {
    const auto& c = shard_for(req);
    return c.async_send_request_until(std::move(req), std::forward<Args>(args)...);
  }
  template <class Duration>
  auto send_request_for(Req req, Duration timeout) const {
    const auto& c = shard_for(req);
    return c.send_request_for(std::move(req), timeout);
  }
  template <class Duration>
  result_type send_request_blocking_for(Req req, Duration timeout) const {
    const auto& c = shard_for(req);
    return c.send_request_blocking_for(std::move(req), timeout);
  }
  template <class TimePoint>
  auto send_request_until(Req req, TimePoint deadline) const {
    const auto& c = shard_for(req);
    return c.send_request_until(std::move(req), deadline);
  }
  template <class TimePoint>
  result_type send_request_blocking_until(Req req, TimePoint deadline) const {
    const auto& c = shard_for(req);
    return c.send_request_blocking_until(std::move(req), deadline);
  }
  template <class... Args>
  auto async_notify(Req req, Args&&... args) const {
    const auto& c = shard_for(req);
    return c.async_notify(std::move(req), std::forward<Args>(args)...);
  }
  auto notify(Req req) const {
    const auto& c = shard_for(req);
    return c.notify(std::move(req));
  }
  notify_result notify_blocking(Req req) const {
    const auto& c = shard_for(req);
    return c.notify_blocking(std::move(req));
  }
  notify_result try_notify(Req req) const {
    const auto& c = shard_for(req);
    return c.try_notify(std::move(req));
  }

 private:
  const std::vector<caller_type>* checked(const char* what) const {
    if (!shards_)
      throw std::logic_error(std::string("tenorite::sharded_caller::") + what +
                             ": empty sharded_caller (moved-from or default-constructed)");
    return shards_.get();
  }
  std::shared_ptr<const std::vector<caller_type>> shards_;
  std::shared_ptr<const key_function> key_;
};

/// What start_sharded returns: bind it as `auto [tasks, caller] = start_sharded(...)`.
template <class TaskResult, class Req, class Resp, class Err>
struct started_shards {
  std::vector<join_handle<TaskResult>> tasks;  ///< one per shard, in shard order
  sharded_caller<Req, Resp, Err> caller;
};

/// Starts `shards` instances of `svc`, each with `opts` (so each shard may itself be a pool,
/// supervised, measured), and a caller that routes by `key`. `config` is a Config copied
/// for each shard, or a factory `Config(std::size_t shard)`. Throws std::invalid_argument
/// for 0 shards.
template <class Req, class Resp, class Err, class Worker, class Config, class TaskResult,
          class Where, class ConfigOrFactory, class Key>
started_shards<TaskResult, Req, Resp, Err> start_sharded(
    const service<Req, Resp, Err, Worker, Config, TaskResult>& svc, Where&& where,
    std::size_t shards, const service_options& opts, ConfigOrFactory&& config, Key&& key) {
  if (shards == 0)
    throw std::invalid_argument("tenorite::start_sharded: shards must be at least 1");
  started_shards<TaskResult, Req, Resp, Err> out;
  std::vector<caller<Req, Resp, Err>> callers;
  // Shards call the factory again when they restart a worker: they share one copy of it.
  auto factory = std::make_shared<std::decay_t<ConfigOrFactory>>(
      std::forward<ConfigOrFactory>(config));
  for (std::size_t i = 0; i < shards; ++i) {
    auto one = [&] {
      if constexpr (std::is_invocable_r_v<Config, std::decay_t<ConfigOrFactory>&, std::size_t>) {
        return svc.start(where, opts, [factory, i] { return (*factory)(i); });
      } else {
        const auto& config = *factory;
        return svc.start(where, opts, Config(config));
      }
    }();
    out.tasks.push_back(std::move(one.task));
    callers.push_back(std::move(one.caller));
  }
  out.caller = sharded_caller<Req, Resp, Err>(std::move(callers),
                                              std::function<std::size_t(const Req&)>(
                                                  std::forward<Key>(key)));
  return out;
}

}  // namespace tenorite
