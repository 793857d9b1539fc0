// SPDX-License-Identifier: BSL-1.0
// Worker topologies: handler workers, pools, sharding, supervision, metrics and tracing.
#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <future>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace test;
using namespace std::chrono_literals;
using tenorite::error_kind;

namespace {

tenorite::runtime& rt() {
  static tenorite::runtime r(2);
  return r;
}

// ---- handler workers ----

struct hooks_seen {
  std::atomic<int> starts{0}, stops{0}, handled{0};
};

// A key/value handler: state in the object, errors as values, hooks counted.
struct kv_handler {
  std::shared_ptr<hooks_seen> seen;
  std::map<int, int> map;
  void on_start() { seen->starts++; }
  void on_stop() { seen->stops++; }
  std::expected<int, std::string> handle(int key) {
    seen->handled++;
    if (key < 0) return std::unexpected("negative key " + std::to_string(key));
    return ++map[key];  // how many times this key was asked for
  }
};
using kv_handler_service = tenorite::handler_service<int, int, std::string, kv_handler>;

TEST(Topologies, AHandlerWorkerAnswersKeepsItsStateAndRunsItsHooks) {
  auto seen = std::make_shared<hooks_seen>();
  auto [task, caller] = kv_handler_service{}.start_task(rt(), 8, kv_handler{seen, {}});
  EXPECT_EQ(caller.send_request_blocking(7).value(), 1);
  EXPECT_EQ(caller.send_request_blocking(7).value(), 2);
  EXPECT_EQ(caller.send_request_blocking(8).value(), 1);
  auto bad = caller.send_request_blocking(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind(), error_kind::service_error);
  EXPECT_EQ(bad.error().service_error(), "negative key -1");
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_EQ(seen->starts.load(), 1);
  EXPECT_EQ(seen->stops.load(), 1);
  EXPECT_EQ(seen->handled.load(), 4);
}

// handle() may be a coroutine, and may return a plain Response.
struct async_handler {
  std::shared_ptr<gate> go;
  asio::awaitable<void> on_start() { co_await go->wait(); }
  asio::awaitable<int> handle(int v) {
    co_await yield_now();
    co_return v * 3;
  }
};
using async_handler_service = tenorite::handler_service<int, int, std::string, async_handler>;

TEST(Topologies, AHandlerMayBeACoroutineAndOnStartMayWait) {
  auto go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = async_handler_service{}.start_task(rt(), 4, async_handler{go});
  auto f = caller.async_send_request(5, asio::use_future);
  go->open();  // the handler starts serving only after its on_start completed
  EXPECT_EQ(f.get().value(), 15);
  caller = {};
  EXPECT_TRUE(task.wait());
}

// The request is delivered (handed to the worker's parked receive, whose completion is
// queued on a context nobody runs yet), then its caller gives up: handle() is not called.
TEST(Topologies, AHandlerSkipsARequestWhoseCallerGaveUpAfterDelivery) {
  asio::io_context ctx;
  auto seen = std::make_shared<hooks_seen>();
  auto [task, caller] = kv_handler_service{}.start_task(ctx, 4, kv_handler{seen, {}});
  ctx.poll();  // the worker starts and parks in recv()
  asio::cancellation_signal signal;
  std::optional<kv_handler_service::caller_type::result_type> got;
  caller.async_send_request(
      3, asio::bind_cancellation_slot(signal.slot(), [&](auto r) { got.emplace(std::move(r)); }));
  signal.emit(asio::cancellation_type::terminal);  // delivered already: abandoned
  ctx.restart();
  ctx.poll();
  ASSERT_TRUE(got);
  ASSERT_FALSE(*got);
  EXPECT_EQ(got->error().kind(), error_kind::cancelled);
  EXPECT_EQ(seen->handled.load(), 0);
  EXPECT_EQ(seen->starts.load(), 1);
  caller = {};
  ctx.restart();
  ctx.run();
  EXPECT_TRUE(task.wait());
}

// ---- pools ----

// Each worker's first request waits until every worker holds one: the calls can only all
// complete if `workers` workers serve the one queue at the same time.
struct rendezvous {
  rendezvous(int n, asio::any_io_executor ex)
      : expected(n), all_here(std::make_shared<tenorite::channel<int>>(ex, n)) {}
  int expected;
  std::atomic<int> arrived{0};
  std::shared_ptr<tenorite::channel<int>> all_here;  // one token per waiting worker
  void open_for_all() {
    for (int i = 0; i < expected; ++i) {
      int token = 1;
      all_here->try_send(token);
    }
  }
};
[[gnu::noinline]] asio::awaitable<void> wait_for_all(std::shared_ptr<rendezvous> r) {
  co_await r->all_here->async_receive(asio::use_awaitable);
}
struct pool_handler {
  int id;
  std::shared_ptr<rendezvous> meet;
  std::shared_ptr<std::vector<std::atomic<int>>> served;
  bool met = false;
  asio::awaitable<int> handle(int v) {
    if (!met) {
      met = true;
      if (++meet->arrived == meet->expected) {
        meet->open_for_all();
      } else {
        co_await wait_for_all(meet);
      }
    }
    (*served)[static_cast<std::size_t>(id)]++;
    co_return v + 1;
  }
};
using pool_service = tenorite::handler_service<int, int, std::string, pool_handler>;

TEST(Topologies, APoolServesOneQueueWithAllItsWorkersBehindOneCaller) {
  constexpr int workers = 3;
  auto meet = std::make_shared<rendezvous>(workers, rt().executor());
  auto served = std::make_shared<std::vector<std::atomic<int>>>(workers);
  std::atomic<int> next_id{0};
  tenorite::service_options opts;
  opts.workers = workers;
  opts.queue_size = 64;
  auto [task, caller] = pool_service{}.start(rt(), opts, [&] {
    return pool_handler{next_id++, meet, served};
  });
  constexpr int threads = 4, per_thread = 300;
  std::atomic<int> answered{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, c = caller] {
      for (int i = 0; i < per_thread; ++i) {
        auto r = c.send_request_blocking_for(i, 60s);  // a missing worker shows as timed_out
        if (r && *r == i + 1) answered++;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(answered.load(), threads * per_thread);
  int total = 0;
  for (auto& s : *served) {
    EXPECT_GT(s.load(), 0);  // every worker served
    total += s.load();
  }
  EXPECT_EQ(total, threads * per_thread);
  EXPECT_EQ(next_id.load(), workers);  // one Config per worker, from the factory
  caller = {};
  EXPECT_TRUE(task.wait());  // joins once every worker has ended
}

struct flaky_pool_worker {  // worker 0 throws at its first request; the others serve
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, int id) {
    while (auto r = co_await rx.recv()) {
      if (id == 0) throw std::runtime_error("worker 0 failed");
      r->client.send(r->request);
    }
  }
};
using flaky_pool = tenorite::service<int, int, std::string, flaky_pool_worker, int>;

TEST(Topologies, APoolWorkerThatThrowsLeavesTheOthersServingAndTheJoinReportsIt) {
  tenorite::service_options opts;
  opts.workers = 2;
  std::atomic<int> ids{0};
  auto [task, caller] = flaky_pool{}.start(rt(), opts, [&] { return ids++; });
  int answered = 0, fetch_failures = 0;
  for (int i = 0; i < 200; ++i) {
    auto r = caller.send_request_blocking(i);
    if (r) {
      ++answered;
    } else {
      EXPECT_EQ(r.error().kind(), error_kind::fetch_failure);
      ++fetch_failures;
    }
  }
  EXPECT_LE(fetch_failures, 1);  // worker 0 took at most one request, then died
  EXPECT_EQ(answered + fetch_failures, 200);
  caller = {};
  auto j = task.wait();
  if (fetch_failures == 1) {  // worker 0 got a request (which worker parks first varies)
    ASSERT_FALSE(j);
    EXPECT_TRUE(j.error().is_panic());
  } else {
    EXPECT_TRUE(j);
  }
}

struct sleepy_worker {  // waits a day for its first request's turn: only an abort ends it
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, int) {
    asio::steady_timer t(co_await asio::this_coro::executor, 24h);
    co_await wait_on(t);
    while (auto r = co_await rx.recv()) r->client.send(r->request);
  }
};
using sleepy_pool = tenorite::service<int, int, std::string, sleepy_worker, int>;

TEST(Topologies, AbortingAPoolCancelsEveryWorkerAndReturnsQueuedRequests) {
  tenorite::service_options opts;
  opts.workers = 3;
  auto [task, caller] = sleepy_pool{}.start(rt(), opts, 0);
  auto pending = caller.async_send_request(4, asio::use_future);
  task.abort();
  auto j = task.wait();
  ASSERT_FALSE(j);
  EXPECT_TRUE(j.error().is_cancelled());
  auto r = pending.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::send_failure);
  EXPECT_EQ(r.error().request(), std::optional<int>(4));
}

