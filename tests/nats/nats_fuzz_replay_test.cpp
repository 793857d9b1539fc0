// SPDX-License-Identifier: BSL-1.0
// Replays the NATS decoder fuzz corpus (tests/nats/fuzz_corpus) and seeded random inputs
// through the fuzz checks (codec_fuzz.hpp), with any compiler.
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
