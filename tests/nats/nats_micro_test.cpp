// SPDX-License-Identifier: BSL-1.0
// A tenorite service as a NATS service (ADR-32) against a real nats-server: discovery on every
// $SRV subject form, the figures of STATS, the error headers, groups, drain, bad names, and a
// remote caller reading errors from another client's service.
#include <boost/asio/use_future.hpp>
#include <future>
#include <optional>
#include <set>
#include <tenorite/nats/json_codec.hpp>
#include <tenorite/nats/remote_caller.hpp>
#include <tenorite/nats/server.hpp>

#include "kv_remote/kv_json.hpp"
#include "nats_test_support.hpp"
#include "probe_service.hpp"

namespace {

namespace asio = boost::asio;
namespace tn = tenorite::nats;
using remote = tn::remote_caller<probe::request, probe::response, probe::error>;
using tenorite::error_kind;
using namespace std::chrono_literals;

enum class serving { nats_threads, on_executor };

struct reply_guard {
  natsMsg* msg = nullptr;
  ~reply_guard() {
    if (msg) natsMsg_Destroy(msg);
  }
  std::string data() const {
    return std::string(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
  }
  std::string header(const char* key) const {
    const char* v = nullptr;
    return natsMsgHeader_Get(msg, key, &v) == NATS_OK && v ? std::string(v) : std::string("<none>");
  }
};

// A nats-server, a local probe service, and a connection that serves it.
struct fixture {
  nats_test::server nats;
  tenorite::runtime rt{2};
  tenorite::join_handle<void> task;
  probe::caller local;
  tn::connection serve_conn, call_conn;

  explicit fixture(serving mode) {
    auto [t, c] = probe::service{}.start_task(rt.executor(), 16, probe::config{"local"});
    task = std::move(t);
    local = std::move(c);
    tn::connection_options o{.servers = {nats.url()}};
    if (mode == serving::on_executor) o.executor = rt.executor();
    serve_conn = tn::connection::connect(o);
    call_conn = tn::connection::connect({.servers = {nats.url()}});
  }
  ~fixture() { local = probe::caller(); }

  /// A request/reply with raw nats.c, as another client would send it.
  natsStatus request(reply_guard& r, const std::string& subject, const std::string& payload) {
    return natsConnection_Request(&r.msg, call_conn.native(), subject.c_str(), payload.data(),
                                  static_cast<int>(payload.size()), 5000);
  }
  /// The binary wire's request bytes of `req`.
  static std::string binary(const probe::request& req) {
    std::string out;
    EXPECT_TRUE(tn::detail::encode_request(tn::binary_codec{}, req, out));
    return out;
  }
};

class NatsMicro : public ::testing::TestWithParam<serving> {};

INSTANTIATE_TEST_SUITE_P(Serving, NatsMicro,
                         ::testing::Values(serving::nats_threads, serving::on_executor),
                         [](const ::testing::TestParamInfo<serving>& i) {
                           return i.param == serving::nats_threads ? "NatsThreads" : "OnExecutor";
                         });

tn::service_config probe_config() {
  return {.name = "probe",
          .version = "1.2.3",
          .description = "answers what it is asked",
          .metadata = {{"team", "tenorite"}}};
}

TEST_P(NatsMicro, DiscoveryAnswersPingInfoAndStatsOnEverySubjectForm) {
  fixture f(GetParam());
  auto svc = tn::add_service(f.serve_conn, probe_config());
  svc.add_endpoint("echo", f.local, {.metadata = {{"format", "binary"}}});
  ASSERT_EQ(svc.id().size(), 22u);  // a NUID, as the other clients make them
  const std::string suffixes[] = {"", ".probe", ".probe." + svc.id()};
  for (const auto& s : suffixes) {
    reply_guard ping, info, stats;
    ASSERT_EQ(f.request(ping, "$SRV.PING" + s, ""), NATS_OK) << s;
    EXPECT_EQ(ping.data(), svc.ping_json());
    ASSERT_EQ(f.request(info, "$SRV.INFO" + s, ""), NATS_OK) << s;
    EXPECT_EQ(info.data(), svc.info_json());
    ASSERT_EQ(f.request(stats, "$SRV.STATS" + s, ""), NATS_OK) << s;
    EXPECT_NE(stats.data().find(R"("type":"io.nats.micro.v1.stats_response")"), std::string::npos);
  }
  const std::string expected_info =
      R"({"type":"io.nats.micro.v1.info_response","name":"probe","id":")" + svc.id() +
      R"(","version":"1.2.3","metadata":{"team":"tenorite"},)"
      R"("description":"answers what it is asked","endpoints":[{"name":"echo",)"
      R"("subject":"echo","queue_group":"q","metadata":{"format":"binary"}}]})";
  EXPECT_EQ(svc.info_json(), expected_info);
  // Another service's name or id: nobody answers.
  reply_guard none;
  EXPECT_EQ(f.request(none, "$SRV.PING.other", ""), NATS_NO_RESPONDERS);
  reply_guard wrong_id;
  EXPECT_EQ(f.request(wrong_id, "$SRV.PING.probe.NOTTHEID", ""), NATS_NO_RESPONDERS);
}

