// SPDX-License-Identifier: BSL-1.0
// tenorite/prometheus.hpp — the registry's services in Prometheus' text exposition format.
//
//   std::string body = tenorite::prometheus_text();  // every service of the global registry
//   // serve it with Content-Type tenorite::prometheus_content_type (console.hpp does)
//
// What is written (every series labelled service="<name>", kind="<service_kind>"):
//   tenorite_service_status{status=...}            gauge, 1 for the current status, else 0
//   tenorite_service_workers, tenorite_queue_capacity, tenorite_queue_depth      gauges
//   tenorite_service_start_time_seconds, tenorite_service_last_failure_time_seconds  gauges
//   tenorite_service_restarts_total                                               counter
// and for services started with metrics:
//   tenorite_calls_total, tenorite_calls_answered_total, tenorite_notifications_total,
//   tenorite_calls_failed_total{error_kind=...}                                   counters
//   tenorite_calls_in_flight, tenorite_oldest_call_age_seconds                    gauges
//   tenorite_call_duration_seconds, tenorite_call_queued_seconds,
//   tenorite_call_worker_seconds                                                  histograms
//
// Histogram bounds are powers of two of nanoseconds (2^10 ns = 1.024 us up to 2^34 ns =
// 17.2 s, every second power), where the recorded buckets have exact edges: the cumulative
// counts are exact, not interpolated.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <tenorite/error.hpp>
#include <tenorite/metrics.hpp>
#include <tenorite/registry.hpp>
#include <vector>

namespace tenorite {

/// The Content-Type of prometheus_text()'s output.
inline constexpr std::string_view prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

namespace detail {

class prometheus_writer {
 public:
  explicit prometheus_writer(std::string& out) : out_(out) {}

  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;  // our own text: no backslash or newline to escape
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  // name{service="..",kind=".."[,extra="v"]} value
  void sample(std::string_view name, const service_info& s, double value,
              std::string_view extra_name = {}, std::string_view extra_value = {}) {
    out_ += name;
    labels(s, extra_name, extra_value);
    out_ += ' ';
    number(value);
    out_ += '\n';
  }
  void sample(std::string_view name, const service_info& s, std::uint64_t value,
              std::string_view extra_name = {}, std::string_view extra_value = {}) {
    out_ += name;
    labels(s, extra_name, extra_value);
    out_ += ' ';
    out_ += std::to_string(value);
    out_ += '\n';
  }

  void histogram(std::string_view base, const service_info& s, const latency_histogram& h,
                 std::uint64_t sum_ns) {
    std::uint64_t cumulative = 0;
    std::size_t next = 0;
    const std::string bucket = std::string(base) + "_bucket";
    // Bucket i holds [2^i, 2^(i+1)) ns: the count up to `le` = 2^(b) ns is buckets 0..b-1.
    for (unsigned b = first_bound; b <= last_bound; b += bound_step) {
      for (; next < b && next < latency_histogram::bucket_count; ++next) cumulative += h.counts[next];
      char le[32];
      std::snprintf(le, sizeof le, "%.9g", static_cast<double>(std::uint64_t{1} << b) * 1e-9);
      sample(bucket, s, cumulative, "le", le);
    }
    const std::uint64_t total = h.total();
    sample(bucket, s, total, "le", "+Inf");
    sample(std::string(base) + "_sum", s, static_cast<double>(sum_ns) * 1e-9);
    sample(std::string(base) + "_count", s, total);
  }

  static constexpr unsigned first_bound = 10, last_bound = 34, bound_step = 2;

 private:
  void labels(const service_info& s, std::string_view extra_name, std::string_view extra_value) {
    out_ += "{service=\"";
    escaped(s.name);
    out_ += "\",kind=\"";
    out_ += to_string(s.kind);
    out_ += '"';
    if (!extra_name.empty()) {
      out_ += ',';
      out_ += extra_name;
      out_ += "=\"";
      escaped(extra_value);
      out_ += '"';
    }
    out_ += '}';
  }

  // Label values escape backslash, double quote and line feed (the format's only rules).
  void escaped(std::string_view v) {
    for (char c : v) {
      if (c == '\\') {
        out_ += "\\\\";
      } else if (c == '"') {
        out_ += "\\\"";
      } else if (c == '\n') {
        out_ += "\\n";
      } else {
        out_ += c;
      }
    }
  }

  void number(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out_ += buf;
  }

