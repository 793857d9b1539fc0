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
// - each thread counts into its own stripe of a service's counters, with a plain load and
//   store (no locked instruction, no cache line shared with the other side of the call); a
//   snapshot sums the stripes;
// - metrics off (the default) costs one predictable branch per call.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <tenorite/detail/config.hpp>
#include <tenorite/detail/tsc_clock.hpp>
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
    const auto v = static_cast<std::uint64_t>(d.count() > 0 ? d.count() : 0);
    const auto b = static_cast<std::size_t>(std::bit_width(v));  // 0 and 1 in bucket 0
    return b <= 1 ? 0 : std::min(b - 1, bucket_count - 1);
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
  /// 67 ms), however long it has been in flight.
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

// Stripes: each thread counts into its own copy of a service's counters, so a call costs no
// locked instruction and no cache line moves between the caller's thread and the worker's; a
// snapshot sums the copies. `owned_stripes` indices are lent to the first threads that count
// anything and given back when each ends. A thread that finds none free, or that counts during
// its own exit after giving its index back, writes the shared stripe, with atomic
// read-modify-writes.
inline constexpr std::size_t owned_stripes = 8;
inline constexpr std::size_t shared_stripe = owned_stripes;
inline constexpr std::size_t stripe_count = owned_stripes + 1;

// The lending is one per process only if these two functions' statics are: with default
// visibility they are, when the library is in several shared objects of one program (built
// with -fvisibility=hidden, or loaded RTLD_LOCAL). On Windows each DLL that counts has its
// own: there, measured services must be used from one module (or metrics left off).
TENORITE_SHARED_STATE inline std::atomic<std::uint32_t>& lent_stripes() noexcept {
  static constinit std::atomic<std::uint32_t> lent{0};
  return lent;
}

/// This thread's stripe. Out of line: a coroutine may resume on another thread between two
/// calls, and Clang 16 may reuse the address of an inlined thread-local read before.
TENORITE_NOINLINE TENORITE_SHARED_STATE inline std::size_t this_thread_stripe() noexcept {
  static thread_local constinit std::size_t index = stripe_count;  // stripe_count: none yet
  if (index != stripe_count) return index;
  struct lease {
    std::size_t* index;
    explicit lease(std::size_t* i) noexcept : index(i) {}
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() {
      if (*index < owned_stripes)
        lent_stripes().fetch_and(~(std::uint32_t{1} << *index), std::memory_order_release);
      *index = shared_stripe;
    }
  };
  constexpr std::uint32_t all = (std::uint32_t{1} << owned_stripes) - 1;
  auto& lent = lent_stripes();
  std::uint32_t cur = lent.load(std::memory_order_relaxed);
  for (;;) {
    if ((cur & all) == all) return index = shared_stripe;
    const auto bit = static_cast<std::size_t>(std::countr_one(cur));
    if (lent.compare_exchange_weak(cur, cur | (std::uint32_t{1} << bit), std::memory_order_acquire,
                                   std::memory_order_relaxed)) {
      index = bit;
      break;
    }
  }
  static thread_local lease given_back{&index};
  return index;
}

/// Adds to a striped counter: a plain load and store on a stripe only this thread writes.
inline std::uint64_t stripe_add(std::atomic<std::uint64_t>& c, std::uint64_t n,
                                std::size_t stripe) noexcept {
  if (stripe != shared_stripe) {
    const std::uint64_t v = c.load(std::memory_order_relaxed);
    c.store(v + n, std::memory_order_relaxed);
    return v;
  }
  return c.fetch_add(n, std::memory_order_relaxed);
}

