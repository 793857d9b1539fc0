// SPDX-License-Identifier: BSL-1.0
// tenorite/nats/json_codec.hpp — requests, responses and errors as JSON text, the payloads
// every NATS client can read and write (wire_format::micro). docs/json.md has the same, with
// the kv example.
//
// Link tenorite::nats_json (tenorite::nats plus Boost.JSON, see the top-level CMakeLists.txt).
// Built on Boost.JSON because it is in Boost already (no new dependency), validates UTF-8,
// keeps int64 and uint64 exact and limits nesting depth while parsing; names come from
// Boost.Describe (Boost.PFR, which binary_codec uses, has no field names in Boost 1.81).
//
// The shape, stable (other programs rely on it):
//   bool                   true / false
//   integers               numbers, range-checked on decode; a fraction, an exponent or a
//                          value out of the type's range is an error naming the type. Mind
//                          that JavaScript's numbers lose precision above 2^53.
//   float, double          numbers (shortest text that reads back to the same double; a float
//                          is written as the double it converts to exactly); NaN and infinity
//                          cannot be encoded; decode accepts integers too; long double unsupported
//   enums                  described with BOOST_DESCRIBE_ENUM: the enumerator's name, a string
//                          (an unknown name is an error); other enums: the underlying integer
//   std::string            a string; it must be valid UTF-8 (encode fails otherwise)
//   std::vector<T>         an array
//   std::array<T, N>       an array of exactly N elements
//   std::map, std::unordered_map with std::string keys   an object
//   std::optional<T>       null when empty; as a struct member a missing key decodes as empty
//                          too (optional<optional<T>> and optional<monostate> are refused at
//                          compile time: both their empties would be null)
//   std::variant<Ts...>    externally tagged: {"<tag>": value}, exactly one key, the tag of
//                          the alternative held (json_tag below)
//   std::monostate         null (in a variant: {"null": null})
//   std::pair, std::tuple  an array of the members
//   structs                described with BOOST_DESCRIBE_STRUCT (public members, and those of
//                          described bases): an object keyed by member name, in declaration
//                          order; an empty struct is {}. Decode ignores unknown keys (a newer
//                          peer may send more), fails on a missing member that is not an
//                          optional, and on a duplicate key anywhere in the input
//   e.g. (examples/kv_remote/kv_json.hpp) kv::request{kv::set{"name", "tenorite"}} is
//   {"set":{"key":"name","value":"tenorite"}} and kv::response{kv::found{}} is
//   {"found":{"value":null}}. The output has no whitespace.
//
// Tags: json_tag<T>, a variable template to specialize (not a member, so that types one does
// not own, or that must not depend on NATS, can be tagged), e.g.
//   template <> inline constexpr std::string_view tenorite::nats::json_tag<kv::del> = "delete";
// Its default is the class's (or enum's) name without its namespace (kv::set -> "set", as
// GCC and Clang print it); a class template specialization has no default (the compilers
// print its arguments differently) and needs one. Other types have fixed tags: "bool", "int8"
// ... "int64", "uint8" ... "uint64" (by size), "float", "double", "string", "null"
// (std::monostate), "array" (vector, std::array), "object" (maps), "optional", "variant",
// "pair", "tuple". Two alternatives of a variant with the same tag fail to compile.
//
// Limits and errors: every failure is a codec_error whose reason starts with "json_codec: ";
// a decode error in the value says where, as a path: `json_codec: $.set.key: expected a
// string, got a number`. Refused: input larger than max_size, JSON nesting (arrays and
// objects) deeper than max_depth, invalid UTF-8, invalid JSON, content after the value;
// encoding fails when the output would exceed max_size or nest deeper than max_depth, on
// invalid UTF-8, NaN or infinity, a valueless variant, or an enum value without a name.
// Nothing throws but std::bad_alloc (out of memory, as with any std::string). Decoded types
// must be default-constructible.
#pragma once

#include <array>
#include <boost/container/pmr/memory_resource.hpp>
#include <boost/describe/enumerators.hpp>
#include <boost/describe/members.hpp>
#include <boost/describe/modifiers.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_stack.hpp>
#include <boost/mp11/algorithm.hpp>
#include <boost/system/error_code.hpp>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <limits>
#include <map>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tenorite/nats/codec.hpp>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace tenorite::nats {

