// SPDX-License-Identifier: BSL-1.0
// The console on a small system under a steady load: the kv service, a pool of resizers, a
// sharded set of counters and a supervised service that crashes now and then.
//
//   console [--port N] [--seconds S]
//
// It prints "console: http://127.0.0.1:N/" once the console listens, then serves until S
// seconds have passed (0, the default: until it is killed). Open the address in a browser.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <tenorite/console.hpp>
#include <tenorite/tenorite.hpp>

#include "../kv_service/kv.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

// A pool: resizes "images" (sleeps a little on its worker thread's strand, as real work would).
struct resize_handler {
  int handle(int pixels) {
    volatile long spin = 0;
    for (int i = 0; i < pixels * 50; ++i) spin = spin + i;
    return pixels / 2;
  }
};
using resize_service = tenorite::handler_service<int, int, std::string, resize_handler>;

// A sharded set: each shard counts the keys routed to it.
struct count_handler {
  long total = 0;
  long handle(long n) { return total += n; }
};
using count_service = tenorite::handler_service<long, long, std::string, count_handler>;

// Supervised: every 97th request makes it throw; the supervisor restarts it.
struct flaky_handler {
  int handled = 0;
  int handle(int v) {
    if (++handled % 97 == 0)
      throw std::runtime_error("flaky: lost its connection at request " + std::to_string(v));
    return v;
  }
};
using flaky_service = tenorite::handler_service<int, int, std::string, flaky_handler>;

[[gnu::noinline]] asio::awaitable<void> pause(asio::steady_timer& t,
                                              std::chrono::milliseconds d) {
  t.expires_after(d);
  return t.async_wait(asio::use_awaitable);
}

int main(int argc, char** argv) {
  unsigned short port = 0;
  long seconds = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--port" && i + 1 < argc) {
      port = static_cast<unsigned short>(std::strtoul(argv[++i], nullptr, 10));
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::strtol(argv[++i], nullptr, 10);
    } else {
      std::cerr << "usage: console [--port N] [--seconds S]\n";
      return 2;
    }
  }

  tenorite::runtime rt(2);
  tenorite::service_options opts;
  opts.metrics = true;

  opts.name = "kv";
  auto [kv_task, kv] = kv::service{}.start(rt, opts, kv::config{});

  opts.name = "resize";
  opts.workers = 3;
  opts.queue_size = 16;
  auto [resize_task, resize] = resize_service{}.start(rt, opts, resize_handler{});

  opts.name = "counters";
  opts.workers = 1;
  opts.queue_size = 32;
  auto [count_tasks, counters] = tenorite::start_sharded(
      count_service{}, rt, 3, opts, count_handler{},
      [](const long& n) { return static_cast<std::size_t>(n); });

  opts.name = "flaky";
  tenorite::restart_policy policy;
  policy.max_restarts = 1000000;
  policy.window = 1s;
  policy.backoff = 200ms;
  policy.on_restart = [](const std::exception_ptr& e, std::size_t n) {
    std::cout << "flaky restarted (" << n << "): "
              << tenorite::detail::describe_exception(e) << std::endl;
  };
  opts.restart = policy;
  auto [flaky_task, flaky] = flaky_service{}.start(rt, opts, [] { return flaky_handler{}; });

  // The console and the load run on a context of their own (the services on the runtime).
  asio::io_context ioc;
  auto console = tenorite::console::serve(ioc.get_executor(), port);
  std::cout << "console: " << console.url() << std::endl;

  // A steady load: each client calls its service in a loop, a few hundred times a second.
  auto client = [&](auto call, std::chrono::milliseconds every) -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor);
    for (long i = 0;; ++i) {
      co_await call(i);
      co_await pause(t, every);
    }
  };
  asio::co_spawn(ioc, client([&](long i) -> asio::awaitable<void> {
    const std::string key = "k" + std::to_string(i % 50);
    kv::request set = kv::set{key, std::to_string(i)};
    co_await kv.send_request(std::move(set));
    kv::request get = kv::get{key};
    co_await kv.send_request(std::move(get));
    if (i % 25 == 0) {  // a bad key now and then: a service error in the figures
      kv::request bad = kv::get{"bad key"};
      co_await kv.send_request(std::move(bad));
    }
  }, 3ms), asio::detached);
  for (int c = 0; c < 4; ++c)
    asio::co_spawn(ioc, client([&](long i) -> asio::awaitable<void> {
      co_await resize.send_request(static_cast<int>(100 + i % 400));
    }, 2ms), asio::detached);
  asio::co_spawn(ioc, client([&](long i) -> asio::awaitable<void> {
    co_await counters.send_request(i);
  }, 1ms), asio::detached);
  asio::co_spawn(ioc, client([&](long i) -> asio::awaitable<void> {
    co_await flaky.send_request(static_cast<int>(i));
  }, 5ms), asio::detached);

  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { ioc.stop(); });
  asio::steady_timer deadline(ioc);
  if (seconds > 0) {
    deadline.expires_after(std::chrono::seconds(seconds));
    deadline.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) ioc.stop();
    });
  }
  ioc.run();
  console.stop();
  std::cout << "console: stopped" << std::endl;
  return 0;
}
