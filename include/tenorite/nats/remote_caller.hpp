// SPDX-License-Identifier: BSL-1.0
// tenorite/nats/remote_caller.hpp — calls a service served on NATS, with the local caller's
// call forms and error type.
//
//   tenorite::nats::remote_caller<kv::request, kv::response, kv::error> caller(conn, "kv");
//   auto r = co_await caller.send_request(std::move(req));   // as with tenorite::caller
//
// Same call forms and result type as tenorite::caller (call_forms.hpp: send_request,
// async_send_request(token), send_request_blocking, the try_ forms (a remote call never waits
// for room: they are the plain ones) and the _for/_until deadline forms), so code written
// against one works with the other; there are no notify forms (a compile-time error says
// so). How each outcome maps:
// - a reply: the response, or error_kind::service_error with the service's Err;
// - nobody serves the subject (NATS no-responders) or the publish fails (connection
//   closed): send_failure, request returned;
// - the request is larger than max_payload (this side's or the server's), or the server
//   could not decode it: bad_request, request returned, with a reason (it reached no worker);
// - the connection closes (for good) with the call in flight: fetch_failure at once, without
//   the request (it may have been served);
// - the serving side's local call failed: the same kind (send_failure and queue_full return
//   the request: it was never delivered to a worker), with the server's reason;
// - an undecodable reply: fetch_failure with the codec's reason (error::reason());
// - the deadline passed: timed_out, without the request (it was published: it may have been
//   delivered), except when the deadline had passed before publishing;
// - Asio per-operation cancellation (any type): cancelled, without the request; a reply
//   arriving later is dropped. Every call completes exactly once.
// Calls without an explicit deadline use options.timeout: a server that dies with a call in
// flight never answers, and the call must still end.
//
// The request: the remote caller keeps the Req object (moved in, never copied) until the
// call's outcome is known, so it can hand it back; Req need not be copyable.
//
// Threads: replies arrive on nats.c's delivery thread, which only decodes, looks the call up
// (a map under a mutex) and posts the completion to the handler's associated executor
// (default: the executor given at construction, else tenorite's global runtime). Blocking
// forms are woken directly. One inbox subscription `<inbox>.*` per remote caller (shared by
// its copies); each call's reply subject is `<inbox>.<id>`.
//
// On a connection that runs on an executor (connection_options::executor) there is no
// delivery thread: replies come on synchronous subscriptions that the connection's loop
// drains after each read event, completing the calls from there (on the handler's executor:
// at once when that is the loop's own context). Each call in flight has a reply subscription
// of its own, `<inbox><slot>.*`, reused by later calls: a call's reply subject is
// `<inbox><slot>.<id>`. Not one shared inbox, because nats.c reads synchronous subscriptions
// with natsSubscription_NextMsg, which reports a no-responders status without its subject:
// only the subscription tells which call had no responders (a send_failure that gives the
// request back must be that call's). So a slot is reused only after its call took a message:
// a later reply on it names an older id and is dropped, and a slot whose call ended without
// one (deadline, cancellation), where a no-responders status could still come, is retired.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tenorite/call_forms.hpp>
#include <tenorite/detail/operation.hpp>
#include <tenorite/detail/reply_slot.hpp>
#include <tenorite/error.hpp>
#include <tenorite/nats/codec.hpp>
#include <tenorite/nats/connection.hpp>
#include <tenorite/nats/wire.hpp>
#include <tenorite/registry.hpp>
#include <tenorite/runtime.hpp>
#include <tenorite/timer.hpp>
#include <tenorite/trace.hpp>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tenorite::nats {

struct remote_caller_options {
  /// The deadline of calls made without one (send_request, async_send_request...).
  std::chrono::milliseconds timeout{30000};
  /// The largest request payload sent, in bytes (larger: send_failure at once).
  std::size_t max_payload = 1u << 20;
  /// Where the caller is listed (kind remote: its calls in flight), from its construction
  /// until its last handle goes; nullptr: not listed.
  service_registry* registry = &service_registry::global();
  /// Its name there; empty: "remote:" and the subject.
  std::string name{};
};