namespace detail::json {

template <class T>
constexpr std::string_view pretty_name() {
#if defined(__clang__) || defined(__GNUC__)
  return __PRETTY_FUNCTION__;
#else
  return {};
#endif
}

// The T of "... [with T = kv::set; ...]" (GCC) or "... [T = kv::set]" (Clang), without its
// namespaces and enclosing classes: kv::set -> set, outer::inner -> inner.
constexpr std::string_view unqualified_name(std::string_view pretty) {
  const auto at = pretty.find("T = ");
  if (at == std::string_view::npos) return {};
  std::string_view name = pretty.substr(at + 4);
  std::size_t end = 0;
  std::size_t start = 0;
  int depth = 0;
  for (; end < name.size(); ++end) {
    const char c = name[end];
    if (c == '<' || c == '(' || c == '[') ++depth;
    if ((c == '>' || c == ')' || c == ']') && depth-- == 0) break;
    if (c == ';' && depth == 0) break;
    if (c == ':' && depth == 0 && end + 1 < name.size() && name[end + 1] == ':') start = end + 2;
  }
  return name.substr(start, end - start);
}

template <class T>
constexpr std::string_view integer_name() {
  constexpr bool s = std::is_signed_v<T>;
  switch (sizeof(T)) {
    case 1: return s ? "int8" : "uint8";
    case 2: return s ? "int16" : "uint16";
    case 4: return s ? "int32" : "uint32";
    case 8: return s ? "int64" : "uint64";
    default: return s ? "int128" : "uint128";
  }
}

template <class T>
struct is_map : std::false_type {};
template <class K, class V, class C, class A>
struct is_map<std::map<K, V, C, A>> : std::true_type {};
template <class K, class V, class H, class E, class A>
struct is_map<std::unordered_map<K, V, H, E, A>> : std::true_type {};

template <class T>
struct is_pair : std::false_type {};
template <class A, class B>
struct is_pair<std::pair<A, B>> : std::true_type {};

template <class T>
constexpr bool is_optional_v = ::tenorite::nats::detail::is_optional<T>::value;
template <class T>
constexpr bool encodes_as_null = is_optional_v<T> || std::is_same_v<T, std::monostate>;

template <class T>
constexpr std::string_view default_tag() {
  namespace nd = ::tenorite::nats::detail;
  if constexpr (std::is_same_v<T, bool>) {
    return "bool";
  } else if constexpr (std::is_integral_v<T>) {
    return integer_name<T>();
  } else if constexpr (std::is_same_v<T, float>) {
    return "float";
  } else if constexpr (std::is_same_v<T, double>) {
    return "double";
  } else if constexpr (nd::is_basic_string<T>::value) {
    return "string";
  } else if constexpr (std::is_same_v<T, std::monostate>) {
    return "null";
  } else if constexpr (nd::is_vector<T>::value || nd::is_std_array<T>::value) {
    return "array";
  } else if constexpr (is_map<T>::value) {
    return "object";
  } else if constexpr (is_optional_v<T>) {
    return "optional";
  } else if constexpr (nd::is_variant<T>::value) {
    return "variant";
  } else if constexpr (nd::is_tuple_like<T>::value) {
    return is_pair<T>::value ? "pair" : "tuple";
  } else {
    static_assert(std::is_class_v<T> || std::is_enum_v<T>,
                  "tenorite::nats::json_codec: this type cannot be a variant alternative");
    constexpr std::string_view name = unqualified_name(pretty_name<T>());
    static_assert(!name.empty(),
                  "tenorite::nats::json_codec: no default json_tag with this compiler (GCC "
                  "and Clang only): specialize tenorite::nats::json_tag<T>");
    static_assert(name.find('<') == std::string_view::npos,
                  "tenorite::nats::json_codec: a class template specialization has no default "
                  "json_tag (compilers print its arguments differently): specialize "
                  "tenorite::nats::json_tag<T>");
    return name;
  }
}

}  // namespace detail::json

/// The tag of T as an alternative of a std::variant: {"<tag>": value}. Specialize it to choose
/// another (see the header comment for the defaults).
template <class T>
inline constexpr std::string_view json_tag = detail::json::default_tag<T>();

