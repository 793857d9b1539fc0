// SPDX-License-Identifier: BSL-1.0
// bench/nats_bench.cpp — remote calls over NATS: tenorite's remote_caller against a service
// put on NATS with serve(), the same service called locally, and the floor: a bare nats.c
// request/reply loop (one shared inbox subscription, natsConnection_PublishRequest, SendAsap
// on, a bare nats.c replier echoing the request).
//
// Usage: tenorite_nats_bench [scale]   (scale multiplies every count; default 1)
//
// Starts its own nats-server (TENORITE_NATS_SERVER, else the one found at build time) on a
// free loopback port. Prints one line per figure
//
//     impl=<name> scenario=<scenario> value=<number> unit=<unit>
//
// then the ratios remote/bare. Scenarios: `latency` (one sequential caller, median of the
// run's round trips, us per call) and `throughput64` (64 concurrent callers, calls/s). Every
// response is checked: a wrong or failed one ends the program with a non-zero exit status.
//
// The service is kv-like: requests are kv::request (examples/kv_service/kv.hpp); `get{key}`
// answers found{key} (an echo), `set` and `del` answer ok. The bare loop sends the same bytes
// (the binary_codec encoding of the same request) and its replier echoes them.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <future>
#include <cstring>
#include <fstream>
#include <functional>
#include <latch>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <tenorite/nats/remote_caller.hpp>
#include <tenorite/nats/server.hpp>
#include <tenorite/tenorite.hpp>
#include <thread>
#include <vector>

#include "kv_service/kv.hpp"

namespace asio = boost::asio;
namespace tn = tenorite::nats;
using namespace std::chrono_literals;

#ifndef TENORITE_NATS_SERVER_BIN
#define TENORITE_NATS_SERVER_BIN "nats-server"
#endif

namespace {

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "tenorite_nats_bench: %s\n", why.c_str());
  std::exit(1);
}

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

double median(std::vector<std::uint64_t>& v) {
  if (v.empty()) return std::nan("");
  auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return static_cast<double>(*mid);
}

// ---- nats-server on a free loopback port (as tests/nats/nats_test_support.hpp does) ----

