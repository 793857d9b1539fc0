// SPDX-License-Identifier: BSL-1.0
// topologies: the kv service as a handler object, sharded by key, supervised, measured;
// and a pool of stateless workers sharing one queue.
#include <atomic>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "../kv_service/kv.hpp"

namespace {

int failures = 0;
void check(bool ok, const std::string& what) {
  std::cout << (ok ? "  ok   " : "  FAIL ") << what << '\n';
  if (!ok) ++failures;
}

// ---- the kv service as a handler: the library runs the loop ----
struct kv_handler {
  std::unordered_map<std::string, std::string> map;
  std::size_t shard = 0;
  void on_start() { std::cout << "  [shard " << shard << " started]\n"; }
  std::expected<kv::response, kv::error> handle(kv::request req) {
    const auto& key = std::visit([](auto& r) -> const std::string& { return r.key; }, req);
    if (key == "poison") throw std::runtime_error("the worker choked on a poison key");
    return kv::worker::handle(map, std::move(req));  // the same logic as the hand-written loop
  }
};
using kv_handlers = tenorite::handler_service<kv::request, kv::response, kv::error, kv_handler>;

// ---- a stateless pool worker: CPU-bound work that any worker can do ----
struct checksum_handler {
  std::uint64_t handle(std::string text) {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a, 2000 rounds: some real work
    for (int round = 0; round < 2000; ++round)
      for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
    return h;
  }
};
using checksum_pool = tenorite::handler_service<std::string, std::uint64_t, std::string,
                                                checksum_handler>;

}  // namespace

int main() {
  tenorite::runtime rt(2);

  std::cout << "sharded, supervised, measured kv (4 shards):\n";
  tenorite::service_options opts;
  opts.queue_size = 32;
  opts.metrics = true;
  opts.restart = tenorite::restart_policy{.max_restarts = 3, .window = std::chrono::seconds(10),
                                          .backoff = std::chrono::milliseconds(1)};
  auto [shards, kv_caller] = tenorite::start_sharded(
      kv_handlers{}, rt, 4, opts, [](std::size_t i) { return kv_handler{{}, i}; },
      [](const kv::request& r) {
        return std::hash<std::string>{}(std::visit([](auto& x) { return x.key; }, r));
      });

  std::vector<std::thread> clients;
  std::atomic<int> answered{0};
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&, t, c = kv_caller] {
      for (int i = 0; i < 100; ++i) {
        const std::string key = "k" + std::to_string(t * 100 + i);
        if (c.send_request_blocking(kv::request(kv::set{key, "v" + std::to_string(i)}))) answered++;
      }
    });
  for (auto& c : clients) c.join();
  check(answered == 400, "400 sets from 4 threads answered by the shards owning their keys");
  auto got = kv_caller.send_request_blocking(kv::request(kv::get{"k123"}));
  check(got && std::get<kv::found>(*got).value == "v23", "get k123 -> v23");

  auto poisoned = kv_caller.send_request_blocking(kv::request(kv::get{"poison"}));
  check(!poisoned && poisoned.error().kind() == tenorite::error_kind::fetch_failure,
        "the call that crashed its worker gets fetch_failure");
  const auto& poisoned_shard = kv_caller.shard_for(kv::request(kv::get{"poison"}));
  auto after = poisoned_shard.send_request_blocking(kv::request(kv::set{"poison-free", "x"}));
  (void)after;
  auto m = poisoned_shard.metrics();
  check(m && m->restarts == 1, "its shard restarted once (metrics: restarts = 1)");
  std::cout << "  that shard: " << m->calls << " calls, " << m->answered << " answered, "
            << m->failed_total() << " failed, p50 <= " << m->latency.percentile(0.5).count()
            << " ns, p99 <= " << m->latency.percentile(0.99).count() << " ns\n";

  kv_caller = {};
  for (auto& s : shards) check(s.wait().has_value(), "shard ended normally");

  std::cout << "pool of 2 checksum workers on one queue:\n";
  tenorite::service_options pool_opts;
  pool_opts.workers = 2;
  auto [pool, pool_caller] = checksum_pool{}.start(rt, pool_opts, checksum_handler{});
  std::vector<std::thread> users;
  std::atomic<int> sums{0};
  for (int t = 0; t < 4; ++t)
    users.emplace_back([&, c = pool_caller] {
      for (int i = 0; i < 50; ++i)
        if (c.send_request_blocking("document " + std::to_string(i))) sums++;
    });
  for (auto& u : users) u.join();
  check(sums == 200, "200 checksums computed by the pool");
  pool_caller = {};
  check(pool.wait().has_value(), "the pool joined after both workers ended");

  std::cout << (failures ? "FAILED\n" : "all good\n");
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
