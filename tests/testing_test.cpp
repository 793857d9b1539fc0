// SPDX-License-Identifier: BSL-1.0
// The testing kit (tenorite/testing.hpp): virtual time for everything tenorite times, seeded
// schedules that replay, refusals, and teardown with work pending.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <tenorite/testing.hpp>
#include <tenorite/timer.hpp>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace test;
using namespace std::chrono_literals;
using tenorite::error_kind;
using tenorite::testing::simulation;

namespace {

// A worker that takes requests and never answers them (it holds them until its queue closes).
struct hold_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, echo_config) {
    std::vector<echo_request> held;
    while (auto r = co_await rx.recv()) held.push_back(std::move(*r));
  }
};
using hold_service = tenorite::service<int, int, std::string, hold_worker, echo_config>;

// Doubles its requests, throws on a negative one (so a supervisor restarts it).
struct flaky_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, echo_config) {
    while (auto r = co_await rx.recv()) {
      if (r->request < 0) throw std::runtime_error("flaky: negative request");
      r->client.send(r->request * 2);
    }
  }
};
using flaky_service = tenorite::service<int, int, std::string, flaky_worker, echo_config>;

[[gnu::noinline]] asio::awaitable<void> wait_timer(tenorite::timer& t) {
  return t.async_wait(asio::use_awaitable);
}

}  // namespace

TEST(Testing, TimerWaitsInVirtualTime) {
  simulation sim(1);
  const auto t0 = sim.now();
  tenorite::timer t(sim.get_executor(), 30s);
  sim.block_on(wait_timer(t));
  EXPECT_EQ(sim.now() - t0, 30s);
  EXPECT_EQ(sim.timers_pending(), 0u);
}

TEST(Testing, ThirtySecondDeadlineTimesOutAtThirtySeconds) {
  simulation sim(7);
  auto [task, caller] = hold_service{}.start_task(sim, 4, echo_config{});
  const auto t0 = sim.now();
  auto r = sim.block_on(caller.send_request_for(5, 30s));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  EXPECT_EQ(sim.now() - t0, 30s);
  // cancel_after on a plain call: the same, in the handler's context's time.
  const auto t1 = sim.now();
  auto r2 =
      sim.block_on(caller.async_send_request(6, tenorite::cancel_after(2min, asio::use_awaitable)));
  ASSERT_FALSE(r2.has_value());
  EXPECT_EQ(r2.error().kind(), error_kind::timed_out);
  EXPECT_EQ(sim.now() - t1, 2min);
}

TEST(Testing, SupervisedRestartWaitsItsBackoffInVirtualTime) {
  simulation sim(3);
  tenorite::service_options opts;
  opts.queue_size = 4;
  std::vector<std::size_t> hooks;
  opts.restart = tenorite::restart_policy{
      .max_restarts = 2,
      .window = 1h,
      .backoff = 5s,
      .backoff_factor = 2.0,
      .max_backoff = 1h,
      .on_restart = [&](const std::exception_ptr&, std::size_t n) { hooks.push_back(n); }};
  auto [task, caller] = flaky_service{}.start(sim, opts, [] { return echo_config{}; });
  const auto t0 = sim.now();
  auto failed = sim.block_on(caller.send_request(-1));
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().kind(), error_kind::fetch_failure);
  auto ok = sim.block_on(caller.send_request(4));  // served once the 5 s back-off is over
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 8);
  EXPECT_EQ(sim.now() - t0, 5s);
  (void)sim.block_on(caller.send_request(-1));
  auto ok2 = sim.block_on(caller.send_request(5));  // the second back-off is 10 s
  ASSERT_TRUE(ok2.has_value());
  EXPECT_EQ(sim.now() - t0, 15s);
  EXPECT_EQ(hooks, (std::vector<std::size_t>{1, 2}));
  // A third failure within the window: the supervisor gives up; the join says so.
  (void)sim.block_on(caller.send_request(-1));
  auto j = sim.block_on(task.join());
  ASSERT_FALSE(j.has_value());
  EXPECT_TRUE(j.error().is_panic());
}

