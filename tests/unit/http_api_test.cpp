// answer_api and answer_request: the HTTP API's parameter validation and refusals, called as the
// server calls them, and parse_target, which turns a request target into their input.
#include "daemon/http_api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ttmem::daemon {

using collector::DeviceView;

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
