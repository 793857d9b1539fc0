// SPDX-License-Identifier: BSL-1.0
// What a running process shows of its services: the registry, the split latencies, the
// restart hook and last failure, the service name in trace events, the Prometheus text.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdio>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tenorite/detail/tsc_clock.hpp>
#include <tenorite/prometheus.hpp>
#include <tenorite/registry.hpp>
#include <thread>
#include <vector>

#include "prometheus_check.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using tenorite::error_kind;
using tenorite::service_kind;
using tenorite::service_status;

tenorite::runtime& rt() {
  static tenorite::runtime r(2);
  return r;
}

// Holds every request until the test lets it go: a call in flight for as long as needed.
struct holding_config {
  std::shared_ptr<tenorite::channel<test::echo_request>> held;  // where the worker puts them
};
struct holding_worker {
  static boost::asio::awaitable<void> task(tenorite::receiver<test::echo_request> rx,
                                           holding_config cfg) {
    while (auto r = co_await rx.recv()) {
      test::echo_request item = std::move(*r);
      cfg.held->try_send(item);
    }
  }
};
using holding_service =
    tenorite::service<int, int, std::string, holding_worker, holding_config>;

// Throws on every request; counts its starts.
struct failing_handler {
  std::shared_ptr<std::atomic<int>> starts;
  int handle(int v) {
    throw std::runtime_error("failed on " + std::to_string(v));
  }
};
using failing_service = tenorite::handler_service<int, int, std::string, failing_handler>;

// An io_context of the test's own, run on a thread while a service's worker lives: once the
// thread is joined, nothing of the service runs or is held anywhere but in the test.
struct own_context {
  boost::asio::io_context ctx;
  std::thread runner;
  void run() {
    runner = std::thread([this] { ctx.run(); });
  }
  void join() { runner.join(); }
};

TEST(Registry, ListsEachServiceByNameKindAndShapeUntilItsLastHandleGoes) {
  tenorite::service_registry reg;
  tenorite::service_options opts;
  opts.registry = &reg;
  opts.name = "single";
  opts.queue_size = 7;
  own_context own;
  auto one = test::echo_service{}.start(own.ctx, opts, test::echo_config{});
  own.run();
  opts.name = "pool";
  opts.workers = 3;
  opts.queue_size = 5;
  auto pool = test::echo_service{}.start(rt(), opts, test::echo_config{});
  opts.name = "set";
  opts.workers = 1;
  auto set = tenorite::start_sharded(test::echo_service{}, rt(), 2, opts, test::echo_config{},
                                     [](const int& v) { return static_cast<std::size_t>(v); });
  auto all = reg.snapshot();
  ASSERT_EQ(all.size(), 4u);
  // Sorted by name.
  EXPECT_EQ(all[0].name, "pool");
  EXPECT_EQ(all[1].name, "set[0]");
  EXPECT_EQ(all[2].name, "set[1]");
  EXPECT_EQ(all[3].name, "single");
  EXPECT_EQ(all[0].kind, service_kind::pool);
  EXPECT_EQ(all[0].workers, 3u);
  EXPECT_EQ(all[0].queue_capacity, 5u);
  EXPECT_EQ(all[1].kind, service_kind::shard);
  EXPECT_EQ(all[3].kind, service_kind::service);
  EXPECT_EQ(all[3].queue_capacity, 7u);
  for (const auto& s : all) {
    EXPECT_EQ(s.status, service_status::running) << s.name;
    EXPECT_FALSE(s.metrics) << s.name << ": metrics are off by default";
  }
  EXPECT_TRUE(one.caller.send_request_blocking(2));

  // The last caller gone: it drains, then ends, and leaves once nothing holds it.
  auto task = std::move(one.task);
  one.caller = {};
  EXPECT_TRUE(task.wait());
  own.join();  // the worker's last references are gone with it
  auto ended = reg.find("single");
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->status, service_status::ended);
  task = {};
  EXPECT_FALSE(reg.find("single")) << "listed after its last handle went";
  EXPECT_EQ(reg.size(), 3u);

  pool.caller = {};
  set.caller = {};
  EXPECT_TRUE(pool.task.wait());
  for (auto& t : set.tasks) EXPECT_TRUE(t.wait());
}

