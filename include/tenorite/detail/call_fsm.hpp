// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/call_fsm.hpp — who completes a cancellable call, decided by one atomic word.
//
// A call that can give up (a deadline, a cancellation slot) has three parties that may act at
// the same time, each on its own thread:
//   - the responder side: the worker's answer, a dropped responder, or the queue handing an
//     undelivered request back (all of them "answer" here);
//   - the canceller: the caller's cancellation slot, which withdraws a queued request, or, for
//     a delivered one and a terminal cancellation, gives up waiting;
//   - the watch: a worker's responder::async_wait_closed, registered on the call.
// This type holds the word they arbitrate on and nothing else: it knows no executor, no queue
// and no handler, and its transitions are tested directly (tests/call_fsm_test.cpp) and
// modelled (tests/model/call.pml, watch.pml).
//
// The word: a phase and six flags.
//   phase   pending -> answered | gave_up | withdrawn, set once by exactly one party;
//   pinned  a cancellation is running on the call: while it is set the call's memory stays,
//           so an answer that arrives meanwhile is parked in the call (the canceller then
//           completes with it), and a responder that comes after a give-up leaves the freeing
//           to the canceller (responder_done);
//   claimed  a watch registers (or is registered): a second one is refused;
//   watching a watch is registered; whoever moves the phase off pending takes it and fires it;
//   parked  the answer lies in the call (phase answered, set while pinned);
//   responder_done  phase gave_up: the responder side came while the canceller was pinned;
//   terminal_requested  a terminal cancellation came while another cancellation held the
//           pin (two emitters on two threads: the user's slot and a deadline): the pinned
//           canceller acts on it before it lets go, so neither is lost.
//
// Invariants:
// - exactly one party moves the phase off pending, with one successful compare-exchange: that
//   party completes the handler (an answer, a withdrawal or a give-up), so it completes once;
// - the call's memory is freed by the last party: the answering side after a completion; after
//   a withdrawal the canceller (no responder is left); after a give-up whichever of the
//   responder side and the canceller's unpin comes second;
// - the canceller touches the call only between pin() and its unpin, and a pin succeeds only
//   while the phase is pending, so a cancellation that arrives after the completion reads this
//   word only (it lives in the cancellation block, which outlives the call);
// - a terminal cancellation that finds the call pinned is recorded, and unpin() hands it to
//   the pinned canceller (retry_terminal) instead of letting go;
// - a watch fires at most once: the flag is taken by the party that ends the phase, or cleared
//   by unwatch (then it never fires); a second watch while one is registered is refused.
// The common path (no cancellation while the call is pending) is one compare-exchange.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>

namespace tenorite::detail {

struct closed_watch;

class call_fsm {
 public:
  enum phase_t : std::uint32_t { pending = 0, answered = 1, gave_up = 2, withdrawn = 3 };
  static constexpr std::uint32_t phase_mask = 3;
  static constexpr std::uint32_t pinned = 1u << 2;
  static constexpr std::uint32_t watching = 1u << 3;
  static constexpr std::uint32_t parked = 1u << 4;
  static constexpr std::uint32_t responder_done = 1u << 5;
  static constexpr std::uint32_t claimed = 1u << 6;
  static constexpr std::uint32_t terminal_requested = 1u << 7;

  /// What the responder side does with its answer.
  enum class answer_step {
    complete,    ///< complete the handler with the answer, then free the call
    park_first,  ///< a cancellation is running: store the answer in the call, call answer(true)
    parked,      ///< the stored answer is the canceller's to complete with: touch nothing more
    complete_stored,  ///< the cancellation ended meanwhile: complete with the stored answer
    free,        ///< the caller gave up: drop the answer and free the call
    leave,       ///< the caller gave up while pinned: drop the answer, the canceller frees
  };
  struct answer_result {
    answer_step step;
    closed_watch* watch = nullptr;  ///< taken from the call: fire it (complete/_stored only)
  };

  /// What the canceller does once it no longer needs the call pinned.
  enum class unpin_step {
    none,             ///< nothing: the call stays pending, the responder side completes it
    retry_terminal,   ///< still pinned: a terminal cancellation came meanwhile; act on it
    complete_parked,  ///< an answer was parked meanwhile: complete with it, then free
    free,             ///< after a give-up, the responder side is done: free the call
  };
  struct unpin_result {
    unpin_step step;
    closed_watch* watch = nullptr;  ///< taken from the call (complete_parked): fire it
  };

  /// What a give-up did.
  struct give_up_result {
    bool gave_up;                   ///< false: an answer was parked first (see unpin)
    closed_watch* watch = nullptr;  ///< taken from the call: fire it
  };

  /// What registering a watch did.
  enum class watch_step { registered, already_gone, busy };

  call_fsm() noexcept = default;
  call_fsm(const call_fsm&) = delete;
  call_fsm& operator=(const call_fsm&) = delete;

  /// Back to a fresh pending call (a cached block reused).
  void reset() noexcept {
    word_.store(pending, std::memory_order_relaxed);
    watch_.store(nullptr, std::memory_order_relaxed);
  }

  std::uint32_t load() const noexcept { return word_.load(std::memory_order_acquire); }

  /// The responder side answers. `stored`: the answer is already in the call (after
  /// park_first, or when the caller keeps it there anyway).
  answer_result answer(bool stored) noexcept {
    std::uint32_t s = word_.load(std::memory_order_acquire);
    for (;;) {
      switch (s & phase_mask) {
        case pending:
          if (s & pinned) {
            if (!stored) return {answer_step::park_first};
            // The watch stays: the canceller takes it with the parked answer.
            const std::uint32_t n = answered | parked | (s & (pinned | watching));
            if (cas(s, n)) return {answer_step::parked};
            continue;
          }
          if (cas(s, answered))
            return {stored ? answer_step::complete_stored : answer_step::complete,
                    take_watch(s)};
          continue;
        case gave_up:
          if (s & pinned) {
            if (cas(s, s | responder_done)) return {answer_step::leave};
            continue;
          }
          return {answer_step::free};
        default:  // answered or withdrawn: a call is answered once, a withdrawn one never
          assert(false && "tenorite: a call answered twice");
          return {answer_step::leave};
      }
    }
  }

