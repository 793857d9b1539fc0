// SPDX-License-Identifier: BSL-1.0
// tenorite/metrics.hpp — what a service did, readable from any thread, and a per-call hook.
//
//   tenorite::service_options opts;
//   opts.metrics = true;
//   auto [task, caller] = kv_service{}.start(rt, opts, kv_config{});
//   ...
//   tenorite::metrics_snapshot m = *caller.metrics();
//   std::cout << m.answered << " answered, p99 " << m.latency.percentile(0.99).count() << " ns\n";
//
// Invariants:
// - counters only grow; a snapshot is a consistent-enough read of relaxed counters (each value
//   is exact, but two values may be a few calls apart when calls run meanwhile);
// - every call counted in `calls` ends counted exactly once in `answered` or in `failed`, so
//   in_flight = calls - answered - failed is exact once nothing is running;
// - metrics off (the default) costs one predictable branch per call.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <tenorite/error.hpp>

namespace tenorite {

/// Call latencies (from the call's start to its completion) in power-of-two buckets:
/// counts[i] holds latencies in [2^i, 2^(i+1)) nanoseconds (counts[0] also holds 0).
struct latency_histogram {
  static constexpr std::size_t bucket_count = 48;
  std::array<std::uint64_t, bucket_count> counts{};

  std::uint64_t total() const noexcept {
    std::uint64_t n = 0;
    for (auto c : counts) n += c;
    return n;
  }

  /// The upper bound of the bucket holding the p-quantile (0 < p <= 1): the true value is
  /// at most this and more than half of it. Zero when nothing was recorded.
  std::chrono::nanoseconds percentile(double p) const noexcept {
    const std::uint64_t n = total();
    if (n == 0) return std::chrono::nanoseconds(0);
    auto rank = static_cast<std::uint64_t>(p * static_cast<double>(n));
    if (rank == 0) rank = 1;
    if (rank > n) rank = n;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      seen += counts[i];
      if (seen >= rank) return std::chrono::nanoseconds(std::int64_t{2} << i);
    }
    return std::chrono::nanoseconds(std::int64_t{2} << (bucket_count - 1));
  }

  static std::size_t bucket_of(std::chrono::nanoseconds d) noexcept {
    auto v = static_cast<std::uint64_t>(d.count() > 0 ? d.count() : 0);
    std::size_t b = 0;
    while (v > 1 && b + 1 < bucket_count) {
      v >>= 1;
      ++b;
    }
    return b;
  }
};

/// One read of a service's counters.
struct metrics_snapshot {
  std::size_t queue_depth = 0;      ///< requests waiting in the queue now
  std::uint64_t calls = 0;          ///< calls started (every form; notifications excluded)
  std::uint64_t notifications = 0;  ///< notifications accepted into the queue
  std::uint64_t accepted = 0;       ///< requests the queue took (calls and notifications)
  std::uint64_t answered = 0;       ///< calls completed with the worker's response
  std::array<std::uint64_t, error_kind_count> failed{};  ///< calls failed, indexed by error_kind
  std::uint64_t in_flight = 0;            ///< calls started and not completed yet
  std::uint64_t restarts = 0;             ///< worker restarts by the supervisor
  latency_histogram latency;              ///< every completed call

  std::uint64_t failed_of(error_kind k) const noexcept {
    return failed[static_cast<std::size_t>(k)];
  }
  std::uint64_t failed_total() const noexcept {
    std::uint64_t n = 0;
    for (auto f : failed) n += f;
    return n;
  }
};

/// What the trace hook sees: each call once when it starts and once when it completes.
struct trace_event {
  enum class phase { started, completed };
  phase what;
  std::uint64_t call_id;                  ///< unique per service, the same for both events
  std::optional<error_kind> outcome;      ///< completed: empty for a response, else the kind
  std::chrono::nanoseconds latency{0};    ///< completed: from start to completion
};

/// Called on the thread where the call starts or completes; it must be thread-safe and quick,
/// and must not throw (an exception is caught and dropped).
using trace_hook = std::function<void(const trace_event&)>;

namespace detail {

class service_metrics {
 public:
  using clock = std::chrono::steady_clock;
  struct call_mark {
    std::uint64_t id = 0;
    clock::time_point start{};
  };

  explicit service_metrics(trace_hook hook) : trace_(std::move(hook)) {}

  call_mark call_started() noexcept {
    call_mark m{calls_.fetch_add(1, std::memory_order_relaxed), clock::now()};
    emit(trace_event{trace_event::phase::started, m.id, std::nullopt, {}});
    return m;
  }

  void call_completed(const call_mark& m, std::optional<error_kind> outcome) noexcept {
    const auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - m.start);
    latency_[latency_histogram::bucket_of(latency)].fetch_add(1, std::memory_order_relaxed);
    if (outcome) {
      failed_[static_cast<std::size_t>(*outcome)].fetch_add(1, std::memory_order_relaxed);
    } else {
      answered_.fetch_add(1, std::memory_order_relaxed);
    }
    emit(trace_event{trace_event::phase::completed, m.id, outcome, latency});
  }

  void notification_accepted() noexcept { notifications_.fetch_add(1, std::memory_order_relaxed); }
  void restarted() noexcept { restarts_.fetch_add(1, std::memory_order_relaxed); }

  metrics_snapshot snapshot(std::size_t queue_depth, std::uint64_t accepted) const noexcept {
    metrics_snapshot s;
    s.queue_depth = queue_depth;
    s.accepted = accepted;
    // Completions first, then starts: a call completing meanwhile is then never counted
    // completed without being counted started (in_flight cannot underflow).
    s.answered = answered_.load(std::memory_order_relaxed);
    std::uint64_t done = s.answered;
    for (std::size_t i = 0; i < s.failed.size(); ++i) {
      s.failed[i] = failed_[i].load(std::memory_order_relaxed);
      done += s.failed[i];
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    s.calls = calls_.load(std::memory_order_relaxed);
    s.in_flight = s.calls >= done ? s.calls - done : 0;
    s.notifications = notifications_.load(std::memory_order_relaxed);
    s.restarts = restarts_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < latency_histogram::bucket_count; ++i)
      s.latency.counts[i] = latency_[i].load(std::memory_order_relaxed);
    return s;
  }

 private:
  void emit(const trace_event& e) noexcept {
    if (!trace_) return;
    try {
      trace_(e);
    } catch (...) {  // a hook must not break the call it observes
    }
  }

  std::atomic<std::uint64_t> calls_{0};
  std::atomic<std::uint64_t> answered_{0};
  std::array<std::atomic<std::uint64_t>, error_kind_count> failed_{};
  std::atomic<std::uint64_t> notifications_{0};
  std::atomic<std::uint64_t> restarts_{0};
  std::array<std::atomic<std::uint64_t>, latency_histogram::bucket_count> latency_{};
  trace_hook trace_;
};

}  // namespace detail
}  // namespace tenorite
