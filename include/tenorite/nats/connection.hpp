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
#include <atomic>
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
  /// Removes a listener: it is not called after this returns. A call of it in progress (on
  /// nats.c's thread) is waited for, unless this is made from inside that call: what the
  /// call holds (a state's last reference, with the last connection handle) is let go before
  /// the owner goes on, never later on nats.c's thread.
  void remove(std::uint64_t id) {
    std::unique_lock lk(m_);
    listeners_.erase(id);
    cv_.wait(lk, [&] { return calling_ != id || calling_thread_ == std::this_thread::get_id(); });
  }

  static void on_closed(natsConnection*, void* closure) {
    auto* self = static_cast<connection_events*>(closure);
    std::shared_ptr<connection_events> keep;
    std::unique_lock lk(self->m_);
    self->closed_ = true;
    keep = std::move(self->self_keep);
    while (!self->listeners_.empty()) {
      auto it = self->listeners_.begin();
      const std::uint64_t id = it->first;
      listener l = std::move(it->second);
      self->listeners_.erase(it);
      self->calling_ = id;
      self->calling_thread_ = std::this_thread::get_id();
      lk.unlock();
      l();
      l = nullptr;  // its captures go before remove() may return
      lk.lock();
      self->calling_ = 0;
      self->calling_thread_ = {};
      self->cv_.notify_all();
    }
  }

  std::shared_ptr<connection_events> self_keep;  // until on_closed has run

 private:
  std::mutex m_;
  std::map<std::uint64_t, listener> listeners_;  // guarded by m_
  std::uint64_t next_ = 0;                        // guarded by m_
  bool closed_ = false;                           // guarded by m_
  std::condition_variable cv_;
  std::uint64_t calling_ = 0;         // guarded by m_: the listener being called, or 0
  std::thread::id calling_thread_{};  // guarded by m_
};

