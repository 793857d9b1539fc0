// SPDX-License-Identifier: BSL-1.0
// Exactly-once in the corners: every call form and token completes once when the objects it
// depends on are destroyed in any order, lazy tokens launched late or never, self-calls by
// every form, exceptions escaping handlers that tenorite ran inline, channels destroyed with
// parked operations. Each test here failed (hang, use-after-free or wrong outcome) before
// the operations kept alive what they touch.
#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <tenorite/detail/inbox.hpp>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace test;
using namespace std::chrono_literals;
using tenorite::error_kind;

namespace {

// A hang detector, not a timing assertion: a call that never completes fails the test
// instead of the whole run.
constexpr auto hang = 60s;

template <class T>
T get_or_fail(std::future<T>& f, const char* what) {
  if (f.wait_for(hang) != std::future_status::ready) {
    ADD_FAILURE() << what << ": never completed";
    std::_Exit(3);  // the pending operation still references this frame
  }
  return f.get();
}

// A worker that takes requests and hands their responders to the test (it answers nothing
// itself): the calls stay delivered and pending for as long as the test holds them.
struct holder {
  std::mutex m;
  std::vector<echo_request> held;
  std::promise<void> first;  // set when the first request is held
  bool first_set = false;
  void add(echo_request r) {
    std::lock_guard lk(m);
    held.push_back(std::move(r));
    if (!first_set) {
      first_set = true;
      first.set_value();
    }
  }
  std::vector<echo_request> take() {
    std::lock_guard lk(m);
    return std::move(held);
  }
};
struct holding_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx,
                                    std::shared_ptr<holder> h) {
    while (auto r = co_await rx.recv()) h->add(std::move(*r));
  }
};
using holding_service =
    tenorite::service<int, int, std::string, holding_worker, std::shared_ptr<holder>>;

// A worker that never receives: its queue fills up and stays full.
struct stuck_config {
  std::shared_ptr<gate> go;
};
struct stuck_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, stuck_config cfg) {
    co_await cfg.go->wait();
    while (auto r = co_await rx.recv()) r->client.send(r->request * 2);
  }
};
using stuck_service = tenorite::service<int, int, std::string, stuck_worker, stuck_config>;

bool delivered_or_returned(const echo_result& r, int req) {
  if (r) return false;
  switch (r.error().kind()) {
    case error_kind::send_failure:
      return r.error().request() == std::optional<int>(req);
    case error_kind::fetch_failure:
      return true;
    default:
      return false;
  }
}

// The smallest operation: completes its handler when told to.
template <class Handler>
struct probe_op final : tenorite::detail::operation<probe_op<Handler>, Handler> {
  probe_op(Handler&& h, const asio::any_io_executor& ex)
      : tenorite::detail::operation<probe_op<Handler>, Handler>(std::move(h), ex, false) {}
  static void on_cancel(void*, asio::cancellation_type, std::unique_lock<std::mutex>&) noexcept {}
};

}  // namespace

// ---- 0. the marker of an operation being started ----

// An operation that completes inside its own start is freed there; the coroutine it resumes
// at once goes on inside that start and may make its next operation at the same address.
// That one must not take itself for starting (it would resume its coroutine inline on
// whatever thread completes it, off the coroutine's executor: seen as a join's outcome
// delivered on the worker's thread and then lost by `||`).
TEST(ExactlyOnce, AnOperationFreedInsideItsOwnStartNoLongerMarksItsAddressAsStarting) {
  namespace d = tenorite::detail;
  asio::io_context ctx;
  int ran = 0;
  auto handler = [&ran] { ++ran; };
  auto* op = d::make_op<probe_op<decltype(handler)>>(handler, ctx.get_executor());
  const void* address = op;
  {
    d::initiation_scope scope(op);
    ASSERT_EQ(d::initiating_op(), address);
    op->complete();  // freed here; a callback completed inside its start is deferred
    EXPECT_NE(d::initiating_op(), address);
    {
      d::initiation_scope inner(address);  // the next operation at that address, nested
      EXPECT_EQ(d::initiating_op(), address);
    }
    EXPECT_NE(d::initiating_op(), address);  // the outer start is no longer that operation
  }
  EXPECT_EQ(d::initiating_op(), nullptr);
  EXPECT_EQ(ran, 0);
  ctx.run();
  EXPECT_EQ(ran, 1);

  // Freed inside a nested start (a worker resumed inline starts its own operation, and the
  // outer operation is answered there): once the inner start ends, the outer one must not
  // name the freed address either.
  auto* outer = d::make_op<probe_op<decltype(handler)>>(handler, ctx.get_executor());
  const void* outer_address = outer;
  {
    d::initiation_scope scope(outer);
    int inner_op = 0;
    {
      d::initiation_scope inner(&inner_op);
      outer->complete();
    }
    EXPECT_NE(d::initiating_op(), outer_address);
  }
  // A start still naming an address when a new operation is made there names it no more.
  int stale = 0;
  {
    d::initiation_scope scope(&stale);
    d::initiation_scope::forget(&stale);  // what make_op does for the address it allocates
    EXPECT_EQ(d::initiating_op(), nullptr);
  }
  ctx.restart();
  ctx.run();
  EXPECT_EQ(ran, 2);
}