TEST_P(NatsMicro, EveryInstanceAnswersADiscoveryRequest) {
  fixture f(GetParam());
  auto a = tn::add_service(f.serve_conn, probe_config());
  auto b = tn::add_service(f.serve_conn, probe_config());
  a.add_endpoint("echo", f.local);
  b.add_endpoint("echo", f.local);
  ASSERT_NE(a.id(), b.id());
  natsSubscription* inbox = nullptr;
  ASSERT_EQ(natsConnection_SubscribeSync(&inbox, f.call_conn.native(), "ping.replies"), NATS_OK);
  ASSERT_EQ(natsConnection_PublishRequestString(f.call_conn.native(), "$SRV.PING.probe",
                                                "ping.replies", ""),
            NATS_OK);
  std::set<std::string> seen;
  for (int i = 0; i < 2; ++i) {
    reply_guard r;
    ASSERT_EQ(natsSubscription_NextMsg(&r.msg, inbox, 5000), NATS_OK);
    seen.insert(r.data());
  }
  EXPECT_EQ(seen, (std::set<std::string>{a.ping_json(), b.ping_json()}));
  natsSubscription_Destroy(inbox);
  // Requests on the endpoint are shared through the queue group "q": each goes to one.
  remote caller(f.call_conn, "echo", f.rt.executor());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(caller.send_request_blocking(probe::echo{"x"}));
  EXPECT_EQ(a.stats().endpoint("echo").num_requests + b.stats().endpoint("echo").num_requests,
            20u);
}

TEST_P(NatsMicro, StatsCountRequestsErrorsAndTheLastError) {
  fixture f(GetParam());
  auto svc = tn::add_service(f.serve_conn, probe_config());
  svc.add_endpoint("echo", f.local);
  remote caller(f.call_conn, "echo", f.rt.executor());
  ASSERT_TRUE(caller.send_request_blocking(probe::echo{"a"}));
  ASSERT_TRUE(caller.send_request_blocking(probe::echo{"b"}));
  auto failed = caller.send_request_blocking(probe::fail{"nope"});
  ASSERT_FALSE(failed);
  ASSERT_EQ(failed.error().kind(), error_kind::service_error);
  EXPECT_EQ(failed.error().service_error(), "nope");
  reply_guard bad;
  ASSERT_EQ(f.request(bad, "echo", "not the binary wire"), NATS_OK);
  const auto s = svc.stats().endpoint("echo");
  EXPECT_EQ(s.num_requests, 4u);
  EXPECT_EQ(s.num_errors, 2u);
  EXPECT_EQ(s.last_error.rfind("400:undecodable request: ", 0), 0u) << s.last_error;
  EXPECT_EQ(s.received, 4u);
  EXPECT_EQ(s.answered, 3u);
  EXPECT_EQ(s.bad_requests, 1u);
  EXPECT_GT(s.processing_time.count(), 0);
  EXPECT_EQ(s.average_processing_time, s.processing_time / 4);
  // The same figures are what STATS tells everyone.
  reply_guard stats;
  ASSERT_EQ(f.request(stats, "$SRV.STATS.probe", ""), NATS_OK);
  EXPECT_NE(stats.data().find(R"("num_requests":4,"num_errors":2,)"), std::string::npos)
      << stats.data();
  const auto started = svc.stats().started;
  EXPECT_LE(started, std::chrono::system_clock::now());
  EXPECT_NE(stats.data().find(R"("started":")" + tn::detail::micro::rfc3339(started)),
            std::string::npos);
}

