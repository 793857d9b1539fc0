// SPDX-License-Identifier: BSL-1.0
// tenorite/unhandled_exception.hpp — where exceptions nobody observes go.
//
// A worker that throws while no join handle will ever observe it (the handle was dropped,
// or dropped without joining), and an exception escaping a handler run by a tenorite
// runtime thread, are passed to one process-wide hook. The default prints to stderr; the
// runtime thread keeps running either way.
#pragma once

#include <exception>
#include <functional>
#include <iostream>
#include <mutex>
#include <utility>

namespace tenorite {

using unhandled_exception_handler = std::function<void(std::exception_ptr)>;

namespace detail {

inline void print_unhandled(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    std::cerr << "tenorite: unhandled exception: " << x.what() << '\n';
  } catch (...) {
    std::cerr << "tenorite: unhandled exception (not derived from std::exception)\n";
  }
}

struct unhandled_hook {
  std::mutex m;
  unhandled_exception_handler fn = &print_unhandled;
};

inline unhandled_hook& hook() {
  static unhandled_hook h;
  return h;
}

/// Passes `e` to the hook; a hook that throws is ignored (it must not take a thread down).
inline void report_unhandled(const std::exception_ptr& e) noexcept {
  unhandled_exception_handler fn;
  {
    std::lock_guard lk(hook().m);
    fn = hook().fn;
  }
  try {
    if (fn) fn(e);
  } catch (...) {
  }
}

}  // namespace detail

/// Sets the hook for exceptions no one observes; returns the previous hook. An empty
/// function silences them. Thread-safe.
inline unhandled_exception_handler set_unhandled_exception_handler(
    unhandled_exception_handler handler) {
  std::lock_guard lk(detail::hook().m);
  return std::exchange(detail::hook().fn, std::move(handler));
}

}  // namespace tenorite
