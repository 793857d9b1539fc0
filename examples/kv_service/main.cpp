// SPDX-License-Identifier: BSL-1.0
// kv_service: the original's HashMap-as-a-Service, started with queue size 32 and called
// from a coroutine, from several plain threads at once, with use_future and with a callback.
#include <boost/asio/use_future.hpp>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kv.hpp"

namespace asio = boost::asio;

namespace {

using kv::describe;

std::mutex print_mutex;

template <class... Ts>
void say(const Ts&... parts) {
  std::ostringstream line;
  (line << ... << parts);
  std::lock_guard lk(print_mutex);
  std::cout << line.str() << '\n';
}


// A caller coroutine. Requests are built in named variables before co_await (GCC 12 bug).
asio::awaitable<void> coroutine_client(kv::caller caller) {
  kv::request set_name = kv::set{"name", "tenorite"};
  say("[coroutine] set name      -> ", describe(co_await caller.send_request(std::move(set_name))));
  kv::request get_name = kv::get{"name"};
  say("[coroutine] get name      -> ", describe(co_await caller.send_request(std::move(get_name))));
  kv::request get_missing = kv::get{"missing"};
  say("[coroutine] get missing   -> ",
      describe(co_await caller.send_request(std::move(get_missing))));
  kv::request bad = kv::set{"bad key", "x"};
  say("[coroutine] set 'bad key' -> ", describe(co_await caller.send_request(std::move(bad))));
  kv::request del_missing = kv::del{"missing"};
  say("[coroutine] del missing   -> ",
      describe(co_await caller.send_request(std::move(del_missing))));
}

}  // namespace

int main() {
  kv::service service;
  kv::config config;
  config.initial = {{"language", "C++"}, {"original", "Rust"}};
  auto [task, caller] = service.start_task(32, std::move(config));

  // 1. From a coroutine on the default runtime.
  tenorite::runtime::global().block_on(coroutine_client(caller));

  // 2. From four plain threads at once, blocking calls; each owns its keys.
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([caller, t] {
      int ok_count = 0;
      for (int i = 0; i < 1000; ++i) {
        std::string key = "t" + std::to_string(t) + "-" + std::to_string(i % 10);
        auto set_result = caller.send_request_blocking(kv::set{key, std::to_string(i)});
        auto get_result = caller.send_request_blocking(kv::get{key});
        if (set_result && get_result && std::get<kv::found>(*get_result).value == std::to_string(i))
          ++ok_count;
      }
      say("[thread ", t, "] 1000 set+get pairs, ", ok_count, " read back their own write");
    });
  }
  for (auto& th : threads) th.join();

  // 3. With use_future.
  std::future<kv::caller::result_type> fut =
      caller.async_send_request(kv::get{"language"}, asio::use_future);
  say("[use_future] get language -> ", describe(fut.get()));

  // 4. With a callback.
  std::promise<void> done;
  caller.async_send_request(kv::del{"original"}, [&done](kv::caller::result_type r) {
    say("[callback] del original   -> ", describe(r));
    done.set_value();
  });
  done.get_future().wait();

  // 5. Dropping every caller ends the worker; its join handle completes.
  caller = {};
  auto joined = task.wait();
  say("[main] worker joined: ", joined ? "finished cleanly" : joined.error().message());
  return joined ? EXIT_SUCCESS : EXIT_FAILURE;
}
