// SPDX-License-Identifier: BSL-1.0
// json_codec: the exact JSON of the kv example's types (a contract other programs rely on),
// round trips of every supported kind, every decode error with its message and path, the
// limits (size, depth), UTF-8 both ways, numbers at and beyond their ranges.
#include <tenorite/nats/json_codec.hpp>  // first: the header compiles on its own

#include <gtest/gtest.h>

#include <array>
#include <boost/describe/class.hpp>
#include <boost/describe/enum.hpp>
#include <cmath>
#include <cstdint>
#include <kv_remote/kv_json.hpp>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace kv {  // comparisons for the assertions (found by ADL inside std::variant)
bool operator==(const set& a, const set& b) { return a.key == b.key && a.value == b.value; }
bool operator==(const get& a, const get& b) { return a.key == b.key; }
bool operator==(const del& a, const del& b) { return a.key == b.key; }
bool operator==(const ok&, const ok&) { return true; }
bool operator==(const found& a, const found& b) { return a.value == b.value; }
bool operator==(const invalid_key& a, const invalid_key& b) { return a.key == b.key; }
bool operator==(const unexpected& a, const unexpected& b) { return a.what == b.what; }
}  // namespace kv

namespace test_types {

enum class colour : std::uint8_t { red = 1, green = 2 };
BOOST_DESCRIBE_ENUM(colour, red, green)
enum class raw : std::int16_t { a = -7, b = 300 };  // not described: its integer

struct point {
  std::int32_t x;
  std::int32_t y;
  bool operator==(const point&) const = default;
};
BOOST_DESCRIBE_STRUCT(point, (), (x, y))

struct labelled : point {
  std::string label;
  bool operator==(const labelled&) const = default;
};
BOOST_DESCRIBE_STRUCT(labelled, (point), (label))

struct empty {
  bool operator==(const empty&) const = default;
};
BOOST_DESCRIBE_STRUCT(empty, (), ())

struct everything {
  bool flag;
  std::int8_t i8;
  std::uint8_t u8;
  std::int16_t i16;
  std::uint16_t u16;
  std::int32_t i32;
  std::uint32_t u32;
  std::int64_t i64;
  std::uint64_t u64;
  float f;
  double d;
  colour c;
  raw r;
  std::string s;
  std::optional<std::string> maybe;
  std::optional<std::int32_t> nothing;
  std::vector<std::int32_t> numbers;
  std::vector<bool> bits;
  std::array<std::uint8_t, 3> three;
  std::map<std::string, point> by_name;
  std::unordered_map<std::string, std::int32_t> counts;
  std::pair<std::int32_t, std::string> pair;
  std::tuple<double, std::optional<std::int32_t>, colour> tuple;
  std::variant<std::monostate, std::int32_t, std::string, point> v;
  std::monostate nil;
  labelled derived;
  empty none;
  std::vector<std::variant<bool, double, labelled>> mixed;
  bool operator==(const everything&) const = default;
};
BOOST_DESCRIBE_STRUCT(everything, (),
                      (flag, i8, u8, i16, u16, i32, u32, i64, u64, f, d, c, r, s, maybe, nothing,
                       numbers, bits, three, by_name, counts, pair, tuple, v, nil, derived,
                       none, mixed))

struct numbers {
  std::uint8_t u8;
  std::int32_t i32;
  std::uint64_t u64;
  float f;
  double d;
};
BOOST_DESCRIBE_STRUCT(numbers, (), (u8, i32, u64, f, d))

struct with_colour {
  colour c;
};
BOOST_DESCRIBE_STRUCT(with_colour, (), (c))

struct nested {
  std::map<std::string, std::int32_t> m;
  std::vector<point> points;
  std::array<std::int32_t, 2> two;
  std::tuple<bool, std::string> t;
};
BOOST_DESCRIBE_STRUCT(nested, (), (m, points, two, t))

namespace deep {
struct remove {
  std::string key;
};
BOOST_DESCRIBE_STRUCT(remove, (), (key))
struct outer {
  struct inner {
    std::int32_t n;
  };
};
BOOST_DESCRIBE_STRUCT(outer::inner, (), (n))
}  // namespace deep

}  // namespace test_types

// A chosen tag, overriding the default ("remove").
template <>
inline constexpr std::string_view tenorite::nats::json_tag<test_types::deep::remove> = "delete";

