// SPDX-License-Identifier: BSL-1.0
// tenorite/nats/codec.hpp — turning requests, responses and errors into bytes and back.
//
// A codec is any type C with, for each type T it serves (see the codec_for concept):
//   std::expected<void, codec_error> C::encode(const T&, std::string& out) const;  // appends
//   std::expected<T, codec_error>    C::decode<T>(std::string_view bytes) const;
// and optionally `static constexpr wire_format wire` (wire.hpp; micro when absent: plain payloads).
// serve() and remote_caller take the codec as a template argument (binary_codec by default);
// plug in another one (protobuf, JSON...) by writing such a type, e.g.
//   struct proto_codec {
//     template <class T> std::expected<void, codec_error> encode(const T& m, std::string& out) const {
//       if (!m.AppendToString(&out)) return std::unexpected(codec_error{"protobuf: encode"});
//       return {};
//     }
//     template <class T> std::expected<T, codec_error> decode(std::string_view in) const {
//       T m;
//       if (!m.ParseFromArray(in.data(), static_cast<int>(in.size())))
//         return std::unexpected(codec_error{"protobuf: malformed message"});
//       return m;
//     }
//   };
//
// binary_codec — the default: no hand-written code for plain types. Its format (little endian):
//   bool                 1 byte, 0 or 1 (anything else is rejected)
//   integers, floats     sizeof(T) bytes (floats as their IEEE bits); long double unsupported
//   enums                their underlying integer (the enum must have a fixed underlying type)
//   std::string          u32 length + bytes
//   std::vector<T>       u32 count + elements
//   std::array<T, N>     N elements
//   std::optional<T>     1 byte (0 empty, 1 engaged) + value
//   std::variant<Ts...>  1 byte alternative index + value (at most 255 alternatives)
//   std::pair, std::tuple  the members in order
//   std::monostate       nothing
//   aggregates (plain structs, via Boost.PFR): the fields in declaration order
// Decoding is bounds-checked everywhere and returns a codec_error (never undefined
// behaviour) for truncated input, trailing bytes, bad tags, nesting deeper than max_depth or
// input larger than max_size; encoding fails when the output would exceed max_size. Decoded
// types must be default-constructible (aggregates are filled field by field).
#pragma once

#include <array>
#include <bit>
#include <boost/pfr.hpp>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <tenorite/nats/wire.hpp>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace tenorite::nats {

/// Why bytes could not be decoded (or a value encoded): a sentence for people.
struct codec_error {
  std::string reason;
};

// wire_format (wire.hpp): how a codec's bytes travel on NATS; the server and the remote
// caller read it from the codec's static member `wire` (wire_of<C>()).

/// C can encode a T into bytes and decode one back.
template <class C, class T>
concept codec_for = requires(const C& c, const T& value, std::string& out, std::string_view in) {
  { c.encode(value, out) } -> std::same_as<std::expected<void, codec_error>>;
  { c.template decode<T>(in) } -> std::same_as<std::expected<T, codec_error>>;
};

/// C can carry every type of a service: its requests, responses and errors.
template <class C, class Req, class Resp, class Err>
concept service_codec = codec_for<C, Req> && codec_for<C, Resp> && codec_for<C, Err>;

namespace detail {

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_variant : std::false_type {};
template <class... Ts>
struct is_variant<std::variant<Ts...>> : std::true_type {};
template <class T>
struct is_std_array : std::false_type {};
template <class T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};
template <class T>
struct is_tuple_like : std::false_type {};
template <class... Ts>
struct is_tuple_like<std::tuple<Ts...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};
template <class T>
struct is_basic_string : std::false_type {};
template <class C, class Tr, class A>
struct is_basic_string<std::basic_string<C, Tr, A>> : std::true_type {};

template <class T>
inline constexpr bool dependent_false = false;

// An enum converts safely from any value of its underlying type only when that type is fixed.
template <class E>
concept fixed_enum = std::is_enum_v<E> && requires { E{std::underlying_type_t<E>{}}; };

template <class U>
U to_little(U v) noexcept {
  if constexpr (std::endian::native == std::endian::big) return std::byteswap(v);
  return v;
}

class writer {
 public:
  writer(std::string& out, std::size_t max_size) : out_(out), limit_(out.size() + max_size) {}

  bool bytes(const void* p, std::size_t n) {
    if (n > limit_ - out_.size()) return fail();
    out_.append(static_cast<const char*>(p), n);
    return true;
  }
  template <class U>
  bool integer(U v) {
    v = to_little(v);
    return bytes(&v, sizeof v);
  }
  bool length(std::size_t n) {
    if (n > UINT32_MAX) return fail();
    return integer(static_cast<std::uint32_t>(n));
  }
  bool failed() const noexcept { return failed_; }

 private:
  bool fail() {
    failed_ = true;
    return false;
  }
  std::string& out_;
  std::size_t limit_;
  bool failed_ = false;
};

class reader {
 public:
  reader(std::string_view in, std::size_t max_depth, std::size_t max_elements)
      : in_(in), max_depth_(max_depth), max_elements_(max_elements) {}