// ---- 1. a delivered cancellable call outlives its service ----

// The worker moved the responder out and ended; the call's give-up (its deadline, or its
// cancellation) then runs after the service's state is gone.
TEST(ExactlyOnce, AGiveUpAfterTheServiceEndedWithTheResponderHeldElsewhereIsSafe) {
  // Forms: 0 send_request_for, 1 a cancellation slot, 2 cancel_after (its deadline fires),
  // 3 cancel_after with the user's slot (the user cancels through the deadline race).
  for (int form = 0; form < 4; ++form) {
    const bool by_user = form == 1 || form == 3;
    tenorite::runtime rt(2);
    auto h = std::make_shared<holder>();
    auto first = h->first.get_future();
    auto [task, caller] = holding_service{}.start_task(rt, 4, h);
    std::promise<echo_result> got;
    asio::cancellation_signal signal;
    if (form == 0) {
      caller.async_send_request_for(1, 200ms, [&got](echo_result r) { got.set_value(std::move(r)); });
    } else if (form == 1) {
      caller.async_send_request(
          1, asio::bind_cancellation_slot(signal.slot(),
                                          [&got](echo_result r) { got.set_value(std::move(r)); }));
    } else if (form == 2) {
      caller.async_send_request(
          1, tenorite::cancel_after(200ms, [&got](echo_result r) { got.set_value(std::move(r)); }));
    } else {
      caller.async_send_request(
          1, tenorite::cancel_after(
                 1h, asio::bind_cancellation_slot(
                         signal.slot(), [&got](echo_result r) { got.set_value(std::move(r)); })));
    }
    first.wait();
    auto held = h->take();  // the responder now lives here, outside the worker
    caller = {};            // the last caller: the worker ends, and its service with it
    ASSERT_TRUE(task.wait());
    if (by_user) {
      // Emitted where the call's handler would run (a plain thread here: nothing else
      // touches the slot).
      signal.emit(asio::cancellation_type::terminal);
    }
    auto f = got.get_future();
    auto r = get_or_fail(f, "the give-up");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind(), by_user ? error_kind::cancelled : error_kind::timed_out)
        << "form " << form;
    ASSERT_EQ(held.size(), 1u);
    EXPECT_TRUE(held[0].client.is_closed());
    EXPECT_FALSE(held[0].client.send(2));  // the caller has gone: harmless
  }
}

// ---- 2. destroying the runtime completes every pending form ----

