// SPDX-License-Identifier: BSL-1.0
// The default codec: round trips of the kv example's types and of every supported kind,
// malformed and hostile input rejected with a reason (never undefined behaviour), size limit.
#include <gtest/gtest.h>

#include <cstdint>
#include <kv_service/kv.hpp>
#include <random>
#include <string>
#include <tenorite/nats/codec.hpp>
#include <tenorite/nats/remote_caller.hpp>
#include <charconv>
#include <variant>
#include <vector>

namespace kv {  // comparisons for the assertions (found by ADL inside std::variant)
bool operator==(const set& a, const set& b) { return a.key == b.key && a.value == b.value; }
bool operator==(const get& a, const get& b) { return a.key == b.key; }
bool operator==(const del& a, const del& b) { return a.key == b.key; }
}  // namespace kv

namespace {

using tenorite::nats::binary_codec;

template <class T>
std::string encode(const T& v, const binary_codec& c = {}) {
  std::string out;
  auto r = c.encode(v, out);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().reason);
  return out;
}

template <class T>
T round_trip(const T& v) {
  binary_codec c;
  auto bytes = encode(v, c);
  auto back = c.decode<T>(bytes);
  EXPECT_TRUE(back.has_value()) << (back ? "" : back.error().reason);
  return back ? std::move(*back) : T{};
}

enum class colour : std::uint8_t { red = 1, green = 2 };

struct everything {
  bool flag;
  std::int8_t i8;
  std::uint16_t u16;
  std::int32_t i32;
  std::uint64_t u64;
  float f;
  double d;
  colour c;
  std::string s;
  std::optional<std::string> maybe;
  std::vector<std::int32_t> numbers;
  std::vector<bool> bits;
  std::vector<std::string> words;
  std::array<std::uint8_t, 3> three;
  std::pair<int, std::string> pair;
  std::tuple<double, std::optional<int>> tuple;
  std::variant<std::monostate, int, std::string> alt;
  std::vector<kv::request> nested;
};


TEST(NatsCodec, KvRequestsRoundTrip) {
  for (kv::request r : {kv::request(kv::set{"name", "tenorite"}), kv::request(kv::get{"a"}),
                        kv::request(kv::del{""}), kv::request(kv::set{"", ""})}) {
    EXPECT_EQ(round_trip(r), r);
  }
}

TEST(NatsCodec, KvResponsesAndErrorsRoundTrip) {
  auto ok = round_trip(kv::response(kv::ok{}));
  EXPECT_EQ(ok.index(), 0u);
  auto found = round_trip(kv::response(kv::found{"v"}));
  ASSERT_EQ(found.index(), 1u);
  EXPECT_EQ(std::get<kv::found>(found).value, std::optional<std::string>("v"));
  auto missing = round_trip(kv::response(kv::found{std::nullopt}));
  ASSERT_EQ(missing.index(), 1u);
  EXPECT_FALSE(std::get<kv::found>(missing).value);
  auto e = round_trip(kv::error(kv::invalid_key{"a b"}));
  ASSERT_EQ(e.index(), 0u);
  EXPECT_EQ(std::get<kv::invalid_key>(e).key, "a b");
  auto u = round_trip(kv::error(kv::unexpected{"no such key: x"}));
  ASSERT_EQ(u.index(), 1u);
  EXPECT_EQ(std::get<kv::unexpected>(u).what, "no such key: x");
}

TEST(NatsCodec, EveryKindRoundTrips) {
  everything v{true,
               -5,
               65000,
               -123456,
               0xfedcba9876543210ull,
               1.5f,
               -2.25e300,
               colour::green,
               std::string("with\0nul", 8),
               "maybe",
               {1, -2, 3},
               {true, false, true},
               {"a", "", "ccc"},
               {7, 8, 9},
               {42, "forty-two"},
               {3.5, std::nullopt},
               std::string("alt"),
               {kv::set{"k", "v"}, kv::del{"k"}}};
  everything b = round_trip(v);
  EXPECT_EQ(b.flag, v.flag);
  EXPECT_EQ(b.i8, v.i8);
  EXPECT_EQ(b.u16, v.u16);
  EXPECT_EQ(b.i32, v.i32);
  EXPECT_EQ(b.u64, v.u64);
  EXPECT_EQ(b.f, v.f);
  EXPECT_EQ(b.d, v.d);
  EXPECT_EQ(b.c, v.c);
  EXPECT_EQ(b.s, v.s);
  EXPECT_EQ(b.maybe, v.maybe);
  EXPECT_EQ(b.numbers, v.numbers);
  EXPECT_EQ(b.bits, v.bits);
  EXPECT_EQ(b.words, v.words);
  EXPECT_EQ(b.three, v.three);
  EXPECT_EQ(b.pair, v.pair);
  EXPECT_EQ(b.tuple, v.tuple);
  EXPECT_EQ(b.alt, v.alt);
  EXPECT_EQ(b.nested, v.nested);
}

