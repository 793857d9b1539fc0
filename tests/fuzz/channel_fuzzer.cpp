// SPDX-License-Identifier: BSL-1.0
// libFuzzer target: random operation sequences on a channel, checked against the model.
#include "channel_ops.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::run(data, size);
  return 0;
}
