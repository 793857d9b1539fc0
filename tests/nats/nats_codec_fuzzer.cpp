// SPDX-License-Identifier: BSL-1.0
// libFuzzer target (clang, TENORITE_FUZZ): the NATS component's decoders (codec_fuzz.hpp).
#include "codec_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  nats_fuzz::run(data, size);
  return 0;
}
