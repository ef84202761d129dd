// answer_api: the HTTP API's parameter validation, called as the server calls it.
#include "daemon/http_api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ttmem::daemon {
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

}  // namespace
}  // namespace ttmem::daemon
