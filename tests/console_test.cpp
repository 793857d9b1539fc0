// SPDX-License-Identifier: BSL-1.0
// The console over real HTTP: every route, the live events, its limits, and stopping it in
// every order with connections open.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/json/src.hpp>  // Boost.JSON compiled into this test (it checks the JSON)
#include <memory>
#include <optional>
#include <string>
#include <tenorite/console.hpp>
#include <thread>
#include <vector>

#include "prometheus_check.hpp"
#include "test_support.hpp"

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
namespace json = boost::json;

tenorite::runtime& rt() {
  static tenorite::runtime r(2);
  return r;
}

// The console on an io_context of the test's own, run on a thread.
struct console_fixture {
  tenorite::service_registry reg;
  asio::io_context ioc;
  tenorite::console::server console;
  std::thread runner;

  explicit console_fixture(std::chrono::milliseconds interval = std::chrono::milliseconds(1000)) {
    tenorite::console::options o;
    o.registry = &reg;
    o.interval = interval;
    o.max_connections = 3;
    console = tenorite::console::serve(ioc.get_executor(), 0, o);
    runner = std::thread([this] { ioc.run(); });
  }
  ~console_fixture() {
    console.stop();
    runner.join();  // the context runs out of work once the console closed everything
  }
};

struct reply {
  unsigned status;
  std::string content_type;
  std::string body;
  std::string allow;
  std::string content_length;
};

reply request(const tcp::endpoint& at, http::verb verb, const std::string& target) {
  asio::io_context io;
  tcp::socket s(io);
  s.connect(at);
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "localhost");
  req.keep_alive(false);
  http::write(s, req);
  boost::beast::flat_buffer buf;
  http::response_parser<http::string_body> p;
  if (verb == http::verb::head) p.skip(true);
  http::read(s, buf, p);
  auto res = p.release();
  return reply{res.result_int(), std::string(res[http::field::content_type]), res.body(),
               std::string(res[http::field::allow]),
               std::string(res[http::field::content_length])};
}

tenorite::service_options listed(tenorite::service_registry& reg, std::string name, bool measured) {
  tenorite::service_options o;
  o.registry = &reg;
  o.name = std::move(name);
  o.metrics = measured;
  return o;
}