  std::string& out_;
};

inline double seconds_since_epoch(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace detail

/// Appends `services` to `out` in the Prometheus text format 0.0.4: each metric family once,
/// its HELP and TYPE first, then one series per service.
inline void write_prometheus(std::string& out, const std::vector<service_info>& services) {
  detail::prometheus_writer w(out);
  // A family of one series per service: `value(s)` (or `value(s, metrics)` for the measured
  // services only).
  auto each = [&](const char* name, const char* type, const char* help, auto&& value) {
    w.family(name, type, help);
    for (const service_info& s : services) w.sample(name, s, value(s));
  };
  auto each_measured = [&](const char* name, const char* type, const char* help, auto&& value) {
    w.family(name, type, help);
    for (const service_info& s : services)
      if (s.metrics) w.sample(name, s, value(*s.metrics));
  };
  auto histogram = [&](const char* name, const char* help, latency_histogram metrics_snapshot::*h,
                       std::uint64_t metrics_snapshot::*sum) {
    w.family(name, "histogram", help);
    for (const service_info& s : services)
      if (s.metrics) w.histogram(name, s, (*s.metrics).*h, (*s.metrics).*sum);
  };
  bool any_measured = false;
  for (const service_info& s : services) any_measured = any_measured || s.metrics.has_value();

  w.family("tenorite_service_status", "gauge",
           "Where the service is in its life: 1 for its status, 0 for the others.");
  for (const service_info& s : services)
    for (auto st : {service_status::running, service_status::draining, service_status::restarting,
                    service_status::ended})
      w.sample("tenorite_service_status", s, std::uint64_t{s.status == st ? 1u : 0u}, "status",
               to_string(st));
  each("tenorite_service_workers", "gauge", "Workers serving the service's queue.",
       [](const service_info& s) { return std::uint64_t{s.workers}; });
  each("tenorite_queue_capacity", "gauge", "Requests the queue holds at most.",
       [](const service_info& s) { return std::uint64_t{s.queue_capacity}; });
  each("tenorite_queue_depth", "gauge", "Requests waiting in the queue now.",
       [](const service_info& s) { return std::uint64_t{s.queue_depth}; });
  each("tenorite_service_start_time_seconds", "gauge",
       "When the service started, in seconds since the Unix epoch.",
       [](const service_info& s) { return detail::seconds_since_epoch(s.started); });
  each("tenorite_service_restarts_total", "counter", "Worker restarts by the supervisor.",
       [](const service_info& s) { return s.restarts; });
  w.family("tenorite_service_last_failure_time_seconds", "gauge",
           "When a worker last failed, in seconds since the Unix epoch.");
  for (const service_info& s : services)
    if (s.last_failure)
      w.sample("tenorite_service_last_failure_time_seconds", s,
               detail::seconds_since_epoch(s.last_failure->when));
  if (!any_measured) return;

  each_measured("tenorite_calls_total", "counter", "Calls started (notifications excluded).",
                [](const metrics_snapshot& m) { return m.calls; });
  each_measured("tenorite_calls_answered_total", "counter", "Calls completed with a response.",
                [](const metrics_snapshot& m) { return m.answered; });
  w.family("tenorite_calls_failed_total", "counter", "Calls failed, by error kind.");
  for (const service_info& s : services)
    if (s.metrics)
      for (std::size_t k = 0; k < error_kind_count; ++k)
        w.sample("tenorite_calls_failed_total", s, s.metrics->failed[k], "error_kind",
                 to_string(static_cast<error_kind>(k)));
  each_measured("tenorite_notifications_total", "counter", "Notifications accepted into the queue.",
                [](const metrics_snapshot& m) { return m.notifications; });
  each_measured("tenorite_calls_in_flight", "gauge", "Calls started and not completed yet.",
                [](const metrics_snapshot& m) { return m.in_flight; });
  each_measured("tenorite_oldest_call_age_seconds", "gauge",
                "Age of the oldest call in flight (to within 67 ms), 0 when none is.",
                [](const metrics_snapshot& m) {
                  return static_cast<double>(m.oldest_in_flight.count()) * 1e-9;
                });
  histogram("tenorite_call_duration_seconds", "Calls from their start to their completion.",
            &metrics_snapshot::latency, &metrics_snapshot::latency_sum_ns);
  histogram("tenorite_call_queued_seconds",
            "Calls a worker took, from their start to the worker taking the request.",
            &metrics_snapshot::queued, &metrics_snapshot::queued_sum_ns);
  histogram("tenorite_call_worker_seconds",
            "Calls a worker took, from the worker taking the request to its answer.",
            &metrics_snapshot::in_worker, &metrics_snapshot::in_worker_sum_ns);
}

/// The services of `registry` in the Prometheus text format 0.0.4.
inline std::string prometheus_text(const service_registry& registry = service_registry::global()) {
  std::string out;
  write_prometheus(out, registry.snapshot());
  return out;
}

}  // namespace tenorite