namespace detail::json {

namespace bj = boost::json;

template <class... Ts>
constexpr bool distinct_tags() {
  const std::array<std::string_view, sizeof...(Ts)> tags{json_tag<Ts>...};
  for (std::size_t i = 0; i < tags.size(); ++i)
    for (std::size_t j = i + 1; j < tags.size(); ++j)
      if (tags[i] == tags[j]) return false;
  return true;
}

template <class T>
struct variant_tags_distinct : std::true_type {};
template <class... Ts>
struct variant_tags_distinct<std::variant<Ts...>> : std::bool_constant<distinct_tags<Ts...>()> {};

template <class T>
constexpr void check_variant() {
  static_assert(variant_tags_distinct<T>::value,
                "tenorite::nats::json_codec: two alternatives of this variant have the same "
                "json_tag (the same type twice, or names equal without their namespaces): "
                "specialize tenorite::nats::json_tag for one of them");
}

// The byte offset of the first invalid UTF-8 sequence (overlong forms, surrogates and code
// points above U+10FFFF are invalid), or npos.
inline std::size_t invalid_utf8_at(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Where a walk through a value is, for error messages: $.set.key, $.items[3], $["a b"].
class path {
 public:
  void key(std::string_view k) { segments_.push_back({k, 0, false}); }
  void index(std::size_t i) { segments_.push_back({{}, i, true}); }
  void pop() noexcept { segments_.pop_back(); }

  std::string str() const {
    std::string s = "$";
    for (const auto& seg : segments_) {
      if (seg.is_index) {
        s += '[';
        s += std::to_string(seg.i);
        s += ']';
      } else if (plain(seg.k)) {
        s += '.';
        s += seg.k;
      } else {
        s += "[\"";
        for (char c : seg.k) {
          if (c == '"' || c == '\\') s += '\\';
          s += c;
        }
        s += "\"]";
      }
    }
    return s;
  }

 private:
  static bool plain(std::string_view k) noexcept {
    if (k.empty() || (k[0] >= '0' && k[0] <= '9')) return false;
    for (char c : k)
      if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9')))
        return false;
    return true;
  }
  struct segment {
    std::string_view k;
    std::size_t i;
    bool is_index;
  };
  std::vector<segment> segments_;
};

class walk {
 public:
  bool fail(std::string_view what) {
    if (error_.empty()) error_ = where_.str() + ": " + std::string(what);
    return false;
  }
  path& where() noexcept { return where_; }
  const std::string& error() const noexcept { return error_; }

 protected:
  std::string error_;
  path where_;
};

// ---- encoding: JSON text written straight into the output ----

class writer : public walk {
 public:
  writer(std::string& out, std::size_t max_size, std::size_t max_depth)
      : out_(out), limit_(out.size() + max_size), max_depth_(max_depth) {}

  bool put(std::string_view s) {
    if (s.size() > limit_ - out_.size()) return too_large();
    out_.append(s);
    return true;
  }
  bool put(char c) { return put(std::string_view(&c, 1)); }
  bool open(char c) {
    if (++depth_ > max_depth_)
      return fail("nesting deeper than max_depth (" + std::to_string(max_depth_) + ")");
    return put(c);
  }
  bool close(char c) {
    --depth_;
    return put(c);
  }
  bool string(std::string_view s) {
    if (const auto bad = invalid_utf8_at(s); bad != std::string_view::npos)
      return fail("invalid UTF-8 at byte " + std::to_string(bad) +
                  " of a string (JSON text must be UTF-8)");
    if (!put('"')) return false;
    std::size_t run = 0;  // start of the bytes not yet written
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      if (!put(s.substr(run, i - run))) return false;
      char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
      std::size_t len = 2;
      switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default: {
          constexpr char hex[] = "0123456789abcdef";
          esc[1] = 'u';
          esc[2] = '0';
          esc[3] = '0';
          esc[4] = hex[c >> 4];
          esc[5] = hex[c & 15];
          len = 6;
        }
      }
      if (!put(std::string_view(esc, len))) return false;
      run = i + 1;
    }
    return put(s.substr(run)) && put('"');
  }
  bool size_exceeded() const noexcept { return too_large_; }

 private:
  bool too_large() {
    too_large_ = true;
    return false;
  }
  std::string& out_;
  std::size_t limit_;
  std::size_t max_depth_;
  std::size_t depth_ = 0;
  bool too_large_ = false;
};

template <class T>
inline constexpr bool dependent_false = false;

template <class T>
constexpr void check_type() {
  if constexpr (is_optional_v<T>) {
    static_assert(!encodes_as_null<typename T::value_type>,
                  "tenorite::nats::json_codec: std::optional of an optional or of "
                  "std::monostate is ambiguous in JSON (both empties would be null)");
  }
}

template <class T>
struct described_struct
    : std::bool_constant<boost::describe::has_describe_members<T>::value &&
                         boost::describe::has_describe_bases<T>::value> {};

template <class T>
using public_members = boost::describe::describe_members<
    T, boost::describe::mod_public | boost::describe::mod_inherited>;