TEST(ExactlyOnce, DestroyingTheRuntimeCompletesEveryWaitingFormOnce) {
  auto r = std::make_unique<tenorite::runtime>(2);
  auto go = std::make_shared<gate>(r->executor());  // never opened: the queue stays full
  auto [task, caller] = stuck_service{}.start_task(*r, 1, stuck_config{go});
  ASSERT_TRUE(caller.try_notify(0));  // the queue (1 slot) is full from here on

  std::vector<std::thread> threads;
  std::promise<echo_result> blocking_for, callback;
  std::promise<tenorite::error_kind> reserve_blocking, notify_blocking;
  std::latch started(3);
  threads.emplace_back([&, c = caller] {
    started.count_down();
    blocking_for.set_value(c.send_request_blocking_for(1, 1h));
  });
  threads.emplace_back([&, c = caller] {
    started.count_down();
    auto p = c.reserve_blocking();
    reserve_blocking.set_value(p ? error_kind::deadlock : p.error().kind());
  });
  threads.emplace_back([&, c = caller] {
    started.count_down();
    auto n = c.notify_blocking(3);
    notify_blocking.set_value(n ? error_kind::deadlock : n.error().kind());
  });
  started.wait();
  std::atomic<int> callback_runs{0};
  caller.async_send_request(4, [&](echo_result res) {
    if (callback_runs.fetch_add(1) == 0) callback.set_value(std::move(res));
  });
  auto fut = caller.async_send_request(5, asio::use_future);
  // The timed forms: a callback and use_future, through _for and through cancel_after.
  std::promise<echo_result> timed_callback;
  std::atomic<int> timed_callback_runs{0};
  caller.async_send_request_for(6, 1h, [&](echo_result res) {
    if (timed_callback_runs.fetch_add(1) == 0) timed_callback.set_value(std::move(res));
  });
  auto timed_fut = caller.async_send_request_until(
      7, std::chrono::steady_clock::now() + 1h, asio::use_future);
  auto token_fut = caller.async_send_request(8, tenorite::cancel_after(1h, asio::use_future));
  auto j = task.async_join(asio::use_future);

  r.reset();  // the runtime goes while every form waits

  auto f1 = blocking_for.get_future();
  EXPECT_TRUE(delivered_or_returned(get_or_fail(f1, "send_request_blocking_for"), 1));
  auto f2 = reserve_blocking.get_future();
  EXPECT_EQ(get_or_fail(f2, "reserve_blocking"), error_kind::send_failure);
  auto f3 = notify_blocking.get_future();
  EXPECT_EQ(get_or_fail(f3, "notify_blocking"), error_kind::send_failure);
  auto f4 = callback.get_future();
  EXPECT_TRUE(delivered_or_returned(get_or_fail(f4, "a callback"), 4));
  EXPECT_EQ(callback_runs.load(), 1);
  EXPECT_TRUE(delivered_or_returned(get_or_fail(fut, "use_future"), 5));
  auto f5 = timed_callback.get_future();
  EXPECT_TRUE(delivered_or_returned(get_or_fail(f5, "a callback through _for"), 6));
  EXPECT_EQ(timed_callback_runs.load(), 1);
  EXPECT_TRUE(delivered_or_returned(get_or_fail(timed_fut, "use_future through _until"), 7));
  EXPECT_TRUE(delivered_or_returned(get_or_fail(token_fut, "use_future with cancel_after"), 8));
  auto outcome = get_or_fail(j, "async_join(use_future)");
  ASSERT_FALSE(outcome);
  EXPECT_TRUE(outcome.error().is_cancelled());
  for (auto& t : threads) t.join();
}

// A callback that calls again on every failure, while the runtime is destroyed: each retry
// fails at once (the service is gone) and completes without recursing without bound.
TEST(ExactlyOnce, ACallbackRetryingDuringTheRuntimesDestructionEndsWithoutRecursing) {
  auto r = std::make_unique<tenorite::runtime>(2);
  auto go = std::make_shared<gate>(r->executor());
  auto [task, caller] = stuck_service{}.start_task(*r, 1, stuck_config{go});
  ASSERT_TRUE(caller.try_notify(0));
  struct retry {
    echo_caller c;
    int* attempts;
    std::promise<void>* done;
    void operator()(echo_result res) {
      if (++*attempts < 20000 && !res && res.error().kind() == error_kind::send_failure) {
        c.async_send_request(1, retry{c, attempts, done});
      } else {
        done->set_value();
      }
    }
  };
  int attempts = 0;
  std::promise<void> done;
  caller.async_send_request(1, retry{caller, &attempts, &done});
  r.reset();
  auto f = done.get_future();
  get_or_fail(f, "the retrying callback");
  EXPECT_EQ(attempts, 20000);
}

// The same with timed calls whose callback runs on the dying runtime: each retry starts a
// deadline there while the runtime's services are being destroyed. No timer may be made on
// it (the completion that would cancel it runs after the reactor is gone): the deadline is
// taken as passed, and every attempt completes once.
TEST(ExactlyOnce, ATimedCallStartedWhileItsRuntimeIsDestroyedCompletesOnce) {
  for (const bool by_token : {false, true}) {
    SCOPED_TRACE(by_token ? "cancel_after" : "async_send_request_for");
    auto r = std::make_unique<tenorite::runtime>(2);
    auto go = std::make_shared<gate>(r->executor());
    auto [task, caller] = stuck_service{}.start_task(*r, 1, stuck_config{go});
    ASSERT_TRUE(caller.try_notify(0));
    struct retry {
      echo_caller c;
      asio::any_io_executor ex;
      bool by_token;
      int* attempts;
      std::promise<void>* done;
      void start() const {
        auto h = asio::bind_executor(ex, *this);
        if (by_token) {
          c.async_send_request(1, tenorite::cancel_after(1h, std::move(h)));
        } else {
          c.async_send_request_for(1, 1h, std::move(h));
        }
      }
      void operator()(echo_result res) const {
        const bool failed = !res && (res.error().kind() == error_kind::send_failure ||
                                     res.error().kind() == error_kind::timed_out);
        if (++*attempts < 200 && failed) {
          start();
        } else {
          done->set_value();
        }
      }
    };
    int attempts = 0;
    std::promise<void> done;
    retry{caller, r->executor(), by_token, &attempts, &done}.start();
    r.reset();
    auto f = done.get_future();
    get_or_fail(f, "the retrying timed callback");
    EXPECT_EQ(attempts, 200);
  }
}

