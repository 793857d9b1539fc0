// SPDX-License-Identifier: BSL-1.0
// tenorite/nats/server.hpp — puts a local service on a NATS subject.
//
//   auto srv = tenorite::nats::serve(conn, "kv", "kv-workers", caller);
//
// Every instance subscribed with the same queue group shares the subject's requests (NATS
// gives each request to one of them). Each request is decoded, passed to the local service
// through its caller, and the outcome encoded and published to the request's reply subject
// (format: wire.hpp). Rules:
// - nats.c's delivery thread never blocks: it decodes and starts an asynchronous call; the
//   reply is published from the completion (on the service's executor);
// - backpressure without unbounded buffering: at most max_in_flight local calls at once
//   (each waits for room in the service's queue); a request beyond that is answered at once
//   with `failed(queue_full)` (the caller gets error_kind::queue_full and its request back);
//   nats.c's own queue for the subscription is bounded (pending limits; beyond them nats.c
//   drops messages and the callers time out);
// - a request that cannot be decoded or is larger than max_payload is answered with
//   `bad request` and a reason; the server keeps serving;
// - drain(): no new requests, those received are served and answered, then it returns;
//   stop(): no new requests (in-flight calls still reply). The destructor stops.
// On a connection that runs on an executor (connection_options::executor) the subscription is
// synchronous and drained on that executor after each read event: requests reach the service
// without a nats.c delivery thread (and without a thread switch when the service runs there).
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <tenorite/caller.hpp>
#include <tenorite/nats/codec.hpp>
#include <tenorite/nats/connection.hpp>
#include <tenorite/nats/wire.hpp>
#include <utility>

namespace tenorite::nats {

struct serve_options {
  /// Local calls in flight at once; a request beyond them is answered queue_full at once.
  std::size_t max_in_flight = 1024;
  /// The largest request payload accepted, in bytes (larger: bad request).
  std::size_t max_payload = 1u << 20;
  /// nats.c's queue for this subscription (messages, bytes); beyond: dropped (slow consumer).
  int pending_msgs_limit = 65536;
  int pending_bytes_limit = 64 * 1024 * 1024;
};

/// What a server has done so far (a snapshot; safe from any thread).
struct server_stats {
  std::uint64_t received = 0;      ///< requests taken from NATS
  std::uint64_t answered = 0;      ///< replies published for local calls
  std::uint64_t bad_requests = 0;  ///< undecodable or oversized requests (answered bad request)
  std::uint64_t busy = 0;          ///< answered queue_full (max_in_flight reached)
  std::uint64_t no_reply_subject = 0;  ///< messages without a reply subject (ignored)
};

namespace detail {

template <class Req, class Resp, class Err, class Codec>
class server_state : public std::enable_shared_from_this<server_state<Req, Resp, Err, Codec>> {
 public:
  using caller_type = tenorite::caller<Req, Resp, Err>;
  using result_type = typename caller_type::result_type;

  server_state(connection c, caller_type cl, const serve_options& o, Codec cd)
      : conn(std::move(c)), caller(std::move(cl)), opts(o), codec(std::move(cd)) {}

  connection conn;
  caller_type caller;
  serve_options opts;
  Codec codec;
  natsSubscription* sub = nullptr;
  std::shared_ptr<server_state> self_keep;  // until nats.c's last callback has returned
  // On a connection with an event loop: the drainer that takes requests on the loop.
  std::shared_ptr<event_loop> loop;
  std::uint64_t drainer = 0;
  std::atomic<bool> sync_stopped{false};

  /// Takes every request waiting on the synchronous subscription (on the event loop).
  void drain_sync() {
    while (!sync_stopped.load(std::memory_order_acquire)) {
      natsMsg* msg = nullptr;
      const natsStatus s = natsSubscription_NextMsg(&msg, sub, 0);
      if (s == NATS_OK) {
        on_msg(nullptr, nullptr, msg, this);
      } else if (s != NATS_SLOW_CONSUMER) {  // slow consumer: told once, messages follow
        return;                               // none waiting, or the subscription has ended
      }
    }
  }

  std::mutex m;
  std::condition_variable cv;
  std::size_t in_flight = 0;  // guarded by m
  bool sub_done = false;      // guarded by m
  bool stopping = false;      // guarded by m: stop() waits, and takes self_keep itself
  std::atomic<std::uint64_t> received{0}, answered{0}, bad{0}, busy{0}, no_reply{0};

