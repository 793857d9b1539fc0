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

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <tenorite/call_forms.hpp>
#include <tenorite/caller.hpp>
#include <tenorite/service.hpp>
#include <type_traits>
#include <utility>
#include <vector>

namespace tenorite {

/// One caller for N shards: every call form of caller (call_forms.hpp), each routed to the
/// shard key(request) % shards(). Reservations belong to one queue: reserve through
/// shard_for(request).
template <class Req, class Resp, class Err>
class sharded_caller : public call_forms<sharded_caller<Req, Resp, Err>, Req, Resp, Err> {
  using forms = call_forms<sharded_caller<Req, Resp, Err>, Req, Resp, Err>;

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
    for (const caller_type& c : *shards_)
      if (!c)
        throw std::invalid_argument(
            "tenorite::sharded_caller: a shard's caller is empty (moved-from or "
            "default-constructed); pass the callers of started services");
  }

  /// The caller of the shard that serves `req`.
  const caller_type& shard_for(const Req& req) const {
    return (*checked("shard_for"))[(*key_)(req) % shards_->size()];
  }
  const caller_type& shard(std::size_t i) const { return checked("shard")->at(i); }
  std::size_t shards() const noexcept { return shards_ ? shards_->size() : 0; }

  /// A copy of this handle whose every call carries `trace` to the worker of its shard
  /// (responder::trace), as caller::with_trace does.
  sharded_caller with_trace(const trace_context& trace) const {
    checked("with_trace");
    sharded_caller s = *this;
    s.trace_ = trace;
    return s;
  }
  explicit operator bool() const noexcept { return static_cast<bool>(shards_); }

 private:
  friend forms;

  // ---- the primitives of call_forms: the shard's own, so outcomes are the shard's ----

  static constexpr const char* name = "tenorite::sharded_caller";
  void check(const char* what) const { checked(what); }

  template <class Token>
  auto initiate_call(Req&& req, detail::call_mode mode, Token&& token) const {
    return via(req, [&](const caller_type& c) {
      return c.initiate_call(std::move(req), mode, std::forward<Token>(token));
    });
  }
  template <class Token>
  auto initiate_call_until(Req&& req, detail::timed_deadline deadline, Token&& token) const {
    return via(req, [&](const caller_type& c) {
      return c.initiate_call_until(std::move(req), deadline, std::forward<Token>(token));
    });
  }
  template <class Token>
  auto initiate_notify(Req&& req, Token&& token) const {
    return via(req, [&](const caller_type& c) {
      return c.initiate_notify(std::move(req), std::forward<Token>(token));
    });
  }
  result_type call_blocking(Req&& req, detail::call_mode mode) const {
    return via(req, [&](const caller_type& c) { return c.call_blocking(std::move(req), mode); });
  }
  result_type call_blocking_until(Req&& req, detail::timed_deadline deadline) const {
    return via(req, [&](const caller_type& c) {
      return c.call_blocking_until(std::move(req), deadline);
    });
  }
  notify_result notify_now(Req&& req, bool try_only) const {
    return via(req, [&](const caller_type& c) { return c.notify_now(std::move(req), try_only); });
  }

  // The shard's caller, carrying this handle's trace when it has one (a copy then).
  template <class F>
  decltype(auto) via(const Req& req, F&& f) const {
    const caller_type& c = route(req);
    if (!trace_) return f(c);
    return f(c.with_trace(trace_));
  }

  // (The handle was checked by the form.)
  const caller_type& route(const Req& req) const {
    return (*shards_)[(*key_)(req) % shards_->size()];
  }

  const std::vector<caller_type>* checked(const char* what) const {
    if (!shards_)
      throw std::logic_error(std::string("tenorite::sharded_caller::") + what +
                             ": empty sharded_caller (moved-from or default-constructed)");
    return shards_.get();
  }
  std::shared_ptr<const std::vector<caller_type>> shards_;
  std::shared_ptr<const key_function> key_;
  trace_context trace_{};
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
  // Each shard is listed as "<name>[<i>]" (the set's name, or the Worker type's).
  const std::string base = opts.name.empty() ? detail::type_name<Worker>() : opts.name;
  for (std::size_t i = 0; i < shards; ++i) {
    service_options shard_opts = opts;
    shard_opts.name = base + "[" + std::to_string(i) + "]";
    auto one = [&] {
      if constexpr (std::is_invocable_r_v<Config, std::decay_t<ConfigOrFactory>&, std::size_t>) {
        return svc.start(where, std::move(shard_opts), [factory, i] { return (*factory)(i); });
      } else {
        const auto& config = *factory;
        return svc.start(where, std::move(shard_opts), Config(config));
      }
    }();
    detail::caller_access::state(one.caller).kind.store(service_kind::shard,
                                                        std::memory_order_relaxed);
    out.tasks.push_back(std::move(one.task));
    callers.push_back(std::move(one.caller));
  }
  out.caller = sharded_caller<Req, Resp, Err>(std::move(callers),
                                              std::function<std::size_t(const Req&)>(
                                                  std::forward<Key>(key)));
  return out;
}

}  // namespace tenorite