struct valued_worker {
  static asio::awaitable<int> task(tenorite::receiver<echo_request> rx, int) {
    while (co_await rx.recv()) {
    }
    co_return 1;
  }
};
using valued_service = tenorite::service<int, int, std::string, valued_worker, int, int>;

TEST(Topologies, BadPoolAndServiceOptionsAreRefusedWithAClearError) {
  tenorite::service_options opts;
  opts.workers = 0;
  EXPECT_THROW(pool_service{}.start(rt(), opts, pool_handler{}), std::invalid_argument);
  opts.workers = 2;
  EXPECT_THROW(valued_service{}.start(rt(), opts, 0), std::invalid_argument);
  opts.workers = 1;
  opts.queue_size = 0;
  EXPECT_THROW(valued_service{}.start(rt(), opts, 0), std::invalid_argument);
}

// ---- sharding ----

struct shard_handler {
  std::size_t shard;
  std::shared_ptr<std::mutex> m;
  std::shared_ptr<std::map<std::size_t, std::set<int>>> seen;
  int handle(int key) {
    std::lock_guard lk(*m);
    (*seen)[shard].insert(key);
    return key * 10 + static_cast<int>(shard);
  }
};
using shard_service = tenorite::handler_service<int, int, std::string, shard_handler>;

TEST(Topologies, ShardsOwnTheirKeysAndOneCallerRoutesEveryForm) {
  auto m = std::make_shared<std::mutex>();
  auto seen = std::make_shared<std::map<std::size_t, std::set<int>>>();
  constexpr std::size_t shards = 4;
  auto [tasks, caller] = tenorite::start_sharded(
      shard_service{}, rt(), shards, tenorite::service_options{},
      [&](std::size_t i) {
        return shard_handler{i, m, seen};
      },
      [](const int& key) { return static_cast<std::size_t>(key); });
  ASSERT_EQ(tasks.size(), shards);
  ASSERT_EQ(caller.shards(), shards);
  for (int k = 0; k < 40; ++k) {
    auto r = caller.send_request_blocking(k);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, k * 10 + k % 4);  // answered by shard k % 4
  }
  EXPECT_EQ(caller.async_send_request(41, asio::use_future).get().value(), 411);
  EXPECT_EQ(caller.try_send_request_blocking(42).value(), 422);
  EXPECT_EQ(caller.send_request_blocking_for(43, 60s).value(), 433);
  EXPECT_EQ(caller.send_request_blocking_until(45, std::chrono::steady_clock::now() + 60s).value(),
            451);
  EXPECT_EQ(
      rt().block_on(caller.send_request_until(46, std::chrono::steady_clock::now() + 60s)).value(),
      462);
  EXPECT_EQ(
      caller.async_send_request(47, tenorite::cancel_after(60s, asio::use_future)).get().value(),
      473);
  EXPECT_TRUE(caller.notify_blocking(44));
  caller = {};
  for (auto& t : tasks) EXPECT_TRUE(t.wait());
  for (auto& [shard, keys] : *seen)
    for (int k : keys) EXPECT_EQ(static_cast<std::size_t>(k) % shards, shard);
  EXPECT_EQ(seen->size(), shards);
  EXPECT_TRUE((*seen)[0].contains(44));  // the notification went to its shard too
}

