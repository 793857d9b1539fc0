// SPDX-License-Identifier: BSL-1.0
// tenorite/supervision.hpp — when a worker that throws is started again, and when not.
//
//   tenorite::service_options opts;
//   opts.restart = tenorite::restart_policy{.max_restarts = 3, .window = std::chrono::seconds(10),
//                                           .backoff = std::chrono::milliseconds(10)};
//   auto [task, caller] = kv_service{}.start(rt, opts, [] { return kv_config{}; });
//
// Invariants (of a supervised service):
// - callers' handles stay valid across restarts: the queue is the same one, so requests
//   queued while the worker was down are served by the next worker;
// - the request the worker held when it threw completes with fetch_failure; nothing else is
//   lost;
// - an abort is never restarted; a worker that returns normally is never restarted;
// - past the policy's limit the service ends as a panic whose exception is
//   restart_limit_reached (last_failure() holds what the last worker threw).
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tenorite {

/// Restart on exception, at most `max_restarts` times within any `window`, waiting
/// `backoff` before the first restart and `backoff_factor` times longer before each
/// consecutive one (capped at `max_backoff`).
///
/// `on_restart`, when set, is called on the worker's strand each time a failed worker is
/// about to be restarted (before the back-off), with what it threw and the number of this
/// restart (1 for the first). It is not called when the supervisor gives up: the join
/// outcome carries that (restart_limit_reached). It must not block; an exception it throws
/// is caught and dropped (the restart goes ahead).
struct restart_policy {
  using duration = std::chrono::steady_clock::duration;
  using restart_hook = std::function<void(const std::exception_ptr&, std::size_t restart_count)>;
  std::size_t max_restarts = 3;
  duration window = std::chrono::seconds(10);
  duration backoff = std::chrono::milliseconds(10);
  double backoff_factor = 2.0;
  duration max_backoff = std::chrono::seconds(1);
  restart_hook on_restart = nullptr;
};

/// The join outcome's exception when a supervised worker failed more often than its policy
/// allows.
class restart_limit_reached : public std::runtime_error {
 public:
  restart_limit_reached(std::size_t restarts, const std::exception_ptr& last)
      : std::runtime_error(describe(restarts, last)), restarts_(restarts), last_(last) {}
  /// Restarts made before giving up.
  std::size_t restarts() const noexcept { return restarts_; }
  /// What the last worker threw.
  const std::exception_ptr& last_failure() const noexcept { return last_; }

 private:
  static std::string describe(std::size_t restarts, const std::exception_ptr& last) {
    std::string what = "tenorite: the supervisor gave up after " + std::to_string(restarts) +
                       " restart(s) within the policy's window; the last worker threw: ";
    try {
      if (last) std::rethrow_exception(last);
      what += "(nothing)";
    } catch (const std::exception& e) {
      what += e.what();
    } catch (...) {
      what += "an exception not derived from std::exception";
    }
    return what;
  }
  std::size_t restarts_;
  std::exception_ptr last_;
};

namespace detail {

/// Applies a restart_policy to a stream of failures.
class restart_tracker {
 public:
  using clock = std::chrono::steady_clock;
  explicit restart_tracker(const std::optional<restart_policy>& p) : policy_(p) {}

  /// After a failure at `now`: the delay before the restart, or nothing (give up).
  std::optional<clock::duration> next(clock::time_point now) {
    if (!policy_) return std::nullopt;
    std::erase_if(recent_, [&](clock::time_point t) { return now - t > policy_->window; });
    if (recent_.size() >= policy_->max_restarts) return std::nullopt;
    double delay = static_cast<double>(policy_->backoff.count());
    for (std::size_t i = 0; i < recent_.size(); ++i) delay *= policy_->backoff_factor;
    const double cap = static_cast<double>(policy_->max_backoff.count());
    if (delay > cap) delay = cap;
    recent_.push_back(now);
    ++total_;
    return clock::duration(static_cast<clock::duration::rep>(delay));
  }
  bool supervised() const noexcept { return policy_.has_value(); }
  /// Tells the policy's on_restart hook about the restart next() just granted.
  void notify(const std::exception_ptr& failure) noexcept {
    if (!policy_ || !policy_->on_restart) return;
    try {
      policy_->on_restart(failure, total_);
    } catch (...) {  // a hook must not stop the restart it observes
    }
  }
  std::size_t restarts() const noexcept { return total_; }

 private:
  std::optional<restart_policy> policy_;
  // Failures within the window (a vector: nothing allocated until the first failure, which
  // matters for an idle service's footprint).
  std::vector<clock::time_point> recent_;
  std::size_t total_ = 0;
};

}  // namespace detail
}  // namespace tenorite
