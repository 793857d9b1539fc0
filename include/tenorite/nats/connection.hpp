// SPDX-License-Identifier: BSL-1.0
// tenorite/nats/connection.hpp — a connection to NATS (RAII over nats.c's natsConnection).
//
//   auto conn = tenorite::nats::connection::connect({.servers = {"nats://127.0.0.1:4222"}});
//
// A connection is a cheap copyable handle: the natsConnection is closed and destroyed when
// the last copy (including those held by servers and remote callers) goes. Options map one to
// one onto nats.c's: authentication (user/password or token), TLS (CA, certificate and key
// files), reconnection, and SendAsap (on by default: a replier that buffers its replies makes
// every call wait about a millisecond).
//
// With `.executor` set, nats.c leaves the socket to that executor (its external event-loop
// mode): no reader or delivery threads. serve() takes each request on the executor itself, so
// a service running there is called without a hand-off from a nats.c thread, and a remote
// caller takes its replies there too. Rules of that mode:
// - connect(), flush(), serve(), server::drain() and a remote send_request_blocking wait for
//   the NATS server, whose answer is read on the executor: do not call them from a thread of
//   the executor's context (they throw std::logic_error where they can tell: io_context and
//   thread_pool);
// - destroy the connection, and the servers and remote callers using it, before that context.
#pragma once

#include <boost/asio/detail/config.hpp>
#if !defined(BOOST_ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
#error "tenorite::nats waits on nats.c's socket with a POSIX stream descriptor: it needs a POSIX system (Linux, macOS, the BSDs) and is not available on Windows"
#endif

#include <nats/nats.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tenorite::nats {

/// A nats.c call failed: what() names the call and nats.c's status text.
class nats_error : public std::runtime_error {
 public:
  nats_error(const std::string& what, natsStatus s)
      : std::runtime_error("tenorite::nats: " + what + ": " + natsStatus_GetText(s)),
        status_(s) {}
  natsStatus status() const noexcept { return status_; }

 private:
  natsStatus status_;
};

namespace detail {
inline void check(natsStatus s, const char* what) {
  if (s != NATS_OK) throw nats_error(what, s);
}

/// The connection's closed event, told to listeners (remote callers fail their pending calls
/// at once). Kept alive by nats.c's closed callback, which comes once the connection closes.
class connection_events {
 public:
  using listener = std::function<void()>;

  /// Adds a listener; returns 0 (and adds nothing) when the connection is already closed.
  std::uint64_t add(listener l) {
    std::lock_guard lk(m_);
    if (closed_) return 0;
    listeners_.emplace(++next_, std::move(l));
    return next_;
  }
  void remove(std::uint64_t id) {
    std::lock_guard lk(m_);
    listeners_.erase(id);
  }

  static void on_closed(natsConnection*, void* closure) {
    auto* self = static_cast<connection_events*>(closure);
    std::map<std::uint64_t, listener> ls;
    std::shared_ptr<connection_events> keep;
    {
      std::lock_guard lk(self->m_);
      self->closed_ = true;
      ls.swap(self->listeners_);
      keep = std::move(self->self_keep);
    }
    for (auto& [id, l] : ls) l();
  }

  std::shared_ptr<connection_events> self_keep;  // until on_closed has run

 private:
  std::mutex m_;
  std::map<std::uint64_t, listener> listeners_;  // guarded by m_
  std::uint64_t next_ = 0;                        // guarded by m_
  bool closed_ = false;                           // guarded by m_
};

/// nats.c's external event loop on an Asio executor. Every piece of the loop's state is the
/// strand's; nats.c calls the four callbacks from any thread (connect, reconnect, a publish)
/// and each is applied on the strand. After each read event the loop runs its drainers: the
/// functions that take what arrived on synchronous subscriptions (serve()'s).
///
/// Invariants:
/// - the socket is nats.c's: the descriptor is released, never closed;
/// - a wait completion from an earlier socket (before a reconnect or the detach) is ignored
///   (generation count), so nats.c is never called for a socket it no longer uses;
/// - a drainer never runs after remove_drainer() returned, except when removed from inside its
///   own call (then that call finishes and the drainer is dropped on the loop).
class event_loop : public std::enable_shared_from_this<event_loop> {
 public:
  explicit event_loop(const boost::asio::any_io_executor& ex)
      : strand_(boost::asio::make_strand(ex)) {}
  ~event_loop() {
    if (sd_) (void)sd_->release();
  }
  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;

