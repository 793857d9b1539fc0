// SPDX-License-Identifier: BSL-1.0
// How services end: throwing, aborted, returning with requests queued, runtime destroyed.
#include <algorithm>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace test;
using tenorite::error_kind;

namespace {

tenorite::runtime& rt() {
  static tenorite::runtime r(2);
  return r;
}

// Collects call outcomes from callback completions, from any thread.
struct outcomes {
  std::mutex m;
  std::vector<echo_result> results;
  std::latch* all_done;
  void add(echo_result r) {
    {
      std::lock_guard lk(m);
      results.push_back(std::move(r));
    }
    all_done->count_down();
  }
};

}  // namespace

// ---- a worker that throws ----

struct throwing_config {
  std::shared_ptr<gate> go;                     // throw once this opens
  std::shared_ptr<std::promise<void>> holding;  // set when the worker holds a request
};
struct throwing_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, throwing_config cfg) {
    auto r = co_await rx.recv();  // hold the first request, unanswered
    cfg.holding->set_value();
    co_await cfg.go->wait();
    throw std::runtime_error("worker failed on purpose");
  }
};
using throwing_service = tenorite::service<int, int, std::string, throwing_worker, throwing_config>;

TEST(Lifecycle, ThrowingWorkerPanicsHeldRequestFetchFailsQueuedOnesComeBack) {
  throwing_config cfg{std::make_shared<gate>(rt().executor()),
                      std::make_shared<std::promise<void>>()};
  auto holding = cfg.holding->get_future();
  auto [task, caller] = throwing_service{}.start_task(rt(), 8, cfg);

  std::latch done(4);
  outcomes out{{}, {}, &done};
  caller.async_send_request(1, [&](echo_result r) { out.add(std::move(r)); });
  holding.wait();  // the worker now holds request 1
  for (int i = 2; i <= 4; ++i)
    caller.async_send_request(i, [&](echo_result r) { out.add(std::move(r)); });
  cfg.go->open();

  auto j = task.wait();
  ASSERT_FALSE(j);
  EXPECT_TRUE(j.error().is_panic());
  EXPECT_FALSE(j.error().is_cancelled());
  EXPECT_NE(j.error().message().find("worker failed on purpose"), std::string::npos);
  EXPECT_THROW(j.error().rethrow(), std::runtime_error);

  done.wait();
  int fetch = 0;
  std::vector<int> returned;
  for (auto& r : out.results) {
    ASSERT_FALSE(r);
    if (r.error().kind() == error_kind::fetch_failure) ++fetch;
    if (r.error().kind() == error_kind::send_failure) returned.push_back(*r.error().request());
  }
  EXPECT_EQ(fetch, 1);  // request 1 was held
  std::sort(returned.begin(), returned.end());
  EXPECT_EQ(returned, (std::vector<int>{2, 3, 4}));  // queued ones come back, none dropped

  auto later = caller.send_request_blocking(9);
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error().kind(), error_kind::send_failure);
  EXPECT_EQ(later.error().request(), std::optional<int>(9));
}

// ---- a worker that returns with requests still queued ----

struct early_return_worker {  // waits on the gate, then returns without receiving
  static asio::awaitable<void> task(tenorite::receiver<echo_request>, echo_config cfg) {
    co_await cfg.before_first_recv->wait();
  }
};
using early_return_service =
    tenorite::service<int, int, std::string, early_return_worker, echo_config>;

TEST(Lifecycle, RequestsQueuedWhenTheWorkerReturnsComeBackAsSendFailures) {
  echo_config cfg{std::make_shared<gate>(rt().executor()), nullptr};
  auto [task, caller] = early_return_service{}.start_task(rt(), 2, cfg);
  // 2 fill the queue, 2 more wait for room: all four must come back.
  std::latch done(4);
  outcomes out{{}, {}, &done};
  for (int i = 0; i < 4; ++i)
    caller.async_send_request(i, [&](echo_result r) { out.add(std::move(r)); });
  cfg.before_first_recv->open();
  EXPECT_TRUE(task.wait().has_value());
  done.wait();
  std::vector<int> returned;
  for (auto& r : out.results) {
    ASSERT_FALSE(r);
    ASSERT_EQ(r.error().kind(), error_kind::send_failure);
    returned.push_back(*r.error().request());
  }
  std::sort(returned.begin(), returned.end());
  EXPECT_EQ(returned, (std::vector<int>{0, 1, 2, 3}));
}