namespace detail {

/// A reply as decode_reply reads it: the payload and the NATS services error headers (empty
/// when absent).
struct reply_view {
  std::string_view payload;
  std::string_view code;         // Nats-Service-Error-Code
  std::string_view description;  // Nats-Service-Error
  std::string_view kind;         // Tenorite-Error-Kind
};

inline reply_view view_of(natsMsg* msg) {
  reply_view v;
  const int len = natsMsg_GetDataLength(msg);
  const char* data = natsMsg_GetData(msg);
  if (data && len > 0) v.payload = std::string_view(data, static_cast<std::size_t>(len));
  auto header = [msg](const char* key) {
    const char* value = nullptr;
    if (natsMsgHeader_Get(msg, key, &value) != NATS_OK || !value) return std::string_view();
    return std::string_view(value);
  };
  v.code = header(wire::error_code_header_name);
  if (!v.code.empty()) {
    v.description = header(wire::error_header_name);
    v.kind = header(wire::error_kind_header_name);
  }
  return v;
}

/// Turns a reply (wire.hpp) into a call's outcome. `request` is the call's request: moved
/// into the error when the outcome gives it back. Never throws on bad input: anything
/// undecodable is a fetch_failure with a reason.
template <class Req, class Resp, class Err, class Codec>
std::expected<Resp, tenorite::error<Req, Err>> decode_reply(const Codec& codec,
                                                           const reply_view& reply,
                                                           std::optional<Req>& request) {
  using error_type = tenorite::error<Req, Err>;
  using result_type = std::expected<Resp, error_type>;
  auto fail = [&](error_kind k, bool give_back, std::string why) {
    std::optional<Req> back;
    if (give_back) back = std::move(request);
    return result_type(std::unexpect, error_type::of_kind(k, std::move(back), std::move(why)));
  };
  // A failure named by tenorite's serving side: the kind decides whether the request comes
  // back (it never reached a worker); a kind a server cannot report is a fetch failure.
  auto failed = [&](error_kind k, std::string_view why) {
    if (k == error_kind::bad_request)
      return fail(k, true, "the server rejected the request: " + std::string(why));
    const bool give_back = k == error_kind::send_failure || k == error_kind::queue_full;
    if (!give_back && k != error_kind::fetch_failure) k = error_kind::fetch_failure;
    return fail(k, give_back, "remote: " + std::string(why));
  };
  // An error told only by the headers (another client's service, or a tenorite failure).
  auto from_headers = [&](bool payload_is_err) {
    error_kind k{};
    if (!reply.kind.empty() && wire::kind_from_name(reply.kind, k))
      return failed(k, reply.description);
    std::string said = "NATS service error " + std::string(reply.code);
    if (!reply.description.empty()) said += ": " + std::string(reply.description);
    if (payload_is_err && !reply.payload.empty()) {
      auto e = codec.template decode<Err>(reply.payload);
      if (e) return result_type(std::unexpect, error_type::service(std::move(*e), said));
      said += " (its payload is not the service's error type: " + e.error().reason + ")";
    }
    return fail(error_kind::fetch_failure, false, std::move(said));
  };
  if constexpr (wire_of<Codec>() == wire_format::micro) {
    if (!reply.code.empty()) return from_headers(true);
    auto v = codec.template decode<Resp>(reply.payload);
    if (!v) return fail(error_kind::fetch_failure, false, "undecodable reply: " + v.error().reason);
    return result_type(std::in_place, std::move(*v));
  } else {
    const std::string_view payload = reply.payload;
    if (payload.empty() || static_cast<std::uint8_t>(payload[0]) != wire::binary_version) {
      if (!reply.code.empty()) return from_headers(false);
      return fail(error_kind::fetch_failure, false,
                  "undecodable reply: " + wire::version_mismatch("the reply", payload));
    }
    if (payload.size() < 2)
      return fail(error_kind::fetch_failure, false, "undecodable reply: no status byte");
    const std::string_view body = payload.substr(2);
    switch (static_cast<wire::status>(payload[1])) {
      case wire::status::response: {
        auto v = codec.template decode<Resp>(body);
        if (!v)
          return fail(error_kind::fetch_failure, false, "undecodable reply: " + v.error().reason);
        return result_type(std::in_place, std::move(*v));
      }
      case wire::status::service_error: {
        auto e = codec.template decode<Err>(body);
        if (!e)
          return fail(error_kind::fetch_failure, false,
                      "undecodable service error: " + e.error().reason);
        return result_type(std::unexpect, error_type::service(std::move(*e)));
      }
      case wire::status::bad_request:  // never delivered to a worker: the request comes back
        return failed(error_kind::bad_request, body);
      case wire::status::failed:
        if (body.empty() || static_cast<std::uint8_t>(body[0]) > wire::max_error_kind)
          return fail(error_kind::fetch_failure, false, "undecodable reply: bad failure kind");
        return failed(static_cast<error_kind>(body[0]), body.substr(1));
    }
    return fail(error_kind::fetch_failure, false, "undecodable reply: unknown status byte");
  }
}

/// A request's payload in the codec's wire (binary: the version byte first).
template <class Codec, class Req>
std::expected<void, codec_error> encode_request(const Codec& codec, const Req& req,
                                                std::string& out) {
  if constexpr (wire_of<Codec>() == wire_format::binary)
    out.push_back(static_cast<char>(wire::binary_version));
  return codec.encode(req, out);
}

template <class Req, class Resp, class Err, class Codec>
class remote_state : public std::enable_shared_from_this<remote_state<Req, Resp, Err, Codec>> {
 public:
  using error_type = tenorite::error<Req, Err>;
  using result_type = std::expected<Resp, error_type>;
  using clock = std::chrono::steady_clock;
  using deadline_map = std::multimap<clock::time_point, std::uint64_t>;