TEST(Testing, RestartWindowIsVirtualToo) {
  // One restart allowed per minute: failures 2 virtual minutes apart are each restarted.
  simulation sim(5);
  tenorite::service_options opts;
  opts.restart = tenorite::restart_policy{.max_restarts = 1, .window = 1min, .backoff = 1s};
  auto [task, caller] = flaky_service{}.start(sim, opts, [] { return echo_config{}; });
  for (int i = 0; i < 3; ++i) {
    (void)sim.block_on(caller.send_request(-1));
    auto ok = sim.block_on(caller.send_request(1));
    ASSERT_TRUE(ok.has_value()) << "round " << i;
    sim.advance(2min);
  }
  EXPECT_EQ(sim.timers_pending(), 0u);
}

TEST(Testing, SameSeedReplaysTheSameScheduleAndSeedsDiffer) {
  auto run = [](std::uint64_t seed, tenorite::testing::schedule policy) {
    simulation sim(seed, {.policy = policy});
    auto [task, caller] = echo_service{}.start_task(sim, 2, echo_config{});
    std::vector<int> order;
    for (int i = 0; i < 6; ++i)
      caller.async_send_request(i, [&order, i](echo_result r) {
        if (r) order.push_back(i);
      });
    sim.run_until_idle();
    EXPECT_EQ(order.size(), 6u);
    return std::pair(sim.schedule_hash(), order);
  };
  for (auto policy : {tenorite::testing::schedule::random, tenorite::testing::schedule::pct}) {
    std::set<std::uint64_t> hashes;
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
      auto a = run(seed, policy);
      auto b = run(seed, policy);
      EXPECT_EQ(a, b) << "seed " << seed;
      hashes.insert(a.first);
    }
    EXPECT_GT(hashes.size(), 1u) << "every seed took the same schedule";
  }
  // fifo is the same whatever the seed.
  EXPECT_EQ(run(1, tenorite::testing::schedule::fifo), run(2, tenorite::testing::schedule::fifo));
}

TEST(Testing, SeedsComeFromTheEnvironmentWhenSet) {
  ::unsetenv("TENORITE_TEST_SEED");
  EXPECT_EQ(tenorite::testing::seeds(3, 10), (std::vector<std::uint64_t>{10, 11, 12}));
  ::setenv("TENORITE_TEST_SEED", "4242", 1);
  EXPECT_EQ(tenorite::testing::seeds(100), (std::vector<std::uint64_t>{4242}));
  simulation sim;
  EXPECT_EQ(sim.seed(), 4242u);
  EXPECT_EQ(sim.replay_hint(), "TENORITE_TEST_SEED=4242");
  ::unsetenv("TENORITE_TEST_SEED");
}

TEST(Testing, BlockingFormsAreRefusedOnTheSimulationsThread) {
  simulation sim(1);
  auto [task, caller] = echo_service{}.start_task(sim, 2, echo_config{});
  try {
    (void)caller.send_request_blocking(1);
    FAIL() << "expected std::logic_error";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("testing::simulation"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)caller.send_request_blocking_for(1, 1s), std::logic_error);
  EXPECT_THROW((void)caller.notify_blocking(1), std::logic_error);
  tenorite::channel<int> ch(sim.get_executor(), 1);
  EXPECT_THROW((void)ch.send_blocking(1), std::logic_error);
  boost::system::error_code ec;
  EXPECT_THROW((void)ch.receive_blocking(ec), std::logic_error);
  EXPECT_THROW((void)echo_service{}.start_task(2, echo_config{}), std::logic_error);
  // Still usable afterwards.
  EXPECT_EQ(sim.block_on(caller.send_request(2)).value(), 4);
}

TEST(Testing, BlockOnAStuckAwaitableThrowsStalled) {
  simulation sim(1);
  auto ch = std::make_shared<tenorite::channel<int>>(sim.get_executor(), 1);
  try {
    (void)sim.block_on([](std::shared_ptr<tenorite::channel<int>> c) -> asio::awaitable<int> {
      auto v = co_await c->async_receive(asio::use_awaitable);
      co_return v ? *v : -1;
    }(ch));
    FAIL() << "expected testing::stalled";
  } catch (const tenorite::testing::stalled& e) {
    EXPECT_NE(std::string(e.what()).find("TENORITE_TEST_SEED=1"), std::string::npos);
  }
  // The parked receive is destroyed with the simulation (nothing left behind: ASan).
}