namespace {

using tenorite::nats::json_codec;
namespace tt = test_types;

static_assert(tenorite::nats::codec_for<json_codec, kv::request>);
static_assert(tenorite::nats::service_codec<json_codec, kv::request, kv::response, kv::error>);
static_assert(json_codec::wire == tenorite::nats::wire_format::micro);
static_assert(tenorite::nats::binary_codec::wire == tenorite::nats::wire_format::binary);
// Default tags: the name without namespaces or enclosing classes; fixed names otherwise.
static_assert(tenorite::nats::json_tag<kv::set> == "set");
static_assert(tenorite::nats::json_tag<kv::invalid_key> == "invalid_key");
static_assert(tenorite::nats::json_tag<tt::deep::outer::inner> == "inner");
static_assert(tenorite::nats::json_tag<tt::colour> == "colour");
static_assert(tenorite::nats::json_tag<tt::deep::remove> == "delete");
static_assert(tenorite::nats::json_tag<std::int32_t> == "int32");
static_assert(tenorite::nats::json_tag<std::uint64_t> == "uint64");
static_assert(tenorite::nats::json_tag<std::string> == "string");
static_assert(tenorite::nats::json_tag<std::monostate> == "null");
static_assert(tenorite::nats::json_tag<std::vector<int>> == "array");
static_assert(tenorite::nats::json_tag<std::pair<int, int>> == "pair");
static_assert(tenorite::nats::json_tag<std::tuple<int, int>> == "tuple");
static_assert(tenorite::nats::detail::json::distinct_tags<kv::set, kv::get, kv::del>());
static_assert(!tenorite::nats::detail::json::distinct_tags<std::int64_t, long long>());

template <class T>
std::string encode(const T& v, const json_codec& c = {}) {
  std::string out;
  auto r = c.encode(v, out);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().reason);
  return out;
}

template <class T>
std::string encode_error(const T& v, const json_codec& c = {}) {
  std::string out = "kept";
  auto r = c.encode(v, out);
  EXPECT_FALSE(r.has_value()) << "encoded: " << out;
  EXPECT_EQ(out, "kept");  // nothing appended on failure
  return r ? std::string() : r.error().reason;
}

template <class T>
T decode(std::string_view in, const json_codec& c = {}) {
  auto r = c.decode<T>(in);
  EXPECT_TRUE(r.has_value()) << in << ": " << (r ? "" : r.error().reason);
  return r ? std::move(*r) : T{};
}

template <class T>
std::string decode_error(std::string_view in, const json_codec& c = {}) {
  auto r = c.decode<T>(in);
  EXPECT_FALSE(r.has_value()) << in << " decoded";
  return r ? std::string() : r.error().reason;
}

template <class T>
T round_trip(const T& v) {
  return decode<T>(encode(v));
}

TEST(JsonCodec, KvShapesAreTheContract) {
  EXPECT_EQ(encode(kv::request{kv::set{"name", "tenorite"}}),
            R"({"set":{"key":"name","value":"tenorite"}})");
  EXPECT_EQ(encode(kv::request{kv::get{"name"}}), R"({"get":{"key":"name"}})");
  EXPECT_EQ(encode(kv::request{kv::del{"name"}}), R"({"del":{"key":"name"}})");
  EXPECT_EQ(encode(kv::response{kv::found{std::nullopt}}), R"({"found":{"value":null}})");
  EXPECT_EQ(encode(kv::response{kv::found{"v"}}), R"({"found":{"value":"v"}})");
  EXPECT_EQ(encode(kv::response{kv::ok{}}), R"({"ok":{}})");
  EXPECT_EQ(encode(kv::error{kv::invalid_key{"a b"}}), R"({"invalid_key":{"key":"a b"}})");
  EXPECT_EQ(encode(kv::error{kv::unexpected{"boom"}}), R"({"unexpected":{"what":"boom"}})");

  // What a JavaScript peer writes (spaces, any key order) decodes to the same values.
  EXPECT_EQ(decode<kv::request>(R"( { "set" : { "value" : "tenorite", "key" : "name" } } )"),
            kv::request(kv::set{"name", "tenorite"}));
  EXPECT_EQ(decode<kv::response>(R"({"found":{"value":null}})"),
            kv::response(kv::found{std::nullopt}));
  EXPECT_EQ(decode<kv::response>(R"({"found":{}})"), kv::response(kv::found{std::nullopt}));
  EXPECT_EQ(decode<kv::response>(R"({"ok":{}})"), kv::response(kv::ok{}));
  EXPECT_EQ(decode<kv::error>(R"({"invalid_key":{"key":"a b"}})"),
            kv::error(kv::invalid_key{"a b"}));
}

