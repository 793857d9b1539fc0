// SPDX-License-Identifier: BSL-1.0
// The NATS services protocol without I/O (tenorite/nats/detail/micro.hpp): names, versions
// and subjects checked as the other clients check them, the control subjects, and the exact
// JSON of the ping, info and stats responses.
#include <gtest/gtest.h>

#include <chrono>
#include <tenorite/nats/detail/micro.hpp>
#include <tenorite/nats/wire.hpp>

namespace {

namespace micro = tenorite::nats::detail::micro;
using namespace std::chrono_literals;

TEST(MicroProtocol, NamesAreLettersDigitsDashAndUnderscore) {
  EXPECT_EQ(micro::name_problem("the name", "kv-service_2"), "");
  EXPECT_EQ(micro::name_problem("the name", ""), "the name is empty");
  EXPECT_EQ(micro::name_problem("the name", "kv.get"),
            "the name 'kv.get' contains '.': use letters, digits, '-' and '_'");
  EXPECT_NE(micro::name_problem("the name", "a b"), "");
  EXPECT_NE(micro::name_problem("the name", "caf\xc3\xa9"), "");
}

TEST(MicroProtocol, VersionsAreSemantic) {
  for (const char* ok : {"0.0.0", "1.0.0", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1",
                         "1.0.0-0.3.7", "1.0.0+build.5", "1.0.0-rc.1+sha.5114f85"})
    EXPECT_EQ(micro::version_problem(ok), "") << ok;
  for (const char* bad : {"", "1", "1.0", "1.0.0.0", "01.0.0", "1.02.0", "v1.0.0", "1.0.0-",
                          "1.0.0-a..b", "1.0.0+", "1.0.0+a.", "1.0.0 ", "1.0.0-al_pha"})
    EXPECT_NE(micro::version_problem(bad), "") << bad;
  EXPECT_NE(micro::version_problem("1.0").find("MAJOR.MINOR.PATCH"), std::string::npos);
}

TEST(MicroProtocol, SubjectsHaveNoEmptyTokensSpacesOrInnerFullWildcard) {
  EXPECT_EQ(micro::subject_problem("s", "kv"), "");
  EXPECT_EQ(micro::subject_problem("s", "kv.*.get"), "");
  EXPECT_EQ(micro::subject_problem("s", "kv.>"), "");
  EXPECT_EQ(micro::subject_problem("s", ""), "s is empty");
  EXPECT_EQ(micro::subject_problem("s", "kv..get"), "s 'kv..get' has an empty token");
  EXPECT_EQ(micro::subject_problem("s", "kv."), "s 'kv.' has an empty token");
  EXPECT_EQ(micro::subject_problem("s", "k v"), "s 'k v' contains a space");
  EXPECT_EQ(micro::subject_problem("s", "kv.>.get"), "s 'kv.>.get' has '>' before its last token");
}

TEST(MicroProtocol, Utf8IsValidatedStrictly) {
  EXPECT_TRUE(micro::valid_utf8("plain"));
  EXPECT_TRUE(micro::valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(micro::valid_utf8("\xc3"));              // truncated
  EXPECT_FALSE(micro::valid_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(micro::valid_utf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(micro::valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(micro::valid_utf8("\xff"));
}

TEST(MicroProtocol, StringsAreEscapedAsJson) {
  std::string out;
  micro::append_string(out, std::string("a\"b\\c\nd\te\x01\0", 11));  // a NUL too
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\te\\u0001\\u0000\"");
}

TEST(MicroProtocol, StartedIsRfc3339InUtcWithMilliseconds) {
  const auto t = std::chrono::system_clock::time_point(1767225600s + 123ms);  // 2026-01-01
  EXPECT_EQ(micro::rfc3339(t), "2026-01-01T00:00:00.123Z");
  EXPECT_EQ(micro::rfc3339(std::chrono::system_clock::time_point(0s)),
            "1970-01-01T00:00:00.000Z");
}

micro::identity kv_identity() {
  return {"kv", "ID123", "1.0.0", "a \"map\"", {{"lang", "c++"}}};
}

TEST(MicroProtocol, PingResponse) {
  EXPECT_EQ(micro::ping_response(kv_identity()),
            R"({"type":"io.nats.micro.v1.ping_response","name":"kv","id":"ID123",)"
            R"("version":"1.0.0","metadata":{"lang":"c++"}})");
}

TEST(MicroProtocol, InfoResponseListsEveryEndpoint) {
  std::vector<micro::endpoint_info> eps = {{"get", "kv.get", "q", {}},
                                           {"set", "kv.set", "", {{"k", "v"}}}};
  EXPECT_EQ(micro::info_response(kv_identity(), eps),
            R"({"type":"io.nats.micro.v1.info_response","name":"kv","id":"ID123",)"
            R"("version":"1.0.0","metadata":{"lang":"c++"},"description":"a \"map\"",)"
            R"("endpoints":[{"name":"get","subject":"kv.get","queue_group":"q","metadata":{}},)"
            R"({"name":"set","subject":"kv.set","queue_group":"","metadata":{"k":"v"}}]})");
}

TEST(MicroProtocol, StatsResponseHasTheFiguresOfEachEndpoint) {
  std::vector<micro::endpoint_info> eps = {{"get", "kv.get", "q", {}}};
  std::vector<micro::endpoint_numbers> nums = {{4, 1, "400:invalid key", 1000}};
  const auto started = std::chrono::system_clock::time_point(1767225600s);
  EXPECT_EQ(micro::stats_response(kv_identity(), started, eps, nums),
            R"({"type":"io.nats.micro.v1.stats_response","name":"kv","id":"ID123",)"
            R"("version":"1.0.0","metadata":{"lang":"c++"},)"
            R"("started":"2026-01-01T00:00:00.000Z","endpoints":[{"name":"get",)"
            R"("subject":"kv.get","queue_group":"q","num_requests":4,"num_errors":1,)"
            R"("last_error":"400:invalid key","processing_time":1000,)"
            R"("average_processing_time":250}]})");
  // No request yet: the average is 0, not a division by zero.
  nums[0] = {};
  EXPECT_NE(micro::stats_response(kv_identity(), started, eps, nums)
                .find(R"("average_processing_time":0)"),
            std::string::npos);
}

TEST(MicroProtocol, ControlSubjectsAndVerbs) {
  const auto subjects = micro::control_subjects(kv_identity());
  ASSERT_EQ(subjects.size(), 3u);
  EXPECT_EQ(subjects[0], "$SRV.*");
  EXPECT_EQ(subjects[1], "$SRV.*.kv");
  EXPECT_EQ(subjects[2], "$SRV.*.kv.ID123");
  EXPECT_EQ(micro::verb_of("$SRV.PING"), micro::verb::ping);
  EXPECT_EQ(micro::verb_of("$SRV.INFO.kv"), micro::verb::info);
  EXPECT_EQ(micro::verb_of("$SRV.STATS.kv.ID123"), micro::verb::stats);
  EXPECT_EQ(micro::verb_of("$SRV.SCHEMA.kv"), micro::verb::none);
  EXPECT_EQ(micro::verb_of("$SRVX.PING"), micro::verb::none);
  EXPECT_EQ(micro::verb_of("kv"), micro::verb::none);
}

TEST(MicroProtocol, IdentityIsCheckedWithAMessageSayingWhatToChange) {
  auto who = kv_identity();
  EXPECT_NO_THROW(micro::check_identity(who));
  who.name = "kv service";
  try {
    micro::check_identity(who);
    ADD_FAILURE() << "a name with a space was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("letters, digits"), std::string::npos) << e.what();
  }
  who = kv_identity();
  who.version = "1.0";
  EXPECT_THROW(micro::check_identity(who), std::invalid_argument);
  who = kv_identity();
  who.metadata["bad"] = "\xff";
  EXPECT_THROW(micro::check_identity(who), std::invalid_argument);
}

TEST(BinaryWire, AVersionMismatchSaysWhatTheBytesLookLike) {
  namespace wire = tenorite::nats::wire;
  EXPECT_NE(wire::version_mismatch("the request", "{\"get\":{}}").find("looks like JSON"),
            std::string::npos);
  EXPECT_NE(wire::version_mismatch("the reply", "\x02").find("newer tenorite"),
            std::string::npos);
  EXPECT_NE(wire::version_mismatch("the reply", "").find("empty"), std::string::npos);
  EXPECT_EQ(wire::bad_request("why")[0], static_cast<char>(wire::binary_version));
  EXPECT_EQ(wire::failed(tenorite::error_kind::queue_full, "x").substr(0, 3),
            std::string({static_cast<char>(wire::binary_version),
                         static_cast<char>(wire::status::failed),
                         static_cast<char>(tenorite::error_kind::queue_full)}));
  tenorite::error_kind k{};
  ASSERT_TRUE(wire::kind_from_name("queue_full", k));
  EXPECT_EQ(k, tenorite::error_kind::queue_full);
  EXPECT_FALSE(wire::kind_from_name("nope", k));
  EXPECT_EQ(wire::code_of(tenorite::error_kind::bad_request), 400);
  EXPECT_EQ(wire::code_of(tenorite::error_kind::queue_full), 503);
  EXPECT_EQ(wire::code_of(tenorite::error_kind::fetch_failure), 500);
}

}  // namespace
