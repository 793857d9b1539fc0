// SPDX-License-Identifier: BSL-1.0
// The call's state machine (detail/call_fsm.hpp) without an executor: every transition the
// responder side, the canceller and a worker's watch can make, one at a time, then the three
// racing on real threads with the counts checked (each call completed once, freed once, a
// registered watch fired or withdrawn once).
#include <atomic>
#include <barrier>
#include <cstdint>
#include <random>
#include <tenorite/detail/call_fsm.hpp>
#include <tenorite/detail/reply_slot.hpp>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace {

using tenorite::detail::call_fsm;
using tenorite::detail::closed_watch;
using step = call_fsm::answer_step;
using unpin_step = call_fsm::unpin_step;
using watch_step = call_fsm::watch_step;

struct counted_watch final : closed_watch {
  counted_watch() noexcept : closed_watch(&on_fire) {}
  static void on_fire(closed_watch* w) noexcept {
    static_cast<counted_watch*>(w)->fired.fetch_add(1, std::memory_order_relaxed);
  }
  std::atomic<int> fired{0};
};

TEST(CallFsm, AnAnswerWithNoCancellationRunningCompletesAtOnce) {
  call_fsm f;
  const auto a = f.answer(false);
  EXPECT_EQ(a.step, step::complete);
  EXPECT_EQ(a.watch, nullptr);
  EXPECT_EQ(f.load() & call_fsm::phase_mask, call_fsm::answered);
  EXPECT_FALSE(f.pin(true)) << "a cancellation after the answer must leave the call alone";
}

TEST(CallFsm, AnAnswerDuringACancellationIsParkedAndTheCancellerCompletesWithIt) {
  call_fsm f;
  ASSERT_TRUE(f.pin(false));
  EXPECT_FALSE(f.pin(false)) << "one cancellation at a time";
  EXPECT_EQ(f.answer(false).step, step::park_first);
  EXPECT_EQ(f.load() & call_fsm::phase_mask, call_fsm::pending) << "nothing changes yet";
  EXPECT_EQ(f.answer(true).step, step::parked);
  // The canceller wanted to give up, but the answer came first: it completes with it.
  EXPECT_FALSE(f.give_up().gave_up);
  const auto u = f.unpin();
  EXPECT_EQ(u.step, unpin_step::complete_parked);
  EXPECT_EQ(f.load(), call_fsm::answered);
}

TEST(CallFsm, ATerminalCancellationThatFindsTheCallPinnedIsHandedToThePinnedCanceller) {
  call_fsm f;
  ASSERT_TRUE(f.pin(false));  // a partial cancellation (the user's slot) holds the pin
  EXPECT_FALSE(f.pin(true)) << "the deadline's terminal cancellation, from another thread";
  EXPECT_FALSE(f.pin(true)) << "recorded once";
  EXPECT_EQ(f.unpin().step, unpin_step::retry_terminal) << "not lost when the partial one ends";
  EXPECT_TRUE(f.load() & call_fsm::pinned) << "still pinned for it";
  ASSERT_TRUE(f.give_up().gave_up);
  EXPECT_EQ(f.unpin().step, unpin_step::none);
  EXPECT_EQ(f.answer(false).step, step::free);

  call_fsm g;  // a partial one meanwhile is redundant: the pinned canceller does as much
  ASSERT_TRUE(g.pin(false));
  EXPECT_FALSE(g.pin(false));
  EXPECT_EQ(g.unpin().step, unpin_step::none);
  EXPECT_EQ(g.answer(false).step, step::complete);
}

TEST(CallFsm, AnAnswerStoredAfterTheCancellationEndedIsCompletedByTheResponder) {
  call_fsm f;
  ASSERT_TRUE(f.pin(true));
  EXPECT_EQ(f.answer(false).step, step::park_first);
  EXPECT_EQ(f.unpin().step, unpin_step::none);  // a partial cancellation: the call waits on
  EXPECT_EQ(f.answer(true).step, step::complete_stored);
}

TEST(CallFsm, AGiveUpWhileTheAnswerIsBeingStoredLeavesTheFreeingToTheCanceller) {
  call_fsm f;
  ASSERT_TRUE(f.pin(true));
  EXPECT_EQ(f.answer(false).step, step::park_first);
  ASSERT_TRUE(f.give_up().gave_up);
  EXPECT_EQ(f.answer(true).step, step::leave) << "the canceller still uses the call";
  EXPECT_EQ(f.unpin().step, unpin_step::free);
}

