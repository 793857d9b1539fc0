// SPDX-License-Identifier: BSL-1.0
// tenorite/testing.hpp — a deterministic execution context for tests: seeded schedules,
// virtual time, replayable runs.
//
//   TEST(Kv, TimesOut) {
//     for (auto seed : tenorite::testing::seeds(100)) {
//       tenorite::testing::simulation sim(seed);
//       SCOPED_TRACE(sim.replay_hint());  // "TENORITE_TEST_SEED=17": set it to replay one run
//       auto svc = kv::service{}.start(sim, {}, cfg);
//       auto r = sim.block_on(svc.caller.send_request_for(get{"k"}, 30s));  // 30 s, virtually
//       EXPECT_EQ(r.error().kind(), tenorite::error_kind::timed_out);
//     }
//   }
//
// A simulation is an execution context: start services on it (start(sim, ...)), co_spawn on
// it, bind handlers to sim.get_executor(). Nothing runs until the test runs it, on the test's
// thread:
// - step() runs one ready handler, chosen by the schedule; run_until_idle() runs until none is
//   ready (time stands still);
// - run() does the same and, whenever nothing is ready, moves the time to the earliest pending
//   timer and fires it; it returns when nothing is ready and no timer is pending;
// - block_on(awaitable) runs until that awaitable has completed and returns its value (or
//   rethrows); when nothing is ready, no timer is pending and it has not completed, the code
//   under test is stuck and it throws testing::stalled (with the schedule's last steps);
// - advance(d) moves the time by `d` by hand, firing the timers due on the way, in order, and
//   running what becomes ready.
//
// Time: the simulation's clock starts at steady_clock's time of its construction and moves only
// as above. Everything tenorite times reads it on a simulation: cancel_after / cancel_at, the
// _for / _until call forms, supervision's back-off and restart window, and tenorite::timer
// (timer.hpp), which your own code should use for its waits (a boost::asio::steady_timer on a
// simulation would wait in real time, on a thread of Asio's own).
//
// Schedules (simulation_options::policy):
// - schedule::random (default): each step runs a ready handler drawn uniformly, the freedom a
//   multi-threaded io_context has to run any of them next;
// - schedule::pct: probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010): handlers
//   form chains (a handler's first submission continues its chain, others start new ones), each
//   chain has a random priority and the highest ready one runs; at pct_depth - 1 steps drawn in
//   [1, pct_horizon] the running chain drops to the lowest priorities. Finds bugs that need a
//   few specific orderings with a known probability;
// - schedule::fifo: submission order, as an io_context run by one thread.
// The choices come from the seed alone (the kit's own generator: the same on every standard
// library), so a run with the same seed, code and inputs is the same run: schedule_hash()
// compares two, describe_trace() prints the steps. seeds(n) gives the seeds 1..n, or only
// TENORITE_TEST_SEED when it is set: the way to replay a failing run.
//
// What is explored: the order between handlers. A handler is never interrupted, so orders
// inside one (memory-ordering bugs) stay with ThreadSanitizer and stress tests. Work posted to
// the simulation from other threads is queued when it arrives: a run that involves other
// threads is not replayable.
//
// Refusals (std::logic_error): blocking forms (send_request_blocking, join_handle::wait,
// runtime::block_on, channel::send_blocking...) on a thread that owns or runs a simulation,
// since they would wait for ever; starting a service on the default runtime from there; a
// step() from inside a handler.
// Handlers' exceptions come out of step() / run() / block_on(), as from io_context::run().
// Destroying a simulation destroys its pending handlers and timer waits unrun, as destroying an
// io_context does: tenorite's operations on it complete (aborted) during the destruction.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tenorite/caller.hpp>
#include <tenorite/detail/operation.hpp>
#include <tenorite/detail/virtual_time.hpp>
#include <tenorite/error.hpp>
#include <tenorite/join_handle.hpp>
#include <tenorite/request.hpp>
#include <tenorite/service.hpp>
#include <tenorite/timer.hpp>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace tenorite::testing {

/// How a simulation picks the next handler among the ready ones (see the top of this header).
enum class schedule { random, pct, fifo };

