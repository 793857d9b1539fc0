// SPDX-License-Identifier: BSL-1.0
// Fuzzing the NATS component's decoders: binary_codec decoding of the kv service's request,
// response and error types and of a type using every codec feature, and the remote caller's
// reply parsing (detail::decode_reply, what turns a reply's bytes into a call's outcome; the
// server's side of the wire is binary_codec decoding of the request).
//
// Input: one selector byte, then the bytes to decode. Checked, for any input: no crash (the
// sanitizers watch), and for what decodes, that re-encoding gives back exactly the input
// (binary_codec's format is canonical) and that decode(encode(x)) re-encodes the same. Used
// by the libFuzzer target (clang, TENORITE_FUZZ) and by the corpus replay test (any compiler).
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <tenorite/nats/codec.hpp>
#include <tenorite/nats/remote_caller.hpp>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "kv_service/kv.hpp"

namespace nats_fuzz {

enum class colour : std::uint8_t { red, green };
struct inner {
  bool flag;
  double ratio;
  colour c;
  std::optional<std::vector<std::int32_t>> numbers;
};
// A type using every feature of binary_codec.
struct rich {
  std::string name;
  std::vector<inner> items;
  std::array<std::uint16_t, 2> pair_of;
  std::tuple<std::int64_t, float> t;
  std::pair<std::uint8_t, std::vector<bool>> bits;
  std::variant<std::monostate, std::string, std::vector<std::optional<std::string>>> v;
};

[[noreturn]] inline void violated(const char* what) {
  std::fprintf(stderr, "nats codec fuzz: invariant violated: %s\n", what);
  std::abort();
}

template <class T, class Codec>
void round_trip(const Codec& codec, std::string_view in) {
  auto decoded = codec.template decode<T>(in);
  if (!decoded) {
    if (decoded.error().reason.empty()) violated("an error without a reason");
    return;
  }
  std::string again;
  if (!codec.encode(*decoded, again)) violated("a decoded value does not encode");
  if (again != in) violated("encode(decode(bytes)) != bytes");
  auto twice = codec.template decode<T>(again);
  if (!twice) violated("decode(encode(x)) fails");
  std::string third;
  if (!codec.encode(*twice, third) || third != again) violated("decode(encode(x)) != x");
}

inline void reply(std::string_view in) {
  const tenorite::nats::binary_codec codec;
  std::optional<kv::request> request(kv::get{"the-key"});
  auto r = tenorite::nats::detail::decode_reply<kv::request, kv::response, kv::error>(
      codec, tenorite::nats::detail::reply_view{in, {}, {}, {}}, request);
  // A binary reply is [version][status][body] (wire.hpp).
  const bool framed = in.size() >= 2 && in[0] == tenorite::nats::wire::binary_version;
  if (r) {
    if (!framed || in[1] != 0) violated("a response from a non-response status");
    std::string again;
    if (!codec.encode(*r, again) || again != in.substr(2)) violated("response round trip");
    return;
  }
  const auto& e = r.error();
  if (e.kind() == tenorite::error_kind::service_error) {
    std::string again;
    if (!framed || !codec.encode(e.service_error(), again) || again != in.substr(2))
      violated("service error round trip");
    return;
  }
  if (e.message().empty()) violated("a failure without a message");
  // The request comes back exactly when the outcome says it was never served.
  if (e.request()) {
    const auto* g = std::get_if<kv::get>(&*e.request());
    if (!g || g->key != "the-key") violated("a different request given back");
  }
}

inline void run(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const tenorite::nats::binary_codec codec;
  const tenorite::nats::binary_codec tight{.max_size = 4096, .max_depth = 4};
  switch (data[0] % 6) {
    case 0: round_trip<kv::request>(codec, in); break;
    case 1: round_trip<kv::response>(codec, in); break;
    case 2: round_trip<kv::error>(codec, in); break;
    case 3: reply(in); break;
    case 4: round_trip<rich>(codec, in); break;
    default: round_trip<rich>(tight, in); break;
  }
}

}  // namespace nats_fuzz
