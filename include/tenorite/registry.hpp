// SPDX-License-Identifier: BSL-1.0
// tenorite/registry.hpp — every live service, by name, readable from any thread.
//
//   tenorite::service_options opts;
//   opts.name = "kv";
//   opts.metrics = true;  // counters and latencies in the listing too
//   auto [task, caller] = kv_service{}.start(rt, opts, kv_config{});
//   for (const tenorite::service_info& s : tenorite::service_registry::global().snapshot())
//     std::cout << s.name << ' ' << to_string(s.status) << ' ' << s.queue_depth << '\n';
//
// Invariants:
// - a service is listed from its start until its state is freed (the last caller, join
//   handle and worker gone); once its workers have ended it is listed as `ended`, so what it
//   did and why it failed can still be read;
// - names are unique within a registry: a name already taken gets the first free suffix
//   "-2", "-3", ... (service_info::name is the name it got);
// - snapshot() never touches a call's path: it takes the registry's own lock, then reads each
//   service's counters (relaxed atomics) and its queue's depth (the queue's lock, briefly);
// - a registry may be destroyed before the services listed in it: they leave a list that
//   lives until the last of them is gone.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tenorite/metrics.hpp>
#include <utility>
#include <vector>

namespace tenorite {

/// What a listed service is.
enum class service_kind : std::uint8_t {
  service,        ///< one worker
  pool,           ///< several workers serving one queue
  shard,          ///< one shard of a sharded set (start_sharded)
  nats_endpoint,  ///< an endpoint served on NATS (nats::add_service, nats::serve)
  remote,         ///< a caller of a service on NATS (nats::remote_caller)
};

/// Where a listed service is in its life.
enum class service_status : std::uint8_t {
  running,     ///< serving
  draining,    ///< no new requests (drain(), or the last caller is gone); serving what is queued
  restarting,  ///< a worker failed and waits for its restart (supervision's back-off)
  ended,       ///< every worker has ended; calls fail with send_failure
};

constexpr const char* to_string(service_kind k) noexcept {
  switch (k) {
    case service_kind::service:
      return "service";
    case service_kind::pool:
      return "pool";
    case service_kind::shard:
      return "shard";
    case service_kind::nats_endpoint:
      return "nats_endpoint";
    case service_kind::remote:
      return "remote";
  }
  return "unknown";
}

constexpr const char* to_string(service_status s) noexcept {
  switch (s) {
    case service_status::running:
      return "running";
    case service_status::draining:
      return "draining";
    case service_status::restarting:
      return "restarting";
    case service_status::ended:
      return "ended";
  }
  return "unknown";
}

/// A worker's failure: what it threw, and when.
struct failure_info {
  std::string message;  ///< what(), or a sentence saying the exception had no what()
  std::chrono::system_clock::time_point when;
};

/// One listed service, as snapshot() read it.
struct service_info {
  std::string name;
  service_kind kind = service_kind::service;
  service_status status = service_status::running;
  std::size_t workers = 0;
  std::size_t queue_capacity = 0;
  std::size_t queue_depth = 0;
  std::chrono::system_clock::time_point started;
  std::uint64_t restarts = 0;                ///< counted with or without metrics
  std::optional<failure_info> last_failure;  ///< the last exception a worker ended with
  std::optional<metrics_snapshot> metrics;   ///< when started with metrics (or a trace hook)
};

namespace detail {

/// What a worker's exception says, for people: what() or a sentence saying there is none.
inline std::string describe_exception(const std::exception_ptr& e) {
  if (!e) return "(no exception)";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

/// The last failure of a service's workers (written on a failure, read by snapshots).
class failure_log {
 public:
  void record(const std::exception_ptr& e) noexcept {
    try {
      failure_info f{describe_exception(e), std::chrono::system_clock::now()};
      std::lock_guard lk(m_);
      last_ = std::move(f);
    } catch (...) {  // no memory for the message: the count still says it happened
    }
  }
  std::optional<failure_info> last() const {
    std::lock_guard lk(m_);
    return last_;
  }

 private:
  mutable std::mutex m_;
  std::optional<failure_info> last_;
};

class registry_entry;

/// The list itself, shared by the registry and every entry in it.
struct registry_list {
  mutable std::mutex m;
  std::map<std::string, const registry_entry*, std::less<>> by_name;
};

/// A service's place in a registry; it leaves when destroyed. `describe` is called under
/// the registry's lock with `ctx`, which must outlive the entry.
class registry_entry {
 public:
  using describe_fn = void (*)(const void* ctx, service_info& out);

  registry_entry() noexcept = default;
  registry_entry(const registry_entry&) = delete;
  registry_entry& operator=(const registry_entry&) = delete;
  ~registry_entry() { leave(); }

  /// Lists `ctx` under `name` (or the first free "name-N"); returns the name it got.
  std::string join(const std::shared_ptr<registry_list>& list, const std::string& name,
                   describe_fn describe, const void* ctx) {
    leave();
    std::lock_guard lk(list->m);
    std::string got = name;
    for (std::size_t n = 2; list->by_name.count(got) != 0; ++n)
      got = name + "-" + std::to_string(n);
    auto it = list->by_name.emplace(got, this).first;
    list_ = list;
    where_ = it;
    describe_ = describe;
    ctx_ = ctx;
    return got;
  }

  void leave() noexcept {
    if (!list_) return;
    {
      std::lock_guard lk(list_->m);
      list_->by_name.erase(where_);
    }
    list_.reset();
  }

  void describe(service_info& out) const {
    out.name = where_->first;
    describe_(ctx_, out);
  }

 private:
  std::shared_ptr<registry_list> list_;
  std::map<std::string, const registry_entry*, std::less<>>::iterator where_{};
  describe_fn describe_ = nullptr;
  const void* ctx_ = nullptr;
};

/// Every service of `list`, sorted by name (service_registry::snapshot).
inline std::vector<service_info> snapshot_of(const registry_list& list) {
  std::lock_guard lk(list.m);
  std::vector<service_info> out;
  out.reserve(list.by_name.size());
  for (const auto& [name, entry] : list.by_name) {
    service_info& s = out.emplace_back();
    entry->describe(s);
  }
  return out;
}
/// The service of that name in `list`, if any (service_registry::find).
inline std::optional<service_info> find_in(const registry_list& list, std::string_view name) {
  std::lock_guard lk(list.m);
  auto it = list.by_name.find(name);
  if (it == list.by_name.end()) return std::nullopt;
  service_info s;
  it->second->describe(s);
  return s;
}

}  // namespace detail

/// A list of live services. Services join service_registry::global() unless
/// service_options::registry names another registry (or nullptr: not listed).
class service_registry {
 public:
  service_registry() : list_(std::make_shared<detail::registry_list>()) {}
  service_registry(const service_registry&) = delete;
  service_registry& operator=(const service_registry&) = delete;

  /// The registry every service joins by default. It is never destroyed (services may end
  /// during static destruction).
  static service_registry& global() {
    static service_registry* g = new service_registry;  // NOLINT: deliberately leaked
    return *g;
  }

  /// Every listed service, sorted by name. Safe from any thread at any time.
  std::vector<service_info> snapshot() const { return detail::snapshot_of(*list_); }

  /// The listed service of that name, if any.
  std::optional<service_info> find(std::string_view name) const {
    return detail::find_in(*list_, name);
  }

  /// How many services are listed now.
  std::size_t size() const {
    std::lock_guard lk(list_->m);
    return list_->by_name.size();
  }

  /// The list services join (library use: detail::registry_entry::join).
  const std::shared_ptr<detail::registry_list>& list() const noexcept { return list_; }

 private:
  std::shared_ptr<detail::registry_list> list_;
};

}  // namespace tenorite