class service_metrics {
 public:
  using clock = tsc_clock;  // steady_clock where the time-stamp counter is not to be trusted
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
    const std::size_t i = this_thread_stripe();
    // Unique per service: a stripe's own count, interleaved with the stripe's index.
    call_mark m{stripe_add(stripes_[i].calls, 1, i) * stripe_count + i, clock::now()};
    flight_.started(m.start, i);
    emit(trace_event{trace_event::phase::started, service_, m.id, std::nullopt, {}});
    return m;
  }

  /// `delivered`: when a worker took the request (ns on `clock`), or 0 when it never did.
  void call_completed(const call_mark& m, std::optional<error_kind> outcome,
                      std::int64_t delivered = 0) noexcept {
    const auto now = clock::now();
    const auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(now - m.start);
    const std::size_t i = this_thread_stripe();
    stripe& s = stripes_[i];
    record(s.latency, s.latency_sum, latency, i);
    if (delivered != 0) split(s, i, m.start, delivered, now);
    stripe_add(outcome ? s.failed[static_cast<std::size_t>(*outcome)] : s.answered, 1, i);
    flight_.completed(m.start, i);
    emit(trace_event{trace_event::phase::completed, service_, m.id, outcome, latency});
  }

  /// The split alone, for a call counted elsewhere (a timed call counts by its deadline).
  void call_split(clock::time_point start, std::int64_t delivered) noexcept {
    if (delivered == 0) return;
    const std::size_t i = this_thread_stripe();
    split(stripes_[i], i, start, delivered, clock::now());
  }

  static std::int64_t stamp() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               clock::now().time_since_epoch())
        .count();
  }

  void notification_accepted() noexcept {
    const std::size_t i = this_thread_stripe();
    stripe_add(stripes_[i].notifications, 1, i);
  }

  /// `restarts`: the service's own count (kept with or without metrics).
  metrics_snapshot snapshot(std::size_t queue_depth, std::uint64_t accepted,
                            std::uint64_t restarts) const noexcept {
    metrics_snapshot out;
    out.restarts = restarts;
    out.queue_depth = queue_depth;
    out.accepted = accepted;
    // Completions first, then starts: a call completing meanwhile is then never counted
    // completed without being counted started (in_flight cannot underflow).
    std::uint64_t done = 0;
    for (const stripe& s : stripes_) {
      out.answered += s.answered.load(std::memory_order_relaxed);
      for (std::size_t k = 0; k < out.failed.size(); ++k)
        out.failed[k] += s.failed[k].load(std::memory_order_relaxed);
    }
    done = out.answered + out.failed_total();
    std::atomic_thread_fence(std::memory_order_acquire);
    for (const stripe& s : stripes_) {
      out.calls += s.calls.load(std::memory_order_relaxed);
      out.notifications += s.notifications.load(std::memory_order_relaxed);
      for (std::size_t b = 0; b < latency_histogram::bucket_count; ++b) {
        out.latency.counts[b] += s.latency[b].load(std::memory_order_relaxed);
        out.queued.counts[b] += s.queued[b].load(std::memory_order_relaxed);
        out.in_worker.counts[b] += s.in_worker[b].load(std::memory_order_relaxed);
      }
      out.latency_sum_ns += s.latency_sum.load(std::memory_order_relaxed);
      out.queued_sum_ns += s.queued_sum.load(std::memory_order_relaxed);
      out.in_worker_sum_ns += s.in_worker_sum.load(std::memory_order_relaxed);
    }
    out.in_flight = out.calls >= done ? out.calls - done : 0;
    out.oldest_in_flight = flight_.oldest_age(clock::now());
    return out;
  }

 private:
  using counter = std::atomic<std::uint64_t>;
  using buckets = std::array<counter, latency_histogram::bucket_count>;
  struct alignas(64) stripe {
    counter calls{0};
    counter answered{0};
    std::array<counter, error_kind_count> failed{};
    counter notifications{0};
    buckets latency{};
    buckets queued{};
    buckets in_worker{};
    counter latency_sum{0};
    counter queued_sum{0};
    counter in_worker_sum{0};
  };

  static void record(buckets& b, counter& sum, std::chrono::nanoseconds d, std::size_t i) noexcept {
    stripe_add(b[latency_histogram::bucket_of(d)], 1, i);
    stripe_add(sum, static_cast<std::uint64_t>(d.count() > 0 ? d.count() : 0), i);
  }

  static void split(stripe& s, std::size_t i, clock::time_point start, std::int64_t delivered,
                    clock::time_point now) noexcept {
    const clock::time_point at{std::chrono::duration_cast<clock::duration>(
        std::chrono::nanoseconds(delivered))};
    record(s.queued, s.queued_sum, std::chrono::duration_cast<std::chrono::nanoseconds>(at - start),
           i);
    record(s.in_worker, s.in_worker_sum,
           std::chrono::duration_cast<std::chrono::nanoseconds>(now - at), i);
  }

 public:
  // (Public for its tests: it takes its times as arguments.)
  // Calls in flight by the epoch (2^26 ns, about 67 ms) they started in, in a ring of 64
  // slots (epoch mod 64). Per slot, each stripe counts the calls started and those ended
  // (by their start's epoch); neither count is ever reset, so the sums' difference is
  // exactly the calls in flight that started in any epoch of that slot. A shared tag says
  // which epoch last started in the slot. When a later epoch takes the slot over while calls
  // of the slot are still in flight, those calls are carried: the slot keeps how many and the
  // oldest epoch they came from, and each, when it ends after the take-over, takes itself
  // off the carried count; the carry is forgotten when its last call ends. So the age is to
  // within an epoch, however long a call is stuck. (Imprecise only for a call whose start
  // time was read more than a lap, 4.3 s, before it was counted, and for one that ends in the
  // very instant its slot is taken over: the carry may then stay one call too many, which
  // shows only while calls of that slot are in flight and is reset at its next take-over.)
  class flight_epochs {
   public:
    static constexpr unsigned epoch_shift = 26;
    static constexpr std::size_t slot_count = 64;

    void started(clock::time_point t, std::size_t stripe = this_thread_stripe()) noexcept {
      const std::uint64_t e = epoch_of(t);
      const std::size_t slot = e % slot_count;
      if (tags_[slot].load(std::memory_order_acquire) < e + 1) take_over(slot, e);
      stripe_add(stripes_[stripe].started[slot], 1, stripe);
    }

    void completed(clock::time_point t, std::size_t stripe = this_thread_stripe()) noexcept {
      const std::uint64_t e = epoch_of(t);
      const std::size_t slot = e % slot_count;
      stripe_add(stripes_[stripe].ended[slot], 1, stripe);
      // Taken over since this call started (it ran for more than a lap): it was carried.
      if (tags_[slot].load(std::memory_order_relaxed) > e + 1 &&
          carried_[slot].fetch_sub(1, std::memory_order_relaxed) == 1)
        carry_[slot].store(0, std::memory_order_relaxed);
    }

    std::chrono::nanoseconds oldest_age(clock::time_point now) const noexcept {
      const std::uint64_t e_now = epoch_of(now);
      std::uint64_t oldest = no_epoch;
      for (std::size_t slot = 0; slot < slot_count; ++slot) {
        if (in_flight(slot) <= 0) continue;
        const std::uint64_t tag = tags_[slot].load(std::memory_order_relaxed);
        if (tag == 0) continue;
        std::uint64_t from = tag - 1;
        const std::uint64_t c = carry_[slot].load(std::memory_order_relaxed);
        if (c != 0 && carried_[slot].load(std::memory_order_relaxed) > 0)
          from = std::min(from, c - 1);
        oldest = std::min(oldest, from);
      }
      if (oldest == no_epoch || oldest > e_now) return std::chrono::nanoseconds(0);
      const auto since = std::chrono::nanoseconds(
          static_cast<std::int64_t>(oldest << epoch_shift));
      return std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()) - since;
    }

   private:
    static constexpr std::uint64_t no_epoch = ~std::uint64_t{0};
    struct alignas(64) counts {
      std::array<counter, slot_count> started{};
      std::array<counter, slot_count> ended{};
    };

    static std::uint64_t epoch_of(clock::time_point t) noexcept {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
      return static_cast<std::uint64_t>(ns.count() > 0 ? ns.count() : 0) >> epoch_shift;
    }

    std::int64_t in_flight(std::size_t slot) const noexcept {
      std::uint64_t ended = 0, started = 0;
      for (const counts& c : stripes_) ended += c.ended[slot].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      for (const counts& c : stripes_) started += c.started[slot].load(std::memory_order_relaxed);
      return static_cast<std::int64_t>(started - ended);
    }

    // Once per slot per 64 epochs (about 4.3 s): the first start of epoch `e` in `slot`. The
    // calls in flight are read before the tag moves: until it does, every start of epoch `e`
    // in this slot comes here first, so none of them is taken for a carried call (the
    // exchange's release keeps the reads before it; a loser's acquire keeps its count after).
    void take_over(std::size_t slot, std::uint64_t e) noexcept {
      std::uint64_t cur = tags_[slot].load(std::memory_order_acquire);
      while (cur < e + 1) {
        const std::int64_t flying = cur == 0 ? 0 : in_flight(slot);
        if (!tags_[slot].compare_exchange_weak(cur, e + 1, std::memory_order_acq_rel,
                                               std::memory_order_acquire))
          continue;
        if (flying <= 0) {
          carried_[slot].store(0, std::memory_order_relaxed);
          carry_[slot].store(0, std::memory_order_relaxed);
          return;
        }
        // The calls still carried from before stay the oldest; `cur` is the epoch just left.
        const std::uint64_t before = carry_[slot].load(std::memory_order_relaxed);
        const bool still = before != 0 && carried_[slot].load(std::memory_order_relaxed) > 0;
        carry_[slot].store(still ? std::min(before, cur) : cur, std::memory_order_relaxed);
        carried_[slot].store(flying, std::memory_order_relaxed);
        return;
      }
    }

    std::array<counts, stripe_count> stripes_{};
    std::array<counter, slot_count> tags_{};   // the slot's latest epoch + 1 (0: never used)
    std::array<counter, slot_count> carry_{};  // the carried calls' oldest epoch + 1 (0: none)
    std::array<std::atomic<std::int64_t>, slot_count> carried_{};  // how many are carried
  };

 private:
  void emit(const trace_event& e) noexcept {
    if (!trace_) return;
    try {
      trace_(e);
    } catch (...) {  // a hook must not break the call it observes
    }
  }

  std::array<stripe, stripe_count> stripes_{};
  flight_epochs flight_;
  trace_hook trace_;
  std::string service_;
};

}  // namespace detail
}  // namespace tenorite
