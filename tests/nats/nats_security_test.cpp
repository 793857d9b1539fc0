// SPDX-License-Identifier: BSL-1.0
// Authentication and TLS are passed through to nats.c: against a nats-server that requires
// them, the right credentials (or a trusted certificate) connect and serve calls, and
// wrong or missing ones fail to connect with a nats_error naming the cause.
#include <boost/asio/use_future.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <tenorite/nats/remote_caller.hpp>
#include <tenorite/nats/server.hpp>

#include "nats_test_support.hpp"
#include "probe_service.hpp"

namespace {

namespace tn = tenorite::nats;
using remote = tn::remote_caller<probe::request, probe::response, probe::error>;
using namespace std::chrono_literals;

// Serves the probe service through one connection and calls it through another, both made
// with `opts` (servers filled in): a full round trip proves both connections are usable.
void expect_round_trip(tn::connection_options opts, const std::string& url) {
  opts.servers = {url};
  tenorite::runtime rt(1);
  auto [task, local] = probe::service{}.start_task(rt.executor(), 4, probe::config{"secure"});
  auto serve_conn = tn::connection::connect(opts);
  auto call_conn = tn::connection::connect(opts);
  auto srv = tn::serve(serve_conn, "secure.probe", "secure", local);
  remote caller(call_conn, "secure.probe", rt.executor(), {.timeout = 10s});
  auto r = caller.send_request_blocking(probe::echo{"over a checked connection"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, "over a checked connection");
}

// Connecting must fail with a nats_error; returns its message.
std::string connect_error(tn::connection_options opts, const std::string& url) {
  opts.servers = {url};
  opts.connect_timeout = 5000ms;
  try {
    (void)tn::connection::connect(opts);
  } catch (const tn::nats_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "the connection was accepted";
  return {};
}

}  // namespace

TEST(NatsSecurity, UserAndPasswordArePassedThrough) {
  nats_test::server nats(-1, {"--user", "svc", "--pass", "s3cret"});
  expect_round_trip({.user = "svc", .password = "s3cret"}, nats.url());
  EXPECT_NE(connect_error({.user = "svc", .password = "wrong"}, nats.url()).find("tenorite::nats"),
            std::string::npos);
  EXPECT_FALSE(connect_error({}, nats.url()).empty());  // no credentials at all
}

TEST(NatsSecurity, TokenIsPassedThrough) {
  nats_test::server nats(-1, {"--auth", "t0ken"});
  expect_round_trip({.token = "t0ken"}, nats.url());
  EXPECT_FALSE(connect_error({.token = "other"}, nats.url()).empty());
}

TEST(NatsSecurity, TlsWithATrustedCertificateConnectsAndAnUntrustedOneDoesNot) {
  // A self-signed certificate for 127.0.0.1, made for this test (openssl, from the setup).
  auto dir = std::filesystem::temp_directory_path() /
             ("tenorite-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  const std::string make_cert =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
      " -addext subjectAltName=IP:127.0.0.1 -keyout '" + key + "' -out '" + cert +
      "' >/dev/null 2>&1";
  ASSERT_EQ(std::system(make_cert.c_str()), 0)
      << "openssl could not make a test certificate (scripts/setup.sh --tests installs openssl)";
  {
    nats_test::server nats(-1, {"--tls", "--tlscert", cert, "--tlskey", key});
    tn::connection_options trusted{.tls = {.enabled = true, .ca_file = cert}};
    expect_round_trip(trusted, nats.url());
    // The server's certificate is not signed by anything this client trusts.
    auto untrusted = connect_error({.tls = {.enabled = true}}, nats.url());
    EXPECT_FALSE(untrusted.empty());
    // A client without TLS is refused by a server that requires it.
    EXPECT_FALSE(connect_error({}, nats.url()).empty());
  }
  std::filesystem::remove_all(dir);
}