TEST(CallFsm, AnAnswerAfterAGiveUpFreesTheCall) {
  call_fsm f;
  ASSERT_TRUE(f.pin(true));
  ASSERT_TRUE(f.give_up().gave_up);
  EXPECT_EQ(f.unpin().step, unpin_step::none) << "the responder side frees it";
  EXPECT_FALSE(f.pin(true));
  EXPECT_EQ(f.answer(false).step, step::free);
}

TEST(CallFsm, AWithdrawnCallIsSettled) {
  call_fsm f;
  ASSERT_TRUE(f.pin(false));
  EXPECT_FALSE(f.pin(true)) << "a deadline while the call is being withdrawn";
  f.withdraw();
  EXPECT_EQ(f.load(), call_fsm::withdrawn);
  EXPECT_FALSE(f.pin(true));
  counted_watch w;
  EXPECT_EQ(f.watch(&w), watch_step::already_gone);
}

TEST(CallFsm, TheAnswerTakesTheRegisteredWatch) {
  call_fsm f;
  counted_watch w, second;
  EXPECT_EQ(f.watch(&w), watch_step::registered);
  EXPECT_EQ(f.watch(&second), watch_step::busy) << "one watch per call";
  EXPECT_FALSE(f.unwatch(&second));
  const auto a = f.answer(false);
  EXPECT_EQ(a.step, step::complete);
  EXPECT_EQ(a.watch, &w);
  EXPECT_FALSE(f.unwatch(&w)) << "taken: it fires, it cannot be withdrawn";
  EXPECT_EQ(f.watch(&second), watch_step::already_gone);
}

TEST(CallFsm, AGiveUpTakesTheWatchAndAnUnwatchedOneIsNotTaken) {
  call_fsm f;
  counted_watch w;
  EXPECT_EQ(f.watch(&w), watch_step::registered);
  EXPECT_TRUE(f.unwatch(&w));
  EXPECT_EQ(f.watch(&w), watch_step::registered) << "withdrawn, a watch may register again";
  ASSERT_TRUE(f.pin(true));
  const auto g = f.give_up();
  ASSERT_TRUE(g.gave_up);
  EXPECT_EQ(g.watch, &w);
  EXPECT_FALSE(f.unwatch(&w));
  EXPECT_EQ(f.unpin().step, unpin_step::none);
  EXPECT_EQ(f.answer(false).watch, nullptr) << "the watch is taken once";

  call_fsm g2;
  counted_watch w2;
  EXPECT_EQ(g2.watch(&w2), watch_step::registered);
  EXPECT_TRUE(g2.unwatch(&w2));
  ASSERT_TRUE(g2.pin(true));
  EXPECT_EQ(g2.give_up().watch, nullptr);
}

TEST(CallFsm, AParkedAnswerHandsTheWatchToTheCanceller) {
  call_fsm f;
  counted_watch w;
  ASSERT_TRUE(f.pin(true));
  EXPECT_EQ(f.watch(&w), watch_step::registered) << "a pinned call is still pending";
  EXPECT_EQ(f.answer(false).step, step::park_first);
  EXPECT_EQ(f.answer(true).step, step::parked);
  const auto u = f.unpin();
  EXPECT_EQ(u.step, unpin_step::complete_parked);
  EXPECT_EQ(u.watch, &w);
}

TEST(CallFsm, AResetBlockIsAFreshCall) {
  call_fsm f;
  counted_watch w;
  EXPECT_EQ(f.watch(&w), watch_step::registered);
  EXPECT_EQ(f.answer(false).step, step::complete);
  f.reset();
  EXPECT_EQ(f.load(), call_fsm::pending);
  EXPECT_EQ(f.watch(&w), watch_step::registered);
}

