// SPDX-License-Identifier: BSL-1.0
// Testing services the way a user does, with GoogleTest and tenorite/testing.hpp: the kv
// service under many schedules, a 30 s deadline against a slow dependency, and a supervised
// service's restart back-off, all in virtual time (the whole file runs in milliseconds).
// docs/testing.md walks through it.
#include "kv.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <chrono>
#include <stdexcept>
#include <string>
#include <tenorite/tenorite.hpp>
#include <tenorite/testing.hpp>
#include <vector>

using namespace std::chrono_literals;
namespace testing_kit = tenorite::testing;

// ---- 1. The kv service: the same answers whatever the schedule ----

// Calls from several coroutines at once: every seed is another legal interleaving of them.
TEST(KvService, EveryScheduleGivesTheSameAnswers) {
  for (auto seed : testing_kit::seeds(200)) {
    testing_kit::simulation sim(seed);
    SCOPED_TRACE(sim.replay_hint());  // a failure prints the seed: set it to replay that run
    auto [task, caller] = kv::service{}.start(sim, {}, kv::config{});

    std::vector<std::string> seen;
    for (int i = 0; i < 3; ++i)
      boost::asio::co_spawn(
          sim,
          [](kv::caller c, int i, std::vector<std::string>& out) -> boost::asio::awaitable<void> {
            const std::string key = "k" + std::to_string(i);
            // Requests built before the co_await (GCC 12 mishandles temporaries inside one).
            kv::request set = kv::set{key, "v" + std::to_string(i)};
            kv::request get = kv::get{key};
            co_await c.send_request(std::move(set));
            auto r = co_await c.send_request(std::move(get));
            out.push_back(kv::describe(r));
          }(caller, i, seen),
          boost::asio::detached);
    sim.run();

    ASSERT_EQ(seen.size(), 3u);
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (std::vector<std::string>{"found \"v0\"", "found \"v1\"", "found \"v2\""}));
  }
}

// ---- 2. A 30 s deadline against a dependency that never answers ----

// The service under test: a cache in front of a store (another service). It gives the store
// 30 s, then answers "unavailable".
using store_caller = tenorite::caller<std::string, std::string, std::string>;
struct cache_config {
  store_caller store;
};
struct cache_worker {
  static boost::asio::awaitable<void> task(
      tenorite::receiver<tenorite::request<std::string, std::string, std::string>> rx,
      cache_config cfg) {
    while (auto r = co_await rx.recv()) {
      auto v = co_await cfg.store.send_request_for(r->request, 30s);
      if (v) {
        r->client.send(*v);
      } else {
        r->client.send(std::unexpected(std::string("unavailable")));
      }
    }
  }
};
using cache_service =
    tenorite::service<std::string, std::string, std::string, cache_worker, cache_config>;

TEST(CacheService, GivesUpOnTheStoreAfterThirtySeconds) {
  testing_kit::simulation sim;  // seed from TENORITE_TEST_SEED, else 1
  testing_kit::fake_service<std::string, std::string, std::string> store(sim);
  auto [task, cache] = cache_service{}.start(sim, {}, cache_config{store.caller()});

  testing_kit::outcomes seen;
  using result = tenorite::caller<std::string, std::string, std::string>::result_type;
  cache.async_send_request("fast", seen.recorder<result>());
  cache.async_send_request("slow", seen.recorder<result>());

  // The test plays the store: it answers the first request and ignores the second.
  auto fast = store.expect([](const std::string& key) { return key == "fast"; }, "a read of fast");
  fast.client.send("42");
  auto slow = store.expect_any("a read of slow");
  EXPECT_EQ(slow.request, "slow");

  const auto t0 = sim.now();
  sim.run();  // nothing else to do: the time jumps to the deadline
  EXPECT_EQ(sim.now() - t0, 30s);
  EXPECT_EQ(seen.ok(), 1u) << seen.describe();
  EXPECT_EQ(seen.count(tenorite::error_kind::service_error), 1u) << seen.describe();
}

// ---- 3. A supervised worker: restarted after a back-off, queued calls kept ----

using job_request = tenorite::request<int, int, std::string>;
struct job_worker {
  // Squares its input; a negative one crashes it (an exception out of the worker).
  static boost::asio::awaitable<void> task(tenorite::receiver<job_request> rx, int) {
    while (auto r = co_await rx.recv()) {
      if (r->request < 0) throw std::runtime_error("poison request");
      r->client.send(r->request * r->request);
    }
  }
};
using job_service = tenorite::service<int, int, std::string, job_worker, int>;

TEST(JobService, RestartsAfterItsBackoffAndServesWhatWasQueued) {
  for (auto seed : testing_kit::seeds(50)) {
    testing_kit::simulation sim(seed);
    SCOPED_TRACE(sim.replay_hint());
    tenorite::service_options opts;
    opts.restart = tenorite::restart_policy{};
    opts.restart->backoff = 2s;
    opts.restart->max_backoff = 1min;  // (the default caps a back-off at 1 s)
    opts.restart->max_restarts = 3;
    opts.restart->window = 1min;
    auto [task, jobs] = job_service{}.start(sim, opts, [] { return 0; });

    testing_kit::outcomes seen;
    using result = job_service::caller_type::result_type;
    const auto t0 = sim.now();
    jobs.async_send_request(-1, seen.recorder<result>());  // crashes the worker
    jobs.async_send_request(3, seen.recorder<result>());   // served by the restarted one
    int served_at_s = -1;
    jobs.async_send_request(4, [&](result r) {
      if (r)
        served_at_s = static_cast<int>(
            std::chrono::duration_cast<std::chrono::seconds>(sim.now() - t0).count());
      seen.record(r);
    });
    sim.run();

    EXPECT_EQ(seen.count(tenorite::error_kind::fetch_failure), 1u) << seen.describe();
    EXPECT_EQ(seen.ok(), 2u) << seen.describe();
    // Whatever the schedule, the restarted worker serves after the 2 s back-off. (The calls
    // may all be queued before the crash, or arrive during the back-off.)
    EXPECT_EQ(served_at_s, 2);
  }
}