struct simulation_options {
  schedule policy = schedule::random;
  unsigned pct_depth = 3;                ///< PCT's d: the number of priority change points + 1
  std::uint64_t pct_horizon = 2000;      ///< PCT's k: change points fall in steps [1, k]
  std::uint64_t max_steps = 10'000'000;  ///< run / block_on / advance stop here (runtime_error)
  std::size_t trace_capacity = 4096;     ///< how many of the last steps describe_trace() can show
};

/// Thrown by block_on when the awaitable cannot complete: nothing is ready, no timer is pending.
class stalled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The seeds a test loops over: 1..n (from `first`), or TENORITE_TEST_SEED alone when it is set.
inline std::vector<std::uint64_t> seeds(std::size_t n, std::uint64_t first = 1) {
  // Read before any thread of the test could change the environment.
  // NOLINTNEXTLINE(concurrency-mt-unsafe)
  const char* env = std::getenv("TENORITE_TEST_SEED");
  if (env && *env) return {std::strtoull(env, nullptr, 0)};
  std::vector<std::uint64_t> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(first + i);
  return out;
}

namespace detail {

/// xoshiro256** seeded by splitmix64, and a rejection-sampled bounded draw: integer arithmetic
/// only, so the same seed draws the same numbers with every compiler and standard library.
class rng {
 public:
  explicit rng(std::uint64_t seed) noexcept {
    for (auto& w : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      w = z ^ (z >> 31);
    }
  }
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, n), n > 0 (rejection below 2^64 mod n, then modulo: no bias).
  std::uint64_t below(std::uint64_t n) noexcept {
    const std::uint64_t threshold = (0 - n) % n;
    for (;;) {
      const std::uint64_t r = next();
      if (r >= threshold) return r % n;
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4]{};
};

/// One handler waiting to run.
struct sim_node {
  virtual void run() = 0;
  virtual ~sim_node() = default;
  std::uint64_t id = 0;      // submission number: the same in every run with the same seed
  std::uint64_t parent = 0;  // the handler that submitted it (0: the test itself)
  std::uint64_t chain = 0;
};
template <class F>
struct sim_fn final : sim_node {
  explicit sim_fn(F&& g) : f(std::move(g)) {}
  explicit sim_fn(const F& g) : f(g) {}
  void run() override { std::move(f)(); }
  F f;
};

}  // namespace detail

class simulation;

/// A simulation's executor: every handler submitted through it waits in the simulation's ready
/// set until a step chooses it (it never runs inside execute).
class sim_executor {
 public:
  explicit sim_executor(simulation& s) noexcept : sim_(&s) {}

  simulation& query(boost::asio::execution::context_t) const noexcept { return *sim_; }
  static constexpr boost::asio::execution::blocking_t query(
      boost::asio::execution::blocking_t) noexcept {
    return boost::asio::execution::blocking.never;
  }
  sim_executor require(boost::asio::execution::blocking_t::never_t) const noexcept { return *this; }
  template <class F>
  void execute(F&& f) const;

  simulation& context() const noexcept { return *sim_; }
  /// True while this thread runs one of the simulation's handlers.
  bool running_in_this_thread() const noexcept;

  friend bool operator==(const sim_executor& a, const sim_executor& b) noexcept {
    return a.sim_ == b.sim_;
  }
  friend bool operator!=(const sim_executor& a, const sim_executor& b) noexcept {
    return a.sim_ != b.sim_;
  }

 private:
  simulation* sim_;
};

/// A single-threaded deterministic execution context (see the top of this header).
class simulation : public tenorite::detail::virtual_time_context {
 public:
  using executor_type = sim_executor;
  using clock_type = std::chrono::steady_clock;
  using time_point = clock_type::time_point;
  using duration = clock_type::duration;

  /// A simulation whose schedule is drawn from `seed`. The constructing thread owns it: its
  /// blocking forms are refused while the simulation lives (only it could run the simulation).
  explicit simulation(std::uint64_t seed, simulation_options opts = {})
      : virtual_time_context(clock_type::now()),
        opts_(opts),
        seed_(seed),
        rng_(seed),
        start_(clock()->now()),
        owner_(std::this_thread::get_id()) {
    if (opts_.policy == schedule::pct) {
      if (opts_.pct_depth == 0 || opts_.pct_horizon == 0)
        throw std::invalid_argument(
            "tenorite::testing::simulation: pct_depth and pct_horizon must be at least 1");
      for (unsigned i = 1; i < opts_.pct_depth; ++i)
        change_points_.emplace(1 + rng_.below(opts_.pct_horizon), i);
    }
    if (opts_.trace_capacity == 0) opts_.trace_capacity = 1;
    ++tenorite::detail::this_thread_simulations();
  }
  /// A simulation with seed TENORITE_TEST_SEED, or 1.
  simulation() : simulation(seeds(1).front()) {}