TEST(Registry, ATakenNameGetsTheFirstFreeSuffixAndADefaultNameComesFromTheWorkerType) {
  tenorite::service_registry reg;
  tenorite::service_options opts;
  opts.registry = &reg;
  own_context own_a, own_c;
  auto a = test::echo_service{}.start(own_a.ctx, opts, test::echo_config{});
  own_a.run();
  auto b = test::echo_service{}.start(rt(), opts, test::echo_config{});
  EXPECT_TRUE(reg.find("echo_worker"));
  EXPECT_TRUE(reg.find("echo_worker-2"));
  {
    auto c = test::echo_service{}.start(own_c.ctx, opts, test::echo_config{});
    own_c.run();
    EXPECT_TRUE(reg.find("echo_worker-3"));
    c.caller = {};
    c.task.wait();
    own_c.join();
  }
  EXPECT_FALSE(reg.find("echo_worker-3"));
  a.caller = {};
  a.task.wait();
  own_a.join();
  a.task = {};
  // The freed name is the first free one again.
  auto d = test::echo_service{}.start(rt(), opts, test::echo_config{});
  EXPECT_TRUE(reg.find("echo_worker"));
  EXPECT_EQ(reg.size(), 2u);
}

TEST(Registry, AServiceWithoutARegistryIsNotListedAndARegistryMayGoFirst) {
  auto reg = std::make_unique<tenorite::service_registry>();
  tenorite::service_options opts;
  opts.registry = nullptr;
  opts.name = "unlisted-for-sure";
  auto a = test::echo_service{}.start(rt(), opts, test::echo_config{});
  EXPECT_FALSE(tenorite::service_registry::global().find("unlisted-for-sure"));
  opts.registry = reg.get();
  auto b = test::echo_service{}.start(rt(), opts, test::echo_config{});
  EXPECT_EQ(reg->size(), 1u);
  reg.reset();  // the service outlives its registry and leaves a list nobody reads
  EXPECT_TRUE(b.caller.send_request_blocking(1));
  b.caller = {};
  EXPECT_TRUE(b.task.wait());
}

TEST(Registry, ServicesJoinTheGlobalRegistryByDefault) {
  tenorite::service_options opts;
  opts.name = "observability-global";
  auto a = test::echo_service{}.start(rt(), opts, test::echo_config{});
  auto s = tenorite::service_registry::global().find("observability-global");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->kind, service_kind::service);
}

TEST(Registry, DrainShowsAsDrainingWhileQueuedRequestsAreServed) {
  tenorite::service_registry reg;
  tenorite::service_options opts;
  opts.registry = &reg;
  opts.name = "drained";
  auto gate = std::make_shared<test::gate>(rt().executor());
  auto [task, caller] = test::echo_service{}.start(rt(), opts, test::echo_config{gate, nullptr});
  auto f = caller.async_send_request(4, boost::asio::use_future);  // queued behind the gate
  task.drain();
  EXPECT_EQ(reg.find("drained")->status, service_status::draining);
  EXPECT_EQ(reg.find("drained")->queue_depth, 1u);
  gate->open();
  EXPECT_EQ(f.get().value(), 8);
  EXPECT_TRUE(task.wait());
  EXPECT_EQ(reg.find("drained")->status, service_status::ended);
}

