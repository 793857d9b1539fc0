// SPDX-License-Identifier: BSL-1.0
// tenorite/console.hpp — a live view of every service in the browser, and /metrics.
//
//   boost::asio::io_context ioc;
//   auto console = tenorite::console::serve(ioc.get_executor(), 9100);
//   std::cout << "console: http://" << console.endpoint() << "/\n";
//   ioc.run();  // the console serves until console.stop() (or its handle is destroyed)
//
// What it serves (GET or HEAD; anything else is 405, an unknown path 404):
//   /                   the page: every service, live, with charts; click one for its detail
//   /events             the same data pushed every `interval` (server-sent events)
//   /api/services       the services as JSON (with their recent history)
//   /api/services/NAME  one service (NAME percent-encoded), 404 when not listed
//   /metrics            the Prometheus text (prometheus.hpp)
// Everything is in this header: the page fetches nothing from anywhere else.
//
// Invariants:
// - every handler runs on one strand of the given executor; stop() (from any thread, any
//   number of times, also after the executor's context is gone) closes the listener and
//   every connection there, and the console's memory goes with its last pending handler;
// - the console never holds a service: it reads the registry's snapshots, once per
//   `interval`, whoever is connected (a slow event stream is dropped, never buffered
//   without bound);
// - it binds a loopback address unless options::allow_remote is set (then it warns on
//   stderr: the console has no authentication).
#pragma once

#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tenorite/detail/console_page.hpp>
#include <tenorite/prometheus.hpp>
#include <tenorite/registry.hpp>
#include <utility>
#include <vector>

namespace tenorite::console {

/// How the console runs. Every field has a default.
struct options {
  /// Where the services come from.
  service_registry* registry = &service_registry::global();
  /// How often it samples the registry and pushes an update to every open page.
  std::chrono::milliseconds interval{1000};
  /// Samples kept per service for the charts (300 at 1 s: the last five minutes).
  std::size_t history = 300;
  /// Allow an address other than loopback. The console has no authentication: anyone who
  /// reaches the port sees every service's name and figures. A warning goes to stderr.
  bool allow_remote = false;
  /// Connections open at once, at most; more are closed as they come.
  std::size_t max_connections = 64;
  /// After an accept failed (out of file descriptors, most often), how long the listener
  /// waits before it accepts again: the cause usually lasts, and retrying at once would spin.
  std::chrono::milliseconds accept_retry{100};
};

namespace detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

// ---- JSON, written by hand: the core stays free of a JSON library ----

inline void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      // Pass valid UTF-8 through; anything else becomes U+FFFD (JSON text is UTF-8).
      std::size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
      bool ok = len != 0 && i + len <= s.size();
      for (std::size_t k = 1; ok && k < len; ++k)
        ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 2;
      if (ok) {
        out.append(s.substr(i, len));
        i += len - 1;
      } else {
        out += "\\ufffd";
      }
    }
  }
  out += '"';
}

inline void json_number(std::string& out, double v) {
  char buf[40];
  if (!(v == v) || v > 1e300 || v < -1e300) v = 0;  // JSON has no NaN or infinity
  std::snprintf(buf, sizeof buf, "%.15g", v);
  out += buf;
}

inline double unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

inline void json_latency(std::string& out, const latency_histogram& h, std::uint64_t sum_ns) {
  const std::uint64_t n = h.total();
  auto us = [](std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1000.0; };
  out += "{\"count\":" + std::to_string(n) + ",\"mean_us\":";
  json_number(out, n ? static_cast<double>(sum_ns) / 1000.0 / static_cast<double>(n) : 0);
  out += ",\"p50_us\":";
  json_number(out, us(h.percentile(0.50)));
  out += ",\"p90_us\":";
  json_number(out, us(h.percentile(0.90)));
  out += ",\"p99_us\":";
  json_number(out, us(h.percentile(0.99)));
  out += ",\"buckets\":[";
  // Bucket i: [2^i, 2^(i+1)) ns; trailing empty buckets left out.
  std::size_t last = 0;
  for (std::size_t i = 0; i < h.counts.size(); ++i)
    if (h.counts[i]) last = i + 1;
  for (std::size_t i = 0; i < last; ++i) {
    if (i) out += ',';
    out += std::to_string(h.counts[i]);
  }
  out += "]}";
}

