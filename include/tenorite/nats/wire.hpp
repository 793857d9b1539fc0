// SPDX-License-Identifier: BSL-1.0
// tenorite/nats/wire.hpp — what travels on NATS between a caller and a served endpoint.
//
// The codec chooses the wire (its `wire` member, codec.hpp):
//
// wire_format::micro — what every NATS services client speaks (ADR-32): payloads are the
// codec's bytes, nothing else. A request is the bytes of Req; a success reply the bytes of
// Resp; an error reply carries the headers `Nats-Service-Error` (a sentence) and
// `Nats-Service-Error-Code` (a number, as text), and:
//   a service error    payload = the codec's bytes of Err; code and sentence from
//                      nats_error_header(const Err&) (found by ADL; default 500)
//   any other failure  empty payload and the header `Tenorite-Error-Kind` (to_string of the
//                      error_kind: bad_request 400, queue_full and send_failure 503,
//                      fetch_failure 500), which other clients ignore.
//
// wire_format::binary — tenorite's own framing (binary_codec), version 1, written down in
// docs/binary-format.md. A request is [version][the codec's bytes of Req]; a reply is
// [version][status][body]:
//   0 response       the codec's bytes of Resp
//   1 service error  the codec's bytes of Err
//   2 bad request    UTF-8 text: why the server could not take the request (undecodable,
//                    another wire version, over the size limit); the server keeps serving
//   3 failed         one byte error_kind (the local call's failure on the serving side:
//                    send_failure = its worker is gone, fetch_failure, queue_full = the
//                    server has max_in_flight calls in flight), then UTF-8 text
// Error replies also carry the micro error headers, so that any NATS client sees an error.
//
// Either way, a traced request (remote_caller::with_trace) carries the header `traceparent`,
// a W3C trace context (tenorite/trace.hpp) that the serving side hands on to its worker.
// Either way, a request's reply subject is where the reply goes. A NATS "no responders"
// status message (nobody serves the subject) also comes back on the reply subject.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <tenorite/error.hpp>

namespace tenorite::nats {

/// What a codec's bytes travel in (a codec's `static constexpr wire_format wire`).
enum class wire_format {
  binary,  ///< tenorite's framing: version byte, status byte (binary_codec)
  micro,   ///< plain payloads, errors in the NATS services headers (json_codec, the default)
};

/// The code and sentence of a service error, for the NATS services error headers. Say what
/// your Err means by a function found by argument-dependent lookup:
///   tenorite::nats::error_header nats_error_header(const my_error&);
/// Without one, a service error is code 500 with the sentence "service error" (or the Err
/// itself when it converts to std::string_view).
struct error_header {
  int code = 500;
  std::string description;
};

}  // namespace tenorite::nats

namespace tenorite::nats::wire {

/// The version of the binary framing this build speaks (the first byte of every message).
inline constexpr std::uint8_t binary_version = 1;

enum class status : std::uint8_t {
  response = 0,
  service_error = 1,
  bad_request = 2,
  failed = 3,
};

inline constexpr const char* error_header_name = "Nats-Service-Error";
inline constexpr const char* error_code_header_name = "Nats-Service-Error-Code";
inline constexpr const char* error_kind_header_name = "Tenorite-Error-Kind";
/// A traced request's W3C trace context (tenorite/trace.hpp), under the name the W3C
/// recommendation gives its HTTP header, as OpenTelemetry's NATS propagators write it.
inline constexpr const char* traceparent_header_name = "traceparent";

/// The NATS services error code of a failure that is not a service error.
constexpr int code_of(error_kind k) noexcept {
  switch (k) {
    case error_kind::bad_request:
      return 400;
    case error_kind::queue_full:
    case error_kind::send_failure:
      return 503;
    default:
      return 500;
  }
}

/// The error_kind named by a Tenorite-Error-Kind header, or false when it names none.
inline bool kind_from_name(std::string_view name, error_kind& out) noexcept {
  for (std::size_t i = 0; i < error_kind_count; ++i) {
    const auto k = static_cast<error_kind>(i);
    if (name == to_string(k)) {
      out = k;
      return true;
    }
  }
  return false;
}

inline std::string bad_request(std::string_view why) {
  std::string out;
  out.push_back(static_cast<char>(binary_version));
  out.push_back(static_cast<char>(status::bad_request));
  out.append(why);
  return out;
}

inline std::string failed(error_kind kind, std::string_view why) {
  std::string out;
  out.push_back(static_cast<char>(binary_version));
  out.push_back(static_cast<char>(status::failed));
  out.push_back(static_cast<char>(kind));
  out.append(why);
  return out;
}

/// The highest error_kind value on the wire (anything above is undecodable).
inline constexpr std::uint8_t max_error_kind = static_cast<std::uint8_t>(error_kind_count - 1);

/// Why a binary message's first byte is not ours: names the byte and what it suggests.
inline std::string version_mismatch(std::string_view what, std::string_view payload) {
  if (payload.empty()) return std::string(what) + " is empty (no wire version byte)";
  const auto b = static_cast<unsigned char>(payload[0]);
  std::string s = std::string(what) + " is not in tenorite's binary wire version " +
                  std::to_string(binary_version) + " (its first byte is " + std::to_string(b);
  if (b == '{' || b == '[' || b == '"')
    s += ", which looks like JSON: serve the endpoint with json_codec for JSON clients";
  else if (b > binary_version && b < 16)
    s += ": a newer tenorite's wire; upgrade this side";
  return s + ")";
}

}  // namespace tenorite::nats::wire