TEST(Supervision, OnRestartHearsEachRestartAndTheRegistryShowsTheLastFailure) {
  tenorite::service_registry reg;
  tenorite::service_options opts;
  opts.registry = &reg;
  opts.name = "failing";
  std::mutex m;
  std::vector<std::pair<std::string, std::size_t>> heard;
  std::promise<void> second;
  tenorite::restart_policy policy;
  policy.max_restarts = 5;
  policy.window = 1h;
  policy.backoff = 0s;
  policy.on_restart = [&](const std::exception_ptr& e, std::size_t n) {
    std::lock_guard lk(m);
    heard.emplace_back(tenorite::detail::describe_exception(e), n);
    if (n == 2) second.set_value();
    if (n == 1) throw std::logic_error("a hook that throws does not stop the restart");
  };
  opts.restart = policy;
  auto [task, caller] = failing_service{}.start(rt(), opts, [] { return failing_handler{}; });
  EXPECT_EQ(caller.send_request_blocking(1).error().kind(), error_kind::fetch_failure);
  EXPECT_EQ(caller.send_request_blocking(2).error().kind(), error_kind::fetch_failure);
  second.get_future().wait();
  {
    std::lock_guard lk(m);
    ASSERT_EQ(heard.size(), 2u);
    EXPECT_EQ(heard[0], (std::pair<std::string, std::size_t>{"failed on 1", 1}));
    EXPECT_EQ(heard[1], (std::pair<std::string, std::size_t>{"failed on 2", 2}));
  }
  auto s = reg.find("failing");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->restarts, 2u);
  ASSERT_TRUE(s->last_failure);
  EXPECT_EQ(s->last_failure->message, "failed on 2");
  EXPECT_LE(s->last_failure->when, std::chrono::system_clock::now());
}

TEST(Supervision, AWorkerInItsBackOffIsListedAsRestarting) {
  tenorite::service_registry reg;
  tenorite::service_options opts;
  opts.registry = &reg;
  opts.name = "backing-off";
  std::promise<void> restarting;
  tenorite::restart_policy policy;
  policy.backoff = 24h;
  policy.on_restart = [&](const std::exception_ptr&, std::size_t) { restarting.set_value(); };
  opts.restart = policy;
  auto [task, caller] = failing_service{}.start(rt(), opts, [] { return failing_handler{}; });
  EXPECT_FALSE(caller.send_request_blocking(1));
  restarting.get_future().wait();
  EXPECT_EQ(reg.find("backing-off")->status, service_status::restarting);
  task.abort();
  EXPECT_TRUE(task.wait().error().is_cancelled());
  EXPECT_EQ(reg.find("backing-off")->status, service_status::ended);
}

TEST(Supervision, AnUnsupervisedWorkerThatThrowsLeavesItsMessage) {
  tenorite::service_registry reg;
  tenorite::service_options opts;
  opts.registry = &reg;
  opts.name = "plain-failing";
  auto [task, caller] = failing_service{}.start(rt(), opts, failing_handler{});
  EXPECT_FALSE(caller.send_request_blocking(3));
  EXPECT_TRUE(task.wait().error().is_panic());
  auto s = reg.find("plain-failing");
  ASSERT_TRUE(s && s->last_failure);
  EXPECT_EQ(s->last_failure->message, "failed on 3");
  EXPECT_EQ(s->status, service_status::ended);
  EXPECT_EQ(s->restarts, 0u);
}

// The oldest call's age, with the times given: a call stuck far longer than the ring's 64
// epochs (about 4.3 s) on a quiet service still shows its age; one stuck behind a busy
// stream of later calls too (moved to the older ones); each completes back to nothing.
TEST(Metrics, TheOldestCallInFlightKeepsItsAgeHoweverLongItIsStuck) {
  using clock = tenorite::detail::service_metrics::clock;
  using epochs = tenorite::detail::service_metrics::flight_epochs;
  const clock::time_point t0{std::chrono::seconds(1000)};
  const auto epoch = std::chrono::nanoseconds(std::int64_t{1} << epochs::epoch_shift);
  auto near = [&](std::chrono::nanoseconds got, std::chrono::nanoseconds want) {
    EXPECT_LE(got, want + epoch) << got.count();
    EXPECT_GE(got, want - epoch) << got.count();
  };
  {
    epochs quiet;
    quiet.started(t0);
    near(quiet.oldest_age(t0 + 1s), 1s);
    near(quiet.oldest_age(t0 + 60s), 60s);
    quiet.completed(t0);
    EXPECT_EQ(quiet.oldest_age(t0 + 61s), 0ns);
  }
  {
    epochs busy;
    busy.started(t0);
    // A call in every epoch for 10 s: the stuck call's slot is reused, it moves on.
    for (auto t = t0 + epoch; t < t0 + 10s; t += epoch) {
      busy.started(t);
      busy.completed(t);
    }
    near(busy.oldest_age(t0 + 10s), 10s);
    busy.completed(t0);
    EXPECT_EQ(busy.oldest_age(t0 + 10s), 0ns);
  }
  {
    // Calls of one slot that each outlive the slot's lap (64 epochs) by a little, one after
    // the other: each is carried at the next take-over and takes itself off when it ends, so
    // the age never grows past the longest call's, lap after lap.
    epochs chained;
    const auto lap = epoch * epochs::slot_count;
    chained.started(t0);
    for (int k = 1; k <= 5; ++k) {
      chained.started(t0 + k * lap);  // the slot is taken over: call k-1 is carried
      near(chained.oldest_age(t0 + k * lap), lap);
      chained.completed(t0 + (k - 1) * lap);  // ... and ends
      near(chained.oldest_age(t0 + k * lap + epoch), epoch);
    }
    chained.completed(t0 + 5 * lap);
    EXPECT_EQ(chained.oldest_age(t0 + 6 * lap), 0ns);
  }
}

