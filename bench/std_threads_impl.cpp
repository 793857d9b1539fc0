// SPDX-License-Identifier: BSL-1.0
// bench/std_threads_impl.cpp — baseline: the standard library alone.
//
// A std::thread per worker, a mutex + condition-variable bounded queue (capacity 32),
// std::promise / std::future replies; callers are plain OS threads (s1: the main thread;
// s2: 64 threads). A shared guard closes the queue when the last caller goes. The 1000-caller
// s2 and every s5 figure are not run (NaN): that many OS threads is not a sensible design.
//
// A yardstick, written once plainly: do not tune it.
#include <cmath>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "kv_common.hpp"

namespace bench {
namespace {

struct envelope {
  kv_request request;
  std::promise<kv_result> reply;
};

class bounded_queue {
 public:
  explicit bounded_queue(std::size_t capacity) : capacity_(capacity) {}

  /// Waits while the queue is full; false when the queue is closed.
  bool push(envelope e) {
    std::unique_lock lk(m_);
    not_full_.wait(lk, [this] { return closed_ || q_.size() < capacity_; });
    if (closed_) return false;
    q_.push_back(std::move(e));
    lk.unlock();
    not_empty_.notify_one();
    return true;
  }

  /// Waits while the queue is empty; nullopt once it is closed and drained.
  std::optional<envelope> pop() {
    std::unique_lock lk(m_);
    not_empty_.wait(lk, [this] { return closed_ || !q_.empty(); });
    if (q_.empty()) return std::nullopt;
    envelope e = std::move(q_.front());
    q_.pop_front();
    lk.unlock();
    not_full_.notify_one();
    return e;
  }

  void close() {
    {
      std::lock_guard lk(m_);
      closed_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<envelope> q_;
  std::size_t capacity_;
  bool closed_ = false;
};

/// Closes the queue when the last caller copy goes.
struct queue_guard {
  explicit queue_guard(std::shared_ptr<bounded_queue> q) : queue(std::move(q)) {}
  queue_guard(const queue_guard&) = delete;
  queue_guard& operator=(const queue_guard&) = delete;
  ~queue_guard() { queue->close(); }
  std::shared_ptr<bounded_queue> queue;
};

struct kv_caller {
  std::shared_ptr<queue_guard> guard;

  kv_result call(kv_request request) const {
    std::promise<kv_result> reply;
    std::future<kv_result> result = reply.get_future();
    if (!guard->queue->push(envelope{std::move(request), std::move(reply)}))
      fail("std_threads: the queue is closed");
    return result.get();
  }
};

void worker(std::shared_ptr<bounded_queue> queue, kv_map map) {
  while (auto e = queue->pop()) e->reply.set_value(handle(map, std::move(e->request)));
}

struct service {
  kv_caller caller;
  std::thread thread;

  explicit service(kv_map map) {
    auto queue = std::make_shared<bounded_queue>(queue_capacity);
    thread = std::thread(worker, queue, std::move(map));
    caller.guard = std::make_shared<queue_guard>(std::move(queue));
  }
  /// Drops the caller and joins the worker.
  void stop() {
    caller = {};
    thread.join();
  }
};

// ---- s1 ----
double s1_echo(std::size_t warmup, std::size_t calls, std::uint64_t* samples) {
  service svc(initial_map());
  for (std::uint64_t i = 0; i < warmup; ++i) check_echo(i, response_or_fail(svc.caller.call(Echo{i})));
  const std::uint64_t t0 = now_ns();
  for (std::uint64_t i = 0; i < calls; ++i) {
    const std::uint64_t c0 = samples ? now_ns() : 0;
    kv_result r = svc.caller.call(Echo{i});
    if (samples) samples[i] = now_ns() - c0;
    check_echo(i, response_or_fail(r));
  }
  const double ns = static_cast<double>(now_ns() - t0);
  svc.stop();
  return ns;
}

// ---- s2 and s3: caller threads ----
void caller_thread(kv_caller caller, std::uint64_t j, std::size_t per, std::uint64_t* samples) {
  for (std::uint64_t i = 0; i < per; ++i) {
    const std::uint64_t n = i + j;
    const std::uint64_t c0 = samples ? now_ns() : 0;
    kv_result r = caller.call(kv_mix(n));
    if (samples) samples[i] = now_ns() - c0;
    check_kv(n, response_or_fail(r));
  }
}

double run_caller_threads(std::size_t callers, std::size_t per, std::uint64_t* samples) {
  service svc(initial_map());
  const std::uint64_t t0 = now_ns();
  {
    std::vector<std::jthread> pool;
    for (std::size_t j = 0; j < callers; ++j)
      pool.emplace_back(caller_thread, svc.caller, j, per, samples ? samples + j * per : nullptr);
  }
  const double ns = static_cast<double>(now_ns() - t0);
  svc.stop();
  return ns;
}

constexpr std::size_t max_caller_threads = 64;

double s2_kv(std::size_t callers, std::size_t per, std::uint64_t* samples) {
  if (callers > max_caller_threads) return std::numeric_limits<double>::quiet_NaN();
  return run_caller_threads(callers, per, samples);
}

double s3_blocking(std::size_t threads, std::size_t per) {
  return run_caller_threads(threads, per, nullptr);
}

// ---- s5: not run ----
s5_figures s5(std::size_t) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  return s5_figures{nan, nan, nan};
}

}  // namespace

impl std_threads_impl() { return impl{"std_threads", &s1_echo, &s2_kv, &s3_blocking, &s5}; }

}  // namespace bench