// ---- 3. a pool drains with a permit used after the drain ----

struct pool_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, int) {
    while (auto r = co_await rx.recv()) r->client.send(r->request * 2);
  }
};
using pool_service = tenorite::service<int, int, std::string, pool_worker, int>;

TEST(ExactlyOnce, APoolDrainedWithAPermitOutstandingEndsOnceThePermitIsUsedOrDropped) {
  for (int form = 0; form < 3; ++form) {
    tenorite::runtime rt(2);
    tenorite::service_options opts;
    opts.workers = 2;
    auto [task, caller] = pool_service{}.start(rt, opts, 0);
    auto p = caller.reserve_blocking();
    ASSERT_TRUE(p);
    task.drain();
    if (form == 0) {
      EXPECT_EQ(p->send_request_blocking(21).value(), 42);  // the permit still holds its slot
    } else if (form == 1) {
      auto f = p->async_send_request(21, asio::use_future);
      EXPECT_EQ(get_or_fail(f, "permit send").value(), 42);
    } else {
      auto dropped = std::move(*p);  // dropped unused
    }
    // The caller is still alive: the drain alone ends the pool (both workers see the end).
    auto j = task.async_join(asio::use_future);
    EXPECT_TRUE(get_or_fail(j, "the pool's join"));
    EXPECT_EQ(caller.send_request_blocking(1).error().kind(), error_kind::send_failure);
  }
}

// ---- 4. a worker calling itself by any form fails with deadlock ----

using echo_weak = tenorite::weak_caller<int, int, std::string>;
struct self_call_config {
  std::shared_ptr<std::promise<echo_weak>> self;
};
// Answers each request n with what its self-call form n ended with: 1 for deadlock with the
// request back (or no request, for a reservation), 0 otherwise.
struct self_caller_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, self_call_config cfg) {
    auto me = *cfg.self->get_future().get().lock();
    while (auto r = co_await rx.recv()) {
      int ok = 0;
      int v = 100 + r->request;
      switch (r->request) {
        case 0: {  // as_tuple(use_awaitable)
          auto [res] = co_await me.async_send_request(v, asio::as_tuple(asio::use_awaitable));
          ok = !res && res.error().kind() == error_kind::deadlock && res.error().request() == v;
          break;
        }
        case 1: {  // deferred, awaited
          auto op = me.async_send_request(v, asio::deferred);
          auto res = co_await std::move(op)(asio::use_awaitable);
          ok = !res && res.error().kind() == error_kind::deadlock && res.error().request() == v;
          break;
        }
        case 2: {  // a permit's send (the queue has room; the reply would never come)
          auto p = co_await me.reserve();
          if (p) {
            auto res = co_await p->send_request(std::move(v));
            ok = !res && res.error().kind() == error_kind::deadlock && res.error().request() == v;
          }
          break;
        }
        case 3: {  // notify on the full queue: fill it, then wait for room that never comes
          int filler = 7;
          while (me.try_notify(filler)) {
          }
          auto res = co_await me.notify(std::move(v));
          ok = !res && res.error().kind() == error_kind::deadlock && res.error().request() == v;
          // Empty the queue again (the fillers are notifications: nothing to answer).
          while (rx.try_recv()) {
          }
          break;
        }
        case 4: {  // reserve on the full queue
          int filler = 7;
          while (me.try_notify(filler)) {
          }
          auto res = co_await me.reserve();
          ok = !res && res.error().kind() == error_kind::deadlock;
          while (rx.try_recv()) {
          }
          break;
        }
        case 5: {  // send_request_for
          auto res = co_await me.send_request_for(std::move(v), 1h);
          ok = !res && res.error().kind() == error_kind::deadlock && res.error().request() == v;
          break;
        }
        default:
          break;
      }
      r->client.send(ok);
    }
  }
};
using self_caller_service =
    tenorite::service<int, int, std::string, self_caller_worker, self_call_config>;

TEST(ExactlyOnce, AWorkerCallingItselfByAnyFormOrTokenGetsDeadlock) {
  tenorite::runtime rt(2);
  auto self = std::make_shared<std::promise<echo_weak>>();
  auto [task, caller] = self_caller_service{}.start_task(rt, 2, self_call_config{self});
  self->set_value(caller.weak());
  for (int form = 0; form <= 5; ++form) {
    auto f = caller.async_send_request(form, asio::use_future);
    EXPECT_EQ(get_or_fail(f, "a self-call").value(), 1) << "form " << form;
  }
}

// ---- 5. an exception escaping a handler tenorite ran inline ----

