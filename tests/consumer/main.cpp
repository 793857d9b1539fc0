// SPDX-License-Identifier: BSL-1.0
// Written from DESIGN.md's public names and the README only, as a new user would: a small
// key-value service called every way, plus abort, a throwing worker and a bad queue size.
// Exits non-zero on the first surprise.
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <tenorite/tenorite.hpp>
#include <tenorite/version.hpp>
#include <thread>
#include <variant>
#include <vector>

namespace asio = boost::asio;

struct put {
  std::string key, value;
};
struct fetch {
  std::string key;
};
using kv_req = std::variant<put, fetch>;
using kv_resp = std::string;
struct kv_err {
  std::string reason;
};
struct kv_cfg {
  bool throw_on_boom = false;
};

struct kv_worker {
  static asio::awaitable<void> task(
      tenorite::receiver<tenorite::request<kv_req, kv_resp, kv_err>> rx, kv_cfg cfg) {
    std::map<std::string, std::string> map;
    while (auto r = co_await rx.recv()) {
      if (auto* p = std::get_if<put>(&r->request)) {
        if (cfg.throw_on_boom && p->key == "boom") throw std::runtime_error("boom");
        map[p->key] = p->value;
        r->client.send(kv_resp("ok"));
      } else {
        auto& k = std::get<fetch>(r->request).key;
        auto it = map.find(k);
        if (it == map.end()) {
          r->client.send(std::unexpected(kv_err{"missing " + k}));
        } else {
          r->client.send(it->second);
        }
      }
    }
  }
};
using kv_service = tenorite::service<kv_req, kv_resp, kv_err, kv_worker, kv_cfg>;

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "consumer: check failed: %s (line %d)\n", #cond, __LINE__); \
      std::exit(1);                                                                    \
    }                                                                                  \
  } while (0)

asio::awaitable<std::string> coroutine_calls(tenorite::caller<kv_req, kv_resp, kv_err> c) {
  kv_req p = put{"a", "1"};
  auto r1 = co_await c.send_request(std::move(p));
  kv_req f = fetch{"a"};
  auto r2 = co_await c.send_request(std::move(f));
  co_return r1.value() + "/" + r2.value();
}

int main() {
  // version.hpp says the version that the package's tenoriteConfigVersion.cmake says.
#ifdef TENORITE_CONSUMER_EXPECTED_VERSION
  CHECK(std::string(TENORITE_VERSION_STRING) == TENORITE_CONSUMER_EXPECTED_VERSION);
#endif
  CHECK(TENORITE_VERSION == TENORITE_VERSION_MAJOR * 100000 + TENORITE_VERSION_MINOR * 100 +
                                TENORITE_VERSION_PATCH);

  kv_service service;
  auto [task, caller] = service.start_task(32, kv_cfg{});

  // Coroutine caller on the default runtime.
  CHECK(tenorite::runtime::global().block_on(coroutine_calls(caller)) == "ok/1");

  // Blocking callers on plain threads.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([c = caller, t] {
      auto key = "t" + std::to_string(t);
      CHECK(c.send_request_blocking(put{key, key}).value() == "ok");
      CHECK(c.send_request_blocking(fetch{key}).value() == key);
    });
  for (auto& th : threads) th.join();

  // use_future and a callback.
  auto fut = caller.async_send_request(fetch{"nope"}, asio::use_future);
  auto missing = fut.get();
  CHECK(!missing && missing.error().kind() == tenorite::error_kind::service_error);
  CHECK(missing.error().service_error().reason == "missing nope");
  std::promise<std::string> cb;
  caller.async_send_request(
      fetch{"t1"},
      [&](tenorite::caller<kv_req, kv_resp, kv_err>::result_type r) { cb.set_value(r.value()); });
  CHECK(cb.get_future().get() == "t1");

  // Dropping the callers ends the worker.
  caller = {};
  CHECK(task.wait().has_value());

  // Abort.
  auto [t2, c2] = service.start_task(4, kv_cfg{});
  t2.abort();
  auto j2 = t2.wait();
  CHECK(!j2 && j2.error().is_cancelled());
  auto after = c2.send_request_blocking(fetch{"x"});
  CHECK(!after && after.error().kind() == tenorite::error_kind::send_failure);
  CHECK(after.error().request().has_value());

  // A throwing worker: the held call fails, the join carries the exception.
  auto [t3, c3] = service.start_task(4, kv_cfg{true});
  auto boom = c3.send_request_blocking(put{"boom", "x"});
  CHECK(!boom && boom.error().kind() == tenorite::error_kind::fetch_failure);
  auto j3 = t3.wait();
  CHECK(!j3 && j3.error().is_panic());

  // Queue size 0.
  bool rejected = false;
  try {
    (void)service.start_task(0, kv_cfg{});
  } catch (const std::invalid_argument&) {
    rejected = true;
  }
  CHECK(rejected);
  std::puts("consumer: all checks passed");
  return 0;
}