TEST(JsonCodec, EncodeAppends) {
  std::string out = "prefix:";
  ASSERT_TRUE(json_codec{}.encode(kv::request{kv::get{"k"}}, out));
  EXPECT_EQ(out, R"(prefix:{"get":{"key":"k"}})");
}

tt::everything sample() {
  tt::everything e{};
  e.flag = true;
  e.i8 = -128;
  e.u8 = 255;
  e.i16 = -32768;
  e.u16 = 65535;
  e.i32 = std::numeric_limits<std::int32_t>::min();
  e.u32 = std::numeric_limits<std::uint32_t>::max();
  e.i64 = std::numeric_limits<std::int64_t>::min();
  e.u64 = std::numeric_limits<std::uint64_t>::max();
  e.f = 0.1f;
  e.d = -1.0 / 3.0;
  e.c = tt::colour::green;
  e.r = tt::raw::b;
  e.s = "h\xC3\xA9llo \xF0\x9F\x98\x80 \"quoted\" \\ \n\t\x01";
  e.maybe = "here";
  e.numbers = {1, -2, 3};
  e.bits = {true, false, true};
  e.three = {7, 8, 9};
  e.by_name = {{"a b", {1, 2}}, {"z", {-1, 0}}};
  e.counts = {{"one", 1}, {"two", 2}};
  e.pair = {5, "five"};
  e.tuple = {2.5, std::nullopt, tt::colour::red};
  e.v = tt::point{3, 4};
  e.derived = {{10, 20}, "ten"};
  e.mixed = {true, 1.5, tt::labelled{{1, 1}, "l"}};
  return e;
}

TEST(JsonCodec, RoundTripsEveryKind) {
  const auto e = sample();
  EXPECT_EQ(round_trip(e), e);
  auto empties = tt::everything{};
  empties.c = tt::colour::red;  // 0 has no name (EnumsByName)
  std::get<2>(empties.tuple) = tt::colour::red;
  EXPECT_EQ(round_trip(empties), empties);
  for (auto v : {decltype(e.v){}, decltype(e.v){std::int32_t{-9}}, decltype(e.v){"x"}}) {
    auto copy = e;
    copy.v = v;
    EXPECT_EQ(round_trip(copy), copy);
  }
  EXPECT_EQ(round_trip(std::string()), "");
  EXPECT_EQ(round_trip(std::vector<std::string>{}), std::vector<std::string>{});
  EXPECT_EQ(round_trip(std::optional<std::vector<int>>{}), std::nullopt);
}

