// SPDX-License-Identifier: BSL-1.0
// tenorite/nats/detail/micro.hpp — the NATS services protocol (ADR-32, "micro") without I/O:
// names checked as the other clients check them, the $SRV control subjects, and the JSON of
// the io.nats.micro.v1 ping, info and stats responses. tests/nats/micro_protocol_test.cpp
// checks all of it without a server.
//
// The JSON written here is a handful of fixed objects of strings and integers, so it is
// written directly (the strings escaped per RFC 8259); decoding JSON is json_codec's job.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tenorite::nats::detail::micro {

inline constexpr std::string_view api_prefix = "$SRV";

enum class verb { none, ping, info, stats };

/// The service's identity, as every response repeats it.
struct identity {
  std::string name, id, version, description;
  std::map<std::string, std::string> metadata;
};

struct endpoint_info {
  std::string name, subject, queue_group;
  std::map<std::string, std::string> metadata;
};

/// One endpoint's figures (the stats response's per-endpoint fields).
struct endpoint_numbers {
  std::uint64_t num_requests = 0;
  std::uint64_t num_errors = 0;
  std::string last_error;
  std::uint64_t processing_time_ns = 0;
};

/// A service, endpoint or queue-group name: letters, digits, '-' and '_' (what nats.go,
/// nats.js and nats.c accept). Empty when valid, else why not.
inline std::string name_problem(std::string_view what, std::string_view name) {
  if (name.empty()) return std::string(what) + " is empty";
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok)
      return std::string(what) + " '" + std::string(name) + "' contains '" + std::string(1, c) +
             "': use letters, digits, '-' and '_'";
  }
  return {};
}

