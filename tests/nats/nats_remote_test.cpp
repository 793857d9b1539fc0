// SPDX-License-Identifier: BSL-1.0
// Remote calls against a real nats-server: every outcome, every call form, deadlines and
// cancellation, bad input on the serving side.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <future>
#include <optional>
#include <tenorite/nats/remote_caller.hpp>
#include <tenorite/nats/server.hpp>

#include "nats_test_support.hpp"
#include "probe_service.hpp"

namespace {

namespace asio = boost::asio;
namespace tn = tenorite::nats;
using remote = tn::remote_caller<probe::request, probe::response, probe::error>;
using tenorite::error_kind;
using namespace std::chrono_literals;

// Every test runs twice: the connections on nats.c's own threads, and on the service's
// runtime (connection_options::executor: nats.c's event-loop mode; the server takes requests
// on the runtime from a synchronous subscription, the remote caller's replies still come on a
// nats.c delivery thread).
enum class serving { nats_threads, on_executor };
serving serving_mode = serving::nats_threads;  // set by the parameterised suite's SetUp

tn::connection connect_serving(const std::string& url, const asio::any_io_executor& ex) {
  tn::connection_options o{.servers = {url}};
  if (serving_mode == serving::on_executor) o.executor = ex;
  return tn::connection::connect(o);
}

// A nats-server, a local probe service served on "probe", a remote caller of it.
struct fixture {
  nats_test::server nats;
  tenorite::runtime rt{2};
  tenorite::join_handle<void> task;
  probe::caller local;
  tn::connection serve_conn, call_conn;
  std::optional<tn::server<probe::request, probe::response, probe::error>> srv;
  remote caller;

