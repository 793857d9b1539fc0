// SPDX-License-Identifier: BSL-1.0
// Replays the NATS decoder fuzz corpus (tests/nats/fuzz_corpus) and seeded random inputs
// through the fuzz checks (codec_fuzz.hpp), with any compiler. JSON gets random texts of its
// own: random bytes are almost never JSON, random sequences of JSON fragments often are.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "codec_fuzz.hpp"

TEST(NatsFuzzReplay, Corpus) {
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TENORITE_NATS_FUZZ_CORPUS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    nats_fuzz::run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    ++n;
  }
  EXPECT_GT(n, 0u);
}

TEST(NatsFuzzReplay, SeededRandomInputs) {
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::uint8_t> bytes(rng() % 64);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng() % 8 == 0 ? rng() : rng() % 4);
    nats_fuzz::run(bytes.data(), bytes.size());
  }
}

#if TENORITE_NATS_FUZZ_JSON
namespace {
// A random JSON value from the kv types' and the rich type's vocabulary, sometimes one byte
// off, so that both the decoders' paths past parsing and the parser's errors are exercised.
void random_json(std::mt19937& rng, int depth, std::string& out) {
  static constexpr std::string_view keys[] = {
      "set", "get", "del", "ok", "found", "invalid_key", "unexpected", "key", "value", "what",
      "id", "name", "items", "two", "t", "bits", "m", "v", "null", "string", "array", "leaf",
      "flag", "ratio", "f", "s", "l", "numbers", "\u00e9", "a b"};
  static constexpr std::string_view scalars[] = {
      "null", "true", "false", "0", "-1", "255", "65536", "1.5", "1e400", "-0",
      "18446744073709551616", "\"k\"", "\"dark\"", "\"\\ud83d\\ude00\"", "\"\\ud800\"",
      "\"\\u0000\"", "\"\xc3\xa9\""};
  const unsigned pick = depth > 3 ? 2 : rng() % 3;
  if (pick == 0) {
    out += '{';
    for (unsigned i = 0, n = rng() % 4; i < n; ++i) {
      out += (i ? ",\"" : "\"");
      out += keys[rng() % std::size(keys)];
      out += "\":";
      random_json(rng, depth + 1, out);
    }
    out += '}';
  } else if (pick == 1) {
    out += '[';
    for (unsigned i = 0, n = rng() % 4; i < n; ++i) {
      if (i) out += ',';
      random_json(rng, depth + 1, out);
    }
    out += ']';
  } else {
    out += scalars[rng() % std::size(scalars)];
  }
}
}  // namespace

TEST(NatsFuzzReplay, SeededRandomJson) {
  std::mt19937 rng(11);
  std::size_t decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    // Selectors (codec_fuzz.hpp): 6..9 round trips (plus 11: the shallow codec for 9), 10 a
    // micro reply, whose next byte picks its error headers.
    const unsigned sel = rng() % 5;
    std::string text(1, static_cast<char>(sel < 4 ? 6 + sel + (rng() % 2) * 11 : 10));
    if (sel == 4) text.push_back(static_cast<char>(rng() % 16));
    random_json(rng, 0, text);
    if (rng() % 8 == 0 && text.size() > 1) text[1 + rng() % (text.size() - 1)] ^= 1 << (rng() % 8);
    nats_fuzz::run(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    decoded += tenorite::nats::json_codec{}.decode<kv::response>(text.substr(1)).has_value();
  }
  // Some texts are valid responses (e.g. {"ok":{}}): the checks past decoding ran.
  EXPECT_GT(decoded, 0u);
}
#endif
