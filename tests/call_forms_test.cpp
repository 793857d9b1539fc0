// SPDX-License-Identifier: BSL-1.0
// Calls beyond the seed: try, deadlines, cancellation, notify, drain, reserve, self-call,
// batch receive — and the races between a give-up, the reply and the worker's end.
#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <expected>
#include <latch>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
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

// A worker that records every request it sees, waits on a gate before each one when asked,
// and can report what it saw of its responder.
struct probe {
  std::shared_ptr<gate> go;  // wait on it before taking the first request
  std::mutex m;
  std::vector<int> seen;
  std::vector<bool> wants_reply;
  std::vector<bool> send_results;
  std::promise<void> holding;  // set when the first request is held (before answering)
  std::shared_ptr<gate> answer_gate;  // if set: wait on it before answering the first request
  std::vector<bool> closed_when_answering;
};

struct probe_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, std::shared_ptr<probe> p) {
    if (p->go) co_await p->go->wait();
    bool first = true;
    while (auto r = co_await rx.recv()) {
      {
        std::lock_guard lk(p->m);
        p->seen.push_back(r->request);
        p->wants_reply.push_back(r->client.wants_reply());
      }
      if (first && p->answer_gate) {
        p->holding.set_value();
        co_await p->answer_gate->wait();
      }
      first = false;
      bool closed = r->client.is_closed();
      bool sent = r->client.send(r->request * 2);
      std::lock_guard lk(p->m);
      p->closed_when_answering.push_back(closed);
      p->send_results.push_back(sent);
    }
  }
};
using probe_service =
    tenorite::service<int, int, std::string, probe_worker, std::shared_ptr<probe>>;

std::vector<int> seen(probe& p) {
  std::lock_guard lk(p.m);
  return p.seen;
}

}  // namespace

// ---- try ----

TEST(CallForms, TrySendRequestFailsAtOnceWhenFullAndGivesTheRequestBack) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 2, p);
  auto f1 = caller.async_send_request(1, asio::use_future);
  auto f2 = caller.async_send_request(2, asio::use_future);  // the queue (2) is now full

  auto blocking = caller.try_send_request_blocking(3);
  ASSERT_FALSE(blocking);
  EXPECT_EQ(blocking.error().kind(), error_kind::queue_full);
  EXPECT_EQ(blocking.error().request(), std::optional<int>(3));

  auto token = caller.async_try_send_request(4, asio::use_future).get();
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().kind(), error_kind::queue_full);
  EXPECT_EQ(token.error().request(), std::optional<int>(4));

  auto awaited = rt().block_on(caller.try_send_request(5));
  ASSERT_FALSE(awaited);
  EXPECT_EQ(awaited.error().kind(), error_kind::queue_full);
  EXPECT_EQ(awaited.error().request(), std::optional<int>(5));

  p->go->open();
  EXPECT_EQ(f1.get().value(), 2);
  EXPECT_EQ(f2.get().value(), 4);
  EXPECT_EQ(caller.try_send_request_blocking(6).value(), 12);  // room again: an ordinary call
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_EQ(seen(*p), (std::vector<int>{1, 2, 6}));  // refused requests were never delivered
}

// ---- deadlines ----

TEST(CallForms, DeadlineWhileWaitingForRoomWithdrawsTheRequest) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 1, p);
  auto f1 = caller.async_send_request(1, asio::use_future);  // fills the queue
  auto r = caller.send_request_blocking_for(2, 20ms);         // waits for room, then gives up
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  EXPECT_EQ(r.error().request(), std::optional<int>(2));
  p->go->open();
  EXPECT_EQ(f1.get().value(), 2);
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_EQ(seen(*p), (std::vector<int>{1}));  // never delivered late
}

TEST(CallForms, DeadlineWhileQueuedWithdrawsTheRequestFromTheQueue) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  auto f1 = caller.async_send_request(1, asio::use_future);
  auto timed = rt().block_on(caller.send_request_for(2, 20ms));  // buffered, then withdrawn
  ASSERT_FALSE(timed);
  EXPECT_EQ(timed.error().kind(), error_kind::timed_out);
  EXPECT_EQ(timed.error().request(), std::optional<int>(2));
  auto f3 = caller.async_send_request(3, asio::use_future);
  p->go->open();
  EXPECT_EQ(f1.get().value(), 2);
  EXPECT_EQ(f3.get().value(), 6);
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_EQ(seen(*p), (std::vector<int>{1, 3}));
}

TEST(CallForms, DeadlineAfterDeliveryAbandonsTheCallAndTheWorkerSeesIt) {
  auto p = std::make_shared<probe>();
  p->answer_gate = std::make_shared<gate>(rt().executor());
  auto holding = p->holding.get_future();
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  auto fut = caller.async_send_request_for(7, 20ms, asio::use_future);
  holding.wait();  // the worker holds request 7
  auto r = fut.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  EXPECT_FALSE(r.error().request().has_value());  // it was delivered: nothing to give back
  p->answer_gate->open();
  caller = {};
  ASSERT_TRUE(task.wait());
  std::lock_guard lk(p->m);
  ASSERT_EQ(p->closed_when_answering.size(), 1u);
  EXPECT_TRUE(p->closed_when_answering[0]);  // client.is_closed(): the caller gave up
  EXPECT_FALSE(p->send_results[0]);          // and send() says so
}

TEST(CallForms, AWithdrawnRequestsSlotGoesToTheOldestCallerWaitingForRoom) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 2, p);
  auto fa = caller.async_send_request(1, asio::use_future);              // queued
  auto fb = caller.async_send_request_for(2, 20ms, asio::use_future);    // queued, will expire
  auto fc = caller.async_send_request(3, asio::use_future);              // waits for room
  auto b = fb.get();
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().kind(), error_kind::timed_out);
  EXPECT_EQ(b.error().request(), std::optional<int>(2));
  // The freed slot went to request 3 at once: the queue is full again, nobody jumps ahead.
  auto d = caller.try_send_request_blocking(4);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().kind(), error_kind::queue_full);
  p->go->open();
  EXPECT_EQ(fa.get().value(), 2);
  EXPECT_EQ(fc.get().value(), 6);
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_EQ(seen(*p), (std::vector<int>{1, 3}));
}

TEST(CallForms, ACallThatMeetsItsDeadlineIsAnOrdinaryCall) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  EXPECT_EQ(caller.send_request_blocking_for(5, 10s).value(), 10);
  EXPECT_EQ(caller.async_send_request_for(6, 10s, asio::use_future).get().value(), 12);
  EXPECT_EQ(rt().block_on(caller.send_request_for(7, 10s)).value(), 14);
}

// ---- the worker learns that its caller left ----

struct patient_worker {  // races its "work" (a long timer) against the caller leaving
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx,
                                    std::shared_ptr<std::promise<std::string>> report) {
    while (auto r = co_await rx.recv()) {
      auto work = std::chrono::milliseconds(r->request);
      asio::steady_timer timer(co_await asio::this_coro::executor, work);
      auto outcome = co_await race(wait_on(timer), r->client.wait_closed());
      if (outcome.index() == 1) {
        report->set_value("caller left");  // skip the work; nobody waits for it
      } else {
        r->client.send(r->request);
        report->set_value("answered");
      }
    }
  }
};
using patient_service = tenorite::service<int, int, std::string, patient_worker,
                                          std::shared_ptr<std::promise<std::string>>>;