  explicit fixture(tn::serve_options so = {}, tn::remote_caller_options ro = {}) {
    auto [t, c] = probe::service{}.start_task(rt.executor(), 16, probe::config{"local"});
    task = std::move(t);
    local = std::move(c);
    serve_conn = connect_serving(nats.url(), rt.executor());
    call_conn = connect_serving(nats.url(), rt.executor());  // replies still come on nats.c's
    srv.emplace(tn::serve(serve_conn, "probe", "probes", local, so));
    caller = remote(call_conn, "probe", rt.executor(), ro);
  }
  ~fixture() {
    srv.reset();
    caller = remote();
    local = probe::caller();
  }
};

class NatsRemote : public ::testing::TestWithParam<serving> {
 protected:
  void SetUp() override { serving_mode = GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Serving, NatsRemote,
                         ::testing::Values(serving::nats_threads, serving::on_executor),
                         [](const ::testing::TestParamInfo<serving>& i) {
                           return i.param == serving::nats_threads ? "NatsThreads" : "OnExecutor";
                         });

TEST_P(NatsRemote, BlockingRoundTripOfEveryOutcome) {
  fixture f;
  auto ok = f.caller.send_request_blocking(probe::echo{"hello"});
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(*ok, "hello");

  auto err = f.caller.send_request_blocking(probe::fail{"nope"});
  ASSERT_FALSE(err);
  ASSERT_EQ(err.error().kind(), error_kind::service_error);
  EXPECT_EQ(err.error().service_error(), "nope");

  auto dropped = f.caller.send_request_blocking(probe::drop{});
  ASSERT_FALSE(dropped);
  EXPECT_EQ(dropped.error().kind(), error_kind::fetch_failure);
  EXPECT_FALSE(dropped.error().request());

  // Nobody serves "nobody": send failure, the request comes back.
  remote orphan(f.call_conn, "nobody", f.rt.executor());
  auto none = orphan.send_request_blocking(probe::echo{"lost?"});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind(), error_kind::send_failure);
  ASSERT_TRUE(none.error().request());
  EXPECT_EQ(std::get<probe::echo>(*none.error().request()).text, "lost?");
  EXPECT_NE(none.error().message().find("no responders"), std::string::npos);
}

// A traced call's context travels in the request's traceparent header and reaches the
// served worker; another client's header does too, an invalid one is no trace, and a call
// without one carries none.
TEST_P(NatsRemote, ATracedCallCarriesItsTraceparentToTheServedWorker) {
  fixture f;
  const std::string sample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const auto ctx = tenorite::trace_context::parse(sample);
  ASSERT_TRUE(ctx);
  const remote traced = f.caller.with_trace(*ctx);
  EXPECT_EQ(traced.trace(), *ctx);
  auto blocking = traced.send_request_blocking(probe::traced{});
  ASSERT_TRUE(blocking) << blocking.error().message();
  EXPECT_EQ(*blocking, sample);
  auto async = traced.async_send_request_for(probe::traced{}, 30s, asio::use_future).get();
  ASSERT_TRUE(async) << async.error().message();
  EXPECT_EQ(*async, sample);
  auto plain = f.caller.send_request_blocking(probe::traced{});
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(*plain, "none");

  // Another client's request with the header, as OpenTelemetry's NATS propagation sends it.
  auto raw = [&](const char* traceparent) {
    std::string payload;
    EXPECT_TRUE(tn::detail::encode_request(tn::binary_codec{}, probe::request(probe::traced{}),
                                           payload));
    natsMsg* msg = nullptr;
    EXPECT_EQ(natsMsg_Create(&msg, "probe", nullptr, payload.data(),
                             static_cast<int>(payload.size())),
              NATS_OK);
    std::unique_ptr<natsMsg, void (*)(natsMsg*)> guard(msg, &natsMsg_Destroy);
    EXPECT_EQ(natsMsgHeader_Set(msg, "traceparent", traceparent), NATS_OK);
    natsMsg* reply = nullptr;
    EXPECT_EQ(natsConnection_RequestMsg(&reply, f.call_conn.native(), msg, 5000), NATS_OK);
    std::unique_ptr<natsMsg, void (*)(natsMsg*)> reply_guard(reply, &natsMsg_Destroy);
    std::optional<probe::request> back;
    auto r = tn::detail::decode_reply<probe::request, probe::response, probe::error>(
        tn::binary_codec{}, tn::detail::view_of(reply), back);
    return r ? *r : "failed: " + r.error().message();
  };
  EXPECT_EQ(raw("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
  EXPECT_EQ(raw("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-00"), "none");
  EXPECT_EQ(raw("not a traceparent"), "none");
}

// A served endpoint and a remote caller are listed while they live: kind, calls, in flight.
TEST_P(NatsRemote, TheEndpointAndTheRemoteCallerAreListedInTheRegistry) {
  tenorite::service_registry reg;
  fixture f(tn::serve_options{.registry = &reg}, tn::remote_caller_options{.registry = &reg});
  ASSERT_TRUE(f.caller.send_request_blocking(probe::echo{"counted"}));
  auto endpoint = reg.find("nats:probe");
  ASSERT_TRUE(endpoint);
  EXPECT_EQ(endpoint->kind, tenorite::service_kind::nats_endpoint);
  EXPECT_EQ(endpoint->status, tenorite::service_status::running);
  EXPECT_EQ(endpoint->queue_capacity, tn::serve_options{}.max_in_flight);
  ASSERT_TRUE(endpoint->metrics);
  EXPECT_EQ(endpoint->metrics->calls, 1u);
  auto caller = reg.find("remote:probe");
  ASSERT_TRUE(caller);
  EXPECT_EQ(caller->kind, tenorite::service_kind::remote);
  ASSERT_TRUE(caller->metrics);
  EXPECT_EQ(caller->metrics->calls, 1u);
  EXPECT_EQ(caller->metrics->in_flight, 0u);
  // A held call is in flight on both sides until it is released.
  auto held = f.caller.async_send_request(probe::hold{}, asio::use_future);
  ASSERT_TRUE(f.caller.send_request_blocking(probe::echo{"after the hold"}));  // in order
  EXPECT_EQ(reg.find("remote:probe")->metrics->in_flight, 1u);
  EXPECT_EQ(reg.find("nats:probe")->queue_depth, 1u);
  ASSERT_TRUE(f.caller.send_request_blocking(probe::release{}));
  ASSERT_TRUE(held.get());
  // Named by the options; gone from the list once its state is freed.
  {
    remote named(f.call_conn, "probe", f.rt.executor(),
                 tn::remote_caller_options{.registry = &reg, .name = "probe client"});
    EXPECT_TRUE(reg.find("probe client"));
  }
  EXPECT_FALSE(reg.find("probe client"));
  f.srv.reset();
  f.caller = remote();
  EXPECT_FALSE(reg.find("remote:probe"));
}

// A second server on the subject without a queue group: every request gets two replies.
// The second must be dropped, never taken as the answer to a later call (on an executor the
// later call may reuse the first one's reply subscription).
TEST_P(NatsRemote, ASecondReplyToOneRequestIsNeverTakenForALaterCall) {
  fixture f;
  auto twin = tn::serve(f.serve_conn, "probe", "", f.local);
  for (int i = 0; i < 300; ++i) {
    auto r = f.caller.send_request_blocking(probe::echo{std::to_string(i)});
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_EQ(*r, std::to_string(i));
  }
  const auto a = f.srv->stats().endpoints.at(0), b = twin.stats().endpoints.at(0);
  EXPECT_EQ(a.received, 300u);  // both servers saw every request: two replies each time
  EXPECT_EQ(b.received, 300u);
}

TEST_P(NatsRemote, LocalWorkerGoneIsASendFailureWithTheRequest) {
  fixture f;
  f.task.abort();
  (void)f.task.wait();
  auto r = f.caller.send_request_blocking(probe::echo{"x"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::send_failure);
  ASSERT_TRUE(r.error().request());
  EXPECT_FALSE(r.error().reason().empty());
}

TEST_P(NatsRemote, AwaitableAndTokenForms) {
  fixture f;
  auto aw = f.rt.block_on([&]() -> asio::awaitable<remote::result_type> {
    probe::request req = probe::echo{"co"};
    co_return co_await f.caller.send_request(std::move(req));
  }());
  ASSERT_TRUE(aw);
  EXPECT_EQ(*aw, "co");

  std::future<remote::result_type> fut = f.caller.async_send_request(probe::echo{"fut"}, asio::use_future);
  auto fr = fut.get();
  ASSERT_TRUE(fr);
  EXPECT_EQ(*fr, "fut");

  std::promise<remote::result_type> p;
  int calls = 0;
  f.caller.async_send_request(probe::fail{"cb"}, [&](remote::result_type r) {
    ++calls;
    p.set_value(std::move(r));
  });
  auto cr = p.get_future().get();
  EXPECT_EQ(calls, 1);
  ASSERT_FALSE(cr);
  EXPECT_EQ(cr.error().service_error(), "cb");

  // The try_ forms (call_forms.hpp): a remote call never waits for room, so they answer as
  // the plain ones do.
  auto tb = f.caller.try_send_request_blocking(probe::echo{"try"});
  ASSERT_TRUE(tb);
  EXPECT_EQ(*tb, "try");
  auto tf = f.caller.async_try_send_request(probe::echo{"try-fut"}, asio::use_future).get();
  ASSERT_TRUE(tf);
  EXPECT_EQ(*tf, "try-fut");
  auto ta = f.rt.block_on([&]() -> asio::awaitable<remote::result_type> {
    probe::request req = probe::echo{"try-co"};
    co_return co_await f.caller.try_send_request(std::move(req));
  }());
  ASSERT_TRUE(ta);
  EXPECT_EQ(*ta, "try-co");
}

TEST_P(NatsRemote, ManyConcurrentCallsAllComplete) {
  fixture f;
  constexpr int n = 500;
  std::vector<std::future<remote::result_type>> futs;
  for (int i = 0; i < n; ++i)
    futs.push_back(f.caller.async_send_request(probe::echo{std::to_string(i)}, asio::use_future));
  for (int i = 0; i < n; ++i) {
    auto r = futs[static_cast<std::size_t>(i)].get();
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, std::to_string(i));
  }
}

TEST_P(NatsRemote, DeadlinesTimeOutAndLateRepliesAreDropped) {
  fixture f;
  auto t = f.caller.send_request_blocking_for(probe::hold{}, 50ms);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().kind(), error_kind::timed_out);
  EXPECT_FALSE(t.error().request());  // it was published: maybe delivered

  auto aw = f.rt.block_on([&]() -> asio::awaitable<remote::result_type> {
    probe::request req = probe::hold{};
    co_return co_await f.caller.send_request_for(std::move(req), 50ms);
  }());
  ASSERT_FALSE(aw);
  EXPECT_EQ(aw.error().kind(), error_kind::timed_out);

  // A deadline already passed: never sent, the request comes back.
  auto past = f.caller.send_request_blocking_until(probe::echo{"late"},
                                                   std::chrono::steady_clock::now() - 1s);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().kind(), error_kind::timed_out);
  EXPECT_TRUE(past.error().request());

  // The held calls are answered now; their replies find nobody waiting and are dropped.
  auto rel = f.caller.send_request_blocking(probe::release{});
  ASSERT_TRUE(rel);
  EXPECT_EQ(*rel, "2");
  // The caller still works.
  auto ok = f.caller.send_request_blocking_for(probe::echo{"after"}, 5s);
  ASSERT_TRUE(ok);

  // The default timeout applies to calls without a deadline.
  fixture g({}, tn::remote_caller_options{.timeout = 50ms});
  auto d = g.caller.send_request_blocking(probe::hold{});
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().kind(), error_kind::timed_out);
  (void)g.caller.send_request_blocking_for(probe::release{}, 5s);
}