TEST(JsonCodec, ShapeOfEachKind) {
  EXPECT_EQ(encode(true), "true");
  EXPECT_EQ(encode(false), "false");
  EXPECT_EQ(encode(std::int8_t{-5}), "-5");
  EXPECT_EQ(encode(std::numeric_limits<std::uint64_t>::max()), "18446744073709551615");
  EXPECT_EQ(encode(std::numeric_limits<std::int64_t>::min()), "-9223372036854775808");
  EXPECT_EQ(encode(1.5), "1.5");
  EXPECT_EQ(encode(2.0), "2");
  EXPECT_EQ(encode(1e300), "1e+300");
  EXPECT_EQ(encode(0.5f), "0.5");
  // A float is the double it converts to exactly, so it reads back bit for bit.
  EXPECT_EQ(encode(0.1f), "0.10000000149011612");
  EXPECT_EQ(decode<float>(encode(0.1f)), 0.1f);
  EXPECT_EQ(encode(tt::colour::green), R"("green")");
  EXPECT_EQ(encode(tt::raw::a), "-7");
  EXPECT_EQ(encode(std::string("a\"b\\c\n\x01\x1f/")), R"("a\"b\\c\n\u0001\u001f/")");
  EXPECT_EQ(encode(std::vector<int>{1, 2}), "[1,2]");
  EXPECT_EQ(encode(std::vector<bool>{true, false}), "[true,false]");
  EXPECT_EQ(encode(std::array<int, 2>{3, 4}), "[3,4]");
  EXPECT_EQ(encode(std::map<std::string, int>{{"b", 2}, {"a", 1}}), R"({"a":1,"b":2})");
  EXPECT_EQ(encode(std::optional<int>{}), "null");
  EXPECT_EQ(encode(std::optional<int>{4}), "4");
  EXPECT_EQ(encode(std::monostate{}), "null");
  EXPECT_EQ(encode(std::pair<int, std::string>{1, "x"}), R"([1,"x"])");
  EXPECT_EQ(encode(std::tuple<>{}), "[]");
  EXPECT_EQ(encode(std::tuple<bool, int, std::string>{true, 2, "3"}), R"([true,2,"3"])");
  using var = std::variant<std::monostate, bool, std::int32_t, std::string, double>;
  EXPECT_EQ(encode(var{}), R"({"null":null})");
  EXPECT_EQ(encode(var{true}), R"({"bool":true})");
  EXPECT_EQ(encode(var{std::int32_t{5}}), R"({"int32":5})");
  EXPECT_EQ(encode(var{std::string("s")}), R"({"string":"s"})");
  EXPECT_EQ(encode(var{0.25}), R"({"double":0.25})");
  EXPECT_EQ(encode(tt::empty{}), "{}");
  EXPECT_EQ(encode(tt::point{1, -2}), R"({"x":1,"y":-2})");
  EXPECT_EQ(encode(tt::labelled{{1, 2}, "p"}), R"({"x":1,"y":2,"label":"p"})");
  using tagged = std::variant<tt::deep::remove, tt::deep::outer::inner>;
  EXPECT_EQ(encode(tagged{tt::deep::remove{"k"}}), R"({"delete":{"key":"k"}})");
  EXPECT_EQ(encode(tagged{tt::deep::outer::inner{3}}), R"({"inner":{"n":3}})");
  EXPECT_EQ(std::get<tt::deep::remove>(decode<tagged>(R"({"delete":{"key":"k"}})")).key, "k");
  EXPECT_EQ(decode_error<tagged>(R"({"remove":{"key":"k"}})"),
            R"(json_codec: $: unknown alternative "remove" (expected one of delete, inner))");
}

TEST(JsonCodec, DecodeAcceptsIntegersForFloats) {
  auto n = decode<tt::numbers>(R"({"u8":1,"i32":2,"u64":3,"f":4,"d":-5})");
  EXPECT_EQ(n.f, 4.0f);
  EXPECT_EQ(n.d, -5.0);
  EXPECT_EQ(decode<double>("18446744073709551615"), 18446744073709551615.0);
  EXPECT_EQ(decode<double>("1E2"), 100.0);
}

TEST(JsonCodec, WrongKindsSayWhereAndWhat) {
  EXPECT_EQ(decode_error<kv::request>(R"({"set":{"key":1,"value":"v"}})"),
            "json_codec: $.set.key: expected a string, got a number");
  EXPECT_EQ(decode_error<kv::request>(R"({"get":{"key":null}})"),
            "json_codec: $.get.key: expected a string, got null");
  EXPECT_EQ(decode_error<kv::request>(R"({"get":[]})"),
            "json_codec: $.get: expected an object, got an array");
  EXPECT_EQ(decode_error<bool>("0"), "json_codec: $: expected true or false, got a number");
  EXPECT_EQ(decode_error<std::vector<int>>("{}"),
            "json_codec: $: expected an array, got an object");
  EXPECT_EQ(decode_error<std::vector<int>>(R"([1,2,"3"])"),
            "json_codec: $[2]: expected an integer (int32), got a string");
  EXPECT_EQ(decode_error<std::monostate>("false"), "json_codec: $: expected null, got a bool");
  EXPECT_EQ(decode_error<double>(R"("1")"),
            "json_codec: $: expected a number (double), got a string");
  EXPECT_EQ(decode_error<tt::nested>(
                R"({"m":{"a b":"x"},"points":[],"two":[1,2],"t":[true,""]})"),
            R"(json_codec: $.m["a b"]: expected an integer (int32), got a string)");
  EXPECT_EQ(decode_error<tt::nested>(
                R"({"m":{},"points":[{"x":1,"y":2},{"x":1}],"two":[1,2],"t":[true,""]})"),
            R"(json_codec: $.points[1]: missing key "y")");
  EXPECT_EQ(decode_error<tt::nested>(R"({"m":{},"points":[],"two":[1],"t":[true,""]})"),
            "json_codec: $.two: expected an array of 2 elements, got 1");
  EXPECT_EQ(decode_error<tt::nested>(R"({"m":{},"points":[],"two":{},"t":[true,""]})"),
            "json_codec: $.two: expected an array of 2 elements, got an object");
  EXPECT_EQ(decode_error<tt::nested>(R"({"m":{},"points":[],"two":[1,2],"t":[true]})"),
            "json_codec: $.t: expected an array of 2 elements, got 1");
  EXPECT_EQ(decode_error<tt::nested>(R"({"m":{},"points":[],"two":[1,2],"t":[true,1]})"),
            "json_codec: $.t[1]: expected a string, got a number");
}

