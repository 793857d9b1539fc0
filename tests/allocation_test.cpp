// SPDX-License-Identifier: BSL-1.0
// No heap allocation per call in the steady state: a counting global operator new watches
// a stream of calls from a coroutine (the awaitable form) and from a plain thread (the
// blocking form) after a warm-up.
#include <atomic>
#include <cstdlib>
#include <new>

// The replacement operator new/delete pair below uses malloc/free on purpose.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "test_support.hpp"

namespace {
std::atomic<long> allocations{0};
std::atomic<bool> counting{false};
}  // namespace

void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace test;

namespace {

asio::awaitable<long> calls(echo_caller c, int warmup, int n) {
  for (int i = 0; i < warmup; ++i) {
    int v = i;
    (void)co_await c.send_request(std::move(v));
  }
  const long before = allocations.load();
  counting = true;
  long ok = 0;
  for (int i = 0; i < n; ++i) {
    int v = i;
    auto r = co_await c.send_request(std::move(v));
    ok += r && *r == 2 * i;
  }
  counting = false;
  co_return (ok == n) ? allocations.load() - before : -1;
}

}  // namespace

TEST(Allocation, AwaitableCallsAllocateNothingInTheSteadyState) {
  tenorite::runtime rt(1);  // one thread: every recycled block comes back to the same cache
  auto [task, caller] = echo_service{}.start_task(rt, 32, echo_config{});
  long allocated = rt.block_on(calls(caller, 1000, 20000));
  EXPECT_EQ(allocated, 0) << "heap allocations during 20000 awaitable calls";
}

TEST(Allocation, BlockingCallsAllocateNothingInTheSteadyState) {
  tenorite::runtime rt(1);
  auto [task, caller] = echo_service{}.start_task(rt, 32, echo_config{});
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(caller.send_request_blocking(i));
  const long before = allocations.load();
  counting = true;
  for (int i = 0; i < 5000; ++i) ASSERT_EQ(caller.send_request_blocking(i).value(), 2 * i);
  counting = false;
  // Blocking callers hand requests to the worker from their own thread, so the worker's
  // per-thread cache of cancellation blocks may still grow to its working set the first time
  // a hand-off pattern needs one more (a few blocks, at most the cache's capacity). What must
  // not happen is an allocation per call: 5000 calls, at most 16 allocations.
  EXPECT_LE(allocations.load() - before, tenorite::detail::cancel_ctl_cache::capacity)
      << "heap allocations during 5000 blocking calls";
}