// ---- abort ----

struct abort_probe_config {
  std::shared_ptr<std::promise<void>> started;
  std::shared_ptr<std::promise<std::string>> recv_outcome;  // what recv() did after abort
};
struct abort_probe_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, abort_probe_config cfg) {
    cfg.started->set_value();
    try {
      while (auto r = co_await rx.recv()) r->client.send(r->request);
      cfg.recv_outcome->set_value("ended");
    } catch (const boost::system::system_error& e) {
      cfg.recv_outcome->set_value(e.code() == asio::error::operation_aborted ? "aborted"
                                                                             : "other error");
    }
    // Returning normally after an abort still yields is_cancelled().
  }
};
using abort_probe_service =
    tenorite::service<int, int, std::string, abort_probe_worker, abort_probe_config>;

TEST(Lifecycle, AbortFromAnotherThreadMakesRecvThrowAndJoinCancelled) {
  abort_probe_config cfg{std::make_shared<std::promise<void>>(),
                         std::make_shared<std::promise<std::string>>()};
  auto started = cfg.started->get_future();
  auto outcome = cfg.recv_outcome->get_future();
  auto [task, caller] = abort_probe_service{}.start_task(rt(), 4, cfg);
  EXPECT_EQ(caller.send_request_blocking(5).value(), 5);
  started.wait();
  std::thread([&] { task.abort(); }).join();
  EXPECT_EQ(outcome.get(), "aborted");
  auto j = task.wait();
  ASSERT_FALSE(j);
  EXPECT_TRUE(j.error().is_cancelled());
  EXPECT_TRUE(task.is_finished());
  auto r = caller.send_request_blocking(6);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::send_failure);
}

struct sleeping_worker {  // waits on a timer far in the future: only cancellation ends it
  static asio::awaitable<void> task(tenorite::receiver<echo_request>,
                                    std::shared_ptr<std::promise<void>> waiting) {
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::hours(24));
    waiting->set_value();
    co_await wait_on(timer);
  }
};
using sleeping_service =
    tenorite::service<int, int, std::string, sleeping_worker, std::shared_ptr<std::promise<void>>>;

TEST(Lifecycle, AbortCancelsAWorkerWaitingOnSomethingElse) {
  auto waiting = std::make_shared<std::promise<void>>();
  auto w = waiting->get_future();
  auto [task, caller] = sleeping_service{}.start_task(rt(), 4, waiting);
  w.wait();
  task.abort();
  auto j = task.wait();
  ASSERT_FALSE(j);
  EXPECT_TRUE(j.error().is_cancelled());
}

struct answer_once_then_return_worker {
  static asio::awaitable<int> task(tenorite::receiver<echo_request> rx, echo_config) {
    if (auto r = co_await rx.recv()) r->client.send(r->request);
    co_return 7;
  }
};
using answer_once_service =
    tenorite::service<int, int, std::string, answer_once_then_return_worker, echo_config, int>;

TEST(Lifecycle, AbortAfterTheWorkerFinishedChangesNothing) {
  auto [task, caller] = answer_once_service{}.start_task(rt(), 4, echo_config{});
  ASSERT_TRUE(caller.send_request_blocking(1));
  while (!task.is_finished()) std::this_thread::yield();  // a state wait, bounded by the test
  task.abort();
  auto j = task.wait();
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ(*j, 7);
}

// ---- unhandled exceptions ----

