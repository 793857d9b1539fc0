// SPDX-License-Identifier: BSL-1.0
// The library's own protocols under the testing kit: each scenario runs over many seeds, with
// the uniform and the PCT schedules, and checks its invariant (counts in = counts out, every
// outcome the one its order allows).
//
// The same file is built once more per planted bug (tests/planted/plant.cmake copies the
// headers and breaks one protocol in the copy; TENORITE_PLANTED names it): that build expects
// its scenario to fail for some seed within the budget, and prints which.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tenorite/testing.hpp>
#include <vector>

#include "test_support.hpp"

using namespace test;
using namespace std::chrono_literals;
using tenorite::error_kind;
using tenorite::testing::schedule;
using tenorite::testing::simulation;

namespace {

// ---- cancellation vs reply (the call's state machine) ----
// A worker that takes a request, lets other work run (a scheduling point between delivery and
// reply), then answers it. `replied` says which requests were answered, and when.
struct slow_config {
  std::shared_ptr<std::vector<bool>> replied;
  std::shared_ptr<std::vector<bool>> delivered;
};
using slow_request = tenorite::request<int, int, std::string>;
struct slow_worker {
  static asio::awaitable<void> task(tenorite::receiver<slow_request> rx, slow_config cfg) {
    while (auto r = co_await rx.recv()) {
      (*cfg.delivered)[static_cast<std::size_t>(r->request)] = true;
      co_await yield_now();
      (*cfg.replied)[static_cast<std::size_t>(r->request)] = true;
      r->client.send(r->request * 2);
    }
  }
};
using slow_service = tenorite::service<int, int, std::string, slow_worker, slow_config>;

// Calls race a terminal cancellation each. Invariant: every call completes exactly once; a call
// whose cancellation came before its answer was sent ends cancelled; one whose answer was sent
// first ends with the answer; a request comes back only if the worker never received it.
// Runs `f` after `hops` more turns through the simulation's ready set.
template <class F>
void post_after(simulation& sim, int hops, F f) {
  asio::post(sim.get_executor(), [&sim, hops, f = std::move(f)]() mutable {
    if (hops <= 1) {
      f();
    } else {
      post_after(sim, hops - 1, std::move(f));
    }
  });
}

std::string cancel_vs_reply_after(std::uint64_t seed, schedule policy, int hops) {
  constexpr int calls = 4;
  simulation sim(seed, {.policy = policy});
  slow_config cfg{std::make_shared<std::vector<bool>>(calls, false),
                  std::make_shared<std::vector<bool>>(calls, false)};
  auto [task, caller] = slow_service{}.start_task(sim, 8, cfg);
  std::vector<asio::cancellation_signal> sig(calls);
  std::vector<int> completions(calls, 0);
  std::vector<std::optional<echo_result>> outcome(calls);
  std::vector<int> cancelled_before_reply(calls, -1);
  for (int i = 0; i < calls; ++i) {
    asio::post(sim.get_executor(), [&, i] {
      caller.async_send_request(i,
                                asio::bind_cancellation_slot(
                                    sig[static_cast<std::size_t>(i)].slot(), [&, i](echo_result r) {
                                      ++completions[static_cast<std::size_t>(i)];
                                      outcome[static_cast<std::size_t>(i)].emplace(std::move(r));
                                    }));
      post_after(sim, hops, [&, i] {
        const auto k = static_cast<std::size_t>(i);
        if (completions[k] != 0) return;  // already over: nothing to cancel
        cancelled_before_reply[k] = (*cfg.replied)[k] ? 0 : 1;
        sig[k].emit(asio::cancellation_type::terminal);
      });
    });
  }
  sim.run();
  for (std::size_t k = 0; k < calls; ++k) {
    const std::string at = "call " + std::to_string(k) + ": ";
    if (completions[k] != 1) return at + std::to_string(completions[k]) + " completions";
    const auto& r = *outcome[k];
    // A request comes back only if the worker never had it (taken from the queue is not yet
    // seen by the worker's code: a give-up then returns nothing).
    if (!r && r.error().request().has_value() && (*cfg.delivered)[k])
      return at + "its request came back, yet the worker received it";
    if (cancelled_before_reply[k] == 1) {
      if (r || r.error().kind() != error_kind::cancelled)
        return at + "cancelled before its answer was sent, yet ended " +
               (r ? std::string("with the answer") : r.error().message());
    } else if (!r || *r != static_cast<int>(k) * 2) {
      return at + "answered before any cancellation, yet ended " +
             (r ? std::to_string(*r) : r.error().message());
    }
  }
  return {};
}

// The cancellation right after the call, and a few turns later (most calls are answered by
// then: submission order no longer lands in the window between delivery and answer).
std::string cancel_vs_reply(std::uint64_t seed, schedule policy) {
  return cancel_vs_reply_after(seed, policy, 1);
}
std::string late_cancel_vs_reply(std::uint64_t seed, schedule policy) {
  return cancel_vs_reply_after(seed, policy, 4);
}

// ---- drain vs permit ----
// Permits are reserved, the service drains, then the permits send. Invariant: every permit
// granted before the drain is served (a drain serves reserved slots), every reservation after
// the drain fails, and every request sent is answered once.
std::string drain_vs_permit(std::uint64_t seed, schedule policy) {
  constexpr int permits = 3;
  simulation sim(seed, {.policy = policy});
  auto [task, caller] = echo_service{}.start_task(sim, 4, echo_config{});
  bool drained = false;
  int before = 0, granted_before = 0, served = 0, refused_after = 0;
  std::string bad;
  for (int i = 0; i < permits; ++i) {
    asio::post(sim.get_executor(), [&, i] {
      const bool after = drained;  // initiated after the drain: must be refused
      if (!after) ++before;
      caller.async_reserve([&, i, after](echo_caller::reserve_result p) {
        if (!p) {
          if (after && p.error().kind() == error_kind::send_failure)
            ++refused_after;
          else
            bad = "reservation " + std::to_string(i) + " refused: " + p.error().message();
          return;
        }
        if (after) {
          bad = "reservation " + std::to_string(i) + " made after the drain was granted";
          return;
        }
        ++granted_before;
        auto permit = std::make_shared<echo_caller::permit_type>(std::move(*p));
        asio::post(sim.get_executor(), [&, i, permit] {
          permit->async_send_request(i, [&, i](echo_result r) {
            if (r && *r == 2 * i)
              ++served;
            else
              bad = "permit " + std::to_string(i) + "'s request ended " +
                    (r ? std::to_string(*r) : r.error().message());
          });
        });
      });
    });
  }
  asio::post(sim.get_executor(), [&] {
    drained = true;
    task.drain();
  });
  sim.run();
  if (!bad.empty()) return bad;
  if (granted_before != before)
    return std::to_string(before) + " reservations before the drain, " +
           std::to_string(granted_before) + " granted";
  if (served != granted_before)
    return std::to_string(granted_before) + " permits granted before the drain, " +
           std::to_string(served) + " served";
  if (before + refused_after != permits) return "a reservation never completed";
  if (!task.is_finished()) return "the drained service did not end";
  return {};
}

// ---- restart vs queued calls ----
// A supervised worker that throws on negative requests; calls of both signs arrive in any
// order. Invariant: a negative call fails (fetch_failure), every other call is answered: what
// was queued while a worker failed is served by its successor.
struct crash_worker {
  static asio::awaitable<void> task(tenorite::receiver<echo_request> rx, echo_config) {
    while (auto r = co_await rx.recv()) {
      if (r->request < 0) throw std::runtime_error("crash");
      co_await yield_now();
      r->client.send(r->request * 2);
    }
  }
};
using crash_service = tenorite::service<int, int, std::string, crash_worker, echo_config>;

std::string restart_vs_queued(std::uint64_t seed, schedule policy) {
  simulation sim(seed, {.policy = policy});
  tenorite::service_options opts;
  opts.queue_size = 8;
  opts.restart = tenorite::restart_policy{.max_restarts = 100, .window = 1s, .backoff = 10ms};
  auto [task, caller] = crash_service{}.start(sim, opts, [] { return echo_config{}; });
  const std::vector<int> requests{1, -1, 2, 3, -2, 4};
  int completed = 0;
  std::string bad;
  for (int v : requests)
    asio::post(sim.get_executor(), [&, v] {
      caller.async_send_request(v, [&, v](echo_result r) {
        ++completed;
        if (v < 0 && (r || r.error().kind() != error_kind::fetch_failure))
          bad = "request " + std::to_string(v) + " should have failed the worker";
        if (v >= 0 && (!r || *r != 2 * v))
          bad = "request " + std::to_string(v) + " ended " +
                (r ? std::to_string(*r) : r.error().message());
      });
    });
  sim.run();
  if (!bad.empty()) return bad;
  if (completed != static_cast<int>(requests.size()))
    return std::to_string(completed) + " of " + std::to_string(requests.size()) + " completed";
  return {};
}

using scenario = std::string (*)(std::uint64_t, schedule);

struct found {
  std::uint64_t seed;
  schedule policy;
  std::string what;
};

// The first failing seed (uniform and PCT alternately), if any within `budget` seeds each.
std::optional<found> search(scenario s, std::uint64_t budget) {
  for (auto seed : tenorite::testing::seeds(budget))
    for (auto policy : {schedule::random, schedule::pct})
      if (auto v = s(seed, policy); !v.empty()) return found{seed, policy, v};
  return std::nullopt;
}

const char* name_of(schedule p) {
  return p == schedule::pct ? "pct" : "random";
}

#ifndef TENORITE_PLANTED
// The budget per scenario and schedule: CI runs this many seeds of each.
constexpr std::uint64_t budget = 400;

void expect_clean(scenario s) {
  if (auto f = search(s, budget))
    ADD_FAILURE() << "seed " << f->seed << " (" << name_of(f->policy) << "): " << f->what
                  << "\nreplay: TENORITE_TEST_SEED=" << f->seed;
}
#endif

}  // namespace