TEST(ExactlyOnce, AnExceptionFromAHandlerRunInlineComesOutOfRunNotTerminate) {
  for (int form = 0; form < 2; ++form) {
    asio::io_context ioc;
    auto [task, caller] = echo_service{}.start_task(ioc, 4, echo_config{});
    int runs = 0;
    if (form == 0) {
      // A coroutine resumed by the worker's reply from inside its own call's initiation (the
      // worker is parked, takes the request and answers inline); its completion rethrows.
      asio::co_spawn(
          ioc,
          [](echo_caller c, int* runs) -> asio::awaitable<void> {
            int v = 1;
            auto r = co_await c.send_request(std::move(v));
            ++*runs;
            if (r) throw std::runtime_error("from the handler");
          }(caller, &runs),
          [](const std::exception_ptr& e) {
            if (e) std::rethrow_exception(e);
          });
    } else {
      // A callback completed from the worker's responder, inline through dispatch.
      caller.async_send_request(1, [&runs](echo_result) {
        ++runs;
        throw std::runtime_error("from the handler");
      });
    }
    bool thrown = false;
    try {
      ioc.run();
    } catch (const std::runtime_error& e) {
      thrown = std::string(e.what()) == "from the handler";
    }
    EXPECT_TRUE(thrown) << "form " << form;
    EXPECT_EQ(runs, 1);
    caller = {};
    ioc.restart();
    ioc.run();
    EXPECT_TRUE(task.is_finished());
  }
}

TEST(ExactlyOnce, AnExceptionAfterAReceiveThatFoundItsItemReadyComesOutOfRun) {
  // The receive completes at once (no operation is made) and resumes the coroutine inline,
  // from inside its own initiation; the coroutine then throws into co_spawn's completion.
  asio::io_context ioc;
  tenorite::channel<int> ch(ioc.get_executor(), 2);
  int one = 1;
  ASSERT_EQ(ch.try_send(one), tenorite::send_status::sent);
  int runs = 0;
  asio::co_spawn(
      ioc,
      [](tenorite::channel<int>* c, int* runs) -> asio::awaitable<void> {
        auto [ec, v] = co_await c->async_receive(asio::as_tuple(asio::use_awaitable));
        ++*runs;
        if (!ec && v == 1) throw std::runtime_error("after the receive");
      }(&ch, &runs),
      [](const std::exception_ptr& e) {
        if (e) std::rethrow_exception(e);
      });
  bool thrown = false;
  try {
    ioc.run();
  } catch (const std::runtime_error& e) {
    thrown = std::string(e.what()) == "after the receive";
  }
  EXPECT_TRUE(thrown);
  EXPECT_EQ(runs, 1);
}

TEST(ExactlyOnce, AReceiveWhoseRefilledSendersHandlerDestroysTheChannelIsSafe) {
  // A bare channel owned only by a parked sender's handler: the receive takes the buffered
  // item, the sender's value takes its slot and its handler runs inline (dispatch) and drops
  // the last owner; the receive must not touch the destroyed channel afterwards (ASan).
  asio::io_context ioc;
  auto ch = std::make_shared<tenorite::channel<int>>(ioc.get_executor(), 1);
  int one = 1;
  ASSERT_EQ(ch->try_send(one), tenorite::send_status::sent);
  int sent = 0, received = 0;
  ch->async_send(2, [keep = ch, &sent](boost::system::error_code ec, std::optional<int>) {
    if (!ec) ++sent;
  });
  tenorite::channel<int>* raw = ch.get();
  ch.reset();  // the parked send's handler is the only owner now
  asio::post(ioc, [raw, &received] {
    raw->async_receive([&received](boost::system::error_code ec, std::optional<int> v) {
      if (!ec && v == 1) ++received;
    });
  });
  ioc.run();
  EXPECT_EQ(sent, 1);
  EXPECT_EQ(received, 1);
}

// ---- 6. a channel destroyed with parked operations ----

TEST(ExactlyOnce, DestroyingAChannelCompletesWhatIsParkedInIt) {
  asio::io_context ioc;
  auto ch = std::make_unique<tenorite::channel<int>>(ioc.get_executor(), 1);
  asio::cancellation_signal signal;
  int receive_runs = 0, send_runs = 0;
  boost::system::error_code receive_ec, send_ec;
  std::optional<int> sent_back;
  ch->async_receive(asio::bind_cancellation_slot(
      signal.slot(), [&](boost::system::error_code ec, std::optional<int>) {
        ++receive_runs;
        receive_ec = ec;
      }));
  ioc.poll();  // parked
  auto ch2 = std::make_unique<tenorite::channel<int>>(ioc.get_executor(), 1);
  int filler = 1;
  ASSERT_EQ(ch2->try_send(filler), tenorite::send_status::sent);
  ch2->async_send(2, [&](boost::system::error_code ec, std::optional<int> v) {
    ++send_runs;
    send_ec = ec;
    sent_back = v;
  });
  ioc.poll();
  ch.reset();
  ch2.reset();
  signal.emit(asio::cancellation_type::terminal);  // after the channel: must touch nothing
  ioc.restart();
  ioc.run();  // returns: nothing parked keeps it busy
  EXPECT_EQ(receive_runs, 1);
  EXPECT_EQ(receive_ec, asio::error::operation_aborted);
  EXPECT_EQ(send_runs, 1);
  EXPECT_TRUE(send_ec);
  EXPECT_EQ(sent_back, std::optional<int>(2));
}