template <class T>
bool encode_value(const T& v, writer& w);

template <class T>
bool encode_number(T v, writer& w) {
  char buf[64];
  std::to_chars_result r{};
  if constexpr (std::is_integral_v<T>) {
    static_assert(sizeof(T) <= 8, "tenorite::nats::json_codec: integers of up to 64 bits");
    using wide = std::conditional_t<std::is_signed_v<T>, long long, unsigned long long>;
    r = std::to_chars(buf, buf + sizeof buf, static_cast<wide>(v));
  } else {
    if (!std::isfinite(v))
      return w.fail(std::string(std::isnan(v) ? "NaN" : "infinity") +
                    " cannot be encoded (JSON numbers are finite)");
    r = std::to_chars(buf, buf + sizeof buf, static_cast<double>(v));
  }
  return w.put(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
}

template <class T>
bool encode_array(const T& v, writer& w) {
  if (!w.open('[')) return false;
  std::size_t i = 0;
  for (const auto& e : v) {
    if (i && !w.put(',')) return false;
    w.where().index(i++);
    bool ok = false;
    if constexpr (std::is_same_v<typename T::value_type, bool>)
      ok = encode_value(static_cast<bool>(e), w);  // vector<bool>: proxies
    else
      ok = encode_value(e, w);
    if (!ok) return false;
    w.where().pop();
  }
  return w.close(']');
}

template <class T>
bool encode_value(const T& v, writer& w) {
  namespace nd = ::tenorite::nats::detail;
  check_type<T>();
  if constexpr (std::is_same_v<T, bool>) {
    return w.put(v ? "true" : "false");
  } else if constexpr (std::is_integral_v<T>) {
    return encode_number(v, w);
  } else if constexpr (std::is_floating_point_v<T>) {
    static_assert(sizeof(T) <= sizeof(double),
                  "tenorite::nats::json_codec: long double is not supported");
    return encode_number(v, w);
  } else if constexpr (std::is_enum_v<T>) {
    if constexpr (boost::describe::has_describe_enumerators<T>::value) {
      std::string_view name;
      boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto d) {
        if (name.empty() && d.value == v) name = d.name;
      });
      if (name.empty())
        return w.fail("the value " +
                      std::to_string(static_cast<std::underlying_type_t<T>>(v)) + " of enum " +
                      std::string(unqualified_name(pretty_name<T>())) +
                      " has no described enumerator");
      return w.string(name);
    } else {
      return encode_number(static_cast<std::underlying_type_t<T>>(v), w);
    }
  } else if constexpr (nd::is_basic_string<T>::value) {
    static_assert(std::is_same_v<typename T::value_type, char>,
                  "tenorite::nats::json_codec: strings must be std::string (UTF-8)");
    return w.string(v);
  } else if constexpr (nd::is_vector<T>::value || nd::is_std_array<T>::value) {
    return encode_array(v, w);
  } else if constexpr (is_map<T>::value) {
    static_assert(std::is_same_v<typename T::key_type, std::string>,
                  "tenorite::nats::json_codec: map keys must be std::string (JSON object keys "
                  "are strings)");
    if (!w.open('{')) return false;
    bool first = true;
    for (const auto& [key, value] : v) {
      if (!first && !w.put(',')) return false;
      first = false;
      if (!w.string(key) || !w.put(':')) return false;
      w.where().key(key);
      if (!encode_value(value, w)) return false;
      w.where().pop();
    }
    return w.close('}');
  } else if constexpr (is_optional_v<T>) {
    return v ? encode_value(*v, w) : w.put("null");
  } else if constexpr (nd::is_variant<T>::value) {
    check_variant<T>();
    if (v.valueless_by_exception()) return w.fail("a variant is valueless");
    return std::visit(
        [&w](const auto& alt) {
          constexpr std::string_view tag = json_tag<std::remove_cvref_t<decltype(alt)>>;
          if (!w.open('{') || !w.string(tag) || !w.put(':')) return false;
          w.where().key(tag);
          if (!encode_value(alt, w)) return false;
          w.where().pop();
          return w.close('}');
        },
        v);
  } else if constexpr (std::is_same_v<T, std::monostate>) {
    return w.put("null");
  } else if constexpr (nd::is_tuple_like<T>::value) {
    if (!w.open('[')) return false;
    bool ok = true;
    std::size_t i = 0;
    std::apply(
        [&](const auto&... e) {
          ((ok = ok && (i == 0 || w.put(',')) && (w.where().index(i), encode_value(e, w)) &&
                 (w.where().pop(), ++i, true)),
           ...);
        },
        v);
    return ok && w.close(']');
  } else if constexpr (described_struct<T>::value) {
    if (!w.open('{')) return false;
    bool ok = true;
    bool first = true;
    boost::mp11::mp_for_each<public_members<T>>([&](auto d) {
      if (!ok) return;
      ok = (first || w.put(',')) && w.string(d.name) && w.put(':');
      first = false;
      if (!ok) return;
      w.where().key(d.name);
      ok = encode_value(v.*d.pointer, w);
      if (ok) w.where().pop();
    });
    return ok && w.close('}');
  } else if constexpr (std::is_class_v<T> && std::is_aggregate_v<T>) {
    static_assert(dependent_false<T>,
                  "tenorite::nats::json_codec: describe this struct's members, after its "
                  "definition and in its namespace: BOOST_DESCRIBE_STRUCT(T, (), (members...)) "
                  "from <boost/describe.hpp> (its bases in the second parentheses)");
    return false;
  } else {
    static_assert(dependent_false<T>,
                  "tenorite::nats::json_codec cannot encode this type: use bool, numbers, "
                  "enums, std::string, vector, array, maps with string keys, optional, "
                  "variant, pair, tuple and structs described with BOOST_DESCRIBE_STRUCT");
    return false;
  }
}

