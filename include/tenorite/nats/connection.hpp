// tenorite/nats/connection.hpp — a connection to NATS (RAII over nats.c's natsConnection).
//
//   auto conn = tenorite::nats::connection::connect({.servers = {"nats://127.0.0.1:4222"}});
//
// A connection is a cheap copyable handle: the natsConnection is closed and destroyed when
// the last copy (including those held by servers and remote callers) goes. Options map one to
// one onto nats.c's: authentication (user/password or token), TLS (CA, certificate and key
// files), reconnection, and SendAsap (on by default: a replier that buffers its replies makes
// every call wait about a millisecond).
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
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
    return connection(std::shared_ptr<natsConnection>(nc,
                                                      [](natsConnection* c) {
                                                        natsConnection_Close(c);
                                                        natsConnection_Destroy(c);
                                                      }),
                      std::move(events));
  }

  connection() = default;

  /// The underlying nats.c connection (valid while this handle exists).
  natsConnection* native() const noexcept { return nc_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(nc_); }

  /// Sends everything buffered and waits for the server's acknowledgement.
  void flush(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const {
    detail::check(natsConnection_FlushTimeout(nc_.get(), static_cast<int64_t>(timeout.count())),
                  "natsConnection_FlushTimeout");
  }
  bool is_closed() const noexcept { return natsConnection_IsClosed(nc_.get()); }
  bool is_reconnecting() const noexcept { return natsConnection_IsReconnecting(nc_.get()); }
  /// Closes the connection now (every copy sees it closed; subscriptions end).
  void close() const noexcept { natsConnection_Close(nc_.get()); }
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

 private:
  explicit connection(std::shared_ptr<natsConnection> nc,
                      std::shared_ptr<detail::connection_events> ev) noexcept
      : nc_(std::move(nc)), events_(std::move(ev)) {}
  std::shared_ptr<natsConnection> nc_;
  std::shared_ptr<detail::connection_events> events_;
};

}  // namespace tenorite::nats