TEST(ExactlyOnce, AReceiveCancelledLateWhoseChannelIsGoneKeepsItsItem) {
  asio::io_context ioc;
  auto ch = std::make_unique<tenorite::channel<int>>(ioc.get_executor(), 1);
  asio::cancellation_signal signal;
  int runs = 0;
  std::optional<int> got;
  boost::system::error_code got_ec;
  ch->async_receive(asio::bind_cancellation_slot(
      signal.slot(), [&](boost::system::error_code ec, std::optional<int> v) {
        ++runs;
        got_ec = ec;
        got = v;
      }));
  int v = 5;
  ASSERT_EQ(ch->try_send(v), tenorite::send_status::sent);  // on its way (queued to ioc)
  signal.emit(asio::cancellation_type::terminal);            // too late: it would go back...
  ch.reset();                                                // ...but there is no queue
  ioc.run();
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(got_ec);
  EXPECT_EQ(got, std::optional<int>(5));
}

// ---- 7. lazy tokens launched late or never ----

TEST(ExactlyOnce, ALazyCallKeepsTheServiceOpenUntilItIsLaunchedOrDropped) {
  tenorite::runtime rt(2);
  auto [task, caller] = echo_service{}.start_task(rt, 4, echo_config{});
  auto weak = caller.weak();
  auto op = caller.async_send_request(21, asio::deferred);
  auto aw = caller.send_request(22);  // an awaitable not awaited yet
  caller = {};
  EXPECT_FALSE(weak.expired());  // the lazy operations hold the service
  auto f = std::move(op)(asio::use_future);
  EXPECT_EQ(get_or_fail(f, "a late deferred call").value(), 42);
  auto r = rt.block_on(std::move(aw));
  EXPECT_EQ(r.value(), 44);
  EXPECT_TRUE(task.wait());  // ends once both are gone (every caller is)
}

TEST(ExactlyOnce, ALazyCallDroppedUnlaunchedReleasesTheService) {
  tenorite::runtime rt(2);
  auto [task, caller] = echo_service{}.start_task(rt, 4, echo_config{});
  {
    [[maybe_unused]] auto op = caller.async_send_request(1, asio::deferred);
    [[maybe_unused]] auto aw = caller.send_request(2);
    caller = {};
  }
  EXPECT_TRUE(task.wait());
}

TEST(ExactlyOnce, APermitsLazySendDroppedUnlaunchedGivesTheSlotBack) {
  tenorite::runtime rt(2);
  auto go = std::make_shared<gate>(rt.executor());
  auto [task, caller] = stuck_service{}.start_task(rt, 1, stuck_config{go});
  {
    auto p = caller.try_reserve();
    ASSERT_TRUE(p);
    [[maybe_unused]] auto op = p->async_send_request(1, asio::deferred);  // dropped unlaunched
  }
  EXPECT_TRUE(caller.try_notify(2));  // the one slot is free again
  go->open();
  caller = {};
  EXPECT_TRUE(task.wait());
}

TEST(ExactlyOnce, ALazyJoinDroppedUnlaunchedLeavesTheOutcomeForALaterJoin) {
  tenorite::runtime rt(2);
  auto [task, caller] = echo_service{}.start_task(rt, 4, echo_config{});
  { [[maybe_unused]] auto op = task.async_join(asio::deferred); }
  caller = {};
  EXPECT_TRUE(task.wait());
}

struct panicking_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, int) {
    while (auto r = co_await rx.recv()) {
      if (r->request < 0) throw std::runtime_error("asked to fail");
      r->client.send(r->request);
    }
  }
};
using panicking_service = tenorite::service<int, int, std::string, panicking_worker, int>;