  bool fail(const char* why) {
    if (!error_) error_ = why;
    return false;
  }
  bool bytes(void* p, std::size_t n) {
    if (n > in_.size() - pos_) return fail("truncated input");
    if (n) std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  template <class U>
  bool integer(U& v) {
    if (!bytes(&v, sizeof v)) return false;
    v = to_little(v);
    return true;
  }
  bool length(std::uint32_t& n) { return integer(n); }
  std::size_t remaining() const noexcept { return in_.size() - pos_; }
  std::string_view take(std::size_t n) {
    auto s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  bool enter() {
    if (++depth_ > max_depth_) return fail("nesting deeper than the codec's max_depth");
    return true;
  }
  void leave() noexcept { --depth_; }
  std::size_t max_elements() const noexcept { return max_elements_; }
  const char* error() const noexcept { return error_; }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
  std::size_t depth_ = 0;
  std::size_t max_depth_;
  std::size_t max_elements_;
  const char* error_ = nullptr;
};

// The fewest bytes a T can take: bounds the element count a vector may claim.
template <class T>
constexpr std::size_t min_size() {
  if constexpr (std::is_arithmetic_v<T> || std::is_enum_v<T>) {  // bool is arithmetic
    return sizeof(T);
  } else if constexpr (is_basic_string<T>::value || is_vector<T>::value) {
    return 4;
  } else if constexpr (is_optional<T>::value || is_variant<T>::value) {
    return 1;
  } else {
    return 0;  // aggregates, arrays, tuples, monostate: conservatively nothing
  }
}

template <class T>
bool encode_value(const T& v, writer& w);
template <class T>
bool decode_value(T& v, reader& r);

template <class T>
bool encode_value(const T& v, writer& w) {
  if constexpr (std::is_same_v<T, bool>) {
    return w.integer(static_cast<std::uint8_t>(v ? 1 : 0));
  } else if constexpr (std::is_integral_v<T>) {
    return w.integer(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8,
                  "tenorite::nats::binary_codec: long double is not supported");
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    return w.integer(std::bit_cast<U>(v));
  } else if constexpr (std::is_enum_v<T>) {
    static_assert(fixed_enum<T>,
                  "tenorite::nats::binary_codec: an enum needs a fixed underlying type "
                  "(enum class, or enum E : int)");
    return w.integer(static_cast<std::underlying_type_t<T>>(v));
  } else if constexpr (is_basic_string<T>::value) {
    static_assert(sizeof(typename T::value_type) == 1,
                  "tenorite::nats::binary_codec: only strings of bytes are supported");
    return w.length(v.size()) && w.bytes(v.data(), v.size());
  } else if constexpr (is_vector<T>::value) {
    if (!w.length(v.size())) return false;
    for (const auto& e : v) {
      if constexpr (std::is_same_v<typename T::value_type, bool>) {
        if (!encode_value(static_cast<bool>(e), w)) return false;  // vector<bool>: proxies
      } else {
        if (!encode_value(e, w)) return false;
      }
    }
    return true;
  } else if constexpr (is_std_array<T>::value) {
    for (const auto& e : v)
      if (!encode_value(e, w)) return false;
    return true;
  } else if constexpr (is_optional<T>::value) {
    if (!w.integer(static_cast<std::uint8_t>(v ? 1 : 0))) return false;
    return !v || encode_value(*v, w);
  } else if constexpr (is_variant<T>::value) {
    static_assert(std::variant_size_v<T> <= 255,
                  "tenorite::nats::binary_codec: at most 255 alternatives in a variant");
    if (v.valueless_by_exception()) return false;
    if (!w.integer(static_cast<std::uint8_t>(v.index()))) return false;
    return std::visit([&w](const auto& alt) { return encode_value(alt, w); }, v);
  } else if constexpr (is_tuple_like<T>::value) {
    return std::apply([&w](const auto&... e) { return (encode_value(e, w) && ...); }, v);
  } else if constexpr (std::is_same_v<T, std::monostate>) {
    return true;
  } else if constexpr (std::is_aggregate_v<T> && !std::is_array_v<T>) {
    bool ok = true;
    boost::pfr::for_each_field(v, [&](const auto& field) {
      if (ok) ok = encode_value(field, w);
    });
    return ok;
  } else {
    static_assert(dependent_false<T>,
                  "tenorite::nats::binary_codec cannot encode this type: use strings, numbers, "
                  "enums, optional, vector, array, variant, pair, tuple and plain structs of "
                  "those, or plug in your own codec");
    return false;
  }
}

template <class V, std::size_t... I>
bool decode_alternative(V& v, std::size_t index, reader& r, std::index_sequence<I...>) {
  bool ok = false;
  (void)((index == I ? (ok = decode_value(v.template emplace<I>(), r), true) : false) || ...);
  return ok;
}

template <class T>
bool decode_value(T& v, reader& r) {
  if constexpr (std::is_same_v<T, bool>) {
    std::uint8_t b = 0;
    if (!r.integer(b)) return false;
    if (b > 1) return r.fail("a bool is neither 0 nor 1");
    v = b == 1;
    return true;
  } else if constexpr (std::is_integral_v<T>) {
    return r.integer(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    U bits = 0;
    if (!r.integer(bits)) return false;
    v = std::bit_cast<T>(bits);
    return true;
  } else if constexpr (std::is_enum_v<T>) {
    std::underlying_type_t<T> u{};
    if (!r.integer(u)) return false;
    v = T{u};
    return true;
  } else if constexpr (is_basic_string<T>::value) {
    std::uint32_t n = 0;
    if (!r.length(n)) return false;
    if (n > r.remaining()) return r.fail("a string is longer than the input");
    auto s = r.take(n);
    v.assign(s.data(), s.size());
    return true;
  } else if constexpr (is_vector<T>::value) {
    std::uint32_t n = 0;
    if (!r.length(n)) return false;
    using E = typename T::value_type;
    constexpr std::size_t min = min_size<E>();
    // A count is checked before anything is allocated: elements of a known minimum size
    // must fit in the input; those that may take no byte are bounded by max_size.
    if (min ? n > r.remaining() / min : n > r.max_elements())
      return r.fail("a vector claims more elements than the input holds");
    if (!r.enter()) return false;
    v.clear();
    v.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      E e{};
      if (!decode_value(e, r)) return false;
      v.push_back(std::move(e));
    }
    r.leave();
    return true;
  } else if constexpr (is_std_array<T>::value) {
    for (auto& e : v)
      if (!decode_value(e, r)) return false;
    return true;
  } else if constexpr (is_optional<T>::value) {
    std::uint8_t flag = 0;
    if (!r.integer(flag)) return false;
    if (flag > 1) return r.fail("an optional's flag is neither 0 nor 1");
    if (flag == 0) {
      v.reset();
      return true;
    }
    if (!r.enter()) return false;
    bool ok = decode_value(v.emplace(), r);
    r.leave();
    return ok;
  } else if constexpr (is_variant<T>::value) {
    std::uint8_t index = 0;
    if (!r.integer(index)) return false;
    if (index >= std::variant_size_v<T>) return r.fail("a variant's index is out of range");
    if (!r.enter()) return false;
    bool ok = decode_alternative(v, index, r, std::make_index_sequence<std::variant_size_v<T>>{});
    r.leave();
    return ok;
  } else if constexpr (is_tuple_like<T>::value) {
    return std::apply([&r](auto&... e) { return (decode_value(e, r) && ...); }, v);
  } else if constexpr (std::is_same_v<T, std::monostate>) {
    return true;
  } else if constexpr (std::is_aggregate_v<T> && !std::is_array_v<T>) {
    bool ok = true;
    boost::pfr::for_each_field(v, [&](auto& field) {
      if (ok) ok = decode_value(field, r);
    });
    return ok;
  } else {
    static_assert(dependent_false<T>, "tenorite::nats::binary_codec cannot decode this type");
    return false;
  }
}

}  // namespace detail

/// The default codec (format in the header comment). Copyable, stateless apart from limits.
struct binary_codec {
  /// Framed with a version and a status byte (wire.hpp, docs/binary-format.md).
  static constexpr wire_format wire = wire_format::binary;
  /// The largest encoding accepted either way, in bytes.
  std::size_t max_size = 1u << 20;
  /// The deepest nesting of vectors, optionals and variants accepted when decoding.
  std::size_t max_depth = 64;