#ifndef TENORITE_PLANTED

TEST(KitRace, CancellationVsReply) {
  expect_clean(cancel_vs_reply);
}
TEST(KitRace, LateCancellationVsReply) {
  expect_clean(late_cancel_vs_reply);
}
TEST(KitRace, DrainVsPermit) {
  expect_clean(drain_vs_permit);
}
TEST(KitRace, RestartVsQueuedCalls) {
  expect_clean(restart_vs_queued);
}

// The scenarios do explore: over the seeds, each ordering the invariants distinguish occurs.
TEST(KitRace, SeedsReachEveryOrdering) {
  int withdrawn = 0, gave_up = 0, answered = 0;
  for (std::uint64_t seed = 1; seed <= 50; ++seed) {
    simulation sim(seed);
    slow_config cfg{std::make_shared<std::vector<bool>>(1, false),
                    std::make_shared<std::vector<bool>>(1, false)};
    auto [task, caller] = slow_service{}.start_task(sim, 2, cfg);
    asio::cancellation_signal sig;
    std::optional<echo_result> out;
    asio::post(sim.get_executor(), [&] {
      caller.async_send_request(
          0, asio::bind_cancellation_slot(sig.slot(), [&](echo_result r) { out.emplace(r); }));
      asio::post(sim.get_executor(), [&] {
        if (!out) sig.emit(asio::cancellation_type::terminal);
      });
    });
    sim.run();
    ASSERT_TRUE(out.has_value());
    if (*out)
      ++answered;
    else if (out->error().request())
      ++withdrawn;
    else
      ++gave_up;
  }
  EXPECT_GT(withdrawn, 0);
  EXPECT_GT(gave_up, 0);
  EXPECT_GT(answered, 0);
}