TEST(Testing, TimerCancelAndPerOperationCancellationEndWithAborted) {
  simulation sim(1);
  tenorite::timer t(sim.get_executor(), 1h);
  std::vector<boost::system::error_code> out;
  t.async_wait([&](boost::system::error_code ec) { out.push_back(ec); });
  t.async_wait([&](boost::system::error_code ec) { out.push_back(ec); });
  EXPECT_EQ(sim.timers_pending(), 2u);
  EXPECT_EQ(t.cancel(), 2u);
  sim.run();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], asio::error::operation_aborted);
  EXPECT_EQ(out[1], asio::error::operation_aborted);
  EXPECT_EQ(sim.now(), t.expiry() - 1h);  // no time passed

  asio::cancellation_signal sig;
  out.clear();
  t.async_wait(asio::bind_cancellation_slot(
      sig.slot(), [&](boost::system::error_code ec) { out.push_back(ec); }));
  sig.emit(asio::cancellation_type::terminal);
  sim.run();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], asio::error::operation_aborted);
  sig.emit(asio::cancellation_type::terminal);  // after the end: nothing
  sim.run();
  EXPECT_EQ(out.size(), 1u);

  out.clear();
  t.expires_after(1s);
  t.async_wait([&](boost::system::error_code ec) { out.push_back(ec); });
  EXPECT_EQ(t.expires_after(2s), 1u);  // a new expiry cancels the pending wait
  t.async_wait([&](boost::system::error_code ec) { out.push_back(ec); });
  sim.run();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], asio::error::operation_aborted);
  EXPECT_FALSE(out[1]);
}

TEST(Testing, AdvanceFiresTimersInOrderAtTheirOwnTime) {
  simulation sim(9);
  const auto t0 = sim.now();
  std::vector<std::pair<int, simulation::duration>> fired;
  std::vector<std::unique_ptr<tenorite::timer>> timers;
  for (int i : {3, 1, 2}) {
    timers.push_back(std::make_unique<tenorite::timer>(sim.get_executor(), i * 1s));
    timers.back()->async_wait([&, i](boost::system::error_code ec) {
      if (!ec) fired.emplace_back(i, sim.now() - t0);
    });
  }
  sim.advance(2500ms);
  EXPECT_EQ(fired, (std::vector<std::pair<int, simulation::duration>>{{1, 1s}, {2, 2s}}));
  EXPECT_EQ(sim.now() - t0, 2500ms);
  sim.run();
  EXPECT_EQ(fired.size(), 3u);
  EXPECT_EQ(sim.now() - t0, 3s);
}

TEST(Testing, DestroyingTheSimulationCompletesPendingCallsOnce) {
  int completed = 0;
  int aborted = 0;
  {
    simulation sim(11);
    auto [task, caller] = hold_service{}.start_task(sim, 8, echo_config{});
    auto gone = std::make_shared<tenorite::timer>(sim.get_executor(), 1h);
    for (int i = 0; i < 4; ++i)
      caller.async_send_request(i, [&](echo_result r) {
        ++completed;
        if (!r) ++aborted;
      });
    caller.async_send_request_for(9, 10s, [&](echo_result r) {
      ++completed;
      if (!r) ++aborted;
    });
    gone->async_wait([&](boost::system::error_code) { ++completed; });  // destroyed unrun
    sim.run_until_idle();
    EXPECT_EQ(completed, 0);
  }
  EXPECT_EQ(completed, 5);
  EXPECT_EQ(aborted, 5);
}

TEST(Testing, TimerOnARealContextIsASteadyTimer) {
  asio::io_context ioc;
  tenorite::timer t(ioc, 1ms);
  bool done = false;
  t.async_wait([&](boost::system::error_code ec) { done = !ec; });
  ioc.run();
  EXPECT_TRUE(done);
  EXPECT_LE(t.expiry(), std::chrono::steady_clock::now());
}

TEST(Testing, StepInsideAHandlerIsRefused) {
  simulation sim(1);
  bool refused = false;
  asio::post(sim.get_executor(), [&] {
    try {
      sim.step();
    } catch (const std::logic_error&) {
      refused = true;
    }
  });
  sim.run();
  EXPECT_TRUE(refused);
}

TEST(Testing, HandlerExceptionsComeOutOfRun) {
  simulation sim(1);
  asio::post(sim.get_executor(), [] { throw std::runtime_error("boom"); });
  EXPECT_THROW(sim.run(), std::runtime_error);
  EXPECT_EQ(sim.ready(), 0u);
}

// ---- helpers: a scripted fake dependency, outcome counts ----