TEST(CallForms, AWorkerWaitingForItsCallerToLeaveIsWokenWhenTheDeadlinePasses) {
  auto report = std::make_shared<std::promise<std::string>>();
  auto said = report->get_future();
  auto [task, caller] = patient_service{}.start_task(rt(), 4, report);
  auto r = caller.send_request_blocking_for(60'000, 20ms);  // "work" would take a minute
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  EXPECT_EQ(said.get(), "caller left");
}

TEST(CallForms, AWaitForTheCallerToLeaveIsCancelledWhenTheWorkFinishesFirst) {
  auto report = std::make_shared<std::promise<std::string>>();
  auto said = report->get_future();
  auto [task, caller] = patient_service{}.start_task(rt(), 4, report);
  EXPECT_EQ(caller.send_request_blocking(1).value(), 1);  // no deadline: it cannot leave
  EXPECT_EQ(said.get(), "answered");
  auto report2 = std::make_shared<std::promise<std::string>>();
  auto said2 = report2->get_future();
  auto [task2, caller2] = patient_service{}.start_task(rt(), 4, report2);
  EXPECT_EQ(caller2.send_request_blocking_for(1, 10s).value(), 1);  // could leave, did not
  EXPECT_EQ(said2.get(), "answered");
}

// One wait per request at a time: a second async_wait_closed while the first is pending
// completes at once with already_started, and the first still fires when the caller leaves.
struct double_wait {
  std::promise<boost::system::error_code> first, second;
  std::vector<echo_request> kept;  // the worker keeps the requests: only a give-up closes them
};
struct double_wait_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx,
                                    std::shared_ptr<double_wait> d) {
    while (auto r = co_await rx.recv()) {
      r->client.async_wait_closed([d](boost::system::error_code ec) { d->first.set_value(ec); });
      auto [ec] = co_await r->client.async_wait_closed(asio::as_tuple(asio::use_awaitable));
      d->second.set_value(ec);
      d->kept.push_back(std::move(*r));
    }
  }
};
using double_wait_service =
    tenorite::service<int, int, std::string, double_wait_worker, std::shared_ptr<double_wait>>;

TEST(CallForms, ASecondWaitForTheCallerToLeaveIsRefusedAndTheFirstStillFires) {
  auto d = std::make_shared<double_wait>();
  auto first = d->first.get_future();
  auto second = d->second.get_future();
  auto [task, caller] = double_wait_service{}.start_task(rt(), 4, d);
  auto r = caller.send_request_blocking_for(1, 20ms);  // the worker never answers
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  EXPECT_EQ(second.get(), asio::error::already_started);
  EXPECT_EQ(first.get(), boost::system::error_code()) << "the caller's give-up fires it";
  caller = {};
  EXPECT_TRUE(task.wait());
}

// A worker that answers inside `answer || wait_closed` (the answer completes the race and
// cancels the wait) while callers give up at random moments: the give-up's watch firing,
// the answer and the wait's cancellation race; each call completes once, memory stays valid
// (run under the asan and tsan presets).
[[gnu::noinline]] asio::awaitable<void> answer_soon(echo_request* r) {
  co_await yield_now();
  r->client.send(r->request * 2);
}
struct racing_answer_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, int) {
    while (auto r = co_await rx.recv()) {
      echo_request req = std::move(*r);
      co_await race(answer_soon(&req), req.client.wait_closed());
    }
  }
};
using racing_answer_service =
    tenorite::service<int, int, std::string, racing_answer_worker, int>;

asio::awaitable<void> impatient_client(echo_caller c, int n, unsigned seed,
                                       std::atomic<int>* completed) {
  std::mt19937 rng(seed);
  for (int i = 0; i < n; ++i) {
    auto r = co_await c.send_request_for(i, std::chrono::microseconds(rng() % 40));
    if (r) {
      EXPECT_EQ(*r, 2 * i);
    }
    ++*completed;
  }
}

TEST(CallForms, AnAnswerRacingTheWatchOfAGivingUpCallerIsSafe) {
  auto [task, caller] = racing_answer_service{}.start_task(rt(), 8, 0);
  constexpr int clients = 8, per_client = 300;
  std::atomic<int> completed{0};
  std::vector<std::future<void>> done;
  for (int k = 0; k < clients; ++k)
    done.push_back(asio::co_spawn(asio::make_strand(rt().executor()),
                                  impatient_client(caller, per_client, 77u + k, &completed),
                                  asio::use_future));
  for (auto& d : done) d.get();
  EXPECT_EQ(completed.load(), clients * per_client);
  caller = {};
  EXPECT_TRUE(task.wait());
}

// ---- cancellation ----

TEST(CallForms, CancellingAQueuedCallWithdrawsIt) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  asio::cancellation_signal signal;
  std::promise<echo_result> got;
  // Start and cancel from the service's own strand-free context: a single-threaded runtime.
  tenorite::runtime one(1);
  asio::post(one.executor(), [&] {
    caller.async_send_request(
        9, asio::bind_cancellation_slot(signal.slot(), [&](echo_result r) {
          got.set_value(std::move(r));
        }));
    signal.emit(asio::cancellation_type::partial);  // any type withdraws a queued request
  });
  auto r = got.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::cancelled);
  EXPECT_EQ(r.error().request(), std::optional<int>(9));
  p->go->open();
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_TRUE(seen(*p).empty());
}

TEST(CallForms, NonTerminalCancellationOfADeliveredCallIsIgnored) {
  auto p = std::make_shared<probe>();
  p->answer_gate = std::make_shared<gate>(rt().executor());
  auto holding = p->holding.get_future();
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  asio::cancellation_signal signal;
  std::promise<echo_result> got;
  tenorite::runtime one(1);
  asio::post(one.executor(), [&] {
    caller.async_send_request(
        4, asio::bind_cancellation_slot(signal.slot(), [&](echo_result r) {
          got.set_value(std::move(r));
        }));
  });
  holding.wait();
  std::promise<void> emitted;
  asio::post(one.executor(), [&] {
    signal.emit(asio::cancellation_type::partial);
    emitted.set_value();
  });
  emitted.get_future().wait();
  p->answer_gate->open();
  EXPECT_EQ(got.get_future().get().value(), 8);  // the call went on and got its reply
}