TEST(JsonCodec, StructKeys) {
  // Unknown keys are ignored, whatever they hold: a newer peer may send more.
  EXPECT_EQ(decode<kv::request>(
                R"({"set":{"key":"k","extra":[1,{"deep":null}],"value":"v","more":true}})"),
            kv::request(kv::set{"k", "v"}));
  EXPECT_EQ(decode<tt::empty>(R"({"anything":1})"), tt::empty{});
  // A missing member is an error unless it is an optional.
  EXPECT_EQ(decode_error<kv::request>(R"({"set":{"key":"k"}})"),
            R"(json_codec: $.set: missing key "value")");
  auto e = encode(sample());
  auto without = e;
  const auto at = without.find(R"("maybe":"here",)");
  ASSERT_NE(at, std::string::npos);
  without.erase(at, std::string_view(R"("maybe":"here",)").size());
  EXPECT_EQ(decode<tt::everything>(without).maybe, std::nullopt);
  // A duplicate key is an error, at any depth (Boost.JSON would keep one silently).
  EXPECT_EQ(decode_error<kv::request>(R"({"set":{"key":"a","key":"b","value":"v"}})"),
            R"(json_codec: $.set: duplicate key "key")");
  EXPECT_EQ(decode_error<kv::request>(R"({"get":{"key":"a"},"get":{"key":"b"}})"),
            R"(json_codec: $: duplicate key "get")");
  EXPECT_EQ(decode_error<tt::nested>(R"({"m":{},"points":[{"x":1},{"x":1,"y":2,"x":3}]})"),
            R"(json_codec: $.points[1]: duplicate key "x")");
  // Keys compare after unescaping.
  EXPECT_EQ(decode_error<tt::point>(R"({"x":1,"\u0078":2,"y":3})"),
            R"(json_codec: $: duplicate key "x")");
  // A base's members are the struct's.
  EXPECT_EQ(decode_error<tt::labelled>(R"({"x":1,"label":"p"})"),
            R"(json_codec: $: missing key "y")");
}

TEST(JsonCodec, VariantNeedsExactlyOneKnownTag) {
  EXPECT_EQ(decode_error<kv::request>("{}"),
            "json_codec: $: expected an object with one key, the alternative's tag, got 0 keys");
  EXPECT_EQ(decode_error<kv::request>(R"({"get":{"key":"a"},"del":{"key":"b"}})"),
            "json_codec: $: expected an object with one key, the alternative's tag, got 2 keys");
  EXPECT_EQ(decode_error<kv::request>(R"("set")"),
            "json_codec: $: expected an object with one key, the alternative's tag, got a "
            "string");
  EXPECT_EQ(decode_error<kv::request>(R"({"put":{"key":"a"}})"),
            R"(json_codec: $: unknown alternative "put" (expected one of set, get, del))");
  EXPECT_EQ(decode_error<kv::error>(R"({"unexpected":{"what":[]}})"),
            "json_codec: $.unexpected.what: expected a string, got an array");
  using var = std::variant<std::monostate, std::int32_t>;
  EXPECT_EQ(decode<var>(R"({"null":null})"), var{});
  EXPECT_EQ(decode_error<var>(R"({"null":0})"),
            "json_codec: $.null: expected null, got a number");
  EXPECT_EQ(decode_error<var>("null"),
            "json_codec: $: expected an object with one key, the alternative's tag, got null");
}