TEST(NatsCodec, FormatIsLittleEndianAndCompact) {
  // variant index 0 (set), then two u32-length-prefixed strings.
  EXPECT_EQ(encode(kv::request(kv::set{"k", "vv"})), std::string("\x00\x01\x00\x00\x00k\x02\x00\x00\x00vv", 12));
  EXPECT_EQ(encode(std::uint32_t{0x01020304}), std::string("\x04\x03\x02\x01", 4));
  EXPECT_EQ(encode(kv::response(kv::ok{})), std::string("\x00", 1));
}

TEST(NatsCodec, EveryTruncationIsRejected) {
  binary_codec c;
  std::string full = encode(kv::request(kv::set{"key", "value"}));
  for (std::size_t n = 0; n < full.size(); ++n) {
    auto r = c.decode<kv::request>(std::string_view(full).substr(0, n));
    ASSERT_FALSE(r) << "prefix of " << n << " bytes decoded";
    EXPECT_FALSE(r.error().reason.empty());
  }
}

TEST(NatsCodec, BadTagsAndTrailingBytesAreRejected) {
  binary_codec c;
  auto bad_index = c.decode<kv::request>(std::string("\x07\x00\x00\x00\x00", 5));
  ASSERT_FALSE(bad_index);
  EXPECT_NE(bad_index.error().reason.find("index"), std::string::npos);
  auto bad_bool = c.decode<bool>(std::string("\x02", 1));
  ASSERT_FALSE(bad_bool);
  auto bad_optional = c.decode<std::optional<int>>(std::string("\x05", 1));
  ASSERT_FALSE(bad_optional);
  std::string trailing = encode(kv::request(kv::get{"a"})) + "x";
  auto t = c.decode<kv::request>(trailing);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().reason.find("trailing"), std::string::npos);
}

TEST(NatsCodec, HostileLengthsAllocateNothingHuge) {
  binary_codec c;
  // A string and a vector that claim 4 GiB in a 9-byte message.
  auto s = c.decode<std::string>(std::string("\xff\xff\xff\xff" "abcde", 9));
  ASSERT_FALSE(s);
  auto v = c.decode<std::vector<std::uint64_t>>(std::string("\xff\xff\xff\xff" "abcde", 9));
  ASSERT_FALSE(v);
  // Elements that take no byte: bounded by max_size, not by the claimed count.
  auto e = c.decode<std::vector<kv::ok>>(std::string("\xff\xff\xff\xff", 4));
  ASSERT_FALSE(e);
  auto fine = c.decode<std::vector<kv::ok>>(std::string("\x03\x00\x00\x00", 4));
  ASSERT_TRUE(fine);
  EXPECT_EQ(fine->size(), 3u);
}

struct tree {
  std::vector<tree> children;
};

TEST(NatsCodec, DeepNestingIsRejectedNotOverflowed) {
  binary_codec c;
  c.max_depth = 16;
  // Each level: a vector of one child. 10000 levels would overflow a naive recursive decoder.
  std::string deep;
  for (int i = 0; i < 10000; ++i) deep.append("\x01\x00\x00\x00", 4);
  deep.append("\x00\x00\x00\x00", 4);
  auto r = c.decode<tree>(deep);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().reason.find("max_depth"), std::string::npos);
  tree shallow{{tree{}, tree{{tree{}}}}};
  std::string bytes = encode(shallow, c);
  auto back = c.decode<tree>(bytes);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->children.size(), 2u);
  EXPECT_EQ(back->children[1].children.size(), 1u);
}