namespace {
// A front service that asks a dependency (the fake) and adds one to its answer; it gives the
// dependency 5 s.
struct front_config {
  echo_caller backend;
};
struct front_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, front_config cfg) {
    while (auto r = co_await rx.recv()) {
      auto b = co_await cfg.backend.send_request_for(r->request, 5s);
      if (b) {
        r->client.send(*b + 1);
      } else {
        r->client.send(std::unexpected(std::string("backend: ") + b.error().message()));
      }
    }
  }
};
using front_service = tenorite::service<int, int, std::string, front_worker, front_config>;
}  // namespace

TEST(Testing, FakeServiceIsAnsweredByTheTest) {
  simulation sim(21);
  tenorite::testing::fake_service<int, int, std::string> backend(sim);
  auto [task, front] = front_service{}.start_task(sim, 4, front_config{backend.caller()});
  tenorite::testing::outcomes seen;
  front.async_send_request(10, seen.recorder<echo_result>());
  front.async_send_request(20, seen.recorder<echo_result>());
  auto q = backend.expect([](int v) { return v == 10; }, "the request 10");
  q.client.send(100);
  sim.run_until_idle();
  EXPECT_EQ(seen.ok(), 1u);
  // The second one is never answered: the front's 5 s deadline passes (virtually).
  auto q2 = backend.expect_any();
  EXPECT_EQ(q2.request, 20);
  const auto t0 = sim.now();
  sim.run();
  EXPECT_EQ(sim.now() - t0, 5s);
  EXPECT_EQ(seen.ok(), 1u);
  EXPECT_EQ(seen.count(error_kind::service_error), 1u) << seen.describe();
  EXPECT_EQ(seen.total(), 2u);
  EXPECT_EQ(seen.describe(),
            std::string("ok 1, ") + tenorite::to_string(error_kind::service_error) + " 1");
}

TEST(Testing, ExpectationThatCannotBeMetFailsWithTheSchedule) {
  simulation sim(8);
  tenorite::testing::fake_service<int, int, std::string> backend(sim);
  auto c = backend.caller();
  c.async_send_request(1, [](echo_result) {});
  try {
    (void)backend.expect([](int v) { return v == 2; }, "the request 2");
    FAIL() << "expected expectation_failed";
  } catch (const tenorite::testing::expectation_failed& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("expected the request 2"), std::string::npos) << what;
    EXPECT_NE(what.find("1 other request(s)"), std::string::npos) << what;
    EXPECT_NE(what.find("TENORITE_TEST_SEED=8"), std::string::npos) << what;
    EXPECT_NE(what.find("step 1 "), std::string::npos) << what;
  }
  EXPECT_EQ(backend.pending(), 1u);
}

// ---- teardown: the simulation destroyed while operations of every form wait ----

namespace {
[[gnu::noinline]] asio::awaitable<void> call_and_count(echo_caller c, int* completions) {
  auto r = co_await c.send_request(1);
  (void)r;
  ++*completions;  // (not reached when the frame is destroyed with the simulation)
}
}  // namespace