TEST(JsonCodec, EnumsByName) {
  EXPECT_EQ(decode<tt::with_colour>(R"({"c":"red"})").c, tt::colour::red);
  EXPECT_EQ(decode_error<tt::with_colour>(R"({"c":"blue"})"),
            R"(json_codec: $.c: unknown enumerator "blue" of colour)");
  EXPECT_EQ(decode_error<tt::with_colour>(R"({"c":1})"),
            "json_codec: $.c: expected an enumerator name of colour, got a number");
  EXPECT_EQ(encode_error(tt::with_colour{static_cast<tt::colour>(9)}),
            "json_codec: $.c: the value 9 of enum colour has no described enumerator");
  // Undescribed: the underlying integer, range-checked as one.
  EXPECT_EQ(decode<tt::raw>("300"), tt::raw::b);
  EXPECT_EQ(decode_error<tt::raw>("40000"), "json_codec: $: 40000 is out of range of int16");
}

TEST(JsonCodec, IntegersAreRangeChecked) {
  const char* ok = R"({"u8":255,"i32":-2147483648,"u64":18446744073709551615,"f":0,"d":0})";
  const auto n = decode<tt::numbers>(ok);
  EXPECT_EQ(n.u8, 255);
  EXPECT_EQ(n.i32, std::numeric_limits<std::int32_t>::min());
  EXPECT_EQ(n.u64, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(decode_error<tt::numbers>(R"({"u8":256,"i32":0,"u64":0,"f":0,"d":0})"),
            "json_codec: $.u8: 256 is out of range of uint8");
  EXPECT_EQ(decode_error<tt::numbers>(R"({"u8":-1,"i32":0,"u64":0,"f":0,"d":0})"),
            "json_codec: $.u8: -1 is out of range of uint8");
  EXPECT_EQ(decode_error<tt::numbers>(R"({"u8":0,"i32":2147483648,"u64":0,"f":0,"d":0})"),
            "json_codec: $.i32: 2147483648 is out of range of int32");
  EXPECT_EQ(decode_error<tt::numbers>(R"({"u8":0,"i32":0,"u64":-1,"f":0,"d":0})"),
            "json_codec: $.u64: -1 is out of range of uint64");
  EXPECT_EQ(decode_error<tt::numbers>(R"({"u8":0,"i32":0,"u64":18446744073709551616,"f":0,
                                          "d":0})"),
            "json_codec: $.u64: 18446744073709551616 is out of range of uint64");
  EXPECT_EQ(decode_error<tt::numbers>(R"({"u8":0,"i32":1.5,"u64":0,"f":0,"d":0})"),
            "json_codec: $.i32: expected an integer (int32), got a number with a fraction or "
            "exponent (1.5)");
  EXPECT_EQ(decode_error<std::int64_t>("1e3"),
            "json_codec: $: expected an integer (int64), got a number with a fraction or "
            "exponent (1000)");
  EXPECT_EQ(decode_error<std::int64_t>("2.0"),
            "json_codec: $: expected an integer (int64), got a number with a fraction or "
            "exponent (2)");
  EXPECT_EQ(decode_error<float>("1e39"), "json_codec: $: 1e+39 is out of range of float");
  EXPECT_EQ(decode_error<double>("1e400"), "json_codec: $: a number out of range of double");
}

TEST(JsonCodec, NanAndInfinityCannotBeEncoded) {
  tt::numbers n{};
  n.d = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(encode_error(n), "json_codec: $.d: NaN cannot be encoded (JSON numbers are finite)");
  n.d = 0;
  n.f = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(encode_error(n),
            "json_codec: $.f: infinity cannot be encoded (JSON numbers are finite)");
  EXPECT_EQ(encode_error(std::vector<double>{1, std::numeric_limits<double>::infinity()}),
            "json_codec: $[1]: infinity cannot be encoded (JSON numbers are finite)");
}