// ---- decoding: parse into Boost.JSON's value, then walk it into T ----

// Builds the value as Boost.JSON's own parser does (value_stack), and also refuses duplicate
// keys, which Boost.JSON's value keeps one of silently; remembers where, for the message.
class strict_handler {
 public:
  static constexpr std::size_t max_object_size = bj::object::max_size();
  static constexpr std::size_t max_array_size = bj::array::max_size();
  static constexpr std::size_t max_key_size = bj::string::max_size();
  static constexpr std::size_t max_string_size = bj::string::max_size();

  bj::value_stack st;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    frames_.push_back({true, 0, {}, {}});
    return true;
  }
  bool on_object_end(std::size_t n, boost::system::error_code&) {
    st.push_object(n);
    frames_.pop_back();
    return value_done();
  }
  bool on_array_begin(boost::system::error_code&) {
    frames_.push_back({false, 0, {}, {}});
    return true;
  }
  bool on_array_end(std::size_t n, boost::system::error_code&) {
    st.push_array(n);
    frames_.pop_back();
    return value_done();
  }
  bool on_key_part(bj::string_view s, std::size_t, boost::system::error_code&) {
    st.push_chars(s);
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(bj::string_view s, std::size_t, boost::system::error_code& ec) {
    st.push_key(s);
    key_.append(s.data(), s.size());
    auto& f = frames_.back();
    if (!f.keys.insert(key_).second) {
      duplicate_ = where_is() + ": duplicate key \"" + key_ + "\"";
      key_.clear();
      ec = bj::error::syntax;
      return false;
    }
    f.key = std::move(key_);
    key_.clear();
    return true;
  }
  bool on_string_part(bj::string_view s, std::size_t, boost::system::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(bj::string_view s, std::size_t, boost::system::error_code&) {
    st.push_string(s);
    return value_done();
  }
  bool on_number_part(bj::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t i, bj::string_view, boost::system::error_code&) {
    st.push_int64(i);
    return value_done();
  }
  bool on_uint64(std::uint64_t u, bj::string_view, boost::system::error_code&) {
    st.push_uint64(u);
    return value_done();
  }
  bool on_double(double d, bj::string_view, boost::system::error_code&) {
    st.push_double(d);
    return value_done();
  }
  bool on_bool(bool b, boost::system::error_code&) {
    st.push_bool(b);
    return value_done();
  }
  bool on_null(boost::system::error_code&) {
    st.push_null();
    return value_done();
  }
  bool on_comment_part(bj::string_view, boost::system::error_code&) { return true; }
  bool on_comment(bj::string_view, boost::system::error_code&) { return true; }

  const std::string& duplicate() const noexcept { return duplicate_; }

 private:
  bool value_done() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
    return true;
  }
  // The path of the object being read (its own key is not part of it).
  std::string where_is() const {
    path p;
    for (std::size_t i = 0; i + 1 < frames_.size(); ++i) {
      if (frames_[i].object)
        p.key(frames_[i].key);
      else
        p.index(frames_[i].index);
    }
    return p.str();
  }
  struct frame {
    bool object;
    std::size_t index;  // arrays: of the element being read
    std::string key;    // objects: of the member being read
    std::unordered_set<std::string> keys;
  };
  std::vector<frame> frames_;
  std::string key_;
  std::string duplicate_;
};