  /// One call waiting for its outcome. Whoever takes it out of `calls` completes it.
  struct pending {
    using deliver_fn = void (*)(pending*, result_type&&, bool immediate) noexcept;
    explicit pending(deliver_fn f) noexcept : deliver(f) {}
    deliver_fn deliver;
    std::optional<Req> request;
    typename deadline_map::iterator deadline;
    std::shared_ptr<void> keep;  // the caller's handle: its inbox lives while calls wait
  };

  remote_state(connection c, std::string subj, boost::asio::any_io_executor e,
               const remote_caller_options& o, Codec cd)
      : conn(std::move(c)), subject(std::move(subj)), ex(std::move(e)), opts(o),
        codec(std::move(cd)) {
    timer.emplace(ex);
  }

  connection conn;
  std::string subject;
  boost::asio::any_io_executor ex;
  remote_caller_options opts;
  Codec codec;
  std::string inbox;  // "<inbox>." : a call's reply subject is inbox + id
  natsSubscription* sub = nullptr;
  std::shared_ptr<remote_state> self_keep;  // until nats.c's last callback has returned

  std::mutex m;
  std::unordered_map<std::uint64_t, pending*> calls;  // guarded by m
  deadline_map deadlines;                              // guarded by m
  std::optional<tenorite::timer> timer;                // guarded by m (virtual in a simulation)
  clock::time_point armed = clock::time_point::max();  // guarded by m
  std::atomic<std::uint64_t> next_id{0};
  std::uint64_t closed_watch = 0;  // the connection's closed event (connection::watch_closed)
  // Set once nats.c's delivery thread for the inbox has returned from its last callback
  // (on_complete). shutdown() waits for it: a callback may be inside a post to the caller's
  // executor, and the owner may destroy that executor's context right after shutdown.
  std::mutex done_m;
  std::condition_variable done_cv;
  bool delivery_done = false;       // guarded by done_m
  bool stopping = false;            // guarded by done_m: shutdown() waits, takes self_keep
  bool waits_for_delivery = false;  // on_complete is registered

  // On a connection with an event loop: reply slots (synchronous subscriptions), drained there.
  struct reply_slot {
    natsSubscription* sub = nullptr;
    std::uint64_t index = 0;
  };
  std::shared_ptr<event_loop> loop;
  std::uint64_t drainer = 0;
  std::vector<reply_slot> free_slots;                         // guarded by m
  std::uint64_t slots_made = 0;                               // guarded by m
  std::vector<std::pair<std::uint64_t, reply_slot>> new_subs;  // guarded by m: call id, slot
  std::unordered_map<std::uint64_t, reply_slot> loop_subs;     // the drainer's
  bool closing = false;  // shutdown() ran inside the drainer: it cleans up after itself

  static const remote_state*& delivering() noexcept {  // the state whose callback runs here
    static thread_local const remote_state* current = nullptr;
    return current;
  }
  struct delivery_marker {  // marks this thread as inside a state's reply delivery
    const remote_state* prev;
    explicit delivery_marker(const remote_state* s) noexcept
        : prev(std::exchange(delivering(), s)) {}
    delivery_marker(const delivery_marker&) = delete;
    delivery_marker& operator=(const delivery_marker&) = delete;
    ~delivery_marker() { delivering() = prev; }
  };

  void subscribe() {
    natsInbox* ib = nullptr;
    check(natsInbox_Create(&ib), "natsInbox_Create");
    inbox = std::string(ib) + ".";
    natsInbox_Destroy(ib);
    if (const auto& l = conn.loop_internal()) {
      loop = l;
      drainer = loop->add_drainer([w = this->weak_from_this()] {
        if (auto self = w.lock()) self->drain_replies();
      });
      closed_watch = conn.watch_closed([w = this->weak_from_this()] { on_closed(w); });
      return;
    }
    self_keep = this->shared_from_this();
    std::string wildcard = inbox + "*";
    natsStatus s = natsConnection_Subscribe(&sub, conn.native(), wildcard.c_str(), &on_reply, this);
    if (s != NATS_OK) {
      self_keep.reset();
      throw nats_error("subscribe to the reply inbox", s);
    }
    (void)natsSubscription_SetPendingLimits(sub, -1, -1);  // replies are never dropped
    if (natsSubscription_SetOnCompleteCB(sub, &on_complete, this) != NATS_OK) {
      self_keep.reset();
    } else {
      waits_for_delivery = true;
    }
    // A closed connection brings no reply: its calls fail at once, not at their deadline.
    closed_watch = conn.watch_closed([w = this->weak_from_this()] { on_closed(w); });
  }

