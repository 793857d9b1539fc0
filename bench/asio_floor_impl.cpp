// SPDX-License-Identifier: BSL-1.0
// bench/asio_floor_impl.cpp — the floor of any Asio-based design: no queue, no reply slot,
// no error type, only what two coroutines need to hand a value to each other.
//
// s1: a caller coroutine and a worker coroutine on the same 2-thread io_context ping-pong an
// Echo: each direction is one `post` of one parked completion handler
// (any_completion_handler). s5: the cheapest bare co_spawned coroutine parked the same way;
// its "first call" is one such round trip from one driver coroutine, its shutdown one more
// resumption that lets it return. s2 and s3 have no floor here (value=nan).
//
// A yardstick, written once plainly: do not tune it.
#include <atomic>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "kv_common.hpp"

namespace asio = boost::asio;

namespace bench {
namespace {

using handler = asio::any_completion_handler<void(std::uint64_t)>;

// The one executor everything runs on (both coroutines are on it).
asio::io_context::executor_type* the_executor = nullptr;

// Resumes a parked handler with `v`: one post.
void resume(handler& h, std::uint64_t v) {
  asio::post(*the_executor, [h = std::move(h), v]() mutable { std::move(h)(v); });
}

// One party's turn: park our own handler in `mine`, then resume the other side's (if any)
// with `v`. Parking first means the other side always finds our handler when it answers.
// `parked`, if given, is raised once our handler is in place (setup only).
[[gnu::noinline]] asio::awaitable<std::uint64_t> hand_over(handler* mine, handler* theirs,
                                                           std::uint64_t v,
                                                           std::atomic<bool>* parked = nullptr) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::uint64_t)>(
      [mine, theirs, v, parked](auto h) {
        // (Asio 1.26's move assignment of any_completion_handler wraps the source instead
        // of moving it: construct and swap.)
        handler(std::move(h)).swap(*mine);
        if (parked) parked->store(true);
        if (theirs) resume(*theirs, v);
      },
      asio::use_awaitable);
}

class runtime {
 public:
  runtime() : work_(asio::make_work_guard(ioc_)), ex_(ioc_.get_executor()) {
    the_executor = &ex_;
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }
  ~runtime() {
    work_.reset();
    for (auto& t : threads_) t.join();
  }
  asio::io_context::executor_type executor() { return ioc_.get_executor(); }

 private:
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  asio::io_context::executor_type ex_;
  std::vector<std::thread> threads_;
};

// ---- s1 ----
struct pair_state {
  handler worker, caller;
  std::atomic<bool> worker_parked{false};
};

constexpr std::uint64_t stop = std::numeric_limits<std::uint64_t>::max();

asio::awaitable<void> echo_worker(pair_state* p) {
  // The first turn only parks; each later one answers the value it was given.
  std::uint64_t v = co_await hand_over(&p->worker, nullptr, 0, &p->worker_parked);
  while (v != stop) v = co_await hand_over(&p->worker, &p->caller, v);
}

asio::awaitable<double> echo_caller(pair_state* p, std::size_t warmup, std::size_t calls,
                                    std::uint64_t* samples) {
  for (std::uint64_t i = 0; i < warmup; ++i) {
    const std::uint64_t r = co_await hand_over(&p->caller, &p->worker, i);
    if (r != i) fail("asio_floor: wrong echo");
  }
  const std::uint64_t t0 = now_ns();
  for (std::uint64_t i = 0; i < calls; ++i) {
    const std::uint64_t c0 = samples ? now_ns() : 0;
    const std::uint64_t r = co_await hand_over(&p->caller, &p->worker, i);
    if (samples) samples[i] = now_ns() - c0;
    if (r != i) fail("asio_floor: wrong echo");
  }
  const double ns = static_cast<double>(now_ns() - t0);
  resume(p->worker, stop);
  co_return ns;
}

double s1_echo(std::size_t warmup, std::size_t calls, std::uint64_t* samples) {
  runtime rt;
  pair_state p;
  auto done = asio::co_spawn(rt.executor(), echo_worker(&p), asio::use_future);
  while (!p.worker_parked.load()) std::this_thread::yield();  // setup only, not timed
  const double ns =
      asio::co_spawn(rt.executor(), echo_caller(&p, warmup, calls, samples), asio::use_future)
          .get();
  done.get();
  return ns;
}

double no_s2(std::size_t, std::size_t, std::uint64_t*) {
  return std::numeric_limits<double>::quiet_NaN();
}
double no_s3(std::size_t, std::size_t) { return std::numeric_limits<double>::quiet_NaN(); }

// ---- s5 ----
struct parked {
  handler self;
  std::atomic<bool> ready{false};
};

asio::awaitable<void> idle_coroutine(parked* p, handler* driver, std::atomic<std::size_t>* ended) {
  std::uint64_t v = co_await hand_over(&p->self, nullptr, 0, &p->ready);
  while (v != stop) v = co_await hand_over(&p->self, driver, v);
  ended->fetch_add(1);
}

asio::awaitable<void> first_calls(std::vector<parked>* all, handler* driver) {
  for (std::size_t i = 0; i < all->size(); ++i) {
    parked& p = (*all)[i];
    while (!p.ready.load()) co_await asio::post(asio::use_awaitable);
    const std::uint64_t r = co_await hand_over(driver, &p.self, i);
    if (r != i) fail("asio_floor: wrong echo");
  }
}

s5_figures s5(std::size_t count) {
  runtime rt;
  s5_figures f{};
  std::vector<parked> all(count);
  handler driver;
  std::atomic<std::size_t> ended{0};
  const double rss0 = rss_baseline();
  const std::uint64_t t0 = now_ns();
  for (std::size_t i = 0; i < count; ++i)
    asio::co_spawn(rt.executor(), idle_coroutine(&all[i], &driver, &ended), asio::detached);
  asio::co_spawn(rt.executor(), first_calls(&all, &driver), asio::use_future).get();
  const std::uint64_t t1 = now_ns();
  f.memory_bytes = rss_bytes() - rss0;
  f.start_and_first_call_ns = static_cast<double>(t1 - t0);

  const std::uint64_t t2 = now_ns();
  for (auto& p : all) resume(p.self, stop);
  while (ended.load() != count) std::this_thread::yield();
  f.shutdown_ns = static_cast<double>(now_ns() - t2);
  return f;
}

}  // namespace

impl asio_floor_impl() { return impl{"asio_floor", &s1_echo, &no_s2, &no_s3, &s5}; }

}  // namespace bench