TEST_P(NatsMicro, ErrorRepliesCarryTheServiceErrorHeaders) {
  fixture f(GetParam());
  auto svc = tn::add_service(f.serve_conn, probe_config());
  svc.add_endpoint("echo", f.local, {.limits = {.max_in_flight = 1}});
  reply_guard service_error;  // probe::error is a string: it is the sentence, code 500
  ASSERT_EQ(f.request(service_error, "echo", fixture::binary(probe::fail{"line1\r\nline2"})),
            NATS_OK);
  EXPECT_EQ(service_error.header("Nats-Service-Error-Code"), "500");
  EXPECT_EQ(service_error.header("Nats-Service-Error"), "line1  line2");  // one header line
  EXPECT_EQ(service_error.header("Tenorite-Error-Kind"), "<none>");
  reply_guard undecodable;
  ASSERT_EQ(f.request(undecodable, "echo", "{\"echo\":{}}"), NATS_OK);
  EXPECT_EQ(undecodable.header("Nats-Service-Error-Code"), "400");
  EXPECT_NE(undecodable.header("Nats-Service-Error").find("looks like JSON"), std::string::npos)
      << undecodable.header("Nats-Service-Error");
  EXPECT_EQ(undecodable.header("Tenorite-Error-Kind"), "bad_request");
  // One call held: the next is refused with 503 and the kind, for a tenorite caller.
  remote caller(f.call_conn, "echo", f.rt.executor());
  auto held = caller.async_send_request(probe::hold{}, asio::use_future);
  reply_guard busy;
  ASSERT_EQ(f.request(busy, "echo", fixture::binary(probe::echo{"busy?"})), NATS_OK);
  EXPECT_EQ(busy.header("Nats-Service-Error-Code"), "503");
  EXPECT_EQ(busy.header("Tenorite-Error-Kind"), "queue_full");
  ASSERT_TRUE(f.local.send_request_blocking(probe::release{}));
  ASSERT_EQ(held.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(held.get());
  // A success has no error header.
  reply_guard ok;
  ASSERT_EQ(f.request(ok, "echo", fixture::binary(probe::echo{"fine"})), NATS_OK);
  EXPECT_EQ(ok.header("Nats-Service-Error-Code"), "<none>");
}

TEST_P(NatsMicro, GroupsPrefixSubjectsAndPassTheirQueueGroupOn) {
  fixture f(GetParam());
  auto svc = tn::add_service(f.serve_conn, probe_config());
  auto kv = svc.add_group("kv", "workers");
  kv.add_endpoint("get", f.local);
  kv.add_group("admin").add_endpoint("who", f.local, {.queue_group = ""});
  svc.add_endpoint("echo", f.local, {.subject = "probe.echo"});
  const auto s = svc.stats();
  ASSERT_EQ(s.endpoints.size(), 3u);
  EXPECT_EQ(s.endpoint("get").subject, "kv.get");
  EXPECT_EQ(s.endpoint("get").queue_group, "workers");
  EXPECT_EQ(s.endpoint("who").subject, "kv.admin.who");
  EXPECT_EQ(s.endpoint("who").queue_group, "");
  EXPECT_EQ(s.endpoint("echo").subject, "probe.echo");
  EXPECT_EQ(s.endpoint("echo").queue_group, "q");
  EXPECT_THROW((void)s.endpoint("nope"), std::out_of_range);
  for (const char* subject : {"kv.get", "kv.admin.who", "probe.echo"}) {
    remote caller(f.call_conn, subject, f.rt.executor());
    auto r = caller.send_request_blocking(probe::who{});
    ASSERT_TRUE(r) << subject << ": " << r.error().message();
    EXPECT_EQ(*r, "local");
  }
}

TEST_P(NatsMicro, DrainAnswersWhatWasReceivedThenLeavesDiscovery) {
  fixture f(GetParam());
  auto svc = tn::add_service(f.serve_conn, probe_config());
  svc.add_endpoint("echo", f.local);
  remote caller(f.call_conn, "echo", f.rt.executor());
  auto held = caller.async_send_request(probe::hold{}, asio::use_future);
  ASSERT_TRUE(caller.send_request_blocking(probe::echo{"ordered after the hold"}));
  std::thread releaser([&] {
    // The drain waits for the held call; the release goes to the local service directly.
    (void)f.local.send_request_blocking(probe::release{});
  });
  EXPECT_TRUE(svc.drain(30s));
  releaser.join();
  ASSERT_EQ(held.wait_for(30s), std::future_status::ready);
  auto r = held.get();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, "released");
  reply_guard gone;
  EXPECT_EQ(f.request(gone, "$SRV.PING.probe", ""), NATS_NO_RESPONDERS);
  // The last figures stay readable; adding to a drained service is refused.
  EXPECT_EQ(svc.stats().endpoint("echo").num_requests, 2u);
  EXPECT_EQ(svc.name(), "probe");
  EXPECT_THROW(svc.add_endpoint("more", f.local), std::logic_error);
}