  /// The connection closed (on nats.c's thread): every pending call ends now with
  /// fetch_failure (its request was published, so it may have been served: it is not given
  /// back). Every reference this thread holds to the caller's state (ours, and each call's
  /// handle) goes before any call completes: once the user has every outcome they may destroy
  /// the executor the state's timer belongs to, and the state must not end after that, here.
  static void on_closed(const std::weak_ptr<remote_state>& w) noexcept {
    std::vector<pending*> all;
    std::vector<std::shared_ptr<void>> handles;
    if (auto self = w.lock()) {
      try {
        self->take_all(all, handles);
      } catch (...) {  // out of memory: the calls go one by one, each keeping its handle
        while (pending* p = self->take_any()) fail_closed(p);
        return;
      }
    }
    handles.clear();  // may end the state (and the connection handle it holds), here
    for (pending* p : all) fail_closed(p);
  }
  /// Takes every pending call and its handle; throws (bad_alloc) before taking any.
  void take_all(std::vector<pending*>& all, std::vector<std::shared_ptr<void>>& handles) {
    std::lock_guard lk(m);
    all.reserve(calls.size());
    handles.reserve(calls.size());
    for (auto& [id, p] : calls) {
      deadlines.erase(p->deadline);
      all.push_back(p);
      handles.push_back(std::move(p->keep));
    }
    calls.clear();
  }
  pending* take_any() noexcept {
    std::lock_guard lk(m);
    return calls.empty() ? nullptr : take_locked(calls.begin()->first);
  }
  static void fail_closed(pending* p) {
    p->deliver(p, result_type(std::unexpect,
                              error_type::of_kind(error_kind::fetch_failure, std::nullopt,
                                                  "the NATS connection was closed before the "
                                                  "reply came")),
               false);
  }

  /// The caller's handle is gone (no call is pending): stop the inbox and the timer.
  void shutdown() noexcept {
    listing.leave();  // nothing of it is the user's any more
    if (loop) {
      conn.unwatch_closed(closed_watch);
      {
        std::lock_guard lk(m);
        timer.reset();
      }
      loop->remove_drainer(drainer);  // waits for a drain in progress, unless it is ours
      if (delivering() == this) {
        closing = true;  // inside drain_replies: it destroys the subscriptions when done
        return;
      }
      destroy_subscriptions();
      return;
    }
    // Not from inside our own callback (the delivery thread cannot finish while we wait);
    // bounded, so a nats.c that never calls back cannot hang the owner. `stopping` is set
    // before the unsubscription: nats.c's last callback may come at once, and must then leave
    // the state to us.
    const bool wait = waits_for_delivery && delivering() != this;
    if (wait) {
      std::lock_guard lk(done_m);
      stopping = true;
    }
    conn.unwatch_closed(closed_watch);
    (void)natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    {
      std::lock_guard lk(m);
      timer.reset();
    }
    std::shared_ptr<remote_state> keep;  // released on this thread, after the locks
    if (wait) {
      std::unique_lock lk(done_m);
      if (done_cv.wait_for(lk, std::chrono::seconds(5), [this] { return delivery_done; })) {
        std::lock_guard lk2(m);
        keep = std::move(self_keep);
      } else {
        stopping = false;  // nats.c never called back: its callback releases it later
      }
    }
  }

  std::uint64_t new_id() noexcept { return next_id.fetch_add(1, std::memory_order_relaxed) + 1; }