TEST(NatsCodec, SizeLimitBothWays) {
  binary_codec c;
  c.max_size = 64;
  std::string out = "prefix";
  auto too_big = c.encode(std::string(100, 'x'), out);
  ASSERT_FALSE(too_big);
  EXPECT_NE(too_big.error().reason.find("max_size"), std::string::npos);
  EXPECT_EQ(out, "prefix");  // nothing half-written is left behind
  ASSERT_TRUE(c.encode(std::string(60, 'x'), out));
  binary_codec big;
  std::string large = encode(std::string(100, 'x'), big);
  auto r = c.decode<std::string>(large);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().reason.find("max_size"), std::string::npos);
}

// Random bytes and random mutations of valid messages: decoding either succeeds or fails
// with a reason; sanitizers catch anything worse. (tests/nats/codec_fuzzer.cpp is the
// libFuzzer version.)
TEST(NatsCodec, RandomAndMutatedInputNeverMisbehaves) {
  binary_codec c;
  std::mt19937 rng(12345);
  std::vector<std::string> seeds = {encode(kv::request(kv::set{"key", "value"})),
                                    encode(kv::response(kv::found{"v"})),
                                    encode(kv::error(kv::unexpected{"why"}))};
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string in;
    if (i % 2 == 0) {
      in.resize(rng() % 24);
      for (auto& ch : in) ch = static_cast<char>(rng());
    } else {
      in = seeds[rng() % seeds.size()];
      for (int m = 0; m < 3; ++m)
        if (!in.empty()) in[rng() % in.size()] = static_cast<char>(rng());
    }
    auto a = c.decode<kv::request>(in);
    auto b = c.decode<kv::response>(in);
    auto e = c.decode<kv::error>(in);
    for (const std::string* reason : {a ? nullptr : &a.error().reason,
                                      b ? nullptr : &b.error().reason,
                                      e ? nullptr : &e.error().reason})
      if (reason) {
        EXPECT_FALSE(reason->empty());
      }
    decoded += static_cast<int>(a.has_value()) + b.has_value() + e.has_value();
  }
  EXPECT_GT(decoded, 0);
}

struct text_codec {  // a plugged-in codec: decimal text for ints
  template <class T>
  std::expected<void, tenorite::nats::codec_error> encode(const T& v, std::string& out) const {
    out += std::to_string(v);
    return {};
  }
  template <class T>
  std::expected<T, tenorite::nats::codec_error> decode(std::string_view in) const {
    T v{};
    auto [p, ec] = std::from_chars(in.data(), in.data() + in.size(), v);
    if (ec != std::errc() || p != in.data() + in.size())
      return std::unexpected(tenorite::nats::codec_error{"not a number"});
    return v;
  }
};
static_assert(tenorite::nats::service_codec<text_codec, int, long, int>);
static_assert(tenorite::nats::service_codec<binary_codec, kv::request, kv::response, kv::error>);

// The example of docs/binary-format.md, byte for byte: the spec and the code agree.
TEST(BinaryWire, TheSpecsExampleIsWhatTravels) {
  std::string request;
  ASSERT_TRUE(tenorite::nats::detail::encode_request(
      binary_codec{}, kv::request(kv::set{"name", "tenorite"}), request));
  EXPECT_EQ(request, std::string("\x01\x00\x04\x00\x00\x00name\x08\x00\x00\x00tenorite", 22));
  std::optional<kv::request> back;
  const std::string ok("\x01\x00\x00", 3);
  auto r = tenorite::nats::detail::decode_reply<kv::request, kv::response, kv::error>(
      binary_codec{}, tenorite::nats::detail::reply_view{ok, {}, {}, {}}, back);
  ASSERT_TRUE(r);
  EXPECT_TRUE(std::holds_alternative<kv::ok>(*r));
  // The previous, unversioned format (status byte first) is refused with a reason.
  const std::string old("\x00\x00", 2);
  auto o = tenorite::nats::detail::decode_reply<kv::request, kv::response, kv::error>(
      binary_codec{}, tenorite::nats::detail::reply_view{old, {}, {}, {}}, back);
  ASSERT_FALSE(o);
  EXPECT_EQ(o.error().kind(), tenorite::error_kind::fetch_failure);
  EXPECT_NE(o.error().reason().find("binary wire version 1"), std::string::npos)
      << o.error().reason();
}

}  // namespace
