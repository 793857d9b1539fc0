// SPDX-License-Identifier: BSL-1.0
// The bounded queue under every service: capacity, FIFO, backpressure, close, end, abort.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <optional>
#include <tenorite/channel.hpp>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using tenorite::channel;
using tenorite::send_status;

TEST(Channel, ZeroCapacityIsRejected) {
  asio::io_context ioc;
  EXPECT_THROW(channel<int>(ioc.get_executor(), 0), std::invalid_argument);
}

TEST(Channel, TrySendFillsExactlyToCapacityInFifoOrder) {
  asio::io_context ioc;
  channel<int> ch(ioc.get_executor(), 3);
  for (int i = 0; i < 3; ++i) {
    int v = i;
    EXPECT_EQ(ch.try_send(v), send_status::sent);
  }
  int extra = 99;
  EXPECT_EQ(ch.try_send(extra), send_status::full);
  EXPECT_EQ(extra, 99);  // not taken
  EXPECT_EQ(ch.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ch.try_receive(), std::optional<int>(i));
  EXPECT_EQ(ch.try_receive(), std::nullopt);
}

TEST(Channel, AsyncSendWaitsWhenFullUntilAReceiveMakesRoom) {
  asio::io_context ioc;
  channel<int> ch(ioc.get_executor(), 2);
  int completed = 0;
  for (int i = 0; i < 3; ++i) {
    ch.async_send(i, [&](boost::system::error_code ec, std::optional<int> back) {
      EXPECT_FALSE(ec);
      EXPECT_FALSE(back);
      ++completed;
    });
  }
  ioc.poll();
  EXPECT_EQ(completed, 2);  // the third send waits: backpressure at exactly the capacity
  EXPECT_EQ(ch.try_receive(), std::optional<int>(0));
  ioc.poll();
  EXPECT_EQ(completed, 3);
  EXPECT_EQ(ch.try_receive(), std::optional<int>(1));
  EXPECT_EQ(ch.try_receive(), std::optional<int>(2));  // the waiter's value kept its place
}

TEST(Channel, CloseHandsBackBufferedItemsAndWaitingSenders) {
  asio::io_context ioc;
  channel<int> ch(ioc.get_executor(), 2);
  for (int i = 0; i < 2; ++i) {
    int v = i;
    ASSERT_EQ(ch.try_send(v), send_status::sent);
  }
  std::optional<int> returned;
  boost::system::error_code send_ec;
  ch.async_send(7, [&](boost::system::error_code ec, std::optional<int> back) {
    send_ec = ec;
    returned = back;
  });
  ioc.poll();
  std::vector<int> handed_back;
  ch.close([&](int&& v) { handed_back.push_back(v); });
  ioc.poll();
  EXPECT_EQ(handed_back, (std::vector<int>{0, 1}));
  EXPECT_EQ(send_ec, asio::error::broken_pipe);
  EXPECT_EQ(returned, std::optional<int>(7));
  int late = 5;
  EXPECT_EQ(ch.try_send(late), send_status::closed);
  EXPECT_TRUE(ch.is_closed());
}

TEST(Channel, ReceiversDrainThenSeeTheEndWhenSendersAreGone) {
  asio::io_context ioc;
  channel<int> ch(ioc.get_executor(), 4);
  int v = 1;
  ASSERT_EQ(ch.try_send(v), send_status::sent);
  ch.mark_no_senders();
  std::vector<std::optional<int>> got;
  for (int i = 0; i < 2; ++i)
    ch.async_receive([&](boost::system::error_code ec, std::optional<int> item) {
      EXPECT_FALSE(ec);
      got.push_back(item);
    });
  ioc.poll();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], std::optional<int>(1));
  EXPECT_EQ(got[1], std::nullopt);
}

TEST(Channel, APendingReceiverIsWokenByTheEnd) {
  asio::io_context ioc;
  channel<int> ch(ioc.get_executor(), 4);
  bool ended = false;
  ch.async_receive([&](boost::system::error_code ec, std::optional<int> item) {
    EXPECT_FALSE(ec);
    ended = !item;
  });
  ioc.poll();
  EXPECT_FALSE(ended);
  ch.mark_no_senders();
  ioc.poll();
  EXPECT_TRUE(ended);
}

TEST(Channel, AbortFailsPendingAndLaterReceives) {
  asio::io_context ioc;
  channel<int> ch(ioc.get_executor(), 4);
  std::vector<boost::system::error_code> errors;
  auto on_receive = [&](boost::system::error_code ec, std::optional<int>) { errors.push_back(ec); };
  ch.async_receive(on_receive);
  ioc.poll();
  ch.abort_receivers(asio::error::operation_aborted);
  ch.async_receive(on_receive);
  ioc.poll();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0], asio::error::operation_aborted);
  EXPECT_EQ(errors[1], asio::error::operation_aborted);
}

TEST(Channel, HandlersNeverRunInsideTheInitiatingFunction) {
  asio::io_context ioc;
  channel<int> ch(ioc.get_executor(), 4);
  int v = 3;
  ASSERT_EQ(ch.try_send(v), send_status::sent);
  bool ran = false;
  ch.async_receive([&](boost::system::error_code, std::optional<int>) { ran = true; });
  EXPECT_FALSE(ran);  // completed "as if by post"
  ioc.poll();
  EXPECT_TRUE(ran);
}