TEST_P(NatsRemote, CancellationCompletesOnceAndDropsTheLateReply) {
  fixture f;
  asio::cancellation_signal sig;
  std::atomic<int> completions{0};
  std::promise<remote::result_type> p;
  std::promise<void> started;
  asio::post(f.rt.executor(), [&] {
    f.caller.async_send_request(probe::hold{},
                                asio::bind_cancellation_slot(sig.slot(), [&](remote::result_type r) {
                                  if (completions.fetch_add(1) == 0) p.set_value(std::move(r));
                                }));
    started.set_value();
  });
  started.get_future().get();
  // Published in order on one connection: once this echo is answered, the worker holds the
  // call.
  auto rel_first = f.caller.send_request_blocking(probe::echo{"sync"});
  ASSERT_TRUE(rel_first);
  asio::post(f.rt.executor(), [&] { sig.emit(asio::cancellation_type::terminal); });
  auto r = p.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::cancelled);
  auto rel = f.caller.send_request_blocking(probe::release{});
  ASSERT_TRUE(rel);
  EXPECT_EQ(*rel, "1");
  // A second emission after completion does nothing.
  std::promise<void> done;
  asio::post(f.rt.executor(), [&] {
    sig.emit(asio::cancellation_type::terminal);
    done.set_value();
  });
  done.get_future().get();
  EXPECT_EQ(completions.load(), 1);
}