TEST(Topologies, AnEmptyShardedCallerOrZeroShardsIsAClearError) {
  tenorite::sharded_caller<int, int, std::string> empty;
  // Every form (written once in call_forms) checks the handle before starting anything.
  auto names_it = [](const std::logic_error& e) {
    return std::string(e.what()).find("tenorite::sharded_caller::") != std::string::npos;
  };
  auto expect_refused = [&](auto&& f) {
    try {
      f();
      ADD_FAILURE() << "an empty sharded_caller was used without an error";
    } catch (const std::logic_error& e) {
      EXPECT_TRUE(names_it(e)) << e.what();
    }
  };
  expect_refused([&] { empty.send_request_blocking(1); });
  expect_refused([&] { empty.try_send_request_blocking(1); });
  expect_refused([&] { empty.send_request_blocking_for(1, 1s); });
  expect_refused([&] { empty.send_request_blocking_until(1, std::chrono::steady_clock::now()); });
  expect_refused([&] { empty.notify_blocking(1); });
  expect_refused([&] { empty.try_notify(1); });
  expect_refused([&] { empty.async_send_request(1, asio::use_future); });
  expect_refused([&] { empty.async_try_send_request(1, asio::use_future); });
  expect_refused([&] { empty.async_send_request_for(1, 1s, asio::use_future); });
  expect_refused([&] { empty.async_notify(1, asio::use_future); });
  expect_refused([&] { (void)empty.send_request(1); });
  expect_refused([&] { (void)empty.send_request_until(1, std::chrono::steady_clock::now()); });
  expect_refused([&] { (void)empty.notify(1); });
  std::vector<tenorite::caller<int, int, std::string>> with_an_empty_one(2);
  EXPECT_THROW((tenorite::sharded_caller<int, int, std::string>(
                   std::move(with_an_empty_one), [](const int&) { return std::size_t{0}; })),
               std::invalid_argument);
  EXPECT_THROW(tenorite::start_sharded(shard_service{}, rt(), 0, tenorite::service_options{},
                                       shard_handler{}, [](const int&) { return std::size_t{0}; }),
               std::invalid_argument);
}

// ---- supervision ----

struct crash_counter {
  std::atomic<int> starts{0};
  std::mutex m;
  std::set<int> crashed_on;  // the request each crashed worker held
};

// Throws at every `every`-th request it handles (counted per worker instance).
struct crashing_handler {
  std::shared_ptr<crash_counter> c;
  int every;
  int handled = 0;
  int handle(int v) {
    if (++handled % every == 0) {
      std::lock_guard lk(c->m);
      c->crashed_on.insert(v);
      throw std::runtime_error("crash on " + std::to_string(v));
    }
    return v;
  }
};
using crashing_service = tenorite::handler_service<int, int, std::string, crashing_handler>;

TEST(Topologies, ASupervisedWorkerRestartsMidStreamAndNothingElseIsLost) {
  auto c = std::make_shared<crash_counter>();
  tenorite::service_options opts;
  opts.queue_size = 16;
  opts.metrics = true;
  opts.restart = tenorite::restart_policy{.max_restarts = 1000, .window = 1h, .backoff = 0s};
  auto [task, caller] = crashing_service{}.start(rt(), opts, [c] {
    c->starts++;
    return crashing_handler{c, 50};
  });
  constexpr int threads = 4, per_thread = 250;
  std::atomic<int> answered{0}, fetch_failures{0}, other{0};
  std::mutex m;
  std::set<int> failed_requests;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t, cl = caller] {
      for (int i = 0; i < per_thread; ++i) {
        const int v = t * per_thread + i;
        auto r = cl.send_request_blocking(v);
        if (r && *r == v) {
          answered++;
        } else if (!r && r.error().kind() == error_kind::fetch_failure) {
          fetch_failures++;
          std::lock_guard lk(m);
          failed_requests.insert(v);
        } else {
          other++;
        }
      }
    });
  for (auto& t : ts) t.join();
  const int crashes = static_cast<int>(c->crashed_on.size());
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(answered.load() + fetch_failures.load(), threads * per_thread);  // counts in = out
  EXPECT_EQ(failed_requests, c->crashed_on);  // exactly the held requests failed
  EXPECT_EQ(crashes, threads * per_thread / 50);
  EXPECT_EQ(c->starts.load(), crashes + 1);  // a fresh Config from the factory each time
  auto m1 = caller.metrics();
  ASSERT_TRUE(m1);
  EXPECT_EQ(m1->restarts, static_cast<std::uint64_t>(crashes));
  EXPECT_EQ(m1->failed_of(error_kind::fetch_failure), static_cast<std::uint64_t>(crashes));
  caller = {};
  EXPECT_TRUE(task.wait());  // the last worker ended normally
}

TEST(Topologies, TheSupervisorGivesUpAfterTheLimitAndTheJoinSaysSo) {
  auto c = std::make_shared<crash_counter>();
  tenorite::service_options opts;
  opts.restart = tenorite::restart_policy{.max_restarts = 2, .window = 1h, .backoff = 0s};
  auto [task, caller] = crashing_service{}.start(rt(), opts, [c] {
    return crashing_handler{c, 1};
  });
  for (int i = 0; i < 3; ++i) {
    auto r = caller.send_request_blocking(i);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind(), error_kind::fetch_failure);
  }
  auto j = task.wait();
  ASSERT_FALSE(j);
  ASSERT_TRUE(j.error().is_panic());
  try {
    j.error().rethrow();
  } catch (const tenorite::restart_limit_reached& e) {
    EXPECT_EQ(e.restarts(), 2u);
    EXPECT_NE(std::string(e.what()).find("crash on 2"), std::string::npos);
  }
  auto late = caller.send_request_blocking(9);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().kind(), error_kind::send_failure);
}

TEST(Topologies, AnAbortDuringTheBackOffEndsTheServiceAsCancelled) {
  auto c = std::make_shared<crash_counter>();
  tenorite::service_options opts;
  opts.restart = tenorite::restart_policy{.max_restarts = 5, .window = 1h, .backoff = 24h};
  auto [task, caller] = crashing_service{}.start(rt(), opts, [c] {
    return crashing_handler{c, 1};
  });
  EXPECT_FALSE(caller.send_request_blocking(1));  // the worker crashes; a day's back-off
  task.abort();
  auto j = task.wait();
  ASSERT_FALSE(j);
  EXPECT_TRUE(j.error().is_cancelled());
}

