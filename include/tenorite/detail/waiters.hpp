// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/waiters.hpp — the nodes a channel links: an intrusive FIFO (fifo), a
// sender waiting for room (send_waiter) and a receiver waiting for an item (recv_waiter).
// Each node is owned by the operation that contains it; the channel only links it, under
// its lock, and completes what it unlinks after unlocking (channel.hpp).
#pragma once

#include <boost/asio/execution_context.hpp>
#include <boost/system/error_code.hpp>
#include <tenorite/detail/inbox.hpp>
#include <cstddef>
#include <optional>
#include <utility>

namespace tenorite::detail {

/// The node after `n` (a recv_waiter's link is its inbox_node's).
template <class N>
N* next_of(N* n) noexcept {
  return static_cast<N*>(n->next);
}

template <class N>
struct fifo {
  N* head = nullptr;
  N* tail = nullptr;

  bool empty() const noexcept { return head == nullptr; }
  void push_back(N* n) noexcept {
    n->next = nullptr;
    n->prev = tail;
    if (tail)
      tail->next = n;
    else
      head = n;
    tail = n;
    n->linked = true;
  }
  void push_front(N* n) noexcept {
    n->prev = nullptr;
    n->next = head;
    if (head)
      head->prev = n;
    else
      tail = n;
    head = n;
    n->linked = true;
  }
  N* pop_front() noexcept {
    N* n = head;
    if (n) unlink(n);
    return n;
  }
  void unlink(N* n) noexcept {
    N* next = next_of(n);
    if (n->prev)
      n->prev->next = next;
    else
      head = next;
    if (next)
      next->prev = n->prev;
    else
      tail = n->prev;
    n->next = nullptr;
    n->prev = nullptr;
    n->linked = false;
  }
  // Hands the whole list over (under the channel's lock); its nodes count as unlinked from
  // here on, so a concurrent withdraw leaves them alone.
  fifo take() noexcept {
    fifo r = *this;
    for (N* n = head; n; n = next_of(n)) n->linked = false;
    head = tail = nullptr;
    return r;
  }
  // Visits a taken list outside the lock. It writes nothing to the nodes (withdraw may read
  // their `linked` flag concurrently) and reads each next pointer before `f`, which may free
  // the node.
  template <class F>
  void drain(F f) noexcept {
    for (N* n = std::exchange(head, nullptr); n;) {
      N* next = next_of(n);
      f(n);
      n = next;
    }
    tail = nullptr;
  }
};

/// A sender waiting for room. When the channel accepts the value it moves `value` out and,
/// if `on_accepted` is set, calls it (after unlocking; a node without `on_accepted` may be
/// gone by then, so it is read under the lock). On close it leaves `value` in place and calls
/// on_closed(node): the owner takes its value back.
template <class T>
struct send_waiter {
  using notify_fn = void (*)(send_waiter*) noexcept;
  send_waiter(notify_fn accepted, notify_fn closed) noexcept
      : on_accepted(accepted), on_closed(closed) {}
  std::optional<T> value;  // empty for a reservation (a slot without a value yet)
  bool reservation = false;
  bool returned = false;  // close() took it to hand its value back (set under the lock)
  notify_fn on_accepted;
  notify_fn on_closed;
  // Set for operations whose handler runs on an execution context: when that context shuts
  // down, the channel hands the operation to destroy(op) instead of keeping it forever.
  const boost::asio::execution_context* context = nullptr;
  void (*destroy_fn)(void*) noexcept = nullptr;
  send_waiter* next = nullptr;
  send_waiter* prev = nullptr;
  bool linked = false;
};

/// A receiver waiting for an item: ready(node, ec, item) hands over an item, the end of the
/// stream (empty optional), or an error (operation_aborted after abort_receivers).
///
/// It is also an inbox node (inbox.hpp), unlinked from the channel first: `next` links it in
/// whichever list holds it, and `fn(node, false)` frees it without running it (its execution
/// context shuts down); `fn(node, true)` ends it with the end of the stream from the inbox.
/// A node with a null `fn` (a blocking receive) is never put in an inbox nor collected.
template <class T>
struct recv_waiter : inbox_node {
  using ready_fn = void (*)(recv_waiter*, boost::system::error_code, std::optional<T>&&) noexcept;
  explicit recv_waiter(ready_fn f, fn_type dispose = nullptr) noexcept
      : inbox_node(dispose), ready(f) {}
  ready_fn ready;
  const boost::asio::execution_context* context = nullptr;
  recv_waiter* prev = nullptr;
  bool linked = false;
};

}  // namespace tenorite::detail