// The JSON value of `in`, allocated from mr, or why not.
inline std::expected<bj::value, std::string> parse(std::string_view in, std::size_t max_depth,
                                                   boost::container::pmr::memory_resource& mr) {
  if (const auto bad = invalid_utf8_at(in); bad != std::string_view::npos)
    return std::unexpected("invalid UTF-8 at byte " + std::to_string(bad) +
                           " (JSON text must be UTF-8)");
  bj::parse_options opt;
  opt.max_depth = max_depth;
  try {
    bj::basic_parser<strict_handler> p(opt);
    p.handler().st.reset(&mr);
    boost::system::error_code ec;
    const std::size_t n = p.write_some(false, in.data(), in.size(), ec);
    if (!p.handler().duplicate().empty()) return std::unexpected(p.handler().duplicate());
    if (ec == bj::error::too_deep)
      return std::unexpected("nesting deeper than max_depth (" + std::to_string(max_depth) +
                             ")");
    if (ec)
      return std::unexpected("invalid JSON at byte " + std::to_string(n) + ": " + ec.message());
    if (n < in.size())
      return std::unexpected("content after the JSON value, at byte " + std::to_string(n));
    return p.handler().st.release();
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {  // Boost.JSON's size limits (length_error, system_error)
    return std::unexpected(std::string("the input exceeds Boost.JSON's limits: ") + e.what());
  }
}

class reader : public walk {
 public:
  bool expected(std::string_view what, const bj::value& got) {
    return fail("expected " + std::string(what) + ", got " + std::string(kind(got)));
  }
  static std::string_view kind(const bj::value& v) noexcept {
    switch (v.kind()) {
      case bj::kind::null: return "null";
      case bj::kind::bool_: return "a bool";
      case bj::kind::int64:
      case bj::kind::uint64:
      case bj::kind::double_: return "a number";
      case bj::kind::string: return "a string";
      case bj::kind::array: return "an array";
      case bj::kind::object: return "an object";
    }
    return "something else";
  }
};

inline std::string number_text(double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

template <class T>
bool decode_value(const bj::value& j, T& v, reader& r);

template <class T>
constexpr bool fits(std::int64_t i) noexcept {
  if constexpr (std::is_signed_v<T>)
    return i >= std::numeric_limits<T>::min() && i <= std::numeric_limits<T>::max();
  else
    return i >= 0 && static_cast<std::uint64_t>(i) <= std::numeric_limits<T>::max();
}
template <class T>
constexpr bool fits(std::uint64_t u) noexcept {
  return u <= static_cast<std::uint64_t>(std::numeric_limits<T>::max());
}

template <class T>
bool decode_integer(const bj::value& j, T& v, reader& r) {
  constexpr std::string_view name = integer_name<T>();
  const std::string expect = "an integer (" + std::string(name) + ")";
  if (j.is_int64()) {
    const std::int64_t i = j.get_int64();
    if (!fits<T>(i))
      return r.fail(std::to_string(i) + " is out of range of " + std::string(name));
    v = static_cast<T>(i);
    return true;
  }
  if (j.is_uint64()) {
    const std::uint64_t u = j.get_uint64();
    if (!fits<T>(u))
      return r.fail(std::to_string(u) + " is out of range of " + std::string(name));
    v = static_cast<T>(u);
    return true;
  }
  if (j.is_double()) {
    const double d = j.get_double();
    // Boost.JSON reads integers beyond uint64 as doubles.
    if (std::trunc(d) == d && std::fabs(d) >= 9223372036854775808.0)
      return r.fail(number_text(d) + " is out of range of " + std::string(name));
    return r.fail("expected " + expect + ", got a number with a fraction or exponent (" +
                  number_text(d) + ")");
  }
  return r.expected(expect, j);
}

template <class T>
bool decode_float(const bj::value& j, T& v, reader& r) {
  double d = 0;
  if (j.is_double())
    d = j.get_double();
  else if (j.is_int64())
    d = static_cast<double>(j.get_int64());
  else if (j.is_uint64())
    d = static_cast<double>(j.get_uint64());
  else
    return r.expected(std::is_same_v<T, float> ? "a number (float)" : "a number (double)", j);
  if (!std::isfinite(d))  // Boost.JSON reads 1e400 as infinity
    return r.fail(std::string("a number out of range of ") +
                  (std::is_same_v<T, float> ? "float" : "double"));
  if (std::is_same_v<T, float> && std::fabs(d) > std::numeric_limits<float>::max())
    return r.fail(number_text(d) + " is out of range of " +
                  std::string(std::is_same_v<T, float> ? "float" : "double"));
  v = static_cast<T>(d);
  return true;
}

template <class T>
bool decode_elements(const bj::array& a, T& v, reader& r) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    r.where().index(i);
    if constexpr (::tenorite::nats::detail::is_vector<T>::value) {
      typename T::value_type e{};
      if (!decode_value(a[i], e, r)) return false;
      v.push_back(std::move(e));
    } else {
      if (!decode_value(a[i], v[i], r)) return false;
    }
    r.where().pop();
  }
  return true;
}

