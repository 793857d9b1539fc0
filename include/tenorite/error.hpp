// SPDX-License-Identifier: BSL-1.0
// tenorite/error.hpp — how a call or a worker can end without a value.
//
// error<Req, Err> is what a failed call yields. Its invariants:
// - kind() is exactly one error_kind for the whole life of the object;
// - request() holds the caller's request whenever the request was never delivered to a
//   worker (send_failure, bad_request, deadlock, and queue_full / timed_out / cancelled while
//   still queued), so no request is silently lost;
// - service_error() is valid only for error_kind::service_error.
//
// join_error is what a worker's join yields when the worker did not return normally.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace tenorite {

/// Why a call ended without a response.
enum class error_kind {
  send_failure,   ///< the worker is gone; the request comes back in error::request()
  fetch_failure,  ///< the worker took the request but dropped its responder unanswered
  service_error,  ///< the worker answered with an Error (error::service_error())
  queue_full,     ///< a try-form call found the queue full; the request comes back
  timed_out,      ///< the call's deadline passed
  cancelled,      ///< the call was cancelled
  deadlock,       ///< a worker called its own service and would have waited forever
  bad_request,    ///< the request cannot be served as it is (a remote service could not
                  ///< decode it, or it is larger than allowed); the request comes back
};

/// How many error_kind values there are (for tables indexed by kind).
inline constexpr std::size_t error_kind_count = 8;
static_assert(error_kind_count == static_cast<std::size_t>(error_kind::bad_request) + 1,
              "error_kind_count must follow the last error_kind");

/// A short lowercase name for an error_kind ("send_failure", ...).
constexpr const char* to_string(error_kind k) noexcept {
  switch (k) {
    case error_kind::send_failure:
      return "send_failure";
    case error_kind::fetch_failure:
      return "fetch_failure";
    case error_kind::service_error:
      return "service_error";
    case error_kind::queue_full:
      return "queue_full";
    case error_kind::timed_out:
      return "timed_out";
    case error_kind::cancelled:
      return "cancelled";
    case error_kind::deadlock:
      return "deadlock";
    case error_kind::bad_request:
      return "bad_request";
  }
  return "unknown";
}

/// The failure of one call to a service with request type Req and error type Err.
///
/// Req and Err may be move-only; error<Req, Err> is then move-only too.
template <class Req, class Err>
class error {
 public:
  using request_type = Req;
  using service_error_type = Err;

  /// The worker is gone; `req` is the undelivered request, handed back.
  static error send_failure(Req req) { return error(error_kind::send_failure, std::move(req)); }
  /// The worker is gone and the request was already consumed (not available).
  static error send_failure() { return error(error_kind::send_failure); }
  static error fetch_failure() { return error(error_kind::fetch_failure); }
  static error service(Err e) {
    error r(error_kind::service_error);
    r.service_error_.emplace(std::move(e));
    return r;
  }
  /// A service error with a reason for people (a remote service's code and sentence).
  static error service(Err e, const std::string& reason) {
    error r = service(std::move(e));
    r.reason_ = reason;
    return r;
  }
  /// A failure of another kind, with the request when it was never delivered.
  static error of_kind(error_kind k, std::optional<Req> req = std::nullopt) {
    error r(k);
    r.request_ = std::move(req);
    return r;
  }

  /// A failure with a reason for people: what a remote service reported, or why its reply
  /// could not be used (tenorite::nats). message() includes it.
  static error of_kind(error_kind k, std::optional<Req> req, const std::string& reason) {
    error r = of_kind(k, std::move(req));
    r.reason_ = reason;
    return r;
  }

  error_kind kind() const noexcept { return kind_; }

  /// Why, in more detail, when the failure carries a reason (remote calls); else empty.
  const std::string& reason() const noexcept { return reason_; }

  bool is_send_failure() const noexcept { return kind_ == error_kind::send_failure; }
  bool is_fetch_failure() const noexcept { return kind_ == error_kind::fetch_failure; }
  bool is_service_error() const noexcept { return kind_ == error_kind::service_error; }

  /// The worker's error. Throws std::logic_error when kind() is not service_error.
  Err& service_error() & { return checked_service_error(); }
  const Err& service_error() const& { return const_cast<error*>(this)->checked_service_error(); }
  Err&& service_error() && { return std::move(checked_service_error()); }