  template <class T>
  std::expected<void, codec_error> encode(const T& value, std::string& out) const {
    const std::size_t start = out.size();
    detail::writer w(out, max_size);
    if (!detail::encode_value(value, w)) {
      out.resize(start);
      return std::unexpected(codec_error{
          w.failed() ? "binary_codec: the encoding exceeds max_size (" +
                           std::to_string(max_size) + " bytes)"
                     : "binary_codec: a variant is valueless"});
    }
    return {};
  }

  template <class T>
  std::expected<T, codec_error> decode(std::string_view in) const {
    if (in.size() > max_size)
      return std::unexpected(codec_error{"binary_codec: input of " + std::to_string(in.size()) +
                                         " bytes exceeds max_size (" + std::to_string(max_size) +
                                         " bytes)"});
    detail::reader r(in, max_depth, max_size);
    T value{};
    if (!detail::decode_value(value, r))
      return std::unexpected(
          codec_error{std::string("binary_codec: ") + (r.error() ? r.error() : "malformed input")});
    if (r.remaining() != 0)
      return std::unexpected(codec_error{"binary_codec: trailing bytes after the value"});
    return value;
  }
};

static_assert(codec_for<binary_codec, std::string>);

/// The wire a codec's bytes travel in: its `wire` member, else micro (plain payloads).
template <class C>
constexpr wire_format wire_of() noexcept {
  if constexpr (requires { C::wire; }) {
    return C::wire;
  } else {
    return wire_format::micro;
  }
}

}  // namespace tenorite::nats