[[gnu::noinline]] asio::awaitable<void> wait_timer(asio::steady_timer& t) {
  return t.async_wait(asio::use_awaitable);
}
template <class A, class B>
[[gnu::noinline]] auto race(asio::awaitable<A> a, asio::awaitable<B> b) {
  using namespace asio::experimental::awaitable_operators;
  return std::move(a) || std::move(b);
}

TEST_P(NatsRemote, AwaitableOperatorsCancelTheCall) {
  fixture f;
  auto outcome = f.rt.block_on(asio::co_spawn(
      asio::make_strand(f.rt.executor()),
      [&]() -> asio::awaitable<int> {
        asio::steady_timer timer(co_await asio::this_coro::executor, 50ms);
        probe::request req = probe::hold{};
        auto v = co_await race(f.caller.send_request(std::move(req)), wait_timer(timer));
        co_return static_cast<int>(v.index());
      },
      asio::use_awaitable));
  EXPECT_EQ(outcome, 1);  // the timer won; the call was cancelled
  auto rel = f.caller.send_request_blocking(probe::release{});
  ASSERT_TRUE(rel);
  EXPECT_EQ(*rel, "1");
}

TEST_P(NatsRemote, MalformedRequestsGetAnErrorReplyAndTheServerKeepsServing) {
  fixture f;
  natsConnection* nc = f.call_conn.native();
  const std::vector<std::string> hostile = {
      "", std::string("\x07", 1), std::string("\x00\xff\xff\xff\xff", 5),
      std::string("\x00\x01\x00\x00\x00k", 6) + "trailing garbage", std::string(64, '\xff')};
  for (const auto& payload : hostile) {
    natsMsg* reply = nullptr;
    ASSERT_EQ(natsConnection_Request(&reply, nc, "probe", payload.data(),
                                     static_cast<int>(payload.size()), 5000),
              NATS_OK);
    // [version][status][why], and the NATS services error headers for any client.
    ASSERT_GT(natsMsg_GetDataLength(reply), 2);
    EXPECT_EQ(natsMsg_GetData(reply)[0], static_cast<char>(tn::wire::binary_version));
    EXPECT_EQ(natsMsg_GetData(reply)[1], static_cast<char>(tn::wire::status::bad_request));
    const char* code = nullptr;
    ASSERT_EQ(natsMsgHeader_Get(reply, "Nats-Service-Error-Code", &code), NATS_OK);
    EXPECT_STREQ(code, "400");
    const char* why = nullptr;
    ASSERT_EQ(natsMsgHeader_Get(reply, "Nats-Service-Error", &why), NATS_OK);
    EXPECT_NE(std::string(why).find("undecodable request"), std::string::npos) << why;
    natsMsg_Destroy(reply);
  }
  auto ok = f.caller.send_request_blocking(probe::echo{"still here"});
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, "still here");
  EXPECT_EQ(f.srv->stats().endpoints.at(0).bad_requests, hostile.size());
}