/// One service's recent past: a point per sample.
struct service_history {
  struct point {
    double t;  // unix seconds
    std::size_t queue_depth;
    double calls_per_s;
    double failed_per_s;
    std::uint64_t in_flight;
  };
  std::deque<point> points;
  std::uint64_t last_calls = 0, last_failed = 0;
  std::chrono::steady_clock::time_point last_at{};
  bool seen = false;

  void add(const service_info& s, std::chrono::steady_clock::time_point now, double t,
           std::size_t keep) {
    point p{t, s.queue_depth, 0, 0, 0};
    if (s.metrics) {
      const std::uint64_t calls = s.metrics->calls, failed = s.metrics->failed_total();
      if (seen) {
        const double dt = std::chrono::duration<double>(now - last_at).count();
        if (dt > 0) {
          p.calls_per_s = static_cast<double>(calls - last_calls) / dt;
          p.failed_per_s = static_cast<double>(failed - last_failed) / dt;
        }
      }
      last_calls = calls;
      last_failed = failed;
      p.in_flight = s.metrics->in_flight;
    }
    last_at = now;
    seen = true;
    points.push_back(p);
    while (points.size() > keep) points.pop_front();
  }
};

inline void json_service(std::string& out, const service_info& s, const service_history* h) {
  out += "{\"name\":";
  json_string(out, s.name);
  out += ",\"kind\":\"";
  out += to_string(s.kind);
  out += "\",\"status\":\"";
  out += to_string(s.status);
  out += "\",\"workers\":" + std::to_string(s.workers);
  out += ",\"queue_capacity\":" + std::to_string(s.queue_capacity);
  out += ",\"queue_depth\":" + std::to_string(s.queue_depth);
  out += ",\"started\":";
  json_number(out, unix_seconds(s.started));
  out += ",\"restarts\":" + std::to_string(s.restarts);
  out += ",\"last_failure\":";
  if (s.last_failure) {
    out += "{\"message\":";
    json_string(out, s.last_failure->message);
    out += ",\"time\":";
    json_number(out, unix_seconds(s.last_failure->when));
    out += '}';
  } else {
    out += "null";
  }
  out += ",\"metrics\":";
  if (s.metrics) {
    const metrics_snapshot& m = *s.metrics;
    out += "{\"calls\":" + std::to_string(m.calls);
    out += ",\"answered\":" + std::to_string(m.answered);
    out += ",\"failed_total\":" + std::to_string(m.failed_total());
    out += ",\"failed\":{";
    for (std::size_t k = 0; k < error_kind_count; ++k) {
      if (k) out += ',';
      out += '"';
      out += to_string(static_cast<error_kind>(k));
      out += "\":" + std::to_string(m.failed[k]);
    }
    out += "},\"notifications\":" + std::to_string(m.notifications);
    out += ",\"in_flight\":" + std::to_string(m.in_flight);
    out += ",\"oldest_in_flight_ms\":";
    json_number(out, static_cast<double>(m.oldest_in_flight.count()) / 1e6);
    out += ",\"latency\":";
    json_latency(out, m.latency, m.latency_sum_ns);
    out += ",\"queued\":";
    json_latency(out, m.queued, m.queued_sum_ns);
    out += ",\"in_worker\":";
    json_latency(out, m.in_worker, m.in_worker_sum_ns);
    out += '}';
  } else {
    out += "null";
  }
  out += ",\"history\":{\"t\":[";
  if (h) {
    auto list = [&](auto field) {
      bool first = true;
      for (const auto& p : h->points) {
        if (!first) out += ',';
        first = false;
        json_number(out, static_cast<double>(field(p)));
      }
    };
    list([](const service_history::point& p) { return p.t; });
    out += "],\"queue_depth\":[";
    list([](const service_history::point& p) { return p.queue_depth; });
    out += "],\"calls_per_s\":[";
    list([](const service_history::point& p) { return p.calls_per_s; });
    out += "],\"failed_per_s\":[";
    list([](const service_history::point& p) { return p.failed_per_s; });
    out += "],\"in_flight\":[";
    list([](const service_history::point& p) { return p.in_flight; });
    out += "]}}";
  } else {
    out += "],\"queue_depth\":[],\"calls_per_s\":[],\"failed_per_s\":[],\"in_flight\":[]}}";
  }
}

