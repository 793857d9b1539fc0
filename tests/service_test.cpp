// SPDX-License-Identifier: BSL-1.0
// The seed's model: start a service, call it every way, every row of the error table.
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_support.hpp"

using namespace test;
using tenorite::error_kind;

namespace {

tenorite::runtime& rt() {
  static tenorite::runtime r(2);
  return r;
}

}  // namespace

TEST(Service, QueueSizeZeroIsRejectedWithAClearMessage) {
  echo_service svc;
  try {
    (void)svc.start_task(rt(), 0, echo_config{});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("queue_size must be at least 1"), std::string::npos);
  }
}

TEST(Service, RuntimeWithZeroThreadsIsRejected) {
  EXPECT_THROW(tenorite::runtime(0), std::invalid_argument);
}

TEST(Service, BlockingCallGetsTheResponse) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  auto r = caller.send_request_blocking(21);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 42);
}

TEST(Service, ServiceErrorCarriesTheWorkersError) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  auto r = caller.send_request_blocking(-5);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), error_kind::service_error);
  EXPECT_EQ(r.error().service_error(), "negative: -5");
  EXPECT_FALSE(r.error().request().has_value());  // it was delivered
  EXPECT_NE(r.error().message().find("service error"), std::string::npos);
}

TEST(Service, ServiceErrorAccessorOnAnotherKindThrowsLogicError) {
  auto e = tenorite::error<int, std::string>::fetch_failure();
  EXPECT_THROW((void)e.service_error(), std::logic_error);
  const auto& ce = e;
  EXPECT_THROW((void)ce.service_error(), std::logic_error);
}

TEST(Service, AwaitableCallFromACoroutine) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  int sum = rt().block_on([](echo_caller c) -> asio::awaitable<int> {
    int s = 0;
    for (int i = 0; i < 100; ++i) {
      auto r = co_await c.send_request(i);
      s += r.value();
    }
    co_return s;
  }(caller));
  EXPECT_EQ(sum, 2 * (99 * 100 / 2));
}

TEST(Service, UseFutureToken) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  std::future<echo_result> f = caller.async_send_request(8, asio::use_future);
  EXPECT_EQ(f.get().value(), 16);
}

TEST(Service, CallbackTokenRunsOnTheGivenExecutorNotInline) {
  asio::io_context ioc;
  auto [task, caller] = echo_service{}.start_task(ioc, 4, echo_config{});
  std::optional<int> got;
  caller.async_send_request(4, [&](echo_result r) { got = r.value(); });
  EXPECT_FALSE(got);  // never inside the initiating function
  while (!got) ioc.run_one();
  EXPECT_EQ(got, 8);
  caller = {};
  ioc.run();  // the worker ends once its last caller is gone; run() then returns
  EXPECT_TRUE(task.is_finished());
}

TEST(Service, DeferredToken) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  auto op = caller.async_send_request(10, asio::deferred);
  std::promise<int> p;
  std::move(op)([&](echo_result r) { p.set_value(r.value()); });
  EXPECT_EQ(p.get_future().get(), 20);
}

// ---- send failure: the worker is gone ----

struct one_shot_worker {  // answers one request, then ends
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, echo_config) {
    if (auto r = co_await rx.recv()) r->client.send(r->request);
  }
};
using one_shot_service = tenorite::service<int, int, std::string, one_shot_worker, echo_config>;

TEST(Service, CallAfterTheWorkerEndedIsASendFailureWithTheRequestBack) {
  auto [task, caller] = one_shot_service{}.start_task(rt(), 4, echo_config{});
  EXPECT_EQ(caller.send_request_blocking(1).value(), 1);
  ASSERT_TRUE(task.wait().has_value());  // the queue is closed before the join completes
  EXPECT_TRUE(caller.is_closed());
  auto r = caller.send_request_blocking(77);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::send_failure);
  ASSERT_TRUE(r.error().request().has_value());
  EXPECT_EQ(*r.error().request(), 77);
  std::future<echo_result> f = caller.async_send_request(78, asio::use_future);
  auto r2 = f.get();
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().kind(), error_kind::send_failure);
  EXPECT_EQ(r2.error().request(), std::optional<int>(78));
}

// ---- fetch failure: the responder is dropped unanswered ----

struct dropping_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, echo_config) {
    while (auto r = co_await rx.recv()) {
      // r goes out of scope unanswered
    }
  }
};
using dropping_service = tenorite::service<int, int, std::string, dropping_worker, echo_config>;

TEST(Service, DroppedResponderIsAFetchFailure) {
  auto [task, caller] = dropping_service{}.start_task(rt(), 4, echo_config{});
  auto r = caller.send_request_blocking(3);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::fetch_failure);
  EXPECT_FALSE(r.error().request().has_value());
}

// ---- answering twice ----