TEST(Lifecycle, PanicOfADetachedWorkerGoesToTheHookOnce) {
  std::atomic<int> calls{0};
  std::promise<std::string> what;
  auto previous = tenorite::set_unhandled_exception_handler([&](std::exception_ptr e) {
    if (calls.fetch_add(1) == 0) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        what.set_value(x.what());
      }
    }
  });
  {
    throwing_config cfg{std::make_shared<gate>(rt().executor()),
                        std::make_shared<std::promise<void>>()};
    auto holding = cfg.holding->get_future();
    auto [task, caller] = throwing_service{}.start_task(rt(), 8, cfg);
    caller.async_send_request(1, [](echo_result) {});
    holding.wait();
    { auto dropped = std::move(task); }  // detach: nobody will observe the panic
    cfg.go->open();
    EXPECT_EQ(what.get_future().get(), "worker failed on purpose");
  }
  tenorite::set_unhandled_exception_handler(previous);
  EXPECT_EQ(calls.load(), 1);
}

TEST(Lifecycle, AnExceptionEscapingAHandlerDoesNotKillARuntimeThread) {
  std::promise<void> reported;
  auto previous =
      tenorite::set_unhandled_exception_handler([&](std::exception_ptr) { reported.set_value(); });
  tenorite::runtime one(1);
  asio::post(one.executor(), [] { throw std::runtime_error("escaped"); });
  reported.get_future().wait();
  // The single thread is still serving.
  EXPECT_EQ(one.block_on([]() -> asio::awaitable<int> { co_return 5; }()), 5);
  tenorite::set_unhandled_exception_handler(previous);
}

// ---- destroying a runtime with live services and calls ----

TEST(Lifecycle, DestroyingARuntimeEndsItsServicesAndCompletesEveryPendingCall) {
  auto r = std::make_unique<tenorite::runtime>(2);
  echo_config cfg{std::make_shared<gate>(r->executor()), std::make_shared<std::promise<void>>()};
  auto started = cfg.started->get_future();
  auto [task, caller] = echo_service{}.start_task(*r, 2, cfg);
  auto [task2, caller2] = echo_service{}.start_task(*r, 2, echo_config{});
  started.wait();

  // Plain threads blocked in calls: two fill the queue, two wait for room.
  std::vector<std::thread> threads;
  std::vector<echo_result> results(
      4, echo_result(std::unexpect, tenorite::error<int, std::string>::fetch_failure()));
  std::latch sent(4);
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i, c = caller] {
      sent.count_down();
      results[i] = c.send_request_blocking(100 + i);
    });
  sent.wait();
  // Coroutine callers on the runtime being destroyed: they are destroyed with it.
  asio::co_spawn(
      r->executor(),
      [](echo_caller c) -> asio::awaitable<void> {
        int v = 1;
        (void)co_await c.send_request(std::move(v));
      }(caller),
      asio::detached);

  EXPECT_EQ(caller2.send_request_blocking(1).value(), 2);  // the second service works
  r.reset();                                               // nothing may hang

  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) {
    // Each call completed exactly once; those never delivered carry their request back.
    ASSERT_FALSE(results[i]);
    if (results[i].error().kind() == error_kind::send_failure)
      EXPECT_EQ(results[i].error().request(), std::optional<int>(100 + i));
    else
      EXPECT_EQ(results[i].error().kind(), error_kind::fetch_failure);
  }
  auto j = task.wait();
  ASSERT_FALSE(j);
  EXPECT_TRUE(j.error().is_cancelled());
  auto j2 = task2.wait();
  ASSERT_FALSE(j2);
  EXPECT_TRUE(j2.error().is_cancelled());
  auto late = caller.send_request_blocking(7);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().kind(), error_kind::send_failure);
}