TEST(Console, ServesThePageTheJsonAndTheMetrics) {
  console_fixture f;
  auto a = test::echo_service{}.start(rt(), listed(f.reg, "kv main", true), test::echo_config{});
  auto b = test::echo_service{}.start(rt(), listed(f.reg, "quiet", false), test::echo_config{});
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(a.caller.send_request_blocking(i));
  const tcp::endpoint at = f.console.endpoint();
  EXPECT_TRUE(at.address().is_loopback());
  EXPECT_NE(at.port(), 0);

  auto page = request(at, http::verb::get, "/");
  EXPECT_EQ(page.status, 200u);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<title>tenorite console</title>"), std::string::npos);
  // Nothing fetched from elsewhere: no script, style or image from another address.
  for (const char* attr : {"src=\"http", "href=\"http", "src='http", "href='http", "@import"})
    EXPECT_EQ(page.body.find(attr), std::string::npos) << attr;

  auto all = request(at, http::verb::get, "/api/services");
  EXPECT_EQ(all.status, 200u);
  EXPECT_EQ(all.content_type, "application/json");
  json::value v = json::parse(all.body);  // throws on invalid JSON
  const auto& services = v.at("services").as_array();
  ASSERT_EQ(services.size(), 2u);
  EXPECT_EQ(services[0].at("name").as_string(), "kv main");
  EXPECT_EQ(services[0].at("metrics").at("calls").as_int64(), 5);
  EXPECT_EQ(services[0].at("metrics").at("latency").at("count").as_int64(), 5);
  EXPECT_EQ(services[0].at("status").as_string(), "running");
  EXPECT_TRUE(services[1].at("metrics").is_null());
  EXPECT_EQ(services[1].at("queue_capacity").as_int64(), 32);

  auto one = request(at, http::verb::get, "/api/services/kv%20main");
  EXPECT_EQ(one.status, 200u);
  EXPECT_EQ(json::parse(one.body).at("name").as_string(), "kv main");
  EXPECT_EQ(request(at, http::verb::get, "/api/services/nobody").status, 404u);
  EXPECT_EQ(request(at, http::verb::get, "/api/services/bad%zzescape").status, 404u);

  auto metrics = request(at, http::verb::get, "/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_EQ(metrics.content_type, tenorite::prometheus_content_type);
  auto parsed = test::prometheus::parse(metrics.body);
  for (const auto& e : parsed.errors) ADD_FAILURE() << e;
  EXPECT_EQ(parsed.value("tenorite_calls_total", {{"service", "kv main"}}), 5.0);

  auto head = request(at, http::verb::head, "/");
  EXPECT_EQ(head.status, 200u);
  EXPECT_EQ(head.content_length, std::to_string(page.body.size()));
  EXPECT_TRUE(head.body.empty());

  auto post = request(at, http::verb::post, "/api/services");
  EXPECT_EQ(post.status, 405u);
  EXPECT_EQ(post.allow, "GET, HEAD");
  EXPECT_EQ(request(at, http::verb::get, "/nowhere").status, 404u);
}

// Reads one server-sent event's data from `s`.
json::value next_event(tcp::socket& s, std::string& buf) {
  for (;;) {
    const std::size_t end = buf.find("\n\n");
    if (end != std::string::npos) {
      std::string block = buf.substr(0, end);
      buf.erase(0, end + 2);
      const std::size_t at = block.find("data: ");
      if (at == std::string::npos) continue;  // retry: and other fields
      return json::parse(block.substr(at + 6));
    }
    char chunk[4096];
    const std::size_t n = s.read_some(asio::buffer(chunk));
    buf.append(chunk, n);
  }
}

TEST(Console, EventsArriveAtEveryIntervalWithTheCurrentFigures) {
  console_fixture f(std::chrono::milliseconds(20));
  auto a = test::echo_service{}.start(rt(), listed(f.reg, "live", true), test::echo_config{});
  asio::io_context io;
  tcp::socket s(io);
  s.connect(f.console.endpoint());
  const std::string get = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(s, asio::buffer(get));
  std::string buf;
  // The headers first.
  while (buf.find("\r\n\r\n") == std::string::npos) {
    char chunk[1024];
    buf.append(chunk, s.read_some(asio::buffer(chunk)));
  }
  EXPECT_NE(buf.find("HTTP/1.1 200 OK"), std::string::npos);
  EXPECT_NE(buf.find("Content-Type: text/event-stream"), std::string::npos);
  buf.erase(0, buf.find("\r\n\r\n") + 4);
  json::value first = next_event(s, buf);
  const auto calls0 = first.at("services").at(0).at("metrics").at("calls").as_int64();
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(a.caller.send_request_blocking(i));
  // Events keep coming; one sampled after the calls shows them.
  for (;;) {
    json::value e = next_event(s, buf);
    const auto& svc = e.at("services").at(0);
    if (svc.at("metrics").at("calls").as_int64() == calls0 + 7) {
      EXPECT_EQ(svc.at("name").as_string(), "live");
      EXPECT_FALSE(svc.at("history").at("t").as_array().empty());
      break;
    }
  }
}

// The registry may go before the console stops: the console keeps reading its (empty) list.
TEST(Console, ARegistryDestroyedBeforeTheConsoleLeavesItServingAnEmptyList) {
  auto reg = std::make_unique<tenorite::service_registry>();
  asio::io_context ioc;
  tenorite::console::options o;
  o.registry = reg.get();
  o.interval = std::chrono::milliseconds(5);
  auto console = tenorite::console::serve(ioc.get_executor(), 0, o);
  std::thread runner([&] { ioc.run(); });
  {
    auto a = test::echo_service{}.start(rt(), listed(*reg, "short-lived", false),
                                        test::echo_config{});
    auto v = json::parse(request(console.endpoint(), http::verb::get, "/api/services").body);
    EXPECT_EQ(v.at("services").as_array().size(), 1u);
    EXPECT_TRUE(a.caller.send_request_blocking(1));
  }
  reg.reset();  // the service may still be ending; its entry outlives the registry too
  auto v = json::parse(request(console.endpoint(), http::verb::get, "/api/services").body);
  EXPECT_LE(v.at("services").as_array().size(), 1u);
  EXPECT_EQ(request(console.endpoint(), http::verb::get, "/metrics").status, 200u);
  console.stop();
  EXPECT_FALSE(console);
  runner.join();
}

TEST(Console, RefusesAnAddressOtherThanLoopbackUnlessAllowed) {
  asio::io_context ioc;
  const tcp::endpoint any(asio::ip::address_v4::any(), 0);
  EXPECT_THROW(tenorite::console::serve(ioc.get_executor(), any), std::invalid_argument);
  tenorite::console::options o;
  o.interval = std::chrono::milliseconds(0);
  EXPECT_THROW(tenorite::console::serve(ioc.get_executor(), 0, o), std::invalid_argument);
  o.interval = std::chrono::milliseconds(1000);
  o.allow_remote = true;
  auto c = tenorite::console::serve(ioc.get_executor(), any, o);  // warns on stderr
  EXPECT_TRUE(c);
  // The port is taken now: a second console there fails to bind, with an exception.
  tenorite::console::options again;
  EXPECT_THROW(tenorite::console::serve(ioc.get_executor(),
                                        tcp::endpoint(asio::ip::address_v4::loopback(),
                                                      c.endpoint().port()),
                                        again),
               boost::system::system_error);
}

TEST(Console, OpenConnectionsBeyondTheLimitAreClosedAndAnOversizedRequestToo) {
  console_fixture f;  // max_connections = 3
  asio::io_context io;
  std::vector<std::unique_ptr<tcp::socket>> open;
  for (int i = 0; i < 3; ++i) {
    auto s = std::make_unique<tcp::socket>(io);
    s->connect(f.console.endpoint());
    // A request answered on each: the console has taken the connection.
    http::request<http::string_body> req{http::verb::get, "/api/services", 11};
    http::write(*s, req);
    boost::beast::flat_buffer b;
    http::response<http::string_body> res;
    http::read(*s, b, res);
    EXPECT_EQ(res.result_int(), 200u);
    open.push_back(std::move(s));
  }
  tcp::socket extra(io);
  extra.connect(f.console.endpoint());
  char c;
  boost::system::error_code ec;
  extra.read_some(asio::buffer(&c, 1), ec);
  EXPECT_EQ(ec, asio::error::eof) << "a fourth connection is closed";

}

TEST(Console, AnOversizedRequestIsClosedUnanswered) {
  console_fixture f;
  asio::io_context io;
  tcp::socket t(io);
  t.connect(f.console.endpoint());
  const std::string huge =
      "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  boost::system::error_code ec;
  asio::write(t, asio::buffer(huge), ec);
  boost::beast::flat_buffer b;
  http::response<http::string_body> res;
  http::read(t, b, res, ec);
  EXPECT_TRUE(ec) << "an 8 KiB header limit: answered " << res.result_int();
  // The console goes on serving others.
  EXPECT_EQ(request(f.console.endpoint(), http::verb::get, "/api/services").status, 200u);
}

TEST(Console, StopFromAnotherThreadClosesOpenStreamsAndTheContextRunsOut) {
  auto f = std::make_unique<console_fixture>(std::chrono::milliseconds(10));
  asio::io_context io;
  tcp::socket events(io), idle(io);
  events.connect(f->console.endpoint());
  const std::string get = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(events, asio::buffer(get));
  idle.connect(f->console.endpoint());
  std::thread stopper([&] { f->console.stop(); });
  stopper.join();
  // Both are closed by the console: reading ends (after any events sent before the stop).
  boost::system::error_code ec;
  char buf[4096];
  while (!ec) events.read_some(asio::buffer(buf), ec);
  ec = {};
  while (!ec) idle.read_some(asio::buffer(buf), ec);
  // Joins the context's thread: it ran out of work (a console still holding it would hang
  // here, and the test time out).
  f.reset();
}

// Out of file descriptors: the failed accept is counted and the listener waits
// options::accept_retry before it accepts again, rather than spinning while the cause lasts;
// once descriptors are free the connection that waited is served.
TEST(Console, AFailedAcceptWaitsBeforeItRetriesAndThenServes) {
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TENORITE_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(TENORITE_TEST_ASAN)
  // The asan preset also has UndefinedBehaviorSanitizer, whose vptr check tests memory by
  // writing it to a pipe: with no descriptor left it reports every object as invalid. The
  // default and tsan presets run this test.
  GTEST_SKIP() << "the sanitizer runtime needs file descriptors of its own";
#endif
  tenorite::service_registry reg;
  asio::io_context ioc;
  tenorite::console::options o;
  o.registry = &reg;
  o.accept_retry = std::chrono::seconds(1);
  auto console = tenorite::console::serve(ioc.get_executor(), 0, o);
  EXPECT_EQ(console.accept_failures(), 0u);
  asio::io_context client_io;
  tcp::socket client(client_io);
  client.connect(console.endpoint());  // waits in the listener's backlog

  // Take every free descriptor (under a lowered limit, so that it is quick).
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit low = old;
  if (low.rlim_cur > 512) low.rlim_cur = 512;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> taken;
  for (int fd; (fd = ::dup(client.native_handle())) >= 0;) taken.push_back(fd);
  ASSERT_EQ(errno, EMFILE);

  while (console.accept_failures() == 0) ioc.run_one();
  // Many more turns of the context, each of which runs its reactor: an accept retried at
  // once would fail again in every one of them.
  for (int i = 0; i < 200; ++i) {
    asio::post(ioc, [] {});
    ioc.run_one();
  }
  EXPECT_EQ(console.accept_failures(), 1u);

  for (int fd : taken) ::close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  std::thread runner([&] { ioc.run(); });
  http::request<http::string_body> req{http::verb::get, "/api/services", 11};
  req.set(http::field::host, "localhost");
  req.keep_alive(false);
  http::write(client, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(client, buf, res);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(json::parse(res.body()).as_object().at("services").as_array().size(), 0u);
  EXPECT_EQ(console.accept_failures(), 1u);
  console.stop();
  runner.join();
}

TEST(Console, AZeroAcceptRetryIsRefused) {
  asio::io_context ioc;
  tenorite::console::options o;
  o.accept_retry = std::chrono::milliseconds(0);
  try {
    (void)tenorite::console::serve(ioc.get_executor(), 0, o);
    ADD_FAILURE() << "a zero accept_retry was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("accept_retry must be positive"), std::string::npos);
  }
}

TEST(Console, TheContextMayGoBeforeTheServerAndTheServerBeforeTheContext) {
  std::optional<tenorite::console::server> kept;
  {
    asio::io_context ioc;
    kept = tenorite::console::serve(ioc.get_executor(), 0);
    EXPECT_TRUE(*kept);
    ioc.run_for(std::chrono::milliseconds(1));  // whatever ran, the context goes next
  }
  kept->stop();  // after its context: nothing left to close, nothing touched
  kept.reset();
  {
    asio::io_context ioc;
    { auto c = tenorite::console::serve(ioc.get_executor(), 0); }  // stopped before it ran
    ioc.run();  // the console's handlers see the stop and end: run() returns
    EXPECT_TRUE(ioc.stopped());
  }
}

}  // namespace
