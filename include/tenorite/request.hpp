// tenorite/request.hpp — what a worker receives: the caller's value and a one-shot responder.
//
// Invariants:
// - a responder answers at most once; a second send() throws std::logic_error;
// - a responder destroyed without answering completes its call with fetch_failure, so a
//   caller never waits for a reply that cannot come;
// - a responder is move-only; a moved-from responder is empty and answers nothing.
#pragma once

#include <expected>
#include <stdexcept>
#include <tenorite/error.hpp>
#include <tenorite/oneshot.hpp>
#include <utility>

namespace tenorite {

/// The worker's handle for answering one request (the original's oneshot sender).
template <class Req, class Resp, class Err>
class responder {
 public:
  /// What the caller receives.
  using result_type = std::expected<Resp, error<Req, Err>>;
  /// What the worker answers with: a response or its own error.
  using reply_type = std::expected<Resp, Err>;
  using slot_type = detail::reply_slot<result_type>;

  responder() noexcept = default;
  explicit responder(slot_type* slot) noexcept : slot_(slot) {}
  /// The responder of a fire-and-forget request (caller::notify): nobody waits for a reply.
  static responder for_notification() noexcept {
    responder r;
    r.notification_ = true;
    return r;
  }
  responder(responder&& o) noexcept
      : slot_(std::exchange(o.slot_, nullptr)), notification_(o.notification_) {}
  responder& operator=(responder&& o) noexcept {
    if (this != &o) {
      reset();
      slot_ = std::exchange(o.slot_, nullptr);
      notification_ = o.notification_;
    }
    return *this;
  }
  responder(const responder&) = delete;
  responder& operator=(const responder&) = delete;
  ~responder() { reset(); }

  /// Answers the call with a response or an error. Returns false when the caller is gone
  /// (it gave up: deadline or cancellation) or wants no reply (a notification).
  /// Throws std::logic_error if this responder has already answered (or is moved-from).
  bool send(reply_type reply) {
    if (notification_) return false;
    if (!slot_)
      throw std::logic_error(
          "tenorite::responder::send: this request has already been answered (a responder "
          "answers exactly once; a moved-from responder answers nothing)");
    slot_type* s = std::exchange(slot_, nullptr);
    if (reply) return s->complete(result_type(std::in_place, std::move(*reply)));
    return s->complete(
        result_type(std::unexpect, error<Req, Err>::service(std::move(reply.error()))));
  }

  /// False for a fire-and-forget request (caller::notify): answering it is harmless.
  bool wants_reply() const noexcept { return !notification_; }

  /// True when no one waits for the answer any more: the caller gave up (deadline, terminal
  /// cancellation), it was a notification, or it was already answered. A worker may skip
  /// the work.
  bool is_closed() const noexcept { return !slot_ || slot_->waiter_gone(); }

  /// True while the responder can still answer.
  bool can_answer() const noexcept { return slot_ != nullptr; }
  explicit operator bool() const noexcept { return slot_ != nullptr; }

  /// Library use: the request never reached a worker; hand it back as a send failure.
  void fail_undelivered(Req&& req) noexcept {
    if (slot_type* s = std::exchange(slot_, nullptr))
      s->complete(result_type(std::unexpect, error<Req, Err>::send_failure(std::move(req))));
  }

  /// Library use: which reply slot this responder completes.
  const slot_type* slot() const noexcept { return slot_; }
  /// Library use: forget the slot without completing it (the call was withdrawn).
  void release() noexcept { slot_ = nullptr; }

 private:
  void reset() noexcept {
    if (slot_type* s = std::exchange(slot_, nullptr))
      s->complete(result_type(std::unexpect, error<Req, Err>::fetch_failure()));
  }

  slot_type* slot_ = nullptr;
  bool notification_ = false;
};

/// One request as the worker sees it: `request` is the caller's value, `client` answers it.
template <class Req, class Resp, class Err>
struct request {
  using request_type = Req;
  using response_type = Resp;
  using error_type = Err;
  using responder_type = responder<Req, Resp, Err>;

  Req request;
  responder_type client;
};

}  // namespace tenorite
