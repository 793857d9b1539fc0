// SPDX-License-Identifier: BSL-1.0
// Against nats.c's own NATS services implementation (nats.c >= 3.7 has one; Debian 12's 3.4.1
// does not, Debian 13's 3.10 does: there this file has tests): a tenorite caller calls a
// nats.c micro service, and tenorite's discovery answers have the shape of nats.c's.
#include <nats/nats.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <map>
#include <string>
#include <tenorite/nats/json_codec.hpp>
#include <tenorite/nats/remote_caller.hpp>
#include <tenorite/nats/server.hpp>

#include "kv_remote/kv_json.hpp"
#include "nats_test_support.hpp"

#if NATS_VERSION_NUMBER >= 0x030700  // nats.c 3.7 brought its micro API

namespace {

namespace tn = tenorite::nats;
using tenorite::error_kind;

// A kv look-alike in nats.c: "boom" is an error without a body, "gone" one with a kv::error,
// anything else is found.
microError* handle_ckv(microRequest* req) {
  const std::string in(microRequest_GetData(req),
                       static_cast<std::size_t>(microRequest_GetDataLength(req)));
  if (in.find("boom") != std::string::npos) return micro_ErrorfCode(500, "boom");
  if (in.find("gone") != std::string::npos) {
    const std::string body = R"({"unexpected":{"what":"gone"}})";
    return microRequest_RespondCustom(req, micro_ErrorfCode(404, "gone"), body.data(),
                                      body.size());
  }
  const std::string body = R"({"found":{"value":"v"}})";
  return microRequest_Respond(req, body.data(), body.size());
}

struct c_service {
  microService* svc = nullptr;
  explicit c_service(natsConnection* nc, const char* name) {
    static const char* md[] = {"team", "nats.c"};
    static const char* ep_md[] = {"format", "json"};
    microEndpointConfig ep{};
    ep.Name = "kv";
    ep.Subject = name;
    ep.Metadata = {ep_md, 1};
    ep.Handler = handle_ckv;
    microServiceConfig cfg{};
    cfg.Name = name;
    cfg.Version = "1.0.0";
    cfg.Description = "kv in nats.c";
    cfg.Metadata = {md, 1};
    cfg.Endpoint = &ep;
    if (microError* e = micro_AddService(&svc, nc, &cfg)) {
      char buf[256];
      ADD_FAILURE() << "micro_AddService: " << microError_String(e, buf, sizeof buf);
      microError_Destroy(e);
    }
  }
  ~c_service() {
    if (svc) microService_Destroy(svc);
  }
  c_service(const c_service&) = delete;
  c_service& operator=(const c_service&) = delete;
};

TEST(NatsCMicro, ATenoriteCallerCallsANatsCService) {
  nats_test::server nats;
  tenorite::runtime rt(1);
  auto serve_conn = tn::connection::connect({.servers = {nats.url()}});
  auto call_conn = tn::connection::connect({.servers = {nats.url()}});
  c_service ckv(serve_conn.native(), "ckv");
  ASSERT_NE(ckv.svc, nullptr);
  serve_conn.flush();
  tn::remote_caller<kv::request, kv::response, kv::error, tn::json_codec> caller(
      call_conn, "ckv", rt.executor());
  auto found = caller.send_request_blocking(kv::get{"k"});
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_EQ(std::get<kv::found>(*found).value, "v");
  auto gone = caller.send_request_blocking(kv::get{"gone"});
  ASSERT_FALSE(gone);
  ASSERT_EQ(gone.error().kind(), error_kind::service_error);
  EXPECT_EQ(std::get<kv::unexpected>(gone.error().service_error()).what, "gone");
  EXPECT_EQ(gone.error().reason(), "NATS service error 404: gone");
  auto boom = caller.send_request_blocking(kv::get{"boom"});
  ASSERT_FALSE(boom);
  EXPECT_EQ(boom.error().kind(), error_kind::fetch_failure);
  EXPECT_EQ(boom.error().reason(), "NATS service error 500: boom");
}

// The kind of each member, recursively for objects and the first element of arrays: what a
// client of either implementation reads.
void shape_of(const boost::json::value& v, const std::string& path,
              std::map<std::string, std::string>& out) {
  if (v.is_object()) {
    out[path] = "object";
    for (const auto& member : v.as_object())
      shape_of(member.value(), path + "." + std::string(member.key()), out);
  } else if (v.is_array()) {
    out[path] = "array";
    if (!v.as_array().empty()) shape_of(v.as_array()[0], path + "[0]", out);
  } else if (v.is_string()) {
    out[path] = "string";
  } else if (v.is_number()) {
    out[path] = "number";
  } else if (v.is_bool()) {
    out[path] = "bool";
  } else {
    out[path] = "null";
  }
}

std::map<std::string, std::string> shape(const std::string& text) {
  std::map<std::string, std::string> out;
  shape_of(boost::json::parse(text), "$", out);
  return out;
}

std::string ask(natsConnection* nc, const std::string& subject) {
  natsMsg* reply = nullptr;
  const natsStatus s = natsConnection_RequestString(&reply, nc, subject.c_str(), "", 5000);
  if (s != NATS_OK) return std::string("no reply: ") + natsStatus_GetText(s);
  std::string out(natsMsg_GetData(reply), static_cast<std::size_t>(natsMsg_GetDataLength(reply)));
  natsMsg_Destroy(reply);
  return out;
}

TEST(NatsCMicro, TenoritesDiscoveryAnswersHaveTheShapeOfNatsCs) {
  nats_test::server nats;
  tenorite::runtime rt(1);
  auto conn = tn::connection::connect({.servers = {nats.url()}});
  auto [task, local] = kv::service{}.start_task(rt.executor(), 8, kv::config{});
  c_service ckv(conn.native(), "ckv");
  ASSERT_NE(ckv.svc, nullptr);
  auto svc = tn::add_service(conn, {.name = "tkv",
                                    .version = "1.0.0",
                                    .description = "kv in tenorite",
                                    .metadata = {{"team", "tenorite"}}});
  svc.add_endpoint("kv", local, {.subject = "tkv", .metadata = {{"format", "json"}}},
                   tn::json_codec{});
  // One request each, so that the stats have figures.
  for (const char* subject : {"ckv", "tkv"}) (void)ask(conn.native(), subject);
  for (const char* verb : {"PING", "INFO", "STATS"}) {
    const std::string theirs = ask(conn.native(), std::string("$SRV.") + verb + ".ckv");
    const std::string ours = ask(conn.native(), std::string("$SRV.") + verb + ".tkv");
    SCOPED_TRACE(std::string(verb) + "\n nats.c:   " + theirs + "\n tenorite: " + ours);
    auto a = shape(theirs), b = shape(ours);
    // nats.c writes optional members (an endpoint's "data", metadata) only when set: nats.c
    // writes nothing tenorite lacks, and what both write has the same kind. One exception,
    // nats.c's own departure from ADR-32 (and from nats.go and nats.js): it writes STATS'
    // durations as Go duration strings ("96.733µs"); the ADR, and tenorite, write integer
    // nanoseconds.
    for (const auto& [path, kind] : a) {
      ASSERT_TRUE(b.count(path)) << path << " (" << kind << ") is missing";
      const bool duration = path.ends_with("processing_time");
      if (duration) {
        EXPECT_EQ(b[path], "number") << path;
      } else if (kind != "null") {
        EXPECT_EQ(b[path], kind) << path;
      }
    }
    EXPECT_EQ(boost::json::parse(theirs).at("type"), boost::json::parse(ours).at("type"));
  }
  svc.stop();
  local = kv::caller();
  EXPECT_TRUE(task.wait());
}

}  // namespace

#endif