// The parties on real threads, many rounds, every choice random: counts in = counts out.
// Two cancellers (a user's slot and a deadline) race each other as well. In every other
// round the answer comes only after both cancellers are done: then a terminal cancellation
// must have made the call give up, whichever of the two emitted it.
TEST(CallFsm, TheRespondersTheCancellersAndTheWatchesRacingCompleteEachCallOnce) {
#if defined(__SANITIZE_THREAD__)
  constexpr int rounds = 3000;
#else
  constexpr int rounds = 20000;
#endif
  struct round_state {
    call_fsm f;
    counted_watch w;
    std::atomic<int> completed{0}, freed{0}, gave_up{0}, unwatched{0}, registered{0}, parked{0};
    std::atomic<bool> terminal{false};  // a terminal cancellation was emitted
    bool stored = false;  // the responder's answer lies in the call (written before parking)
  };
  std::vector<round_state> calls(rounds);
  std::barrier sync(4);
  auto answer_after_cancellers = [](std::size_t k) { return k % 2 == 1; };
  auto finish = [](round_state& c) {
    c.completed.fetch_add(1, std::memory_order_relaxed);
    c.freed.fetch_add(1, std::memory_order_relaxed);
  };
  auto fire = [](closed_watch* w) {
    if (w) w->fire(w);
  };
  // call_op::on_signal's protocol, with the queue left out (the request is delivered).
  auto cancel = [&](round_state& c, bool terminal) {
    if (terminal) c.terminal.store(true, std::memory_order_relaxed);
    if (!c.f.pin(terminal)) return;
    auto let_go = [&]() -> bool {  // true: still pinned for a terminal cancellation
      const auto u = c.f.unpin();
      if (u.step == unpin_step::retry_terminal) return true;
      if (u.step == unpin_step::complete_parked) {
        EXPECT_TRUE(c.stored) << "a parked answer is in the call";
        fire(u.watch);
        finish(c);
      } else if (u.step == unpin_step::free) {
        c.freed.fetch_add(1, std::memory_order_relaxed);
      }
      return false;
    };
    while (!terminal) {
      if (!let_go()) return;
      terminal = true;
    }
    const auto g = c.f.give_up();
    if (!g.gave_up) {
      let_go();
      return;
    }
    c.gave_up.fetch_add(1, std::memory_order_relaxed);
    c.completed.fetch_add(1, std::memory_order_relaxed);
    fire(g.watch);
    let_go();
  };
  std::thread responder([&] {
    for (std::size_t k = 0; k < calls.size(); ++k) {
      auto& c = calls[k];
      sync.arrive_and_wait();
      if (answer_after_cancellers(k)) sync.arrive_and_wait();
      auto a = c.f.answer(false);
      if (a.step == step::park_first) {
        c.stored = true;
        a = c.f.answer(true);
      }
      switch (a.step) {
        case step::complete:
        case step::complete_stored:
          fire(a.watch);
          finish(c);
          break;
        case step::free:
          c.freed.fetch_add(1, std::memory_order_relaxed);
          break;
        case step::parked:
          c.parked.fetch_add(1, std::memory_order_relaxed);
          break;
        default:  // leave: the canceller has it
          break;
      }
    }
  });
  auto canceller = [&](unsigned seed) {
    std::minstd_rand rng(seed);
    for (std::size_t k = 0; k < calls.size(); ++k) {
      auto& c = calls[k];
      const int choice = rng() % 3;  // none, partial, terminal
      sync.arrive_and_wait();
      if (choice != 0) cancel(c, choice == 2);
      if (answer_after_cancellers(k)) sync.arrive_and_wait();
    }
  };
  std::thread slot_emitter(canceller, 7u);
  std::thread deadline(canceller, 13u);
  std::minstd_rand rng(11);
  for (std::size_t k = 0; k < calls.size(); ++k) {
    auto& c = calls[k];
    const bool cancel_wait = rng() % 2;
    sync.arrive_and_wait();
    switch (c.f.watch(&c.w)) {
      case watch_step::registered:
        c.registered.fetch_add(1, std::memory_order_relaxed);
        if (cancel_wait && c.f.unwatch(&c.w)) c.unwatched.fetch_add(1, std::memory_order_relaxed);
        break;
      case watch_step::busy:
        ADD_FAILURE() << "only one watch registers here";
        break;
      default:
        break;
    }
    if (answer_after_cancellers(k)) sync.arrive_and_wait();
  }
  responder.join();
  slot_emitter.join();
  deadline.join();
  int gave_up = 0, watched = 0, parked = 0;
  for (std::size_t k = 0; k < calls.size(); ++k) {
    auto& c = calls[k];
    ASSERT_EQ(c.completed.load(), 1) << "call " << k;
    ASSERT_EQ(c.freed.load(), 1) << "call " << k;
    ASSERT_EQ(c.w.fired.load() + c.unwatched.load(), c.registered.load())
        << "a registered watch fires or is withdrawn, exactly once (call " << k << ")";
    if (answer_after_cancellers(k) && c.terminal.load()) {
      ASSERT_EQ(c.gave_up.load(), 1) << "a terminal cancellation was lost (call " << k << ")";
    }
    gave_up += c.gave_up.load();
    watched += c.w.fired.load();
    parked += c.parked.load();
  }
  // Not a timing claim: both outcomes exist in any long enough run of racing threads.
  RecordProperty("gave_up", gave_up);
  RecordProperty("watch_fired", watched);
  RecordProperty("parked", parked);
}

}  // namespace