  /// True on a thread running the executor's context (where waiting for the loop would wait
  /// for ourselves). Told for io_context and thread_pool (Asio's scheduler); false otherwise.
  bool on_loop_context() const {
    auto& ctx = boost::asio::query(strand_.get_inner_executor(), boost::asio::execution::context);
    return boost::asio::has_service<boost::asio::detail::scheduler>(ctx) &&
           boost::asio::use_service<boost::asio::detail::scheduler>(ctx).can_dispatch();
  }
  void refuse_blocking_wait(const char* what) const {
    if (on_loop_context())
      throw std::logic_error(std::string("tenorite::nats: ") + what +
                             " waits for the NATS server, whose answer is read on the "
                             "connection's executor: call it from another thread");
  }

  /// Adds a function run on the loop after every read event (and after poke()).
  std::uint64_t add_drainer(std::function<void()> f) {
    auto d = std::make_shared<drainer>();
    d->fn = std::move(f);
    std::lock_guard lk(m_);
    drainers_.emplace(++next_id_, std::move(d));
    return next_id_;
  }
  /// Removes a drainer; waits for a call of it in progress on the loop, unless called from
  /// inside that call. Its function is destroyed here (or, from inside its call, on the loop).
  void remove_drainer(std::uint64_t id) {
    std::shared_ptr<drainer> d;
    {
      std::lock_guard lk(m_);
      auto it = drainers_.find(id);
      if (it == drainers_.end()) return;
      d = std::move(it->second);
      drainers_.erase(it);
    }
    std::function<void()> dead;
    std::lock_guard lk(d->m);  // recursive: from inside the drainer's own call we get in
    d->removed = true;
    if (d->running != std::this_thread::get_id()) dead = std::move(d->fn);
  }
  /// Runs the drainers soon, on the loop (messages may wait on a subscription unannounced).
  void poke() {
    boost::asio::post(strand_, [self = shared_from_this()] { self->run_drainers(); });
  }

  static natsStatus on_attach(void** user, void* loop, natsConnection* nc, natsSock sock) {
    auto* self = static_cast<event_loop*>(loop);
    *user = self;
    self->on_strand([self, nc, sock] {
      self->nc_ = nc;
      self->drop_socket();
      self->sd_.emplace(self->strand_, sock);
      self->reading_ = true;  // attaching means polling for reads (nats.c's contract)
      self->arm_read();
      self->arm_write();
    });
    return NATS_OK;
  }
  static natsStatus on_read(void* user, bool add) {
    auto* self = static_cast<event_loop*>(user);
    self->on_strand([self, add] {
      self->reading_ = add;
      self->arm_read();
    });
    return NATS_OK;
  }
  static natsStatus on_write(void* user, bool add) {
    auto* self = static_cast<event_loop*>(user);
    self->on_strand([self, add] {
      self->writing_ = add;
      self->arm_write();
    });
    return NATS_OK;
  }
  static natsStatus on_detach(void* user) {
    auto* self = static_cast<event_loop*>(user);
    self->on_strand([self] {
      self->drop_socket();
      self->nc_ = nullptr;
    });
    return NATS_OK;
  }

  /// Runs `f` on the loop after everything posted there before (the connection's last act:
  /// natsConnection_Destroy, so that no read event is processed for a destroyed connection).
  template <class F>
  void post(F f) {
    boost::asio::post(strand_, std::move(f));
  }

  /// Closes `nc` on the loop: nats.c closes the socket the loop polls, which must not happen
  /// beside the loop arming a wait on it. From another thread this waits for the loop (at
  /// most about two seconds: a loop that does not run, its context stopped, cannot race, and
  /// the connection is then closed here); on the executor's context it is queued.
  void close(natsConnection* nc) {
    if (strand_.running_in_this_thread()) {
      natsConnection_Close(nc);
      return;
    }
    if (on_loop_context()) {
      post([nc] { natsConnection_Close(nc); });
      return;
    }
    struct claim {
      std::mutex m;
      std::condition_variable cv;
      bool taken = false, done = false;
    };
    auto c = std::make_shared<claim>();
    post([c, nc] {
      {
        std::lock_guard lk(c->m);
        if (c->taken) return;
        c->taken = true;
      }
      natsConnection_Close(nc);
      std::lock_guard lk(c->m);
      c->done = true;
      c->cv.notify_all();
    });
    std::unique_lock lk(c->m);
    if (c->cv.wait_for(lk, std::chrono::seconds(2), [&] { return c->done; })) return;
    if (c->taken) {
      c->cv.wait(lk, [&] { return c->done; });  // the loop is closing it right now
      return;
    }
    c->taken = true;
    lk.unlock();
    natsConnection_Close(nc);
  }

