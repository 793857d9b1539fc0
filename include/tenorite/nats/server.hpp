// SPDX-License-Identifier: BSL-1.0
// tenorite/nats/server.hpp — puts local services on NATS as a NATS service (ADR-32, "micro"):
// discoverable and callable by every NATS client, in any language.
//
//   auto svc = tenorite::nats::add_service(conn, {.name = "kv", .version = "1.0.0",
//                                                 .description = "a map as a service"});
//   svc.add_endpoint("kv", caller);                        // subject "kv", queue group "q"
//   svc.add_endpoint("get", getter, {.subject = "kv.get"}, tenorite::nats::json_codec{});
//   auto g = svc.add_group("admin");  g.add_endpoint("dump", dumper);   // subject admin.dump
//   ...
//   svc.drain();                                           // answer what was received, stop
//
// or, for one endpoint: `auto svc = tenorite::nats::serve(conn, "kv", "kv-workers", caller);`
//
// Discovery: the service answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` (bare, `.<name>`
// and `.<name>.<id>`; no queue group: every instance answers) with the io.nats.micro.v1 JSON
// responses (detail/micro.hpp), so `nats micro ls`, nats.go's and nats.js's service clients
// list it. Its id is unique per add_service(); STATS is filled from each endpoint's figures.
//
// Each endpoint: every instance subscribed with the same queue group shares the subject's
// requests (NATS gives each request to one of them). A request is decoded, passed to the
// local service through its caller, and the outcome encoded and published to the request's
// reply subject, in the codec's wire (wire.hpp: binary_codec's framing, or plain payloads with
// errors in the Nats-Service-Error headers, json_codec's). Rules:
// - nats.c's delivery thread never blocks: it decodes and starts an asynchronous call; the
//   reply is published from the completion (on the service's executor);
// - backpressure without unbounded buffering: at most max_in_flight local calls at once
//   (each waits for room in the service's queue); a request beyond that is answered at once
//   with queue_full (the caller gets error_kind::queue_full and its request back); nats.c's
//   own queue for the subscription is bounded (pending limits; beyond them nats.c drops
//   messages and the callers time out);
// - a request that cannot be decoded or is larger than max_payload is answered with
//   bad_request and a reason; the endpoint keeps serving;
// - drain(): no new requests, those received are served and answered, then it returns;
//   stop(): no new requests; those nats.c already took are still passed on (at most 5 s),
//   and calls in flight still reply, unwaited. The destructor stops.
// On a connection that runs on an executor (connection_options::executor) the subscriptions
// are synchronous and drained on that executor after each read event: requests reach the
// service without a nats.c delivery thread (and without a thread switch when the service
// runs there).
//
// Works with any nats.c >= 3.x (Debian 12 has 3.4.1, which has no micro API): the protocol is
// implemented here over plain subscriptions and message headers.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tenorite/caller.hpp>
#include <tenorite/registry.hpp>
#include <tenorite/trace.hpp>
#include <tenorite/nats/codec.hpp>
#include <tenorite/nats/connection.hpp>
#include <tenorite/nats/detail/micro.hpp>
#include <tenorite/nats/detail/subscriber.hpp>
#include <tenorite/nats/wire.hpp>
#include <type_traits>
#include <utility>
#include <vector>