/// Decodes %XX escapes (and '+' is left as it is: paths, not forms). Empty on a bad escape.
inline std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

/// Whether the console's context still exists: an Asio service of that context flips it
/// at shutdown, under the lock a stop() holds while it posts there.
struct context_life {
  std::mutex m;
  bool alive = true;
};

class life_service final : public asio::execution_context::service {
 public:
  using key_type = life_service;
  static inline asio::execution_context::id id;
  explicit life_service(asio::execution_context& ctx)
      : asio::execution_context::service(ctx), life(std::make_shared<context_life>()) {}
  void shutdown() override {
    std::lock_guard lk(life->m);
    life->alive = false;
  }
  std::shared_ptr<context_life> life;
};

class core : public std::enable_shared_from_this<core> {
 public:
  using strand_type = asio::strand<asio::any_io_executor>;

  core(asio::any_io_executor ex, const options& opts)
      : strand_(asio::make_strand(ex)),
        acceptor_(strand_),
        timer_(strand_),
        retry_(strand_),
        opts_(opts),
        list_(opts.registry ? opts.registry->list() : nullptr) {}

  void listen(const tcp::endpoint& ep) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    bound_ = acceptor_.local_endpoint();
  }
  tcp::endpoint bound() const { return bound_; }

  void start() {
    asio::post(strand_, [self = shared_from_this()] {
      self->sample();
      self->accept();
      self->tick();
    });
  }

  void stop_here() {
    if (stopped_) return;
    stopped_ = true;
    boost::system::error_code ec;
    acceptor_.close(ec);
    timer_.cancel();
    retry_.cancel();
    for (auto& w : sessions_)
      if (auto s = w.lock()) s->close();
    sessions_.clear();
    events_.clear();
  }

  const strand_type& strand() const noexcept { return strand_; }

  // ---- one connection ----
  class session : public std::enable_shared_from_this<session> {
   public:
    session(std::shared_ptr<core> owner, tcp::socket sock)
        : owner_(std::move(owner)), stream_(std::move(sock)) {}

    void read() {
      parser_.emplace();
      parser_->header_limit(8 * 1024);
      parser_->body_limit(4 * 1024);
      stream_.expires_after(std::chrono::seconds(30));
      http::async_read(stream_, buffer_, *parser_,
                       [self = shared_from_this()](beast::error_code ec, std::size_t) {
                         self->on_read(ec);
                       });
    }

    void close() {
      closed_ = true;
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      stream_.close();
    }

    // An event for an open /events stream: queued, written in order, at most a few behind.
    void push(std::shared_ptr<const std::string> event) {
      if (closed_) return;
      if (outbox_.size() >= 8) {  // a reader this slow is dropped, not buffered without end
        close();
        return;
      }
      outbox_.push_back(std::move(event));
      if (outbox_.size() == 1) write_next_event();
    }

   private:
    void on_read(beast::error_code ec) {
      if (ec || closed_) return close();
      http::request<http::string_body> req = parser_->release();
      owner_->respond(*this, std::move(req));
    }

    friend class core;

    void send(http::response<http::string_body> res) {
      auto sp = std::make_shared<http::response<http::string_body>>(std::move(res));
      stream_.expires_after(std::chrono::seconds(30));
      http::async_write(stream_, *sp,
                        [self = shared_from_this(), sp](beast::error_code ec, std::size_t) {
                          if (ec || self->closed_ || !sp->keep_alive()) return self->close();
                          self->read();
                        });
    }

    void start_events(std::string head) {
      stream_.expires_never();
      outbox_.push_back(std::make_shared<const std::string>(std::move(head)));
      write_next_event();
      watch_peer();
    }

    // An open stream is kept by a read that waits for the browser to go (end of file, an
    // error, or anything it sends: a stream takes no requests); between events nothing else
    // holds the session.
    void watch_peer() {
      stream_.socket().async_read_some(
          asio::buffer(sink_), [self = shared_from_this()](beast::error_code, std::size_t) {
            self->close();
          });
    }

    void write_next_event() {
      if (outbox_.empty() || closed_) return;
      asio::async_write(stream_.socket(), asio::buffer(*outbox_.front()),
                        [self = shared_from_this()](beast::error_code ec, std::size_t) {
                          if (ec || self->closed_) return self->close();
                          self->outbox_.pop_front();
                          self->write_next_event();
                        });
    }

    std::shared_ptr<core> owner_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::deque<std::shared_ptr<const std::string>> outbox_;
    char sink_[64]{};
    bool closed_ = false;
  };

 private:
  void accept() {
    acceptor_.async_accept(strand_, [self = shared_from_this()](beast::error_code ec,
                                                                tcp::socket sock) {
      if (self->stopped_) return;
      if (ec) {
        self->accept_failures_->fetch_add(1, std::memory_order_relaxed);
        self->retry_.expires_after(self->opts_.accept_retry);
        self->retry_.async_wait([self](beast::error_code wait_ec) {
          if (!wait_ec && !self->stopped_) self->accept();
        });
        return;
      }
      self->open(std::move(sock));
      self->accept();
    });
  }

  void open(tcp::socket sock) {
    std::erase_if(sessions_, [](const std::weak_ptr<session>& w) { return w.expired(); });
    if (sessions_.size() >= opts_.max_connections) {
      beast::error_code ec;
      sock.close(ec);
      return;
    }
    auto s = std::make_shared<session>(shared_from_this(), std::move(sock));
    sessions_.push_back(s);
    s->read();
  }

  void tick() {
    timer_.expires_after(opts_.interval);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->stopped_) return;
      self->sample();
      self->broadcast();
      self->tick();
    });
  }

  void sample() {
    latest_ = latest_now();
    const auto now = std::chrono::steady_clock::now();
    const double t = unix_seconds(std::chrono::system_clock::now());
    std::set<std::string> names;
    for (const service_info& s : latest_) {
      names.insert(s.name);
      history_[s.name].add(s, now, t, opts_.history == 0 ? 1 : opts_.history);
    }
    std::erase_if(history_, [&](const auto& kv) { return !names.count(kv.first); });
    sampled_at_ = t;
  }

  // `list`: the last sample (events), or the registry read now (a request wants the current
  // figures); the history is the samples'.
  std::string services_json(const std::vector<service_info>& list, double at) const {
    std::string out = "{\"time\":";
    json_number(out, at);
    out += ",\"interval_ms\":" + std::to_string(opts_.interval.count());
    out += ",\"services\":[";
    bool first = true;
    for (const service_info& s : list) {
      if (!first) out += ',';
      first = false;
      auto it = history_.find(s.name);
      json_service(out, s, it == history_.end() ? nullptr : &it->second);
    }
    out += "]}";
    return out;
  }

  void broadcast() {
    std::erase_if(events_, [](const std::weak_ptr<session>& w) { return w.expired(); });
    if (events_.empty()) return;
    auto event =
        std::make_shared<const std::string>("data: " + services_json(latest_, sampled_at_) + "\n\n");
    for (auto& w : events_)
      if (auto s = w.lock()) s->push(event);
  }

  void respond(session& s, http::request<http::string_body> req) {
    using http::status;
    auto reply = [&](status st, std::string_view type, std::string body) {
      http::response<http::string_body> res{st, req.version()};
      res.set(http::field::server, "tenorite-console");
      res.set(http::field::content_type, type);
      res.set(http::field::cache_control, "no-store");
      res.keep_alive(req.keep_alive());
      const bool head = req.method() == http::verb::head;
      res.body() = std::move(body);
      res.prepare_payload();
      if (head) res.body().clear();
      s.send(std::move(res));
    };
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      http::response<http::string_body> res{status::method_not_allowed, req.version()};
      res.set(http::field::allow, "GET, HEAD");
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "the console answers GET and HEAD only\n";
      res.keep_alive(false);
      res.prepare_payload();
      return s.send(std::move(res));
    }
    std::string_view target(req.target().data(), req.target().size());
    if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    if (target == "/" || target == "/index.html")
      return reply(status::ok, "text/html; charset=utf-8", std::string(page_html));
    if (target == "/metrics")
      return reply(status::ok, prometheus_content_type, [&] {
        std::string out;
        write_prometheus(out, latest_now());
        return out;
      }());
    if (target == "/api/services")
      return reply(status::ok, "application/json",
                   services_json(latest_now(), unix_seconds(std::chrono::system_clock::now())));
    constexpr std::string_view one = "/api/services/";
    if (target.substr(0, one.size()) == one) {
      auto name = percent_decode(target.substr(one.size()));
      if (name) {
        if (auto si = list_ ? tenorite::detail::find_in(*list_, *name) : std::nullopt) {
          std::string out;
          auto it = history_.find(si->name);
          json_service(out, *si, it == history_.end() ? nullptr : &it->second);
          return reply(status::ok, "application/json", std::move(out));
        }
      }
      return reply(status::not_found, "application/json",
                   "{\"error\":\"no service of that name is listed\"}");
    }
    if (target == "/events" && req.method() == http::verb::get) {
      events_.push_back(s.weak_from_this());
      std::string head =
          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
          "Connection: close\r\nX-Accel-Buffering: no\r\n\r\n";
      head += "retry: 2000\n\ndata: " +
              services_json(latest_now(), unix_seconds(std::chrono::system_clock::now())) + "\n\n";
      return s.start_events(std::move(head));
    }
    reply(status::not_found, "text/plain; charset=utf-8",
          "not found: the console serves /, /events, /api/services and /metrics\n");
  }

  // A request reads the registry now (a scrape wants the current counters, not the sample).
  std::vector<service_info> latest_now() const {
    return list_ ? tenorite::detail::snapshot_of(*list_) : std::vector<service_info>{};
  }

  strand_type strand_;
  tcp::acceptor acceptor_;
  asio::steady_timer timer_;
  asio::steady_timer retry_;  // the wait after a failed accept
  options opts_;
  // The registry's list, not the registry: the registry may go before the console stops.
  std::shared_ptr<tenorite::detail::registry_list> list_;
  tcp::endpoint bound_;
  bool stopped_ = false;

 public:
  // Shared with the handle, which may read it from any thread, before or after the core.
  std::shared_ptr<std::atomic<std::uint64_t>> accept_failures_ =
      std::make_shared<std::atomic<std::uint64_t>>(0);

 private:
  std::vector<service_info> latest_;
  double sampled_at_ = 0;
  std::map<std::string, service_history> history_;
  std::vector<std::weak_ptr<session>> sessions_;
  std::vector<std::weak_ptr<session>> events_;
};

}  // namespace detail

