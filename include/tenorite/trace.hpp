// SPDX-License-Identifier: BSL-1.0
// tenorite/trace.hpp — W3C trace context carried by a call, for tracing systems tenorite does
// not depend on (OpenTelemetry, Zipkin, a user's own).
//
// A caller attaches one to its calls with caller.with_trace(ctx) (a copy of the handle whose
// every call carries it); the worker reads it from the request's responder, client.trace();
// over NATS it travels in the request's `traceparent` header (remote_caller.with_trace), and
// the serving side's call to the local service carries it on.
//
// Invariants:
// - a trace_context is a plain value (25 bytes, no allocation); an empty one (all zero, the
//   default) means "no trace": nothing is sent for it and parse never returns one;
// - parse accepts exactly what the W3C Trace Context recommendation (level 1, section 3.2)
//   lets a receiver accept: version 00 in exactly 55 characters, lowercase hex, non-zero
//   trace-id and parent-id; a later version (not ff) in 55 characters or more, its own
//   fields after a '-'. Anything else is no trace (the recommendation: restart the trace).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tenorite {

/// The trace a call belongs to, as a W3C `traceparent` says it: the trace's id, the id of
/// the caller's span (the parent of the worker's) and the trace flags (bit 0: sampled).
///
///     auto ctx = tenorite::trace_context::parse(incoming_header);   // std::optional
///     if (ctx) co_await kv.with_trace(*ctx).send_request(get{"k"});
///     // in the worker:  if (r.client.trace()) span.set_parent(r.client.trace().traceparent());
struct trace_context {
  /// The length of a version-00 traceparent: "00-" 32 hex "-" 16 hex "-" 2 hex.
  static constexpr std::size_t traceparent_size = 55;

  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> parent_id{};
  std::uint8_t flags = 0;

  /// False for the empty context (no trace attached).
  explicit operator bool() const noexcept { return !is_zero(trace_id); }
  bool sampled() const noexcept { return (flags & 1) != 0; }

  /// The context a traceparent header value says, or nullopt when the value is not one a
  /// receiver may accept (see the invariants at the top). Leading and trailing spaces and
  /// tabs are ignored (HTTP's optional whitespace).
  static std::optional<trace_context> parse(std::string_view v) noexcept {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    if (v.size() < traceparent_size) return std::nullopt;
    int version_hi = hex(v[0]), version_lo = hex(v[1]);
    if (version_hi < 0 || version_lo < 0 || v[2] != '-') return std::nullopt;
    const int version = version_hi * 16 + version_lo;
    if (version == 0xff) return std::nullopt;
    // Version 00 is exactly 55 characters; a later one may add fields after a '-'.
    if (version == 0 ? v.size() != traceparent_size
                     : (v.size() > traceparent_size && v[traceparent_size] != '-'))
      return std::nullopt;
    trace_context c;
    if (!read_hex(v.substr(3, 32), c.trace_id.data()) || v[35] != '-' ||
        !read_hex(v.substr(36, 16), c.parent_id.data()) || v[52] != '-' ||
        !read_hex(v.substr(53, 2), &c.flags))
      return std::nullopt;
    if (is_zero(c.trace_id) || is_zero(c.parent_id)) return std::nullopt;
    return c;
  }

  /// Writes the version-00 traceparent (55 characters, no terminator) at `out`.
  void write_traceparent(char* out) const noexcept {
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    write_hex(trace_id.data(), trace_id.size(), out + 3);
    out[35] = '-';
    write_hex(parent_id.data(), parent_id.size(), out + 36);
    out[52] = '-';
    write_hex(&flags, 1, out + 53);
  }
  /// The version-00 traceparent header value.
  std::string traceparent() const {
    std::string s(traceparent_size, '0');
    write_traceparent(s.data());
    return s;
  }

  /// The same trace with another parent span (the span a worker starts for the call, when it
  /// calls on: its calls are children of that span).
  trace_context with_parent(const std::array<std::uint8_t, 8>& span_id) const noexcept {
    trace_context c = *this;
    c.parent_id = span_id;
    return c;
  }

  friend bool operator==(const trace_context&, const trace_context&) = default;

 private:
  template <std::size_t N>
  static constexpr bool is_zero(const std::array<std::uint8_t, N>& a) noexcept {
    for (std::uint8_t b : a)
      if (b) return false;
    return true;
  }
  // Lowercase only: the recommendation's HEXDIGLC.
  static constexpr int hex(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
  static bool read_hex(std::string_view s, std::uint8_t* out) noexcept {
    for (std::size_t i = 0; i < s.size(); i += 2) {
      const int hi = hex(s[i]), lo = hex(s[i + 1]);
      if (hi < 0 || lo < 0) return false;
      out[i / 2] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return true;
  }
  static void write_hex(const std::uint8_t* in, std::size_t n, char* out) noexcept {
    constexpr char digits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < n; ++i) {
      out[2 * i] = digits[in[i] >> 4];
      out[2 * i + 1] = digits[in[i] & 15];
    }
  }
};

}  // namespace tenorite