// More threads than owned stripes, all counting at once: the overflow writes the shared
// stripe, every count adds up, call ids stay unique, and each thread gives its stripe back
// when it ends (the next threads find them free again).
TEST(Metrics, CountsFromMoreThreadsThanStripesAddUpAndEachThreadGivesItsStripeBack) {
  namespace td = tenorite::detail;
  (void)td::this_thread_stripe();  // this thread's stripe, held for the whole test
  const std::uint32_t lent_before = td::lent_stripes().load();
  std::mutex m;
  std::vector<std::uint64_t> ids;
  td::service_metrics metrics([&](const tenorite::trace_event& e) {
    if (e.what != tenorite::trace_event::phase::started) return;
    std::lock_guard lock(m);
    ids.push_back(e.call_id);
  });
  constexpr std::size_t threads = td::owned_stripes + 4, per = 500;
  for (int round = 0; round < 2; ++round) {
    std::atomic<std::size_t> arrived{0};
    std::atomic<std::size_t> shared{0};
    std::vector<std::thread> pool;
    for (std::size_t t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        // Each holds its stripe until all have one: more threads than stripes at once.
        if (td::this_thread_stripe() == td::shared_stripe) ++shared;
        ++arrived;
        while (arrived.load() < threads) std::this_thread::yield();
        for (std::size_t i = 0; i < per; ++i) {
          auto mark = metrics.call_started();
          if (i % 2 == 0) {
            metrics.call_completed(mark, std::nullopt, td::service_metrics::stamp());
          } else {
            metrics.call_completed(mark, error_kind::timed_out);
          }
          if (t == 0) metrics.notification_accepted();
        }
      });
    for (auto& th : pool) th.join();
    const auto free_stripes =
        td::owned_stripes - static_cast<std::size_t>(std::popcount(lent_before));
    EXPECT_EQ(shared.load(), threads - free_stripes);
    EXPECT_EQ(td::lent_stripes().load(), lent_before) << "round " << round;
  }
  const auto s = metrics.snapshot(0, 0, 0);
  const std::uint64_t total = 2 * threads * per;
  EXPECT_EQ(s.calls, total);
  EXPECT_EQ(s.answered, total / 2);
  EXPECT_EQ(s.failed_of(error_kind::timed_out), total / 2);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.notifications, 2 * per);
  EXPECT_EQ(s.latency.total(), total);
  EXPECT_EQ(s.queued.total(), total / 2);
  EXPECT_EQ(s.in_worker.total(), total / 2);
  EXPECT_EQ(s.oldest_in_flight, 0ns);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids.size(), total);
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end()) << "a call id was reused";
}

