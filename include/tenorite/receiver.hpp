// SPDX-License-Identifier: BSL-1.0
// tenorite/receiver.hpp — the worker's end of a service's queue.
//
// Invariants:
// - recv() yields requests in the order the queue accepted them (with one worker; in a pool
//   the workers share that order, and a request given back by one worker's late-cancelled
//   receive may reach another worker after a newer one);
// - it yields an empty optional only once every caller is gone (or the service was closed)
//   and the queue is drained: a request that was accepted is always received;
// - after the service's join_handle::abort(), recv() throws boost::system::system_error
//   (operation_aborted), every time.
//
// Example (a worker's loop):
//   while (auto r = co_await receiver.recv()) {
//     r->client.send(handle(r->request));
//   }
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tenorite/channel.hpp>
#include <utility>
#include <vector>

namespace tenorite {

template <class T>
class receiver {
 public:
  using value_type = T;

  receiver() noexcept = default;
  explicit receiver(std::shared_ptr<channel<T>> ch) noexcept : ch_(std::move(ch)) {}
  receiver(receiver&&) noexcept = default;
  receiver& operator=(receiver&&) noexcept = default;
  receiver(const receiver&) = delete;
  receiver& operator=(const receiver&) = delete;

  /// Receives the next request with any completion token; signature
  /// void(boost::system::error_code, std::optional<T>).
  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_recv(Token&& token = {}) {
    return checked("async_recv").async_receive(std::forward<Token>(token));
  }

  /// co_await receiver.recv(): the next request, or an empty optional at the end.
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<std::optional<T>> recv() {
    return async_recv(boost::asio::use_awaitable);
  }

  /// The next request if one is queued now (never waits).
  std::optional<T> try_recv() { return checked("try_recv").try_receive(); }

  /// Waits for at least one request, then takes up to `limit` queued requests at once,
  /// appending them to `out` (which must outlive the operation). Completes with
  /// (error_code, std::size_t): how many were appended; 0 means the end of the queue (as
  /// recv()'s empty optional), or `limit` was 0. operation_aborted after an abort or a
  /// cancellation (then nothing was taken).
  template <class Token = boost::asio::default_completion_token_t<boost::asio::any_io_executor>>
  TENORITE_AWAITABLE_ENTRY auto async_recv_many(std::vector<T>& out, std::size_t limit,
                                                Token&& token = {}) {
    auto& ch = checked("async_recv_many");
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        recv_many_op{&ch, &out, limit}, token, ch.get_executor());
  }

  /// co_await receiver.recv_many(buffer, limit): as async_recv_many; throws like recv().
  TENORITE_AWAITABLE_ENTRY boost::asio::awaitable<std::size_t> recv_many(std::vector<T>& out,
                                                                         std::size_t limit) {
    return async_recv_many(out, limit, boost::asio::use_awaitable);
  }

  /// Worker-side graceful drain: later calls fail with send_failure (request returned), the
  /// requests already queued are still received, then recv() yields the end.
  void close() { checked("close").close_for_send(); }

  /// False for a moved-from or default-constructed receiver.
  explicit operator bool() const noexcept { return static_cast<bool>(ch_); }

 private:
  struct recv_many_op {
    channel<T>* ch;
    std::vector<T>* out;
    std::size_t limit;
    std::size_t taken = 0;
    bool started = false;

    // Start: take what is queued now (completing through a post, never inside the
    // initiating call), or wait for the first request.
    template <class Self>
    void operator()(Self& self) {
      if (started) return self.complete(boost::system::error_code(), taken);
      started = true;
      if (limit > 0) taken = ch->try_receive_many(*out, limit);
      if (taken > 0 || limit == 0) return boost::asio::post(std::move(self));
      ch->async_receive(std::move(self));
    }

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec, std::optional<T> first) {
      if (ec || !first) return self.complete(ec, 0);
      out->push_back(std::move(*first));
      self.complete(ec, 1 + ch->try_receive_many(*out, limit - 1));
    }
  };

  channel<T>& checked(const char* what) const {
    if (!ch_)
      throw std::logic_error(std::string("tenorite::receiver::") + what +
                             ": empty receiver (moved-from or default-constructed)");
    return *ch_;
  }

  std::shared_ptr<channel<T>> ch_;
};

}  // namespace tenorite