namespace tenorite::nats {

/// Limits of one endpoint.
struct serve_options {
  /// Local calls in flight at once; a request beyond them is answered queue_full at once.
  std::size_t max_in_flight = 1024;
  /// The largest request payload accepted, in bytes (larger: bad request).
  std::size_t max_payload = 1u << 20;
  /// nats.c's queue for this subscription (messages, bytes); beyond: dropped (slow consumer).
  int pending_msgs_limit = 65536;
  int pending_bytes_limit = 64 * 1024 * 1024;
  /// Where the endpoint is listed (kind nats_endpoint, named "nats:" and its subject), while
  /// it serves and, as ended, until it is freed; nullptr: not listed.
  service_registry* registry = &service_registry::global();
};

/// Who a service is (ADR-32): what add_service() takes.
struct service_config {
  /// Shared by every instance of the service: letters, digits, '-' and '_'.
  std::string name;
  /// A semantic version (MAJOR.MINOR.PATCH).
  std::string version = "0.0.0";
  std::string description{};
  std::map<std::string, std::string> metadata{};
  /// The queue group of endpoints that name none; empty: no group (every instance gets
  /// every request).
  std::string queue_group = "q";
};

/// How one endpoint is served.
struct endpoint_options {
  /// The subject, under its group's prefix; empty: the endpoint's name.
  std::string subject{};
  /// The queue group; unset: its group's (or the service's); empty: none.
  std::optional<std::string> queue_group{};
  std::map<std::string, std::string> metadata{};
  serve_options limits{};
};

/// What one endpoint has done so far: the STATS figures, and tenorite's own counts.
struct endpoint_stats {
  std::string name, subject, queue_group;
  std::uint64_t num_requests = 0;  ///< replies sent (answers and errors)
  std::uint64_t num_errors = 0;    ///< error replies (service errors, bad requests, failures)
  std::string last_error;          ///< "<code>:<description>" of the last error reply
  std::chrono::nanoseconds processing_time{0};          ///< from receipt to reply, summed
  std::chrono::nanoseconds average_processing_time{0};  ///< processing_time / num_requests
  std::uint64_t received = 0;          ///< messages taken from NATS
  std::uint64_t answered = 0;          ///< replies published for local calls
  std::uint64_t bad_requests = 0;      ///< undecodable or oversized (answered bad request)
  std::uint64_t busy = 0;              ///< answered queue_full (max_in_flight reached)
  std::uint64_t no_reply_subject = 0;  ///< messages without a reply subject (ignored)
};

/// A snapshot of a service (safe from any thread).
struct service_stats {
  std::string name, id, version;
  std::chrono::system_clock::time_point started;
  std::vector<endpoint_stats> endpoints;
  /// The endpoint named `name`; throws std::out_of_range when there is none.
  const endpoint_stats& endpoint(std::string_view name) const {
    for (const auto& e : endpoints)
      if (e.name == name) return e;
    throw std::out_of_range("tenorite::nats::service_stats: no endpoint named '" +
                            std::string(name) + "'");
  }
};

namespace detail {

/// The code and sentence of a service error (nats_error_header found by ADL, see wire.hpp).
template <class Err>
error_header header_of(const Err& e) {
  if constexpr (requires {
                  { nats_error_header(e) } -> std::convertible_to<error_header>;
                }) {
    return nats_error_header(e);
  } else if constexpr (std::is_convertible_v<const Err&, std::string_view>) {
    return {500, std::string(std::string_view(e))};
  } else {
    return {500, "service error"};
  }
}

/// A header value on one line (a CR or LF would end the header early).
inline std::string header_value(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c == '\r' || c == '\n') c = ' ';
  return out;
}

/// What a micro_service knows of each endpoint, whatever its types.
class endpoint_base {
 public:
  virtual ~endpoint_base() = default;
  virtual micro::endpoint_info info() const = 0;
  virtual endpoint_stats stats() const = 0;
  virtual bool drain(std::chrono::steady_clock::time_point deadline) = 0;
  /// Stops; returns what the owner releases on its thread after its own reference.
  virtual std::shared_ptr<void> stop() noexcept = 0;
};

template <class Req, class Resp, class Err, class Codec>
class endpoint_state final : public subscriber<endpoint_state<Req, Resp, Err, Codec>>,
                             public endpoint_base {
  using base = subscriber<endpoint_state>;
  using clock = std::chrono::steady_clock;
  static constexpr bool binary = wire_of<Codec>() == wire_format::binary;

 public:
  using caller_type = tenorite::caller<Req, Resp, Err>;
  using result_type = typename caller_type::result_type;

  endpoint_state(connection c, micro::endpoint_info i, caller_type cl, const serve_options& o,
                 Codec cd)
      : base(std::move(c)), info_(std::move(i)), caller(std::move(cl)), opts(o),
        codec(std::move(cd)) {}

  micro::endpoint_info info() const override { return info_; }

  endpoint_stats stats() const override {
    endpoint_stats s;
    s.name = info_.name;
    s.subject = info_.subject;
    s.queue_group = info_.queue_group;
    s.num_requests = replies.load(std::memory_order_relaxed);
    s.num_errors = errors.load(std::memory_order_relaxed);
    s.processing_time = std::chrono::nanoseconds(processing_ns.load(std::memory_order_relaxed));
    if (s.num_requests)
      s.average_processing_time =
          s.processing_time / static_cast<std::int64_t>(s.num_requests);
    {
      std::lock_guard lk(error_m);
      s.last_error = last_error;
    }
    s.received = received.load(std::memory_order_relaxed);
    s.answered = answered.load(std::memory_order_relaxed);
    s.bad_requests = bad.load(std::memory_order_relaxed);
    s.busy = busy.load(std::memory_order_relaxed);
    s.no_reply_subject = no_reply.load(std::memory_order_relaxed);
    return s;
  }

  bool drain(clock::time_point deadline) override {
    phase.store(service_status::draining, std::memory_order_relaxed);
    const bool taken = this->drain_subscription(deadline);
    std::unique_lock lk(this->m);
    return this->cv.wait_until(lk, deadline, [&] { return unanswered == 0; }) && taken;
  }

  std::shared_ptr<void> stop() noexcept override {
    phase.store(service_status::ended, std::memory_order_relaxed);
    return this->stop_subscription();
  }

  /// Lists the endpoint (once it serves).
  void list_in(service_registry* registry) {
    if (registry) (void)listing.join(registry->list(), "nats:" + info_.subject, &describe, this);
  }

  void start() {
    this->subscribe(info_.subject, info_.queue_group, opts.pending_msgs_limit,
                    opts.pending_bytes_limit);
  }

  // ---- a request: on nats.c's delivery thread, or on the connection's loop ----
  void handle(natsMsg* msg) {
    const auto start = clock::now();
    std::unique_ptr<natsMsg, void (*)(natsMsg*)> guard(msg, &natsMsg_Destroy);
    received.fetch_add(1, std::memory_order_relaxed);
    const char* reply_c = natsMsg_GetReply(msg);
    if (!reply_c || !*reply_c) {
      no_reply.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    std::string reply(reply_c);
    const int len = natsMsg_GetDataLength(msg);
    const char* data = natsMsg_GetData(msg);
    if (len < 0 || static_cast<std::size_t>(len) > opts.max_payload) {
      bad.fetch_add(1, std::memory_order_relaxed);
      fail(reply, start, error_kind::bad_request,
           "the request's " + std::to_string(len) + " bytes exceed the server's max_payload (" +
               std::to_string(opts.max_payload) + ")");
      return;
    }
    std::string_view payload(data ? data : "", static_cast<std::size_t>(len));
    if constexpr (binary) {
      if (payload.empty() || static_cast<std::uint8_t>(payload[0]) != wire::binary_version) {
        bad.fetch_add(1, std::memory_order_relaxed);
        fail(reply, start, error_kind::bad_request,
             "undecodable request: " + wire::version_mismatch("the request", payload));
        return;
      }
      payload.remove_prefix(1);
    }
    auto req = codec.template decode<Req>(payload);
    if (!req) {
      bad.fetch_add(1, std::memory_order_relaxed);
      fail(reply, start, error_kind::bad_request, "undecodable request: " + req.error().reason);
      return;
    }
    {
      std::lock_guard lk(this->m);
      if (in_flight >= opts.max_in_flight) {
        busy.fetch_add(1, std::memory_order_relaxed);
        fail(reply, start, error_kind::queue_full, "the server has max_in_flight calls in flight");
        return;
      }
      ++in_flight;
      ++unanswered;
    }
    // The caller's trace goes on to the worker (an invalid traceparent is none: the W3C
    // rule is to start a new trace then, which is the worker's to do).
    trace_context trace;
    const char* traceparent = nullptr;
    if (natsMsgHeader_Get(msg, wire::traceparent_header_name, &traceparent) == NATS_OK &&
        traceparent)
      trace = trace_context::parse(traceparent).value_or(trace_context{});
    guard.reset();
    // Never blocks: the call waits for room in the service's queue asynchronously. The
    // handler answers exactly once: when called, or (never called) when destroyed.
    // Made before the request is moved (an argument's order is unspecified, and a move may
    // throw): if the call cannot start, the handler's destruction answers.
    reply_handler answer_once(this->shared_from_this(), std::move(reply), start);
    if (trace)
      caller.with_trace(trace).async_send_request(std::move(*req), std::move(answer_once));
    else
      caller.async_send_request(std::move(*req), std::move(answer_once));
  }

 private:
  // The local call's completion. If it is destroyed uncalled (the call's executor went away,
  // or starting the call threw), the request is still answered, with fetch_failure.
  class reply_handler {
   public:
    reply_handler(std::shared_ptr<endpoint_state> s, std::string r, clock::time_point t)
        : self(std::move(s)), reply(std::move(r)), start(t) {}
    reply_handler(reply_handler&&) noexcept = default;
    reply_handler(const reply_handler&) = delete;
    reply_handler& operator=(const reply_handler&) = delete;
    reply_handler& operator=(reply_handler&&) = delete;
    ~reply_handler() {
      if (self) settle(nullptr, "the serving side's call ended without an outcome");
    }
    void operator()(result_type r) {
      if (self) settle(&r, nullptr);
    }

   private:
    void settle(result_type* r, const char* lost) noexcept {
      const std::shared_ptr<endpoint_state> s = std::move(self);
      {
        // The slot is free before the reply goes: a caller holding the reply may count on it.
        std::lock_guard lk(s->m);
        --s->in_flight;
      }
      if (r) s->answered.fetch_add(1, std::memory_order_relaxed);
      try {
        if (r) {
          s->answer(reply, start, *r);
        } else {
          s->fail(reply, start, error_kind::fetch_failure, lost);
        }
      } catch (...) {  // out of memory, or a throwing codec or error hook: a plain failure
        try {
          s->fail(reply, start, error_kind::fetch_failure, "the reply could not be built");
        } catch (...) {  // nothing can be sent: the caller's deadline ends its call
        }
      }
      std::lock_guard lk(s->m);
      if (--s->unanswered == 0) s->cv.notify_all();
    }
    std::shared_ptr<endpoint_state> self;
    std::string reply;
    clock::time_point start;
  };

  void answer(const std::string& reply, clock::time_point start, result_type& r) {
    std::string payload;
    if (r) {
      if constexpr (binary) {
        payload.push_back(static_cast<char>(wire::binary_version));
        payload.push_back(static_cast<char>(wire::status::response));
      }
      if (auto e = codec.encode(*r, payload); !e) {
        fail(reply, start, error_kind::fetch_failure,
             "the response could not be encoded: " + e.error().reason);
        return;
      }
      count(start);  // before the reply: whoever has it sees it counted
      publish(reply, payload);
      return;
    }
    if (r.error().kind() != error_kind::service_error) {
      fail(reply, start, r.error().kind(),
           "the serving side's call failed: " + r.error().message());
      return;
    }
    const Err& err = r.error().service_error();
    if constexpr (binary) {
      payload.push_back(static_cast<char>(wire::binary_version));
      payload.push_back(static_cast<char>(wire::status::service_error));
    }
    if (auto e = codec.encode(err, payload); !e) {
      fail(reply, start, error_kind::fetch_failure,
           "the service error could not be encoded: " + e.error().reason);
      return;
    }
    error_header h = header_of(err);
    count(start, h.code, h.description);
    publish_error(reply, payload, h.code, h.description, nullptr);
  }

  /// A failure that is not a service error: bad request, queue full, the local call failed.
  void fail(const std::string& reply, clock::time_point start, error_kind k,
            const std::string& why) {
    const int code = wire::code_of(k);
    count(start, code, why);
    if constexpr (binary) {
      publish_error(reply, k == error_kind::bad_request ? wire::bad_request(why)
                                                        : wire::failed(k, why),
                    code, why, to_string(k));
    } else {
      publish_error(reply, std::string(), code, why, to_string(k));
    }
  }

  void count(clock::time_point start) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - start);
    processing_ns.fetch_add(static_cast<std::uint64_t>(ns.count()), std::memory_order_relaxed);
    replies.fetch_add(1, std::memory_order_relaxed);
  }
  void count(clock::time_point start, int code, const std::string& description) {
    {
      std::lock_guard lk(error_m);
      last_error = std::to_string(code) + ":" + description;
      last_error_at = std::chrono::system_clock::now();
    }
    errors.fetch_add(1, std::memory_order_relaxed);
    count(start);
  }