TEST(JsonCodec, Utf8BothWays) {
  // Encode: invalid UTF-8 (a lone continuation byte, a truncated sequence, an overlong form,
  // a surrogate, beyond U+10FFFF) is refused, saying where.
  for (const char* bad : {"\x80", "a\xC3", "\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                          "\xFF"}) {
    SCOPED_TRACE(bad);
    const auto reason = encode_error(kv::request{kv::set{"k", bad}});
    EXPECT_EQ(reason.rfind("json_codec: $.set.value: invalid UTF-8 at byte ", 0), 0u) << reason;
  }
  EXPECT_EQ(encode_error(std::map<std::string, int>{{"\xFF", 1}}),
            "json_codec: $: invalid UTF-8 at byte 0 of a string (JSON text must be UTF-8)");
  const std::string good = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF";
  EXPECT_EQ(encode(good), "\"" + good + "\"");
  EXPECT_EQ(round_trip(good), good);
  // Decode: invalid UTF-8 anywhere in the text is refused; escapes decode to UTF-8.
  EXPECT_EQ(decode_error<std::string>("\"a\xFF\""),
            "json_codec: invalid UTF-8 at byte 2 (JSON text must be UTF-8)");
  EXPECT_EQ(decode_error<std::string>("\"\xED\xA0\x80\""),
            "json_codec: invalid UTF-8 at byte 1 (JSON text must be UTF-8)");
  EXPECT_EQ(decode<std::string>(R"("\u00e9\ud83d\ude00\u0000")"),
            std::string("\xC3\xA9\xF0\x9F\x98\x80", 6) + std::string(1, '\0'));
  EXPECT_FALSE(json_codec{}.decode<std::string>(R"("\ud800")"));  // a lone surrogate
  EXPECT_FALSE(json_codec{}.decode<std::string>(R"("\udc00")"));
}

TEST(JsonCodec, MalformedText) {
  EXPECT_EQ(decode_error<kv::request>(""), "json_codec: invalid JSON at byte 0: incomplete JSON");
  EXPECT_EQ(decode_error<kv::request>(R"({"get":{"key":"a"})"),
            "json_codec: invalid JSON at byte 18: incomplete JSON");
  EXPECT_EQ(decode_error<std::vector<int>>("[1,]"),
            "json_codec: invalid JSON at byte 3: syntax error");
  EXPECT_EQ(decode_error<std::vector<int>>("[1] [2]"),
            "json_codec: content after the JSON value, at byte 4");
  EXPECT_EQ(decode_error<std::vector<int>>("[1]x"),
            "json_codec: content after the JSON value, at byte 3");
  EXPECT_EQ(decode<std::vector<int>>(" [1] \n"), std::vector<int>{1});
  EXPECT_FALSE(json_codec{}.decode<std::vector<int>>("[1] // no comments"));
  EXPECT_FALSE(json_codec{}.decode<double>("NaN"));
  EXPECT_FALSE(json_codec{}.decode<std::string>("'single'"));
}

TEST(JsonCodec, SizeLimitBothWays) {
  const json_codec small{.max_size = 18};
  // {"get":{"key":"…"}} is 18 bytes plus the key.
  EXPECT_EQ(encode(kv::request{kv::get{""}}, small).size(), 18u);
  EXPECT_EQ(encode_error(kv::request{kv::get{"x"}}, small),
            "json_codec: the encoding exceeds max_size (18 bytes)");
  EXPECT_TRUE(small.decode<kv::request>(R"({"get":{"key":""}})"));
  EXPECT_EQ(decode_error<kv::request>(R"({"get":{"key":"x"}})", small),
            "json_codec: input of 19 bytes exceeds max_size (18 bytes)");
  // Whitespace counts: the limit is on the bytes received.
  EXPECT_EQ(decode_error<kv::request>(R"({ "get":{"key":""}})", small),
            "json_codec: input of 19 bytes exceeds max_size (18 bytes)");
  // max_size bounds what is appended, not what was in the string before.
  std::string out(100, '.');
  EXPECT_TRUE(small.encode(kv::request{kv::get{""}}, out));
  EXPECT_EQ(out.size(), 118u);
}

TEST(JsonCodec, DepthLimitBothWays) {
  using v3 = std::vector<std::vector<std::vector<int>>>;
  const json_codec two{.max_depth = 2};
  EXPECT_EQ(decode<std::vector<std::vector<int>>>("[[1]]", two),
            (std::vector<std::vector<int>>{{1}}));
  EXPECT_EQ(decode_error<v3>("[[[1]]]", two), "json_codec: nesting deeper than max_depth (2)");
  EXPECT_EQ(encode_error(v3{{{1}}}, two), "json_codec: $[0][0]: nesting deeper than max_depth (2)");
  EXPECT_EQ(encode(v3{{}}, two), "[[]]");
  // The variant's object counts: {"set":{...}} is two deep.
  EXPECT_TRUE(two.decode<kv::request>(R"({"get":{"key":"k"}})"));
  EXPECT_FALSE(json_codec{.max_depth = 1}.decode<kv::request>(R"({"get":{"key":"k"}})"));
  // Deep hostile input is refused by the parser, before any recursion into T.
  const std::string hostile = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(decode_error<v3>(hostile), "json_codec: nesting deeper than max_depth (64)");
}

}  // namespace