TEST_P(NatsRemote, PayloadLimitsBothWays) {
  fixture f(tn::serve_options{.max_payload = 64});
  // Over the server's limit: rejected by the server, request returned.
  auto r = f.caller.send_request_blocking(probe::echo{std::string(200, 'a')});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::bad_request);  // never delivered: not a fetch failure
  ASSERT_TRUE(r.error().request());
  ASSERT_TRUE(std::holds_alternative<probe::echo>(*r.error().request()));
  EXPECT_EQ(std::get<probe::echo>(*r.error().request()).text, std::string(200, 'a'));
  EXPECT_NE(r.error().reason().find("max_payload"), std::string::npos);
  // Over the caller's own limit: never sent.
  fixture g({}, tn::remote_caller_options{.max_payload = 16});
  auto s = g.caller.send_request_blocking(probe::echo{std::string(100, 'a')});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), error_kind::bad_request);
  EXPECT_TRUE(s.error().request());
}

TEST_P(NatsRemote, UndecodableReplyIsAFetchFailureWithAReason) {
  fixture f;
  // A rogue responder on "rogue" answers garbage.
  natsSubscription* sub = nullptr;
  auto on_msg = [](natsConnection* nc, natsSubscription*, natsMsg* m, void*) {
    const char garbage[] = "\x00\xff\xff";
    natsConnection_Publish(nc, natsMsg_GetReply(m), garbage, 3);
    natsMsg_Destroy(m);
  };
  ASSERT_EQ(natsConnection_Subscribe(&sub, f.serve_conn.native(), "rogue", on_msg, nullptr),
            NATS_OK);
  ASSERT_EQ(natsConnection_Flush(f.serve_conn.native()), NATS_OK);
  remote rogue(f.call_conn, "rogue", f.rt.executor());
  auto r = rogue.send_request_blocking(probe::echo{"x"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), error_kind::fetch_failure);
  EXPECT_NE(r.error().reason().find("undecodable"), std::string::npos);
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
}

TEST_P(NatsRemote, BackpressureAnswersQueueFullBeyondMaxInFlight) {
  fixture f(tn::serve_options{.max_in_flight = 2});
  std::vector<std::future<remote::result_type>> held;
  for (int i = 0; i < 2; ++i)
    held.push_back(f.caller.async_send_request(probe::hold{}, asio::use_future));
  // Ordered after the two holds on this connection: the server has 2 in flight.
  auto busy = f.caller.send_request_blocking(probe::echo{"busy?"});
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().kind(), error_kind::queue_full);
  ASSERT_TRUE(busy.error().request());
  EXPECT_EQ(f.srv->stats().endpoints.at(0).busy, 1u);
  // Release through a second server instance would be needed if all slots were held; the
  // fixture's limit counts calls in flight, so release goes through once one slot is free:
  // use the local caller directly.
  auto rel = f.local.send_request_blocking(probe::release{});
  ASSERT_TRUE(rel);
  for (auto& h : held) {
    auto r = h.get();
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, "released");
  }
}

TEST_P(NatsRemote, DrainAnswersWhatWasReceived) {
  fixture f;
  auto fut = f.caller.async_send_request(probe::hold{}, asio::use_future);
  auto sync = f.caller.send_request_blocking(probe::echo{"sync"});
  ASSERT_TRUE(sync);
  std::thread releaser([&] { (void)f.local.send_request_blocking(probe::release{}); });
  EXPECT_TRUE(f.srv->drain(10s));
  releaser.join();
  auto r = fut.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "released");
  // After the drain nobody serves the subject.
  auto after = f.caller.send_request_blocking_for(probe::echo{"x"}, 5s);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().kind(), error_kind::send_failure);
}

