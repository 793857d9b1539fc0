// SPDX-License-Identifier: BSL-1.0
// tenorite/nats/wire.hpp — what travels on NATS between a remote_caller and serve().
//
// Request: a NATS message on the service's subject, reply subject `<inbox>.<call id>` (one
//   inbox subscription `<inbox>.*` per remote caller), payload = the codec's bytes of Req.
// Reply: a NATS message on that reply subject; payload = one status byte, then:
//   0 response       the codec's bytes of Resp
//   1 service error  the codec's bytes of Err
//   2 bad request    UTF-8 text: why the server could not take the request (undecodable,
//                    over the size limit); the server keeps serving
//   3 failed         one byte error_kind (the local call's failure on the serving side:
//                    send_failure = its worker is gone, fetch_failure, queue_full = the
//                    server has max_in_flight calls in flight), then UTF-8 text
// A NATS "no responders" status message (nobody serves the subject) also comes back on the
// reply subject. Anything else is an undecodable reply (fetch_failure with a reason).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <tenorite/error.hpp>

namespace tenorite::nats::wire {

enum class status : std::uint8_t {
  response = 0,
  service_error = 1,
  bad_request = 2,
  failed = 3,
};

inline std::string bad_request(std::string_view why) {
  std::string out(1, static_cast<char>(status::bad_request));
  out.append(why);
  return out;
}

inline std::string failed(error_kind kind, std::string_view why) {
  std::string out;
  out.push_back(static_cast<char>(status::failed));
  out.push_back(static_cast<char>(kind));
  out.append(why);
  return out;
}

/// The highest error_kind value on the wire (anything above is undecodable).
inline constexpr std::uint8_t max_error_kind = static_cast<std::uint8_t>(error_kind::deadlock);

}  // namespace tenorite::nats::wire