  void publish(const std::string& reply, const std::string& payload) {
    // A failure here (connection closed) loses only this reply: the caller's deadline ends it.
    (void)natsConnection_Publish(conn.native(), reply.c_str(), payload.data(),
                                 static_cast<int>(payload.size()));
  }

  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<server_state*>(closure);
    std::unique_ptr<natsMsg, void (*)(natsMsg*)> guard(msg, &natsMsg_Destroy);
    self->received.fetch_add(1, std::memory_order_relaxed);
    const char* reply_c = natsMsg_GetReply(msg);
    if (!reply_c || !*reply_c) {
      self->no_reply.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    std::string reply(reply_c);
    const int len = natsMsg_GetDataLength(msg);
    const char* data = natsMsg_GetData(msg);
    if (len < 0 || static_cast<std::size_t>(len) > self->opts.max_payload) {
      self->bad.fetch_add(1, std::memory_order_relaxed);
      self->publish(reply, wire::bad_request("the request's " + std::to_string(len) +
                                             " bytes exceed the server's max_payload (" +
                                             std::to_string(self->opts.max_payload) + ")"));
      return;
    }
    auto req = self->codec.template decode<Req>(
        std::string_view(data ? data : "", static_cast<std::size_t>(len)));
    if (!req) {
      self->bad.fetch_add(1, std::memory_order_relaxed);
      self->publish(reply, wire::bad_request("undecodable request: " + req.error().reason));
      return;
    }
    {
      std::lock_guard lk(self->m);
      if (self->in_flight >= self->opts.max_in_flight) {
        self->busy.fetch_add(1, std::memory_order_relaxed);
        self->publish(reply, wire::failed(error_kind::queue_full,
                                          "the server has max_in_flight calls in flight"));
        return;
      }
      ++self->in_flight;
    }
    guard.reset();
    // Never blocks: the call waits for room in the service's queue asynchronously.
    self->caller.async_send_request(std::move(*req),
                                    reply_handler{self->shared_from_this(), std::move(reply)});
  }

  struct reply_handler {
    std::shared_ptr<server_state> self;
    std::string reply;
    void operator()(result_type r) {
      std::string payload;
      if (r) {
        payload.push_back(static_cast<char>(wire::status::response));
        auto e = self->codec.encode(*r, payload);
        if (!e) payload = wire::failed(error_kind::fetch_failure,
                                       "the response could not be encoded: " + e.error().reason);
      } else if (r.error().kind() == error_kind::service_error) {
        payload.push_back(static_cast<char>(wire::status::service_error));
        auto e = self->codec.encode(r.error().service_error(), payload);
        if (!e) payload = wire::failed(error_kind::fetch_failure,
                                       "the service error could not be encoded: " +
                                           e.error().reason);
      } else {
        payload = wire::failed(r.error().kind(), "the serving side's call failed: " +
                                                     r.error().message());
      }
      self->publish(reply, payload);
      self->answered.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard lk(self->m);
      if (--self->in_flight == 0) self->cv.notify_all();
    }
  };

  // nats.c's last callback. When stop() is waiting, the state (and the local caller it
  // holds, which may be the service's last) is released by stop(), on the owner's thread:
  // released here it could end the service on this thread while the owner destroys the
  // service's execution context. Nothing of `self` is touched after the unlock.
  static void on_complete(void* closure) {
    auto* self = static_cast<server_state*>(closure);
    std::shared_ptr<server_state> keep;
    {
      std::lock_guard lk(self->m);
      self->sub_done = true;
      if (!self->stopping) keep = std::move(self->self_keep);
      self->cv.notify_all();
    }
    // `keep` may be the last reference (nobody stopped us): released here, after the lock.
  }
};

}  // namespace detail

/// A service served on a NATS subject (from serve()). Move-only; the destructor stops it.
template <class Req, class Resp, class Err, class Codec = binary_codec>
class server {
 public:
  server(server&& o) noexcept : st_(std::move(o.st_)) {}
  server& operator=(server&& o) noexcept {
    if (this != &o) {
      stop();
      st_ = std::move(o.st_);
    }
    return *this;
  }
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server() { stop(); }

  /// Stops taking requests; the requests already received are served and answered. Returns
  /// true when everything was answered within `timeout` (blocks the calling thread).
  bool drain(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    if (!st_) return true;
    if (st_->loop) st_->loop->refuse_blocking_wait("server::drain()");
    auto deadline = std::chrono::steady_clock::now() + timeout;
    if (natsSubscription_Drain(st_->sub) == NATS_OK) {
      if (st_->loop) st_->loop->poke();  // what is queued is taken by the loop's drainer
      (void)natsSubscription_WaitForDrainCompletion(st_->sub,
                                                    static_cast<int64_t>(timeout.count()));
    } else {
      (void)natsSubscription_Unsubscribe(st_->sub);
    }
    std::unique_lock lk(st_->m);
    return st_->cv.wait_until(lk, deadline, [&] { return st_->in_flight == 0; });
  }