// A server may hold a service's last caller. Stopping it must not leave that caller to be
// released later on nats.c's delivery thread: that would end the service there while the
// owner goes on to destroy the service's runtime, as each round here does at once (a TSan
// report in the serving process of the cluster tests found it). The last release now happens
// in stop(), or in a completion still running on the service's own runtime; the tsan preset
// checks the rounds below for the race.
TEST_P(NatsRemote, StoppingAServerThatHoldsTheLastCallerThenDestroyingTheRuntimeIsSafe) {
  nats_test::server nats;
  for (int round = 0; round < 20; ++round) {
    std::optional<tenorite::join_handle<void>> task;
    {
      tenorite::runtime rt(1);
      auto [t, local] = probe::service{}.start_task(rt.executor(), 4, probe::config{"last"});
      task.emplace(std::move(t));
      auto conn = connect_serving(nats.url(), rt.executor());
      auto srv = tn::serve(conn, "probe.last", "", std::move(local));  // the only caller now
      {
        remote caller(conn, "probe.last", rt.executor());
        auto r = caller.send_request_blocking(probe::echo{"once"});
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(*r, "once");
      }
      srv.stop();
    }  // the runtime goes at once, whatever the worker is doing
    // The worker ended when its last caller went, or was ended by its runtime: never a hang.
    auto outcome = task->wait();
    EXPECT_TRUE(outcome || outcome.error().is_cancelled()) << "round " << round;
  }
}

}  // namespace

// A closed connection brings no reply: the calls in flight end at once with fetch_failure
// (not at their deadline, here an hour away), and later calls are send failures.
TEST_P(NatsRemote, ClosingTheConnectionFailsPendingCallsAtOnce) {
  fixture f({}, tn::remote_caller_options{.timeout = std::chrono::hours(1)});
  // Published in order on one connection: once the echo is answered, the server holds both.
  std::future<remote::result_type> held1 =
      f.caller.async_send_request(probe::hold{}, asio::use_future);
  std::future<remote::result_type> held2 =
      f.caller.async_send_request(probe::hold{}, asio::use_future);
  auto echo = f.caller.send_request_blocking(probe::echo{"in order"});
  ASSERT_TRUE(echo) << echo.error().message();

  f.call_conn.close();
  for (auto* fut : {&held1, &held2}) {
    // A hang guard only: without the closed handling the calls would wait an hour.
    ASSERT_EQ(fut->wait_for(60s), std::future_status::ready);
    auto r = fut->get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind(), error_kind::fetch_failure);
    EXPECT_FALSE(r.error().request());
    EXPECT_NE(r.error().reason().find("closed"), std::string::npos) << r.error().reason();
  }
  auto after = f.caller.send_request_blocking(probe::echo{"after"});
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().kind(), error_kind::send_failure);
  ASSERT_TRUE(after.error().request());

  // The serving side is untouched: release the held calls (their replies go nowhere).
  remote other(f.serve_conn, "probe", f.rt.executor());
  auto rel = other.send_request_blocking(probe::release{});
  ASSERT_TRUE(rel) << rel.error().message();
  EXPECT_EQ(*rel, "2");
}

// On a connection that runs on an executor, the calls that wait for the NATS server's answer
// (read on that executor) refuse to run on a thread of its context instead of waiting for
// themselves forever.
TEST(NatsOnExecutor, WaitingCallsOnTheConnectionsOwnContextThrowInsteadOfHanging) {
  nats_test::server nats;
  tenorite::runtime rt(1);
  auto [task, local] = probe::service{}.start_task(rt.executor(), 4, probe::config{"x"});
  auto conn = tn::connection::connect({.servers = {nats.url()}, .executor = rt.executor()});
  EXPECT_TRUE(conn.on_executor());
  conn.flush();  // from another thread: fine
  auto refused = rt.block_on([&]() -> asio::awaitable<int> {
    int n = 0;
    try {
      conn.flush();
    } catch (const std::logic_error& e) {
      ++n;
      EXPECT_NE(std::string(e.what()).find("another thread"), std::string::npos) << e.what();
    }
    try {
      auto srv = tn::serve(conn, "probe.refused", "", local);
    } catch (const std::logic_error&) {
      ++n;
    }
    try {
      auto again = tn::connection::connect({.servers = {nats.url()}, .executor = rt.executor()});
    } catch (const std::logic_error&) {
      ++n;
    }
    co_return n;
  }());
  EXPECT_EQ(refused, 3);
  // The connection still serves from the owner's thread.
  auto srv = tn::serve(conn, "probe.ok", "", local);
  auto call_conn = tn::connection::connect({.servers = {nats.url()}});
  remote caller(call_conn, "probe.ok", rt.executor());
  auto r = caller.send_request_blocking(probe::echo{"fine"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, "fine");
}