TEST(Topologies, TheRestartPolicyBacksOffAndCountsWithinItsWindow) {
  using clock = std::chrono::steady_clock;
  tenorite::detail::restart_tracker t(tenorite::restart_policy{.max_restarts = 3,
                                                               .window = 10s,
                                                               .backoff = 10ms,
                                                               .backoff_factor = 2.0,
                                                               .max_backoff = 30ms});
  const auto t0 = clock::time_point{} + 1h;
  EXPECT_EQ(t.next(t0), std::optional<clock::duration>(10ms));
  EXPECT_EQ(t.next(t0 + 1s), std::optional<clock::duration>(20ms));
  EXPECT_EQ(t.next(t0 + 2s), std::optional<clock::duration>(30ms));   // capped
  EXPECT_EQ(t.next(t0 + 3s), std::nullopt);                           // 3 within 10 s: give up
  EXPECT_EQ(t.next(t0 + 12s), std::optional<clock::duration>(20ms));  // t0 left the window
  tenorite::detail::restart_tracker unsupervised(std::nullopt);
  EXPECT_EQ(unsupervised.next(t0), std::nullopt);
}

// ---- metrics and tracing ----

TEST(Topologies, MetricsCountEveryOutcomeAndTheQueue) {
  echo_config cfg;
  cfg.before_first_recv = std::make_shared<gate>(rt().executor());
  tenorite::service_options opts;
  opts.queue_size = 2;
  opts.metrics = true;
  auto [task, caller] = echo_service{}.start(rt(), opts, cfg);
  auto q1 = caller.async_send_request(1, asio::use_future);
  auto q2 = caller.async_send_request(2, asio::use_future);
  auto full = caller.try_send_request_blocking(3);  // queue_full: the worker is held
  ASSERT_FALSE(full);
  auto timed = caller.send_request_blocking_for(4, 1ms);  // waits for room, then times out
  ASSERT_FALSE(timed);
  EXPECT_EQ(timed.error().kind(), error_kind::timed_out);
  auto held = caller.metrics();
  ASSERT_TRUE(held);
  EXPECT_EQ(held->queue_depth, 2u);
  EXPECT_EQ(held->in_flight, 2u);
  cfg.before_first_recv->open();
  EXPECT_TRUE(q1.get());
  EXPECT_TRUE(q2.get());
  EXPECT_FALSE(caller.send_request_blocking(-5));  // service_error
  EXPECT_TRUE(caller.notify_blocking(6));
  caller.send_request_blocking(7).value();
  auto m = *caller.metrics();
  EXPECT_EQ(m.calls, 6u);
  EXPECT_EQ(m.answered, 3u);
  EXPECT_EQ(m.failed_of(error_kind::queue_full), 1u);
  EXPECT_EQ(m.failed_of(error_kind::timed_out), 1u);
  EXPECT_EQ(m.failed_of(error_kind::cancelled), 0u);  // the deadline's inner cancel
  EXPECT_EQ(m.failed_of(error_kind::service_error), 1u);
  EXPECT_EQ(m.failed_total(), 3u);
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_EQ(m.notifications, 1u);
  EXPECT_EQ(m.accepted, 5u);  // 1, 2, -5, the notification, 7
  EXPECT_EQ(m.latency.total(), 6u);
  EXPECT_GT(m.latency.percentile(1.0).count(), 0);
  task.abort();
  task.wait();
  auto after = caller.send_request_blocking(8);
  EXPECT_EQ(after.error().kind(), error_kind::send_failure);
  EXPECT_EQ(caller.metrics()->failed_of(error_kind::send_failure), 1u);
}

// A call that gives up after delivery completes then (cancelled), not when the worker's
// answer comes: it is counted once, and nothing stays in flight.
TEST(Topologies, MetricsCountACallThatGaveUpAfterDelivery) {
  auto p = std::make_shared<std::promise<void>>();
  auto held = std::make_shared<gate>(rt().executor());
  struct holding_worker {
    static asio::awaitable<void> task(
        tenorite::receiver<echo_request> rx,
        std::pair<std::shared_ptr<std::promise<void>>, std::shared_ptr<gate>> cfg) {
      while (auto r = co_await rx.recv()) {
        cfg.first->set_value();       // delivered
        co_await cfg.second->wait();  // held until the caller gave up
        r->client.send(r->request);
      }
    }
  };
  using holding_service =
      tenorite::service<int, int, std::string, holding_worker,
                        std::pair<std::shared_ptr<std::promise<void>>, std::shared_ptr<gate>>>;
  tenorite::service_options opts;
  opts.metrics = true;
  auto [task, caller] = holding_service{}.start(rt(), opts, std::pair(p, held));
  tenorite::runtime one(1);  // start and cancel on one thread: slots are not thread-safe
  asio::cancellation_signal signal;
  std::promise<echo_result> got;
  asio::post(one.executor(), [&, c = caller] {
    c.async_send_request(
        5, asio::bind_cancellation_slot(signal.slot(), [&](echo_result r) { got.set_value(r); }));
  });
  p->get_future().get();  // the worker holds it
  asio::post(one.executor(), [&] { signal.emit(asio::cancellation_type::terminal); });
  auto r = got.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::cancelled);
  EXPECT_FALSE(r.error().request());  // delivered: nothing to give back
  auto m = *caller.metrics();
  EXPECT_EQ(m.calls, 1u);
  EXPECT_EQ(m.failed_of(error_kind::cancelled), 1u);
  EXPECT_EQ(m.answered, 0u);
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_EQ(m.latency.total(), 1u);
  held->open();  // the late answer goes nowhere and changes no count
  caller = {};
  EXPECT_TRUE(task.wait());
}

TEST(Topologies, TheTraceHookSeesEachCallStartAndCompleteOnce) {
  struct log {
    std::mutex m;
    std::map<std::uint64_t, std::vector<tenorite::trace_event>> events;
  };
  auto l = std::make_shared<log>();
  tenorite::service_options opts;
  opts.trace = [l](const tenorite::trace_event& e) {
    std::lock_guard lk(l->m);
    l->events[e.call_id].push_back(e);
  };
  auto [task, caller] = echo_service{}.start(rt(), opts, echo_config{});
  for (int i = 0; i < 20; ++i) (void)caller.send_request_blocking(i % 2 ? i : -i);
  ASSERT_TRUE(caller.metrics());  // a trace hook turns metrics on
  caller = {};
  task.wait();
  ASSERT_EQ(l->events.size(), 20u);
  int errors = 0;
  for (auto& [id, evs] : l->events) {
    ASSERT_EQ(evs.size(), 2u);
    EXPECT_EQ(evs[0].what, tenorite::trace_event::phase::started);
    EXPECT_EQ(evs[1].what, tenorite::trace_event::phase::completed);
    if (evs[1].outcome) {
      EXPECT_EQ(*evs[1].outcome, error_kind::service_error);
      ++errors;
    }
  }
  EXPECT_EQ(errors, 9);  // -2, -4, ..., -18 (0 is not negative)
}