  /// Registers the call, then publishes `payload`. The call may complete before this returns.
  void start(std::uint64_t id, pending* p, const std::string& payload, clock::time_point deadline,
             const trace_context& trace) {
    if (deadline <= tenorite::detail::now_for(ex)) {
      p->deliver(p, result_type(std::unexpect,
                                error_type::of_kind(error_kind::timed_out, std::move(p->request),
                                                    "the deadline had passed before sending")),
                 true);
      return;
    }
    if (payload.size() > opts.max_payload) {
      p->deliver(p, result_type(std::unexpect,
                                error_type::of_kind(error_kind::bad_request, std::move(p->request),
                                                    "the request's " +
                                                        std::to_string(payload.size()) +
                                                        " bytes exceed max_payload")),
                 true);
      return;
    }
    reply_slot slot;
    if (loop) {
      bool fresh = false;
      {
        std::lock_guard lk(m);
        if (!free_slots.empty()) {
          slot = free_slots.back();
          free_slots.pop_back();
        } else {
          slot.index = slots_made++;
          fresh = true;
        }
      }
      if (fresh) {
        // Subscribed before the publish: the server sees the interest before the request.
        const std::string wildcard = inbox + std::to_string(slot.index) + ".*";
        natsStatus st = natsConnection_SubscribeSync(&slot.sub, conn.native(), wildcard.c_str());
        if (st == NATS_OK) st = natsSubscription_SetPendingLimits(slot.sub, -1, -1);
        if (st != NATS_OK) {
          if (slot.sub) natsSubscription_Destroy(slot.sub);
          p->deliver(p, result_type(std::unexpect,
                                    error_type::of_kind(error_kind::send_failure,
                                                        std::move(p->request),
                                                        std::string("subscribing to the reply "
                                                                    "subject failed: ") +
                                                            natsStatus_GetText(st))),
                     true);
          return;
        }
      }
    }
    char reply[256];
    const std::size_t n = inbox.size();
    if (n + 42 > sizeof reply) throw std::logic_error("tenorite::nats: inbox name too long");
    std::memcpy(reply, inbox.data(), n);
    char* at = reply + n;
    if (loop) {
      at = std::to_chars(at, reply + sizeof reply - 1, slot.index).ptr;
      *at++ = '.';
    }
    at = std::to_chars(at, reply + sizeof reply - 1, id).ptr;
    *at = '\0';
    {
      std::lock_guard lk(m);
      calls.emplace(id, p);
      p->deadline = deadlines.emplace(deadline, id);
      if (deadline < armed) arm(deadline);
      if (loop) new_subs.emplace_back(id, slot);
    }
    natsStatus s = trace ? publish_traced(reply, payload, trace)
                         : natsConnection_PublishRequest(conn.native(), subject.c_str(), reply,
                                                         payload.data(),
                                                         static_cast<int>(payload.size()));
    if (s != NATS_OK) {
      if (pending* q = take(id))
        q->deliver(q, result_type(std::unexpect,
                                  error_type::of_kind(error_kind::send_failure, std::move(q->request),
                                                      std::string("publish failed: ") +
                                                          natsStatus_GetText(s))),
                   true);
    }
  }

  // A traced request: the same message with the W3C `traceparent` header (wire.hpp).
  natsStatus publish_traced(const char* reply, const std::string& payload,
                            const trace_context& trace) {
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, subject.c_str(), reply, payload.data(),
                                  static_cast<int>(payload.size()));
    if (s != NATS_OK) return s;
    std::unique_ptr<natsMsg, void (*)(natsMsg*)> guard(msg, &natsMsg_Destroy);
    char value[trace_context::traceparent_size + 1];
    trace.write_traceparent(value);
    value[trace_context::traceparent_size] = '\0';
    s = natsMsgHeader_Set(msg, wire::traceparent_header_name, value);
    if (s != NATS_OK) return s;
    return natsConnection_PublishMsg(conn.native(), msg);
  }

  /// Takes a call out (it is then ours to complete), or null when it already completed.
  pending* take(std::uint64_t id) {
    std::lock_guard lk(m);
    return take_locked(id);
  }
  pending* take_locked(std::uint64_t id) {
    auto it = calls.find(id);
    if (it == calls.end()) return nullptr;
    pending* p = it->second;
    calls.erase(it);
    deadlines.erase(p->deadline);
    return p;
  }

  void cancel(std::uint64_t id) {
    if (pending* p = take(id))
      p->deliver(p, result_type(std::unexpect, error_type::of_kind(error_kind::cancelled)), false);
  }

  // ---- the deadline timer: one per remote caller, armed at the earliest deadline ----

  void arm(clock::time_point t) {  // under m
    if (!timer) return;
    armed = t;
    timer->expires_at(t);
    timer->async_wait([w = this->weak_from_this()](boost::system::error_code ec) {
      if (ec == boost::asio::error::operation_aborted) return;
      if (auto self = w.lock()) self->on_timer();
    });
  }

  void on_timer() {
    std::vector<pending*> expired;
    {
      std::lock_guard lk(m);
      const auto now = tenorite::detail::now_for(ex);
      while (!deadlines.empty() && deadlines.begin()->first <= now)
        expired.push_back(take_locked(deadlines.begin()->second));
      armed = clock::time_point::max();
      if (!deadlines.empty()) arm(deadlines.begin()->first);
    }
    for (pending* p : expired)
      p->deliver(p, result_type(std::unexpect, error_type::of_kind(error_kind::timed_out)), false);
    if (loop && !expired.empty()) loop->poke();  // their subscriptions go on the next drain
  }

  // ---- replies: on nats.c's delivery thread ----

  static void on_reply(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<remote_state*>(closure);
    delivery_marker mark(self);
    std::unique_ptr<natsMsg, void (*)(natsMsg*)> guard(msg, &natsMsg_Destroy);
    pending* call = self->take(call_id_of(msg));  // ids start at 1: a malformed subject is 0
    if (!call) return;  // completed already (deadline, cancellation): a late reply is dropped
    result_type r = self->outcome(call, msg);
    guard.reset();
    call->deliver(call, std::move(r), false);
  }