 private:
  struct drainer {
    std::recursive_mutex m;
    std::function<void()> fn;  // guarded by m
    std::thread::id running;   // guarded by m: the thread inside fn
    bool removed = false;      // guarded by m
  };

  // dispatch, not post: on a thread of the executor's context with the strand idle it runs at
  // once (a publish from the service's worker arms the write without a trip through the
  // scheduler). The callbacks' work never calls back into nats.c, which may hold its lock.
  template <class F>
  void on_strand(F f) {
    if (strand_.running_in_this_thread()) {
      f();
    } else {
      boost::asio::dispatch(strand_,
                            [keep = shared_from_this(), f = std::move(f)]() mutable { f(); });
    }
  }
  void drop_socket() {
    ++generation_;
    read_armed_ = write_armed_ = false;
    reading_ = writing_ = false;
    if (sd_) {
      (void)sd_->release();  // cancels the waits; their completions see another generation
      sd_.reset();
    }
  }
  void arm_read() {
    if (!reading_ || read_armed_ || !sd_) return;
    read_armed_ = true;
    sd_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                    [self = shared_from_this(), gen = generation_](boost::system::error_code ec) {
                      if (gen != self->generation_) return;
                      self->read_armed_ = false;
                      if (ec || !self->nc_) return;
                      natsConnection_ProcessReadEvent(self->nc_);
                      self->run_drainers();
                      self->arm_read();
                    });
  }
  void arm_write() {
    if (!writing_ || write_armed_ || !sd_) return;
    write_armed_ = true;
    sd_->async_wait(boost::asio::posix::stream_descriptor::wait_write,
                    [self = shared_from_this(), gen = generation_](boost::system::error_code ec) {
                      if (gen != self->generation_) return;
                      self->write_armed_ = false;
                      if (ec || !self->nc_) return;
                      natsConnection_ProcessWriteEvent(self->nc_);
                      self->arm_write();
                    });
  }
  void run_drainers() {
    std::vector<std::shared_ptr<drainer>> ds;
    {
      std::lock_guard lk(m_);
      ds.reserve(drainers_.size());
      for (auto& [id, d] : drainers_) ds.push_back(d);
    }
    for (auto& d : ds) {
      std::function<void()> dead;
      std::lock_guard lk(d->m);
      if (d->removed) continue;
      d->running = std::this_thread::get_id();
      d->fn();
      d->running = {};
      if (d->removed) dead = std::move(d->fn);
    }
  }

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  // The strand's:
  natsConnection* nc_ = nullptr;
  std::optional<boost::asio::posix::stream_descriptor> sd_;
  std::uint64_t generation_ = 0;
  bool reading_ = false, writing_ = false, read_armed_ = false, write_armed_ = false;

  std::mutex m_;
  std::map<std::uint64_t, std::shared_ptr<drainer>> drainers_;  // guarded by m_
  std::uint64_t next_id_ = 0;                                     // guarded by m_
};
}  // namespace detail

/// TLS settings, passed through to nats.c (natsOptions_SetSecure and friends).
struct tls_options {
  bool enabled = false;            ///< use TLS (also implied by a tls:// URL)
  std::string ca_file{};            ///< trusted CA certificates (PEM file)
  std::string cert_file{};          ///< client certificate chain (PEM), with key_file
  std::string key_file{};           ///< client private key (PEM)
  std::string expected_hostname{};  ///< the server certificate's name, when not the URL's host
  bool skip_server_verification = false;  ///< for tests only
};

