// SPDX-License-Identifier: BSL-1.0
// Replays the fuzz corpus (tests/fuzz/corpus) and seeded random operation sequences through
// the channel-vs-model checker, with any compiler (the libFuzzer target needs clang).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "fuzz/channel_ops.hpp"

TEST(FuzzReplay, CorpusMatchesTheModel) {
  int files = 0;
  for (auto& entry : std::filesystem::directory_iterator(TENORITE_FUZZ_CORPUS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
    fuzz::run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    ++files;
  }
  EXPECT_GT(files, 0);
}

TEST(FuzzReplay, SeededRandomSequencesMatchTheModel) {
  std::mt19937 rng(20261128);
  for (int n = 0; n < 3000; ++n) {
    std::vector<std::uint8_t> bytes(1 + rng() % 64);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
    fuzz::run(bytes.data(), bytes.size());
  }
}
