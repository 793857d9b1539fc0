// SPDX-License-Identifier: BSL-1.0
// A connection on an executor (connection_options::executor, nats.c's event-loop mode): how
// it closes and goes away whatever the state of its executor's context. Each of these once
// left the close queued on a loop that never ran it, then destroyed the connection during
// the context's destruction, after its loop object was freed (an ASan abort in
// NatsRemote.ClosingTheConnectionFailsPendingCallsAtOnce/OnExecutor: a server's reply handler
// dropped the last connection handle on a runtime thread just before the runtime went).
#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <memory>
#include <thread>
#include <tenorite/nats/connection.hpp>

#include "nats_test_support.hpp"

namespace {

namespace asio = boost::asio;
namespace tn = tenorite::nats;
using namespace std::chrono_literals;

// The context and the one thread running it, which the test stops and joins itself.
struct context {
  asio::io_context ioc{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  std::thread thread{[this] { ioc.run(); }};
  ~context() {
    work.reset();
    ioc.stop();
    if (thread.joinable()) thread.join();
  }
};

tn::connection connect_on(const std::string& url, asio::io_context& ioc) {
  return tn::connection::connect({.servers = {url}, .executor = ioc.get_executor()});
}

// The flake's interleaving, made deterministic: the last handle goes on a thread of the
// context, and the context stops before running anything after that handler. The connection
// must be closed by then (it was queued on the loop, never run), and destroying the context
// afterwards must not reach the connection (it was destroyed there, the loop freed first).
TEST(NatsEventLoop, LastHandleDroppedOnTheContextThenTheContextStoppedAndDestroyed) {
  nats_test::server nats;
  std::promise<void> closed;
  auto was_closed = closed.get_future();
  {
    auto ctx = std::make_unique<context>();
    auto conn = connect_on(nats.url(), ctx->ioc);
    ASSERT_NE(conn.watch_closed([&] { closed.set_value(); }), 0u);
    asio::post(ctx->ioc, [&ioc = ctx->ioc, c = std::move(conn)]() mutable {
      c = tn::connection();  // the last handle, on the context's thread
      ioc.stop();            // nothing queued after this handler runs
    });
    ctx->thread.join();
    // A hang guard only: closed when the last handle went, not at the context's end.
    EXPECT_EQ(was_closed.wait_for(60s), std::future_status::ready)
        << "the connection was left open when its last handle went on the context's thread";
  }  // the context is destroyed: nothing of the connection may be left in it
  (void)was_closed.wait_for(60s);  // before `closed` goes (it is told from a nats.c thread)
}

// close() on a thread of the executor's context (off the loop) is done when it returns.
TEST(NatsEventLoop, CloseOnTheContextsThreadIsDoneWhenItReturns) {
  nats_test::server nats;
  context ctx;
  auto conn = connect_on(nats.url(), ctx.ioc);
  std::promise<bool> closed_at_return;
  asio::post(ctx.ioc, [&] {
    conn.close();
    closed_at_return.set_value(conn.is_closed());
  });
  EXPECT_TRUE(closed_at_return.get_future().get());
  EXPECT_TRUE(conn.is_closed());
}

// A stopped context never runs the loop again: close() and the last handle from another
// thread close at once and cannot race it; the context is destroyed after.
TEST(NatsEventLoop, CloseAndLastHandleWithTheContextStopped) {
  nats_test::server nats;
  auto ctx = std::make_unique<context>();
  auto a = connect_on(nats.url(), ctx->ioc);
  auto b = connect_on(nats.url(), ctx->ioc);
  ctx->work.reset();
  ctx->ioc.stop();
  ctx->thread.join();
  a.close();
  EXPECT_TRUE(a.is_closed());
  a = tn::connection();
  b = tn::connection();  // closed and destroyed here, the loop stopped
  ctx.reset();
}

// Closing from another thread while the loop runs: the close is done on the loop, and the
// connections on the same context go on working (their descriptors are untouched).
TEST(NatsEventLoop, CloseFromAnotherThreadLeavesTheOtherConnectionsOfTheContextWorking) {
  nats_test::server nats;
  context ctx;
  auto keep = connect_on(nats.url(), ctx.ioc);
  for (int i = 0; i < 20; ++i) {
    auto c = connect_on(nats.url(), ctx.ioc);
    c.flush();
    if (i % 2) {
      c.close();
      EXPECT_TRUE(c.is_closed());
    }
    // the last handle: from this thread, the loop running
  }
  keep.flush();  // the survivor still reads and writes on the context
  EXPECT_FALSE(keep.is_closed());
}

}  // namespace