TEST(CallForms, TerminalCancellationOfADeliveredCallAbandonsIt) {
  auto p = std::make_shared<probe>();
  p->answer_gate = std::make_shared<gate>(rt().executor());
  auto holding = p->holding.get_future();
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  asio::cancellation_signal signal;
  std::promise<echo_result> got;
  tenorite::runtime one(1);
  asio::post(one.executor(), [&] {
    caller.async_send_request(
        4, asio::bind_cancellation_slot(signal.slot(), [&](echo_result r) {
          got.set_value(std::move(r));
        }));
  });
  holding.wait();
  asio::post(one.executor(), [&] { signal.emit(asio::cancellation_type::terminal); });
  auto r = got.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::cancelled);
  EXPECT_FALSE(r.error().request());
  p->answer_gate->open();
  caller = {};
  ASSERT_TRUE(task.wait());
  std::lock_guard lk(p->m);
  EXPECT_TRUE(p->closed_when_answering.at(0));
  EXPECT_FALSE(p->send_results.at(0));
}

asio::awaitable<std::string> race_against_timer(echo_caller c) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor, 20ms);
  int v = 11;
  auto outcome = co_await race(c.send_request(std::move(v)), wait_on(timer));
  if (outcome.index() == 1) co_return "timer won";
  auto& r = std::get<0>(outcome);
  if (!r && r.error().kind() == error_kind::cancelled && r.error().request() == 11)
    co_return "withdrawn";
  co_return "call won";
}

TEST(CallForms, AwaitableOperatorRaceWithATimerWithdrawsAQueuedCall) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  // On a strand: the operator's branches emit and complete concurrently otherwise.
  auto outcome = asio::co_spawn(asio::make_strand(rt().executor()), race_against_timer(caller),
                                asio::use_future);
  EXPECT_EQ(outcome.get(), "timer won");
  p->go->open();
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_TRUE(seen(*p).empty());  // the cancelled request was never delivered
}

TEST(CallForms, CancellingADeadlineCallFromOutsideEndsItAsCancelledNotTimedOut) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  asio::cancellation_signal signal;
  std::promise<echo_result> got;
  tenorite::runtime one(1);
  asio::post(one.executor(), [&] {
    caller.async_send_request_for(
        5, 10s, asio::bind_cancellation_slot(signal.slot(), [&](echo_result r) {
          got.set_value(std::move(r));
        }));
    signal.emit(asio::cancellation_type::terminal);
  });
  auto r = got.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::cancelled);
  EXPECT_EQ(r.error().request(), std::optional<int>(5));  // it was still queued
  p->go->open();
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_TRUE(seen(*p).empty());
}

TEST(CallForms, CancellingANotifyOrAReservationWaitingForRoomWithdrawsIt) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 1, p);
  ASSERT_TRUE(caller.try_notify(1));  // the queue is full from here on
  asio::cancellation_signal notify_signal, reserve_signal;
  std::promise<echo_caller::notify_result> notified;
  std::promise<echo_caller::reserve_result> reserved;
  tenorite::runtime one(1);
  asio::post(one.executor(), [&] {
    caller.async_notify(2, asio::bind_cancellation_slot(
                               notify_signal.slot(),
                               [&](echo_caller::notify_result r) { notified.set_value(std::move(r)); }));
    caller.async_reserve(asio::bind_cancellation_slot(
        reserve_signal.slot(),
        [&](echo_caller::reserve_result r) { reserved.set_value(std::move(r)); }));
    notify_signal.emit(asio::cancellation_type::partial);
    reserve_signal.emit(asio::cancellation_type::partial);
  });
  auto n = notified.get_future().get();
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().kind(), error_kind::cancelled);
  EXPECT_EQ(n.error().request(), std::optional<int>(2));
  auto r = reserved.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::cancelled);
  p->go->open();
  EXPECT_EQ(caller.send_request_blocking(3).value(), 6);  // no slot leaked by the withdrawals
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_EQ(seen(*p), (std::vector<int>{1, 3}));
}

// ---- notify ----

TEST(CallForms, NotifyIsDeliveredWithoutAReplyAndAnsweringItIsHarmless) {
  auto p = std::make_shared<probe>();
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  EXPECT_TRUE(caller.notify_blocking(1));
  EXPECT_TRUE(caller.async_notify(2, asio::use_future).get());
  EXPECT_TRUE(rt().block_on(caller.notify(3)));
  EXPECT_TRUE(caller.try_notify(4));
  EXPECT_EQ(caller.send_request_blocking(5).value(), 10);  // after the four, in order
  caller = {};
  ASSERT_TRUE(task.wait());
  std::lock_guard lk(p->m);
  EXPECT_EQ(p->seen, (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(p->wants_reply, (std::vector<bool>{false, false, false, false, true}));
  EXPECT_EQ(p->send_results, (std::vector<bool>{false, false, false, false, true}));
}

TEST(CallForms, TryNotifyOnAFullQueueAndNotifyOnAnEndedServiceGiveTheRequestBack) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 1, p);
  ASSERT_TRUE(caller.try_notify(1));
  auto full = caller.try_notify(2);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().kind(), error_kind::queue_full);
  EXPECT_EQ(full.error().request(), std::optional<int>(2));
  task.abort();
  p->go->open();
  ASSERT_FALSE(task.wait());
  auto gone = caller.notify_blocking(3);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind(), error_kind::send_failure);
  EXPECT_EQ(gone.error().request(), std::optional<int>(3));
}

// ---- drain ----

TEST(CallForms, DrainServesWhatIsQueuedAndRefusesNewCalls) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 2, p);
  auto f1 = caller.async_send_request(1, asio::use_future);
  auto f2 = caller.async_send_request(2, asio::use_future);
  auto f3 = caller.async_send_request(3, asio::use_future);  // waiting for room
  task.drain();
  auto refused = caller.send_request_blocking(4);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), error_kind::send_failure);
  EXPECT_EQ(refused.error().request(), std::optional<int>(4));
  p->go->open();
  EXPECT_EQ(f1.get().value(), 2);
  EXPECT_EQ(f2.get().value(), 4);
  EXPECT_EQ(f3.get().value(), 6);
  ASSERT_TRUE(task.wait());  // ends although `caller` is still alive
  EXPECT_EQ(seen(*p), (std::vector<int>{1, 2, 3}));
}

struct closing_worker {  // closes its queue after the first request, serves the rest
  static asio::awaitable<int> task(tenorite::receiver<echo_request> rx,
                                   std::shared_ptr<gate> go) {
    co_await go->wait();
    int served = 0;
    while (auto r = co_await rx.recv()) {
      if (served == 0) rx.close();
      r->client.send(r->request);
      ++served;
    }
    co_return served;
  }
};
using closing_service =
    tenorite::service<int, int, std::string, closing_worker, std::shared_ptr<gate>, int>;

TEST(CallForms, ReceiverCloseServesWhatIsQueuedThenEnds) {
  auto go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = closing_service{}.start_task(rt(), 4, go);
  std::vector<std::future<echo_result>> fs;
  for (int i = 0; i < 3; ++i) fs.push_back(caller.async_send_request(i, asio::use_future));
  go->open();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(fs[i].get().value(), i);
  auto j = task.wait();
  ASSERT_TRUE(j);
  EXPECT_EQ(*j, 3);
  auto late = caller.send_request_blocking(9);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().kind(), error_kind::send_failure);
}

// ---- reserve ----

