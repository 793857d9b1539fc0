// SPDX-License-Identifier: BSL-1.0
// Several serving processes in one queue group sharing the load, one killed mid-stream, and a
// nats-server restart with reconnection. Every call is accounted for: calls in = outcomes out.
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <tenorite/nats/remote_caller.hpp>
#include <tenorite/nats/server.hpp>
#include <thread>

#include "nats_test_support.hpp"
#include "probe_service.hpp"

namespace {

namespace tn = tenorite::nats;
using remote = tn::remote_caller<probe::request, probe::response, probe::error>;
using tenorite::error_kind;
using namespace std::chrono_literals;

// `b` serves on its runtime (connection_options::executor), `a` on nats.c's threads: one
// queue group, both modes.
TEST(NatsCluster, TwoProcessesInAQueueGroupShareTheLoad) {
  nats_test::server nats;
  nats_test::serving_process a(nats.url(), "probe", "probes", "a");
  nats_test::serving_process b(nats.url(), "probe", "probes", "b", /*on_executor=*/true);
  tenorite::runtime rt(1);
  auto conn = tn::connection::connect({.servers = {nats.url()}});
  remote caller(conn, "probe", rt.executor(), {.timeout = 10s});
  constexpr int n = 400;
  std::map<std::string, int> served;
  for (int i = 0; i < n; ++i) {
    auto r = caller.send_request_blocking(probe::who{});
    ASSERT_TRUE(r) << r.error().message();
    ++served[*r];
  }
  EXPECT_EQ(served.size(), 2u);
  EXPECT_EQ(served["a"] + served["b"], n);
  EXPECT_GT(served["a"], 0);
  EXPECT_GT(served["b"], 0);
  EXPECT_EQ(a.terminate(), 0);  // drains and exits cleanly
  EXPECT_EQ(b.terminate(), 0);
}

// The survivor `b` serves on its runtime (event-loop mode). The callers' connection runs on
// nats.c's threads, then on the callers' runtime (a subscription per call, drained there).
class NatsClusterKill : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Calling, NatsClusterKill, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "OnExecutor" : "NatsThreads";
                         });

TEST_P(NatsClusterKill, KillingOneServerMidStreamLosesNoCallAndTheSurvivorTakesOver) {
  nats_test::server nats;
  nats_test::serving_process a(nats.url(), "probe", "probes", "a");
  nats_test::serving_process b(nats.url(), "probe", "probes", "b", /*on_executor=*/true);
  tenorite::runtime rt(1);
  tn::connection_options co{.servers = {nats.url()}};
  if (GetParam()) co.executor = rt.executor();
  auto conn = tn::connection::connect(co);
  remote caller(conn, "probe", rt.executor(), {.timeout = 2s});

  constexpr int threads = 4, per_thread = 300;
  std::atomic<int> started{0}, completed{0}, ok{0}, timed_out{0}, other{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < threads; ++t)
    callers.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) {
        started.fetch_add(1);
        auto r = caller.send_request_blocking(probe::who{});
        if (r) {
          ok.fetch_add(1);
        } else if (r.error().kind() == error_kind::timed_out) {
          timed_out.fetch_add(1);
        } else {
          other.fetch_add(1);
        }
        completed.fetch_add(1);
      }
    });
  // Kill `a` once the stream is well under way (progress, not time).
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (completed.load() < threads * per_thread / 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  a.kill();
  for (auto& t : callers) t.join();
  // Every call ended, each exactly once: in flight at the kill either completed or timed out.
  EXPECT_EQ(started.load(), threads * per_thread);
  EXPECT_EQ(completed.load(), threads * per_thread);
  EXPECT_EQ(ok.load() + timed_out.load() + other.load(), threads * per_thread);
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(ok.load(), 0);
  std::printf("kill mid-stream: %d calls, %d answered, %d timed out\n", completed.load(),
              ok.load(), timed_out.load());

  // Later calls go to the survivor: once the server has dropped the dead one's interest
  // (20 answers in a row from b), every call succeeds and is served by b.
  int in_a_row = 0;
  deadline = std::chrono::steady_clock::now() + 60s;
  while (in_a_row < 20 && std::chrono::steady_clock::now() < deadline) {
    auto r = caller.send_request_blocking_for(probe::who{}, 2s);
    in_a_row = (r && *r == "b") ? in_a_row + 1 : 0;
  }
  ASSERT_EQ(in_a_row, 20);
  for (int i = 0; i < 100; ++i) {
    auto r = caller.send_request_blocking(probe::who{});
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, "b");
  }
}

// The serving connection on nats.c's threads, then on the service's runtime (event-loop
// mode: nats.c hands the new socket to the loop when it reconnects).
class NatsClusterRestart : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Serving, NatsClusterRestart, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "OnExecutor" : "NatsThreads";
                         });

TEST_P(NatsClusterRestart, ServerRestartAndReconnection) {
  nats_test::server nats;
  const int port = nats.port();
  tenorite::runtime rt(2);
  auto [task, local] = probe::service{}.start_task(rt.executor(), 16, probe::config{"local"});
  tn::connection_options co{.servers = {nats.url()}, .reconnect_wait = 20ms};
  tn::connection_options serve_co = co;
  if (GetParam()) serve_co.executor = rt.executor();
  auto serve_conn = tn::connection::connect(serve_co);
  auto call_conn = tn::connection::connect(co);
  auto srv = tn::serve(serve_conn, "probe", "probes", local);
  remote caller(call_conn, "probe", rt.executor(), {.timeout = 1s});
  auto before = caller.send_request_blocking(probe::echo{"before"});
  ASSERT_TRUE(before) << before.error().message();

  nats.stop();
  // While the server is down a call ends (timed out: buffered for the reconnection, or sent
  // nowhere); it never hangs.
  auto during = caller.send_request_blocking_for(probe::echo{"during"}, 200ms);
  ASSERT_FALSE(during);

  nats.start(port);
  // Both connections reconnect and re-subscribe on their own.
  bool back = false;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!back && std::chrono::steady_clock::now() < deadline) {
    auto r = caller.send_request_blocking_for(probe::echo{"again"}, 1s);
    back = r && *r == "again";
    if (!r) {
      EXPECT_TRUE(r.error().kind() == error_kind::timed_out ||
                  r.error().kind() == error_kind::send_failure)
          << r.error().message();
    }
  }
  ASSERT_TRUE(back);
  for (int i = 0; i < 50; ++i) {
    auto r = caller.send_request_blocking(probe::echo{std::to_string(i)});
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, std::to_string(i));
  }
}

}  // namespace
