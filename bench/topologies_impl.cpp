// SPDX-License-Identifier: BSL-1.0
// bench/topologies_impl.cpp — tenorite-only figures for the worker topologies (no baseline
// has them): pool scaling on CPU-bound work, and what metrics cost on the s1 hot path.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <exception>
#include <atomic>
#include <latch>
#include <memory>
#include <tenorite/tenorite.hpp>
#include <utility>

#include "kv_common.hpp"

namespace asio = boost::asio;

namespace bench {
namespace {

// ~20 us of arithmetic per request on these VMs: enough for a pool's workers to be the
// bottleneck, so the figure shows how the pool scales with the runtime's threads.
struct checksum_handler {
  std::uint64_t handle(std::uint64_t seed) {
    std::uint64_t h = 1469598103934665603ull ^ seed;
    for (std::uint64_t round = 0; round < 20000; ++round) h = (h ^ round) * 1099511628211ull;
    return h;
  }
};
using checksum_service =
    tenorite::handler_service<std::uint64_t, std::uint64_t, int, checksum_handler>;
using checksum_caller = checksum_service::caller_type;

std::uint64_t expected_checksum(std::uint64_t seed) { return checksum_handler{}.handle(seed); }

asio::awaitable<void> pool_caller(checksum_caller caller, std::uint64_t j, std::size_t per) {
  for (std::uint64_t i = 0; i < per; ++i) {
    const std::uint64_t seed = j * 1'000'003 + i;
    std::uint64_t req = seed;
    auto r = co_await caller.send_request(std::move(req));
    if (!r) fail("pool call failed: " + r.error().message());
    if (*r != expected_checksum(seed)) fail("pool answered a wrong checksum");
  }
}

// ---- metrics cost: s1 with metrics on ----
struct echo_handler {
  std::uint64_t handle(std::uint64_t v) { return v; }
};
using echo_service = tenorite::handler_service<std::uint64_t, std::uint64_t, int, echo_handler>;

asio::awaitable<double> echo_loop(echo_service::caller_type caller, std::size_t warmup,
                                  std::size_t calls) {
  for (std::uint64_t i = 0; i < warmup; ++i) {
    std::uint64_t req = i;
    auto r = co_await caller.send_request(std::move(req));
    if (!r || *r != i) fail("echo answered wrongly");
  }
  const std::uint64_t t0 = now_ns();
  for (std::uint64_t i = 0; i < calls; ++i) {
    std::uint64_t req = i;
    auto r = co_await caller.send_request(std::move(req));
    if (!r || *r != i) fail("echo answered wrongly");
  }
  co_return static_cast<double>(now_ns() - t0);
}

}  // namespace

double pool_calls_per_s(std::size_t workers, std::size_t callers, std::size_t per) {
  tenorite::runtime rt(runtime_threads);
  tenorite::service_options opts;
  opts.workers = workers;
  opts.queue_size = queue_capacity;
  auto [task, caller] = checksum_service{}.start(rt, opts, checksum_handler{});
  std::latch done(static_cast<std::ptrdiff_t>(callers));
  const std::uint64_t t0 = now_ns();
  for (std::size_t j = 0; j < callers; ++j)
    asio::co_spawn(rt.executor(), pool_caller(caller, j, per), [&done](std::exception_ptr e) {
      if (e) fail("a pool caller coroutine threw");
      done.count_down();
    });
  done.wait();
  const double ns = static_cast<double>(now_ns() - t0);
  caller = {};
  if (!task.wait()) fail("the pool did not end cleanly");
  return static_cast<double>(callers * per) / (ns * 1e-9);
}

double echo_ns_per_call(observed what, std::size_t warmup, std::size_t calls,
                        std::size_t threads) {
  tenorite::runtime rt(threads);
  tenorite::service_options opts;
  opts.queue_size = queue_capacity;
  opts.metrics = what != observed::off;
  auto events = std::make_shared<std::atomic<std::uint64_t>>(0);
  if (what == observed::everything)
    opts.trace = [events](const tenorite::trace_event&) {
      events->fetch_add(1, std::memory_order_relaxed);
    };
  auto [task, caller] = echo_service{}.start(rt, opts, echo_handler{});
  if (what == observed::everything) {
    auto ctx = tenorite::trace_context::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    if (!ctx) fail("the benchmark's traceparent does not parse");
    caller = caller.with_trace(*ctx);
  }
  const double ns = rt.block_on(echo_loop(caller, warmup, calls));
  if (what != observed::off) {
    auto m = caller.metrics();
    if (!m || m->answered != warmup + calls) fail("metrics did not count every call");
  }
  if (what == observed::everything && events->load() != 2 * (warmup + calls))
    fail("the trace hook did not hear every call twice");
  caller = {};
  if (!task.wait()) fail("the echo service did not end cleanly");
  return ns / static_cast<double>(calls);
}

}  // namespace bench
