// tenorite/caller.hpp — the client's handle on a service.
//
// Invariants:
// - every call completes exactly once: with the worker's response, or with an error that
//   carries the request back whenever it was never delivered;
// - a caller is a cheap copyable handle; every send form is const and safe to use on one
//   shared instance from many threads;
// - the service's queue stays open while at least one caller copy exists (weak_caller does
//   not count); when the last copy goes, the worker drains the queue and then sees the end;
// - a moved-from or default-constructed caller is empty: using it throws std::logic_error.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <expected>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tenorite/channel.hpp>
#include <tenorite/detail/completion.hpp>
#include <tenorite/error.hpp>
#include <tenorite/join_handle.hpp>
#include <tenorite/oneshot.hpp>
#include <tenorite/request.hpp>
#include <tenorite/runtime.hpp>
#include <utility>

namespace tenorite {

namespace detail {

/// Everything one service shares between its callers and its worker.
template <class Req, class Resp, class Err>
class service_state final : public abortable {
 public:
  using item_type = request<Req, Resp, Err>;
  using result_type = std::expected<Resp, error<Req, Err>>;
  using responder_type = responder<Req, Resp, Err>;

  service_state(boost::asio::any_io_executor ex, std::size_t queue_size)
      : chan(std::move(ex), queue_size) {}

  channel<item_type> chan;

  void abort_receivers() noexcept override {
    chan.abort_receivers(boost::asio::error::operation_aborted);
  }

  /// Closes the queue for good; every request still queued goes back to its caller.
  void close_and_return_queued() noexcept {
    chan.close([](item_type&& it) { it.client.fail_undelivered(std::move(it.request)); });
  }

  template <class Handler>
  void initiate_call(Handler handler, Req req) {
    auto* op = new_op<call_op<Handler>>(handler, chan.get_executor());
    op->value.emplace(item_type{std::move(req), responder_type(op)});
    initiation_scope scope(op);
    if (chan.send_or_wait(op) == send_status::closed) op->on_closed(op);
  }

  result_type call_blocking(Req req) {
    struct node final : send_waiter<item_type> {
      node() : send_waiter<item_type>(nullptr, &return_request) {}
    } n;
    blocking_reply<result_type> reply;
    n.value.emplace(item_type{std::move(req), responder_type(&reply)});
    if (chan.send_or_wait(&n) == send_status::closed) return_request(&n);
    return reply.wait();
  }

 private:
  // The channel handed the undelivered request back: complete the call with send_failure.
  static void return_request(send_waiter<item_type>* n) noexcept {
    item_type item(std::move(*n->value));
    n->value.reset();
    item.client.fail_undelivered(std::move(item.request));
  }

  // One in-flight call: its place in the queue (while waiting for room) and its reply slot.
  template <class Handler>
  struct call_op final : reply_slot<result_type>, send_waiter<item_type> {
    call_op(Handler&& h, const boost::asio::any_io_executor& fallback)
        : reply_slot<result_type>(&on_complete),
          send_waiter<item_type>(nullptr, &return_request),
          executor(tracked_executor(h, fallback)),
          handler(std::move(h)) {}

    static void on_complete(reply_slot<result_type>* s, result_type&& r) noexcept {
      auto* self = static_cast<call_op*>(s);
      Handler h(std::move(self->handler));
      auto ex = std::move(self->executor);
      const bool immediate = initiating_op() == self;
      delete_op(self);
      complete_on<Handler>(
          ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); },
          immediate);
    }

    tracked_executor_t<Handler, boost::asio::any_io_executor> executor;
    Handler handler;
  };
};

/// Shared by every copy of one caller; its destruction is "the last caller is gone".
template <class Req, class Resp, class Err>
struct caller_core {
  explicit caller_core(std::shared_ptr<service_state<Req, Resp, Err>> s) noexcept
      : state(std::move(s)) {}
  caller_core(const caller_core&) = delete;
  caller_core& operator=(const caller_core&) = delete;
  ~caller_core() { state->chan.mark_no_senders(); }
  std::shared_ptr<service_state<Req, Resp, Err>> state;
};

}  // namespace detail

template <class Req, class Resp, class Err>
class weak_caller;