TEST(CallForms, APermitHoldsASlotAndSendsWithoutWaiting) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 1, p);
  auto permit = caller.reserve_blocking();
  ASSERT_TRUE(permit);
  auto none = caller.try_reserve();
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind(), error_kind::queue_full);
  auto refused = caller.try_send_request_blocking(1);  // the slot is taken by the permit
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind(), error_kind::queue_full);
  auto fut = permit->async_send_request(2, asio::use_future);
  EXPECT_FALSE(static_cast<bool>(*permit));  // single use
  EXPECT_THROW((void)permit->send_request_blocking(3), std::logic_error);
  p->go->open();
  EXPECT_EQ(fut.get().value(), 4);
}

TEST(CallForms, DroppedPermitsGiveTheirSlotsBackNoneLeak) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 3, p);
  for (int i = 0; i < 1000; ++i) {
    auto a = caller.try_reserve();
    auto b = rt().block_on(caller.reserve());
    auto c = caller.async_reserve(asio::use_future).get();
    ASSERT_TRUE(a && b && c);
  }
  // All three slots are free again: three requests fit, the fourth does not.
  std::vector<std::future<echo_result>> fs;
  for (int i = 0; i < 3; ++i) fs.push_back(caller.async_try_send_request(i, asio::use_future));
  auto fourth = caller.try_send_request_blocking(3);
  ASSERT_FALSE(fourth);
  EXPECT_EQ(fourth.error().kind(), error_kind::queue_full);
  p->go->open();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(fs[i].get().value(), 2 * i);
}

// A permit has the deadline forms too: they behave as the caller's, through the reserved slot.
TEST(CallForms, APermitsTimedCallThatMeetsItsDeadlineIsAnOrdinaryCall) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  auto a = caller.reserve_blocking();
  auto b = caller.reserve_blocking();
  auto c = caller.reserve_blocking();
  auto d = caller.reserve_blocking();
  ASSERT_TRUE(a && b && c && d);
  EXPECT_EQ(a->send_request_blocking_for(5, 10s).value(), 10);
  EXPECT_EQ(b->async_send_request_for(6, 10s, asio::use_future).get().value(), 12);
  EXPECT_EQ(rt().block_on(c->send_request_until(7, std::chrono::steady_clock::now() + 10s)).value(),
            14);
  EXPECT_EQ(rt().block_on(d->send_request_for(8, 10s)).value(), 16);
  EXPECT_FALSE(static_cast<bool>(*a)) << "single use";
  EXPECT_THROW((void)a->send_request_blocking_for(1, 1s), std::logic_error);
  EXPECT_THROW((void)b->async_send_request_for(1, 1s, asio::use_future), std::logic_error);
}

TEST(CallForms, APermitsTimedCallStillQueuedAtItsDeadlineComesBackAndFreesItsSlot) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());  // the worker takes nothing yet
  auto [task, caller] = probe_service{}.start_task(rt(), 1, p);
  auto permit = caller.reserve_blocking();
  ASSERT_TRUE(permit);
  auto r = permit->send_request_blocking_for(3, 20ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  EXPECT_EQ(r.error().request(), std::optional<int>(3)) << "never delivered: it comes back";
  // The withdrawn request's slot is free again (the queue holds one).
  auto f = caller.async_try_send_request(4, asio::use_future);
  p->go->open();
  EXPECT_EQ(f.get().value(), 8);
  EXPECT_EQ(seen(*p), (std::vector<int>{4}));
}

TEST(CallForms, APermitsTimedCallTheWorkerHoldsIsAbandonedAtItsDeadline) {
  auto report = std::make_shared<std::promise<std::string>>();
  auto said = report->get_future();
  auto [task, caller] = patient_service{}.start_task(rt(), 4, report);
  auto permit = caller.reserve_blocking();
  ASSERT_TRUE(permit);
  auto r = rt().block_on(permit->send_request_for(60'000, 20ms));  // "work" takes a minute
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  EXPECT_EQ(said.get(), "caller left");
}

TEST(CallForms, ADeferredTimedCallThroughAPermitDroppedUnlaunchedGivesItsSlotBack) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 1, p);
  {
    auto permit = caller.reserve_blocking();
    ASSERT_TRUE(permit);
    auto op = permit->async_send_request_for(1, 10s, asio::deferred);
    EXPECT_FALSE(static_cast<bool>(*permit)) << "the permit moved into the operation";
  }  // never launched
  auto f = caller.async_try_send_request(2, asio::use_future);
  p->go->open();
  EXPECT_EQ(f.get().value(), 4);
  EXPECT_EQ(seen(*p), (std::vector<int>{2}));
}

TEST(CallForms, AWaitingReservationIsGrantedWhenASlotFrees) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 1, p);
  auto f1 = caller.async_send_request(1, asio::use_future);  // fills the queue
  auto reservation = caller.async_reserve(asio::use_future);
  p->go->open();  // the worker takes request 1: the slot goes to the reservation
  auto permit = reservation.get();
  ASSERT_TRUE(permit);
  EXPECT_EQ(permit->send_request_blocking(5).value(), 10);
  EXPECT_EQ(f1.get().value(), 2);
}

// The permit's slot is the whole queue; a caller waits for room; then the worker comes to
// wait for work (the queue is empty: the permit holds the slot without a request). Sending
// through the permit skips the queue, so the slot is free again: the waiting caller must
// get it. (It used to wait beside the free slot until some other traffic came; the stress
// test found it as a hang at the end of a run.)
TEST(CallForms, ACallerWaitingForRoomGetsTheSlotAPermitFreesByHandingStraightToTheWorker) {
  asio::io_context ioc;  // one thread, run step by step: the order below is exact
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(ioc.get_executor());
  auto [task, caller] = probe_service{}.start_task(ioc, 1, p);
  ioc.poll();  // the worker waits on its gate
  auto permit = caller.try_reserve();
  ASSERT_TRUE(permit);
  std::optional<echo_result> waiting, through_permit;
  caller.async_send_request(2, [&](echo_result r) { waiting = std::move(r); });  // no room
  p->go->open();
  ioc.poll();  // the worker now waits for a request
  ASSERT_TRUE(seen(*p).empty());
  permit->async_send_request(1, [&](echo_result r) { through_permit = std::move(r); });
  ioc.poll();
  ASSERT_TRUE(through_permit);
  EXPECT_EQ(through_permit->value(), 2);
  ASSERT_TRUE(waiting);
  EXPECT_EQ(waiting->value(), 4);
  EXPECT_EQ(seen(*p), (std::vector<int>{1, 2}));
}

// The same, when the permit is dropped unused instead.
TEST(CallForms, ACallerWaitingForRoomIsServedWhenAPermitIsDroppedWhileTheWorkerWaits) {
  asio::io_context ioc;
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(ioc.get_executor());
  auto [task, caller] = probe_service{}.start_task(ioc, 1, p);
  ioc.poll();
  auto permit = caller.try_reserve();
  ASSERT_TRUE(permit);
  std::optional<echo_result> waiting;
  caller.async_send_request(2, [&](echo_result r) { waiting = std::move(r); });
  p->go->open();
  ioc.poll();
  { auto unused = std::move(*permit); }  // dropped unused: its slot is given back
  ioc.poll();
  ASSERT_TRUE(waiting);
  EXPECT_EQ(waiting->value(), 4);
}