  void publish(const std::string& reply, const std::string& payload) {
    // A failure here (connection closed) loses only this reply: the caller's deadline ends it.
    (void)natsConnection_Publish(this->conn.native(), reply.c_str(), payload.data(),
                                 static_cast<int>(payload.size()));
  }

  void publish_error(const std::string& reply, const std::string& payload, int code,
                     const std::string& description, const char* kind) {
    natsMsg* m = nullptr;
    if (natsMsg_Create(&m, reply.c_str(), nullptr, payload.data(),
                       static_cast<int>(payload.size())) != NATS_OK)
      return;  // out of memory: the caller's deadline ends the call
    std::unique_ptr<natsMsg, void (*)(natsMsg*)> guard(m, &natsMsg_Destroy);
    const std::string code_text = std::to_string(code);
    const std::string text = header_value(description.empty() ? code_text : description);
    bool headers = natsMsgHeader_Set(m, wire::error_header_name, text.c_str()) == NATS_OK &&
                   natsMsgHeader_Set(m, wire::error_code_header_name, code_text.c_str()) ==
                       NATS_OK;
    if (kind && headers)
      headers = natsMsgHeader_Set(m, wire::error_kind_header_name, kind) == NATS_OK;
    // Without its headers a micro reply would read as a success: better none (the caller's
    // deadline ends the call). A binary reply says what it is in its status byte.
    if (!headers && !binary) return;
    (void)natsConnection_PublishMsg(this->conn.native(), m);
  }