class nats_server {
 public:
  nats_server() {
    char tmpl[] = "/tmp/tenorite-nats-bench-XXXXXX";
    if (!mkdtemp(tmpl)) fail("mkdtemp failed");
    dir_ = tmpl;
    const char* env = std::getenv("TENORITE_NATS_SERVER");
    std::string bin = env && *env ? env : TENORITE_NATS_SERVER_BIN;
    std::vector<std::string> args = {bin, "-a", "127.0.0.1", "-p", "-1", "-l", "/dev/null",
                                     "--ports_file_dir", dir_};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) fail("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // no server left behind if the bench dies
      if (getppid() != parent) _exit(127);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    const auto file = dir_ + "/nats-server_" + std::to_string(pid_) + ".ports";
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      std::ifstream in(file);
      std::stringstream ss;
      ss << in.rdbuf();
      const auto text = ss.str();
      const auto at = text.find("127.0.0.1:");
      if (in && at != std::string::npos && text.find(']', at) != std::string::npos) {
        port_ = std::stoi(text.substr(at + 10));
        return;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        fail("nats-server (" + bin + ") exited at once; set TENORITE_NATS_SERVER");
      }
      if (std::chrono::steady_clock::now() > deadline) fail("nats-server did not start");
      std::this_thread::sleep_for(5ms);  // polling for its ports file, with a deadline
    }
  }
  ~nats_server() {
    if (pid_ > 0) {
      ::kill(pid_, SIGINT);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::filesystem::remove_all(dir_);
  }
  nats_server(const nats_server&) = delete;
  nats_server& operator=(const nats_server&) = delete;
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

// ---- the service: kv-like, `get{key}` echoes the key ----

struct echo_worker {
  static asio::awaitable<void> task(
      tenorite::receiver<tenorite::request<kv::request, kv::response, kv::error>> rx,
      kv::config) {
    while (auto r = co_await rx.recv()) {
      if (auto* g = std::get_if<kv::get>(&r->request)) {
        r->client.send(kv::response(kv::found{std::move(g->key)}));
      } else {
        r->client.send(kv::response(kv::ok{}));
      }
    }
  }
};
using echo_service = tenorite::service<kv::request, kv::response, kv::error, echo_worker,
                                       kv::config>;
using local_caller = echo_service::caller_type;
using remote_caller = tn::remote_caller<kv::request, kv::response, kv::error>;

std::string key_of(std::uint64_t caller, std::uint64_t i) {
  return "key-" + std::to_string(caller) + "-" + std::to_string(i);
}

template <class Result>
void check(const Result& r, const std::string& key) {
  if (!r) fail("a call failed: " + r.error().message());
  const auto* f = std::get_if<kv::found>(&*r);
  if (!f || !f->value || *f->value != key) fail("wrong response for " + key);
}

struct figures {
  double latency_us;
  double throughput;
};

struct counts {
  std::size_t warmup, latency_calls, per_caller;
  static constexpr std::size_t callers = 64;
};

// ---- tenorite: the same loops for the local caller and the remote caller ----

template <class Caller>
asio::awaitable<void> sequential(Caller caller, std::size_t warmup, std::size_t calls,
                                 std::vector<std::uint64_t>* samples) {
  for (std::uint64_t i = 0; i < warmup + calls; ++i) {
    std::string key = key_of(0, i);
    kv::request req = kv::get{key};
    const std::uint64_t t0 = now_ns();
    auto r = co_await caller.send_request(std::move(req));
    const std::uint64_t t1 = now_ns();
    check(r, key);
    if (i >= warmup) samples->push_back(t1 - t0);
  }
}

template <class Caller>
asio::awaitable<void> one_of_many(Caller caller, std::uint64_t j, std::size_t calls) {
  for (std::uint64_t i = 0; i < calls; ++i) {
    std::string key = key_of(j, i);
    kv::request req = kv::get{key};
    auto r = co_await caller.send_request(std::move(req));
    check(r, key);
  }
}

template <class Caller>
figures run_tenorite(const Caller& caller, asio::any_io_executor ex, const counts& n) {
  figures f{};
  {
    std::vector<std::uint64_t> samples;
    samples.reserve(n.latency_calls);
    std::promise<void> done;
    asio::co_spawn(ex, sequential(caller, n.warmup, n.latency_calls, &samples),
                   [&done](std::exception_ptr e) {
                     if (e) fail("a caller coroutine threw");
                     done.set_value();
                   });
    done.get_future().wait();
    f.latency_us = median(samples) / 1000.0;
  }
  {
    std::latch warm(1);
    asio::co_spawn(ex, one_of_many(caller, 0, n.warmup), [&warm](std::exception_ptr e) {
      if (e) fail("a caller coroutine threw");
      warm.count_down();
    });
    warm.wait();
    std::latch done(counts::callers);
    const std::uint64_t t0 = now_ns();
    for (std::size_t j = 0; j < counts::callers; ++j)
      asio::co_spawn(ex, one_of_many(caller, j, n.per_caller), [&done](std::exception_ptr e) {
        if (e) fail("a caller coroutine threw");
        done.count_down();
      });
    done.wait();
    const double secs = static_cast<double>(now_ns() - t0) / 1e9;
    f.throughput = static_cast<double>(counts::callers * n.per_caller) / secs;
  }
  return f;
}

figures tenorite_local(const counts& n) {
  tenorite::runtime rt(2);
  auto [task, caller] = echo_service{}.start_task(rt.executor(), 1024, kv::config{});
  figures f = run_tenorite(caller, rt.executor(), n);
  caller = {};
  if (!task.wait()) fail("the local worker did not end cleanly");
  return f;
}

// on_executor: each connection runs on its side's runtime (nats.c's event-loop mode):
// requests reach the worker, and replies the caller, without a nats.c delivery thread.
figures tenorite_remote(const std::string& url, const counts& n, bool on_executor) {
  tenorite::runtime serving(1), calling(1);
  auto [task, local] = echo_service{}.start_task(serving.executor(), 1024, kv::config{});
  tn::connection_options serve_opts{.servers = {url}, .name = "bench-server"};
  if (on_executor) serve_opts.executor = serving.executor();
  auto serve_conn = tn::connection::connect(serve_opts);
  tn::connection_options call_opts{.servers = {url}, .name = "bench-caller"};
  if (on_executor) call_opts.executor = calling.executor();
  auto call_conn = tn::connection::connect(call_opts);
  figures f{};
  {
    auto srv = tn::serve(serve_conn, "bench.kv", "bench", local);
    remote_caller caller(call_conn, "bench.kv", calling.executor());
    f = run_tenorite(caller, calling.executor(), n);
    if (!srv.drain(10s)) fail("the server did not drain");
    const auto s = srv.stats().endpoints.at(0);
    if (s.bad_requests || s.busy) fail("the server saw bad requests or was busy");
  }
  local = {};
  if (!task.wait()) fail("the local worker did not end cleanly");
  return f;
}

// ---- the floor: bare nats.c ----

void nats_check(natsStatus s, const char* what) {
  if (s != NATS_OK) fail(std::string(what) + ": " + natsStatus_GetText(s));
}

natsConnection* bare_connect(const std::string& url) {
  natsOptions* o = nullptr;
  nats_check(natsOptions_Create(&o), "natsOptions_Create");
  nats_check(natsOptions_SetURL(o, url.c_str()), "natsOptions_SetURL");
  nats_check(natsOptions_SetSendAsap(o, true), "natsOptions_SetSendAsap");
  natsConnection* nc = nullptr;
  nats_check(natsConnection_Connect(&nc, o), "natsConnection_Connect");
  natsOptions_Destroy(o);
  return nc;
}

void bare_replier(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
  const char* reply = natsMsg_GetReply(msg);
  if (reply)
    (void)natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  natsMsg_Destroy(msg);
}

// `slots` request loops over one inbox `<inbox>.*`: each reply (subject `<inbox>.<slot>`) is
// checked against the bytes sent, and the slot's next request published from where the reply
// was taken. Shared by the bare loop (nats.c's delivery thread) and the event-loop loop.
class request_slots {
 public:
  request_slots(natsConnection* nc, const char* subject, std::size_t slots, std::size_t per,
                bool sample)
      : nc_(nc), subject_(subject), slots_(slots), per_(per), sample_(sample), next_(slots, 0),
        sent_at_(slots, 0), expected_(slots) {
    natsInbox* ib = nullptr;
    nats_check(natsInbox_Create(&ib), "natsInbox_Create");
    inbox_ = std::string(ib) + ".";
    natsInbox_Destroy(ib);
    if (sample_) samples_.reserve(slots * per);
  }
  std::vector<std::uint64_t>& samples() { return samples_; }

 protected:
  void send_all() {
    for (std::size_t s = 0; s < slots_; ++s) send(s);
  }
  void send(std::size_t slot) {
    std::string& bytes = expected_[slot];
    bytes.clear();
    kv::request req = kv::get{key_of(slot, next_[slot])};
    if (!codec_.encode(req, bytes)) fail("encode failed");
    char reply[128];
    std::memcpy(reply, inbox_.data(), inbox_.size());
    auto [end, ec] = std::to_chars(reply + inbox_.size(), reply + sizeof reply - 1, slot);
    (void)ec;
    *end = '\0';
    sent_at_[slot] = now_ns();
    nats_check(natsConnection_PublishRequest(nc_, subject_, reply, bytes.data(),
                                             static_cast<int>(bytes.size())),
               "natsConnection_PublishRequest");
  }
  /// Checks and destroys a reply, sends the slot's next request; true when that slot is done.
  bool on_reply_msg(natsMsg* msg) {
    const std::uint64_t t = now_ns();
    std::string_view subj(natsMsg_GetSubject(msg));
    std::size_t slot = 0;
    auto digits = subj.substr(inbox_.size());
    std::from_chars(digits.data(), digits.data() + digits.size(), slot);
    if (slot >= slots_) fail("a reply on an unknown subject");
    std::string_view got(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    if (natsMsg_IsNoResponders(msg) || got != expected_[slot]) fail("a wrong reply in a bare loop");
    natsMsg_Destroy(msg);
    if (sample_) samples_.push_back(t - sent_at_[slot]);
    if (++next_[slot] < per_) {
      send(slot);
      return false;
    }
    return true;
  }

  natsConnection* nc_;
  const char* subject_;
  std::string inbox_;
  std::size_t slots_, per_;

 private:
  bool sample_;
  tn::binary_codec codec_;
  // Slot state is touched by one thread at a time: the one taking replies, once the slot's
  // first request is out.
  std::vector<std::uint64_t> next_, sent_at_;
  std::vector<std::string> expected_;
  std::vector<std::uint64_t> samples_;
};

// The bare loop: replies on nats.c's delivery thread, next requests published from there.
class bare_loop : public request_slots {
 public:
  bare_loop(natsConnection* nc, std::size_t slots, std::size_t per, bool sample)
      : request_slots(nc, "bench.bare", slots, per, sample) {
    nats_check(natsConnection_Subscribe(&sub_, nc_, (inbox_ + "*").c_str(), &on_reply, this),
               "subscribe to the inbox");
    nats_check(natsSubscription_SetPendingLimits(sub_, -1, -1), "SetPendingLimits");
    nats_check(natsConnection_Flush(nc_), "natsConnection_Flush");
  }
  ~bare_loop() {
    natsSubscription_Unsubscribe(sub_);
    natsSubscription_Destroy(sub_);
  }

  /// Runs every slot to completion; returns the elapsed ns.
  double run() {
    const std::uint64_t t0 = now_ns();
    send_all();
    std::unique_lock lk(m_);
    cv_.wait(lk, [&] { return finished_ == slots_; });
    return static_cast<double>(now_ns() - t0);
  }

 private:
  static void on_reply(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<bare_loop*>(closure);
    if (self->on_reply_msg(msg)) {
      std::lock_guard lk(self->m_);
      if (++self->finished_ == self->slots_) self->cv_.notify_all();
    }
  }

  natsSubscription* sub_ = nullptr;
  std::mutex m_;
  std::condition_variable cv_;
  std::size_t finished_ = 0;  // guarded by m_
};

figures bare_nats(const std::string& url, const counts& n) {
  natsConnection* serve_conn = bare_connect(url);
  natsConnection* call_conn = bare_connect(url);
  natsSubscription* replier = nullptr;
  nats_check(natsConnection_QueueSubscribe(&replier, serve_conn, "bench.bare", "bench",
                                           &bare_replier, nullptr),
             "subscribe the replier");
  nats_check(natsConnection_Flush(serve_conn), "natsConnection_Flush");
  figures f{};
  {
    bare_loop warm(call_conn, 1, n.warmup, false);
    (void)warm.run();
  }
  {
    bare_loop one(call_conn, 1, n.latency_calls, true);
    (void)one.run();
    f.latency_us = median(one.samples()) / 1000.0;
  }
  {
    bare_loop many(call_conn, counts::callers, n.per_caller, false);
    const double ns = many.run();
    f.throughput = static_cast<double>(counts::callers * n.per_caller) / (ns / 1e9);
  }
  natsSubscription_Unsubscribe(replier);
  natsSubscription_Destroy(replier);
  natsConnection_Destroy(serve_conn);
  natsConnection_Destroy(call_conn);
  return f;
}

// ---- nats.c in its external event-loop mode, on Asio (not a tenorite feature) ----
//
// nats.c can leave its socket to an external event loop (natsOptions_SetEventLoop): it then
// starts no reader thread and writes only when the loop reports the socket writable. Here each
// side's loop is an io_context of one thread, and both sides use synchronous subscriptions
// drained on that thread after every read event, so a round trip crosses no thread inside a
// process: the figure a remote call could reach if tenorite ran nats.c on the caller's and the
// service's executors (see the README's NATS section).

class asio_event_loop {
 public:
  asio_event_loop() : work_(ioc_.get_executor()), thread_([this] { ioc_.run(); }) {}
  asio_event_loop(const asio_event_loop&) = delete;
  asio_event_loop& operator=(const asio_event_loop&) = delete;
  ~asio_event_loop() {
    work_.reset();
    thread_.join();
  }

  natsConnection* connect(const std::string& url) {
    natsOptions* o = nullptr;
    nats_check(natsOptions_Create(&o), "natsOptions_Create");
    nats_check(natsOptions_SetURL(o, url.c_str()), "natsOptions_SetURL");
    nats_check(natsOptions_SetSendAsap(o, true), "natsOptions_SetSendAsap");
    nats_check(natsOptions_SetEventLoop(o, this, &on_attach, &on_read, &on_write, &on_detach),
               "natsOptions_SetEventLoop");
    nats_check(natsConnection_Connect(&nc_, o), "natsConnection_Connect (event loop)");
    natsOptions_Destroy(o);
    return nc_;
  }
  /// Destroys the connection and waits until the loop has let go of its socket.
  void close() {
    natsConnection_Destroy(nc_);
    asio::post(ioc_, asio::use_future).get();  // the loop ran every callback posted before
  }
  /// Sets what runs after every read event, on the loop's thread; returns once it is set there
  /// (after it returns, the previous function never runs again).
  void on_read_event(std::function<void()> f) {
    asio::post(ioc_, [this, &f] { after_read_ = std::move(f); });
    asio::post(ioc_, asio::use_future).get();
  }
  /// Runs `f` on the loop's thread.
  void run(std::function<void()> f) { asio::post(ioc_, std::move(f)); }

 private:
  // nats.c calls these from any thread (connect, reconnect, a publish); the loop state is the
  // loop thread's, so each is applied there.
  template <class F>
  void on_loop(F f) {
    if (ioc_.get_executor().running_in_this_thread()) {
      f();
    } else {
      asio::post(ioc_, std::move(f));
    }
  }
  static natsStatus on_attach(void** user, void* loop, natsConnection*, natsSock sock) {
    auto* self = static_cast<asio_event_loop*>(loop);
    *user = self;
    self->on_loop([self, sock] {
      if (self->sd_) (void)self->sd_->release();
      self->sd_.emplace(self->ioc_, sock);  // nats.c owns the socket: released, never closed
      self->reading_ = true;                // attaching means polling for reads
      self->arm_read();
      self->arm_write();
    });
    return NATS_OK;
  }
  static natsStatus on_read(void* user, bool add) {
    auto* self = static_cast<asio_event_loop*>(user);
    self->on_loop([self, add] {
      self->reading_ = add;
      self->arm_read();
    });
    return NATS_OK;
  }
  static natsStatus on_write(void* user, bool add) {
    auto* self = static_cast<asio_event_loop*>(user);
    self->on_loop([self, add] {
      self->writing_ = add;
      self->arm_write();
    });
    return NATS_OK;
  }
  static natsStatus on_detach(void* user) {
    auto* self = static_cast<asio_event_loop*>(user);
    self->on_loop([self] {
      if (!self->sd_) return;
      self->sd_->cancel();
      (void)self->sd_->release();
      self->sd_.reset();
    });
    return NATS_OK;
  }
  void arm_read() {
    if (!reading_ || read_armed_ || !sd_) return;
    read_armed_ = true;
    sd_->async_wait(asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
      read_armed_ = false;
      if (ec) return;
      natsConnection_ProcessReadEvent(nc_);
      if (after_read_) after_read_();
      arm_read();
    });
  }
  void arm_write() {
    if (!writing_ || write_armed_ || !sd_) return;
    write_armed_ = true;
    sd_->async_wait(asio::posix::stream_descriptor::wait_write, [this](boost::system::error_code ec) {
      write_armed_ = false;
      if (ec) return;
      natsConnection_ProcessWriteEvent(nc_);
      arm_write();
    });
  }

  asio::io_context ioc_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  natsConnection* nc_ = nullptr;
  std::optional<asio::posix::stream_descriptor> sd_;  // loop thread only, as are the flags
  bool reading_ = false, writing_ = false, read_armed_ = false, write_armed_ = false;
  std::function<void()> after_read_;
  std::thread thread_;
};

// The same loops on nats.c's event loop: replies taken on the loop thread from a synchronous
// subscription, next requests published from there.
class evloop_requester : public request_slots {
 public:
  evloop_requester(asio_event_loop& loop, natsConnection* nc, std::size_t slots, std::size_t per,
                   bool sample)
      : request_slots(nc, "bench.evloop", slots, per, sample), loop_(loop) {
    nats_check(natsConnection_SubscribeSync(&sub_, nc_, (inbox_ + "*").c_str()),
               "subscribe to the inbox");
    nats_check(natsSubscription_SetPendingLimits(sub_, -1, -1), "SetPendingLimits");
    nats_check(natsConnection_Flush(nc_), "natsConnection_Flush");
    loop_.on_read_event([this] { drain(); });
  }
  ~evloop_requester() {
    loop_.on_read_event({});  // no drain() runs past this point
    natsSubscription_Unsubscribe(sub_);
    natsSubscription_Destroy(sub_);
  }

  double run() {
    std::promise<void> done;
    finished_ = &done;
    const std::uint64_t t0 = now_ns();
    loop_.run([this] { send_all(); });
    done.get_future().wait();
    return static_cast<double>(now_ns() - t0);
  }

 private:
  void drain() {
    natsMsg* msg = nullptr;
    while (natsSubscription_NextMsg(&msg, sub_, 0) == NATS_OK)
      if (on_reply_msg(msg) && ++finished_slots_ == slots_) finished_->set_value();
  }

  asio_event_loop& loop_;
  natsSubscription* sub_ = nullptr;
  // Touched on the loop thread only (run() posts the first requests there).
  std::size_t finished_slots_ = 0;
  std::promise<void>* finished_ = nullptr;
};

figures evloop_nats(const std::string& url, const counts& n) {
  asio_event_loop serving, calling;
  natsConnection* serve_conn = serving.connect(url);
  natsConnection* call_conn = calling.connect(url);
  natsSubscription* replier = nullptr;
  nats_check(natsConnection_QueueSubscribeSync(&replier, serve_conn, "bench.evloop", "bench"),
             "subscribe the replier");
  nats_check(natsSubscription_SetPendingLimits(replier, -1, -1), "SetPendingLimits");
  serving.on_read_event([serve_conn, replier] {
    natsMsg* msg = nullptr;
    while (natsSubscription_NextMsg(&msg, replier, 0) == NATS_OK) {
      if (const char* reply = natsMsg_GetReply(msg))
        (void)natsConnection_Publish(serve_conn, reply, natsMsg_GetData(msg),
                                     natsMsg_GetDataLength(msg));
      natsMsg_Destroy(msg);
    }
  });
  nats_check(natsConnection_Flush(serve_conn), "natsConnection_Flush");
  figures f{};
  {
    evloop_requester warm(calling, call_conn, 1, n.warmup, false);
    (void)warm.run();
  }
  {
    evloop_requester one(calling, call_conn, 1, n.latency_calls, true);
    (void)one.run();
    f.latency_us = median(one.samples()) / 1000.0;
  }
  {
    evloop_requester many(calling, call_conn, counts::callers, n.per_caller, false);
    const double ns = many.run();
    f.throughput = static_cast<double>(counts::callers * n.per_caller) / (ns / 1e9);
  }
  serving.on_read_event({});
  natsSubscription_Unsubscribe(replier);
  natsSubscription_Destroy(replier);
  calling.close();
  serving.close();
  return f;
}

void print(const char* impl, const figures& f) {
  std::printf("impl=%s scenario=latency value=%.1f unit=us\n", impl, f.latency_us);
  std::printf("impl=%s scenario=throughput64 value=%.0f unit=calls/s\n", impl, f.throughput);
  std::fflush(stdout);
}

std::size_t scaled(double scale, double count) {
  const long long v = std::llround(count * scale);
  return v < 1 ? 1 : static_cast<std::size_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  const double scale = argc > 1 ? std::atof(argv[1]) : 1.0;
  if (!(scale > 0)) fail("usage: tenorite_nats_bench [scale > 0]");
  const counts n{scaled(scale, 2000), scaled(scale, 20000), scaled(scale, 2000)};
  nats_server server;
  std::printf("# nats-server at %s; latency: %zu sequential calls (median), throughput64: "
              "%zu callers x %zu calls\n",
              server.url().c_str(), n.latency_calls, counts::callers, n.per_caller);
  const figures bare = bare_nats(server.url(), n);
  print("nats.c-bare", bare);
  const figures evloop = evloop_nats(server.url(), n);
  print("nats.c-evloop", evloop);
  const figures threads = tenorite_remote(server.url(), n, false);
  print("tenorite-remote-nats-threads", threads);
  const figures remote = tenorite_remote(server.url(), n, true);
  print("tenorite-remote", remote);
  const figures local = tenorite_local(n);
  print("tenorite-local", local);
  std::printf("ratio remote/bare latency=%.2f (target <= 1.10) throughput64=%.2f "
              "(target >= 0.90)\n",
              remote.latency_us / bare.latency_us, remote.throughput / bare.throughput);
  return 0;
}