// The metrics' clock: never goes back on a thread or from one thread to the next, and an
// interval it measures lies within the steady_clock intervals around it (to the scale's
// error), whichever clock it reads.
TEST(Metrics, TheMetricsClockIsSteadyAndKeepsStepWithSteadyClock) {
  using tc = tenorite::detail::tsc_clock;
  using sc = std::chrono::steady_clock;
  auto last = tc::now();
  for (int i = 0; i < 100'000; ++i) {
    const auto t = tc::now();
    ASSERT_GE(t, last);
    last = t;
  }
  std::atomic<std::int64_t> handed{0};
  std::thread other([&] { handed.store(tc::now().time_since_epoch().count()); });
  other.join();
  EXPECT_GE(tc::now().time_since_epoch().count(), handed.load());

  const auto outer0 = sc::now();
  const auto t0 = tc::now();
  const auto inner0 = sc::now();
  while (sc::now() - inner0 < 20ms) {
  }
  const auto inner1 = sc::now();
  const auto t1 = tc::now();
  const auto outer1 = sc::now();
  const double got = static_cast<double>((t1 - t0).count());
  EXPECT_GE(got, 0.995 * static_cast<double>((inner1 - inner0).count()));
  EXPECT_LE(got, 1.005 * static_cast<double>((outer1 - outer0).count()));
  std::printf("tsc_clock reads the %s\n",
              tc::counts_cpu_ticks() ? "time-stamp counter" : "steady_clock");
}

// The buckets: [2^i, 2^(i+1)) ns in bucket i, 0 and 1 in the first, the rest in the last.
TEST(Metrics, EachLatencyFallsInItsPowerOfTwoBucket) {
  using h = tenorite::latency_histogram;
  EXPECT_EQ(h::bucket_of(-5ns), 0u);
  EXPECT_EQ(h::bucket_of(0ns), 0u);
  EXPECT_EQ(h::bucket_of(1ns), 0u);
  EXPECT_EQ(h::bucket_of(2ns), 1u);
  EXPECT_EQ(h::bucket_of(3ns), 1u);
  EXPECT_EQ(h::bucket_of(4ns), 2u);
  EXPECT_EQ(h::bucket_of(1023ns), 9u);
  EXPECT_EQ(h::bucket_of(1024ns), 10u);
  EXPECT_EQ(h::bucket_of(std::chrono::nanoseconds(std::int64_t{1} << 47)), 47u);
  EXPECT_EQ(h::bucket_of(std::chrono::nanoseconds(INT64_MAX)), h::bucket_count - 1);
}

TEST(Metrics, ACallInFlightHasAnAgeAndEveryAnsweredCallIsSplitInQueuedAndWorkerTime) {
  tenorite::service_registry reg;
  tenorite::service_options opts;
  opts.registry = &reg;
  opts.name = "split";
  opts.metrics = true;
  auto held = std::make_shared<tenorite::channel<test::echo_request>>(rt().executor(), 64);
  auto [task, caller] = holding_service{}.start(rt(), opts, holding_config{held});
  auto awaited = caller.async_send_request(1, boost::asio::use_future);
  boost::system::error_code ec;
  auto first = held->receive_blocking(ec);
  ASSERT_TRUE(first);
  auto m = *reg.find("split")->metrics;
  EXPECT_EQ(m.in_flight, 1u);
  EXPECT_GT(m.oldest_in_flight.count(), 0);
  first->client.send(10);
  EXPECT_EQ(awaited.get().value(), 10);

  // One call of every form a worker answers: each is split once; a refused one is not.
  std::vector<std::future<test::echo_result>> futures;
  futures.push_back(caller.async_send_request(2, boost::asio::use_future));
  futures.push_back(caller.async_send_request_for(3, 1h, boost::asio::use_future));
  futures.push_back(caller.async_try_send_request(4, boost::asio::use_future));
  std::thread blocking([&] { EXPECT_EQ(caller.send_request_blocking(5).value(), 50); });
  std::thread blocking_timed([&] { EXPECT_EQ(caller.send_request_blocking_for(6, 1h).value(), 60); });
  for (int answered = 0; answered < 5; ++answered) {
    auto it = held->receive_blocking(ec);
    ASSERT_TRUE(it);
    const int v = it->request;
    it->client.send(v * 10);
  }
  for (auto& f : futures) EXPECT_TRUE(f.get());
  blocking.join();
  blocking_timed.join();
  m = *reg.find("split")->metrics;
  EXPECT_EQ(m.calls, 6u);
  EXPECT_EQ(m.answered, 6u);
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_EQ(m.oldest_in_flight.count(), 0);
  EXPECT_EQ(m.latency.total(), 6u);
  EXPECT_EQ(m.queued.total(), 6u);
  EXPECT_EQ(m.in_worker.total(), 6u);
  EXPECT_GE(m.latency_sum_ns + 6, m.queued_sum_ns);  // each part within the whole (+1 ns each)
  EXPECT_GE(m.latency_sum_ns + 6, m.in_worker_sum_ns);
  EXPECT_GT(m.in_worker_sum_ns, 0u);
}