  simulation(const simulation&) = delete;
  simulation& operator=(const simulation&) = delete;

  /// Destroys every pending handler and timer wait unrun (tenorite's operations on the
  /// simulation complete as aborted meanwhile), then the services.
  ~simulation() {
    {
      tenorite::detail::dying_context_scope dying(this);
      shutdown();
      drain_all();
      {
        std::lock_guard lk(m_);
        dead_ = true;  // what the services' destruction submits is destroyed at once
      }
      destroy();
      // Completions the services' destruction left for this thread, then services they made.
      tenorite::detail::dying_queue::local().drain();
      shutdown();
      destroy();
    }
    // (A simulation destroyed on another thread leaves its constructing thread marked.)
    if (std::this_thread::get_id() == owner_) --tenorite::detail::this_thread_simulations();
  }

  executor_type get_executor() noexcept { return executor_type(*this); }

  std::uint64_t seed() const noexcept { return seed_; }
  /// "TENORITE_TEST_SEED=<seed>": what to set to replay this run (e.g. in SCOPED_TRACE).
  std::string replay_hint() const { return "TENORITE_TEST_SEED=" + std::to_string(seed_); }

  /// The simulation's time.
  time_point now() const noexcept { return clock()->now(); }

  /// Runs one ready handler; false when none is ready. Never moves the time.
  bool step() {
    std::unique_ptr<detail::sim_node> n;
    {
      std::lock_guard lk(m_);
      if (running_)
        throw std::logic_error(
            "tenorite::testing::simulation::step: called from inside one of its own handlers; "
            "run the simulation from the test's code only");
      if (ready_.empty()) return false;
      const std::size_t i = pick();
      n.reset(ready_[i]);
      ready_.erase(ready_.begin() + static_cast<std::ptrdiff_t>(i));
      record(*n);
    }
    running_scope scope(*this, *n);
    n->run();
    return true;
  }

  /// Runs ready handlers until none is; returns how many ran. Never moves the time.
  std::size_t run_until_idle() {
    std::size_t count = 0;
    while (step()) {
      ++count;
      check_budget("run_until_idle");
    }
    return count;
  }

  /// Runs until nothing is ready and no timer is pending, moving the time to each next timer
  /// when nothing is ready; returns how many handlers ran.
  std::size_t run() {
    std::size_t count = 0;
    for (;;) {
      while (step()) {
        ++count;
        check_budget("run");
      }
      if (!fire_next()) return count;
    }
  }

  /// Moves the time by `d`, firing every timer due on the way at its own time, and runs what
  /// becomes ready (with run_until_idle between two timers); returns how many handlers ran.
  template <class Rep, class Period>
  std::size_t advance(std::chrono::duration<Rep, Period> d) {
    const time_point target = now() + std::chrono::duration_cast<duration>(d);
    std::size_t count = run_until_idle();
    for (;;) {
      time_point t;
      if (!clock()->next_expiry(t) || t > target) break;
      clock()->advance_to(t);
      count += run_until_idle();
    }
    clock()->advance_to(target);
    return count + run_until_idle();
  }

  /// Runs `aw` on the simulation until it completes (moving the time as run() does) and returns
  /// its value or rethrows its exception. Throws testing::stalled when it cannot complete.
  template <class T, class Executor>
  T block_on(boost::asio::awaitable<T, Executor> aw) {
    auto st = std::make_shared<block_state<T>>();
    // Through a void coroutine: co_spawn's own value completion needs a default-constructible T.
    boost::asio::co_spawn(get_executor(), run_into<T, Executor>(std::move(aw), st),
                          [st](const std::exception_ptr& e) {
                            st->error = e;
                            st->done = true;
                          });
    while (!st->done) {
      if (step()) {
        check_budget("block_on");
        continue;
      }
      if (fire_next()) continue;
      throw stalled(
          "tenorite::testing::simulation::block_on: the awaitable cannot complete: nothing is "
          "ready and no timer is pending (the code under test waits for something that never "
          "comes). " +
          replay_hint() + "\n" + describe_trace(20));
    }
    if (st->error) std::rethrow_exception(st->error);
    if constexpr (!std::is_void_v<T>) return std::move(*st->value);
  }