TEST(NatsMicroConfig, BadNamesVersionsAndSubjectsAreRefusedSayingWhatToChange) {
  nats_test::server nats;
  tenorite::runtime rt(1);
  auto [task, local] = probe::service{}.start_task(rt.executor(), 4, probe::config{"x"});
  auto conn = tn::connection::connect({.servers = {nats.url()}});
  auto message_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "no std::invalid_argument";
  };
  EXPECT_NE(message_of([&] { tn::add_service(conn, {.name = "my service"}); })
                .find("contains ' '"),
            std::string::npos);
  EXPECT_NE(message_of([&] { tn::add_service(conn, {.name = "s", .version = "1"}); })
                .find("semantic version"),
            std::string::npos);
  EXPECT_NE(message_of([&] { tn::add_service(conn, {.name = "s", .queue_group = "a.b"}); })
                .find("queue group"),
            std::string::npos);
  auto svc = tn::add_service(conn, {.name = "s"});
  EXPECT_NE(message_of([&] { svc.add_endpoint("kv.get", local); }).find("endpoint name"),
            std::string::npos);
  EXPECT_NE(message_of([&] { svc.add_endpoint("get", local, {.subject = "kv..get"}); })
                .find("empty token"),
            std::string::npos);
  EXPECT_NE(message_of([&] { svc.add_endpoint("get", probe::caller()); }).find("empty"),
            std::string::npos);
  EXPECT_NE(message_of([&] { svc.add_endpoint("get", local, {.limits = {.max_in_flight = 0}}); })
                .find("max_in_flight"),
            std::string::npos);
  EXPECT_NE(message_of([&] { (void)svc.add_group("a b"); }).find("space"), std::string::npos);
  EXPECT_TRUE(svc.stats().endpoints.empty());  // nothing half-added
  auto group = svc.add_group("g");
  svc.stop();
  EXPECT_THROW(group.add_endpoint("late", local), std::logic_error);
  tn::micro_service moved = std::move(svc);
  EXPECT_THROW((void)svc.stats(), std::logic_error);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(moved.name(), "s");
}

