// SPDX-License-Identifier: BSL-1.0
// bench/kv_common.hpp — what every implementation of the benchmark shares: the service's
// request/response/error types, the worker's request handling, the kv mix and the checks of
// every response, a few measuring helpers, and the interface each implementation exposes.
#pragma once

#if defined(__GLIBC__)
#include <malloc.h>  // malloc_trim
#endif

#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <expected>
#include <fstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace bench {

// ---- Request, Response, Error: the original's HashMap-as-a-Service ----
struct Set {
  std::string key;
  std::string value;
};
struct Get {
  std::string key;
};
struct Echo {
  std::uint64_t value;
};
using kv_request = std::variant<Set, Get, Echo>;

struct Empty {};
struct Str {
  std::string value;
};
struct Num {
  std::uint64_t value;
};
using kv_response = std::variant<Empty, Str, Num>;

struct InvalidKey {
  std::string key;
};
using kv_error = InvalidKey;

/// What a worker answers with.
using kv_result = std::expected<kv_response, kv_error>;
using kv_map = std::unordered_map<std::string, std::string>;

inline constexpr std::size_t key_count = 1024;
inline constexpr std::size_t queue_capacity = 32;
inline constexpr std::size_t runtime_threads = 2;

/// "k0".."k1023" and "v0".."v1023", built once (both fit in the small-string buffer).
inline const std::array<std::string, key_count>& keys() {
  static const auto table = [] {
    std::array<std::string, key_count> t;
    for (std::size_t i = 0; i < key_count; ++i) t[i] = "k" + std::to_string(i);
    return t;
  }();
  return table;
}
inline const std::array<std::string, key_count>& values() {
  static const auto table = [] {
    std::array<std::string, key_count> t;
    for (std::size_t i = 0; i < key_count; ++i) t[i] = "v" + std::to_string(i);
    return t;
  }();
  return table;
}

/// The map every worker starts with (except in s5, where it starts empty).
inline kv_map initial_map() {
  kv_map m;
  m.reserve(key_count);
  for (std::size_t i = 0; i < key_count; ++i) m.emplace(keys()[i], values()[i]);
  return m;
}

/// The worker's handling of one request (the same for every implementation).
inline kv_result handle(kv_map& map, kv_request req) {
  if (auto* e = std::get_if<Echo>(&req)) return kv_response(Num{e->value});
  if (auto* s = std::get_if<Set>(&req)) {
    if (s->key.empty()) return std::unexpected(InvalidKey{std::move(s->key)});
    map.insert_or_assign(std::move(s->key), std::move(s->value));
    return kv_response(Empty{});
  }
  auto& g = std::get<Get>(req);
  auto it = map.find(g.key);
  if (it == map.end()) return std::unexpected(InvalidKey{std::move(g.key)});
  return kv_response(Str{it->second});
}

// ---- Failures: a wrong response ends the program; it is never a figure ----
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "tenorite_bench: FAILURE: %s\n", what.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  std::_Exit(EXIT_FAILURE);
}

// ---- The kv mix: caller j's call i uses n = i + j ----
/// n even -> Get{"k" + str(n % 1024)}, n odd -> Set{"k" + str(n % 1024), "x"}.
inline kv_request kv_mix(std::uint64_t n) {
  const std::string& key = keys()[n % key_count];
  if (n % 2 == 0) return Get{key};
  return Set{key, "x"};
}

/// Checks the response to kv_mix(n): Set -> Empty; Get of key k -> Str "v<k>" or "x"
/// (several callers Set "x" concurrently).
inline void check_kv(std::uint64_t n, const kv_response& r) {
  const std::size_t k = n % key_count;
  if (n % 2 == 0) {
    const auto* s = std::get_if<Str>(&r);
    if (!s) fail("Get " + keys()[k] + ": the response is not Str");
    if (s->value != values()[k] && s->value != "x")
      fail("Get " + keys()[k] + " returned \"" + s->value + "\" (expected \"" + values()[k] +
           "\" or \"x\")");
  } else if (!std::holds_alternative<Empty>(r)) {
    fail("Set " + keys()[k] + ": the response is not Empty");
  }
}

/// Checks the response to Echo{n}: Num{n}.
inline void check_echo(std::uint64_t n, const kv_response& r) {
  const auto* num = std::get_if<Num>(&r);
  if (!num) fail("Echo " + std::to_string(n) + ": the response is not Num");
  if (num->value != n)
    fail("Echo " + std::to_string(n) + " returned Num " + std::to_string(num->value));
}

/// The service's own error, for the baselines' results.
inline const kv_response& response_or_fail(const kv_result& r) {
  if (!r) fail("the worker answered InvalidKey{" + r.error().key + "}");
  return *r;
}

// ---- Measuring ----
inline std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

/// VmRSS of this process, in bytes (from /proc/self/status, Linux); NaN where there is no
/// such file, so the memory figure prints as nan instead of failing the run.
inline double rss_bytes() {
  std::ifstream in("/proc/self/status");
  if (!in) return std::nan("");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) * 1024.0;
  }
  fail("cannot read VmRSS from /proc/self/status");
}

/// VmRSS before an s5 run: first give the heap's free pages back (earlier scenarios freed
/// memory that the 100k services would otherwise reuse without growing the resident set).
inline double rss_baseline() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  return rss_bytes();
}

// ---- The interface every implementation exposes ----
struct s5_figures {
  double start_and_first_call_ns;  // total, for every service
  double memory_bytes;             // VmRSS growth, for every service
  double shutdown_ns;              // total, for every service
};

struct impl {
  const char* name;
  /// One caller coroutine: `warmup` then `calls` sequential Echo calls. Returns the elapsed
  /// ns of the `calls`; when `samples` is not null, also stores each call's ns there.
  double (*s1_echo)(std::size_t warmup, std::size_t calls, std::uint64_t* samples);
  /// `callers` caller coroutines (or threads), `per_caller` kv calls each. Returns the
  /// elapsed ns (NaN when not supported); caller j stores its call i's ns in
  /// samples[j * per_caller + i] when `samples` is not null.
  double (*s2_kv)(std::size_t callers, std::size_t per_caller, std::uint64_t* samples);
  /// `threads` plain OS threads, `per_thread` blocking kv calls each. Returns elapsed ns.
  double (*s3_blocking)(std::size_t threads, std::size_t per_thread);
  /// Start `services` services with empty maps, one Echo to each from one coroutine, then
  /// drop every caller and join every worker (NaN figures when not supported).
  s5_figures (*s5)(std::size_t services);
};

impl tenorite_impl();
impl tenorite_task_impl();
impl asio_channel_impl();
impl asio_floor_impl();

// Tenorite-only figures (topologies): a pool of `workers` serving CPU-bound requests from
// `callers` coroutines, and the s1 echo with metrics on or off.
double pool_calls_per_s(std::size_t workers, std::size_t callers, std::size_t per_caller);
/// What the echo figure measures with: nothing, metrics (counters, split latencies, the
/// oldest call's age), or everything (metrics, a trace hook, a trace context on every call).
enum class observed { off, metrics, everything };
// `threads`: the runtime's; with 1 the caller and the worker share the thread, and the figure
// is the cost of the code alone (with 2 it also depends on where the two land).
double echo_ns_per_call(observed what, std::size_t warmup, std::size_t calls,
                        std::size_t threads = runtime_threads);
impl std_threads_impl();

}  // namespace bench