  // ---- replies on a connection with an event loop: on the loop, after a read event ----

  void drain_replies() {
    delivery_marker mark(this);
    {
      std::lock_guard lk(m);
      for (auto& [id, slot] : new_subs) loop_subs.emplace(id, slot);
      new_subs.clear();
    }
    // Outcomes are collected first and delivered after: a completion may run user code, which
    // may start calls (new_subs) or drop the last handle (shutdown: `closing`).
    std::vector<std::pair<pending*, result_type>> ready;
    for (auto it = loop_subs.begin(); it != loop_subs.end();) {
      const std::uint64_t id = it->first;
      const reply_slot slot = it->second;
      enum { waiting, reuse, retire } next = waiting;
      for (;;) {
        natsMsg* msg = nullptr;
        const natsStatus st = natsSubscription_NextMsg(&msg, slot.sub, 0);
        if (st == NATS_OK) {
          std::unique_ptr<natsMsg, void (*)(natsMsg*)> guard(msg, &natsMsg_Destroy);
          if (call_id_of(msg) != id) continue;  // a late reply to an earlier call: dropped
          if (pending* call = take(id)) ready.emplace_back(call, outcome(call, msg));
          next = reuse;
        } else if (st == NATS_NO_RESPONDERS) {
          if (pending* call = take(id)) ready.emplace_back(call, no_responders(call));
          next = reuse;
        } else if (st == NATS_TIMEOUT) {
          std::lock_guard lk(m);
          // Ended without a message (deadline, cancellation): a no-responders status, which
          // names no call, could still come for it, so the slot is not reused.
          if (calls.count(id) == 0) next = retire;
        } else if (st == NATS_SLOW_CONSUMER) {
          continue;  // told once (limits are off), the messages follow
        } else {
          next = retire;  // the subscription ended with the connection (on_closed ends its call)
        }
        break;
      }
      if (next == waiting) {
        ++it;
        continue;
      }
      if (next == reuse) {
        std::lock_guard lk(m);
        free_slots.push_back(slot);
      } else {
        (void)natsSubscription_Unsubscribe(slot.sub);
        natsSubscription_Destroy(slot.sub);
      }
      it = loop_subs.erase(it);
    }
    for (auto& [call, r] : ready) call->deliver(call, std::move(r), false);
    if (closing) destroy_subscriptions();
  }

  /// The call id a reply names: the last token of its subject (0 when there is none).
  static std::uint64_t call_id_of(natsMsg* msg) noexcept {
    const char* subj = natsMsg_GetSubject(msg);
    std::string_view s(subj ? subj : "");
    const auto dot = s.rfind('.');
    if (dot == std::string_view::npos) return 0;
    std::uint64_t id = 0;
    auto [p, ec] = std::from_chars(s.data() + dot + 1, s.data() + s.size(), id);
    return ec == std::errc() && p == s.data() + s.size() ? id : 0;
  }

  void destroy_subscriptions() noexcept {
    std::vector<reply_slot> rest;
    {
      std::lock_guard lk(m);
      rest.swap(free_slots);
      for (auto& [id, slot] : new_subs) rest.push_back(slot);
      new_subs.clear();
    }
    for (auto& [id, slot] : loop_subs) rest.push_back(slot);
    loop_subs.clear();
    for (auto& slot : rest) {
      (void)natsSubscription_Unsubscribe(slot.sub);
      natsSubscription_Destroy(slot.sub);
    }
  }

  result_type no_responders(pending* call) {
    return result_type(std::unexpect,
                       error_type::of_kind(error_kind::send_failure, std::move(call->request),
                                           "no responders: nobody serves the subject '" +
                                               subject + "'"));
  }

  result_type outcome(pending* call, natsMsg* msg) {
    if (natsMsg_IsNoResponders(msg)) return no_responders(call);
    return decode_reply<Req, Resp, Err>(codec, view_of(msg), call->request);
  }

  // nats.c's last callback. When shutdown() is waiting it takes the state's own reference
  // and lets it go on the owner's thread; nothing of `self` is touched after the unlock.
  static void on_complete(void* closure) {
    auto* self = static_cast<remote_state*>(closure);
    std::shared_ptr<remote_state> keep;
    {
      std::lock_guard lk(self->done_m);
      self->delivery_done = true;
      if (!self->stopping) {
        std::lock_guard lk2(self->m);
        keep = std::move(self->self_keep);
      }
      self->done_cv.notify_all();
    }
  }

 public:
  /// Lists the caller (once subscribed).
  void list_in() {
    if (opts.registry)
      (void)listing.join(opts.registry->list(),
                         opts.name.empty() ? "remote:" + subject : opts.name, &describe, this);
  }

