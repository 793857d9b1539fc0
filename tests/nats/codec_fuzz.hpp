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
//
// With TENORITE_NATS_FUZZ_JSON, selector 10 decodes a micro-wire reply (json_reply) and
// selectors 6 to 9 decode the bytes as json_codec text (the kv
// types, described in kv_remote/kv_json.hpp, and a type using every JSON feature). JSON has
// many texts for one value (whitespace, escapes, number forms, missing optionals), so the
// check is: what decodes encodes, and that encoding decodes to an equal value which encodes
// to the same text.
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

#ifndef TENORITE_NATS_FUZZ_JSON
#define TENORITE_NATS_FUZZ_JSON 0
#endif
#if TENORITE_NATS_FUZZ_JSON
#include <boost/describe/class.hpp>
#include <boost/describe/enum.hpp>
#include <map>
#include <tenorite/nats/json_codec.hpp>

#include "kv_remote/kv_json.hpp"
#endif

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

#if TENORITE_NATS_FUZZ_JSON
namespace json {
enum class shade { light, dark };
BOOST_DESCRIBE_ENUM(shade, light, dark)
enum class level : std::int8_t { low = -1, high = 1 };  // not described: its integer
struct leaf {
  bool flag;
  double ratio;
  float f;
  shade s;
  level l;
  std::optional<std::vector<std::int32_t>> numbers;
  bool operator==(const leaf&) const = default;
};
BOOST_DESCRIBE_STRUCT(leaf, (), (flag, ratio, f, s, l, numbers))
struct base {
  std::uint32_t id;
  bool operator==(const base&) const = default;
};
BOOST_DESCRIBE_STRUCT(base, (), (id))
// A type using every feature of json_codec.
struct rich : base {
  std::string name;
  std::vector<leaf> items;
  std::array<std::uint16_t, 2> two;
  std::tuple<std::int64_t, std::uint64_t> t;
  std::pair<std::uint8_t, std::vector<bool>> bits;
  std::map<std::string, std::int16_t> m;
  std::variant<std::monostate, std::string, std::vector<std::optional<std::string>>, leaf> v;
  bool operator==(const rich&) const = default;
};
BOOST_DESCRIBE_STRUCT(rich, (base), (name, items, two, t, bits, m, v))
}  // namespace json

// Equality of the kv types through their canonical encoding (kv.hpp has no operator==); the
// rich type compares member by member.
template <class T>
bool same(const tenorite::nats::json_codec& codec, const T& a, const T& b) {
  std::string ea, eb;
  return codec.encode(a, ea) && codec.encode(b, eb) && ea == eb;
}
inline bool same(const tenorite::nats::json_codec&, const json::rich& a, const json::rich& b) {
  return a == b;
}

template <class T>
void json_round_trip(const tenorite::nats::json_codec& codec, std::string_view in) {
  auto decoded = codec.decode<T>(in);
  if (!decoded) {
    if (decoded.error().reason.rfind("json_codec: ", 0) != 0)
      violated("a JSON error without its prefix");
    return;
  }
  std::string text;
  if (!codec.encode(*decoded, text)) violated("a decoded value does not encode");
  auto again = codec.decode<T>(text);
  if (!again) violated("decode(encode(x)) fails");
  if (!same(codec, *decoded, *again)) violated("decode(encode(x)) != x");
  std::string text2;
  if (!codec.encode(*again, text2) || text2 != text) violated("encode is not deterministic");
}
#endif

#if TENORITE_NATS_FUZZ_JSON
// A micro-wire reply (json_codec) as any NATS service may send it: the first byte picks the
// error headers (none, a code, a code with a Tenorite-Error-Kind), the rest is the payload.
inline void json_reply(std::string_view in) {
  if (in.empty()) return;
  const tenorite::nats::json_codec codec;
  static constexpr std::string_view kinds[] = {"", "", "queue_full", "bad_request",
                                               "fetch_failure", "timed_out", "nonsense"};
  const auto pick = static_cast<unsigned char>(in[0]);
  tenorite::nats::detail::reply_view v{in.substr(1), {}, {}, {}};
  if (pick % 2) {
    v.code = "500";
    v.description = "fuzzed";
    v.kind = kinds[pick / 2 % std::size(kinds)];
  }
  std::optional<kv::request> request(kv::get{"the-key"});
  auto r = tenorite::nats::detail::decode_reply<kv::request, kv::response, kv::error>(codec, v,
                                                                                     request);
  if (r) {
    if (!v.code.empty()) violated("an error header read as a success");
    if (!codec.decode<kv::response>(v.payload)) violated("a success from an undecodable body");
    return;
  }
  const auto& e = r.error();
  if (e.kind() == tenorite::error_kind::service_error &&
      (v.code.empty() || !codec.decode<kv::error>(v.payload)))
    violated("a service error without its header and body");
  if (e.message().empty()) violated("a failure without a message");
  const bool back = e.kind() == tenorite::error_kind::queue_full ||
                    e.kind() == tenorite::error_kind::bad_request ||
                    e.kind() == tenorite::error_kind::send_failure;
  if (back != e.request().has_value()) violated("the request given back or kept wrongly");
}
#endif

inline void run(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const tenorite::nats::binary_codec codec;
  const tenorite::nats::binary_codec tight{.max_size = 4096, .max_depth = 4};
#if TENORITE_NATS_FUZZ_JSON
  constexpr unsigned selectors = 11;
  const tenorite::nats::json_codec json;
  const tenorite::nats::json_codec shallow{.max_depth = 4};
  switch (data[0] % selectors) {
    case 6: return json_round_trip<kv::request>(json, in);
    case 7: return json_round_trip<kv::response>(json, in);
    case 8: return json_round_trip<kv::error>(json, in);
    case 9: return json_round_trip<json::rich>(data[0] % 22 < 11 ? json : shallow, in);
    case 10: return json_reply(in);
    default: break;
  }
#else
  constexpr unsigned selectors = 6;
#endif
  switch (data[0] % selectors) {
    case 0: round_trip<kv::request>(codec, in); break;
    case 1: round_trip<kv::response>(codec, in); break;
    case 2: round_trip<kv::error>(codec, in); break;
    case 3: reply(in); break;
    case 4: round_trip<rich>(codec, in); break;
    default: round_trip<rich>(tight, in); break;
  }
}

}  // namespace nats_fuzz