TEST(ExactlyOnce, ALazyJoinOutlivingItsHandleStillGetsAPanic) {
  tenorite::runtime rt(2);
  std::atomic<int> hook_calls{0};
  auto previous =
      tenorite::set_unhandled_exception_handler([&](std::exception_ptr) { ++hook_calls; });
  {
    auto [task, caller] = panicking_service{}.start_task(rt, 4, 0);
    auto op = task.async_join(asio::deferred);
    task = {};  // only the lazy join can take the outcome now
    EXPECT_EQ(caller.send_request_blocking(-1).error().kind(), error_kind::fetch_failure);
    auto f = std::move(op)(asio::use_future);
    auto j = get_or_fail(f, "a lazy join launched after the handle went");
    ASSERT_FALSE(j);
    EXPECT_TRUE(j.error().is_panic());
  }
  EXPECT_EQ(hook_calls.load(), 0);  // it was observed: not reported
  tenorite::set_unhandled_exception_handler(std::move(previous));
}

// ---- deadlines racing the call's own start ----

// A deadline already past when the call starts: the timer runs on another thread (the
// blocking form's handler runs inline, its timer on the system executor; a callback's on the
// runtime's two threads) while the call is still being started. The deadline must reach the
// call once its cancellation is connected, never be lost.
TEST(ExactlyOnce, ADeadlineThatPassesWhileTheCallStartsIsNeverLost) {
  tenorite::runtime r(2);
  auto go = std::make_shared<gate>(r.executor());  // never opened: the queue stays full
  auto [task, caller] = stuck_service{}.start_task(r, 1, stuck_config{go});
  ASSERT_TRUE(caller.try_notify(0));
  for (int i = 0; i < 300; ++i) {
    auto past = std::chrono::steady_clock::now() - 1s;
    auto b = caller.send_request_blocking_until(i, past);
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error().kind(), error_kind::timed_out);
    EXPECT_EQ(b.error().request(), std::optional<int>(i));
    std::promise<echo_result> got;
    caller.async_send_request_until(i, past, [&got](echo_result res) { got.set_value(std::move(res)); });
    auto f = got.get_future();
    auto c = get_or_fail(f, "a callback with a past deadline");
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().kind(), error_kind::timed_out);
    EXPECT_EQ(c.error().request(), std::optional<int>(i));
  }
  go->open();
  caller = {};
  ASSERT_TRUE(task.wait());
}

// A coroutine of a runtime being destroyed, waiting on a call of any form (plain, _for,
// cancel_after): it is destroyed with the runtime, as Asio does, and never resumed there.
TEST(ExactlyOnce, ACoroutineWaitingOnATimedCallIsDestroyedWithItsRuntime) {
  for (int form = 0; form < 3; ++form) {
    std::atomic<int> resumed{0};
    std::atomic<int> destroyed{0};
    {
      tenorite::runtime r(2);
      auto go = std::make_shared<gate>(r.executor());
      auto [task, caller] = stuck_service{}.start_task(r, 1, stuck_config{go});
      ASSERT_TRUE(caller.try_notify(0));  // full: the coroutine's call waits for room
      struct guard {
        std::atomic<int>* n;
        ~guard() { ++*n; }
      };
      std::promise<void> waiting;
      asio::co_spawn(
          r.executor(),
          [](echo_caller c, int form, std::atomic<int>* resumed, std::atomic<int>* destroyed,
             std::promise<void>* waiting) -> asio::awaitable<void> {
            guard g{destroyed};
            waiting->set_value();
            int v = 1;
            if (form == 0) {
              auto res = co_await c.send_request(std::move(v));
            } else if (form == 1) {
              auto res = co_await c.send_request_for(std::move(v), 1h);
            } else {
              auto res = co_await c.async_send_request(
                  std::move(v), tenorite::cancel_after(1h, asio::use_awaitable));
            }
            ++*resumed;
          }(caller, form, &resumed, &destroyed, &waiting),
          asio::detached);
      waiting.get_future().wait();
      caller = {};
    }  // the runtime goes while the coroutine waits
    EXPECT_EQ(resumed.load(), 0) << "form " << form;
    EXPECT_EQ(destroyed.load(), 1) << "form " << form;
  }
}

// ---- 8. contracts ----

TEST(ExactlyOnce, ATimedOutCallIsTracedAsTimedOut) {
  tenorite::runtime rt(2);
  std::mutex m;
  std::vector<std::optional<error_kind>> ends;
  tenorite::service_options opts;
  opts.queue_size = 1;
  opts.trace = [&](const tenorite::trace_event& e) {
    if (e.what != tenorite::trace_event::phase::completed) return;
    std::lock_guard lk(m);
    ends.push_back(e.outcome);
  };
  auto go = std::make_shared<gate>(rt.executor());
  auto [task, caller] = stuck_service{}.start(rt, opts, stuck_config{go});
  auto r = caller.send_request_blocking_for(1, 1ms);  // never delivered: the worker waits
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::timed_out);
  {
    std::lock_guard lk(m);
    ASSERT_EQ(ends.size(), 1u);
    EXPECT_EQ(ends[0], std::optional<error_kind>(error_kind::timed_out));
  }
  auto snap = caller.metrics();
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->failed_of(error_kind::timed_out), 1u);
  EXPECT_EQ(snap->failed_of(error_kind::cancelled), 0u);
  go->open();
  caller = {};
  EXPECT_TRUE(task.wait());
}