template <class V, std::size_t... I>
bool decode_alternative(const bj::value& j, std::string_view tag, V& v, reader& r,
                        std::index_sequence<I...>) {
  constexpr std::array<std::string_view, sizeof...(I)> tags{
      json_tag<std::variant_alternative_t<I, V>>...};
  std::size_t index = tags.size();
  for (std::size_t i = 0; i < tags.size(); ++i)
    if (tags[i] == tag) index = i;
  if (index == tags.size()) {
    std::string known;
    for (const auto t : tags) known += (known.empty() ? "" : ", ") + std::string(t);
    return r.fail("unknown alternative \"" + std::string(tag) + "\" (expected one of " +
                  known + ")");
  }
  r.where().key(tag);
  bool ok = false;
  (void)((index == I && (ok = decode_value(j, v.template emplace<I>(), r), true)) || ...);
  if (ok) r.where().pop();
  return ok;
}

template <class T>
bool decode_value(const bj::value& j, T& v, reader& r) {
  namespace nd = ::tenorite::nats::detail;
  check_type<T>();
  if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_bool()) return r.expected("true or false", j);
    v = j.get_bool();
    return true;
  } else if constexpr (std::is_integral_v<T>) {
    return decode_integer(j, v, r);
  } else if constexpr (std::is_floating_point_v<T>) {
    return decode_float(j, v, r);
  } else if constexpr (std::is_enum_v<T>) {
    if constexpr (boost::describe::has_describe_enumerators<T>::value) {
      constexpr std::string_view type = unqualified_name(pretty_name<T>());
      if (!j.is_string()) return r.expected("an enumerator name of " + std::string(type), j);
      const std::string_view name(j.get_string().data(), j.get_string().size());
      bool found = false;
      boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto d) {
        if (!found && name == d.name) {
          found = true;
          v = d.value;
        }
      });
      if (!found)
        return r.fail("unknown enumerator \"" + std::string(name) + "\" of " +
                      std::string(type));
      return true;
    } else {
      std::underlying_type_t<T> u{};
      if (!decode_integer(j, u, r)) return false;
      v = static_cast<T>(u);
      return true;
    }
  } else if constexpr (nd::is_basic_string<T>::value) {
    if (!j.is_string()) return r.expected("a string", j);
    v.assign(j.get_string().data(), j.get_string().size());
    return true;
  } else if constexpr (nd::is_vector<T>::value) {
    if (!j.is_array()) return r.expected("an array", j);
    v.clear();
    v.reserve(j.get_array().size());
    return decode_elements(j.get_array(), v, r);
  } else if constexpr (nd::is_std_array<T>::value) {
    constexpr std::size_t n = std::tuple_size_v<T>;
    const std::string what = "an array of " + std::to_string(n) + " elements";
    if (!j.is_array()) return r.expected(what, j);
    if (j.get_array().size() != n)
      return r.fail("expected " + what + ", got " + std::to_string(j.get_array().size()));
    return decode_elements(j.get_array(), v, r);
  } else if constexpr (is_map<T>::value) {
    static_assert(std::is_same_v<typename T::key_type, std::string>,
                  "tenorite::nats::json_codec: map keys must be std::string");
    if (!j.is_object()) return r.expected("an object", j);
    v.clear();
    for (const auto& kv : j.get_object()) {
      const std::string_view key(kv.key().data(), kv.key().size());
      r.where().key(key);
      typename T::mapped_type e{};
      if (!decode_value(kv.value(), e, r)) return false;
      v.emplace(std::string(key), std::move(e));
      r.where().pop();
    }
    return true;
  } else if constexpr (is_optional_v<T>) {
    if (j.is_null()) {
      v.reset();
      return true;
    }
    return decode_value(j, v.emplace(), r);
  } else if constexpr (nd::is_variant<T>::value) {
    check_variant<T>();
    constexpr std::size_t n = std::variant_size_v<T>;
    if (!j.is_object()) return r.expected("an object with one key, the alternative's tag", j);
    const auto& o = j.get_object();
    if (o.size() != 1)
      return r.fail("expected an object with one key, the alternative's tag, got " +
                    std::to_string(o.size()) + " keys");
    const auto& only = *o.begin();
    const std::string_view tag(only.key().data(), only.key().size());
    return decode_alternative(only.value(), tag, v, r, std::make_index_sequence<n>{});
  } else if constexpr (std::is_same_v<T, std::monostate>) {
    if (!j.is_null()) return r.expected("null", j);
    return true;
  } else if constexpr (nd::is_tuple_like<T>::value) {
    constexpr std::size_t n = std::tuple_size_v<T>;
    const std::string what = "an array of " + std::to_string(n) + " elements";
    if (!j.is_array()) return r.expected(what, j);
    const auto& a = j.get_array();
    if (a.size() != n) return r.fail("expected " + what + ", got " + std::to_string(a.size()));
    bool ok = true;
    std::size_t i = 0;
    std::apply(
        [&](auto&... e) {
          ((ok = ok && (r.where().index(i), decode_value(a[i], e, r)) &&
                 (r.where().pop(), ++i, true)),
           ...);
        },
        v);
    return ok;
  } else if constexpr (described_struct<T>::value) {
    if (!j.is_object()) return r.expected("an object", j);
    const auto& o = j.get_object();
    bool ok = true;
    boost::mp11::mp_for_each<public_members<T>>([&](auto d) {
      if (!ok) return;
      auto& member = v.*d.pointer;
      const auto it = o.find(d.name);
      if (it == o.end()) {
        if constexpr (is_optional_v<std::remove_cvref_t<decltype(member)>>)
          member.reset();
        else
          ok = r.fail("missing key \"" + std::string(d.name) + "\"");
        return;
      }
      r.where().key(d.name);
      ok = decode_value(it->value(), member, r);
      if (ok) r.where().pop();
    });
    return ok;
  } else if constexpr (std::is_class_v<T> && std::is_aggregate_v<T>) {
    static_assert(dependent_false<T>,
                  "tenorite::nats::json_codec: describe this struct's members, after its "
                  "definition and in its namespace: BOOST_DESCRIBE_STRUCT(T, (), (members...)) "
                  "from <boost/describe.hpp> (its bases in the second parentheses)");
    return false;
  } else {
    static_assert(dependent_false<T>, "tenorite::nats::json_codec cannot decode this type");
    return false;
  }
}

}  // namespace detail::json