  /// When nothing is ready: moves the time to the earliest pending timer and fires the timers
  /// due then (their handlers become ready); false when no timer is pending.
  bool advance_to_next_timer() { return fire_next(); }

  /// How many handlers are ready, and how many timer waits pending.
  std::size_t ready() const {
    std::lock_guard lk(m_);
    return ready_.size();
  }
  std::size_t timers_pending() const { return clock()->pending(); }
  /// How many steps ran.
  std::uint64_t steps() const {
    std::lock_guard lk(m_);
    return steps_;
  }
  /// A hash of every step so far (which handler ran, at what time): equal for two runs that
  /// took the same schedule.
  std::uint64_t schedule_hash() const {
    std::lock_guard lk(m_);
    return hash_;
  }
  /// The last `last` steps, one per line: "step 12 +30.000000s #17 (from #12, chain 3)".
  std::string describe_trace(std::size_t last = 50) const {
    std::lock_guard lk(m_);
    std::string out =
        "schedule of seed " + std::to_string(seed_) + " (" + std::to_string(steps_) + " steps):\n";
    const std::size_t n = std::min(last, trace_.size());
    for (std::size_t i = trace_.size() - n; i < trace_.size(); ++i) {
      const auto& s = trace_[i];
      char line[160];
      std::snprintf(
          line, sizeof line, "  step %llu +%.6fs #%llu (from #%llu, chain %llu)\n",
          static_cast<unsigned long long>(s.step), std::chrono::duration<double>(s.at).count(),
          static_cast<unsigned long long>(s.id), static_cast<unsigned long long>(s.parent),
          static_cast<unsigned long long>(s.chain));
      out += line;
    }
    return out;
  }

 private:
  friend class sim_executor;