// A service written with another client: its errors are only headers (and maybe a body).
TEST(NatsMicroForeign, ErrorsFromTheHeadersMapOntoTheCallersErrorKinds) {
  nats_test::server nats;
  tenorite::runtime rt(1);
  auto serve_conn = tn::connection::connect({.servers = {nats.url()}});
  auto call_conn = tn::connection::connect({.servers = {nats.url()}});
  // Answers by the request's first text byte after the version: 'd' "down" 503, no body;
  // 'q' queue_full as tenorite says it; anything else: a reply in a newer wire version.
  auto on_msg = [](natsConnection* nc, natsSubscription*, natsMsg* m, void*) {
    const std::string in(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m)));
    natsMsg* out = nullptr;
    const char newer[] = "\x02\x00";
    const bool headers = in.find('d') != std::string::npos || in.find('q') != std::string::npos;
    natsMsg_Create(&out, natsMsg_GetReply(m), nullptr, headers ? "" : newer, headers ? 0 : 2);
    if (in.find('d') != std::string::npos) {
      natsMsgHeader_Set(out, "Nats-Service-Error-Code", "503");
      natsMsgHeader_Set(out, "Nats-Service-Error", "down for maintenance");
    } else if (in.find('q') != std::string::npos) {
      natsMsgHeader_Set(out, "Nats-Service-Error-Code", "503");
      natsMsgHeader_Set(out, "Nats-Service-Error", "busy");
      natsMsgHeader_Set(out, "Tenorite-Error-Kind", "queue_full");
    }
    natsConnection_PublishMsg(nc, out);
    natsMsg_Destroy(out);
    natsMsg_Destroy(m);
  };
  natsSubscription* sub = nullptr;
  ASSERT_EQ(natsConnection_Subscribe(&sub, serve_conn.native(), "foreign", on_msg, nullptr),
            NATS_OK);
  ASSERT_EQ(natsConnection_Flush(serve_conn.native()), NATS_OK);
  remote caller(call_conn, "foreign", rt.executor());
  auto down = caller.send_request_blocking(probe::echo{"d"});
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().kind(), error_kind::fetch_failure);
  EXPECT_FALSE(down.error().request());
  EXPECT_EQ(down.error().reason(), "NATS service error 503: down for maintenance");
  auto busy = caller.send_request_blocking(probe::echo{"q"});
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().kind(), error_kind::queue_full);
  ASSERT_TRUE(busy.error().request());  // never delivered: it comes back
  EXPECT_EQ(busy.error().reason(), "remote: busy");
  auto newer = caller.send_request_blocking(probe::echo{"x"});
  ASSERT_FALSE(newer);
  EXPECT_EQ(newer.error().kind(), error_kind::fetch_failure);
  EXPECT_NE(newer.error().reason().find("newer tenorite"), std::string::npos)
      << newer.error().reason();
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
}

// A JSON endpoint speaks what any NATS client speaks: plain JSON, errors in the headers.
TEST_P(NatsMicro, AJsonEndpointAnswersPlainJsonAndErrorsInTheHeaders) {
  fixture f(GetParam());
  auto [kv_task, kv_caller] = kv::service{}.start_task(f.rt.executor(), 8, kv::config{});
  auto svc = tn::add_service(f.serve_conn, {.name = "kv", .version = "1.0.0"});
  svc.add_endpoint("kv", kv_caller, {}, tn::json_codec{});
  struct exchange {
    const char* request;
    const char* reply;
    const char* code;
    const char* description;
  };
  const exchange script[] = {
      {R"({"set":{"key":"name","value":"tenorite"}})", R"({"ok":{}})", "<none>", "<none>"},
      {R"({"get":{"key":"name"}})", R"({"found":{"value":"tenorite"}})", "<none>", "<none>"},
      {R"({"get":{"key":"missing"}})", R"({"found":{"value":null}})", "<none>", "<none>"},
      {R"({"set":{"key":"a b","value":"x"}})", R"({"invalid_key":{"key":"a b"}})", "400",
       R"(invalid key "a b")"},
      {R"({"del":{"key":"missing"}})", R"({"unexpected":{"what":"no such key: missing"}})",
       "404", "no such key: missing"},
  };
  for (const auto& x : script) {
    reply_guard r;
    ASSERT_EQ(f.request(r, "kv", x.request), NATS_OK) << x.request;
    EXPECT_EQ(r.data(), x.reply) << x.request;
    EXPECT_EQ(r.header("Nats-Service-Error-Code"), x.code) << x.request;
    EXPECT_EQ(r.header("Nats-Service-Error"), x.description) << x.request;
  }
  reply_guard bad;
  ASSERT_EQ(f.request(bad, "kv", "not json"), NATS_OK);
  EXPECT_EQ(bad.data(), "");
  EXPECT_EQ(bad.header("Nats-Service-Error-Code"), "400");
  EXPECT_EQ(bad.header("Tenorite-Error-Kind"), "bad_request");
  EXPECT_EQ(bad.header("Nats-Service-Error").rfind("undecodable request: json_codec: ", 0), 0u)
      << bad.header("Nats-Service-Error");
  // tenorite's caller in JSON reads the same replies as kv values and errors.
  tn::remote_caller<kv::request, kv::response, kv::error, tn::json_codec> caller(
      f.call_conn, "kv", f.rt.executor());
  auto invalid = caller.send_request_blocking(kv::set{"a b", "x"});
  ASSERT_FALSE(invalid);
  ASSERT_EQ(invalid.error().kind(), error_kind::service_error);
  EXPECT_EQ(std::get<kv::invalid_key>(invalid.error().service_error()).key, "a b");
  EXPECT_EQ(invalid.error().reason(), R"(NATS service error 400: invalid key "a b")");
  auto found = caller.send_request_blocking(kv::get{"name"});
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_EQ(std::get<kv::found>(*found).value, "tenorite");
  svc.stop();
  kv_caller = kv::caller();
  EXPECT_TRUE(kv_task.wait());
}

