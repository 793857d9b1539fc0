// tenorite/receiver.hpp — the worker's end of a service's queue.
//
// Invariants:
// - recv() yields requests in the order the queue accepted them;
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
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tenorite/channel.hpp>
#include <utility>

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

  /// False for a moved-from or default-constructed receiver.
  explicit operator bool() const noexcept { return static_cast<bool>(ch_); }

 private:
  channel<T>& checked(const char* what) const {
    if (!ch_)
      throw std::logic_error(std::string("tenorite::receiver::") + what +
                             ": empty receiver (moved-from or default-constructed)");
    return *ch_;
  }

  std::shared_ptr<channel<T>> ch_;
};

}  // namespace tenorite
