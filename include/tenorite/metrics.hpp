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
#include <string>
#include <string_view>
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
  /// The age of the oldest call still in flight, to within service_metrics' epoch (about
  /// 67 ms); a call in flight for longer than about 4 s counts from the oldest epoch seen.
  std::chrono::nanoseconds oldest_in_flight{0};
  latency_histogram latency;  ///< every completed call, from its start to its completion
  /// Calls a worker answered (or dropped), split in two: from the call's start to a worker
  /// taking the request, and from there to the answer. A call that never reached a worker
  /// (refused, withdrawn, handed back) and a notification are in neither.
  latency_histogram queued;
  latency_histogram in_worker;
  /// The sums of the three histograms (nanoseconds), for averages and Prometheus' _sum.
  std::uint64_t latency_sum_ns = 0;
  std::uint64_t queued_sum_ns = 0;
  std::uint64_t in_worker_sum_ns = 0;

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
  std::string_view service;               ///< the service's name (service_options::name)
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

  explicit service_metrics(trace_hook hook, std::string service = {})
      : trace_(std::move(hook)), service_(std::move(service)) {}

  const std::string& service() const noexcept { return service_; }
  /// The name the service got in its registry (before any call: nothing reads it yet).
  void rename(std::string service) { service_ = std::move(service); }

  call_mark call_started() noexcept {
    call_mark m{calls_.fetch_add(1, std::memory_order_relaxed), clock::now()};
    flight_.started(m.start);
    emit(trace_event{trace_event::phase::started, service_, m.id, std::nullopt, {}});
    return m;
  }

  /// `delivered`: when a worker took the request (ns on `clock`), or 0 when it never did.
  void call_completed(const call_mark& m, std::optional<error_kind> outcome,
                      std::int64_t delivered = 0) noexcept {
    const auto now = clock::now();
    const auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(now - m.start);
    record(latency_, latency_sum_, latency);
    if (delivered != 0) split(m.start, delivered, now);
    if (outcome) {
      failed_[static_cast<std::size_t>(*outcome)].fetch_add(1, std::memory_order_relaxed);
    } else {
      answered_.fetch_add(1, std::memory_order_relaxed);
    }
    flight_.completed(m.start);
    emit(trace_event{trace_event::phase::completed, service_, m.id, outcome, latency});
  }

  /// The split alone, for a call counted elsewhere (a timed call counts by its deadline).
  void call_split(clock::time_point start, std::int64_t delivered) noexcept {
    if (delivered != 0) split(start, delivered, clock::now());
  }

  static std::int64_t stamp() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               clock::now().time_since_epoch())
        .count();
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
    for (std::size_t i = 0; i < latency_histogram::bucket_count; ++i) {
      s.latency.counts[i] = latency_[i].load(std::memory_order_relaxed);
      s.queued.counts[i] = queued_[i].load(std::memory_order_relaxed);
      s.in_worker.counts[i] = in_worker_[i].load(std::memory_order_relaxed);
    }
    s.latency_sum_ns = latency_sum_.load(std::memory_order_relaxed);
    s.queued_sum_ns = queued_sum_.load(std::memory_order_relaxed);
    s.in_worker_sum_ns = in_worker_sum_.load(std::memory_order_relaxed);
    s.oldest_in_flight = flight_.oldest_age(clock::now());
    return s;
  }

 private:
  using buckets = std::array<std::atomic<std::uint64_t>, latency_histogram::bucket_count>;

  static void record(buckets& b, std::atomic<std::uint64_t>& sum,
                     std::chrono::nanoseconds d) noexcept {
    b[latency_histogram::bucket_of(d)].fetch_add(1, std::memory_order_relaxed);
    sum.fetch_add(static_cast<std::uint64_t>(d.count() > 0 ? d.count() : 0),
                  std::memory_order_relaxed);
  }

  void split(clock::time_point start, std::int64_t delivered, clock::time_point now) noexcept {
    const clock::time_point at{std::chrono::duration_cast<clock::duration>(
        std::chrono::nanoseconds(delivered))};
    record(queued_, queued_sum_, std::chrono::duration_cast<std::chrono::nanoseconds>(at - start));
    record(in_worker_, in_worker_sum_,
           std::chrono::duration_cast<std::chrono::nanoseconds>(now - at));
  }

 public:
  // (Public for its tests: it takes its times as arguments.)
  // Calls in flight by the epoch (2^26 ns, about 67 ms) they started in, in a ring of 64
  // epochs: each slot is one word, the epoch's tag (high half) and its count (low half), so
  // a start reusing a slot of an older epoch and a completion race on that one word. The
  // calls still counted in a reused slot move to `older_`, whose epoch is the oldest so
  // moved; a completion whose slot moved on takes itself from there.
  class flight_epochs {
   public:
    static constexpr unsigned epoch_shift = 26;
    static constexpr std::size_t slot_count = 64;

    void started(clock::time_point t) noexcept {
      const std::uint64_t e = epoch_of(t);
      auto& w = slots_[e % slot_count];
      std::uint64_t cur = w.load(std::memory_order_relaxed);
      for (;;) {
        const std::uint64_t tag = cur >> 32, count = cur & 0xffffffffu;
        std::uint64_t next;
        if (tag == (e & 0xffffffffu)) {
          next = cur + 1;
        } else {
          next = ((e & 0xffffffffu) << 32) | 1u;
        }
        if (w.compare_exchange_weak(cur, next, std::memory_order_relaxed)) {
          if (tag != (e & 0xffffffffu) && count != 0) move_older(e, tag, count);
          return;
        }
      }
    }

    void completed(clock::time_point t) noexcept {
      const std::uint64_t e = epoch_of(t) & 0xffffffffu;
      auto& w = slots_[epoch_of(t) % slot_count];
      std::uint64_t cur = w.load(std::memory_order_relaxed);
      while ((cur >> 32) == e && (cur & 0xffffffffu) != 0) {
        if (w.compare_exchange_weak(cur, cur - 1, std::memory_order_relaxed)) return;
      }
      // The slot was reused by a later epoch: this call was moved to the older ones.
      if (older_.fetch_sub(1, std::memory_order_relaxed) == 1)
        older_epoch_.store(no_epoch, std::memory_order_relaxed);
    }

    std::chrono::nanoseconds oldest_age(clock::time_point now) const noexcept {
      const std::uint64_t e_now = epoch_of(now);
      std::uint64_t oldest = no_epoch;
      if (older_.load(std::memory_order_relaxed) > 0) oldest = older_epoch_.load();
      // Every slot: one whose calls are stuck keeps its tag while no later epoch of the same
      // slot starts (a quiet service), however long ago that was.
      for (const auto& slot : slots_) {
        const std::uint64_t w = slot.load(std::memory_order_relaxed);
        if ((w & 0xffffffffu) == 0) continue;
        std::uint64_t full = (e_now & ~std::uint64_t{0xffffffffu}) | (w >> 32);
        if (full > e_now) full -= std::uint64_t{1} << 32;
        if (oldest == no_epoch || full < oldest) oldest = full;
      }
      if (oldest == no_epoch || oldest > e_now) return std::chrono::nanoseconds(0);
      const auto since = std::chrono::nanoseconds(
          static_cast<std::int64_t>(oldest << epoch_shift));
      return std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()) - since;
    }

   private:
    static constexpr std::uint64_t no_epoch = ~std::uint64_t{0};
    static std::uint64_t epoch_of(clock::time_point t) noexcept {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
      return static_cast<std::uint64_t>(ns.count() > 0 ? ns.count() : 0) >> epoch_shift;
    }
    // `tag`: the low half of an epoch before `e` (within 2^32 epochs, 9 years).
    void move_older(std::uint64_t e, std::uint64_t tag, std::uint64_t count) noexcept {
      older_.fetch_add(static_cast<std::int64_t>(count), std::memory_order_relaxed);
      std::uint64_t full = (e & ~std::uint64_t{0xffffffffu}) | tag;
      if (full > e) full -= std::uint64_t{1} << 32;
      std::uint64_t cur = older_epoch_.load(std::memory_order_relaxed);
      while ((cur == no_epoch || full < cur) &&
             !older_epoch_.compare_exchange_weak(cur, full, std::memory_order_relaxed)) {
      }
    }

    std::array<std::atomic<std::uint64_t>, slot_count> slots_{};
    std::atomic<std::int64_t> older_{0};
    std::atomic<std::uint64_t> older_epoch_{no_epoch};
  };

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
  buckets latency_{};
  buckets queued_{};
  buckets in_worker_{};
  std::atomic<std::uint64_t> latency_sum_{0};
  std::atomic<std::uint64_t> queued_sum_{0};
  std::atomic<std::uint64_t> in_worker_sum_{0};
  flight_epochs flight_;
  trace_hook trace_;
  std::string service_;
};

}  // namespace detail
}  // namespace tenorite