  /// The undelivered request, when the request never reached a worker.
  std::optional<Req>& request() & noexcept { return request_; }
  const std::optional<Req>& request() const& noexcept { return request_; }
  std::optional<Req>&& request() && noexcept { return std::move(request_); }

  /// A sentence for people: what happened and what the caller can do.
  std::string message() const {
    if (reason_.empty()) return kind_message();
    return kind_message() + " (" + reason_ + ")";
  }

 private:
  std::string kind_message() const {
    switch (kind_) {
      case error_kind::send_failure:
        return std::string(
                   "send failure: the service's worker is gone (it ended, threw or was "
                   "aborted); ") +
               (request_ ? "the request was not delivered and is returned in error::request()"
                         : "the request was not delivered");
      case error_kind::fetch_failure:
        return "fetch failure: the worker took the request but dropped its responder without "
               "answering";
      case error_kind::service_error:
        return "service error: the worker answered with an error (see error::service_error())";
      case error_kind::queue_full:
        return "queue full: the service's queue had no free slot; the request is returned in "
               "error::request()";
      case error_kind::timed_out:
        return std::string("timed out: the call's deadline passed") +
               (request_ ? " before the request was delivered; it is returned in error::request()"
                         : " after the worker took the request");
      case error_kind::cancelled:
        return std::string("cancelled: the call was cancelled") +
               (request_ ? " before the request was delivered; it is returned in error::request()"
                         : " after the worker took the request");
      case error_kind::deadlock:
        return "deadlock: a worker called its own service and would wait for itself forever; "
               "the request is returned in error::request()";
      case error_kind::bad_request:
        return "bad request: the request cannot be served as it is (it could not be decoded "
               "or is too large); it was not delivered and is returned in error::request()";
    }
    return "unknown error";
  }

  explicit error(error_kind k) : kind_(k) {}
  error(error_kind k, Req req) : kind_(k), request_(std::move(req)) {}

  Err& checked_service_error() {
    if (kind_ != error_kind::service_error || !service_error_)
      throw std::logic_error(std::string("tenorite::error::service_error() called on an error of "
                                         "kind ") +
                             to_string(kind_) + "; check kind() first");
    return *service_error_;
  }

  error_kind kind_;
  std::optional<Req> request_;
  std::optional<Err> service_error_;
  std::string reason_;
};

/// Why a join yielded no result: the worker threw (a panic), the worker was cancelled, or
/// only the wait was cancelled (the worker keeps running and can be joined again).
class join_error {
 public:
  static join_error panic(const std::exception_ptr& e) { return join_error(reason::panic, e); }
  static join_error cancelled() { return join_error(reason::cancelled, nullptr); }
  static join_error wait_cancelled() { return join_error(reason::wait_cancelled, nullptr); }

  /// The worker's task threw; exception() is what it threw.
  bool is_panic() const noexcept { return reason_ == reason::panic; }
  /// The worker was aborted (join_handle::abort or its runtime was destroyed).
  bool is_cancelled() const noexcept { return reason_ == reason::cancelled; }
  /// The async_join itself was cancelled (Asio per-operation cancellation) before the worker
  /// ended: the worker is untouched and its outcome is still there for a later join.
  bool is_wait_cancelled() const noexcept { return reason_ == reason::wait_cancelled; }
  /// The worker's exception (null unless is_panic()).
  const std::exception_ptr& exception() const noexcept { return exception_; }
  /// Rethrows the worker's exception; throws std::logic_error for a cancellation.
  [[noreturn]] void rethrow() const {
    if (exception_) std::rethrow_exception(exception_);
    throw std::logic_error(std::string("tenorite::join_error::rethrow(): ") + message() +
                           "; there is no exception to rethrow");
  }

  std::string message() const {
    switch (reason_) {
      case reason::cancelled:
        return "the worker was cancelled (aborted or its runtime was destroyed)";
      case reason::wait_cancelled:
        return "the wait for the worker was cancelled; the worker keeps running and can be "
               "joined again";
      case reason::panic:
        break;
    }
    try {
      std::rethrow_exception(exception_);
    } catch (const std::exception& e) {
      return std::string("the worker threw: ") + e.what();
    } catch (...) {
      return "the worker threw an exception not derived from std::exception";
    }
  }

 private:
  enum class reason : unsigned char { panic, cancelled, wait_cancelled };
  join_error(reason r, const std::exception_ptr& e) : reason_(r), exception_(e) {}
  reason reason_;
  std::exception_ptr exception_;
};

}  // namespace tenorite
