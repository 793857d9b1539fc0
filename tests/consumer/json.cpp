// SPDX-License-Identifier: BSL-1.0
// tenorite::nats_json through the installed package: json_codec compiles and links (Boost.JSON
// compiled in this project by the package config, or Boost::json), and writes the documented
// shape of a described variant. Exits non-zero otherwise.
#include <boost/describe/class.hpp>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <tenorite/nats/json_codec.hpp>
#include <variant>

namespace shop {
struct buy {
  std::string item;
  std::optional<int> count;
};
BOOST_DESCRIBE_STRUCT(buy, (), (item, count))
struct cancel {};
BOOST_DESCRIBE_STRUCT(cancel, (), ())
using order = std::variant<buy, cancel>;
}  // namespace shop

int main() {
  const tenorite::nats::json_codec codec;
  std::string text;
  if (!codec.encode(shop::order{shop::buy{"tea", std::nullopt}}, text) ||
      text != R"({"buy":{"item":"tea","count":null}})") {
    std::fprintf(stderr, "consumer_json: encoded '%s'\n", text.c_str());
    return 1;
  }
  auto back = codec.decode<shop::order>(R"({"cancel":{}})");
  auto bad = codec.decode<shop::order>(R"({"buy":{"item":1}})");
  if (!back || back->index() != 1 || bad ||
      bad.error().reason != "json_codec: $.buy.item: expected a string, got a number") {
    std::fprintf(stderr, "consumer_json: decoding went wrong\n");
    return 1;
  }
  std::puts("consumer_json: all checks passed");
  return 0;
}