  /// A cancellation starts. True: the call is pinned (its memory stays until unpin, give_up's
  /// end or withdraw) and still pending. False: it is settled, or another cancellation holds
  /// the pin (a terminal one is then recorded for it); do nothing (the call may be gone).
  bool pin(bool terminal) noexcept {
    std::uint32_t s = word_.load(std::memory_order_acquire);
    while ((s & phase_mask) == pending) {
      if (!(s & pinned)) {
        if (cas(s, s | pinned)) return true;
        continue;
      }
      // Another cancellation holds the pin: it does as much as a partial one, and a terminal
      // one is recorded for it to act on.
      if (!terminal || (s & terminal_requested) || cas(s, s | terminal_requested)) return false;
    }
    return false;
  }

  /// The pinned canceller keeps the call waiting (the request is delivered and the
  /// cancellation not terminal, or the queue is handing it back).
  unpin_result unpin() noexcept {
    std::uint32_t s = word_.load(std::memory_order_acquire);
    for (;;) {
      assert(s & pinned);
      switch (s & phase_mask) {
        case answered:  // parked while pinned: this side completes with it now
          if (cas(s, answered)) return {unpin_step::complete_parked, take_watch(s)};
          continue;
        case gave_up:
          if (s & responder_done) {
            if (cas(s, gave_up | responder_done)) return {unpin_step::free};
          } else if (cas(s, gave_up)) {
            return {unpin_step::none};
          }
          continue;
        default:
          if (s & terminal_requested) {
            if (cas(s, s & ~terminal_requested)) return {unpin_step::retry_terminal};
          } else if (cas(s, s & ~pinned)) {
            return {unpin_step::none};
          }
          continue;
      }
    }
  }

  /// The pinned canceller took the request back out of the queue: no responder and no watch
  /// exist, the canceller completes and frees the call.
  void withdraw() noexcept {
    [[maybe_unused]] const std::uint32_t s =
        word_.exchange(withdrawn, std::memory_order_acq_rel);
    // A terminal cancellation recorded meanwhile is answered by the withdrawal itself.
    assert((s & ~terminal_requested) == (pending | pinned) &&
           "tenorite: a withdrawn call had a responder side");
  }

  /// The call's start failed before the request was queued (no memory): it goes with the
  /// exception, and a cancellation emitted later finds it settled. No canceller can hold the
  /// pin yet (a slot is emitted on the initiator's executor, after the initiation).
  void abandon() noexcept { word_.store(withdrawn, std::memory_order_release); }

  /// The pinned canceller gives up on a delivered call (terminal cancellation). On success
  /// the call stays pinned: move what is needed out of it, fire the returned watch, then
  /// unpin() (which says whether this side frees it) and complete the handler.
  give_up_result give_up() noexcept {
    std::uint32_t s = word_.load(std::memory_order_acquire);
    for (;;) {
      assert(s & pinned);
      if ((s & phase_mask) != pending) return {false};  // an answer was parked first
      if (cas(s, gave_up | pinned)) return {true, take_watch(s)};
    }
  }

  /// A worker waits for the caller to give up. The registration is claimed in the word
  /// first (a second one, from any thread, is refused as busy), the pointer written, then
  /// published with `watching`.
  watch_step watch(closed_watch* w) noexcept {
    std::uint32_t s = word_.load(std::memory_order_acquire);
    for (;;) {
      if ((s & phase_mask) != pending) return watch_step::already_gone;
      if (s & claimed) return watch_step::busy;
      if (cas(s, s | claimed)) break;
    }
    watch_.store(w, std::memory_order_relaxed);  // published by the exchange below
    s |= claimed;
    for (;;) {
      // The phase ended meanwhile: nobody took this watch, and nobody registers any more
      // (the claim may stay).
      if ((s & phase_mask) != pending) return watch_step::already_gone;
      if (cas(s, s | watching)) return watch_step::registered;
    }
  }

  /// The worker's wait is cancelled. True: `w` was registered and will never fire. False:
  /// it was taken (it fires, or fired) or was not registered. One exchange clears the flag
  /// and the claim: once it succeeds nothing fires and the call may be freed at once, so
  /// nothing here touches the word afterwards.
  bool unwatch(closed_watch* w) noexcept {
    std::uint32_t s = word_.load(std::memory_order_acquire);
    while ((s & watching) && watch_.load(std::memory_order_relaxed) == w)
      if (cas(s, s & ~(watching | claimed))) return true;
    return false;
  }

 private:
  bool cas(std::uint32_t& expected, std::uint32_t desired) noexcept {
    return word_.compare_exchange_weak(expected, desired, std::memory_order_acq_rel,
                                       std::memory_order_acquire);
  }
  // After the compare-exchange that cleared `watching` (and moved the phase on): the pointer
  // is stable (only a registration writes it, and none succeeds once the phase has moved).
  closed_watch* take_watch(std::uint32_t before) const noexcept {
    return (before & watching) ? watch_.load(std::memory_order_acquire) : nullptr;
  }

  std::atomic<std::uint32_t> word_{pending};
  std::atomic<closed_watch*> watch_{nullptr};  // written by the watch holding `claimed`
};

}  // namespace tenorite::detail