TEST(Lifecycle, DestroyingAnIoContextBeforeTheWorkerEverRanEndsTheService) {
  auto ioc = std::make_unique<asio::io_context>();  // never run: the worker never starts
  auto [task, caller] = echo_service{}.start_task(*ioc, 2, echo_config{});
  std::promise<echo_result> got;
  std::thread t([&got, c = caller] { got.set_value(c.send_request_blocking(7)); });
  ioc.reset();
  t.join();
  auto r = got.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::send_failure);
  EXPECT_EQ(r.error().request(), std::optional<int>(7));
  auto j = task.wait();
  ASSERT_FALSE(j);
  EXPECT_TRUE(j.error().is_cancelled());
}

// ---- a worker whose result holds one of its own service's callers ----

namespace {
struct holds_caller {
  echo_caller caller;
  std::shared_ptr<std::atomic<int>> destroyed;  // null once moved from
  holds_caller(echo_caller c, std::shared_ptr<std::atomic<int>> d)
      : caller(std::move(c)), destroyed(std::move(d)) {}
  holds_caller(holds_caller&& o) noexcept
      : caller(std::move(o.caller)), destroyed(std::move(o.destroyed)) {}
  ~holds_caller() {
    if (destroyed) destroyed->fetch_add(1);
  }
};
struct returning_config {
  std::shared_ptr<std::optional<echo_caller>> own;  // the service's own caller, set at start
  std::shared_ptr<std::atomic<int>> destroyed;
};
struct returning_worker {
  static asio::awaitable<holds_caller> task(tenorite::receiver<echo_request> rx,
                                            returning_config cfg) {
    auto r = co_await rx.recv();
    int v = r->request;
    r->client.send(v);
    holds_caller out(std::move(**cfg.own), cfg.destroyed);
    cfg.own->reset();
    co_return out;
  }
};
using returning_service =
    tenorite::service<int, int, std::string, returning_worker, returning_config, holds_caller>;
returning_config fresh_returning_config() {
  return {std::make_shared<std::optional<echo_caller>>(), std::make_shared<std::atomic<int>>(0)};
}
}  // namespace

// The outcome lives with the service's queue: a value holding one of the service's callers
// must not keep it alive once nobody can join any more (the handle dropped unjoined).
TEST(Lifecycle, AnUnjoinedResultHoldingTheServicesOwnCallerIsFreedWithTheHandle) {
  asio::io_context ioc;
  returning_config cfg = fresh_returning_config();
  auto [task, caller] = returning_service{}.start_task(ioc, 2, cfg);
  cfg.own->emplace(caller);
  auto weak = caller.weak();
  std::optional<echo_result> answer;
  caller.async_send_request(5, [&](echo_result r) { answer.emplace(std::move(r)); });
  caller = {};
  ioc.run();  // the worker answers, returns its result (holding the caller) and ends
  ASSERT_TRUE(answer);
  ASSERT_TRUE(*answer);
  EXPECT_EQ(**answer, 5);
  EXPECT_TRUE(task.is_finished());
  EXPECT_EQ(cfg.destroyed->load(), 0);  // kept for a join
  EXPECT_FALSE(weak.expired());
  task = {};
  EXPECT_EQ(cfg.destroyed->load(), 1);
  EXPECT_TRUE(weak.expired());  // the last caller went with the result
}

TEST(Lifecycle, AJoinedResultHoldingTheServicesOwnCallerIsTheJoinersToKeep) {
  asio::io_context ioc;
  returning_config cfg = fresh_returning_config();
  auto [task, caller] = returning_service{}.start_task(ioc, 2, cfg);
  cfg.own->emplace(caller);
  auto weak = caller.weak();
  caller.async_send_request(5, [](echo_result) {});
  caller = {};
  std::optional<tenorite::join_handle<holds_caller>::result_type> joined;
  task.async_join([&](auto r) { joined.emplace(std::move(r)); });
  ioc.run();
  ASSERT_TRUE(joined);
  ASSERT_TRUE(*joined);
  task = {};
  EXPECT_EQ(cfg.destroyed->load(), 0);
  EXPECT_FALSE(weak.expired());
  joined.reset();
  EXPECT_EQ(cfg.destroyed->load(), 1);
  EXPECT_TRUE(weak.expired());
}

