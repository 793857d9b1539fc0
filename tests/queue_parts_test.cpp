// SPDX-License-Identifier: BSL-1.0
// The two parts of a queue, without a channel, a lock or an executor: the value storage
// (detail/ring.hpp) and the slot accounting (detail/slots.hpp).
#include <optional>
#include <stdexcept>
#include <string>
#include <tenorite/detail/ring.hpp>
#include <tenorite/detail/slots.hpp>
#include <vector>

#include <gtest/gtest.h>

namespace {

using tenorite::detail::ring;
using tenorite::detail::send_waiter;
using tenorite::detail::slot_ledger;

std::vector<int> contents(ring<int>& r) {
  std::vector<int> out;
  r.for_each([&out](int v) { out.push_back(v); });
  return out;
}

TEST(Ring, KeepsItemsOldestFirstAcrossWrapAndGrowth) {
  ring<int> r;
  EXPECT_TRUE(r.empty());
  for (int i = 0; i < 3; ++i) r.push_back(int(i), 16);
  int got = -1;
  r.pop_front([&got](int&& v) { got = v; });
  EXPECT_EQ(got, 0);
  for (int i = 3; i < 10; ++i) r.push_back(int(i), 16);  // wraps, then grows 4 -> 8 -> 16
  EXPECT_EQ(contents(r), (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  r.push_front(0, 16);
  EXPECT_EQ(r.size(), 10u);
  EXPECT_EQ(r[0], 0);
  EXPECT_EQ(r[9], 9);
}

TEST(Ring, AnItemGivenBackMaySitAboveTheCapacity) {
  ring<int> r;
  r.push_back(1, 1);
  r.push_front(0, 1);  // a late-cancelled receive's item goes back in front
  EXPECT_EQ(contents(r), (std::vector<int>{0, 1}));
}

TEST(Ring, RemovesTheFirstMatchKeepingTheOrderOfTheOthers) {
  ring<std::string> r;
  for (const char* s : {"a", "b", "c", "b"}) r.push_back(std::string(s), 8);
  auto got = r.remove_first([](const std::string& s) { return s == "b"; });
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "b");
  EXPECT_FALSE(r.remove_first([](const std::string& s) { return s == "z"; }));
  std::vector<std::string> rest;
  r.drain([&rest](std::string&& s) { rest.push_back(std::move(s)); });
  EXPECT_EQ(rest, (std::vector<std::string>{"a", "c", "b"}));
  EXPECT_TRUE(r.empty());
}

TEST(Ring, APutThatThrowsLeavesTheItemFirst) {
  ring<int> r;
  r.push_back(1, 4);
  r.push_back(2, 4);
  EXPECT_THROW(r.pop_front([](int&&) { throw std::runtime_error("full"); }), std::runtime_error);
  EXPECT_EQ(contents(r), (std::vector<int>{1, 2}));
}

// A move that may throw: growing then copies (move_if_noexcept), and a copy that throws
// leaves the ring as it was: the same items, alive, nothing leaked or destroyed twice.
struct fragile {
  static inline int copies_left = 1000;
  static inline int live = 0;
  int v;
  explicit fragile(int x) : v(x) { ++live; }
  fragile(fragile&& o) noexcept(false) : v(o.v) {
    o.v = -1;
    ++live;
  }
  fragile(const fragile& o) : v(o.v) {
    if (--copies_left < 0) throw std::runtime_error("copy");
    ++live;
  }
  fragile& operator=(fragile&&) = default;
  ~fragile() {
    v = -2;
    --live;
  }
};

TEST(Ring, GrowingThatFailsLeavesTheRingAsItWas) {
  {
    ring<fragile> r;
    for (int i = 0; i < 4; ++i) r.push_back(fragile(i), 16);  // fills the first block of 4
    EXPECT_EQ(fragile::live, 4);
    fragile::copies_left = 2;  // the third copy throws
    {
      fragile next(4);
      EXPECT_THROW(r.push_back(std::move(next), 16), std::runtime_error);
      EXPECT_EQ(next.v, 4) << "not moved from when the push fails";
    }
    fragile::copies_left = 1000;
    EXPECT_EQ(fragile::live, 4) << "the partial copies were destroyed, the items were not";
    ASSERT_EQ(r.size(), 4u);
    for (std::size_t k = 0; k < 4; ++k) EXPECT_EQ(r[k].v, int(k));
    r.push_back(fragile(4), 16);
    EXPECT_EQ(r.size(), 5u);
    EXPECT_EQ(fragile::live, 5);
  }
  EXPECT_EQ(fragile::live, 0);
}

TEST(Ring, ADrainThatThrowsLeavesTheRestInTheRing) {
  ring<int> r;
  for (int i = 0; i < 3; ++i) r.push_back(int(i), 4);
  std::vector<int> got;
  EXPECT_THROW(r.drain([&got](int&& v) {
    got.push_back(v);
    if (v == 1) throw std::runtime_error("on_item");
  }),
               std::runtime_error);
  EXPECT_EQ(got, (std::vector<int>{0, 1}));
  EXPECT_EQ(contents(r), (std::vector<int>{2}));
}

TEST(Ring, SwapTakesTheItemsOut) {
  ring<int> r, out;
  r.push_back(7, 2);
  out.swap(r);
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(contents(out), (std::vector<int>{7}));
  r.push_back(8, 2);  // the emptied ring allocates again
  EXPECT_EQ(contents(r), (std::vector<int>{8}));
}

struct node final : send_waiter<int> {
  explicit node(bool reservation) : send_waiter<int>(nullptr, nullptr) {
    this->reservation = reservation;
  }
};

TEST(SlotLedger, ReservationsAndStoredValuesShareTheCapacity) {
  slot_ledger<int> s(2);
  EXPECT_TRUE(s.has_room(0));
  EXPECT_TRUE(s.try_reserve(0));
  EXPECT_TRUE(s.has_room(0));
  EXPECT_FALSE(s.has_room(1)) << "one stored + one reserved fill 2 slots";
  EXPECT_FALSE(s.try_reserve(1));
  s.commit();  // the reservation's value is stored now
  EXPECT_EQ(s.reserved(), 0u);
  EXPECT_TRUE(s.try_reserve(1));
  s.release();
  EXPECT_EQ(s.reserved(), 0u);
}

TEST(SlotLedger, AFreedSlotGoesToTheOldestWaitingSender) {
  slot_ledger<int> s(1);
  node value(false), permit(true), later(false);
  s.wait(&value);
  s.wait(&permit);
  s.wait(&later);
  EXPECT_EQ(s.grant(1), nullptr) << "no room: nobody is granted";
  EXPECT_EQ(s.grant(0), &value);
  EXPECT_FALSE(value.linked);
  EXPECT_EQ(s.reserved(), 0u) << "a value's slot is filled by the queue, not counted here";
  EXPECT_EQ(s.grant(1), nullptr);
  EXPECT_EQ(s.grant(0), &permit);
  EXPECT_EQ(s.reserved(), 1u) << "a reservation is granted its slot here";
  EXPECT_EQ(s.grant(0), nullptr) << "the reservation holds the only slot";
  s.release();
  EXPECT_EQ(s.grant(0), &later);
  EXPECT_FALSE(s.has_waiting());
}

TEST(SlotLedger, AWithdrawnSenderIsNeverGranted) {
  slot_ledger<int> s(1);
  node a(false), b(false);
  s.wait(&a);
  s.wait(&b);
  EXPECT_TRUE(s.withdraw(&a));
  EXPECT_FALSE(s.withdraw(&a)) << "withdrawn once";
  EXPECT_EQ(s.grant(0), &b);
  EXPECT_FALSE(s.withdraw(&b)) << "granted: too late to withdraw";
}

TEST(SlotLedger, CloseHandsEveryWaitingSenderBackAndDropsReservations) {
  slot_ledger<int> s(1);
  ASSERT_TRUE(s.try_reserve(0));
  node a(false), b(true);
  s.wait(&a);
  s.wait(&b);
  auto waiting = s.close();
  EXPECT_EQ(s.reserved(), 0u);
  EXPECT_FALSE(s.has_waiting());
  std::vector<send_waiter<int>*> got;
  waiting.drain([&got](send_waiter<int>* n) { got.push_back(n); });
  EXPECT_EQ(got, (std::vector<send_waiter<int>*>{&a, &b}));
  EXPECT_TRUE(a.returned && b.returned);
  EXPECT_FALSE(s.withdraw(&a)) << "taken by close: its value goes back by close";
}

TEST(SlotLedger, WithdrawIfTakesOnlyTheMatchingSenders) {
  slot_ledger<int> s(1);
  node a(false), b(false), c(false);
  s.wait(&a);
  s.wait(&b);
  s.wait(&c);
  s.withdraw_if([&](send_waiter<int>* n) noexcept { return n != &b; });
  EXPECT_FALSE(a.linked || c.linked);
  EXPECT_EQ(s.grant(0), &b);
  EXPECT_FALSE(s.has_waiting());
}

}  // namespace