#else  // a build with a planted bug: its scenario must catch it

#define TENORITE_STR2(x) #x
#define TENORITE_STR(x) TENORITE_STR2(x)

TEST(KitPlanted, SomeSeedFindsThePlantedBug) {
  const std::string planted = TENORITE_STR(TENORITE_PLANTED);
  std::vector<std::pair<const char*, scenario>> scenarios;
  if (planted == "cancel_vs_reply")
    scenarios = {{"cancel_vs_reply", cancel_vs_reply},
                 {"late_cancel_vs_reply", late_cancel_vs_reply}};
  if (planted == "drain_vs_permit") scenarios = {{"drain_vs_permit", drain_vs_permit}};
  if (planted == "restart_vs_queued") scenarios = {{"restart_vs_queued", restart_vs_queued}};
  ASSERT_FALSE(scenarios.empty()) << "unknown planted bug " << planted;
  for (const auto& [name, s] : scenarios) {
    auto f = search(s, 400);
    ASSERT_TRUE(f.has_value()) << "no seed found the planted bug " << planted << " in " << name;
    std::printf("planted bug %s, scenario %s: found by seed %llu (%s): %s\n", planted.c_str(),
                name, static_cast<unsigned long long>(f->seed), name_of(f->policy),
                f->what.c_str());
    RecordProperty(name, std::to_string(f->seed));
    // How schedule-dependent the bug is: the share of the first 100 seeds that find it.
    for (auto policy : {schedule::random, schedule::pct, schedule::fifo}) {
      int hits = 0;
      for (std::uint64_t seed = 1; seed <= 100; ++seed) hits += s(seed, policy).empty() ? 0 : 1;
      std::printf("  %s: %d of 100 seeds find it\n",
                  policy == schedule::fifo ? "fifo" : name_of(policy), hits);
    }
  }
}

#endif