/// nats.c's external event loop on an Asio executor. Every piece of the loop's state is the
/// strand's; nats.c calls the four callbacks from any thread (connect, reconnect, a publish)
/// and each is applied on the strand. After each read event the loop runs its drainers: the
/// functions that take what arrived on synchronous subscriptions (serve()'s).
///
/// Closing retires the loop: from then on none of its handlers touches nats.c or the loop's
/// state (each enters through an `entry`, which a retired loop refuses), and the descriptor
/// is released from the reactor before nats.c closes the socket. Retiring from off the strand
/// waits for the handler in progress, if any (a running loop is always waited for, however
/// slow), and needs nothing more of the loop: a loop whose context is stopped, or being
/// destroyed, never runs again and cannot race.
///
/// Invariants:
/// - the socket is nats.c's: the descriptor is released, never closed, and released before
///   nats.c closes it when the close (or a disconnect) is done on the loop or by close();
/// - a wait completion from an earlier socket (before a reconnect or the detach) is ignored
///   (generation count), so nats.c is never called for a socket it no longer uses;
/// - nats.c is never called by the loop once close() has begun closing the connection, and
///   the connection is closed before it is destroyed (connection's deleter);
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
  /// True when the executor's context is stopped (its loop runs no more handlers, except the
  /// end of a batch in progress). Told for io_context and thread_pool; false otherwise.
  bool loop_context_stopped() const {
    auto& ctx = boost::asio::query(strand_.get_inner_executor(), boost::asio::execution::context);
    return boost::asio::has_service<boost::asio::detail::scheduler>(ctx) &&
           boost::asio::use_service<boost::asio::detail::scheduler>(ctx).stopped();
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
    boost::asio::post(strand_, [self = shared_from_this()] {
      if (!self->retired()) self->run_drainers();
    });
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
      if (add) {
        self->reading_ = true;
        self->arm_read();
      } else {
        // nats.c stops reading only to close the socket next (close, or a disconnect):
        // the descriptor leaves the reactor first (on the loop, that is before the close).
        self->drop_socket();
      }
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

  /// Closes `nc` and retires the loop; when this returns the connection is closed and no
  /// handler of the loop is inside nats.c's event processing (but on the loop itself, where
  /// the caller is that handler; a drainer may still be taking messages from its
  /// subscriptions, which nats.c allows on a closed connection). From another thread the close is done on the loop, after what is queued there
  /// (a write in progress goes out first), when the loop runs it in time; otherwise (the
  /// context stopped or being destroyed, the loop slow, or the caller on a thread of the
  /// executor's context, where waiting for the loop could wait for ourselves) it is done here
  /// once the handler in progress has returned. Idempotent.
  void close(natsConnection* nc) {
    if (!strand_.running_in_this_thread() && !on_loop_context() && !loop_context_stopped())
      close_on_loop(nc);
    retire();
    natsConnection_Close(nc);
  }

  /// True once the loop is retired (close() began): its handlers no longer run.
  bool retired() const noexcept { return retired_.load(std::memory_order_seq_cst); }

 private:
  struct drainer {
    std::recursive_mutex m;
    std::function<void()> fn;  // guarded by m
    std::thread::id running;   // guarded by m: the thread inside fn
    bool removed = false;      // guarded by m
  };

  /// Every handler of the loop enters through one: refused (ok == false, the handler then
  /// touches nothing) once the loop is retired; retire() waits for those that got in.
  /// Dekker's handshake on two seq_cst atomics: either retire() sees the handler counted in
  /// `active_`, or the handler sees `retired_`.
  struct entry {
    event_loop& l;
    bool ok;
    explicit entry(event_loop& loop) noexcept : l(loop) {
      l.active_.fetch_add(1, std::memory_order_seq_cst);
      ok = !l.retired_.load(std::memory_order_seq_cst);
    }
    entry(const entry&) = delete;
    entry& operator=(const entry&) = delete;
    ~entry() {
      if (l.active_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
          l.retired_.load(std::memory_order_seq_cst))
        l.active_.notify_all();
    }
  };

  /// From now on no handler of the loop touches nats.c or the loop's state. Off the strand,
  /// waits for the handlers that got in first; then the descriptor leaves the reactor (the
  /// socket stays nats.c's, which closes it next).
  void retire() noexcept {
    retired_.store(true, std::memory_order_seq_cst);
    if (!strand_.running_in_this_thread()) {
      for (int n = active_.load(std::memory_order_seq_cst); n != 0;
           n = active_.load(std::memory_order_seq_cst))
        active_.wait(n, std::memory_order_seq_cst);
    }
    std::lock_guard lk(retire_m_);  // two closers: the second waits for the first's release
    if (released_) return;
    released_ = true;
    drop_socket();
    nc_ = nullptr;
  }

  /// Closes on the loop, waiting for it at most about two seconds (beyond that the close is
  /// done by the caller, safely: see close()). Returns early when the loop will never run it
  /// (the handler is destroyed unrun: the context is being destroyed).
  void close_on_loop(natsConnection* nc) {
    struct claim {
      std::mutex m;
      std::condition_variable cv;
      bool taken = false, finished = false;  // guarded by m
    };
    // Tells the waiter when it is run, or destroyed without having run.
    struct closer {
      std::shared_ptr<claim> c;
      std::shared_ptr<event_loop> self;
      natsConnection* nc;
      closer(std::shared_ptr<claim> cl, std::shared_ptr<event_loop> s, natsConnection* n)
          : c(std::move(cl)), self(std::move(s)), nc(n) {}
      closer(closer&&) noexcept = default;
      closer(const closer&) = delete;
      closer& operator=(const closer&) = delete;
      closer& operator=(closer&&) = delete;
      ~closer() {
        if (c) finish();  // never run
      }
      void operator()() {
        bool mine = false;
        {
          std::lock_guard lk(c->m);
          mine = !std::exchange(c->taken, true);
        }
        if (mine) {
          entry e(*self);
          if (e.ok) {
            self->retire();
            in_nats mark(*self);
            natsConnection_Close(nc);
          }
        }
        finish_and_drop();
      }
      void finish() {
        std::lock_guard lk(c->m);
        c->finished = true;
        c->cv.notify_all();
      }
      void finish_and_drop() {
        finish();
        c.reset();
      }
    };
    auto c = std::make_shared<claim>();
    boost::asio::post(strand_, closer(c, shared_from_this(), nc));
    std::unique_lock lk(c->m);
    if (!c->cv.wait_for(lk, std::chrono::seconds(2), [&] { return c->finished; }) && c->taken)
      c->cv.wait(lk, [&] { return c->finished; });  // the loop is closing it right now
    c->taken = true;  // not run yet: the caller closes (close() retires the loop first)
  }

  // dispatch, not post: on a thread of the executor's context with the strand idle it runs at
  // once (a publish from the service's worker arms the write without a trip through the
  // scheduler). The callbacks' work never calls back into nats.c, which may hold its lock.
  template <class F>
  void on_strand(F f) {
    if (strand_.running_in_this_thread()) {
      if (inside_nats_) {
        // nats.c processing an event inside a handler that got in, or the closer closing:
        // run now, retired or not. A disconnect found while processing stops reading and
        // closes the socket next: the descriptor must leave the reactor first.
        f();
      } else {
        // Other code on the strand (a drainer's user completion publishing): as a handler.
        entry e(*this);
        if (e.ok) f();
      }
      return;
    }
    if (retired()) return;  // nats.c's callbacks while closing: the loop has let go already
    boost::asio::dispatch(strand_, [keep = shared_from_this(), f = std::move(f)]() mutable {
      entry e(*keep);
      if (e.ok) f();
    });
  }
  /// Marks the strand's thread as inside a call into nats.c (on_strand runs its callbacks).
  struct in_nats {
    event_loop& l;
    bool prev;
    explicit in_nats(event_loop& loop) noexcept
        : l(loop), prev(std::exchange(l.inside_nats_, true)) {}
    in_nats(const in_nats&) = delete;
    in_nats& operator=(const in_nats&) = delete;
    ~in_nats() { l.inside_nats_ = prev; }
  };
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
                      {
                        // Only nats.c's processing is inside the entry: retire() waits for
                        // it, never for the drainers, which run users' completions (one may
                        // close another connection of this context, or wait for a drainer).
                        entry e(*self);
                        if (!e.ok || gen != self->generation_) return;
                        self->read_armed_ = false;
                        if (ec || !self->nc_) return;
                        in_nats mark(*self);
                        natsConnection_ProcessReadEvent(self->nc_);
                      }
                      if (self->retired()) return;  // closed meanwhile
                      self->run_drainers();  // subscriptions' own calls: safe when closed
                      entry e(*self);
                      if (e.ok && gen == self->generation_) self->arm_read();
                    });
  }
  void arm_write() {
    if (!writing_ || write_armed_ || !sd_) return;
    write_armed_ = true;
    sd_->async_wait(boost::asio::posix::stream_descriptor::wait_write,
                    [self = shared_from_this(), gen = generation_](boost::system::error_code ec) {
                      entry e(*self);
                      if (!e.ok || gen != self->generation_) return;
                      self->write_armed_ = false;
                      if (ec || !self->nc_) return;
                      {
                        in_nats mark(*self);
                        natsConnection_ProcessWriteEvent(self->nc_);
                      }
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
  // The strand's (the retiring thread's once retired):
  natsConnection* nc_ = nullptr;
  std::optional<boost::asio::posix::stream_descriptor> sd_;
  std::uint64_t generation_ = 0;
  bool reading_ = false, writing_ = false, read_armed_ = false, write_armed_ = false;
  bool inside_nats_ = false;  // the strand's thread is inside a call into nats.c

  std::atomic<bool> retired_{false};
  std::atomic<int> active_{0};  // handlers inside an entry
  std::mutex retire_m_;
  bool released_ = false;  // guarded by retire_m_

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
    // Closed first, always (close() retires the loop: no handler of it touches nats.c again,
    // none is inside it), then destroyed here. The loop lives as long as this deleter, so
    // nats.c's callbacks during the close find it (they do nothing: it is retired).
    std::shared_ptr<natsConnection> handle(nc, [loop](natsConnection* c) {
      loop->close(c);
      natsConnection_Destroy(c);
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
  /// connection that runs on an executor its loop stops for good: the close is done on the
  /// loop when it runs it in time, else here once the loop's handler in progress returned
  /// (detail::event_loop::close); either way it is done when this returns.
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
