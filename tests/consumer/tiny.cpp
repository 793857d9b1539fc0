// SPDX-License-Identifier: BSL-1.0
// The smallest use of tenorite, built by tests/consumer/CMakeLists.txt when tenorite comes
// from add_subdirectory() or FetchContent: one service, one blocking call, a clean end.
#include <cstdio>
#include <string>
#include <tenorite/tenorite.hpp>
#include <tenorite/version.hpp>

struct doubler {
  static boost::asio::awaitable<void> task(
      tenorite::receiver<tenorite::request<int, int, std::string>> rx, int factor) {
    while (auto r = co_await rx.recv()) r->client.send(r->request * factor);
  }
};
using doubler_service = tenorite::service<int, int, std::string, doubler, int>;

int main() {
  auto [task, caller] = doubler_service{}.start_task(4, 2);
  auto r = caller.send_request_blocking(21);
  if (!r || *r != 42) {
    std::fprintf(stderr, "consumer: the call did not answer 42\n");
    return 1;
  }
  caller = {};
  if (!task.wait().has_value()) {
    std::fprintf(stderr, "consumer: the worker did not end cleanly\n");
    return 1;
  }
  static_assert(TENORITE_VERSION == TENORITE_VERSION_MAJOR * 100000 +
                                        TENORITE_VERSION_MINOR * 100 + TENORITE_VERSION_PATCH);
  std::printf("consumer (%s): tenorite %s: all checks passed\n", TENORITE_CONSUME,
              TENORITE_VERSION_STRING);
  return 0;
}