// ---- self-call ----

struct self_calling_worker {
  static asio::awaitable<void> task(
      tenorite::receiver<echo_request> rx,
      std::shared_ptr<std::promise<tenorite::weak_caller<int, int, std::string>>> self) {
    auto me = self->get_future().get().lock();  // set before the first request
    while (auto r = co_await rx.recv()) {
      int inner = r->request + 1;
      auto nested = co_await me->send_request(std::move(inner));
      if (!nested && nested.error().kind() == error_kind::deadlock &&
          nested.error().request() == r->request + 1) {
        r->client.send(-1);  // detected, with the request back
      } else {
        r->client.send(0);
      }
    }
  }
};
using self_calling_service =
    tenorite::service<int, int, std::string, self_calling_worker,
                      std::shared_ptr<std::promise<tenorite::weak_caller<int, int, std::string>>>>;

TEST(CallForms, AWorkerCallingItsOwnServiceGetsDeadlockInsteadOfHanging) {
  auto self = std::make_shared<std::promise<tenorite::weak_caller<int, int, std::string>>>();
  auto [task, caller] = self_calling_service{}.start_task(rt(), 4, self);
  self->set_value(caller.weak());
  EXPECT_EQ(caller.send_request_blocking(1).value(), -1);
}

// ---- batch receive ----

struct batch_worker {
  static asio::awaitable<std::vector<std::size_t>> task(tenorite::receiver<echo_request> rx,
                                                        std::shared_ptr<gate> go) {
    co_await go->wait();
    std::vector<std::size_t> batches;
    std::vector<echo_request> batch;
    while (std::size_t n = co_await rx.recv_many(batch, 3)) {
      batches.push_back(n);
      for (auto& r : batch) r.client.send(r.request);
      batch.clear();
    }
    co_return batches;
  }
};
using batch_service = tenorite::service<int, int, std::string, batch_worker,
                                        std::shared_ptr<gate>, std::vector<std::size_t>>;

TEST(CallForms, RecvManyTakesUpToTheLimitOfWhatIsQueued) {
  auto go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = batch_service{}.start_task(rt(), 8, go);
  std::vector<std::future<echo_result>> fs;
  for (int i = 0; i < 5; ++i) fs.push_back(caller.async_send_request(i, asio::use_future));
  go->open();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(fs[i].get().value(), i);
  caller = {};
  auto j = task.wait();
  ASSERT_TRUE(j);
  EXPECT_EQ(*j, (std::vector<std::size_t>{3, 2}));
}

// ---- cancelling the worker-side and owner-side waits ----

// A worker that polls its queue with `recv() || timer`: the first timer fires at once (the
// queue is empty), so its recv is cancelled; a request that arrives later must still be
// received. Were the receive not cancellable, the race would wait for it and drop the request.
struct polling_worker {
  static asio::awaitable<int> task(tenorite::receiver<echo_request> rx,
                                   std::shared_ptr<std::promise<void>> idle) {
    int ticks = 0;
    auto ex = co_await asio::this_coro::executor;
    for (;;) {
      asio::steady_timer timer(ex, ticks == 0 ? 0s : 24h);
      auto got = co_await race(rx.recv(), wait_on(timer));
      if (got.index() == 1) {
        if (++ticks == 1) idle->set_value();
        continue;
      }
      auto& r = std::get<0>(got);
      if (!r) co_return ticks;
      r->client.send(r->request + 1);
    }
  }
};
using polling_service = tenorite::service<int, int, std::string, polling_worker,
                                          std::shared_ptr<std::promise<void>>, int>;

TEST(CallForms, ACancelledRecvTakesNothingAndTheNextRequestIsReceived) {
  auto idle = std::make_shared<std::promise<void>>();
  auto idle_seen = idle->get_future();
  auto [task, caller] = polling_service{}.start_task(rt(), 4, idle);
  idle_seen.get();  // the worker's first recv was cancelled by its timer
  EXPECT_EQ(caller.send_request_blocking(41).value(), 42);
  EXPECT_EQ(caller.send_request_blocking(1).value(), 2);
  caller = {};
  auto j = task.wait();
  ASSERT_TRUE(j);
  EXPECT_EQ(*j, 1);
}

// Every receive races a timer that is already due, so cancellations of parked receives race
// arriving requests all the time: every request must still be answered exactly once.
struct busy_polling_worker {
  static asio::awaitable<int> task(tenorite::receiver<echo_request> rx, int) {
    int lost_races = 0;
    auto ex = co_await asio::this_coro::executor;
    for (;;) {
      asio::steady_timer timer(ex, 0s);
      auto got = co_await race(rx.recv(), wait_on(timer));
      if (got.index() == 1) {
        ++lost_races;
        continue;
      }
      auto& r = std::get<0>(got);
      if (!r) co_return lost_races;
      r->client.send(r->request + 1);
    }
  }
};
using busy_polling_service =
    tenorite::service<int, int, std::string, busy_polling_worker, int, int>;