class server;
template <class Executor>
server serve(const Executor& ex, const boost::asio::ip::tcp::endpoint& where, options opts = {});

/// A running console. Move-only; destroying it stops the console (as stop() does).
class server {
 public:
  server() noexcept = default;
  server(server&&) noexcept = default;
  server& operator=(server&& o) noexcept {
    if (this != &o) {
      stop();
      core_ = std::move(o.core_);
      life_ = std::move(o.life_);
      endpoint_ = o.endpoint_;
      accept_failures_ = std::move(o.accept_failures_);
    }
    return *this;
  }
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server() { stop(); }

  /// Where it listens (with the port the system chose when asked for port 0).
  boost::asio::ip::tcp::endpoint endpoint() const noexcept { return endpoint_; }
  /// The page's address, e.g. "http://127.0.0.1:9100/".
  std::string url() const {
    const auto a = endpoint_.address();
    std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
    return "http://" + host + ":" + std::to_string(endpoint_.port()) + "/";
  }

  /// Closes the listener and every connection. Safe from any thread, more than once, and
  /// after the executor's context was destroyed (then there is nothing left to close).
  void stop() noexcept {
    if (!life_) return;  // empty: nothing was started
    // Under the context's lock: while it is alive its services exist, so the core may be
    // locked (and its last reference dropped) here; once its shutdown began, the core is
    // the shutdown's to destroy and is not touched.
    std::lock_guard lk(life_->m);
    std::weak_ptr<detail::core> w = std::exchange(core_, {});
    if (!life_->alive) return;
    if (auto c = w.lock()) {
      try {
        boost::asio::post(c->strand(), [c] { c->stop_here(); });
      } catch (...) {  // no memory to post: the context's shutdown closes it instead
      }
    }
  }