  micro::endpoint_info info_;
  caller_type caller;
  serve_options opts;
  Codec codec;
  std::size_t in_flight = 0;   // guarded by m: local calls not yet completed (max_in_flight)
  std::size_t unanswered = 0;  // guarded by m: local calls whose reply is not yet published
  std::atomic<std::uint64_t> received{0}, answered{0}, bad{0}, busy{0}, no_reply{0};
  std::atomic<std::uint64_t> replies{0}, errors{0}, processing_ns{0};
  mutable std::mutex error_m;
  std::string last_error;  // guarded by error_m
  std::chrono::system_clock::time_point last_error_at;  // guarded by error_m
  std::atomic<service_status> phase{service_status::running};

 private:
  // What the registry shows: the local calls in flight against max_in_flight, as a queue.
  static void describe(const void* ctx, service_info& out) {
    // The subscriber's lock is not mutable; reading under it changes nothing.
    auto* s = static_cast<endpoint_state*>(const_cast<void*>(ctx));
    out.kind = service_kind::nats_endpoint;
    out.status = s->phase.load(std::memory_order_relaxed);
    out.queue_capacity = s->opts.max_in_flight;
    {
      std::lock_guard lk(s->m);
      out.queue_depth = s->in_flight;
    }
    metrics_snapshot m;
    m.queue_depth = out.queue_depth;
    m.in_flight = out.queue_depth;
    m.calls = s->received.load(std::memory_order_relaxed);
    m.answered = s->answered.load(std::memory_order_relaxed);
    m.failed[static_cast<std::size_t>(error_kind::bad_request)] =
        s->bad.load(std::memory_order_relaxed);
    m.failed[static_cast<std::size_t>(error_kind::queue_full)] =
        s->busy.load(std::memory_order_relaxed);
    out.metrics = m;
    std::lock_guard lk(s->error_m);
    if (!s->last_error.empty())
      out.last_failure = failure_info{s->last_error, s->last_error_at};
  }

