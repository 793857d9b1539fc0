// SPDX-License-Identifier: BSL-1.0
// tenorite::nats through the installed package (find_package(tenorite COMPONENTS nats)): the
// component compiles, links against the nats.c the package config found, and works without a
// NATS server: the binary codec round-trips a plain struct, and connecting to a port nobody
// listens on fails with nats_error at once (nats.c's own status). Exits non-zero otherwise.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <tenorite/nats/codec.hpp>
#include <tenorite/nats/connection.hpp>
#include <vector>

#define CHECK(cond)                                                                         \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "consumer_nats: check failed: %s (line %d)\n", #cond, __LINE__); \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)

struct point {
  std::int32_t x;
  std::string label;
  std::optional<std::vector<std::uint16_t>> tags;
};

int main() {
  namespace tn = tenorite::nats;
  tn::binary_codec codec;
  std::string bytes;
  CHECK(codec.encode(point{7, "seven", std::vector<std::uint16_t>{1, 2}}, bytes).has_value());
  auto back = codec.decode<point>(bytes);
  CHECK(back.has_value() && back->x == 7 && back->label == "seven");
  CHECK(back->tags.has_value() && back->tags->size() == 2 && (*back->tags)[1] == 2);
  CHECK(!codec.decode<point>(std::string_view(bytes).substr(0, bytes.size() - 1)).has_value());

  // Port 1 on the loopback: refused at once (no server is needed, and none is waited for).
  bool refused = false;
  try {
    auto conn = tn::connection::connect(
        {.servers = {"nats://127.0.0.1:1"}, .allow_reconnect = false, .max_reconnect = 0});
  } catch (const tn::nats_error& e) {
    refused = e.status() != NATS_OK;
    std::printf("consumer_nats: connect failed as expected: %s\n", e.what());
  }
  CHECK(refused);
  nats_Close();  // nats.c's global state, so that leak checkers see nothing left
  std::puts("consumer_nats: all checks passed");
  return 0;
}