TEST(Channel, CoroutineSendAndReceive) {
  asio::io_context ioc;
  channel<int> ch(ioc.get_executor(), 1);
  std::vector<int> got;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 100; ++i) co_await ch.async_send(i, asio::use_awaitable);
        ch.mark_no_senders();
      },
      asio::detached);
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        while (auto v = co_await ch.async_receive(asio::use_awaitable)) got.push_back(*v);
      },
      asio::detached);
  ioc.run();
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], i);
}

TEST(Channel, BlockingProducersAndConsumerCountEveryItemOnce) {
  asio::io_context ioc;
  channel<int> ch(ioc.get_executor(), 8);
  constexpr int producers = 4, per = 5000;
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      for (int i = 0; i < per; ++i) EXPECT_EQ(ch.send_blocking(p * per + i), std::nullopt);
    });
  std::vector<int> seen(producers * per, 0);
  std::vector<int> last(producers, -1);
  for (int n = 0; n < producers * per; ++n) {
    boost::system::error_code ec;
    auto v = ch.receive_blocking(ec);
    ASSERT_FALSE(ec);
    ASSERT_TRUE(v);
    ++seen[*v];
    int p = *v / per;
    EXPECT_LT(last[p], *v);  // each producer's items arrive in its order
    last[p] = *v;
  }
  for (auto& t : threads) t.join();
  for (int c : seen) EXPECT_EQ(c, 1);
  EXPECT_EQ(ch.try_receive(), std::nullopt);
}

TEST(Channel, TryReceiveManyTakesABatchAndRefillsFromWaitingSenders) {
  asio::io_context ioc;
  channel<int> ch(ioc.get_executor(), 2);
  int accepted = 0;
  for (int i = 0; i < 4; ++i)
    ch.async_send(i, [&](boost::system::error_code ec, std::optional<int>) {
      EXPECT_FALSE(ec);
      ++accepted;
    });
  ioc.poll();
  EXPECT_EQ(accepted, 2);
  std::vector<int> batch;
  EXPECT_EQ(ch.try_receive_many(batch, 10), 4u);  // two buffered + two refilled in the same step
  ioc.poll();
  EXPECT_EQ(accepted, 4);
  EXPECT_EQ(batch, (std::vector<int>{0, 1, 2, 3}));
}

// A reservation can fill the queue while its buffer is empty, so a receiver may wait while
// a sender waits for room. Each way that reserved slot frees must reach both of them.
namespace {
struct reservation_probe : tenorite::detail::send_waiter<int> {
  reservation_probe() : tenorite::detail::send_waiter<int>(nullptr, nullptr) { reservation = true; }
};

// The one slot held by a permit, a sender waiting for room, a receiver waiting for an item.
struct ChannelWithAPermitOnTheOnlySlot : ::testing::Test {
  asio::io_context ioc;
  channel<int> ch{ioc.get_executor(), 1};
  reservation_probe permit;
  bool sent = false;
  std::optional<int> got;

  void SetUp() override {
    ASSERT_EQ(ch.reserve_or_wait(&permit, true), send_status::sent);
    ch.async_send(2, [this](boost::system::error_code ec, std::optional<int>) { sent = !ec; });
    ch.async_receive([this](boost::system::error_code, std::optional<int> v) { got = v; });
    run();
    ASSERT_FALSE(sent);
    ASSERT_FALSE(got);
  }
  void run() {
    ioc.poll();
    ioc.restart();
  }
};
}  // namespace

TEST_F(ChannelWithAPermitOnTheOnlySlot, UsingItWhileAReceiverWaitsLetsTheWaitingSenderIn) {
  int v = 1;
  ASSERT_EQ(ch.send_reserved(v), send_status::sent);  // straight to the waiting receiver
  run();
  EXPECT_EQ(got, std::optional<int>(1));
  EXPECT_TRUE(sent);  // the slot the reserved value skipped went to the waiting sender
  EXPECT_EQ(ch.try_receive(), std::optional<int>(2));
}

TEST_F(ChannelWithAPermitOnTheOnlySlot, GivingItBackWhileAReceiverWaitsHandsTheWaitingSenderToIt) {
  ch.release_reservation();
  run();
  EXPECT_TRUE(sent);
  EXPECT_EQ(got, std::optional<int>(2));  // not left in the buffer beside a sleeping receiver
  EXPECT_EQ(ch.size(), 0u);
}

TEST(Channel, AFreedSlotFeedsEveryWaitingReceiverOfAPool) {
  asio::io_context ioc;
  channel<int> ch(ioc.get_executor(), 1);
  reservation_probe permit;
  ASSERT_EQ(ch.reserve_or_wait(&permit, true), send_status::sent);
  int sent = 0;
  for (int i = 2; i <= 3; ++i)
    ch.async_send(i, [&](boost::system::error_code ec, std::optional<int>) { sent += !ec; });
  std::vector<int> got;
  for (int k = 0; k < 3; ++k)
    ch.async_receive([&](boost::system::error_code, std::optional<int> v) {
      if (v) got.push_back(*v);
    });
  ioc.poll();
  ioc.restart();
  ASSERT_TRUE(got.empty());
  int v = 1;
  ASSERT_EQ(ch.send_reserved(v), send_status::sent);
  ioc.poll();
  ioc.restart();
  // Three receivers were waiting: the reserved value and both waiting senders reach them.
  EXPECT_EQ(sent, 2);
  EXPECT_EQ(got, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(ch.size(), 0u);
}
