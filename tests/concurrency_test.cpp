// SPDX-License-Identifier: BSL-1.0
// Many callers at once — plain threads and coroutines — on one service: every call completes
// once with the response to its own request (counts in = counts out).
#include <atomic>
#include <mutex>
#include <tenorite/detail/small_mutex.hpp>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace test;

struct counting_echo_worker {  // doubles; returns how many requests it served
  static asio::awaitable<long> task(tenorite::receiver<echo_request> rx, echo_config) {
    long n = 0;
    while (auto r = co_await rx.recv()) {
      r->client.send(r->request * 2);
      ++n;
    }
    co_return n;
  }
};
using counting_echo_service =
    tenorite::service<int, int, std::string, counting_echo_worker, echo_config, long>;

struct counters {
  std::atomic<long> matched{0}, mismatched{0}, coroutines_done{0};
  std::promise<void> all_coroutines;
};

// Coroutines take everything as parameters: a capturing lambda would dangle.
asio::awaitable<void> coroutine_caller(counting_echo_service::caller_type cl, int c, int calls,
                                       int coroutines, counters* n) {
  for (int i = 0; i < calls; ++i) {
    int id = 1'000'000 + c * 100 + i;
    auto r = co_await cl.send_request(std::move(id));
    if (r && *r == 2 * (1'000'000 + c * 100 + i)) {
      n->matched.fetch_add(1, std::memory_order_relaxed);
    } else {
      n->mismatched.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (n->coroutines_done.fetch_add(1) + 1 == coroutines) n->all_coroutines.set_value();
}

TEST(Concurrency, EightThreadsAndAThousandCoroutinesEachGetTheirOwnResponses) {
  tenorite::runtime rt(2);
  auto [task, caller] = counting_echo_service{}.start_task(rt, 32, echo_config{});
  constexpr int threads = 8, per_thread = 2000, coroutines = 1000, per_coroutine = 50;

  counters n;
  for (int c = 0; c < coroutines; ++c)
    asio::co_spawn(rt.executor(), coroutine_caller(caller, c, per_coroutine, coroutines, &n),
                   asio::detached);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t, cl = caller] {
      for (int i = 0; i < per_thread; ++i) {
        int id = t * 100'000 + i;
        auto r = cl.send_request_blocking(id);
        if (r && *r == 2 * id) {
          n.matched.fetch_add(1, std::memory_order_relaxed);
        } else {
          n.mismatched.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  for (auto& th : pool) th.join();
  n.all_coroutines.get_future().wait();
  caller = {};
  auto served = task.wait();
  ASSERT_TRUE(served);
  constexpr long total = long(threads) * per_thread + long(coroutines) * per_coroutine;
  EXPECT_EQ(n.mismatched.load(), 0);
  EXPECT_EQ(n.matched.load(), total);
  EXPECT_EQ(*served, total);  // the worker served each request exactly once
}

TEST(Concurrency, ManyServicesStartCallAndEndTogether) {
  tenorite::runtime rt(2);
  constexpr int services = 200;
  std::vector<tenorite::join_handle<long>> tasks;
  std::vector<counting_echo_service::caller_type> callers;
  for (int s = 0; s < services; ++s) {
    auto [t, c] = counting_echo_service{}.start_task(rt, 1 + s % 4, echo_config{});
    tasks.push_back(std::move(t));
    callers.push_back(std::move(c));
  }
  std::vector<std::thread> pool;
  std::atomic<long> ok{0};
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&, t] {
      for (int s = t; s < services; s += 4)
        for (int i = 0; i < 10; ++i)
          if (callers[s].send_request_blocking(i).value_or(-1) == 2 * i) ok.fetch_add(1);
    });
  for (auto& th : pool) th.join();
  callers.clear();
  long served = 0;
  for (auto& t : tasks) served += t.wait().value();
  EXPECT_EQ(ok.load(), services * 10);
  EXPECT_EQ(served, services * 10);
}

// The queue's lock (detail::small_mutex): threads that outnumber the cores take it in turn,
// often enough to sleep on it; every increment made under it survives (a lost wake-up would
// hang the test, a broken exclusion would lose increments; TSan sees a data race on `total`).
TEST(Concurrency, TheQueueLockExcludesAndWakesEveryWaiter) {
  tenorite::detail::small_mutex m;
  long total = 0;
  constexpr int threads = 6, rounds = 20'000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i = 0; i < rounds; ++i) {
        std::lock_guard lk(m);
        ++total;
        if (i % 512 == 0) std::this_thread::yield();  // held across a yield: others sleep
      }
    });
  for (auto& t : pool) t.join();
  EXPECT_EQ(total, long{threads} * rounds);
  EXPECT_TRUE(m.try_lock());
  EXPECT_FALSE(m.try_lock());
  m.unlock();
}