  // Last: it leaves the registry before anything describe() reads is destroyed.
  tenorite::detail::registry_entry listing;
};

/// What a service's parts share: its identity and its endpoints.
struct service_core {
  micro::identity who;
  std::chrono::system_clock::time_point started;
  std::string queue_group;
  connection conn;
  mutable std::mutex m;
  std::vector<std::shared_ptr<endpoint_base>> endpoints;  // guarded by m
  bool stopped = false;                                   // guarded by m

  std::vector<std::shared_ptr<endpoint_base>> snapshot() const {
    std::lock_guard lk(m);
    return endpoints;
  }

  /// The JSON response to a control request.
  std::string respond(micro::verb v) const {
    if (v == micro::verb::ping) return micro::ping_response(who);
    std::vector<micro::endpoint_info> infos;
    std::vector<micro::endpoint_numbers> nums;
    for (const auto& e : snapshot()) {
      infos.push_back(e->info());
      if (v == micro::verb::stats) {
        const endpoint_stats s = e->stats();
        nums.push_back({s.num_requests, s.num_errors, s.last_error,
                        static_cast<std::uint64_t>(s.processing_time.count())});
      }
    }
    if (v == micro::verb::info) return micro::info_response(who, infos);
    return micro::stats_response(who, started, infos, nums);
  }

  template <class Req, class Resp, class Err, class Codec>
  void add(micro::endpoint_info info, tenorite::caller<Req, Resp, Err> caller,
           const serve_options& limits, Codec codec) {
    if (!caller)
      throw std::invalid_argument("tenorite::nats: add_endpoint('" + info.name +
                                  "'): the caller is empty (default-constructed or moved-from)");
    if (limits.max_in_flight == 0)
      throw std::invalid_argument("tenorite::nats: add_endpoint('" + info.name +
                                  "'): max_in_flight must be at least 1");
    if (const auto& l = conn.loop_internal()) l->refuse_blocking_wait("add_endpoint()");
    using state = endpoint_state<Req, Resp, Err, Codec>;
    auto st = std::make_shared<state>(conn, std::move(info), std::move(caller), limits,
                                      std::move(codec));
    {
      std::lock_guard lk(m);
      if (stopped)
        throw std::logic_error("tenorite::nats: add_endpoint on a service that was stopped");
    }
    st->list_in(limits.registry);  // first: a failure here leaves nothing subscribed
    st->start();
    bool late = false, kept = false;
    {
      std::lock_guard lk(m);
      late = stopped;
      if (!late) {
        try {
          endpoints.push_back(st);
          kept = true;
        } catch (...) {  // out of memory: the endpoint goes, below
        }
      }
    }
    if (!kept) {  // stopped meanwhile, or no room: this endpoint goes too, released here
      auto keep = st->stop();
      st.reset();
      keep.reset();
      if (late)
        throw std::logic_error("tenorite::nats: add_endpoint on a service that was stopped");
      throw std::bad_alloc();
    }
    // Make sure the server knows the subscription before anyone relies on it.
    (void)natsConnection_Flush(conn.native());
  }
};

/// One of a service's discovery subscriptions ($SRV.*...): answers on the delivery thread.
class control_state final : public subscriber<control_state> {
 public:
  control_state(connection c, std::weak_ptr<const service_core> core)
      : subscriber(std::move(c)), core_(std::move(core)) {}