TEST(CallForms, RecvCancellationsRacingArrivingRequestsLoseNothing) {
  auto [task, caller] = busy_polling_service{}.start_task(rt(), 4, 0);
  constexpr int threads = 4, per_thread = 500;
  std::atomic<int> answered{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t, c = caller] {
      for (int i = 0; i < per_thread; ++i) {
        const int v = t * per_thread + i;
        auto r = c.send_request_blocking(v);
        if (r && *r == v + 1) answered.fetch_add(1);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(answered.load(), threads * per_thread);
  caller = {};
  EXPECT_TRUE(task.wait());
}

TEST(CallForms, AsyncRecvManyCompletesWithATokenAndCanBeCancelled) {
  asio::io_context ctx;
  auto ch = std::make_shared<tenorite::channel<int>>(ctx.get_executor(), 8);
  tenorite::receiver<int> rx(ch);
  std::vector<int> buf;
  asio::cancellation_signal signal;
  auto run_ready = [&] {  // runs what is ready (poll() leaves the context stopped when idle)
    ctx.restart();
    ctx.poll();
  };

  // Nothing queued: it waits; a cancellation ends it with operation_aborted, nothing taken.
  std::optional<std::pair<boost::system::error_code, std::size_t>> first;
  rx.async_recv_many(buf, 3,
                     asio::bind_cancellation_slot(signal.slot(),
                                                  [&](boost::system::error_code ec,
                                                      std::size_t n) { first.emplace(ec, n); }));
  run_ready();
  EXPECT_FALSE(first);
  signal.emit(asio::cancellation_type::terminal);
  run_ready();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->first, asio::error::operation_aborted);
  EXPECT_EQ(first->second, 0u);

  // Items queued: it takes up to the limit, and completes through the executor, never
  // inside the initiating call.
  for (int i = 1; i <= 4; ++i) {
    int v = i;
    ASSERT_EQ(ch->try_send(v), tenorite::send_status::sent);
  }
  std::optional<std::size_t> second;
  rx.async_recv_many(buf, 3, [&](boost::system::error_code ec, std::size_t n) {
    EXPECT_FALSE(ec);
    second = n;
  });
  EXPECT_FALSE(second);
  run_ready();
  ASSERT_EQ(second, std::optional<std::size_t>(3));
  EXPECT_EQ(buf, (std::vector<int>{1, 2, 3}));

  // The cancelled wait took nothing: the fourth item is still there, then the end.
  // (Callbacks, not use_future: a future's handler runs on the system executor and would
  // release its hold on `ctx` on another thread.)
  std::optional<std::size_t> third, end;
  rx.async_recv_many(buf, 3, [&](boost::system::error_code, std::size_t n) { third = n; });
  run_ready();
  EXPECT_EQ(third, std::optional<std::size_t>(1));
  EXPECT_EQ(buf.back(), 4);
  ch->close();
  rx.async_recv_many(buf, 3, [&](boost::system::error_code, std::size_t n) { end = n; });
  run_ready();
  EXPECT_EQ(end, std::optional<std::size_t>(0));
}

TEST(CallForms, ACancelledJoinLeavesTheWorkerRunningAndItCanBeJoinedAgain) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  asio::cancellation_signal signal;
  std::promise<tenorite::join_handle<void>::result_type> got;
  tenorite::runtime one(1);  // start and cancel on one thread: slots are not thread-safe
  asio::post(one.executor(), [&] {
    task.async_join(asio::bind_cancellation_slot(
        signal.slot(), [&](tenorite::join_handle<void>::result_type r) { got.set_value(r); }));
    signal.emit(asio::cancellation_type::terminal);
  });
  auto r = got.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is_wait_cancelled());
  EXPECT_FALSE(r.error().is_cancelled());
  EXPECT_FALSE(task.is_finished());
  p->go->open();
  EXPECT_EQ(caller.send_request_blocking(3).value(), 6);  // the worker still serves
  caller = {};
  EXPECT_TRUE(task.wait());  // joined again after the cancelled wait
  EXPECT_THROW(task.wait(), std::logic_error);
}

struct counting_worker {  // answers, then returns how many it answered
  static asio::awaitable<int> task(tenorite::receiver<echo_request> rx, int yields) {
    int n = 0;
    while (auto r = co_await rx.recv()) {
      r->client.send(r->request);
      ++n;
    }
    for (int i = 0; i < yields; ++i) co_await yield_now();  // vary when the outcome lands
    co_return n;
  }
};
using counting_service = tenorite::service<int, int, std::string, counting_worker, int, int>;

using test_strand = asio::strand<asio::io_context::executor_type>;

// The join's branch of the race; notes whether the join resumed it off its strand.
[[gnu::noinline]] asio::awaitable<int> join_on(counting_service::started* s, test_strand* strand,
                                               bool* off_strand) {
  auto r = co_await s->task.join();
  if (!strand->running_in_this_thread()) *off_strand = true;
  co_return r ? 0 : 1;
}

// Drops the last caller and races the join against a timer that is already due. The call
// before it is answered at once on this thread, so the join starts inside the call's start.
asio::awaitable<int> join_or_timer(counting_service::started* s, test_strand* strand,
                                   bool* off_strand) {
  asio::steady_timer timer(co_await asio::this_coro::executor, 0s);
  int v = 1;
  auto r = co_await s->caller.send_request(std::move(v));
  if (!r) co_return -1;
  s->caller = {};
  auto got = co_await race(join_on(s, strand, off_strand), wait_on(timer));
  co_return static_cast<int>(got.index());
}

TEST(CallForms, AJoinCancelledWhileItsOutcomeIsOnTheWayGivesTheOutcomeBack) {
  int timer_won = 0;
  for (int i = 0; i < 300; ++i) {
    auto s = counting_service{}.start_task(rt(), 4, i % 8);
    auto strand = asio::make_strand(rt().executor());
    bool off_strand = false;
    auto winner =
        asio::co_spawn(strand, join_or_timer(&s, &strand, &off_strand), asio::use_future);
    const int w = winner.get();
    ASSERT_NE(w, -1);
    // Off its strand, the join's coroutine would race the timer's branch (and `||` could
    // then throw the outcome away after the join had delivered it).
    ASSERT_FALSE(off_strand) << "round " << i << ": the join resumed its coroutine off its strand";
    if (w == 1) {
      ++timer_won;
      auto outcome = s.task.wait();  // still there: the discarded join gave it back
      ASSERT_TRUE(outcome);
      EXPECT_EQ(*outcome, 1);
    } else {
      EXPECT_THROW(s.task.wait(), std::logic_error);  // the join took it
    }
  }
  RecordProperty("timer_won", timer_won);
}

// ---- races: give-ups, replies and the worker's end, many times ----

struct racing_worker {  // answers, drops, or ends at random; records what it saw
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, std::shared_ptr<probe> p) {
    unsigned n = 0;
    while (auto r = co_await rx.recv()) {
      {
        std::lock_guard lk(p->m);
        p->seen.push_back(r->request);
      }
      if (++n % 7 == 0) continue;  // dropped: fetch_failure (unless the caller gave up)
      r->client.send(r->request * 2);
      if (n % 31 == 0) co_await yield_now();  // let give-ups race
    }
  }
};
using racing_service = tenorite::service<int, int, std::string, racing_worker, std::shared_ptr<probe>>;

TEST(CallForms, RacingDeadlinesCancellationsRepliesAndEndsCompleteEachCallOnce) {
  constexpr int rounds = 20, calls = 200;
  std::mt19937 rng(12345);
  std::printf("seed 12345\n");
  for (int round = 0; round < rounds; ++round) {
    auto p = std::make_shared<probe>();
    auto [task, caller] = racing_service{}.start_task(rt(), 1 + round % 4, p);
    std::atomic<int> completions{0};
    std::mutex m;
    std::vector<int> returned;  // requests that came back undelivered
    std::latch all(calls);
    std::vector<std::unique_ptr<asio::cancellation_signal>> signals;
    for (int i = 0; i < calls; ++i) {
      auto on_done = [&, i](echo_result r) {
        completions.fetch_add(1);
        if (r) {
          EXPECT_EQ(*r, 2 * i);
        } else if (r.error().request()) {
          EXPECT_EQ(*r.error().request(), i);
          std::lock_guard lk(m);
          returned.push_back(i);
        }
        all.count_down();
      };
      switch (rng() % 3) {
        case 0:
          caller.async_send_request(i, on_done);
          break;
        case 1:
          caller.async_send_request_for(i, std::chrono::microseconds(rng() % 200), on_done);
          break;
        default: {
          signals.push_back(std::make_unique<asio::cancellation_signal>());
          auto* sig = signals.back().get();
          auto type = (rng() % 2) ? asio::cancellation_type::terminal
                                  : asio::cancellation_type::partial;
          // Start and cancel on one strand-like single thread: slots are not thread-safe.
          asio::post(rt().executor(), [caller = caller, sig, i, on_done, type] {
            caller.async_send_request(i, asio::bind_cancellation_slot(sig->slot(), on_done));
            sig->emit(type);
          });
        }
      }
      if (round % 5 == 4 && i == calls / 2) task.abort();  // the worker's end races too
    }
    all.wait();
    EXPECT_EQ(completions.load(), calls);  // exactly once each
    caller = {};
    (void)task.wait();
    std::set<int> delivered(p->seen.begin(), p->seen.end());
    for (int id : returned) EXPECT_EQ(delivered.count(id), 0u) << "returned request " << id
                                                               << " had been delivered";
  }
}

