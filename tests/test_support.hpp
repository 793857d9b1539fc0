// SPDX-License-Identifier: BSL-1.0
// Shared pieces of tenorite's tests: small services and a gate that holds a worker still.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <future>
#include <memory>
#include <string>
#include <tenorite/tenorite.hpp>

namespace test {

namespace asio = boost::asio;

/// A one-way signal a worker coroutine can wait on: the test opens it from a plain thread.
class gate {
 public:
  explicit gate(asio::any_io_executor ex) : ch_(std::make_shared<tenorite::channel<int>>(ex, 1)) {}
  void open() {
    int v = 1;
    ch_->try_send(v);
  }
  asio::awaitable<void> wait() const {
    auto ch = ch_;
    co_await ch->async_receive(asio::use_awaitable);
  }

 private:
  std::shared_ptr<tenorite::channel<int>> ch_;
};

// Clang (seen with 16) may reuse a thread-local's address after a coroutine resumed on
// another thread, and Asio reads a thread-local when it starts an awaitable operation: tests
// start their own Asio operations through these out-of-line helpers (see the README).
template <class Timer>
[[gnu::noinline]] asio::awaitable<void> wait_on(Timer& timer) {
  return timer.async_wait(asio::use_awaitable);
}
[[gnu::noinline]] inline asio::awaitable<void> yield_now() {
  return asio::post(asio::use_awaitable);
}
template <class A, class B>
[[gnu::noinline]] auto race(asio::awaitable<A> a, asio::awaitable<B> b) {
  using namespace asio::experimental::awaitable_operators;
  return std::move(a) || std::move(b);
}

// ---- the echo service: doubles non-negative numbers, fails on negative ones ----
struct echo_config {
  std::shared_ptr<gate> before_first_recv;      // wait on it before receiving anything
  std::shared_ptr<std::promise<void>> started;  // set when the worker runs
};

using echo_request = tenorite::request<int, int, std::string>;

struct echo_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, echo_config cfg) {
    if (cfg.started) cfg.started->set_value();
    if (cfg.before_first_recv) co_await cfg.before_first_recv->wait();
    while (auto r = co_await rx.recv()) {
      if (r->request < 0) {
        r->client.send(std::unexpected("negative: " + std::to_string(r->request)));
      } else {
        r->client.send(r->request * 2);
      }
    }
  }
};

using echo_service = tenorite::service<int, int, std::string, echo_worker, echo_config>;
using echo_caller = echo_service::caller_type;
using echo_result = echo_caller::result_type;

}  // namespace test