TEST(Metrics, CallsThatNeverReachAWorkerAreCountedButNotSplitAndLeaveNothingInFlight) {
  tenorite::service_registry reg;
  tenorite::service_options opts;
  opts.registry = &reg;
  opts.name = "refusing";
  opts.metrics = true;
  opts.queue_size = 1;
  auto gate = std::make_shared<test::gate>(rt().executor());
  auto [task, caller] = test::echo_service{}.start(rt(), opts, test::echo_config{gate, nullptr});
  auto queued = caller.async_send_request(1, boost::asio::use_future);  // fills the queue
  EXPECT_EQ(caller.try_send_request_blocking(2).error().kind(), error_kind::queue_full);
  boost::asio::cancellation_signal cancel;
  auto waiting = caller.async_send_request(
      3, boost::asio::bind_cancellation_slot(cancel.slot(), boost::asio::use_future));
  auto timed = caller.async_send_request_for(4, 1ms, boost::asio::use_future);
  EXPECT_EQ(timed.get().error().kind(), error_kind::timed_out);
  boost::asio::post(rt().executor(), [&] { cancel.emit(boost::asio::cancellation_type::all); });
  EXPECT_EQ(waiting.get().error().kind(), error_kind::cancelled);
  gate->open();
  EXPECT_EQ(queued.get().value(), 2);
  auto m = *reg.find("refusing")->metrics;
  EXPECT_EQ(m.calls, 4u);
  EXPECT_EQ(m.answered, 1u);
  EXPECT_EQ(m.failed_total(), 3u);
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_EQ(m.oldest_in_flight.count(), 0);
  EXPECT_EQ(m.queued.total(), 1u);
  EXPECT_EQ(m.in_worker.total(), 1u);
}

TEST(Metrics, ManyCallsOfEveryFormFromManyThreadsLeaveNothingInFlight) {
  tenorite::service_registry reg;
  tenorite::service_options opts;
  opts.registry = &reg;
  opts.name = "busy";
  opts.metrics = true;
  opts.queue_size = 4;
  opts.workers = 2;
  auto [task, caller] = test::echo_service{}.start(rt(), opts, test::echo_config{});
  constexpr int threads = 4, per_thread = 500;
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t, c = caller] {
      for (int i = 0; i < per_thread; ++i) {
        const int v = (i % 7 == 0) ? -1 : i;  // some service errors
        test::echo_result r;
        switch ((t + i) % 4) {
          case 0:
            r = c.send_request_blocking(v);
            break;
          case 1:
            r = c.send_request_blocking_for(v, 1h);
            break;
          case 2:
            r = c.async_send_request(v, boost::asio::use_future).get();
            break;
          default:
            r = c.try_send_request_blocking(v);
            break;
        }
        if (r || r.error().kind() == error_kind::service_error ||
            r.error().kind() == error_kind::queue_full)
          ++ok;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), threads * per_thread);
  auto m = *reg.find("busy")->metrics;
  EXPECT_EQ(m.calls, static_cast<std::uint64_t>(threads * per_thread));
  EXPECT_EQ(m.answered + m.failed_total(), m.calls);  // counts in = counts out
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_EQ(m.oldest_in_flight.count(), 0);
  EXPECT_EQ(m.latency.total(), m.calls);
  // Every call but the refused ones was split.
  EXPECT_EQ(m.queued.total(), m.calls - m.failed_of(error_kind::queue_full));
  EXPECT_EQ(m.in_worker.total(), m.queued.total());
}