/// MAJOR.MINOR.PATCH with optional -prerelease and +build (semver 2.0.0, leading zeros
/// refused in the numbers as the spec says). Empty when valid, else why not.
inline std::string version_problem(std::string_view v) {
  std::string why = "the version '" + std::string(v) +
                          "' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0)";
  std::size_t i = 0;
  for (int part = 0; part < 3; ++part) {
    const std::size_t start = i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
    if (i == start || (i - start > 1 && v[start] == '0')) return why;
    if (part < 2) {
      if (i >= v.size() || v[i] != '.') return why;
      ++i;
    }
  }
  auto ident_list = [&](char lead) {
    if (i >= v.size() || v[i] != lead) return true;
    ++i;
    std::size_t start = i;
    for (; i <= v.size(); ++i) {
      const bool end = i == v.size() || v[i] == '+';
      if (end || v[i] == '.') {
        if (i == start) return false;  // an empty identifier
        if (end) return true;
        start = i + 1;
        continue;
      }
      const char c = v[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-'))
        return false;
    }
    return true;
  };
  if (!ident_list('-')) return why;
  if (i < v.size() && v[i] == '+') {
    ++i;
    const std::size_t start = i;
    for (; i < v.size(); ++i) {
      const char c = v[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.'))
        return why;
    }
    if (i == start || v.back() == '.') return why;
  }
  return i == v.size() ? std::string() : why;
}

/// A subject to subscribe to: tokens separated by '.', none empty, no spaces, '>' only as
/// the last token. Empty when valid, else why not.
inline std::string subject_problem(std::string_view what, std::string_view s) {
  const std::string quoted = std::string(what) + " '" + std::string(s) + "'";
  if (s.empty()) return std::string(what) + " is empty";
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = s.find('.', start);
    const std::string_view token = s.substr(start, dot == std::string_view::npos ? s.npos
                                                                                 : dot - start);
    if (token.empty()) return quoted + " has an empty token";
    for (char c : token)
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') return quoted + " contains a space";
    if (token == ">" && dot != std::string_view::npos)
      return quoted + " has '>' before its last token";
    if (dot == std::string_view::npos) return {};
    start = dot + 1;
  }
}

/// True when `s` is valid UTF-8 (JSON text must be).
inline bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    // Overlong forms, surrogates and values above U+10FFFF are not UTF-8.
    static constexpr std::uint32_t least[] = {0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

/// Appends `s` as a JSON string (quotes included). `s` must be valid UTF-8.
inline void append_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

/// RFC 3339 in UTC with milliseconds, as nats.js writes `started` (Date.toISOString()).
inline std::string rfc3339(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  long frac = static_cast<long>(ms % 1000);
  if (frac < 0) {
    frac += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string s(buf, n);
  char f[8];
  std::snprintf(f, sizeof f, ".%03ldZ", frac);
  return s + f;
}

namespace json {
inline void key(std::string& out, std::string_view k) {
  append_string(out, k);
  out.push_back(':');
}
inline void metadata(std::string& out, const std::map<std::string, std::string>& m) {
  out.push_back('{');
  bool first = true;
  for (const auto& [k, v] : m) {
    if (!first) out.push_back(',');
    first = false;
    key(out, k);
    append_string(out, v);
  }
  out.push_back('}');
}
inline void head(std::string& out, std::string_view type, const identity& who) {
  out.push_back('{');
  key(out, "type");
  append_string(out, type);
  out.push_back(',');
  key(out, "name");
  append_string(out, who.name);
  out.push_back(',');
  key(out, "id");
  append_string(out, who.id);
  out.push_back(',');
  key(out, "version");
  append_string(out, who.version);
  out.push_back(',');
  key(out, "metadata");
  metadata(out, who.metadata);
}
inline void endpoint_head(std::string& out, const endpoint_info& e) {
  out.push_back('{');
  key(out, "name");
  append_string(out, e.name);
  out.push_back(',');
  key(out, "subject");
  append_string(out, e.subject);
  out.push_back(',');
  key(out, "queue_group");
  append_string(out, e.queue_group);
}
}  // namespace json

inline std::string ping_response(const identity& who) {
  std::string out;
  json::head(out, "io.nats.micro.v1.ping_response", who);
  out.push_back('}');
  return out;
}

inline std::string info_response(const identity& who, const std::vector<endpoint_info>& eps) {
  std::string out;
  json::head(out, "io.nats.micro.v1.info_response", who);
  out.push_back(',');
  json::key(out, "description");
  append_string(out, who.description);
  out.push_back(',');
  json::key(out, "endpoints");
  out.push_back('[');
  for (std::size_t i = 0; i < eps.size(); ++i) {
    if (i) out.push_back(',');
    json::endpoint_head(out, eps[i]);
    out.push_back(',');
    json::key(out, "metadata");
    json::metadata(out, eps[i].metadata);
    out.push_back('}');
  }
  out += "]}";
  return out;
}

inline std::string stats_response(const identity& who,
                                  std::chrono::system_clock::time_point started,
                                  const std::vector<endpoint_info>& eps,
                                  const std::vector<endpoint_numbers>& nums) {
  std::string out;
  json::head(out, "io.nats.micro.v1.stats_response", who);
  out.push_back(',');
  json::key(out, "started");
  append_string(out, rfc3339(started));
  out.push_back(',');
  json::key(out, "endpoints");
  out.push_back('[');
  for (std::size_t i = 0; i < eps.size() && i < nums.size(); ++i) {
    const auto& n = nums[i];
    if (i) out.push_back(',');
    json::endpoint_head(out, eps[i]);
    out += ",\"num_requests\":" + std::to_string(n.num_requests);
    out += ",\"num_errors\":" + std::to_string(n.num_errors);
    out.push_back(',');
    json::key(out, "last_error");
    append_string(out, n.last_error);
    out += ",\"processing_time\":" + std::to_string(n.processing_time_ns);
    out += ",\"average_processing_time\":" +
           std::to_string(n.num_requests ? n.processing_time_ns / n.num_requests : 0);
    out.push_back('}');
  }
  out += "]}";
  return out;
}

/// The three subscriptions a service answers discovery on (no queue group: every instance
/// answers): `$SRV.*`, `$SRV.*.<name>`, `$SRV.*.<name>.<id>`; the verb is the second token.
inline std::vector<std::string> control_subjects(const identity& who) {
  const std::string all = std::string(api_prefix) + ".*";
  return {all, all + "." + who.name, all + "." + who.name + "." + who.id};
}

/// The verb a control request names (its second token), or none for another.
inline verb verb_of(std::string_view subject) noexcept {
  if (subject.substr(0, api_prefix.size() + 1) != "$SRV.") return verb::none;
  std::string_view rest = subject.substr(api_prefix.size() + 1);
  const auto dot = rest.find('.');
  const std::string_view v = rest.substr(0, dot);
  if (v == "PING") return verb::ping;
  if (v == "INFO") return verb::info;
  if (v == "STATS") return verb::stats;
  return verb::none;
}

/// Checks a service's identity as the other clients do; throws std::invalid_argument saying
/// what to change.
inline void check_identity(const identity& who) {
  auto fail = [](const std::string& why) {
    throw std::invalid_argument("tenorite::nats::add_service: " + why);
  };
  if (auto p = name_problem("the service name", who.name); !p.empty()) fail(p);
  if (auto p = version_problem(who.version); !p.empty()) fail(p);
  if (!valid_utf8(who.description)) fail("the description is not valid UTF-8");
  for (const auto& [k, v] : who.metadata)
    if (!valid_utf8(k) || !valid_utf8(v)) fail("a metadata key or value is not valid UTF-8");
}

}  // namespace tenorite::nats::detail::micro