// ---- tenorite::cancel_after / cancel_at: a deadline for any operation ----

TEST(DeadlineToken, ADeliveredCallTimesOutAndTheWorkerSeesItsCallerGone) {
  auto p = std::make_shared<probe>();
  p->answer_gate = std::make_shared<gate>(rt().executor());
  auto holding = p->holding.get_future();
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  auto fut = caller.async_send_request(7, tenorite::cancel_after(20ms, asio::use_future));
  holding.wait();
  auto r = fut.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  EXPECT_FALSE(r.error().request().has_value());  // delivered: nothing to give back
  p->answer_gate->open();
  caller = {};
  ASSERT_TRUE(task.wait());
  std::lock_guard lk(p->m);
  ASSERT_EQ(p->closed_when_answering.size(), 1u);
  EXPECT_TRUE(p->closed_when_answering[0]);
}

asio::awaitable<echo_result> call_with_deadline(echo_caller c, int v,
                                                std::chrono::steady_clock::time_point at) {
  return c.async_send_request(std::move(v), tenorite::cancel_at(at, asio::use_awaitable));
}

TEST(DeadlineToken, AQueuedCallTimesOutWithItsRequestAndIsNeverDelivered) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  auto r = rt().block_on(
      call_with_deadline(caller, 2, std::chrono::steady_clock::now() + 20ms));  // queued
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  EXPECT_EQ(r.error().request(), std::optional<int>(2));
  p->go->open();
  EXPECT_EQ(caller.send_request_blocking(3).value(), 6);
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_EQ(seen(*p), (std::vector<int>{3}));
}

TEST(DeadlineToken, ADeferredCallLaunchedLateGetsItsDeadlineFromItsLaunch) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  auto op = caller.async_send_request(5, tenorite::cancel_after(20ms, asio::deferred));
  caller = {};  // the lazy operation keeps the service alive until it completes
  auto r = std::move(op)(asio::use_future).get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  EXPECT_EQ(r.error().request(), std::optional<int>(5));
  p->go->open();
  ASSERT_TRUE(task.wait());
  EXPECT_TRUE(seen(*p).empty());
}

TEST(DeadlineToken, NotifyAndReserveWaitingForRoomTimeOutAndTakeNothing) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 1, p);
  ASSERT_TRUE(caller.try_notify(1));  // full from here on
  auto n = caller.async_notify(2, tenorite::cancel_after(20ms, asio::use_future)).get();
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().kind(), error_kind::timed_out);
  EXPECT_EQ(n.error().request(), std::optional<int>(2));
  auto res = caller.async_reserve(tenorite::cancel_after(20ms, asio::use_future)).get();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().kind(), error_kind::timed_out);
  p->go->open();
  EXPECT_EQ(caller.send_request_blocking(3).value(), 6);  // no slot leaked
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_EQ(seen(*p), (std::vector<int>{1, 3}));
}

struct deadline_recv_worker {  // its first receive has a deadline; then it serves
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx,
                                    std::shared_ptr<std::promise<boost::system::error_code>> out) {
    auto [ec, first] = co_await rx.async_recv(
        tenorite::cancel_after(20ms, asio::as_tuple(asio::use_awaitable)));
    out->set_value(ec);
    if (first) first->client.send(first->request * 2);
    while (auto r = co_await rx.recv()) r->client.send(r->request * 2);
  }
};
using deadline_recv_service =
    tenorite::service<int, int, std::string, deadline_recv_worker,
                      std::shared_ptr<std::promise<boost::system::error_code>>>;

TEST(DeadlineToken, ARecvOnAnIdleQueueTimesOutAndTheNextRequestIsReceived) {
  auto out = std::make_shared<std::promise<boost::system::error_code>>();
  auto ec = out->get_future();
  auto [task, caller] = deadline_recv_service{}.start_task(rt(), 4, out);
  EXPECT_EQ(ec.get(), asio::error::timed_out);  // nobody sent anything
  EXPECT_EQ(caller.send_request_blocking(4).value(), 8);
  caller = {};
  ASSERT_TRUE(task.wait());
}

TEST(DeadlineToken, AJoinTimesOutAsAWaitCancelledAndTheWorkerCanBeJoinedAgain) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  auto j = task.async_join(tenorite::cancel_after(20ms, asio::use_future)).get();
  ASSERT_FALSE(j);
  EXPECT_TRUE(j.error().is_wait_cancelled());
  EXPECT_FALSE(task.is_finished());
  p->go->open();
  caller = {};
  EXPECT_TRUE(task.wait());
}

TEST(DeadlineToken, CancellationThroughTheHandlersSlotEndsTheRaceAsCancelled) {
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  asio::cancellation_signal signal;
  std::promise<echo_result> got;
  tenorite::runtime one(1);  // start and cancel on one thread: slots are not thread-safe
  asio::post(one.executor(), [&] {
    caller.async_send_request(
        9, tenorite::cancel_after(
               1h, asio::bind_cancellation_slot(
                       signal.slot(),
                       asio::bind_executor(one.executor(),
                                           [&](echo_result r) { got.set_value(std::move(r)); }))));
    signal.emit(asio::cancellation_type::terminal);
  });
  auto r = got.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::cancelled);  // not timed_out: the deadline is an hour
  EXPECT_EQ(r.error().request(), std::optional<int>(9));
  p->go->open();
  caller = {};
  ASSERT_TRUE(task.wait());
  EXPECT_TRUE(seen(*p).empty());
}

TEST(DeadlineToken, ACallThatMeetsItsDeadlineIsAnOrdinaryCall) {
  auto [task, caller] = echo_service{}.start_task(rt(), 4, echo_config{});
  auto r = caller.async_send_request(21, tenorite::cancel_after(1h, asio::use_future)).get();
  EXPECT_EQ(r.value(), 42);
  caller = {};
  ASSERT_TRUE(task.wait());
}

TEST(DeadlineToken, ACallbackOnARuntimeBeingDestroyedStillCompletesOnce) {
  // The call waits for room on a runtime that is destroyed with it pending: the callback
  // runs once (send_failure, its request back), as it does without a deadline.
  std::atomic<int> runs{0};
  std::optional<echo_result> got;
  {
    auto p = std::make_shared<probe>();
    tenorite::runtime doomed(1);
    p->go = std::make_shared<gate>(doomed.executor());
    auto [task, caller] = probe_service{}.start_task(doomed, 1, p);
    ASSERT_TRUE(caller.try_notify(1));  // full from here on
    caller.async_send_request(
        2, tenorite::cancel_after(1h, asio::bind_executor(doomed.executor(), [&](echo_result r) {
                                    ++runs;
                                    got.emplace(std::move(r));
                                  })));
    caller = {};
  }
  EXPECT_EQ(runs.load(), 1);
  ASSERT_TRUE(got.has_value());
  ASSERT_FALSE(*got);
  EXPECT_EQ(got->error().request(), std::optional<int>(2));
}