  /// Stops taking requests now (calls in flight still reply). Idempotent. Waits (at most
  /// 5 s) until nats.c has returned from its last callback, so that the local caller held by
  /// the server is released here, not later on a nats.c thread.
  void stop() noexcept {
    if (!st_) return;
    if (st_->loop) {
      // Synchronous subscription: once the drainer is removed nothing of nats.c calls us.
      st_->sync_stopped.store(true, std::memory_order_release);
      st_->loop->remove_drainer(st_->drainer);
      (void)natsSubscription_Unsubscribe(st_->sub);
      natsSubscription_Destroy(st_->sub);
      std::shared_ptr<state> keep;
      {
        std::lock_guard lk(st_->m);
        st_->sub_done = true;
        keep = std::move(st_->self_keep);
      }
      st_.reset();
      return;
    }
    {
      // Before the unsubscription: nats.c's last callback may come at once and must then
      // leave the state (and the local caller it holds) to this thread.
      std::lock_guard lk(st_->m);
      st_->stopping = true;
    }
    (void)natsSubscription_Unsubscribe(st_->sub);
    natsSubscription_Destroy(st_->sub);
    std::shared_ptr<state> keep;
    {
      std::unique_lock lk(st_->m);
      if (st_->cv.wait_for(lk, std::chrono::seconds(5), [&] { return st_->sub_done; })) {
        keep = std::move(st_->self_keep);  // released below, on this thread
      } else {
        st_->stopping = false;  // nats.c never called back: its callback releases it later
      }
    }
    st_.reset();
    keep.reset();
  }

  server_stats stats() const {
    server_stats s;
    if (!st_) return s;
    s.received = st_->received.load();
    s.answered = st_->answered.load();
    s.bad_requests = st_->bad.load();
    s.busy = st_->busy.load();
    s.no_reply_subject = st_->no_reply.load();
    return s;
  }

 private:
  template <class R, class P, class E, class C>
  friend server<R, P, E, C> serve(connection, const std::string&, const std::string&,
                                  tenorite::caller<R, P, E>, serve_options, C);
  using state = detail::server_state<Req, Resp, Err, Codec>;
  explicit server(std::shared_ptr<state> st) noexcept : st_(std::move(st)) {}
  std::shared_ptr<state> st_;
};

/// Serves `caller`'s service on `subject` in `queue_group` (empty: no group; every server
/// then gets every request). Throws nats_error when the subscription fails.
template <class Req, class Resp, class Err, class Codec = binary_codec>
server<Req, Resp, Err, Codec> serve(connection conn, const std::string& subject,
                                    const std::string& queue_group,
                                    tenorite::caller<Req, Resp, Err> caller,
                                    serve_options opts = {}, Codec codec = {}) {
  static_assert(service_codec<Codec, Req, Resp, Err>,
                "tenorite::nats::serve: the codec must encode and decode Req, Resp and Err");
  using state = detail::server_state<Req, Resp, Err, Codec>;
  auto st = std::make_shared<state>(std::move(conn), std::move(caller), opts, std::move(codec));
  if (const auto& loop = st->conn.loop_internal()) {
    loop->refuse_blocking_wait("serve()");
    natsStatus s = queue_group.empty()
                       ? natsConnection_SubscribeSync(&st->sub, st->conn.native(), subject.c_str())
                       : natsConnection_QueueSubscribeSync(&st->sub, st->conn.native(),
                                                           subject.c_str(), queue_group.c_str());
    if (s != NATS_OK) throw nats_error("subscribe to " + subject, s);
    (void)natsSubscription_SetPendingLimits(st->sub, opts.pending_msgs_limit,
                                            opts.pending_bytes_limit);
    st->self_keep = st;
    st->loop = loop;
    st->drainer = loop->add_drainer([w = std::weak_ptr<state>(st)] {
      if (auto self = w.lock()) self->drain_sync();
    });
    (void)natsConnection_Flush(st->conn.native());
    return server<Req, Resp, Err, Codec>(std::move(st));
  }
  st->self_keep = st;
  natsStatus s =
      queue_group.empty()
          ? natsConnection_Subscribe(&st->sub, st->conn.native(), subject.c_str(),
                                     &state::on_msg, st.get())
          : natsConnection_QueueSubscribe(&st->sub, st->conn.native(), subject.c_str(),
                                          queue_group.c_str(), &state::on_msg, st.get());
  if (s != NATS_OK) {
    st->self_keep.reset();
    throw nats_error("subscribe to " + subject, s);
  }
  (void)natsSubscription_SetPendingLimits(st->sub, opts.pending_msgs_limit,
                                          opts.pending_bytes_limit);
  if (natsSubscription_SetOnCompleteCB(st->sub, &state::on_complete, st.get()) != NATS_OK) {
    // Already closed (the connection went away): no callback will come.
    std::lock_guard lk(st->m);
    st->self_keep.reset();
  }
  // Make sure the server knows the subscription before anyone relies on it.
  (void)natsConnection_Flush(st->conn.native());
  return server<Req, Resp, Err, Codec>(std::move(st));
}

}  // namespace tenorite::nats