/// A handle for calling a service: `co_await caller.send_request(req)`.
///
/// Req, Resp and Err must be move-constructible (they may be move-only). The request is
/// taken by value and comes back inside the error whenever it was not delivered.
template <class Req, class Resp, class Err>
class caller {
 public:
  using request_type = Req;
  using response_type = Resp;
  using error_type = error<Req, Err>;
  using result_type = std::expected<Resp, error<Req, Err>>;
  /// Completion signature of async_send_request.
  using signature = void(result_type);

  /// An empty caller (using it throws std::logic_error).
  caller() noexcept = default;
  caller(const caller&) = default;
  caller& operator=(const caller&) = default;
  caller(caller&& o) noexcept : core_(std::move(o.core_)) {}
  caller& operator=(caller&& o) noexcept {
    core_ = std::move(o.core_);
    return *this;
  }

  /// Sends a request and waits for the reply, with any completion token (use_awaitable,
  /// a callback, use_future, deferred...). Completes once with result_type.
  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_send_request(Req req, Token&& token = {}) const {
    auto* st = checked("async_send_request");
    return boost::asio::async_initiate<Token, signature>(
        [st](auto handler, Req r) { st->initiate_call(std::move(handler), std::move(r)); }, token,
        std::move(req));
  }

  /// co_await caller.send_request(req) inside a boost::asio::awaitable coroutine.
  ///
  /// GCC 12 destroys an aggregate temporary built inside a co_await expression twice: build
  /// the request in a named variable first, then `co_await caller.send_request(std::move(r))`.
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<result_type> send_request(Req req) const {
    return async_send_request(std::move(req), boost::asio::use_awaitable);
  }

  /// Sends and blocks the calling thread until the reply. Throws std::logic_error on a thread
  /// of a tenorite runtime (it would stall the runtime); use send_request there.
  result_type send_request_blocking(Req req) const {
    auto* st = checked("send_request_blocking");
    detail::check_blocking_allowed("tenorite::caller::send_request_blocking");
    return st->call_blocking(std::move(req));
  }

  /// True when the service can no longer take calls (its worker has ended).
  bool is_closed() const { return checked("is_closed")->chan.is_closed(); }

  /// A handle that does not keep the service alive (see weak_caller).
  weak_caller<Req, Resp, Err> weak() const;

  /// False for an empty (moved-from or default-constructed) caller.
  explicit operator bool() const noexcept { return static_cast<bool>(core_); }

 private:
  template <class, class, class, class, class, class>
  friend class service;
  friend class weak_caller<Req, Resp, Err>;

  explicit caller(std::shared_ptr<detail::caller_core<Req, Resp, Err>> core) noexcept
      : core_(std::move(core)) {}

  detail::service_state<Req, Resp, Err>* checked(const char* what) const {
    if (!core_)
      throw std::logic_error(std::string("tenorite::caller::") + what +
                             ": this caller is empty (moved-from or default-constructed); use a "
                             "copy of a live caller");
    return core_->state.get();
  }

  std::shared_ptr<detail::caller_core<Req, Resp, Err>> core_;
};

/// A caller that does not keep its service's queue open: for a worker (or a registry) that
/// holds a handle on its own service. lock() gives a caller while one still exists.
template <class Req, class Resp, class Err>
class weak_caller {
 public:
  weak_caller() noexcept = default;
  std::optional<caller<Req, Resp, Err>> lock() const {
    if (auto core = core_.lock()) return caller<Req, Resp, Err>(std::move(core));
    return std::nullopt;
  }
  bool expired() const noexcept { return core_.expired(); }

 private:
  friend class caller<Req, Resp, Err>;
  explicit weak_caller(std::weak_ptr<detail::caller_core<Req, Resp, Err>> c) noexcept
      : core_(std::move(c)) {}
  std::weak_ptr<detail::caller_core<Req, Resp, Err>> core_;
};

template <class Req, class Resp, class Err>
weak_caller<Req, Resp, Err> caller<Req, Resp, Err>::weak() const {
  checked("weak");
  return weak_caller<Req, Resp, Err>(core_);
}

}  // namespace tenorite