TEST(DeadlineToken, AUserCancellationAfterTheDeadlineFiredIsStillAnOrdinaryOutcome) {
  // The deadline and the user's slot both end the race; whichever reached the operation,
  // the call completes once and the request comes back.
  auto p = std::make_shared<probe>();
  p->go = std::make_shared<gate>(rt().executor());
  auto [task, caller] = probe_service{}.start_task(rt(), 4, p);
  asio::cancellation_signal signal;
  std::promise<echo_result> got;
  std::atomic<int> runs{0};
  tenorite::runtime one(1);
  asio::post(one.executor(), [&] {
    caller.async_send_request(
        9, tenorite::cancel_after(0ms, asio::bind_cancellation_slot(
                                           signal.slot(),
                                           asio::bind_executor(one.executor(), [&](echo_result r) {
                                             ++runs;
                                             got.set_value(std::move(r));
                                           }))));
    signal.emit(asio::cancellation_type::terminal);
  });
  auto r = got.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::cancelled);  // the user's emit came first, at once
  EXPECT_EQ(r.error().request(), std::optional<int>(9));
  EXPECT_EQ(runs.load(), 1);
  p->go->open();
  caller = {};
  ASSERT_TRUE(task.wait());
}

// ---- how often a call moves what it carries ----

namespace {

// Counts its own moves (a user's request or response type whose moves cost: a variant of
// strings, say). Copies are not allowed: the library must never copy a request or a reply.
template <int Tag>
struct counted {
  static inline std::atomic<int> moves{0};
  int v = 0;
  explicit counted(int x) : v(x) {}
  counted(counted&& o) noexcept : v(o.v) { moves.fetch_add(1, std::memory_order_relaxed); }
  counted& operator=(counted&& o) noexcept {
    v = o.v;
    moves.fetch_add(1, std::memory_order_relaxed);
    return *this;
  }
  counted(const counted&) = delete;
  counted& operator=(const counted&) = delete;
};
using counted_request = counted<0>;
using counted_response = counted<1>;

struct counted_handler {
  std::expected<counted_response, int> handle(counted_request r) { return counted_response(r.v); }
};
using counted_service =
    tenorite::handler_service<counted_request, counted_response, int, counted_handler>;

struct move_counts {
  int request, response;
};

asio::awaitable<move_counts> counted_calls(counted_service::caller_type c, int n) {
  move_counts most{0, 0};
  for (int i = 0; i < n; ++i) {
    counted_request q(i);
    const int r0 = counted_request::moves.load(), s0 = counted_response::moves.load();
    auto r = co_await c.send_request(std::move(q));
    if (!r || r->v != i) throw std::runtime_error("wrong answer");
    most.request = std::max(most.request, counted_request::moves.load() - r0);
    most.response = std::max(most.response, counted_response::moves.load() - s0);
  }
  co_return most;
}

}  // namespace

TEST(CallCost, ACallMovesItsRequestAndItsReplyOnlyAFewTimes) {
  // Each move of a user's type is a visit of a variant or a string's move: the call path
  // moves each value only where it changes hands. From a coroutine: into send_request (the
  // user's), the awaitable's two of Asio's, into the call, into and out of the queue, and
  // into handle() (7); the reply: out of handle() (the user's), into the caller's result,
  // and Asio's two into the coroutine (4). Before the call path was trimmed: 13 and 10.
  {
    tenorite::runtime one(1);
    auto [task, caller] = counted_service{}.start_task(one, 4, counted_handler{});
    const move_counts most = one.block_on(counted_calls(caller, 8));
    EXPECT_LE(most.request, 8);
    EXPECT_LE(most.response, 4);
    caller = {};
    ASSERT_TRUE(task.wait());
  }
  // From a plain thread (the worker on another): into the call, handed to the parked worker
  // or through the queue, and the worker's completion carrying it.
  {
    tenorite::runtime one(1);
    auto [task, caller] = counted_service{}.start_task(one, 4, counted_handler{});
    int most_request = 0, most_response = 0;
    for (int i = 0; i < 8; ++i) {
      const int r0 = counted_request::moves.load(), s0 = counted_response::moves.load();
      auto r = caller.send_request_blocking(counted_request(i));
      ASSERT_TRUE(r);
      EXPECT_EQ(r->v, i);
      most_request = std::max(most_request, counted_request::moves.load() - r0);
      most_response = std::max(most_response, counted_response::moves.load() - s0);
    }
    EXPECT_LE(most_request, 9);
    EXPECT_LE(most_response, 4);
    caller = {};
    ASSERT_TRUE(task.wait());
  }
}

// ---- a deferred call launched as an lvalue copies its request ----

namespace {
struct copy_may_throw {
  int v = 0;
  std::shared_ptr<std::atomic<bool>> fail;  // copies throw while set
  copy_may_throw(int x, std::shared_ptr<std::atomic<bool>> f) : v(x), fail(std::move(f)) {}
  copy_may_throw(const copy_may_throw& o) : v(o.v), fail(o.fail) {
    if (fail && fail->load()) throw std::runtime_error("copy refused on purpose");
  }
  copy_may_throw(copy_may_throw&&) noexcept = default;
  copy_may_throw& operator=(const copy_may_throw&) = default;
  copy_may_throw& operator=(copy_may_throw&&) noexcept = default;
};
struct copy_handler {
  int handle(copy_may_throw r) { return r.v; }
};
using copy_service = tenorite::handler_service<copy_may_throw, int, std::string, copy_handler>;
}  // namespace

TEST(CallForms, ADeferredCallLaunchedTwiceAsAnLvalueSendsTwoCopiesAndAThrowingCopyStartsNothing) {
  auto fail = std::make_shared<std::atomic<bool>>(false);
  auto [task, caller] = copy_service{}.start_task(rt(), 4, copy_handler{});
  auto op = caller.async_send_request(copy_may_throw(5, fail), asio::deferred);
  for (int round = 0; round < 2; ++round) {
    std::promise<copy_service::caller_type::result_type> got;
    op([&got](copy_service::caller_type::result_type r) { got.set_value(std::move(r)); });
    auto r = got.get_future().get();
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 5);
  }
  // The copy throws: the exception comes out of the launch, and no call exists (its
  // callback never runs, nothing stays queued, the service still ends when its callers go).
  fail->store(true);
  std::atomic<int> runs{0};
  EXPECT_THROW(op([&runs](copy_service::caller_type::result_type) { ++runs; }),
               std::runtime_error);
  fail->store(false);
  auto after = caller.send_request_blocking(copy_may_throw(6, fail));
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, 6);
  caller = {};
  { auto dropped = std::move(op); }
  ASSERT_TRUE(task.wait());
  EXPECT_EQ(runs.load(), 0);
}