TEST(Topologies, MetricsAreEmptyWhenNotAskedFor) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  EXPECT_FALSE(caller.metrics());
  caller = {};
  task.wait();
}

TEST(Topologies, TheLatencyHistogramPlacesValuesInPowerOfTwoBuckets) {
  using h = tenorite::latency_histogram;
  EXPECT_EQ(h::bucket_of(0ns), 0u);
  EXPECT_EQ(h::bucket_of(1ns), 0u);
  EXPECT_EQ(h::bucket_of(2ns), 1u);
  EXPECT_EQ(h::bucket_of(1000ns), 9u);  // 512 <= 1000 < 1024
  h hist;
  hist.counts[3] = 99;  // [8, 16) ns
  hist.counts[10] = 1;  // [1024, 2048) ns
  EXPECT_EQ(hist.percentile(0.5), 16ns);
  EXPECT_EQ(hist.percentile(0.99), 16ns);
  EXPECT_EQ(hist.percentile(1.0), 2048ns);
}

// ---- handler workers without a coroutine (handler.hpp's handler_machine) ----

struct plain_seen {
  std::atomic<int> live{0}, starts{0}, stops{0}, handled{0};
  std::mutex m;
  std::vector<int> order;  // the requests handle() saw, in order
};

// handle(), on_start() and on_stop() are plain functions: the service runs the loop without
// a coroutine. Every instance is counted, so a test can tell that the handler was destroyed
// (exactly once each) before the join completed.
struct plain_handler {
  std::shared_ptr<plain_seen> seen;
  int throw_on = -1;  // handle() throws for this request
  bool throw_in_start = false, throw_in_stop = false;

  explicit plain_handler(std::shared_ptr<plain_seen> s, int t = -1, bool in_start = false,
                         bool in_stop = false)
      : seen(std::move(s)), throw_on(t), throw_in_start(in_start), throw_in_stop(in_stop) {
    seen->live++;
  }
  plain_handler(const plain_handler& o)
      : seen(o.seen),
        throw_on(o.throw_on),
        throw_in_start(o.throw_in_start),
        throw_in_stop(o.throw_in_stop) {
    seen->live++;
  }
  plain_handler(plain_handler&& o) noexcept : plain_handler(static_cast<const plain_handler&>(o)) {}
  plain_handler& operator=(const plain_handler&) = delete;
  ~plain_handler() { seen->live--; }

  void on_start() {
    seen->starts++;
    if (throw_in_start) throw std::runtime_error("on_start failed");
  }
  void on_stop() {
    seen->stops++;
    if (throw_in_stop) throw std::runtime_error("on_stop failed");
  }
  int handle(int v) {
    seen->handled++;
    {
      std::lock_guard lk(seen->m);
      seen->order.push_back(v);
    }
    if (v == throw_on) throw std::runtime_error("handle failed on " + std::to_string(v));
    return v + 1000;
  }
};
using plain_service = tenorite::handler_service<int, int, std::string, plain_handler>;
using plain_result = plain_service::caller_type::result_type;

// Which loop a handler gets is decided by its functions' types.
static_assert(tenorite::detail::handler_loop<plain_handler, int, int, std::string>::plain);
static_assert(tenorite::detail::handler_loop<kv_handler, int, int, std::string>::plain);
static_assert(!tenorite::detail::handler_loop<pool_handler, int, int, std::string>::plain);

// Collects callback completions, counting them: each call must complete exactly once.
struct plain_results {
  std::vector<std::optional<plain_result>> got;
  int completions = 0;
  explicit plain_results(std::size_t n) : got(n) {}
  auto slot(std::size_t i) {
    return [this, i](plain_result r) {
      ++completions;
      EXPECT_FALSE(got[i]) << "call " << i << " completed twice";
      got[i].emplace(std::move(r));
    };
  }
};

// The worker ended cancelled: the join says so, on_stop did not run, and every handler
// instance is destroyed (by the time the join completes).
void expect_ended_cancelled(tenorite::join_handle<void>& task, const plain_seen& seen) {
  auto j = task.wait();
  ASSERT_FALSE(j);
  EXPECT_TRUE(j.error().is_cancelled());
  EXPECT_EQ(seen.stops.load(), 0);
  EXPECT_EQ(seen.live.load(), 0);
}

// More requests queued than one step serves (TENORITE_HANDLER_BATCH, 64) before the worker
// first runs: all are answered in order, then the end of the queue runs on_stop once, and
// the handler is gone when the join completes.
TEST(Topologies, APlainHandlerServesEveryQueuedRequestInOrderAcrossBatches) {
  constexpr int n = 300;
  asio::io_context ctx;
  auto seen = std::make_shared<plain_seen>();
  auto [task, caller] = plain_service{}.start_task(ctx, n, plain_handler{seen});
  plain_results res(n);
  for (int i = 0; i < n; ++i) caller.async_send_request(i, res.slot(static_cast<std::size_t>(i)));
  caller = {};
  ctx.run();
  EXPECT_EQ(res.completions, n);
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(res.got[static_cast<std::size_t>(i)]);
    ASSERT_TRUE(*res.got[static_cast<std::size_t>(i)]);
    EXPECT_EQ(**res.got[static_cast<std::size_t>(i)], i + 1000);
  }
  std::vector<int> expected(n);
  for (int i = 0; i < n; ++i) expected[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(seen->order, expected);
  EXPECT_EQ(seen->starts.load(), 1);
  EXPECT_EQ(seen->stops.load(), 1);
  EXPECT_TRUE(task.is_finished());
  EXPECT_TRUE(task.wait());
  EXPECT_EQ(seen->live.load(), 0);
}

