// SPDX-License-Identifier: BSL-1.0
// bench/main.cpp — the scenario driver: runs every scenario of /work/shared/BENCHMARK.md for
// tenorite and for each baseline, prints one line per figure
//
//     impl=<name> scenario=<scenario> value=<number> unit=<unit>
//
// and ends with a table of ratios, tenorite vs each baseline ("x better": above 1 means
// tenorite is better, whichever way the unit runs).
//
// Usage: tenorite_bench [scale]   (scale multiplies every count; default 1)
//
// A wrong response ends the program with a message and a non-zero exit status.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <tenorite/detail/tsc_clock.hpp>

#include "kv_common.hpp"

namespace {

using bench::impl;

constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();

struct scenario_info {
  std::string name;
  std::string unit;
};

struct results {
  std::vector<scenario_info> order;                             // as first printed
  std::map<std::string, std::map<std::string, double>> values;  // [impl][scenario]

  void report(const impl& im, const std::string& scenario, double value, const char* unit) {
    std::printf("impl=%s scenario=%s value=%.1f unit=%s\n", im.name, scenario.c_str(), value, unit);
    std::fflush(stdout);
    if (std::none_of(order.begin(), order.end(),
                     [&](const scenario_info& s) { return s.name == scenario; }))
      order.push_back({scenario, unit});
    values[im.name][scenario] = value;
  }
};

std::size_t scaled(double scale, double count) {
  const long long n = std::llround(count * scale);
  return n < 1 ? 1 : static_cast<std::size_t>(n);
}

/// Nearest-rank percentile (p in (0, 1]); NaN for no samples.
double percentile(std::vector<std::uint64_t>& v, double p) {
  if (v.empty()) return nan_value;
  std::size_t rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  rank = std::clamp<std::size_t>(rank, 1, v.size()) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(rank), v.end());
  return static_cast<double>(v[rank]);
}

void report_percentiles(results& res, const impl& im, const std::string& scenario,
                        std::vector<std::uint64_t>& samples, bool ran) {
  res.report(im, scenario + "_p50", ran ? percentile(samples, 0.50) : nan_value, "ns");
  res.report(im, scenario + "_p99", ran ? percentile(samples, 0.99) : nan_value, "ns");
}