  template <class T>
  struct block_state {
    bool done = false;
    std::exception_ptr error;
    std::optional<std::conditional_t<std::is_void_v<T>, std::monostate, T>> value;
  };
  template <class T, class Executor>
  static boost::asio::awaitable<void, Executor> run_into(boost::asio::awaitable<T, Executor> aw,
                                                         std::shared_ptr<block_state<T>> st) {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(aw);
    } else {
      // cppcheck-suppress missingReturn ; a coroutine (cppcheck reads it as a plain function)
      st->value.emplace(co_await std::move(aw));
    }
  }

  struct trace_step {
    std::uint64_t step, id, parent, chain;
    duration at;
  };

  // The thread runs `n`: its submissions continue its chain (the first) or start new ones.
  struct running_scope {
    running_scope(simulation& s, detail::sim_node& n) noexcept : sim(s), saved_sim(current()) {
      std::lock_guard lk(s.m_);
      s.running_ = &n;
      s.chain_continued_ = false;
      ++tenorite::detail::this_thread_simulations();
      current() = &s;
    }
    ~running_scope() {
      current() = saved_sim;
      --tenorite::detail::this_thread_simulations();
      std::lock_guard lk(sim.m_);
      sim.running_ = nullptr;
    }
    simulation& sim;
    const simulation* saved_sim;
  };

  static const simulation*& current() noexcept {
    thread_local const simulation* s = nullptr;
    return s;
  }
  TENORITE_NOINLINE static const simulation* current_read() noexcept { return current(); }

  void submit(std::unique_ptr<detail::sim_node> n) {
    std::unique_lock lk(m_);
    if (dead_) {  // submitted while the simulation's services are destroyed: never to run
      lk.unlock();
      n.reset();
      return;
    }
    n->id = ++next_id_;
    if (running_ && current_read() == this) {
      n->parent = running_->id;
      if (!chain_continued_) {
        chain_continued_ = true;
        n->chain = running_->chain;
      } else {
        n->chain = new_chain();
      }
    } else {
      n->chain = new_chain();
    }
    ready_.push_back(n.release());
  }

  std::uint64_t new_chain() {
    const std::uint64_t c = ++next_chain_;
    // Distinct-enough random priorities above the change points' (1 .. d-1).
    if (opts_.policy == schedule::pct) priority_[c] = opts_.pct_depth + rng_.below(1ULL << 40);
    return c;
  }

  // Under m_, with ready_ not empty.
  std::size_t pick() {
    switch (opts_.policy) {
      case schedule::fifo:
        return 0;
      case schedule::random:
        return static_cast<std::size_t>(rng_.below(ready_.size()));
      case schedule::pct: {
        std::size_t best = 0;
        std::uint64_t best_p = 0;
        for (std::size_t i = 0; i < ready_.size(); ++i) {
          const std::uint64_t p = priority_[ready_[i]->chain];
          if (i == 0 || p > best_p) {
            best = i;
            best_p = p;
          }
        }
        if (auto it = change_points_.find(steps_ + 1); it != change_points_.end())
          priority_[ready_[best]->chain] = it->second;
        return best;
      }
    }
    return 0;
  }

  // Under m_.
  void record(const detail::sim_node& n) {
    ++steps_;
    const duration at = clock()->now() - start_;
    for (std::uint64_t v : {n.id, static_cast<std::uint64_t>(at.count())}) {
      hash_ ^= v;
      hash_ *= 0x100000001b3ULL;
    }
    if (trace_.size() == opts_.trace_capacity) trace_.pop_front();
    trace_.push_back({steps_, n.id, n.parent, n.chain, at});
  }

  bool fire_next() {
    time_point t;
    if (!clock()->next_expiry(t)) return false;
    clock()->advance_to(t);
    return true;
  }

  void check_budget(const char* what) const {
    if (steps() >= opts_.max_steps)
      throw std::runtime_error(std::string("tenorite::testing::simulation::") + what +
                               ": more than simulation_options::max_steps steps (" +
                               std::to_string(opts_.max_steps) +
                               "): the code under test never becomes idle (a periodic timer or "
                               "a loop of handlers?). " +
                               replay_hint());
  }

  // Destroys every ready handler and timer wait unrun, until their destructors submit no more.
  void drain_all() noexcept {
    for (;;) {
      const std::size_t handlers = drain_ready();
      const std::size_t waits = clock()->close();
      if (handlers + waits == 0) return;
    }
  }

  // Destroys every ready handler unrun; returns how many (their destructors may submit more).
  std::size_t drain_ready() noexcept {
    std::deque<detail::sim_node*> doomed;
    {
      std::lock_guard lk(m_);
      doomed.swap(ready_);
    }
    for (auto* n : doomed) delete n;
    return doomed.size();
  }

  simulation_options opts_;
  std::uint64_t seed_;
  detail::rng rng_;  // guarded by m_
  time_point start_;
  std::thread::id owner_;

  mutable std::mutex m_;
  std::deque<detail::sim_node*> ready_;  // in submission order
  const detail::sim_node* running_ = nullptr;
  bool dead_ = false;
  bool chain_continued_ = false;
  std::uint64_t next_id_ = 0;
  std::uint64_t next_chain_ = 0;
  std::uint64_t steps_ = 0;
  std::uint64_t hash_ = 0xcbf29ce484222325ULL;
  std::map<std::uint64_t, std::uint64_t> priority_;  // chain -> PCT priority
  std::map<std::uint64_t, unsigned> change_points_;  // step -> new priority
  std::deque<trace_step> trace_;
};

template <class F>
void sim_executor::execute(F&& f) const {
  sim_->submit(std::make_unique<detail::sim_fn<std::decay_t<F>>>(std::forward<F>(f)));
}

inline bool sim_executor::running_in_this_thread() const noexcept {
  return simulation::current_read() == sim_;
}