 private:
  // What the registry shows: the calls in flight, and how many were made.
  static void describe(const void* ctx, service_info& out) {
    auto* s = static_cast<remote_state*>(const_cast<void*>(ctx));
    out.kind = service_kind::remote;
    out.status = service_status::running;  // it leaves the list when its last handle goes
    metrics_snapshot m;
    {
      std::lock_guard lk(s->m);
      m.in_flight = s->calls.size();
    }
    m.calls = s->next_id.load(std::memory_order_relaxed);
    out.metrics = m;
  }

  // Last: it leaves the registry before anything describe() reads is destroyed.
  tenorite::detail::registry_entry listing;
};

/// Shared by the copies of one remote_caller (and by its pending calls): its destruction
/// ends the inbox subscription.
template <class State>
struct remote_handle {
  std::shared_ptr<State> state;
  explicit remote_handle(std::shared_ptr<State> s) : state(std::move(s)) {}
  remote_handle(const remote_handle&) = delete;
  remote_handle& operator=(const remote_handle&) = delete;
  ~remote_handle() { state->shutdown(); }
};

}  // namespace detail

/// A caller of a service served on NATS (see the header comment). Copyable handle.
template <class Req, class Resp, class Err, class Codec = binary_codec>
class remote_caller
    : public call_forms<remote_caller<Req, Resp, Err, Codec>, Req, Resp, Err> {
  static_assert(service_codec<Codec, Req, Resp, Err>,
                "tenorite::nats::remote_caller: the codec must encode and decode Req, Resp "
                "and Err");
  using state_type = detail::remote_state<Req, Resp, Err, Codec>;
  using pending = typename state_type::pending;

 public:
  using request_type = Req;
  using response_type = Resp;
  using error_type = tenorite::error<Req, Err>;
  using result_type = std::expected<Resp, error_type>;
  using signature = void(result_type);
  using clock = std::chrono::steady_clock;

  remote_caller() = default;
  /// Calls `subject` over `conn`; completions run on `ex` unless the handler has its own
  /// executor. Throws nats_error when the inbox subscription fails.
  remote_caller(connection conn, std::string subject, boost::asio::any_io_executor ex,
                const remote_caller_options& opts = {}, Codec codec = {}) {
    auto st = std::make_shared<state_type>(std::move(conn), std::move(subject), std::move(ex),
                                           opts, std::move(codec));
    st->subscribe();
    try {
      st->list_in();
    } catch (...) {  // no memory to list it: the subscription goes too
      st->shutdown();
      throw;
    }
    handle_ = std::make_shared<detail::remote_handle<state_type>>(std::move(st));
  }
  /// As above, completing on tenorite's global runtime by default.
  remote_caller(connection conn, std::string subject, const remote_caller_options& opts = {},
                Codec codec = {})
      : remote_caller(std::move(conn), std::move(subject),
                      boost::asio::any_io_executor(runtime::global().executor()), opts,
                      std::move(codec)) {}

  explicit operator bool() const noexcept { return static_cast<bool>(handle_); }

  /// A copy of this handle whose every call carries `trace` in the request's `traceparent`
  /// header; the serving side (serve) hands it on to its worker (responder::trace). An
  /// empty context makes a copy that sends none. Throws std::logic_error on an empty handle.
  remote_caller with_trace(const trace_context& trace) const {
    checked("with_trace");
    remote_caller c = *this;
    c.trace_ = trace;
    return c;
  }
  /// The trace this handle's calls carry (empty unless made by with_trace).
  const trace_context& trace() const noexcept { return trace_; }

 private:
  using handle_ptr = std::shared_ptr<detail::remote_handle<state_type>>;
  friend call_forms<remote_caller, Req, Resp, Err>;

  // ---- the primitives of call_forms (each form checked the handle first) ----
  // A remote call has no local queue to wait for room in: the try_ forms are the plain ones.
  // Calls made without a deadline get the caller's default (remote_caller_options::timeout).

  static constexpr const char* name = "tenorite::nats::remote_caller";
  void check(const char* what) const { checked(what); }

  template <class Token>
  auto initiate_call(Req&& req, tenorite::detail::call_mode, Token&& token) const {
    return initiate_call_until(std::move(req), default_deadline(), std::forward<Token>(token));
  }
  template <class Token>
  auto initiate_call_until(Req&& req, tenorite::detail::timed_deadline d, Token&& token) const {
    // The deadline's timer runs on the caller's executor: a _for form counts in its time.
    const clock::time_point deadline = d.resolve(handle_->state->ex);
    return boost::asio::async_initiate<Token, signature>(
        [](auto handler, handle_ptr h, Req r, clock::time_point deadline,
           const trace_context& t) {
          start_async(std::move(handler), std::move(h), std::move(r), deadline, t);
        },
        token, handle_, std::move(req), deadline, trace_);
  }
  // A notification has no reply to wait for, and the serving side ignores a message
  // without a reply subject: there is nothing for notify to hand the request to yet.
  template <class Token>
  auto initiate_notify(Req, Token&&) const {
    static_assert(sizeof(Token) == 0,
                  "tenorite::nats::remote_caller has no notify forms: a served service answers "
                  "only requests with a reply subject; use send_request");
  }
  template <class R = Req>
  typename remote_caller::notify_result notify_now(R, bool) const {
    static_assert(sizeof(R) == 0,
                  "tenorite::nats::remote_caller has no notify forms: a served service answers "
                  "only requests with a reply subject; use send_request");
    return {};
  }

  result_type call_blocking(Req&& req, tenorite::detail::call_mode) const {
    return call_blocking_until(std::move(req), default_deadline());
  }
  result_type call_blocking_until(Req&& req, tenorite::detail::timed_deadline d) const {
    const handle_ptr& h = handle_;
    const clock::time_point deadline = d.resolve(h->state->ex);
    if (h->state->loop)  // the reply is read on that context: waiting there waits for ourselves
      h->state->loop->refuse_blocking_wait("remote_caller::send_request_blocking");
    blocking_call call;
    std::string payload;
    if (auto e = detail::encode_request(h->state->codec, req, payload); !e)
      return result_type(std::unexpect,
                         error_type::of_kind(error_kind::send_failure, std::move(req),
                                             "the request could not be encoded: " +
                                                 e.error().reason));
    call.request.emplace(std::move(req));
    h->state->start(h->state->new_id(), &call, payload, deadline, trace_);
    return call.reply.wait();
  }

  struct blocking_call final : pending {
    blocking_call() noexcept : pending(&deliver_blocking) {}
    static void deliver_blocking(pending* p, result_type&& r, bool) noexcept {
      static_cast<blocking_call*>(p)->reply.complete(std::move(r));
    }
    tenorite::detail::blocking_reply<result_type> reply;
  };

  template <class Handler>
  struct async_call final : pending, tenorite::detail::operation<async_call<Handler>, Handler> {
    using base = tenorite::detail::operation<async_call<Handler>, Handler>;
    async_call(Handler&& h, const boost::asio::any_io_executor& fallback)
        : pending(&deliver_async), base(std::move(h), fallback, true) {}
    // `immediate` is known from the initiation scope the call was started in.
    static void deliver_async(pending* p, result_type&& r, bool) noexcept {
      auto* self = static_cast<async_call*>(p);
      // Let go of the caller's handle before the handler can run: once the user has every
      // outcome, nothing of ours may outlive their executor (the timer belongs to it).
      auto keep = std::move(self->keep);
      keep.reset();
      self->complete(std::move(r));
    }
  };

  struct cancel_handler {
    cancel_handler(std::weak_ptr<state_type> s, std::uint64_t i) noexcept
        : state(std::move(s)), id(i) {}
    std::weak_ptr<state_type> state;
    std::uint64_t id;
    void operator()(boost::asio::cancellation_type type) const {
      if (type == boost::asio::cancellation_type::none) return;
      if (auto s = state.lock()) s->cancel(id);
    }
  };

  template <class Handler>
  static void start_async(Handler handler, handle_ptr h, Req req, clock::time_point deadline,
                          const trace_context& trace) {
    auto& st = *h->state;
    std::string payload;
    auto encoded = detail::encode_request(st.codec, req, payload);
    auto* call = tenorite::detail::make_op<async_call<Handler>>(handler, st.ex);
    tenorite::detail::initiation_scope scope(call);
    call->request.emplace(std::move(req));
    if (!encoded) {
      call->deliver(call, result_type(std::unexpect,
                                      error_type::of_kind(error_kind::send_failure,
                                                          std::move(call->request),
                                                          "the request could not be encoded: " +
                                                              encoded.error().reason)),
                    true);
      return;
    }
    const std::uint64_t id = st.new_id();
    auto slot = boost::asio::get_associated_cancellation_slot(call->handler());
    if (slot.is_connected()) slot.template emplace<cancel_handler>(h->state, id);
    call->keep = h;
    st.start(id, call, payload, deadline, trace);
  }

  clock::time_point default_deadline() const {
    return tenorite::detail::now_for(handle_->state->ex) +
           std::chrono::duration_cast<clock::duration>(handle_->state->opts.timeout);
  }

  const handle_ptr& checked(const char* what) const {
    if (!handle_)
      throw std::logic_error(std::string("tenorite::nats::remote_caller::") + what +
                             ": this remote caller is empty (default-constructed or moved-from)");
    return handle_;
  }

  handle_ptr handle_;
  trace_context trace_{};
};

}  // namespace tenorite::nats
