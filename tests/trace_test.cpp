// SPDX-License-Identifier: BSL-1.0
// Trace context (tenorite/trace.hpp): traceparent parsing by the W3C rules, and a context
// attached with with_trace reaching the worker through every call form, notifications,
// permits and a sharded set; a handle without one carries none.
#include <gtest/gtest.h>

#include <boost/asio/deferred.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tenorite/sharded.hpp>
#include <tenorite/tenorite.hpp>
#include <tenorite/trace.hpp>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using tenorite::trace_context;

constexpr const char* sample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

trace_context sample_context() {
  auto c = trace_context::parse(sample);
  if (!c) throw std::logic_error("the sample traceparent does not parse");
  return *c;
}

TEST(TraceContext, ParsesTheRecommendationsExampleAndWritesItBack) {
  auto c = trace_context::parse(sample);
  ASSERT_TRUE(c);
  EXPECT_TRUE(*c);
  EXPECT_TRUE(c->sampled());
  EXPECT_EQ(c->trace_id[0], 0x4b);
  EXPECT_EQ(c->trace_id[15], 0x36);
  EXPECT_EQ(c->parent_id[0], 0x00);
  EXPECT_EQ(c->parent_id[7], 0xb7);
  EXPECT_EQ(c->flags, 0x01);
  EXPECT_EQ(c->traceparent(), sample);
  // HTTP's optional whitespace around a header value is not part of it.
  EXPECT_EQ(trace_context::parse(std::string(" \t") + sample + " "), c);
  auto unsampled = trace_context::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(unsampled);
  EXPECT_FALSE(unsampled->sampled());
}