// handle() throws on the second request: that call gets fetch_failure, the one queued
// behind it comes back as a send failure with its request, on_stop does not run, and the
// join carries the exception.
TEST(Topologies, APlainHandlerThatThrowsFailsItsCallReturnsTheQueuedOnesAndPanics) {
  asio::io_context ctx;
  auto seen = std::make_shared<plain_seen>();
  auto [task, caller] = plain_service{}.start_task(ctx, 8, plain_handler{seen, 1});
  plain_results res(3);
  for (int i = 0; i < 3; ++i) caller.async_send_request(i, res.slot(static_cast<std::size_t>(i)));
  ctx.run();
  EXPECT_EQ(res.completions, 3);
  ASSERT_TRUE(res.got[0] && *res.got[0]);
  EXPECT_EQ(**res.got[0], 1000);
  ASSERT_TRUE(res.got[1] && !*res.got[1]);
  EXPECT_EQ(res.got[1]->error().kind(), error_kind::fetch_failure);
  ASSERT_TRUE(res.got[2] && !*res.got[2]);
  EXPECT_EQ(res.got[2]->error().kind(), error_kind::send_failure);
  EXPECT_EQ(res.got[2]->error().request(), std::optional<int>(2));
  EXPECT_EQ(seen->stops.load(), 0);
  EXPECT_EQ(seen->live.load(), 0);
  auto j = task.wait();
  ASSERT_FALSE(j);
  ASSERT_TRUE(j.error().is_panic());
  EXPECT_THROW(std::rethrow_exception(j.error().exception()), std::runtime_error);
  auto later = caller.send_request_blocking(5);  // the queue is closed for good
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error().kind(), error_kind::send_failure);
}

TEST(Topologies, APlainHandlerWhoseHooksThrowEndsWithThatPanic) {
  {  // on_start: nothing is handled, the queued request comes back
    asio::io_context ctx;
    auto seen = std::make_shared<plain_seen>();
    auto [task, caller] = plain_service{}.start_task(ctx, 4, plain_handler{seen, -1, true});
    plain_results res(1);
    caller.async_send_request(7, res.slot(0));
    ctx.run();
    ASSERT_EQ(res.completions, 1);
    ASSERT_TRUE(res.got[0] && !*res.got[0]);
    EXPECT_EQ(res.got[0]->error().kind(), error_kind::send_failure);
    EXPECT_EQ(res.got[0]->error().request(), std::optional<int>(7));
    EXPECT_EQ(seen->handled.load(), 0);
    EXPECT_EQ(seen->live.load(), 0);
    auto j = task.wait();
    ASSERT_FALSE(j);
    EXPECT_TRUE(j.error().is_panic());
  }
  {  // on_stop: what was queued was answered; the join reports the failure
    asio::io_context ctx;
    auto seen = std::make_shared<plain_seen>();
    auto [task, caller] = plain_service{}.start_task(ctx, 4, plain_handler{seen, -1, false, true});
    plain_results res(1);
    caller.async_send_request(7, res.slot(0));
    caller = {};
    ctx.run();
    ASSERT_EQ(res.completions, 1);
    ASSERT_TRUE(res.got[0] && *res.got[0]);
    EXPECT_EQ(seen->stops.load(), 1);
    EXPECT_EQ(seen->live.load(), 0);
    auto j = task.wait();
    ASSERT_FALSE(j);
    EXPECT_TRUE(j.error().is_panic());
  }
}

// The io_context dies (0) before the worker's first step ran, with calls queued, (1) while
// its receive is parked with nothing to do, (2) with a request handed to the parked receive
// (its completion still queued) and another queued. Each call completes once, the join says
// cancelled, the handler is destroyed.
// The same handler with handle() a coroutine: its loop is the coroutine handler_loop::task.
struct coro_handler : plain_handler {
  using plain_handler::plain_handler;
  asio::awaitable<int> handle(int v) { co_return plain_handler::handle(v); }
};
static_assert(!tenorite::detail::handler_loop<coro_handler, int, int, std::string>::plain);

template <class Handler>
void destroy_the_context_at_every_point() {
  using service = tenorite::handler_service<int, int, std::string, Handler>;
  for (int point = 0; point < 3; ++point) {
    SCOPED_TRACE(point);
    auto ctx = std::make_unique<asio::io_context>();
    auto seen = std::make_shared<plain_seen>();
    auto [task, caller] = service{}.start_task(*ctx, 4, Handler{seen});
    plain_results res(1);
    std::optional<std::future<plain_result>> queued;
    if (point > 0) {
      ctx->poll();  // started: parked in its receive
      EXPECT_EQ(seen->starts.load(), 1);
    }
    if (point != 1) {
      caller.async_send_request(1, res.slot(0));  // (2): handed to the parked receive
      queued.emplace(caller.async_send_request(2, asio::use_future));
    }
    ctx.reset();
    if (point != 1) {
      EXPECT_EQ(res.completions, 1);
      ASSERT_TRUE(res.got[0] && !*res.got[0]);
      if (point == 0) {
        EXPECT_EQ(res.got[0]->error().kind(), error_kind::send_failure);
        EXPECT_EQ(res.got[0]->error().request(), std::optional<int>(1));
      } else {  // delivered to the receive whose completion died with the context
        EXPECT_EQ(res.got[0]->error().kind(), error_kind::fetch_failure);
      }
      auto r = queued->get();
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().kind(), error_kind::send_failure);
      EXPECT_EQ(r.error().request(), std::optional<int>(2));
    }
    EXPECT_EQ(seen->handled.load(), 0);
    expect_ended_cancelled(task, *seen);
    auto later = caller.send_request_blocking(3);
    ASSERT_FALSE(later);
    EXPECT_EQ(later.error().kind(), error_kind::send_failure);
  }
}

