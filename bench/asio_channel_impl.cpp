// SPDX-License-Identifier: BSL-1.0
// bench/asio_channel_impl.cpp — baseline: what a C++ developer hand-rolls on Boost.Asio.
//
// The worker is a co_spawned coroutine looping on an experimental::concurrent_channel of
// capacity 32; each call creates a concurrent_channel of capacity 1 for its reply and
// co_awaits it; blocking callers use use_future; a shared guard closes the request channel
// when the last caller goes. An io_context run by 2 threads is the runtime.
//
// A yardstick, written once plainly: do not tune it.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/system/error_code.hpp>
#include <exception>
#include <future>
#include <latch>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "kv_common.hpp"

namespace asio = boost::asio;

namespace bench {
namespace {

using reply_channel =
    asio::experimental::concurrent_channel<void(boost::system::error_code, kv_result)>;

struct envelope {
  kv_request request;
  std::shared_ptr<reply_channel> reply;
};

using request_channel =
    asio::experimental::concurrent_channel<void(boost::system::error_code, envelope)>;

/// Closes the request channel when the last caller copy goes.
struct channel_guard {
  explicit channel_guard(std::shared_ptr<request_channel> c) : channel(std::move(c)) {}
  channel_guard(const channel_guard&) = delete;
  channel_guard& operator=(const channel_guard&) = delete;
  ~channel_guard() { channel->close(); }
  std::shared_ptr<request_channel> channel;
};

struct kv_caller {
  std::shared_ptr<channel_guard> guard;
};

/// The runtime: an io_context run by 2 threads.
class runtime {
 public:
  runtime() : work_(asio::make_work_guard(ioc_)) {
    for (std::size_t i = 0; i < runtime_threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }
  ~runtime() {
    work_.reset();
    for (auto& t : threads_) t.join();
  }
  asio::io_context::executor_type executor() { return ioc_.get_executor(); }

 private:
  asio::io_context ioc_{static_cast<int>(runtime_threads)};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

asio::awaitable<void> worker(std::shared_ptr<request_channel> channel, kv_map map) {
  for (;;) {
    auto [ec, env] = co_await channel->async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) break;  // closed: every caller is gone
    env.reply->try_send(boost::system::error_code(), handle(map, std::move(env.request)));
  }
}

struct service {
  kv_caller caller;
  std::future<void> done;
};

service start(runtime& rt, kv_map map) {
  auto channel = std::make_shared<request_channel>(rt.executor(), queue_capacity);
  std::future<void> done = asio::co_spawn(rt.executor(), worker(channel, std::move(map)),
                                          asio::use_future);
  return service{kv_caller{std::make_shared<channel_guard>(std::move(channel))}, std::move(done)};
}

asio::awaitable<kv_result> call(const kv_caller& caller, kv_request request) {
  auto executor = co_await asio::this_coro::executor;
  auto reply = std::make_shared<reply_channel>(executor, 1);
  envelope env{std::move(request), reply};
  boost::system::error_code no_error;
  co_await caller.guard->channel->async_send(no_error, std::move(env), asio::use_awaitable);
  kv_result result = co_await reply->async_receive(asio::use_awaitable);
  co_return result;
}

kv_result call_blocking(runtime& rt, const kv_caller& caller, kv_request request) {
  auto reply = std::make_shared<reply_channel>(rt.executor(), 1);
  envelope env{std::move(request), reply};
  caller.guard->channel->async_send(boost::system::error_code(), std::move(env), asio::use_future)
      .get();
  return reply->async_receive(asio::use_future).get();
}

void check_joined(std::future<void>& done) {
  try {
    done.get();
  } catch (...) {
    fail("asio_channel worker threw");
  }
}

// ---- s1 ----
asio::awaitable<double> s1_loop(kv_caller caller, std::size_t warmup, std::size_t calls,
                                std::uint64_t* samples) {
  for (std::uint64_t i = 0; i < warmup; ++i) {
    kv_request req = Echo{i};
    kv_result r = co_await call(caller, std::move(req));
    check_echo(i, response_or_fail(r));
  }
  const std::uint64_t t0 = now_ns();
  for (std::uint64_t i = 0; i < calls; ++i) {
    kv_request req = Echo{i};
    const std::uint64_t c0 = samples ? now_ns() : 0;
    kv_result r = co_await call(caller, std::move(req));
    if (samples) samples[i] = now_ns() - c0;
    check_echo(i, response_or_fail(r));
  }
  co_return static_cast<double>(now_ns() - t0);
}

double s1_echo(std::size_t warmup, std::size_t calls, std::uint64_t* samples) {
  runtime rt;
  service svc = start(rt, initial_map());
  const double ns =
      asio::co_spawn(rt.executor(), s1_loop(svc.caller, warmup, calls, samples), asio::use_future)
          .get();
  svc.caller = {};
  check_joined(svc.done);
  return ns;
}

// ---- s2 ----
asio::awaitable<void> s2_caller(kv_caller caller, std::uint64_t j, std::size_t per,
                                std::uint64_t* samples) {
  for (std::uint64_t i = 0; i < per; ++i) {
    const std::uint64_t n = i + j;
    kv_request req = kv_mix(n);
    const std::uint64_t c0 = samples ? now_ns() : 0;
    kv_result r = co_await call(caller, std::move(req));
    if (samples) samples[i] = now_ns() - c0;
    check_kv(n, response_or_fail(r));
  }
}

double s2_kv(std::size_t callers, std::size_t per, std::uint64_t* samples) {
  runtime rt;
  service svc = start(rt, initial_map());
  std::latch done(static_cast<std::ptrdiff_t>(callers));
  const std::uint64_t t0 = now_ns();
  for (std::size_t j = 0; j < callers; ++j) {
    asio::co_spawn(rt.executor(),
                   s2_caller(svc.caller, j, per, samples ? samples + j * per : nullptr),
                   [&done](std::exception_ptr e) {
                     if (e) fail("an asio_channel caller coroutine threw");
                     done.count_down();
                   });
  }
  done.wait();
  const double ns = static_cast<double>(now_ns() - t0);
  svc.caller = {};
  check_joined(svc.done);
  return ns;
}

// ---- s3 ----
void s3_thread(runtime* rt, const kv_caller* caller, std::uint64_t j, std::size_t per) {
  for (std::uint64_t i = 0; i < per; ++i) {
    const std::uint64_t n = i + j;
    kv_result r = call_blocking(*rt, *caller, kv_mix(n));
    check_kv(n, response_or_fail(r));
  }
}

double s3_blocking(std::size_t threads, std::size_t per) {
  runtime rt;
  service svc = start(rt, initial_map());
  const std::uint64_t t0 = now_ns();
  {
    std::vector<std::jthread> pool;
    for (std::size_t j = 0; j < threads; ++j)
      pool.emplace_back(s3_thread, &rt, &svc.caller, j, per);
  }
  const double ns = static_cast<double>(now_ns() - t0);
  svc.caller = {};
  check_joined(svc.done);
  return ns;
}

// ---- s5 ----
asio::awaitable<void> s5_calls(const std::vector<kv_caller>* callers) {
  for (std::uint64_t i = 0; i < callers->size(); ++i) {
    kv_request req = Echo{i};
    kv_result r = co_await call((*callers)[i], std::move(req));
    check_echo(i, response_or_fail(r));
  }
}

s5_figures s5(std::size_t count) {
  runtime rt;
  s5_figures f{};
  const double rss0 = rss_baseline();
  const std::uint64_t t0 = now_ns();
  std::vector<std::future<void>> tasks;
  std::vector<kv_caller> callers;
  tasks.reserve(count);
  callers.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    service svc = start(rt, kv_map{});
    tasks.push_back(std::move(svc.done));
    callers.push_back(std::move(svc.caller));
  }
  asio::co_spawn(rt.executor(), s5_calls(&callers), asio::use_future).get();
  const std::uint64_t t1 = now_ns();
  f.memory_bytes = rss_bytes() - rss0;
  f.start_and_first_call_ns = static_cast<double>(t1 - t0);

  const std::uint64_t t2 = now_ns();
  callers.clear();
  for (auto& task : tasks) check_joined(task);
  tasks.clear();
  f.shutdown_ns = static_cast<double>(now_ns() - t2);
  return f;
}

}  // namespace

impl asio_channel_impl() { return impl{"asio_channel", &s1_echo, &s2_kv, &s3_blocking, &s5}; }

}  // namespace bench