TEST(TraceContext, RefusesWhatAReceiverMustNotAccept) {
  const std::vector<std::string> refused = {
      "",
      "00",
      // uppercase hex (the recommendation's HEXDIGLC)
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      // all-zero trace-id, all-zero parent-id
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      // version ff is invalid
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // version 00 is exactly 55 characters
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
      // wrong separators, a non-hex digit
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
      // a later version's extra fields follow a '-'
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
  };
  for (const std::string& v : refused) EXPECT_FALSE(trace_context::parse(v)) << v;
  // A later version is read as far as version 00 goes.
  auto later = trace_context::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what");
  ASSERT_TRUE(later);
  EXPECT_EQ(later->traceparent(), sample);
  EXPECT_TRUE(trace_context::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

TEST(TraceContext, WithParentKeepsTheTraceAndTheEmptyContextIsFalse) {
  const trace_context c = sample_context();
  const trace_context child = c.with_parent({1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(child.trace_id, c.trace_id);
  EXPECT_EQ(child.flags, c.flags);
  EXPECT_EQ(child.traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01");
  EXPECT_FALSE(trace_context{});
}

// Answers each call with the traceparent its responder carries ("none" without one), and
// records the notifications' the same way.
struct trace_config {
  std::shared_ptr<std::mutex> m = std::make_shared<std::mutex>();
  std::shared_ptr<std::vector<std::string>> notified = std::make_shared<std::vector<std::string>>();
};
using trace_request = tenorite::request<int, std::string, std::string>;
std::string seen(const tenorite::responder<int, std::string, std::string>& r) {
  return r.trace() ? r.trace().traceparent() : std::string("none");
}
struct trace_worker {
  static boost::asio::awaitable<void> task(tenorite::receiver<trace_request> rx,
                                           trace_config cfg) {
    while (auto r = co_await rx.recv()) {
      std::string s = seen(r->client);
      if (!r->client.wants_reply()) {
        std::lock_guard lk(*cfg.m);
        cfg.notified->push_back(std::move(s));
      } else {
        r->client.send(std::move(s));
      }
    }
  }
};
using trace_service =
    tenorite::service<int, std::string, std::string, trace_worker, trace_config>;
using trace_caller = trace_service::caller_type;

tenorite::runtime& rt() {
  static tenorite::runtime r(2);
  return r;
}

// Every form of one handle, each answered with what the worker saw.
template <class Caller>
std::vector<std::string> every_form(const Caller& c) {
  std::vector<std::string> out;
  auto value = [&](auto r) { out.push_back(r ? *r : "failed: " + r.error().message()); };
  value(c.send_request_blocking(1));
  value(c.try_send_request_blocking(2));
  value(c.send_request_blocking_for(3, 30s));
  value(c.async_send_request(4, boost::asio::use_future).get());
  value(c.async_send_request_for(5, 30s, boost::asio::use_future).get());
  value(c.async_try_send_request(6, boost::asio::use_future).get());
  // A deferred operation launched later, after the handle it came from is gone.
  auto later = [&] {
    Caller copy = c;
    return copy.async_send_request(7, boost::asio::deferred);
  }();
  value(std::move(later)(boost::asio::use_future).get());
  value(boost::asio::co_spawn(
            rt().executor(),
            [c]() -> boost::asio::awaitable<typename Caller::result_type> {
              co_return co_await c.send_request(8);
            },
            boost::asio::use_future)
            .get());
  return out;
}

TEST(Trace, EveryCallFormOfATracedHandleCarriesItsContextToTheWorker) {
  trace_config cfg;
  auto [task, plain] = trace_service{}.start(rt(), tenorite::service_options{}, cfg);
  const trace_context ctx = sample_context();
  const trace_caller traced = plain.with_trace(ctx);
  EXPECT_EQ(traced.trace(), ctx);
  EXPECT_FALSE(plain.trace());
  for (const std::string& s : every_form(traced)) EXPECT_EQ(s, sample);
  // The handle it was made from, and one made with an empty context, carry none.
  for (const std::string& s : every_form(plain)) EXPECT_EQ(s, "none");
  for (const std::string& s : every_form(traced.with_trace({}))) EXPECT_EQ(s, "none");
}

TEST(Trace, PermitsAndNotificationsOfATracedHandleCarryItsContext) {
  trace_config cfg;
  auto [task, plain] = trace_service{}.start(rt(), tenorite::service_options{}, cfg);
  const trace_caller traced = plain.with_trace(sample_context());
  {
    auto p = traced.reserve_blocking();
    ASSERT_TRUE(p);
    auto r = p->send_request_blocking(1);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, sample);
  }
  {
    auto p = traced.try_reserve();
    ASSERT_TRUE(p);
    auto r = p->async_send_request(2, boost::asio::use_future).get();
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, sample);
  }
  {
    auto p = traced.async_reserve(boost::asio::use_future).get();
    ASSERT_TRUE(p);
    auto r = p->send_request_blocking_for(3, 30s);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, sample);
  }
  EXPECT_TRUE(traced.notify_blocking(4));
  EXPECT_TRUE(traced.try_notify(5));
  EXPECT_TRUE(traced.async_notify(6, boost::asio::use_future).get());
  EXPECT_TRUE(plain.notify_blocking(7));
  // The worker serves in order: a call after the notifications returns once they were seen.
  ASSERT_TRUE(plain.send_request_blocking(8));
  std::lock_guard lk(*cfg.m);
  EXPECT_EQ(*cfg.notified, (std::vector<std::string>{sample, sample, sample, "none"}));
}

TEST(Trace, ATracedShardedHandleCarriesItsContextToEveryShard) {
  trace_config cfg;
  auto [tasks, plain] = tenorite::start_sharded(
      trace_service{}, rt(), 3, tenorite::service_options{}, cfg,
      [](const int& v) { return static_cast<std::size_t>(v); });
  const auto traced = plain.with_trace(sample_context());
  for (const std::string& s : every_form(traced)) EXPECT_EQ(s, sample);
  for (const std::string& s : every_form(plain)) EXPECT_EQ(s, "none");
}

TEST(Trace, WithTraceOnAnEmptyHandleSaysWhatToDo) {
  trace_caller empty;
  try {
    (void)empty.with_trace(sample_context());
    FAIL() << "with_trace on an empty caller did not throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("with_trace"), std::string::npos) << e.what();
  }
  tenorite::sharded_caller<int, std::string, std::string> no_shards;
  EXPECT_THROW((void)no_shards.with_trace(sample_context()), std::logic_error);
}

}  // namespace