/// How to connect. Every field has a default; `{.servers = {url}}` is enough.
struct connection_options {
  std::vector<std::string> servers = {"nats://127.0.0.1:4222"};
  std::string name{};           ///< the client's name, shown by the server's monitoring
  std::string user{}, password{}; ///< user/password authentication (when user is not empty)
  std::string token{};          ///< token authentication (when not empty)
  tls_options tls{};
  std::chrono::milliseconds connect_timeout{2000};
  bool allow_reconnect = true;
  int max_reconnect = -1;  ///< attempts per lost connection; -1: forever
  std::chrono::milliseconds reconnect_wait{100};
  int reconnect_buffer_bytes = 8 * 1024 * 1024;  ///< publishes held while reconnecting
  bool retry_on_failed_connect = false;
  /// Send each publish at once (needed by repliers and request loops for latency).
  bool send_asap = true;
  /// One shared pool of delivery threads instead of a thread per subscription.
  bool global_message_delivery = false;
  /// Read and write the socket on this executor (nats.c's event-loop mode, see the top of
  /// this header) instead of nats.c's threads; serve() takes requests, and remote callers
  /// their replies, there.
  std::optional<boost::asio::any_io_executor> executor{};
};

/// A connection to a NATS server (or cluster). Copyable handle; thread-safe.
class connection {
 public:
  /// Connects (throws nats_error when it cannot).
  static connection connect(const connection_options& o) {
    natsOptions* opts = nullptr;
    detail::check(natsOptions_Create(&opts), "natsOptions_Create");
    std::unique_ptr<natsOptions, void (*)(natsOptions*)> guard(opts, &natsOptions_Destroy);
    std::vector<const char*> urls;
    urls.reserve(o.servers.size());
    for (const auto& s : o.servers) urls.push_back(s.c_str());
    if (!urls.empty())
      detail::check(natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size())),
                    "natsOptions_SetServers");
    if (!o.name.empty()) detail::check(natsOptions_SetName(opts, o.name.c_str()), "SetName");
    if (!o.user.empty())
      detail::check(natsOptions_SetUserInfo(opts, o.user.c_str(), o.password.c_str()),
                    "natsOptions_SetUserInfo");
    if (!o.token.empty())
      detail::check(natsOptions_SetToken(opts, o.token.c_str()), "natsOptions_SetToken");
    if (o.tls.enabled) {
      detail::check(natsOptions_SetSecure(opts, true), "natsOptions_SetSecure");
      if (!o.tls.ca_file.empty())
        detail::check(natsOptions_LoadCATrustedCertificates(opts, o.tls.ca_file.c_str()),
                      "natsOptions_LoadCATrustedCertificates");
      if (!o.tls.cert_file.empty())
        detail::check(natsOptions_LoadCertificatesChain(opts, o.tls.cert_file.c_str(),
                                                        o.tls.key_file.c_str()),
                      "natsOptions_LoadCertificatesChain");
      if (!o.tls.expected_hostname.empty())
        detail::check(natsOptions_SetExpectedHostname(opts, o.tls.expected_hostname.c_str()),
                      "natsOptions_SetExpectedHostname");
      if (o.tls.skip_server_verification)
        detail::check(natsOptions_SkipServerVerification(opts, true),
                      "natsOptions_SkipServerVerification");
    }
    detail::check(natsOptions_SetTimeout(opts, static_cast<int64_t>(o.connect_timeout.count())),
                  "natsOptions_SetTimeout");
    detail::check(natsOptions_SetAllowReconnect(opts, o.allow_reconnect),
                  "natsOptions_SetAllowReconnect");
    detail::check(natsOptions_SetMaxReconnect(opts, o.max_reconnect), "SetMaxReconnect");
    detail::check(natsOptions_SetReconnectWait(opts, static_cast<int64_t>(o.reconnect_wait.count())),
                  "natsOptions_SetReconnectWait");
    detail::check(natsOptions_SetReconnectBufSize(opts, o.reconnect_buffer_bytes),
                  "natsOptions_SetReconnectBufSize");
    if (o.retry_on_failed_connect)
      detail::check(natsOptions_SetRetryOnFailedConnect(opts, true, nullptr, nullptr),
                    "natsOptions_SetRetryOnFailedConnect");
    detail::check(natsOptions_SetSendAsap(opts, o.send_asap), "natsOptions_SetSendAsap");
    if (o.global_message_delivery)
      detail::check(natsOptions_UseGlobalMessageDelivery(opts, true),
                    "natsOptions_UseGlobalMessageDelivery");
    std::shared_ptr<detail::event_loop> loop;
    if (o.executor) {
      loop = std::make_shared<detail::event_loop>(*o.executor);
      loop->refuse_blocking_wait("connect()");
      detail::check(natsOptions_SetEventLoop(opts, loop.get(), &detail::event_loop::on_attach,
                                             &detail::event_loop::on_read,
                                             &detail::event_loop::on_write,
                                             &detail::event_loop::on_detach),
                    "natsOptions_SetEventLoop");
    }
    auto events = std::make_shared<detail::connection_events>();
    detail::check(natsOptions_SetClosedCB(opts, &detail::connection_events::on_closed,
                                          events.get()),
                  "natsOptions_SetClosedCB");
    events->self_keep = events;
    natsConnection* nc = nullptr;
    if (natsStatus s = natsConnection_Connect(&nc, opts); s != NATS_OK) {
      events->self_keep.reset();
      throw nats_error("natsConnection_Connect", s);
    }
    if (!loop)
      return connection(std::shared_ptr<natsConnection>(nc,
                                                        [](natsConnection* c) {
                                                          natsConnection_Close(c);
                                                          natsConnection_Destroy(c);
                                                        }),
                        std::move(events), nullptr);
    // Closed on the loop; destroyed there after every event queued (which may still name
    // the connection). Never run (its context gone first), the guard destroys it anyway.
    struct destroy_later {
      natsConnection* c;
      explicit destroy_later(natsConnection* n) noexcept : c(n) {}
      destroy_later(destroy_later&& o) noexcept : c(std::exchange(o.c, nullptr)) {}
      destroy_later(const destroy_later&) = delete;
      destroy_later& operator=(const destroy_later&) = delete;
      destroy_later& operator=(destroy_later&&) = delete;
      ~destroy_later() {
        if (c) natsConnection_Destroy(c);
      }
      void operator()() { natsConnection_Destroy(std::exchange(c, nullptr)); }
    };
    std::shared_ptr<natsConnection> handle(nc, [loop](natsConnection* c) {
      loop->close(c);
      loop->post(destroy_later(c));
    });
    return connection(std::move(handle), std::move(events), std::move(loop));
  }

  connection() = default;

  /// The underlying nats.c connection (valid while this handle exists).
  natsConnection* native() const noexcept { return nc_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(nc_); }

  /// Sends everything buffered and waits for the server's acknowledgement.
  void flush(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const {
    if (loop_) loop_->refuse_blocking_wait("flush()");
    detail::check(natsConnection_FlushTimeout(nc_.get(), static_cast<int64_t>(timeout.count())),
                  "natsConnection_FlushTimeout");
  }
  bool is_closed() const noexcept { return natsConnection_IsClosed(nc_.get()); }
  bool is_reconnecting() const noexcept { return natsConnection_IsReconnecting(nc_.get()); }
  /// Closes the connection now (every copy sees it closed; subscriptions end). On a
  /// connection that runs on an executor the close is done there: called on a thread of that
  /// executor's context it is queued, not done when this returns.
  void close() const {
    if (loop_) {
      loop_->close(nc_.get());
    } else {
      natsConnection_Close(nc_.get());
    }
  }
  /// Calls `f` (on a nats.c thread) when the connection closes for good (close(), the last
  /// handle gone, or reconnection given up); returns an id for unwatch_closed(), or 0 when
  /// the connection is already closed (then `f` is never called).
  std::uint64_t watch_closed(std::function<void()> f) const {
    return events_ ? events_->add(std::move(f)) : 0;
  }
  void unwatch_closed(std::uint64_t id) const {
    if (events_ && id) events_->remove(id);
  }
  /// The largest payload the server accepts, in bytes.
  int64_t max_payload() const noexcept { return natsConnection_GetMaxPayload(nc_.get()); }
  /// True when the connection runs on an executor (connection_options::executor).
  bool on_executor() const noexcept { return static_cast<bool>(loop_); }

  /// For serve(): the event loop, or null (internal).
  const std::shared_ptr<detail::event_loop>& loop_internal() const noexcept { return loop_; }

 private:
  explicit connection(std::shared_ptr<natsConnection> nc,
                      std::shared_ptr<detail::connection_events> ev,
                      std::shared_ptr<detail::event_loop> loop) noexcept
      : nc_(std::move(nc)), events_(std::move(ev)), loop_(std::move(loop)) {}
  std::shared_ptr<natsConnection> nc_;
  std::shared_ptr<detail::connection_events> events_;
  std::shared_ptr<detail::event_loop> loop_;
};

}  // namespace tenorite::nats