/// Thrown by the helpers below when an expectation cannot be met; the message has the seed
/// and the schedule's last steps.
class expectation_failed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A dependency service played by the test: every request it receives waits in its inbox
/// until the test takes it (expect) and answers it by hand (`r.client.send(...)`), or drops
/// it (the caller then gets fetch_failure).
///
///   testing::fake_service<db::request, db::response, db::error> db(sim);
///   auto app = app::service{}.start(sim, {}, app::config{db.caller()});
///   ...                                   // the code under test calls db
///   auto r = db.expect([](const db::request& q) { return q.key == "k"; }, "a read of k");
///   r.client.send(db::response{"v"});     // answered by the test
template <class Req, class Resp, class Err>
class fake_service {
 public:
  using request_type = tenorite::request<Req, Resp, Err>;
  using caller_type = tenorite::caller<Req, Resp, Err>;

  explicit fake_service(simulation& sim, std::size_t queue_size = 64)
      : sim_(sim), inbox_(std::make_shared<inbox>()) {
    auto s = service_type{}.start_task(sim, queue_size, config{inbox_});
    task_.emplace(std::move(s.task));
    caller_.emplace(std::move(s.caller));
  }

  /// A caller of the fake (hand copies to the code under test).
  caller_type caller() const { return *caller_; }

  /// Runs the simulation (moving the time as block_on does) until a request that `pred`
  /// accepts has been received, and returns it, oldest first; the others stay in the inbox.
  /// Throws expectation_failed, naming `what`, when none can come.
  template <class Pred>
  request_type expect(Pred&& pred, const std::string& what = "a matching request") {
    for (;;) {
      for (auto it = inbox_->received.begin(); it != inbox_->received.end(); ++it)
        if (pred(std::as_const(it->request))) {
          request_type r = std::move(*it);
          inbox_->received.erase(it);
          return r;
        }
      if (sim_.step() || sim_.advance_to_next_timer()) continue;
      throw expectation_failed("tenorite::testing::fake_service::expect: expected " + what +
                               ", but the simulation is idle with " +
                               std::to_string(inbox_->received.size()) +
                               " other request(s) in the inbox and no timer pending. " +
                               sim_.replay_hint() + "\n" + sim_.describe_trace(20));
    }
  }
  /// Any request.
  request_type expect_any(const std::string& what = "a request") {
    return expect([](const Req&) { return true; }, what);
  }
  /// How many requests were received and not taken yet.
  std::size_t pending() const noexcept { return inbox_->received.size(); }

 private:
  struct inbox {
    std::deque<request_type> received;
  };
  struct config {
    std::shared_ptr<inbox> box;
  };
  struct worker {
    static boost::asio::awaitable<void> task(tenorite::receiver<request_type> rx, config cfg) {
      while (auto r = co_await rx.recv()) cfg.box->received.push_back(std::move(*r));
    }
  };
  using service_type = tenorite::service<Req, Resp, Err, worker, config>;

  simulation& sim_;
  std::shared_ptr<inbox> inbox_;
  std::optional<tenorite::join_handle<void>> task_;
  std::optional<caller_type> caller_;
};

/// Counts call outcomes: successes and failures per error_kind.
///
///   testing::outcomes seen;
///   caller.async_send_request(req, seen.recorder<kv::caller::result_type>());
///   sim.run();
///   EXPECT_EQ(seen.count(tenorite::error_kind::timed_out), 3);
class outcomes {
 public:
  template <class Result>
  void record(const Result& r) {
    if (r) {
      ++ok_;
    } else {
      ++by_kind_[r.error().kind()];
    }
  }
  /// A completion handler that records its outcome here (this must outlive it).
  template <class Result>
  auto recorder() {
    return [this](Result r) { record(r); };
  }
  std::size_t ok() const noexcept { return ok_; }
  std::size_t count(error_kind k) const {
    auto it = by_kind_.find(k);
    return it == by_kind_.end() ? 0 : it->second;
  }
  std::size_t failed() const noexcept {
    std::size_t n = 0;
    for (const auto& [k, c] : by_kind_) n += c;
    return n;
  }
  std::size_t total() const noexcept { return ok_ + failed(); }
  /// "ok 3, timed_out 2": for an assertion's message.
  std::string describe() const {
    std::string out = "ok " + std::to_string(ok_);
    for (const auto& [k, c] : by_kind_)
      out += std::string(", ") + to_string(k) + " " + std::to_string(c);
    return out;
  }

 private:
  std::size_t ok_ = 0;
  std::map<error_kind, std::size_t> by_kind_;
};

}  // namespace tenorite::testing