  void handle(natsMsg* msg) {
    std::unique_ptr<natsMsg, void (*)(natsMsg*)> guard(msg, &natsMsg_Destroy);
    const char* reply = natsMsg_GetReply(msg);
    if (!reply || !*reply) return;
    const micro::verb v = micro::verb_of(natsMsg_GetSubject(msg));
    if (v == micro::verb::none) return;  // `$SRV.*` also matches verbs we do not know
    auto core = core_.lock();
    if (!core) return;
    const std::string body = core->respond(v);
    (void)natsConnection_Publish(conn.native(), reply, body.data(), static_cast<int>(body.size()));
  }

 private:
  std::weak_ptr<const service_core> core_;
};

inline std::string join_subject(const std::string& prefix, const std::string& s) {
  return prefix.empty() ? s : prefix + "." + s;
}

}  // namespace detail

class micro_group;

/// A NATS service (from add_service() or serve()): its endpoints and its discovery subjects.
/// Move-only; the destructor stops it. Endpoints may be added, and stats read, from any
/// thread while it serves, but not while the same object is stopped, drained, moved or
/// destroyed (like any object: those change it).
class micro_service {
 public:
  micro_service(micro_service&& o) noexcept
      : core_(std::move(o.core_)), control_(std::move(o.control_)), last_(std::move(o.last_)) {
    o.last_.reset();
  }
  micro_service& operator=(micro_service&& o) noexcept {
    if (this != &o) {
      stop();
      core_ = std::move(o.core_);
      control_ = std::move(o.control_);
      last_ = std::move(o.last_);
      o.last_.reset();
    }
    return *this;
  }
  micro_service(const micro_service&) = delete;
  micro_service& operator=(const micro_service&) = delete;
  ~micro_service() { stop(); }

  /// Serves `caller`'s service as the endpoint `name` (letters, digits, '-', '_') on
  /// `opts.subject` (default: `name`) in `opts.queue_group` (default: the service's), its
  /// messages in `codec`'s wire. Throws std::invalid_argument for a bad name or subject or an
  /// empty caller, nats_error when the subscription fails, std::logic_error once stopped.
  template <class Req, class Resp, class Err, class Codec = binary_codec>
  micro_service& add_endpoint(const std::string& name, tenorite::caller<Req, Resp, Err> caller,
                              endpoint_options opts = {}, Codec codec = {}) {
    add_endpoint_under(checked("add_endpoint"), std::string(), std::nullopt, name,
                       std::move(caller), std::move(opts), std::move(codec));
    return *this;
  }

  /// A group of endpoints under the subject prefix `prefix` (e.g. "kv": its endpoint "get"
  /// is on "kv.get"), in `queue_group` (default: the service's).
  micro_group add_group(const std::string& prefix,
                        std::optional<std::string> queue_group = std::nullopt);

  const std::string& name() const { return core_ ? core_->who.name : ended("name").name; }
  /// Unique per add_service(): tells the instances of one service apart.
  const std::string& id() const { return core_ ? core_->who.id : ended("id").id; }
  const std::string& version() const {
    return core_ ? core_->who.version : ended("version").version;
  }

  /// The service's figures; once stopped (or drained), its last ones.
  service_stats stats() const {
    if (!core_) return ended("stats");
    service_stats s{core_->who.name, core_->who.id, core_->who.version, core_->started, {}};
    for (const auto& e : core_->snapshot()) s.endpoints.push_back(e->stats());
    return s;
  }
  /// The JSON this service answers $SRV.PING / INFO / STATS with (what others see).
  std::string ping_json() const { return checked("ping_json")->respond(detail::micro::verb::ping); }
  std::string info_json() const { return checked("info_json")->respond(detail::micro::verb::info); }
  std::string stats_json() const {
    return checked("stats_json")->respond(detail::micro::verb::stats);
  }

  /// Stops taking requests; those already received are served and answered; then stops.
  /// True when everything was answered within `timeout` (blocks the calling thread; on a
  /// connection that runs on an executor, not from a thread of its context: std::logic_error).
  bool drain(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    if (!core_) return true;
    if (const auto& l = core_->conn.loop_internal()) l->refuse_blocking_wait("drain()");
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool all = true;
    for (const auto& e : core_->snapshot()) all = e->drain(deadline) && all;
    const connection conn = core_->conn;
    stop();
    // The NATS server has the unsubscriptions when drain returns: nobody is sent here again.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    (void)natsConnection_FlushTimeout(conn.native(), left.count() > 100 ? left.count() : 100);
    return all;
  }