// Every form and token of a call pending when the io_context dies, the worker never
// started (0) or parked with the first request handed to it (1): a callback (also through
// _for), use_future (also through _until and cancel_after), deferred launched late, deferred
// never launched, blocking calls from plain threads, and the join. Each completes once: with
// its request back, or (delivered) fetch_failure; the join says cancelled.
template <class Handler>
void every_form_pending_when_the_context_dies() {
  using service = tenorite::handler_service<int, int, std::string, Handler>;
  auto ended_once = [](const plain_result& r, int req) {
    if (r) return false;
    if (r.error().kind() == error_kind::fetch_failure) return true;
    return r.error().kind() == error_kind::send_failure &&
           r.error().request() == std::optional<int>(req);
  };
  for (int point = 0; point < 2; ++point) {
    SCOPED_TRACE(point);
    auto ctx = std::make_unique<asio::io_context>();
    auto seen = std::make_shared<plain_seen>();
    auto [task, caller] = service{}.start_task(*ctx, 16, Handler{seen});
    if (point == 1) ctx->poll();  // started: parked in its receive
    plain_results res(3);
    caller.async_send_request(1, res.slot(0));
    caller.async_send_request_for(2, 1h, res.slot(1));
    auto fut = caller.async_send_request(3, asio::use_future);
    auto until_fut =
        caller.async_send_request_until(4, std::chrono::steady_clock::now() + 1h, asio::use_future);
    auto after_fut = caller.async_send_request(5, tenorite::cancel_after(1h, asio::use_future));
    auto late = caller.async_send_request(6, asio::deferred);
    auto never = caller.async_send_request(7, asio::deferred);
    std::move(late)(res.slot(2));
    std::promise<plain_result> blocking;
    std::promise<bool> notified;  // accepted, or refused with its request back
    std::latch started(2);
    std::vector<std::thread> threads;
    threads.emplace_back([&, c = caller] {
      started.count_down();
      blocking.set_value(c.send_request_blocking_for(8, 1h));
    });
    threads.emplace_back([&, c = caller] {
      started.count_down();
      auto n = c.notify_blocking(9);
      notified.set_value(n || n.error().kind() == error_kind::send_failure);
    });
    started.wait();
    auto joined = task.async_join(asio::use_future);

    ctx.reset();

    EXPECT_EQ(res.completions, 3);
    for (int i = 0; i < 3; ++i) {
      const auto& got = res.got[static_cast<std::size_t>(i)];
      ASSERT_TRUE(got) << i;
      EXPECT_TRUE(ended_once(*got, i == 2 ? 6 : i + 1)) << i;
    }
    EXPECT_TRUE(ended_once(fut.get(), 3));
    EXPECT_TRUE(ended_once(until_fut.get(), 4));
    EXPECT_TRUE(ended_once(after_fut.get(), 5));
    for (auto& t : threads) t.join();
    EXPECT_TRUE(ended_once(blocking.get_future().get(), 8));
    // Accepted into the queue before the end (then dropped with it), or refused after it.
    EXPECT_TRUE(notified.get_future().get());
    auto j = joined.get();
    ASSERT_FALSE(j);
    EXPECT_TRUE(j.error().is_cancelled());
    EXPECT_EQ(seen->handled.load(), 0);
    EXPECT_EQ(seen->live.load(), 0);
    { auto dropped = std::move(never); }  // never launched: dropped after the context
  }
}

TEST(Topologies, EveryFormPendingWhenTheContextDiesEndsOnceForAPlainHandler) {
  every_form_pending_when_the_context_dies<plain_handler>();
}
TEST(Topologies, EveryFormPendingWhenTheContextDiesEndsOnceForACoroutineHandler) {
  every_form_pending_when_the_context_dies<coro_handler>();
}

TEST(Topologies, DestroyingTheContextEndsAPlainHandlerOnceAtEveryPoint) {
  destroy_the_context_at_every_point<plain_handler>();
}
TEST(Topologies, DestroyingTheContextEndsACoroutineHandlerOnceAtEveryPoint) {
  destroy_the_context_at_every_point<coro_handler>();
}

// While its io_context is being destroyed on this thread, a completion runs at once there
// (off the strand), so a plain handler's step must not serve, run on_stop or wait again:
// the request handed to it (0) or the end of its queue (1) ends the worker as cancelled,
// the call gets fetch_failure, the handler is destroyed, and nothing is left parked.
TEST(Topologies, APlainHandlerCompletedWhileItsContextDiesEndsCancelledWithoutRunning) {
  for (int point = 0; point < 2; ++point) {
    SCOPED_TRACE(point);
    asio::io_context ctx;
    auto seen = std::make_shared<plain_seen>();
    auto [task, caller] = plain_service{}.start_task(ctx, 4, plain_handler{seen});
    ctx.poll();  // started: parked in its receive
    ASSERT_EQ(seen->starts.load(), 1);
    plain_results res(1);
    {
      tenorite::detail::dying_context_scope dying(&ctx);
      if (point == 0) {
        caller.async_send_request(1, res.slot(0));
      } else {
        caller = {};  // the last caller: the queue ends
      }
    }
    if (point == 0) {
      ASSERT_EQ(res.completions, 1);
      ASSERT_TRUE(res.got[0] && !*res.got[0]);
      EXPECT_EQ(res.got[0]->error().kind(), error_kind::fetch_failure);
    }
    EXPECT_EQ(seen->handled.load(), 0);
    EXPECT_EQ(seen->live.load(), 0);  // gone before anything else ran
    EXPECT_TRUE(task.is_finished());
    expect_ended_cancelled(task, *seen);
    EXPECT_EQ(ctx.poll(), 0u);  // nothing was left queued or parked for it
  }
}

// A step that served a full batch (64) leaves its continuation queued on the executor. The
// io_context destroyed (0) or the service aborted (1) at that moment: the 64 served calls
// were answered, the 6 still queued come back with their requests, on_stop does not run,
// the join says cancelled and the handler is gone.
TEST(Topologies, APlainHandlerBetweenTwoBatchesEndsCancelledAndReturnsWhatIsQueued) {
  constexpr int n = 70;
  for (int point = 0; point < 2; ++point) {
    SCOPED_TRACE(point);
    auto ctx = std::make_unique<asio::io_context>();
    auto seen = std::make_shared<plain_seen>();
    auto [task, caller] = plain_service{}.start_task(*ctx, n, plain_handler{seen});
    plain_results res(n);
    for (int i = 0; i < n; ++i) caller.async_send_request(i, res.slot(static_cast<std::size_t>(i)));
    while (seen->handled.load() == 0) ASSERT_EQ(ctx->poll_one(), 1u);
    ASSERT_EQ(seen->handled.load(), 64);  // one step, one batch
    if (point == 0) {
      ctx.reset();
    } else {
      task.abort();
      ctx->run();
    }
    EXPECT_EQ(res.completions, n);
    for (int i = 0; i < n; ++i) {
      const auto& got = res.got[static_cast<std::size_t>(i)];
      ASSERT_TRUE(got) << i;
      if (i < 64) {
        ASSERT_TRUE(*got) << i;
        EXPECT_EQ(**got, i + 1000);
      } else {
        ASSERT_FALSE(*got) << i;
        EXPECT_EQ(got->error().kind(), error_kind::send_failure);
        EXPECT_EQ(got->error().request(), std::optional<int>(i));
      }
    }
    EXPECT_EQ(seen->handled.load(), 64);
    expect_ended_cancelled(task, *seen);
  }
}