struct double_answer_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx,
                                    std::shared_ptr<std::promise<std::string>> report) {
    while (auto r = co_await rx.recv()) {
      r->client.send(1);
      try {
        r->client.send(2);
        report->set_value("second send did not throw");
      } catch (const std::logic_error& e) {
        report->set_value(e.what());
      }
    }
  }
};
using double_answer_service = tenorite::service<int, int, std::string, double_answer_worker,
                                                std::shared_ptr<std::promise<std::string>>>;

TEST(Service, AnsweringTwiceThrowsLogicErrorAndTheFirstAnswerStands) {
  auto report = std::make_shared<std::promise<std::string>>();
  auto fut = report->get_future();
  auto [task, caller] = double_answer_service{}.start_task(rt(), 4, report);
  EXPECT_EQ(caller.send_request_blocking(0).value(), 1);
  EXPECT_NE(fut.get().find("already been answered"), std::string::npos);
}

// ---- misuse ----

TEST(Service, MovedFromCallerThrowsLogicError) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  echo_caller other = std::move(caller);
  EXPECT_FALSE(static_cast<bool>(caller));  // NOLINT(bugprone-use-after-move)
  EXPECT_THROW((void)caller.send_request_blocking(1), std::logic_error);
  EXPECT_THROW((void)caller.async_send_request(1, asio::use_future), std::logic_error);
  EXPECT_THROW((void)caller.send_request(1), std::logic_error);
  EXPECT_THROW((void)caller.is_closed(), std::logic_error);
  EXPECT_EQ(other.send_request_blocking(2).value(), 4);
  echo_caller empty;
  EXPECT_THROW((void)empty.send_request_blocking(1), std::logic_error);
}

TEST(Service, MovedFromCallerDoesNotKeepTheQueueOpen) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  echo_caller moved = std::move(caller);
  moved = echo_caller{};
  EXPECT_TRUE(task.wait().has_value());
}

TEST(Service, BlockingCallOnARuntimeThreadThrowsLogicError) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  std::string what = rt().block_on([](echo_caller c) -> asio::awaitable<std::string> {
    try {
      (void)c.send_request_blocking(1);
    } catch (const std::logic_error& e) {
      co_return e.what();
    }
    co_return "no exception";
  }(caller));
  EXPECT_NE(what.find("blocking call made on a thread of a tenorite runtime"), std::string::npos);
}

TEST(Service, BlockOnAndWaitOnARuntimeThreadThrowLogicError) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  auto j = std::move(task);
  int thrown = rt().block_on([](tenorite::join_handle<void>* h) -> asio::awaitable<int> {
    int n = 0;
    try {
      rt().block_on([]() -> asio::awaitable<void> { co_return; }());
    } catch (const std::logic_error&) {
      ++n;
    }
    try {
      (void)h->wait();
    } catch (const std::logic_error&) {
      ++n;
    }
    co_return n;
  }(&j));
  EXPECT_EQ(thrown, 2);
}

// ---- join ----

struct counting_worker {  // returns how many requests it served
  static asio::awaitable<int> task(tenorite::receiver<echo_request> rx, echo_config) {
    int n = 0;
    while (auto r = co_await rx.recv()) {
      r->client.send(r->request);
      ++n;
    }
    co_return n;
  }
};
using counting_service =
    tenorite::service<int, int, std::string, counting_worker, echo_config, int>;

TEST(Service, TaskResultComesThroughTheJoinHandle) {
  auto [task, caller] = counting_service{}.start_task(rt(), 4, echo_config{});
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(caller.send_request_blocking(i));
  caller = {};
  auto j = task.wait();
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ(*j, 5);
}

struct no_default {
  explicit no_default(int v) : value(v) {}
  int value;
};
struct no_default_worker {
  static asio::awaitable<no_default> task(tenorite::receiver<echo_request> rx, echo_config) {
    int n = 0;
    while (auto r = co_await rx.recv()) {
      r->client.send(0);
      ++n;
    }
    co_return no_default(n + 100);
  }
};
using no_default_service =
    tenorite::service<int, int, std::string, no_default_worker, echo_config, no_default>;

TEST(Service, TaskResultNeedNotBeDefaultConstructible) {
  auto [task, caller] = no_default_service{}.start_task(rt(), 4, echo_config{});
  ASSERT_TRUE(caller.send_request_blocking(1));
  caller = {};
  auto j = task.wait();
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ(j->value, 101);
}

TEST(Service, JoinTwiceThrowsLogicError) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  caller = {};
  EXPECT_TRUE(task.wait().has_value());
  EXPECT_THROW((void)task.wait(), std::logic_error);
  EXPECT_THROW((void)task.join(), std::logic_error);
}

TEST(Service, AwaitableJoin) {
  auto [task, caller] = counting_service{}.start_task(rt(), 4, echo_config{});
  auto r = rt().block_on([](echo_caller c, tenorite::join_handle<int> t) -> asio::awaitable<int> {
    int v = 7;
    (void)co_await c.send_request(std::move(v));
    c = {};
    auto j = co_await t.join();
    co_return j.value();
  }(std::move(caller), std::move(task)));
  EXPECT_EQ(r, 1);
}