  /// Stops taking requests: the subscriptions are drained (what nats.c already took is still
  /// passed to the service), calls in flight still reply, unwaited. Idempotent. Waits (at
  /// most 5 s per subscription) until nats.c has returned from its last callback, so that the
  /// local callers held by the endpoints are released here, not later on a nats.c thread. On
  /// a thread of an executor connection's context it cannot wait for the loop: it
  /// unsubscribes at once.
  void stop() noexcept {
    if (!core_) return;
    for (auto& c : control_) {
      auto keep = c->stop_subscription();
      c.reset();
    }
    control_.clear();
    std::vector<std::shared_ptr<detail::endpoint_base>> eps;
    {
      std::lock_guard lk(core_->m);
      core_->stopped = true;
      eps.swap(core_->endpoints);
    }
    std::vector<std::shared_ptr<void>> keeps;
    try {
      keeps.resize(eps.size());
    } catch (...) {  // out of memory: each endpoint stopped and released in turn, no figures
      last_.reset();
      for (auto& e : eps) {
        auto keep = e->stop();
        e.reset();
      }
      core_.reset();
      return;
    }
    for (std::size_t i = 0; i < eps.size(); ++i) keeps[i] = eps[i]->stop();
    try {  // the last figures, with what the stops' drains served
      last_.emplace(service_stats{core_->who.name, core_->who.id, core_->who.version,
                                  core_->started, {}});
      for (const auto& e : eps) last_->endpoints.push_back(e->stats());
    } catch (...) {  // out of memory: the figures are lost, the service still stops
      last_.reset();
    }
    for (std::size_t i = 0; i < eps.size(); ++i) {
      eps[i].reset();  // ours first, then the state's own: released here, on this thread
      keeps[i].reset();
    }
    core_.reset();
  }

 private:
  friend class micro_group;
  friend micro_service add_service(connection, service_config);

  explicit micro_service(std::shared_ptr<detail::service_core> core) noexcept
      : core_(std::move(core)) {}

  const std::shared_ptr<detail::service_core>& checked(const char* what) const {
    if (!core_)
      throw std::logic_error(std::string("tenorite::nats::micro_service::") + what +
                             ": this service was stopped or moved from");
    return core_;
  }
  const service_stats& ended(const char* what) const {
    if (!last_)
      throw std::logic_error(std::string("tenorite::nats::micro_service::") + what +
                             ": this service was moved from");
    return *last_;
  }

  template <class Req, class Resp, class Err, class Codec>
  static void add_endpoint_under(const std::shared_ptr<detail::service_core>& core,
                                 const std::string& prefix,
                                 const std::optional<std::string>& group_queue,
                                 const std::string& name, tenorite::caller<Req, Resp, Err> caller,
                                 endpoint_options opts, Codec codec) {
    static_assert(service_codec<Codec, Req, Resp, Err>,
                  "tenorite::nats::add_endpoint: the codec must encode and decode Req, Resp "
                  "and Err");
    auto bad = [&](const std::string& why) {
      throw std::invalid_argument("tenorite::nats::add_endpoint: " + why);
    };
    if (auto p = detail::micro::name_problem("the endpoint name", name); !p.empty()) bad(p);
    detail::micro::endpoint_info info;
    info.name = name;
    info.subject = detail::join_subject(prefix, opts.subject.empty() ? name : opts.subject);
    if (auto p = detail::micro::subject_problem("the endpoint subject", info.subject); !p.empty())
      bad(p);
    if (info.subject == "$SRV" || info.subject.rfind("$SRV.", 0) == 0)
      bad("the endpoint subject '" + info.subject +
          "' is under $SRV, the NATS services' discovery subjects");
    info.queue_group = opts.queue_group ? *opts.queue_group
                                        : (group_queue ? *group_queue : core->queue_group);
    if (!info.queue_group.empty())
      if (auto p = detail::micro::name_problem("the queue group", info.queue_group); !p.empty())
        bad(p);
    for (const auto& [k, v] : opts.metadata)
      if (!detail::micro::valid_utf8(k) || !detail::micro::valid_utf8(v))
        bad("a metadata key or value of '" + name + "' is not valid UTF-8");
    info.metadata = std::move(opts.metadata);
    core->add(std::move(info), std::move(caller), opts.limits, std::move(codec));
  }

  std::shared_ptr<detail::service_core> core_;
  std::vector<std::shared_ptr<detail::control_state>> control_;
  std::optional<service_stats> last_;  // once stopped
};

