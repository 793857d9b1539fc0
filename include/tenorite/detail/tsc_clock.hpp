// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/tsc_clock.hpp — the clock metrics time calls with: the CPU's time-stamp
// counter where the kernel itself trusts it, steady_clock everywhere else.
//
// Why: a measured call reads the clock three times (started, taken by a worker, completed).
// On the 2-core KVM machine steady_clock::now() costs about 26 ns through the vDSO, rdtsc
// about 10 ns, so the clock alone was most of the cost of metrics (docs/performance.md).
//
// Invariants:
// - the time-stamp counter is used only on x86-64 Linux when the CPU reports an invariant
//   TSC (CPUID 0x80000007, EDX bit 8) and the kernel's clocksource is `tsc` (the kernel has
//   then checked that the counters of all CPUs agree); otherwise now() is steady_clock's;
// - the scale from ticks to nanoseconds is measured once per process, against steady_clock
//   over about 200 us, on the first call; values are nanoseconds counted from steady_clock's
//   epoch at that moment, so the clock is steady and its readings are comparable with each
//   other (not with steady_clock's: the two drift apart by the scale's error, and by NTP's
//   slewing of steady_clock, up to 0.05%); each end of the measurement is the narrowest of
//   several tick/steady_clock pairs, and two measurements must agree within 0.5% or the
//   clock stays steady_clock (a preemption in the middle of one would skew every latency);
// - a tick count below the calibration's (the counter was reset, on a resume from sleep on
//   some machines) reads steady_clock instead: values stay on steady_clock's time line;
// - the counter is read without a fence: a reading can come a few nanoseconds before one that
//   another thread made just before it; durations are clamped at zero where they are used.
//   (A fence would double the reading's cost, ~10 ns more, three times per call.)
// - now() never fails and never blocks after the first call.
#pragma once

#include <chrono>
#include <cstdint>

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#include <cstdio>
#include <cstring>
#define TENORITE_TSC_CLOCK 1
#endif

namespace tenorite::detail {

struct tsc_clock {
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<tsc_clock>;
  static constexpr bool is_steady = true;

  static time_point now() noexcept {
#ifdef TENORITE_TSC_CLOCK
    const scale& s = scale::get();
    if (s.usable) {
      const auto ticks = static_cast<std::int64_t>(ticks_now() - s.base_ticks);
      if (ticks >= 0)
        return time_point(duration(
            s.base_ns + static_cast<std::int64_t>(static_cast<double>(ticks) * s.ns_per_tick)));
    }
#endif
    return time_point(
        std::chrono::duration_cast<duration>(std::chrono::steady_clock::now().time_since_epoch()));
  }

  /// Whether now() reads the time-stamp counter (for the benchmark's report and the tests).
  static bool counts_cpu_ticks() noexcept {
#ifdef TENORITE_TSC_CLOCK
    return scale::get().usable;
#else
    return false;
#endif
  }

 private:
#ifdef TENORITE_TSC_CLOCK
  static std::uint64_t ticks_now() noexcept {
    return __builtin_ia32_rdtsc();
  }

  struct scale {
    bool usable = false;
    std::uint64_t base_ticks = 0;
    std::int64_t base_ns = 0;
    double ns_per_tick = 0;

    static const scale& get() noexcept {
      static const scale s = measure();
      return s;
    }

    static std::int64_t steady_ns() noexcept {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    }

    // A steady_clock reading and the tick count at the same moment: the middle of the two tick
    // readings around it, of the narrowest of a few tries (one that was preempted is wide).
    static void pair(std::int64_t& ns, std::uint64_t& ticks) noexcept {
      std::uint64_t narrowest = ~std::uint64_t{0};
      for (int i = 0; i < 8; ++i) {
        const std::uint64_t before = ticks_now();
        const std::int64_t at = steady_ns();
        const std::uint64_t after = ticks_now();
        if (after >= before && after - before < narrowest) {
          narrowest = after - before;
          ns = at;
          ticks = before + (after - before) / 2;
        }
      }
    }

    // Nanoseconds per tick over about 200 us from (ns0, t0), ending at (ns1, t1); 0 if the
    // counter did not move forward.
    static double ratio(std::int64_t ns0, std::uint64_t t0, std::int64_t& ns1,
                        std::uint64_t& t1) noexcept {
      do {
        pair(ns1, t1);
      } while (ns1 - ns0 < 200'000);
      if (t1 <= t0) return 0;
      return static_cast<double>(ns1 - ns0) / static_cast<double>(t1 - t0);
    }

    static bool kernel_uses_tsc() noexcept {
      std::FILE* f =
          std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
      if (!f) return false;
      char name[32] = {};
      const bool read = std::fgets(name, sizeof name, f) != nullptr;
      std::fclose(f);
      return read && std::strncmp(name, "tsc", 3) == 0 && (name[3] == '\n' || name[3] == '\0');
    }

    static bool invariant_tsc() noexcept {
      // CPUID leaf 0x80000007 (advanced power management), EDX bit 8: the counter runs at a
      // constant rate in every power state. Asked with inline assembly: <cpuid.h> would bring
      // its unprefixed macros into every translation unit that includes this header.
      auto cpuid = [](unsigned leaf, unsigned& a, unsigned& d) {
        unsigned b = 0, c = 0;
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "+c"(c), "=d"(d) : "a"(leaf));
      };
      unsigned max_leaf = 0, d = 0;
      cpuid(0x80000000u, max_leaf, d);
      if (max_leaf < 0x80000007u) return false;
      unsigned a = 0;
      cpuid(0x80000007u, a, d);
      return (d & (1u << 8)) != 0;
    }

    static scale measure() noexcept {
      scale s;
      if (!invariant_tsc() || !kernel_uses_tsc()) return s;
      for (int attempt = 0; attempt < 3; ++attempt) {
        std::int64_t ns0 = 0, ns1 = 0, ns2 = 0;
        std::uint64_t t0 = 0, t1 = 0, t2 = 0;
        pair(ns0, t0);
        const double first = ratio(ns0, t0, ns1, t1);
        const double second = ratio(ns1, t1, ns2, t2);
        if (first <= 0 || second <= 0) return s;
        if (first > second * 1.005 || second > first * 1.005) continue;  // one was disturbed
        s.ns_per_tick = static_cast<double>(ns2 - ns0) / static_cast<double>(t2 - t0);
        s.base_ticks = t2;
        s.base_ns = ns2;
        s.usable = true;
        return s;
      }
      return s;
    }
  };
#endif
};

}  // namespace tenorite::detail