namespace {
// Newer Asio (Boost 1.88) shuts an io_context's services down twice: from io_context's
// destructor and again from execution_context's. This context does the same on any Boost.
struct shut_down_twice_context : asio::io_context {
  ~shut_down_twice_context() { shutdown(); }
};
}  // namespace

TEST(Lifecycle, AContextShutDownTwiceGivesBackTheThreadsDyingContext) {
  // Inside another context's destruction (the outer scope), the inner context's end must give
  // back that outer context, not null and not itself.
  asio::io_context outer;
  {
    tenorite::detail::dying_context_scope destroying_outer(&outer);
    {
      shut_down_twice_context ioc;
      tenorite::channel<int> ch(ioc.get_executor(), 2);
      // A parked receive: the context's destruction has tenorite handlers to collect.
      ch.async_receive([](boost::system::error_code, std::optional<int>) {});
    }
    EXPECT_EQ(tenorite::detail::dying_context(), &outer);
  }
  EXPECT_EQ(tenorite::detail::dying_context(), nullptr);
  {
    shut_down_twice_context ioc;
    tenorite::channel<int> ch(ioc.get_executor(), 2);
    ch.async_receive([](boost::system::error_code, std::optional<int>) {});
  }
  // Left set, the next context made at the same address would take itself for dying, and
  // its callbacks would be queued for a destruction that never comes (they never ran).
  EXPECT_EQ(tenorite::detail::dying_context(), nullptr);
  for (int round = 0; round < 4; ++round) {
    int ran = 0;  // declared before the context: a callback run at its end finds it alive
    shut_down_twice_context ioc;
    tenorite::channel<int> ch(ioc.get_executor(), 2);
    ch.async_send(round, [&ran](boost::system::error_code ec, std::optional<int>) {
      EXPECT_FALSE(ec);
      ++ran;
    });
    ioc.poll();
    EXPECT_EQ(ran, 1) << "round " << round;
    EXPECT_EQ(ch.try_receive(), std::optional<int>(round));
  }
  EXPECT_EQ(tenorite::detail::dying_context(), nullptr);
}

// ---- the end of a service told from a thread outside its context ----

namespace {
// Counts its stops, and whether each ran on a thread of the runtime it was given.
struct stop_counting_handler {
  std::shared_ptr<std::atomic<int>> stops;
  std::shared_ptr<std::atomic<int>> stops_off_runtime;
  const tenorite::runtime* rt = nullptr;
  int handle(int v) { return v; }
  void on_stop() {
    stops->fetch_add(1);
    if (rt && !rt->running_in_this_thread()) stops_off_runtime->fetch_add(1);
  }
};
using stop_counting_service =
    tenorite::handler_service<int, int, std::string, stop_counting_handler>;
}  // namespace

// Dropping the last callers of many services from a plain thread hands every end to the
// runtime (through its inbox, a batch per post): each service stops once, on the runtime.
TEST(Lifecycle, EndingManyServicesFromAPlainThreadStopsEachOnceOnItsRuntime) {
  tenorite::runtime two(2);
  auto stops = std::make_shared<std::atomic<int>>(0);
  auto off = std::make_shared<std::atomic<int>>(0);
  constexpr int n = 300;
  std::vector<tenorite::join_handle<void>> tasks;
  std::vector<stop_counting_service::caller_type> callers;
  for (int i = 0; i < n; ++i) {
    auto [task, caller] =
        stop_counting_service{}.start_task(two, 2, stop_counting_handler{stops, off, &two});
    ASSERT_EQ(caller.send_request_blocking(i).value_or(-1), i);  // started and parked
    tasks.push_back(std::move(task));
    callers.push_back(std::move(caller));
  }
  callers.clear();
  for (auto& t : tasks) ASSERT_TRUE(t.wait());
  EXPECT_EQ(stops->load(), n);
  EXPECT_EQ(off->load(), 0);
}