/// JSON text (format in the header comment). Copyable, stateless apart from limits.
struct json_codec {
  /// The largest text accepted either way, in bytes.
  std::size_t max_size = 1u << 20;
  /// The deepest nesting of JSON arrays and objects accepted either way.
  std::size_t max_depth = 64;
  /// Plain payloads any NATS client reads (see wire_format).
  static constexpr wire_format wire = wire_format::micro;

  template <class T>
  std::expected<void, codec_error> encode(const T& value, std::string& out) const {
    const std::size_t start = out.size();
    detail::json::writer w(out, max_size, max_depth);
    if (!detail::json::encode_value(value, w)) {
      out.resize(start);
      return std::unexpected(codec_error{
          w.size_exceeded()
              ? "json_codec: the encoding exceeds max_size (" + std::to_string(max_size) +
                    " bytes)"
              : "json_codec: " + w.error()});
    }
    return {};
  }

  template <class T>
  std::expected<T, codec_error> decode(std::string_view in) const {
    if (in.size() > max_size)
      return std::unexpected(codec_error{"json_codec: input of " + std::to_string(in.size()) +
                                         " bytes exceeds max_size (" + std::to_string(max_size) +
                                         " bytes)"});
    // Freed at once when the value is walked: cheaper than one allocation per node.
    boost::json::monotonic_resource mr;
    auto parsed = detail::json::parse(in, max_depth, mr);
    if (!parsed) return std::unexpected(codec_error{"json_codec: " + parsed.error()});
    detail::json::reader r;
    T value{};
    if (!detail::json::decode_value(*parsed, value, r))
      return std::unexpected(codec_error{"json_codec: " + r.error()});
    return value;
  }
};

static_assert(codec_for<json_codec, std::string>);

}  // namespace tenorite::nats