void run_s1(results& res, const std::vector<impl>& impls, double scale) {
  const std::size_t warmup = scaled(scale, 10'000);
  const std::size_t calls = scaled(scale, 200'000);
  const std::string name = "s1_latency_echo";
  for (const auto& im : impls) {
    const double ns = im.s1_echo(warmup, calls, nullptr);
    res.report(im, name, ns / static_cast<double>(calls), "ns_per_call");
  }
  // Separate pass: every call timed.
  for (const auto& im : impls) {
    std::vector<std::uint64_t> samples(calls);
    const double ns = im.s1_echo(warmup, calls, samples.data());
    report_percentiles(res, im, name, samples, !std::isnan(ns));
  }
}

void run_s2(results& res, const std::vector<impl>& impls, double scale, std::size_t callers) {
  // A static split of the total: caller j makes per = total / callers calls.
  const std::size_t total = std::max(scaled(scale, 1'000'000), callers);
  const std::size_t per = total / callers;
  const double calls = static_cast<double>(per * callers);
  const std::string name = "s2_throughput_kv_" + std::to_string(callers) + "callers";
  for (const auto& im : impls) {
    const double ns = im.s2_kv(callers, per, nullptr);
    res.report(im, name, calls / (ns * 1e-9), "calls_per_s");
  }
  // Separate pass: every call timed.
  for (const auto& im : impls) {
    std::vector<std::uint64_t> samples(per * callers);
    const double ns = im.s2_kv(callers, per, samples.data());
    report_percentiles(res, im, name, samples, !std::isnan(ns));
  }
}

void run_s3(results& res, const std::vector<impl>& impls, double scale) {
  const std::size_t threads = 2;
  const std::size_t per = scaled(scale, 250'000);
  const double calls = static_cast<double>(per * threads);
  for (const auto& im : impls) {
    const double ns = im.s3_blocking(threads, per);
    res.report(im, "s3_blocking_kv_2threads", calls / (ns * 1e-9), "calls_per_s");
  }
}

void run_s5(results& res, const std::vector<impl>& impls, double scale) {
  const std::size_t services = scaled(scale, 100'000);
  const double n = static_cast<double>(services);
  for (const auto& im : impls) {
    const bench::s5_figures f = im.s5(services);
    res.report(im, "s5_start_and_first_call", f.start_and_first_call_ns / n, "ns_per_service");
    res.report(im, "s5_idle_service_memory", f.memory_bytes / n, "bytes_per_service");
    res.report(im, "s5_shutdown", f.shutdown_ns / n, "ns_per_service");
  }
}

void print_ratios(const results& res, const std::vector<impl>& impls) {
  std::printf("\n# tenorite vs each baseline, \"x better\" (above 1 means tenorite is better)\n");
  std::printf("# %-36s %-18s", "scenario", "unit");
  for (std::size_t b = 1; b < impls.size(); ++b) {
    const std::string head = std::string("vs ") + impls[b].name;
    std::printf(" %18s", head.c_str());
  }
  std::printf("\n");
  const auto& ten = res.values.at(impls[0].name);
  for (const auto& s : res.order) {
    const bool higher_is_better = s.unit == "calls_per_s";
    std::printf("# %-36s %-18s", s.name.c_str(), s.unit.c_str());
    for (std::size_t b = 1; b < impls.size(); ++b) {
      const double t = ten.at(s.name);
      const double base = res.values.at(impls[b].name).at(s.name);
      const double ratio = higher_is_better ? t / base : base / t;
      if (std::isfinite(ratio)) {
        std::printf(" %11.2fx better", ratio);
      } else {
        std::printf(" %18s", "n/a");
      }
    }
    std::printf("\n");
  }
  std::fflush(stdout);
}

// Tenorite only (no baseline has pools or metrics): printed after the ratio table.
void run_topologies(double scale) {
  std::printf("\n# topologies (tenorite only)\n");
  const std::size_t callers = 64;
  const std::size_t per = scaled(scale, 20'000.0 / 64.0);
  double one = 0;
  for (std::size_t workers : {1, 2}) {
    const double v = bench::pool_calls_per_s(workers, callers, per);
    if (workers == 1) one = v;
    std::printf("impl=tenorite scenario=pool_cpu_%zuworkers value=%.1f unit=calls_per_s\n", workers,
                v);
  }
  const double two = bench::pool_calls_per_s(2, callers, per);
  std::printf("# pool scaling, 2 workers / 1 worker: %.2fx\n", two / one);
  std::fflush(stdout);
}

// The cost of observing a call: the echo round trip with metrics off, on, and with metrics, a
// trace hook and a trace context all on. The three run interleaved, `rounds` times each, so a
// drift of the machine touches all three alike; the medians are printed, and the cost as the
// median of each round's difference. On the benchmark's 2-thread runtime and on 1 thread (the
// caller and the worker on the same thread: the code's cost alone, without the noise of where
// the two land).
void run_overhead(double scale) {
  std::printf("\n# overhead of observation (tenorite only), medians of interleaved rounds\n");
  constexpr int rounds = 7;
  const std::size_t warmup = scaled(scale, 10'000), calls = scaled(scale, 200'000);
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  for (std::size_t threads : {bench::runtime_threads, std::size_t{1}}) {
    std::vector<double> off, on, all, on_cost, all_cost;
    for (int r = 0; r < rounds; ++r) {
      off.push_back(bench::echo_ns_per_call(bench::observed::off, warmup, calls, threads));
      on.push_back(bench::echo_ns_per_call(bench::observed::metrics, warmup, calls, threads));
      all.push_back(bench::echo_ns_per_call(bench::observed::everything, warmup, calls, threads));
      on_cost.push_back(on.back() - off.back());
      all_cost.push_back(all.back() - off.back());
    }
    const char* suffix = threads == 1 ? "_1thread" : "";
    std::printf("impl=tenorite scenario=echo_metrics_off%s value=%.1f unit=ns_per_call\n", suffix,
                median(off));
    std::printf("impl=tenorite scenario=echo_metrics_on%s value=%.1f unit=ns_per_call\n", suffix,
                median(on));
    std::printf("impl=tenorite scenario=echo_observed_everything%s value=%.1f unit=ns_per_call\n",
                suffix, median(all));
    std::printf("impl=tenorite scenario=metrics_cost%s value=%.1f unit=ns_per_call\n", suffix,
                median(on_cost));
    std::printf("impl=tenorite scenario=observed_everything_cost%s value=%.1f unit=ns_per_call\n",
                suffix, median(all_cost));
  }
  std::printf("# the metrics clock reads the %s\n", tenorite::detail::tsc_clock::counts_cpu_ticks()
                                                        ? "time-stamp counter"
                                                        : "steady_clock");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  double scale = 1.0;
  if (argc > 1) {
    char* end = nullptr;
    scale = std::strtod(argv[1], &end);
    if (end == argv[1] || *end != '\0' || !(scale > 0.0) || !std::isfinite(scale)) {
      std::fprintf(stderr, "usage: %s [scale]   (scale > 0 multiplies every count)\n", argv[0]);
      return 2;
    }
  }

  std::vector<impl> impls = {bench::tenorite_impl(), bench::tenorite_task_impl(),
                             bench::asio_channel_impl(), bench::std_threads_impl(),
                             bench::asio_floor_impl()};
  // TENORITE_BENCH_ONLY_TENORITE=1 skips the baselines (for profiling): only the two ways to
  // write the tenorite worker.
  if (const char* only = std::getenv("TENORITE_BENCH_ONLY_TENORITE"); only && *only == '1')
    impls.resize(2);
  // TENORITE_BENCH_IMPLS=tenorite,asio_floor keeps only the named implementations.
  if (const char* names = std::getenv("TENORITE_BENCH_IMPLS"); names && *names) {
    const std::string list = "," + std::string(names) + ",";
    std::erase_if(impls, [&](const impl& im) {
      return list.find("," + std::string(im.name) + ",") == std::string::npos;
    });
  }
  std::printf("# tenorite_bench scale=%g runtime_threads=%zu queue_capacity=%zu\n", scale,
              bench::runtime_threads, bench::queue_capacity);
  std::fflush(stdout);

  // TENORITE_BENCH_SCENARIOS=s3,s5 runs only those groups (s1, s2, s3, s5, topologies,
  // overhead).
  const char* only_these = std::getenv("TENORITE_BENCH_SCENARIOS");
  const std::string chosen = only_these ? "," + std::string(only_these) + "," : "";
  auto wanted = [&](const char* group) {
    return chosen.empty() || chosen.find("," + std::string(group) + ",") != std::string::npos;
  };

  results res;
  if (wanted("s1")) run_s1(res, impls, scale);
  if (wanted("s2")) {
    run_s2(res, impls, scale, 64);
    run_s2(res, impls, scale, 1000);
  }
  if (wanted("s3")) run_s3(res, impls, scale);
  if (wanted("s5")) run_s5(res, impls, scale);
  if (impls.size() > 1 && !res.order.empty()) print_ratios(res, impls);
  if (wanted("topologies")) run_topologies(scale);
  if (wanted("overhead")) run_overhead(scale);
  return EXIT_SUCCESS;
}
