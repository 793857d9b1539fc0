// SPDX-License-Identifier: BSL-1.0
// Instructions per call for s1 (one caller coroutine, sequential Echo calls on a 2-thread
// runtime): run under `valgrind --tool=callgrind` at two call counts and divide the
// difference (see docs/performance.md). Instruction counts do not depend on machine noise.
#include <boost/asio/awaitable.hpp>
#include <cstdio>
#include <cstdlib>
#include <tenorite/tenorite.hpp>

namespace asio = boost::asio;

struct echo_worker {
  static asio::awaitable<void> task(tenorite::receiver<tenorite::request<unsigned long, unsigned long, int>> rx, int) {
    while (auto r = co_await rx.recv()) r->client.send(r->request);
  }
};
using echo_service = tenorite::service<unsigned long, unsigned long, int, echo_worker, int>;

asio::awaitable<unsigned long> loop(echo_service::caller_type c, unsigned long n) {
  unsigned long sum = 0;
  for (unsigned long i = 0; i < n; ++i) {
    unsigned long v = i;
    auto r = co_await c.send_request(std::move(v));
    if (!r || *r != i) std::abort();
    sum += *r;
  }
  co_return sum;
}

int main(int argc, char** argv) {
  unsigned long n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  tenorite::runtime rt(2);
  auto [task, caller] = echo_service{}.start_task(rt, 32, 0);
  std::printf("%lu\n", rt.block_on(loop(caller, n)));
}
