// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/slots.hpp — the slot accounting of a bounded queue, apart from its values.
//
// A queue of capacity N has N slots. A slot is held by a stored value (ring.hpp) or by a
// reservation (a permit: a slot now, its value later); a sender that finds none waits here,
// in FIFO order, as a value to place or as a reservation to grant. As in Tokio's bounded
// mpsc, a send is a reservation and its commit: `send_reserved` commits, a dropped permit
// releases.
//
// Invariants (under the queue's lock, which the queue holds around every call):
// - stored + reserved <= capacity, except for an item given back at the front (a late
//   cancelled receive), which may sit above it for a while;
// - a sender waits only while stored + reserved == capacity (has_room is false): a freed
//   slot goes to the oldest waiting sender before anything else may take it;
// - grant() is the one place that decides who gets a free slot: the queue calls it whenever
//   a slot frees (a value taken, withdrawn, committed straight to a receiver, a reservation
//   released) and places what it returns (a value: into the ring, or to a waiting receiver;
//   a reservation: counted here);
// - a sender is linked here until granted, withdrawn, or taken by close (then `returned`).
#pragma once

#include <cstddef>
#include <tenorite/detail/waiters.hpp>

namespace tenorite::detail {

template <class T>
class slot_ledger {
 public:
  explicit slot_ledger(std::size_t capacity) noexcept : capacity_(capacity) {}

  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t reserved() const noexcept { return reserved_; }
  bool has_waiting() const noexcept { return !waiting_.empty(); }

  /// A slot is free for a new value or reservation (`stored`: the values in the ring).
  bool has_room(std::size_t stored) const noexcept { return stored + reserved_ < capacity_; }

  /// Takes a free slot for a reservation; false when there is none.
  bool try_reserve(std::size_t stored) noexcept {
    if (!has_room(stored)) return false;
    ++reserved_;
    return true;
  }
  /// A reservation's value arrives: the slot now holds it (or it went straight to a
  /// receiver and the slot is free: then the queue calls grant()).
  void commit() noexcept { --reserved_; }
  /// A reservation given back unused: the slot is free (the queue calls grant()).
  void release() noexcept { --reserved_; }

  /// Parks a sender that found no room.
  void wait(send_waiter<T>* s) noexcept { waiting_.push_back(s); }
  /// Unparks a waiting sender; false if it was granted or taken already.
  bool withdraw(send_waiter<T>* s) noexcept {
    if (!s->linked) return false;
    waiting_.unlink(s);
    return true;
  }

  /// The oldest waiting sender, if a slot is free for it: a reservation is granted its slot
  /// here; a value's slot is the queue's to fill (ring or receiver). Null: no room, or nobody
  /// waits.
  send_waiter<T>* grant(std::size_t stored) noexcept {
    if (!has_room(stored)) return nullptr;
    send_waiter<T>* s = waiting_.pop_front();
    if (s && s->reservation) ++reserved_;
    return s;
  }

  /// Puts a granted sender back first in line: the queue could not place its value (no
  /// memory to grow the ring). It waits on for the next freed slot; nothing is lost.
  void regrant_later(send_waiter<T>* s) noexcept { waiting_.push_front(s); }

  /// The queue closes: every waiting sender is taken (marked returned: its value goes back
  /// to it), and reservations no longer count.
  fifo<send_waiter<T>> close() noexcept {
    reserved_ = 0;
    fifo<send_waiter<T>> out = waiting_.take();
    for (auto* n = out.head; n; n = n->next) n->returned = true;
    return out;
  }
  /// Unparks every waiting sender for which `pred(s)` is true (an execution context going
  /// away takes its operations).
  template <class Pred>
  void withdraw_if(Pred&& pred) noexcept {
    for (send_waiter<T>* s = waiting_.head; s;) {
      send_waiter<T>* next = s->next;
      if (pred(s)) waiting_.unlink(s);
      s = next;
    }
  }
  /// Takes the waiting senders without marking them (the queue is being destroyed).
  fifo<send_waiter<T>> take_waiting() noexcept { return waiting_.take(); }

 private:
  std::size_t capacity_;
  std::size_t reserved_ = 0;
  fifo<send_waiter<T>> waiting_;
};

}  // namespace tenorite::detail
