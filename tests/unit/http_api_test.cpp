// answer_api and answer_request: the HTTP API's parameter validation and refusals, called as the
// server calls them, parse_target, which turns a request target into their input, and the chip
// ids of its answers.
#include "daemon/http_api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "collector/json.h"
#include "common/format.h"

namespace ttmem::daemon {

using collector::BufferView;
using collector::DeviceView;
using collector::leak_from_json;
using collector::LeakList;
using collector::LeakRecord;
using collector::Snapshot;
using collector::to_json;
using common::format_chip_id;
using common::parse_chip_id;

namespace {

using nlohmann::json;

class HttpApi : public ::testing::Test {
 protected:
  HttpApi() {
    DeviceView d;
    d.chip_id = 7;
    d.logical_ids = {0};
    published_.snapshot.devices.push_back(d);
  }
  ApiReply get(const std::string& path, ApiParams params) {
    auto reply = answer_api(path, published_, history_, params);
    EXPECT_TRUE(reply) << path;
    return reply.value_or(ApiReply{});
  }
  Published published_;
  HistoryStore history_{HistoryOptions{}};
};

TEST_F(HttpApi, ValidParametersAreAnswered) {
  ApiReply r = get("/api/v1/buffers", {{"device", "0"}, {"kind", "dram"}, {"sort", "age"}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(json::parse(r.body).contains("buffers")) << r.body;
}

TEST_F(HttpApi, BadParametersAreA400ThatSaysWhy) {
  ApiReply r = get("/api/v1/buffers", {{"limit", "-1"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(json::parse(r.body).at("error").get<std::string>().find("'limit'"), std::string::npos);
  EXPECT_EQ(get("/api/v1/status", {{"verbose", "1"}}).status, 400);
  EXPECT_EQ(get("/api/v1/history", {{"kind", "l1"}, {"kind", "dram"}}).status, 400);
  // Top's sort keys, by the same names; another word is a 400 that names them.
  for (const char* key : {"reserved", "size", "age", "address", "device", "kind", "pid", "tag"}) {
    EXPECT_EQ(get("/api/v1/buffers", {{"sort", key}}).status, 200) << key;
    EXPECT_EQ(get("/api/v1/programs", {{"sort", key}}).status, 200) << key;
  }
  r = get("/api/v1/buffers", {{"sort", "bytes"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("reserved, size, age, address, device, kind, pid, tag"), std::string::npos)
      << r.body;
}

// An echoed parameter that is not UTF-8 once made the JSON serialiser throw: the client got a
// bare 500 instead of the 400 and its explanation.
TEST_F(HttpApi, ParameterThatIsNotUtf8IsStillA400WithAJsonBody) {
  for (const auto& [name, value] :
       ApiParams{{"device", "tr\xce"}, {"kind", "\xff"}, {"\xc0", "1"}}) {
    ApiReply r = get("/api/v1/buffers", {{name, value}});
    EXPECT_EQ(r.status, 400) << name << "=" << value;
    EXPECT_TRUE(json::accept(r.body)) << r.body;
  }
}

// Every chip id a JSON answer holds, wherever it sits.
void collect_chip_ids(const json& j, std::vector<json>* out) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if (key == "chip_id") out->push_back(value);
      collect_chip_ids(value, out);
    }
  } else if (j.is_array()) {
    for (const json& v : j) collect_chip_ids(v, out);
  }
}

// jq and JavaScript read JSON numbers as doubles: eight chip ids that differ only in their low
// bits (as real ones do) would read as one chip. Every endpoint writes them as hex strings.
TEST(HttpApiChipIds, EveryEndpointWritesChipIdsAsHexStrings) {
  constexpr uint64_t kBase = 0x1234'5678'9abc'de00;
  static_assert(double(kBase) == double(kBase + 7), "the ids must collide as doubles");
  Published published;
  Snapshot& s = published.snapshot;
  s.taken_realtime_ns = 5'000'000'000;
  std::vector<LeakRecord> leaked;
  for (uint32_t n = 0; n < 8; ++n) {
    DeviceView& d = s.devices.emplace_back();
    d.chip_id = kBase + n;
    d.logical_ids = {n};
    d.kinds[uint32_t(Kind::Cb)].reserved = 4096;  // a kind in use has a history
    BufferView& b = s.buffers.emplace_back();
    b.chip_id = d.chip_id;
    b.device = n;
    b.kind = uint32_t(Kind::Cb);
    LeakRecord& l = leaked.emplace_back();
    l.chip_id = d.chip_id;
    l.device = n;
  }
  s.leaks = LeakList(std::move(leaked));
  HistoryStore history{HistoryOptions{}};
  ASSERT_TRUE(history.sample(s));
  for (const char* path : {"/api/v1/status", "/api/v1/devices", "/api/v1/buffers",
                           "/api/v1/programs", "/api/v1/leaks", "/api/v1/history"}) {
    auto reply = answer_api(path, published, history, {});
    ASSERT_TRUE(reply) << path;
    ASSERT_EQ(reply->status, 200) << path << ": " << reply->body;
    std::vector<json> ids;
    collect_chip_ids(json::parse(reply->body), &ids);
    ASSERT_FALSE(ids.empty()) << path;
    std::set<std::string> distinct;
    for (const json& id : ids) {
      ASSERT_TRUE(id.is_string()) << path << ": " << id.dump();
      distinct.insert(id.get<std::string>());
    }
    EXPECT_EQ(distinct.size(), 8u) << path;
    EXPECT_EQ(*distinct.begin(), "0x123456789abcde00") << path;
  }
}

// A leak file or an older ttmemd's answer may hold a chip id as a whole number: it still reads.
// Any other string is not a chip id.
TEST(HttpApiChipIds, HexStringsAndOlderWholeNumbersReadBack) {
  LeakRecord l;
  l.chip_id = 0xfedc'ba98'7654'3210;
  json j = to_json(l);
  EXPECT_EQ(j.at("chip_id"), "0xfedcba9876543210");
  EXPECT_EQ(leak_from_json(j).chip_id, l.chip_id);
  j["chip_id"] = l.chip_id;
  EXPECT_EQ(leak_from_json(j).chip_id, l.chip_id);
  for (const char* bad : {"", "0x", "7000", "0x7g", "x7000", "0x11112222333344445", "-0x1"}) {
    j["chip_id"] = bad;
    EXPECT_THROW(leak_from_json(j), json::exception) << bad;
  }
  EXPECT_EQ(format_chip_id(0), "0x0");
  EXPECT_EQ(parse_chip_id("0XABCdef"), 0xabcdefu);
  EXPECT_EQ(parse_chip_id("0xffffffffffffffff"), UINT64_MAX);
}

TEST_F(HttpApi, OtherPathsAreNotApiEndpoints) {
  EXPECT_FALSE(answer_api("/metrics", published_, history_, {}));
  EXPECT_FALSE(answer_api("/api/v1/status/", published_, history_, {}));
}

TEST(HttpTarget, PathAndQueryAreDecodedAsBefore) {
  std::string path;
  ApiParams params;
  parse_target("/api/v1/%62uffers?kind=l1+small&limit=%33&&=x&flag&bad=%zz%4", &path, &params);
  EXPECT_EQ(path, "/api/v1/buffers");
  EXPECT_EQ(params, (ApiParams{{"kind", "l1 small"}, {"limit", "3"}, {"flag", ""},
                               {"bad", "%zz%4"}}));
  parse_target("/a+b%2", &path, &params);
  EXPECT_EQ(path, "/a+b%2");  // '+' is a space only in the query
  EXPECT_TRUE(params.empty());
}

// Refusals close the connection, since the body they leave unread must not be taken for a
// request: the token first, then the method, then a body.
TEST_F(HttpApi, RefusalsComeBeforeRoutingAndCloseTheConnection) {
  SnapshotBoard board;
  ListSlots lists;
  ApiOptions options;
  options.token = "s3cret";
  auto answer = [&](const char* method, std::vector<std::pair<std::string, std::string>> headers) {
    HttpRequest req;
    req.method = method;
    req.path = "/nowhere";
    req.headers = std::move(headers);
    return answer_request(req, board, history_, options, lists);
  };
  HttpResponse r = answer("POST", {{"Content-Length", "999999999"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_TRUE(r.close);
  r = answer("POST", {{"authorization", "Bearer s3cret"}});
  EXPECT_EQ(r.status, 405);
  EXPECT_TRUE(r.close);
  r = answer("GET", {{"Authorization", "Bearer s3cret"}, {"Transfer-Encoding", "chunked"}});
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(r.close);
  r = answer("GET", {{"Authorization", "Bearer s3cret"}, {"Content-Length", "0"}});
  EXPECT_EQ(r.status, 404);
  EXPECT_FALSE(r.close);
}

}  // namespace
}  // namespace ttmem::daemon
