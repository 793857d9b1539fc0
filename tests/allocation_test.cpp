// SPDX-License-Identifier: BSL-1.0
// No heap allocation per call in the steady state: a counting global operator new watches
// a stream of calls from a coroutine (the awaitable form) and from a plain thread (the
// blocking form) after a warm-up. The same operator new can fail the n-th allocation, to
// start services that run out of memory part-way.
#include <atomic>
#include <cstdlib>
#include <new>
#include <optional>
#include <thread>
#include <vector>

// The replacement operator new/delete pair below uses malloc/free on purpose.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "test_support.hpp"

namespace {
std::atomic<long> allocations{0};
std::atomic<bool> counting{false};
std::atomic<long> fail_in{0};  // > 0: the allocation that brings it to 0 throws
std::atomic<bool> fail_next_aligned{false};  // the next aligned allocation (a ring's) throws
}  // namespace

void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (fail_in.load(std::memory_order_relaxed) > 0 && fail_in.fetch_sub(1) == 1)
    throw std::bad_alloc();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
// The queue's ring storage is allocated aligned: it fails the same way (and is not counted).
void* operator new(std::size_t n, std::align_val_t a) {
  if (fail_in.load(std::memory_order_relaxed) > 0 && fail_in.fetch_sub(1) == 1)
    throw std::bad_alloc();
  if (fail_next_aligned.load(std::memory_order_relaxed) && fail_next_aligned.exchange(false))
    throw std::bad_alloc();
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

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

// A pool whose start runs out of memory at any allocation, after some of its workers were
// started: bad_alloc comes out of start, the started workers still end, the queue is closed
// and the work they held on the context is given back (a group waiting for workers that were
// never started would keep the context's run() from returning and never free the block).
// A pool of plain handlers: Asio 1.26's own strand creation is not safe when its allocation
// fails (~strand_impl locks a mutex it has not set yet), so coroutine workers (one strand
// each) cannot be failed at every allocation, and the context's services are made before
// the failures start.
namespace {
struct doubling_handler {
  int handle(int v) { return 2 * v; }
};
using doubling_service = tenorite::handler_service<int, int, std::string, doubling_handler>;
}  // namespace

TEST(Allocation, APoolThatRunsOutOfMemoryAtAnyPointOfItsStartStillEndsWhatItStarted) {
  int failed_starts = 0;
  bool started = false;
  for (long n = 1; n < 400 && !started; ++n) {
    asio::io_context ioc;
    {
      auto [warm_task, warm_caller] = doubling_service{}.start_task(ioc, 4, doubling_handler{});
    }
    while (ioc.poll() > 0) {
    }
    ASSERT_TRUE(ioc.stopped());
    ioc.restart();
    tenorite::service_options opts;
    opts.queue_size = 4;
    opts.workers = 3;
    try {
      fail_in = n;
      auto [task, caller] = doubling_service{}.start(ioc, opts, doubling_handler{});
      fail_in = 0;
      started = true;
    } catch (const std::bad_alloc&) {
      fail_in = 0;
      ++failed_starts;
    }
    while (ioc.poll() > 0) {
    }
    EXPECT_TRUE(ioc.stopped()) << "start failing at allocation " << n
                               << " left work outstanding on the context";
  }
  EXPECT_TRUE(started);
  EXPECT_GT(failed_starts, 3);  // the later failures are past the first worker's start
}

// A cancellable call, notification, reservation or join, or a permit's send, that runs out of
// memory at any
// allocation of its start (they failed before arm_or_abandon: the operation was left, and a
// reservation's held its caller, so its service never ended) (the cancellation block, the slot's handler) either throws
// bad_alloc and is gone (nothing completes later, nothing keeps the service or the context
// alive: each round's context must stop) or completes exactly once.
TEST(Allocation, ACancellableOperationThatRunsOutOfMemoryWhileStartingThrowsOrCompletesOnce) {
  int thrown = 0, completed = 0, permit_sends_thrown = 0, grown_thrown = 0;
  for (long n = 1; n < 40; ++n) {
    for (int form = 0; form < 8; ++form) {
      asio::io_context ioc;
      {  // the context's services first (as above), outside the failures
        auto [warm_task, warm_caller] = doubling_service{}.start_task(ioc, 4, doubling_handler{});
      }
      while (ioc.poll() > 0) {
      }
      ioc.restart();
      int completions = 0;
      bool threw = false;
      {
        // A queue of one, filled first: the operation under test parks (it cannot complete
        // inside its start, where a failed allocation would be the completion's, not the
        // start's), and completes when the context runs, after the failures stop.
        // A permit's send (form 4) parks nothing: it must instead grow the queue's storage,
        // which is full (4 of 8 slots buffered, the ring's first block holds 4). So must a
        // call (form 5) and a notification (form 6) that find room in the queue but none in
        // its storage (they were left started, and armed, when the growth failed), and a
        // timed call (form 7) in the same place.
        const bool grows = form >= 4;
        const std::size_t capacity = grows ? 8 : 1;
        const int prefill = grows ? 4 : 1;
        auto [task, caller] = doubling_service{}.start_task(ioc, capacity, doubling_handler{});
        int first = 0;
        for (int i = 0; i < prefill; ++i)
          caller.async_send_request(1, [&first](auto&&) { ++first; });
        std::optional<decltype(caller.try_reserve())> permit;
        if (form == 4) {
          permit.emplace(caller.try_reserve());
          ASSERT_TRUE(*permit);
        }
        asio::cancellation_signal sig;  // a fresh signal: its handler memory is allocated
        auto count = [&completions](auto&&...) { ++completions; };
        // Started from a fresh thread: its thread-local caches (recycled operation memory,
        // cancellation blocks) are empty, so the start allocates what it needs, whatever the
        // tests before this one left in the main thread's.
        std::thread starter([&] {
          try {
            fail_in = n;
            switch (form) {
              case 0:
                caller.async_send_request(21, asio::bind_cancellation_slot(sig.slot(), count));
                break;
              case 1:
                caller.async_notify(21, asio::bind_cancellation_slot(sig.slot(), count));
                break;
              case 2:
                caller.async_reserve(asio::bind_cancellation_slot(sig.slot(), count));
                break;
              case 3:
                task.async_join(asio::bind_cancellation_slot(sig.slot(), count));
                break;
              case 5:
                caller.async_send_request(21, asio::bind_cancellation_slot(sig.slot(), count));
                break;
              case 6:
                caller.async_notify(21, asio::bind_cancellation_slot(sig.slot(), count));
                break;
              case 7:
                caller.async_send_request_for(21, std::chrono::hours(1),
                                              asio::bind_cancellation_slot(sig.slot(), count));
                break;
              default:
                (*permit)->async_send_request(21, count);
                break;
            }
            fail_in = 0;
          } catch (const std::bad_alloc&) {
            fail_in = 0;
            threw = true;
          }
        });
        starter.join();
        // A start that threw must have left nothing armed: a cancellation now would complete
        // an operation that already went with its exception.
        if (threw && form >= 5) sig.emit(asio::cancellation_type::terminal);
        while (ioc.poll() > 0) {
        }
        if (form == 3 && !threw) {  // the join completes when the service ends
          caller = {};
          while (ioc.poll() > 0) {
          }
        }
        EXPECT_EQ(first, prefill);
        if (form == 4) {  // the reserved slot went back exactly once: all 8 are free
          std::vector<decltype(caller.try_reserve())> all;
          for (int i = 0; i < 8; ++i) {
            all.push_back(caller.try_reserve());
            EXPECT_TRUE(all.back()) << "allocation " << n << ": slot " << i << " is lost";
          }
          EXPECT_FALSE(caller.try_reserve()) << "allocation " << n << ": a slot was counted twice";
        }
        EXPECT_EQ(completions + (threw ? 1 : 0), 1)
            << "form " << form << ", allocation " << n << ": thrown and completed, or neither";
        (threw ? thrown : completed) += 1;
        if (form == 4 && threw) ++permit_sends_thrown;
        if (form >= 5 && threw) ++grown_thrown;
      }
      while (ioc.poll() > 0) {
      }
      EXPECT_TRUE(ioc.stopped()) << "form " << form << ", allocation " << n
                                 << ": something of the failed start kept the context busy";
    }
  }
  EXPECT_GT(thrown, 0);
  EXPECT_GT(completed, 0);
  EXPECT_GT(permit_sends_thrown, 0) << "the permit's send never failed to grow the ring";
  EXPECT_GT(grown_thrown, 0) << "no call or notification ever failed to grow the ring";
}

// A blocking call (of every form that can grow the queue) that finds room in the queue but
// cannot grow its storage: it throws bad_alloc, and its request's responder (which points at
// the reply on the caller's stack, gone with the exception) completes nothing; the calls
// queued before it are served and the service ends.
TEST(Allocation, ABlockingCallThatCannotGrowTheQueueThrowsAndLeavesNothingBehind) {
  for (int form = 0; form < 2; ++form) {
    asio::io_context ioc;
    auto [task, caller] = doubling_service{}.start_task(ioc, 8, doubling_handler{});
    int first = 0;
    for (int i = 0; i < 4; ++i) caller.async_send_request(1, [&first](auto&&) { ++first; });
    bool threw = false;
    std::thread starter([&] {
      fail_next_aligned = true;
      try {
        if (form == 0) {
          (void)caller.send_request_blocking(21);
        } else {
          (void)caller.send_request_blocking_for(21, std::chrono::hours(1));
        }
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      fail_next_aligned = false;
    });
    starter.join();
    EXPECT_TRUE(threw) << "form " << form << ": the queue's storage did not fail to grow";
    while (ioc.poll() > 0) {
    }
    EXPECT_EQ(first, 4) << "form " << form;
    caller = {};
    while (ioc.poll() > 0) {
    }
    ASSERT_TRUE(ioc.stopped()) << "form " << form << ": something of the failed call was left";
    EXPECT_TRUE(task.wait()) << "form " << form;  // ended: this does not block
  }
}