TEST(Trace, EveryEventCarriesTheServiceName) {
  tenorite::service_registry reg;
  tenorite::service_options opts;
  opts.registry = &reg;
  opts.name = "traced";
  std::mutex m;
  std::vector<std::string> names;
  opts.trace = [&](const tenorite::trace_event& e) {
    std::lock_guard lk(m);
    names.emplace_back(e.service);
  };
  auto [task, caller] = test::echo_service{}.start(rt(), opts, test::echo_config{});
  EXPECT_TRUE(caller.send_request_blocking(1));
  std::lock_guard lk(m);
  EXPECT_EQ(names, (std::vector<std::string>{"traced", "traced"}));
}

TEST(Prometheus, TheTextFollowsTheFormatAndCarriesTheFigures) {
  tenorite::service_registry reg;
  tenorite::service_options opts;
  opts.registry = &reg;
  opts.name = "kv \"main\"\\\nline";  // every character the format escapes
  opts.metrics = true;
  auto a = test::echo_service{}.start(rt(), opts, test::echo_config{});
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(a.caller.send_request_blocking(i));
  EXPECT_FALSE(a.caller.send_request_blocking(-1));
  opts.name = "quiet";
  opts.metrics = false;
  opts.workers = 2;
  auto b = test::echo_service{}.start(rt(), opts, test::echo_config{});

  const std::string text = tenorite::prometheus_text(reg);
  const auto p = test::prometheus::parse(text);
  for (const auto& e : p.errors) ADD_FAILURE() << e;
  EXPECT_TRUE(p.errors.empty()) << text;
  const std::string name = "kv \"main\"\\\nline";
  EXPECT_EQ(p.types.at("tenorite_calls_total"), "counter");
  EXPECT_EQ(p.types.at("tenorite_call_duration_seconds"), "histogram");
  EXPECT_EQ(p.value("tenorite_calls_total", {{"service", name}, {"kind", "service"}}), 11.0);
  EXPECT_EQ(p.value("tenorite_calls_answered_total", {{"service", name}}), 10.0);
  EXPECT_EQ(p.value("tenorite_calls_failed_total", {{"service", name}, {"error_kind", "service_error"}}),
            1.0);
  EXPECT_EQ(p.value("tenorite_calls_failed_total", {{"service", name}, {"error_kind", "timed_out"}}),
            0.0);
  EXPECT_EQ(p.value("tenorite_call_duration_seconds_count", {{"service", name}}), 11.0);
  EXPECT_EQ(p.value("tenorite_call_duration_seconds_bucket", {{"service", name}, {"le", "+Inf"}}),
            11.0);
  EXPECT_EQ(p.value("tenorite_call_queued_seconds_count", {{"service", name}}), 11.0);
  EXPECT_EQ(p.value("tenorite_service_status", {{"service", name}, {"status", "running"}}), 1.0);
  EXPECT_EQ(p.value("tenorite_service_status", {{"service", name}, {"status", "ended"}}), 0.0);
  EXPECT_EQ(p.value("tenorite_service_workers", {{"service", "quiet"}, {"kind", "pool"}}), 2.0);
  EXPECT_EQ(p.value("tenorite_queue_capacity", {{"service", "quiet"}}), 32.0);
  // A service without metrics has no call series.
  EXPECT_FALSE(p.value("tenorite_calls_total", {{"service", "quiet"}}));
}

TEST(Prometheus, TheCheckerRejectsWhatTheFormatForbids) {
  // The checker itself must fail on broken text, or the test above proves nothing.
  const char* bad[] = {
      "# TYPE x counter\nx -1\n",                                     // negative counter
      "x{a=\"1\"} 1\nx{a=\"1\"} 2\n",                                 // series twice
      "x{a=\"\\t\"} 1\n",                                             // bad escape
      "1x 1\n",                                                       // bad name
      "x 1\n# TYPE x gauge\n",                                        // TYPE after samples
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
      "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",        // no +Inf
      "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x=\"1\"} 2\n",    // not together
      "x abc\n",                                                      // bad value
      "x 1",                                                          // no final newline
  };
  for (const char* t : bad) EXPECT_FALSE(test::prometheus::parse(t).errors.empty()) << t;
  EXPECT_TRUE(test::prometheus::parse("# HELP x a\n# TYPE x gauge\nx{a=\"\\\"\\n\\\\\"} 1.5e3\n")
                  .errors.empty());
}

}  // namespace