/// Endpoints under a subject prefix (micro_service::add_group). A cheap handle; it does not
/// keep the service alive: adding to a stopped service throws std::logic_error.
class micro_group {
 public:
  template <class Req, class Resp, class Err, class Codec = binary_codec>
  micro_group& add_endpoint(const std::string& name, tenorite::caller<Req, Resp, Err> caller,
                            endpoint_options opts = {}, Codec codec = {}) {
    micro_service::add_endpoint_under(core(), prefix_, queue_, name, std::move(caller),
                                      std::move(opts), std::move(codec));
    return *this;
  }
  /// A group inside this one: its prefix is this group's, a dot, then `prefix`.
  micro_group add_group(const std::string& prefix,
                        const std::optional<std::string>& queue_group = std::nullopt) const {
    return micro_group(core_, detail::join_subject(prefix_, prefix),
                       queue_group ? queue_group : queue_);
  }
  const std::string& prefix() const noexcept { return prefix_; }

 private:
  friend class micro_service;
  micro_group(std::weak_ptr<detail::service_core> core, std::string prefix,
              std::optional<std::string> queue)
      : core_(std::move(core)), prefix_(std::move(prefix)), queue_(std::move(queue)) {
    if (auto p = detail::micro::subject_problem("the group prefix", prefix_); !p.empty())
      throw std::invalid_argument("tenorite::nats::add_group: " + p);
  }
  std::shared_ptr<detail::service_core> core() const {
    auto c = core_.lock();
    if (!c)
      throw std::logic_error("tenorite::nats::micro_group::add_endpoint: the service was stopped");
    return c;
  }
  std::weak_ptr<detail::service_core> core_;
  std::string prefix_;
  std::optional<std::string> queue_;
};

inline micro_group micro_service::add_group(const std::string& prefix,
                                            std::optional<std::string> queue_group) {
  return micro_group(checked("add_group"), prefix, std::move(queue_group));
}

/// Makes a NATS service on `conn`, discoverable at once ($SRV.PING/INFO/STATS); add its
/// endpoints with add_endpoint / add_group. Throws std::invalid_argument for a bad name,
/// version or queue group, nats_error when a subscription fails.
inline micro_service add_service(connection conn, service_config cfg) {
  if (!conn) throw std::invalid_argument("tenorite::nats::add_service: the connection is empty");
  auto core = std::make_shared<detail::service_core>();
  core->who.name = std::move(cfg.name);
  core->who.version = std::move(cfg.version);
  core->who.description = std::move(cfg.description);
  core->who.metadata = std::move(cfg.metadata);
  detail::micro::check_identity(core->who);
  if (!cfg.queue_group.empty())
    if (auto p = detail::micro::name_problem("the queue group", cfg.queue_group); !p.empty())
      throw std::invalid_argument("tenorite::nats::add_service: " + p);
  core->queue_group = std::move(cfg.queue_group);
  natsInbox* ib = nullptr;
  detail::check(natsInbox_Create(&ib), "natsInbox_Create");
  std::string inbox(ib);  // "_INBOX.<nuid>": the nuid is a unique id of the ADR's form
  natsInbox_Destroy(ib);
  core->who.id = inbox.substr(inbox.rfind('.') + 1);
  core->started = std::chrono::system_clock::now();
  core->conn = std::move(conn);
  const connection& c = core->conn;
  if (const auto& l = c.loop_internal()) l->refuse_blocking_wait("add_service()");
  micro_service svc(core);
  const auto subjects = detail::micro::control_subjects(core->who);
  svc.control_.reserve(subjects.size());  // the pushes below cannot throw once subscribed
  for (const auto& subject : subjects) {
    auto ctl = std::make_shared<detail::control_state>(c, core);
    ctl->subscribe(subject, std::string(), 1024, 8 * 1024 * 1024);  // throws: svc stops the rest
    svc.control_.push_back(std::move(ctl));
  }
  (void)natsConnection_Flush(c.native());
  return svc;
}

/// Serves `caller`'s service on `subject` in `queue_group` (empty: no group; every server
/// then gets every request): a service of one endpoint, named after the subject ('.' and
/// other characters a name cannot hold become '_'), version 0.0.0. Throws nats_error when a
/// subscription fails.
template <class Req, class Resp, class Err, class Codec = binary_codec>
micro_service serve(connection conn, const std::string& subject, const std::string& queue_group,
                    tenorite::caller<Req, Resp, Err> caller, const serve_options& opts = {},
                    Codec codec = {}) {
  std::string name = subject;
  for (char& c : name)
    if (!detail::micro::name_problem("", std::string_view(&c, 1)).empty()) c = '_';
  if (name.empty()) name = "service";
  auto svc = add_service(std::move(conn), {.name = name, .queue_group = queue_group});
  svc.add_endpoint(name, std::move(caller),
                   endpoint_options{.subject = subject, .queue_group = queue_group,
                                    .limits = opts},
                   std::move(codec));
  return svc;
}

/// serve()'s result under its former name.
template <class Req, class Resp, class Err, class Codec = binary_codec>
using server = micro_service;

}  // namespace tenorite::nats