  /// Accepts that failed so far (each is followed by a wait of options::accept_retry): out of
  /// file descriptors, most often. Readable from any thread, also after stop().
  std::uint64_t accept_failures() const noexcept {
    return accept_failures_ ? accept_failures_->load(std::memory_order_relaxed) : 0;
  }

  /// False once stopped (or for an empty handle).
  explicit operator bool() const noexcept {
    if (!life_) return false;
    std::lock_guard lk(life_->m);
    return !core_.expired();
  }

 private:
  template <class Executor>
  friend server serve(const Executor&, const boost::asio::ip::tcp::endpoint&, options);
  std::weak_ptr<detail::core> core_;
  std::shared_ptr<detail::context_life> life_;
  boost::asio::ip::tcp::endpoint endpoint_;
  std::shared_ptr<const std::atomic<std::uint64_t>> accept_failures_;
};

/// Starts the console on `ex` (an executor of an io_context, a runtime, a strand...),
/// listening on `where`. Throws std::invalid_argument for a non-loopback address without
/// options::allow_remote, or a zero interval; boost::system::system_error when the address
/// cannot be bound (in use, not local).
template <class Executor>
server serve(const Executor& ex, const boost::asio::ip::tcp::endpoint& where, options opts) {
  if (opts.interval.count() <= 0)
    throw std::invalid_argument("tenorite::console::serve: options::interval must be positive");
  if (opts.accept_retry.count() <= 0)
    throw std::invalid_argument(
        "tenorite::console::serve: options::accept_retry must be positive (a failed accept "
        "retried at once would spin while its cause lasts)");
  if (!where.address().is_loopback()) {
    if (!opts.allow_remote)
      throw std::invalid_argument(
          "tenorite::console::serve: " + where.address().to_string() +
          " is not a loopback address; the console has no authentication, so it binds only "
          "loopback unless options::allow_remote is set");
    std::cerr << "tenorite console: WARNING: listening on " << where.address().to_string()
              << ", not loopback; anyone who reaches port " << where.port()
              << " sees every service (the console has no authentication)\n";
  }
  boost::asio::any_io_executor any(ex);
  auto& ctx = boost::asio::query(any, boost::asio::execution::context);
  auto life = boost::asio::use_service<detail::life_service>(ctx).life;
  auto c = std::make_shared<detail::core>(any, opts);
  c->listen(where);
  server s;
  s.core_ = c;
  s.life_ = std::move(life);
  s.endpoint_ = c->bound();
  s.accept_failures_ = c->accept_failures_;
  c->start();
  return s;
}

/// Starts the console on 127.0.0.1:`port` (0: a port the system chooses; see endpoint()).
template <class Executor>
server serve(const Executor& ex, unsigned short port, options opts = {}) {
  return serve(ex, boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::loopback(), port),
               std::move(opts));
}

}  // namespace tenorite::console