template <class R>
concept library_only_members_reachable = requires(R r, int v) {
  r.release();
  r.fail_undelivered(std::move(v));
};
static_assert(!library_only_members_reachable<tenorite::responder<int, int, std::string>>,
              "responder::release and fail_undelivered are the library's, not a worker's");

// ---- the inbox: completions handed to an io_context from threads that do not run it ----

namespace {
struct inbox_probe {
  std::mutex m;
  std::vector<std::vector<int>> order;  // per pushing thread, the sequence numbers run
  std::atomic<int> runs{0}, destroyed{0}, off_context{0};
  asio::io_context* ctx = nullptr;
  std::latch* all_run = nullptr;
};
struct probe_node final : tenorite::detail::inbox_node {
  probe_node(inbox_probe* p, int t, int s) : inbox_node(&fn), probe(p), thread(t), seq(s) {}
  static void fn(tenorite::detail::inbox_node* n, bool run) noexcept {
    std::unique_ptr<probe_node> self(static_cast<probe_node*>(n));
    inbox_probe* p = self->probe;
    if (!run) {
      p->destroyed.fetch_add(1);
      return;
    }
    if (!p->ctx->get_executor().running_in_this_thread()) p->off_context.fetch_add(1);
    {
      std::lock_guard lk(p->m);
      p->order[self->thread].push_back(self->seq);
    }
    p->runs.fetch_add(1);
    p->all_run->count_down();
  }
  inbox_probe* probe;
  int thread, seq;
};
struct shut_down_context : asio::io_context {
  void shut_down() { shutdown(); }
};
}  // namespace

// Run by one thread, the context runs each pusher's nodes in the order pushed; by two, a
// batch may overtake another (as Asio's own posts may), and each node still runs once.
TEST(Inbox, EveryNodePushedFromAnyThreadRunsOnceOnTheContext) {
  for (const int runners_count : {1, 2}) {
    constexpr int pushers = 4, per = 3000;
    asio::io_context ioc;
    auto work = asio::make_work_guard(ioc);
    std::latch all_run(pushers * per);
    inbox_probe p;
    p.ctx = &ioc;
    p.all_run = &all_run;
    p.order.resize(pushers);
    auto& box = tenorite::detail::inbox::of(ioc);
    std::vector<std::thread> runners;
    for (int i = 0; i < runners_count; ++i) runners.emplace_back([&ioc] { ioc.run(); });
    {
      std::vector<std::thread> threads;  // (libc++ 16 has no std::jthread)
      for (int t = 0; t < pushers; ++t)
        threads.emplace_back([&, t] {
          for (int s = 0; s < per; ++s) box.push(new probe_node(&p, t, s));
        });
      for (auto& t : threads) t.join();
    }
    all_run.wait();
    work.reset();
    for (auto& r : runners) r.join();  // run() returns: nothing is left counted as work
    EXPECT_EQ(p.runs.load(), pushers * per);
    EXPECT_EQ(p.destroyed.load(), 0);
    EXPECT_EQ(p.off_context.load(), 0);
    for (int t = 0; t < pushers; ++t) {
      std::vector<int> seen = p.order[t];
      if (runners_count == 1) {
        EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << "thread " << t;
      }
      std::sort(seen.begin(), seen.end());
      ASSERT_EQ(seen.size(), static_cast<std::size_t>(per));
      for (int s = 0; s < per; ++s) ASSERT_EQ(seen[s], s) << "thread " << t;
    }
  }
}

TEST(Inbox, NodesLeftWhenTheContextShutsDownAreDestroyedOnceUnrunAndLaterOnesAtOnce) {
  std::latch never(1);
  inbox_probe p;
  p.all_run = &never;
  p.order.resize(1);
  {
    shut_down_context ioc;
    p.ctx = &ioc;
    auto& box = tenorite::detail::inbox::of(ioc);
    for (int s = 0; s < 5; ++s) box.push(new probe_node(&p, 0, s));  // never run
    EXPECT_EQ(p.destroyed.load(), 0);
    ioc.shut_down();
    EXPECT_EQ(p.destroyed.load(), 5);
    box.push(new probe_node(&p, 0, 5));  // the context is gone: destroyed at once
    EXPECT_EQ(p.destroyed.load(), 6);
  }
  EXPECT_EQ(p.destroyed.load(), 6);
  EXPECT_EQ(p.runs.load(), 0);
}