// A plain handler runs without a strand: its steps must still never overlap. Each handler
// counts in a plain int (ThreadSanitizer sees any step that is not ordered after the last)
// and checks an in-flight flag; blocking callers on plain threads and coroutine callers on
// the 2-thread runtime hit one worker, then a pool of two. Counts in = counts out.
struct exclusive_handler {
  std::shared_ptr<std::atomic<long>> total, overlaps;
  std::unique_ptr<std::atomic<int>> inside = std::make_unique<std::atomic<int>>(0);
  long handled = 0;  // this handler's own state: no lock, no atomic
  int handle(int v) {
    if (inside->fetch_add(1) != 0) overlaps->fetch_add(1);
    ++handled;
    inside->fetch_sub(1);
    return v + 1;
  }
  void on_stop() { total->fetch_add(handled); }
};
using exclusive_service = tenorite::handler_service<int, int, std::string, exclusive_handler>;
static_assert(tenorite::detail::handler_loop<exclusive_handler, int, int, std::string>::plain);

asio::awaitable<long> exclusive_calls(exclusive_service::caller_type c, int n) {
  long ok = 0;
  for (int i = 0; i < n; ++i) {
    int v = i;
    auto r = co_await c.send_request(std::move(v));
    ok += r && *r == i + 1;
  }
  co_return ok;
}

TEST(Topologies, APlainHandlerWithoutAStrandNeverServesTwoRequestsAtOnce) {
  for (std::size_t workers : {1u, 2u}) {
    SCOPED_TRACE(workers);
    auto total = std::make_shared<std::atomic<long>>(0);
    auto overlaps = std::make_shared<std::atomic<long>>(0);
    tenorite::service_options opts;
    opts.workers = workers;
    opts.queue_size = 8;
    auto [task, caller] = exclusive_service{}.start(
        rt(), opts, [&] { return exclusive_handler{total, overlaps}; });
    constexpr int threads = 3, coroutines = 8, per = 2000;
    std::atomic<long> ok{0};
    std::vector<std::future<long>> spawned;
    for (int k = 0; k < coroutines; ++k)
      spawned.push_back(
          asio::co_spawn(rt().executor(), exclusive_calls(caller, per), asio::use_future));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, c = caller] {
        for (int i = 0; i < per; ++i) {
          auto r = c.send_request_blocking(i);
          ok += r && *r == i + 1;
        }
      });
    for (auto& t : pool) t.join();
    for (auto& f : spawned) ok += f.get();
    caller = {};
    ASSERT_TRUE(task.wait());
    EXPECT_EQ(ok.load(), long{threads + coroutines} * per);
    EXPECT_EQ(total->load(), long{threads + coroutines} * per);
    EXPECT_EQ(overlaps->load(), 0);
  }
}

// abort() reaches plain workers through their queue alone (they have no cancellation
// signal): every parked worker of a pool ends, on_stop does not run, the join says cancelled.
TEST(Topologies, AbortingAPoolOfParkedPlainHandlersCancelsEveryWorker) {
  asio::io_context ctx;
  auto seen = std::make_shared<plain_seen>();
  tenorite::service_options opts;
  opts.workers = 3;
  auto [task, caller] = plain_service{}.start(ctx, opts, [&] { return plain_handler{seen}; });
  ctx.poll();
  ASSERT_EQ(seen->starts.load(), 3);
  ASSERT_EQ(seen->live.load(), 3);
  task.abort();
  ctx.run();  // returns: nothing is left waiting
  EXPECT_TRUE(task.is_finished());
  expect_ended_cancelled(task, *seen);
}

TEST(Topologies, AbortingAParkedPlainHandlerCancelsItAndSkipsOnStop) {
  auto seen = std::make_shared<plain_seen>();
  auto [task, caller] = plain_service{}.start_task(rt(), 4, plain_handler{seen});
  EXPECT_EQ(caller.send_request_blocking(1).value(), 1001);  // it runs, then parks
  task.abort();
  expect_ended_cancelled(task, *seen);
  auto later = caller.send_request_blocking(2);
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error().kind(), error_kind::send_failure);
}

// Two plain workers on one queue; a drain lets them serve what is queued, then both end.
TEST(Topologies, APoolOfPlainHandlersDrainsWhatIsQueuedThenEveryWorkerStops) {
  asio::io_context ctx;
  auto seen = std::make_shared<plain_seen>();
  tenorite::service_options opts;
  opts.workers = 2;
  opts.queue_size = 16;
  auto [task, caller] = plain_service{}.start(ctx, opts, [&] { return plain_handler{seen}; });
  plain_results res(11);
  for (int i = 0; i < 10; ++i) caller.async_send_request(i, res.slot(static_cast<std::size_t>(i)));
  task.drain();
  caller.async_send_request(10, res.slot(10));  // after the drain: refused
  ctx.run();
  EXPECT_EQ(res.completions, 11);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(res.got[static_cast<std::size_t>(i)] && *res.got[static_cast<std::size_t>(i)]);
    EXPECT_EQ(**res.got[static_cast<std::size_t>(i)], i + 1000);
  }
  ASSERT_TRUE(res.got[10] && !*res.got[10]);
  EXPECT_EQ(res.got[10]->error().kind(), error_kind::send_failure);
  EXPECT_EQ(seen->starts.load(), 2);
  EXPECT_EQ(seen->stops.load(), 2);
  EXPECT_EQ(seen->live.load(), 0);
  EXPECT_TRUE(task.wait());
}

}  // namespace
