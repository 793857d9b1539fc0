// SPDX-License-Identifier: BSL-1.0
// kv_remote: the original's HashMap-as-a-Service (examples/kv_service/kv.hpp) over NATS, as
// a NATS service (ADR-32) that any NATS client can find and call.
//
//   kv_remote serve [url] [subject] [binary|json]   serve the kv service "kv" (version 1.0.0)
//                                     with one endpoint on `subject` (queue group "q"),
//                                     until SIGINT/SIGTERM, then drain and exit
//   kv_remote call  [url] [subject] [binary|json]   call it: set, get, a service error,
//                                     delete, the coroutine form, a deadline
//
// url defaults to nats://127.0.0.1:4222, subject to "kv", the payloads to binary (tenorite's
// framed binary_codec, docs/binary-format.md); json speaks JSON (json_codec, docs/json.md),
// the payloads every NATS client reads and writes, e.g. with the nats CLI:
//   nats micro info kv
//   nats request kv '{"set":{"key":"name","value":"tenorite"}}'   -> {"ok":{}}
//   nats request kv '{"get":{"key":"name"}}'                  -> {"found":{"value":"tenorite"}}
// Start a nats-server, one or more `kv_remote serve` (they share the requests), then
// `kv_remote call`.
#include <signal.h>

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <tenorite/nats/json_codec.hpp>
#include <tenorite/nats/remote_caller.hpp>
#include <tenorite/nats/server.hpp>

#include "kv_remote/kv_json.hpp"

namespace asio = boost::asio;
namespace tn = tenorite::nats;
using namespace std::chrono_literals;

template <class Codec>
using remote_kv = tn::remote_caller<kv::request, kv::response, kv::error, Codec>;

namespace {

using kv::describe;

template <class Codec>
int serve(const std::string& url, const std::string& subject, const char* format) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts: all inherit it

  tenorite::runtime rt(1);
  auto [task, caller] = kv::service{}.start_task(rt.executor(), 32, kv::config{});
  // The connection runs on the service's runtime: each request is read, decoded and handed
  // to the worker on that thread, with no hop from a nats.c thread.
  auto conn = tn::connection::connect(
      {.servers = {url}, .name = "kv_remote serve", .executor = rt.executor()});
  auto server = tn::add_service(conn, {.name = "kv",
                                       .version = "1.0.0",
                                       .description = "The original's HashMap-as-a-Service",
                                       .metadata = {{"implementation", "tenorite"}}});
  server.add_endpoint("kv", caller, {.subject = subject, .metadata = {{"format", format}}},
                      Codec{});
  std::cout << "serving kv on '" << subject << "' at " << url << " (" << format
            << ", Ctrl-C to stop)" << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  const bool drained = server.drain(10s);  // answer what was received, take nothing new
  const auto s = server.stats().endpoints.at(0);
  std::cout << "drained: " << s.received << " received, " << s.answered << " answered, "
            << s.bad_requests << " bad requests" << std::endl;
  return drained ? 0 : 1;
}

// The coroutine form, exactly as with a local tenorite::caller. Requests are built in named
// variables before co_await (GCC 12).
template <class Codec>
asio::awaitable<void> coroutine_client(remote_kv<Codec> caller) {
  kv::request set_lang = kv::set{"lang", "C++"};
  std::cout << "[coroutine] set lang      -> "
            << describe(co_await caller.send_request(std::move(set_lang))) << '\n';
  kv::request get_lang = kv::get{"lang"};
  std::cout << "[coroutine] get lang      -> "
            << describe(co_await caller.send_request(std::move(get_lang))) << '\n';
}

template <class Codec>
int call(const std::string& url, const std::string& subject) {
  tenorite::runtime rt(1);
  auto conn = tn::connection::connect({.servers = {url}, .name = "kv_remote call"});
  remote_kv<Codec> caller(conn, subject, rt.executor(), {.timeout = 5s});

  auto r = caller.send_request_blocking(kv::set{"name", "tenorite"});
  std::cout << "[blocking]  set name      -> " << describe(r) << '\n';
  if (!r) return 1;  // nobody serves the subject: start `kv_remote serve` first
  std::cout << "[blocking]  get name      -> "
            << describe(caller.send_request_blocking(kv::get{"name"})) << '\n';
  std::cout << "[blocking]  get missing   -> "
            << describe(caller.send_request_blocking(kv::get{"missing"})) << '\n';
  std::cout << "[blocking]  set 'a b'     -> "
            << describe(caller.send_request_blocking(kv::set{"a b", "x"})) << '\n';
  std::cout << "[blocking]  del missing   -> "
            << describe(caller.send_request_blocking(kv::del{"missing"})) << '\n';
  std::cout << "[blocking]  del name      -> "
            << describe(caller.send_request_blocking(kv::del{"name"})) << '\n';
  std::cout << "[deadline]  get lang      -> "
            << describe(caller.send_request_blocking_for(kv::get{"lang"}, 1s)) << '\n';
  rt.block_on(coroutine_client(caller));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const std::string url = argc > 2 ? argv[2] : "nats://127.0.0.1:4222";
  const std::string subject = argc > 3 ? argv[3] : "kv";
  const std::string format = argc > 4 ? argv[4] : "binary";
  const bool json = format == "json";
  try {
    if (format == "json" || format == "binary") {
      if (mode == "serve")
        return json ? serve<tn::json_codec>(url, subject, "json")
                    : serve<tn::binary_codec>(url, subject, "binary");
      if (mode == "call")
        return json ? call<tn::json_codec>(url, subject) : call<tn::binary_codec>(url, subject);
    }
  } catch (const std::exception& e) {
    std::cerr << "kv_remote: " << e.what() << '\n';
    return 1;
  }
  std::cerr << "usage: kv_remote serve|call [url] [subject] [binary|json]\n";
  return 2;
}