// Ends waiting in the inbox of a context that is destroyed unrun: each service ends as when
// a context is destroyed under a parked worker (cancelled, its stop never run); run instead,
// each stops cleanly.
TEST(Lifecycle, EndsLeftInTheInboxOfAContextEndTheirServicesOnceEitherWay) {
  for (const bool run_it : {false, true}) {
    auto stops = std::make_shared<std::atomic<int>>(0);
    auto off = std::make_shared<std::atomic<int>>(0);
    auto ioc = std::make_unique<asio::io_context>();
    std::vector<tenorite::join_handle<void>> tasks;
    std::vector<stop_counting_service::caller_type> callers;
    for (int i = 0; i < 3; ++i) {
      auto [task, caller] =
          stop_counting_service{}.start_task(*ioc, 2, stop_counting_handler{stops, off});
      tasks.push_back(std::move(task));
      callers.push_back(std::move(caller));
    }
    ioc->poll();      // the workers start and park: nothing else is ready
    callers.clear();  // not on the context's thread now: the ends go to its inbox
    EXPECT_EQ(stops->load(), 0);
    if (run_it) {
      ioc->poll();
    } else {
      ioc.reset();
    }
    for (auto& t : tasks) {
      auto j = t.wait();
      if (run_it) {
        EXPECT_TRUE(j);
      } else {
        ASSERT_FALSE(j);
        EXPECT_TRUE(j.error().is_cancelled());
      }
    }
    EXPECT_EQ(stops->load(), run_it ? 3 : 0);
  }
}

// A join waiting with a callback on the context whose destruction ends its worker through
// the inbox: the worker's end, destroyed unrun, completes the join on the destroying thread
// (the context is marked dying there), once, with the worker cancelled.
TEST(Lifecycle, AJoinOnAContextDestroyedWithItsWorkersEndInTheInboxCompletesOnce) {
  auto stops = std::make_shared<std::atomic<int>>(0);
  auto off = std::make_shared<std::atomic<int>>(0);
  auto ioc = std::make_unique<asio::io_context>();
  auto [task, caller] =
      stop_counting_service{}.start_task(*ioc, 2, stop_counting_handler{stops, off});
  ioc->poll();  // started and parked
  int joins = 0;
  bool cancelled = false;
  task.async_join(asio::bind_executor(*ioc, [&](std::expected<void, tenorite::join_error> r) {
    ++joins;
    cancelled = !r && r.error().is_cancelled();
  }));
  caller = {};  // the end goes to the context's inbox
  ioc.reset();
  EXPECT_EQ(joins, 1);
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(stops->load(), 0);
}

// The runtime destroyed right after the last callers of many idle services were dropped from
// a plain thread: each end is either run or still in the runtime's inbox, and either way each
// service ends once and each pending join (a future) completes once.
TEST(Lifecycle, DestroyingTheRuntimeRightAfterEndingManyServicesEndsEachOnce) {
  auto stops = std::make_shared<std::atomic<int>>(0);
  auto off = std::make_shared<std::atomic<int>>(0);
  auto two = std::make_unique<tenorite::runtime>(2);
  constexpr int n = 100;
  std::vector<std::future<std::expected<void, tenorite::join_error>>> joins;
  std::vector<stop_counting_service::caller_type> callers;
  for (int i = 0; i < n; ++i) {
    auto [task, caller] =
        stop_counting_service{}.start_task(*two, 2, stop_counting_handler{stops, off});
    ASSERT_EQ(caller.send_request_blocking(i).value_or(-1), i);  // started and parked
    joins.push_back(task.async_join(asio::use_future));
    callers.push_back(std::move(caller));
  }
  callers.clear();
  two.reset();
  int ended_cleanly = 0;
  for (auto& j : joins) {
    auto r = j.get();
    if (r) {
      ++ended_cleanly;
    } else {
      EXPECT_TRUE(r.error().is_cancelled());
    }
  }
  EXPECT_EQ(stops->load(), ended_cleanly);  // a stop ran exactly for each clean end
}