// ---- order ----

struct recording_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx,
                                    std::shared_ptr<std::vector<int>> seen) {
    while (auto r = co_await rx.recv()) {
      seen->push_back(r->request);
      r->client.send(r->request);
    }
  }
};
using recording_service =
    tenorite::service<int, int, std::string, recording_worker, std::shared_ptr<std::vector<int>>>;

TEST(Service, CallsFromOneCallerAreServedInOrder) {
  auto seen = std::make_shared<std::vector<int>>();
  auto [task, caller] = recording_service{}.start_task(rt(), 2, seen);
  // Callback calls issued back to back without waiting: the queue keeps their order.
  std::vector<std::future<echo_result>> futures;
  for (int i = 0; i < 50; ++i) futures.push_back(caller.async_send_request(i, asio::use_future));
  for (int i = 0; i < 50; ++i) EXPECT_EQ(futures[i].get().value(), i);
  caller = {};
  ASSERT_TRUE(task.wait());
  std::vector<int> expected(50);
  for (int i = 0; i < 50; ++i) expected[i] = i;
  EXPECT_EQ(*seen, expected);
}

// ---- move-only types ----

using mo_req = std::unique_ptr<int>;
using mo_resp = std::unique_ptr<long>;
using mo_err = std::unique_ptr<std::string>;
struct move_only_worker {
  static asio::awaitable<std::unique_ptr<int>> task(
      tenorite::receiver<tenorite::request<mo_req, mo_resp, mo_err>> rx,
      std::unique_ptr<int> config) {
    while (auto r = co_await rx.recv()) {
      if (*r->request < 0) {
        r->client.send(std::unexpected(std::make_unique<std::string>("neg")));
      } else {
        r->client.send(std::make_unique<long>(*r->request + *config));
      }
    }
    co_return std::move(config);
  }
};
using move_only_service = tenorite::service<mo_req, mo_resp, mo_err, move_only_worker,
                                            std::unique_ptr<int>, std::unique_ptr<int>>;

TEST(Service, MoveOnlyRequestResponseErrorConfigAndResult) {
  auto [task, caller] = move_only_service{}.start_task(rt(), 2, std::make_unique<int>(1000));
  auto ok = caller.send_request_blocking(std::make_unique<int>(5));
  ASSERT_TRUE(ok);
  EXPECT_EQ(**ok, 1005);
  auto bad = caller.send_request_blocking(std::make_unique<int>(-1));
  ASSERT_FALSE(bad);
  EXPECT_EQ(*bad.error().service_error(), "neg");
  caller = {};
  auto j = task.wait();
  ASSERT_TRUE(j);
  EXPECT_EQ(**j, 1000);
}

TEST(Service, MoveOnlyRequestComesBackOnSendFailure) {
  auto [task, caller] = move_only_service{}.start_task(rt(), 2, std::make_unique<int>(0));
  auto keep = caller;
  task.abort();
  ASSERT_FALSE(task.wait());
  auto r = caller.send_request_blocking(std::make_unique<int>(42));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::send_failure);
  ASSERT_TRUE(r.error().request());
  EXPECT_EQ(**r.error().request(), 42);
}

// ---- weak callers ----

TEST(Service, WeakCallerDoesNotKeepTheServiceAlive) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  auto weak = caller.weak();
  {
    auto locked = weak.lock();
    ASSERT_TRUE(locked);
    EXPECT_EQ(locked->send_request_blocking(3).value(), 6);
  }
  caller = {};
  EXPECT_TRUE(task.wait().has_value());  // ended although `weak` still exists
  EXPECT_TRUE(weak.expired());
  EXPECT_FALSE(weak.lock().has_value());
}

TEST(Service, CallerCopiesSharedAcrossThreadsAllCountUntilTheLastGoes) {
  auto [task, caller] = counting_service{}.start_task(rt(), 4, echo_config{});
  std::vector<std::thread> threads;
  std::promise<void> go;
  auto go_f = go.get_future().share();
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([c = caller, go_f, t]() mutable {
      go_f.wait();
      for (int i = 0; i < 100; ++i) EXPECT_EQ(c.send_request_blocking(t).value(), t);
      c = {};
    });
  caller = {};  // the main thread's copy goes first; the threads' copies keep it open
  EXPECT_FALSE(task.is_finished());
  go.set_value();
  for (auto& th : threads) th.join();
  auto j = task.wait();
  ASSERT_TRUE(j);
  EXPECT_EQ(*j, 400);
}

TEST(Service, ALiveServiceIsOutstandingWorkForItsExecutor) {
  asio::io_context ioc;
  auto [task, caller] = echo_service{}.start_task(ioc, 4, echo_config{});
  ioc.poll();
  EXPECT_FALSE(ioc.stopped());  // run() would keep waiting: the service counts as work
  caller = {};
  ioc.run();
  EXPECT_TRUE(task.is_finished());
  EXPECT_TRUE(task.wait().has_value());
}