TEST(Testing, DestroyingTheSimulationWithEveryFormPendingCompletesEachOnce) {
  // Outlive the simulation: handles, timers, futures and a held permit.
  std::optional<echo_caller> caller_after;
  std::optional<tenorite::join_handle<void>> task_after;
  std::unique_ptr<tenorite::timer> timer_after;
  std::future<echo_result> call_future;
  std::future<void> wait_future;
  std::optional<echo_caller::permit_type> permit;
  int callbacks = 0, aborted = 0, coroutine_done = 0, joins = 0;
  int before = 0, aborted_before = 0;
  {
    simulation sim(13);
    auto [task, caller] = hold_service{}.start_task(sim, 2, echo_config{});
    // A permit held by the test (one slot), a call queued behind the worker's held one.
    caller.async_send_request(0, [&](echo_result r) {
      ++callbacks;
      if (!r) ++aborted;
    });
    sim.run_until_idle();  // the worker holds request 0
    auto p = sim.block_on(caller.reserve());
    ASSERT_TRUE(p.has_value());
    permit.emplace(std::move(*p));
    caller.async_send_request(1, [&](echo_result r) {  // queued (one slot left)
      ++callbacks;
      if (!r) ++aborted;
    });
    caller.async_notify(2, [&](echo_caller::notify_result r) {  // waits for room
      ++callbacks;
      if (!r) ++aborted;
    });
    call_future = caller.async_send_request_for(3, 1h, asio::use_future);
    auto lazy = caller.async_send_request(4, asio::deferred);  // never launched: no effect
    (void)lazy;
    asio::co_spawn(sim, call_and_count(caller, &coroutine_done), asio::detached);
    timer_after = std::make_unique<tenorite::timer>(sim.get_executor(), 1h);
    wait_future = timer_after->async_wait(asio::use_future);
    task.async_join([&](tenorite::join_handle<void>::result_type) { ++joins; });
    sim.run_until_idle();
    before = callbacks;  // the notification may have found room (then it completed, queued)
    aborted_before = aborted;
    caller_after.emplace(caller);
    task_after.emplace(std::move(task));
  }
  // Every callback completed once; those that completed in the teardown were aborted; the join
  // completed; the futures are ready.
  EXPECT_EQ(aborted_before, 0);
  EXPECT_EQ(callbacks, 3);
  EXPECT_EQ(aborted, 3 - before);
  EXPECT_GE(aborted, 2);  // the two calls at least
  EXPECT_EQ(joins, 1);
  EXPECT_EQ(coroutine_done, 0);  // its frame was destroyed with the simulation
  ASSERT_EQ(call_future.wait_for(0s), std::future_status::ready);
  try {
    auto r = call_future.get();
    EXPECT_FALSE(r.has_value());
  } catch (const std::future_error&) {  // or its promise was destroyed unrun
  }
  ASSERT_EQ(wait_future.wait_for(0s), std::future_status::ready);
  EXPECT_ANY_THROW(wait_future.get());  // a timer wait destroyed unrun: broken promise
  // What outlived the simulation goes quietly (ASan checks nothing is touched after free).
  permit.reset();
  timer_after.reset();
  caller_after.reset();
  task_after.reset();
}

// ---- the clocks a deadline reads, and the thread marks ----

TEST(Testing, ForDeadlinesReadTheServicesClockFromAnyThread) {
  // The simulation runs 1 h ahead of real time; a plain thread's _for call into it still gets
  // 30 s of the simulation's time (not real time, which would have passed already).
  simulation sim(4);
  auto [task, caller] = hold_service{}.start_task(sim, 4, echo_config{});
  sim.advance(1h);
  std::optional<echo_result> out;
  std::thread([&, c = caller] {
    c.async_send_request_for(1, 30s, [&](echo_result r) { out.emplace(std::move(r)); });
  }).join();
  sim.advance(29s);
  EXPECT_FALSE(out.has_value());
  sim.advance(1s);
  ASSERT_TRUE(out.has_value());
  ASSERT_FALSE(out->has_value());
  EXPECT_EQ(out->error().kind(), error_kind::timed_out);
}

TEST(Testing, ThreadMarksFollowEachSimulationWhateverTheOrder) {
  auto a = std::make_unique<simulation>(1);
  auto b = std::make_unique<simulation>(2);
  a.reset();  // not in reverse order of construction: b still marks this thread
  tenorite::channel<int> ch(b->get_executor(), 1);
  EXPECT_THROW((void)ch.send_blocking(1), std::logic_error);
  b.reset();
  // No simulation left: blocking forms are this thread's again.
  tenorite::runtime rt(1);
  auto [task, caller] = echo_service{}.start_task(rt, 2, echo_config{});
  EXPECT_EQ(caller.send_request_blocking(21).value(), 42);
}

TEST(Testing, TimerWhoseSimulationIsGoneRefusesToWait) {
  auto sim = std::make_unique<simulation>(1);
  tenorite::timer t(sim->get_executor());  // no expiry set: due at once
  sim.reset();
  bool ran = false;
  EXPECT_THROW(t.async_wait([&](boost::system::error_code) { ran = true; }), std::logic_error);
  EXPECT_FALSE(ran);
  EXPECT_EQ(t.cancel(), 0u);
}

TEST(Testing, ForDeadlineCountsWhereItsTimerRuns) {
  // A service on a real runtime, called from a simulation's coroutine: the deadline's timer
  // runs on the coroutine's executor (the simulation), so the 30 s are virtual ones, counted
  // from the simulation's time (1 h ahead of real time here).
  tenorite::runtime rt(1);
  auto [task, real_caller] = hold_service{}.start_task(rt, 4, echo_config{});
  simulation sim(6);
  sim.advance(1h);
  const auto t0 = sim.now();
  auto r = sim.block_on(real_caller.send_request_for(1, 30s));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  EXPECT_EQ(sim.now() - t0, 30s);
}