// Another client's JSON service: an error may come with the error type, another body or none.
TEST(NatsMicroForeign, AJsonCallerMapsHeaderErrorsWithAndWithoutABody) {
  nats_test::server nats;
  tenorite::runtime rt(1);
  auto serve_conn = tn::connection::connect({.servers = {nats.url()}});
  auto call_conn = tn::connection::connect({.servers = {nats.url()}});
  // By the key asked for: "boom" 500 without a body, "odd" 500 with a body that is no
  // kv::error, "gone" 404 with a kv::error; anything else is found.
  auto on_msg = [](natsConnection* nc, natsSubscription*, natsMsg* m, void*) {
    const std::string in(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m)));
    std::string body = R"({"found":{"value":"v"}})";
    const char* code = nullptr;
    const char* text = nullptr;
    if (in.find("boom") != std::string::npos) {
      body.clear(), code = "500", text = "boom";
    } else if (in.find("odd") != std::string::npos) {
      body = R"({"reason":"odd"})", code = "500", text = "odd";
    } else if (in.find("gone") != std::string::npos) {
      body = R"({"unexpected":{"what":"gone"}})", code = "404", text = "gone";
    }
    natsMsg* out = nullptr;
    natsMsg_Create(&out, natsMsg_GetReply(m), nullptr, body.data(),
                   static_cast<int>(body.size()));
    if (code) {
      natsMsgHeader_Set(out, "Nats-Service-Error-Code", code);
      natsMsgHeader_Set(out, "Nats-Service-Error", text);
    }
    natsConnection_PublishMsg(nc, out);
    natsMsg_Destroy(out);
    natsMsg_Destroy(m);
  };
  natsSubscription* sub = nullptr;
  ASSERT_EQ(natsConnection_Subscribe(&sub, serve_conn.native(), "foreign.kv", on_msg, nullptr),
            NATS_OK);
  ASSERT_EQ(natsConnection_Flush(serve_conn.native()), NATS_OK);
  tn::remote_caller<kv::request, kv::response, kv::error, tn::json_codec> caller(
      call_conn, "foreign.kv", rt.executor());
  auto boom = caller.send_request_blocking(kv::get{"boom"});
  ASSERT_FALSE(boom);
  EXPECT_EQ(boom.error().kind(), error_kind::fetch_failure);
  EXPECT_EQ(boom.error().reason(), "NATS service error 500: boom");
  auto odd = caller.send_request_blocking(kv::get{"odd"});
  ASSERT_FALSE(odd);
  EXPECT_EQ(odd.error().kind(), error_kind::fetch_failure);
  EXPECT_EQ(odd.error().reason().rfind("NATS service error 500: odd (its payload is not the "
                                       "service's error type: json_codec: ",
                                       0),
            0u)
      << odd.error().reason();
  auto gone = caller.send_request_blocking(kv::get{"gone"});
  ASSERT_FALSE(gone);
  ASSERT_EQ(gone.error().kind(), error_kind::service_error);
  EXPECT_EQ(std::get<kv::unexpected>(gone.error().service_error()).what, "gone");
  EXPECT_EQ(gone.error().reason(), "NATS service error 404: gone");
  auto ok = caller.send_request_blocking(kv::get{"k"});
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(std::get<kv::found>(*ok).value, "v");
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
}

}  // namespace
