// SPDX-License-Identifier: BSL-1.0
// bench/tenorite_impl.cpp — the scenarios on tenorite: a tenorite::runtime of 2 threads, the
// worker and the caller coroutines on it. Two ways to write the kv worker, each an impl:
// `tenorite` is a handler_service (a handler object with a plain handle(): the library runs
// its loop, without a coroutine), `tenorite_task` the original's hand-written coroutine loop
// over a receiver.
//
// Requests are built in named variables before co_await (GCC 12 destroys an aggregate
// temporary inside a co_await expression twice); coroutines are free functions with
// parameters, never capturing lambdas.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <cmath>
#include <exception>
#include <latch>
#include <tenorite/tenorite.hpp>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "kv_common.hpp"

namespace asio = boost::asio;

namespace bench {
namespace {

struct kv_config {
  kv_map initial;
};

struct kv_worker {
  static asio::awaitable<void> task(
      tenorite::receiver<tenorite::request<kv_request, kv_response, kv_error>> receiver,
      kv_config config) {
    kv_map map = std::move(config.initial);
    while (auto r = co_await receiver.recv()) {
      r->client.send(handle(map, std::move(r->request)));
    }
  }
};
using task_service = tenorite::service<kv_request, kv_response, kv_error, kv_worker, kv_config>;

struct kv_handler {
  kv_map map;
  kv_result handle(kv_request req) { return bench::handle(map, std::move(req)); }
};
using handler_service = tenorite::handler_service<kv_request, kv_response, kv_error, kv_handler>;

kv_config config_for(task_service, kv_map m) {
  return kv_config{std::move(m)};
}
kv_handler config_for(handler_service, kv_map m) {
  return kv_handler{std::move(m)};
}

// Both services have the same caller type.
using kv_caller = task_service::caller_type;
static_assert(std::is_same_v<kv_caller, handler_service::caller_type>);

const kv_response& ok_or_fail(const kv_caller::result_type& r) {
  if (!r) fail("tenorite call failed: " + r.error().message());
  return *r;
}

// ---- s1 ----
asio::awaitable<double> s1_loop(kv_caller caller, std::size_t warmup, std::size_t calls,
                                std::uint64_t* samples) {
  for (std::uint64_t i = 0; i < warmup; ++i) {
    kv_request req = Echo{i};
    auto r = co_await caller.send_request(std::move(req));
    check_echo(i, ok_or_fail(r));
  }
  const std::uint64_t t0 = now_ns();
  for (std::uint64_t i = 0; i < calls; ++i) {
    kv_request req = Echo{i};
    const std::uint64_t c0 = samples ? now_ns() : 0;
    auto r = co_await caller.send_request(std::move(req));
    if (samples) samples[i] = now_ns() - c0;
    check_echo(i, ok_or_fail(r));
  }
  co_return static_cast<double>(now_ns() - t0);
}

template <class Service>
double s1_echo(std::size_t warmup, std::size_t calls, std::uint64_t* samples) {
  tenorite::runtime rt(runtime_threads);
  Service service;
  auto [task, caller] = service.start_task(rt, queue_capacity, config_for(service, initial_map()));
  const double ns = rt.block_on(s1_loop(caller, warmup, calls, samples));
  caller = {};
  if (!task.wait()) fail("tenorite worker did not end cleanly");
  return ns;
}

// ---- s2 ----
asio::awaitable<void> s2_caller(kv_caller caller, std::uint64_t j, std::size_t per,
                                std::uint64_t* samples) {
  for (std::uint64_t i = 0; i < per; ++i) {
    const std::uint64_t n = i + j;
    kv_request req = kv_mix(n);
    const std::uint64_t c0 = samples ? now_ns() : 0;
    auto r = co_await caller.send_request(std::move(req));
    if (samples) samples[i] = now_ns() - c0;
    check_kv(n, ok_or_fail(r));
  }
}

template <class Service>
double s2_kv(std::size_t callers, std::size_t per, std::uint64_t* samples) {
  tenorite::runtime rt(runtime_threads);
  Service service;
  auto [task, caller] = service.start_task(rt, queue_capacity, config_for(service, initial_map()));
  std::latch done(static_cast<std::ptrdiff_t>(callers));
  const std::uint64_t t0 = now_ns();
  for (std::size_t j = 0; j < callers; ++j) {
    asio::co_spawn(rt.executor(), s2_caller(caller, j, per, samples ? samples + j * per : nullptr),
                   [&done](std::exception_ptr e) {
                     if (e) fail("a tenorite caller coroutine threw");
                     done.count_down();
                   });
  }
  done.wait();
  const double ns = static_cast<double>(now_ns() - t0);
  caller = {};
  if (!task.wait()) fail("tenorite worker did not end cleanly");
  return ns;
}

// ---- s3 ----
void s3_thread(const kv_caller* caller, std::uint64_t j, std::size_t per) {
  for (std::uint64_t i = 0; i < per; ++i) {
    const std::uint64_t n = i + j;
    auto r = caller->send_request_blocking(kv_mix(n));
    check_kv(n, ok_or_fail(r));
  }
}

template <class Service>
double s3_blocking(std::size_t threads, std::size_t per) {
  tenorite::runtime rt(runtime_threads);
  Service service;
  auto [task, caller] = service.start_task(rt, queue_capacity, config_for(service, initial_map()));
  const std::uint64_t t0 = now_ns();
  {
    std::vector<std::jthread> pool;
    for (std::size_t j = 0; j < threads; ++j) pool.emplace_back(s3_thread, &caller, j, per);
  }
  const double ns = static_cast<double>(now_ns() - t0);
  caller = {};
  if (!task.wait()) fail("tenorite worker did not end cleanly");
  return ns;
}

// ---- s5 ----
asio::awaitable<void> s5_calls(const std::vector<kv_caller>* callers) {
  for (std::uint64_t i = 0; i < callers->size(); ++i) {
    kv_request req = Echo{i};
    auto r = co_await (*callers)[i].send_request(std::move(req));
    check_echo(i, ok_or_fail(r));
  }
}

template <class Service>
s5_figures s5(std::size_t count) {
  tenorite::runtime rt(runtime_threads);
  Service service;
  s5_figures f{};
  const double rss0 = rss_baseline();
  const std::uint64_t t0 = now_ns();
  std::vector<tenorite::join_handle<void>> tasks;
  std::vector<kv_caller> callers;
  tasks.reserve(count);
  callers.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    auto [task, caller] = service.start_task(rt, queue_capacity, config_for(service, {}));
    tasks.push_back(std::move(task));
    callers.push_back(std::move(caller));
  }
  rt.block_on(s5_calls(&callers));
  const std::uint64_t t1 = now_ns();
  f.memory_bytes = rss_bytes() - rss0;
  f.start_and_first_call_ns = static_cast<double>(t1 - t0);

  const std::uint64_t t2 = now_ns();
  callers.clear();
  for (auto& task : tasks) {
    if (!task.wait()) fail("tenorite worker did not end cleanly");
  }
  tasks.clear();
  f.shutdown_ns = static_cast<double>(now_ns() - t2);
  return f;
}

}  // namespace

impl tenorite_impl() {
  return impl{"tenorite", &s1_echo<handler_service>, &s2_kv<handler_service>,
              &s3_blocking<handler_service>, &s5<handler_service>};
}
impl tenorite_task_impl() {
  return impl{"tenorite_task", &s1_echo<task_service>, &s2_kv<task_service>,
              &s3_blocking<task_service>, &s5<task_service>};
}

}  // namespace bench
