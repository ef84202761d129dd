// `ttmem --server URL` against a real ttmemd: the remote commands print exactly what the local
// ones print, a token-protected daemon is refused cleanly without its token, and bad URLs, dead
// ports and servers sending garbage are one-line errors, never a crash.
#include <httplib.h>

#include <fstream>
#include <regex>
#include <string_view>
#include <thread>

#include <gtest/gtest.h>

#include "collector/json.h"
#include "daemon_harness.h"

namespace ttmem::test {

using collector::buffers_json;
using collector::BufferSelection;
using collector::Snapshot;
using collector::snapshot_from_json;
using collector::status_json;

namespace {

using nlohmann::json;

RunResult ttmem(std::vector<std::string> args, const std::map<std::string, std::string>& env = {}) {
  args.insert(args.begin(), TTMEM_CLI);
  return run(args, env);
}

// The output of one ttmem command, remote and local, with what may differ between two
// snapshots taken a moment apart masked: the snapshot's time stamps and the AGE column.
std::string masked(std::string text) {
  static const std::regex kStamps(R"("taken_(realtime|monotonic)_ns": [0-9]+)");
  static const std::regex kAge(R"( +([0-9]+\.[0-9][smh]|AGE) +)");
  text = std::regex_replace(text, kStamps, R"("taken_$1_ns": 0)");
  return std::regex_replace(text, kAge, " AGE ");
}

// "" when `ttmem --server URL ARGS` and `ttmem --dir DIR ARGS` both succeed with the same output.
std::string remote_differs(const std::string& url, const std::string& dir,
                           const std::vector<std::string>& args) {
  std::vector<std::string> remote = {"--server", url}, local = {"--dir", dir};
  remote.insert(remote.end(), args.begin(), args.end());
  local.insert(local.end(), args.begin(), args.end());
  RunResult r = ttmem(remote), l = ttmem(local);
  std::string what = args[0] + (args.size() > 1 ? " " + args[1] : "");
  if (r.exit_code != 0) return what + " --server failed: " + r.err;
  if (l.exit_code != 0) return what + " --dir failed: " + l.err;
  if (r.err != l.err) return what + ": stderr differs: " + r.err + " vs " + l.err;
  if (masked(r.out) != masked(l.out)) {
    return what + ": output differs\n--- remote\n" + r.out.substr(0, 1500) + "\n--- local\n" +
           l.out.substr(0, 1500);
  }
  return "";
}

TEST(RemoteCli, PrintsWhatTheLocalCommandsPrint) {
  TempDir dir;
  auto sim = start_held_llama(dir.path());
  Ttmemd d(dir.path());
  ASSERT_FALSE(d.url().empty());

  // The daemon publishes within its 100 ms interval; after that the held state is still.
  EXPECT_EQ(eventually([&] { return remote_differs(d.url(), dir.path(), {"status", "--json"}); }),
            "");
  json status = json::parse(ttmem({"--server", d.url(), "status", "--json"}).out);
  ASSERT_EQ(status.at("devices").size(), 8u);
  EXPECT_EQ(status.at("processes").at(0).at("pid").get<pid_t>(), sim->pid());
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"status"},
           {"buffers", "--json"},
           {"buffers"},
           {"buffers", "--device", "3", "--kind", "l1", "--sort", "age", "--json"},
           {"buffers", "--kind", "CB", "--limit", "4"},
           {"buffers", "--pid", std::to_string(sim->pid()), "--limit", "7", "--json"},
           {"leaks", "--json"}}) {
    EXPECT_EQ(remote_differs(d.url(), dir.path(), args), "");
  }
  json buffers = json::parse(ttmem({"--server", d.url(), "buffers", "--json"}).out);
  EXPECT_GT(buffers.at("total").get<size_t>(), 1000u);
  EXPECT_EQ(buffers.at("buffers").size(), buffers.at("total").get<size_t>());

  // Errors about the query are the local ones too: the filters run in the CLI.
  RunResult no_device = ttmem({"--server", d.url(), "buffers", "--device", "42"});
  EXPECT_EQ(no_device.exit_code, 1);
  EXPECT_NE(no_device.err.find("tracked devices are: 0, 1"), std::string::npos) << no_device.err;

  // A process that ends holding buffers leaves leak records; both sides list the same ones.
  RunResult leak = ttmem({"--dir", dir.path(), "sim", "leak", "--speed", "0"});
  ASSERT_EQ(leak.exit_code, 0) << leak.err;
  EXPECT_EQ(eventually([&] {
              std::string why = remote_differs(d.url(), dir.path(), {"leaks", "--json"});
              if (!why.empty()) return why;
              json l = json::parse(ttmem({"--server", d.url(), "leaks", "--json"}).out);
              return l.at("leaks").empty() ? std::string("no leaks yet") : std::string();
            }),
            "");
  EXPECT_EQ(remote_differs(d.url(), dir.path(), {"leaks"}), "");
  EXPECT_EQ(remote_differs(d.url(), dir.path(), {"status", "--json"}), "");
  EXPECT_EQ(remote_differs(d.url(), dir.path(), {"status"}), "");
}

TEST(RemoteCli, TokenProtectedDaemonRefusesAMissingToken) {
  // ttmemd accepts --token-file on loopback too, so no other address is needed.
  TempDir dir;
  std::string token_file = dir.path() + "/token";
  std::ofstream(token_file) << "s3cret-token\n";
  Ttmemd d(dir.path(), {"--token-file", token_file});
  ASSERT_FALSE(d.url().empty());

  RunResult none = ttmem({"--server", d.url(), "status"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_EQ(none.out, "");
  EXPECT_NE(none.err.find("needs a token: pass --token-file FILE"), std::string::npos) << none.err;

  RunResult wrong = ttmem({"--server", d.url(), "status"}, {{"TTMEM_TOKEN", "s3cret-tokeX"}});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("refused the token from TTMEM_TOKEN"), std::string::npos) << wrong.err;

  RunResult by_file = ttmem({"--server", d.url(), "--token-file", token_file, "status", "--json"});
  EXPECT_EQ(by_file.exit_code, 0) << by_file.err;
  EXPECT_EQ(json::parse(by_file.out).at("segment_dir"), dir.path());
  RunResult by_env = ttmem({"--server", d.url(), "leaks"}, {{"TTMEM_TOKEN", "s3cret-token"}});
  EXPECT_EQ(by_env.exit_code, 0) << by_env.err;
}

// One line on stderr, starting "ttmem: " and saying `says`; exit 1; nothing on stdout.
void expect_clean_error(const RunResult& r, const std::string& says, const std::string& context) {
  EXPECT_EQ(r.exit_code, 1) << context << ": " << r.err;
  EXPECT_EQ(r.out, "") << context;
  EXPECT_EQ(r.err.rfind("ttmem: ", 0), 0u) << context << ": " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << context << ": " << r.err;
  EXPECT_NE(r.err.find(says), std::string::npos) << context << ": " << r.err;
}

TEST(RemoteCli, BadUrlsAndDeadPortsAreOneLineErrors) {
  for (const char* url : {"127.0.0.1:9464", "https://127.0.0.1:9464", "http://127.0.0.1",
                          "http://127.0.0.1:0", "http://127.0.0.1:65536", "http://:9464",
                          "http://127.0.0.1:9464/api/v1", "http://user@host:9464",
                          "http://[::1:9464", "http://host:94x64", "ftp://host:1"}) {
    expect_clean_error(ttmem({"--server", url, "status"}), "bad --server", url);
  }
  std::string dead = "http://127.0.0.1:" + std::to_string(free_port());
  expect_clean_error(ttmem({"--server", dead, "buffers"}), "cannot reach ttmemd at " + dead, dead);

  // Usage errors: exit 2.
  TempDir dir;
  EXPECT_EQ(ttmem({"--server", dead, "--dir", dir.path(), "status"}).exit_code, 2);
  EXPECT_EQ(ttmem({"--token-file", "/dev/null", "status"}).exit_code, 2);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--server", dead, "sim", "leak"},
           {"--server", dead, "record", "-o", dir.path() + "/r.ttmem"},
           {"--server", dead, "leaks", "--clear"}}) {
    RunResult r = ttmem(args);
    EXPECT_EQ(r.exit_code, 2) << args[2];
    EXPECT_NE(r.err.find("cannot use --server"), std::string::npos) << r.err;
  }
}

// A web server that is not a ttmemd, or a broken one: each path answers what `bodies` says.
class FakeServer {
 public:
  struct Answer {
    int status = 200;
    std::string body;
  };
  FakeServer() {
    server_.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mutex_);
      auto it = answers_.find(req.path);
      Answer a = it != answers_.end() ? it->second : Answer{404, "{\"error\":\"no such path\"}"};
      res.status = a.status;
      res.set_content(a.body, "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() does nothing to a server whose loop has not started yet.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void answer(const std::string& path, Answer a) {
    std::lock_guard lock(mutex_);
    answers_[path] = std::move(a);
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::map<std::string, Answer> answers_;
};

const char* const kEmptyStatus =
    R"({"segment_dir":"/remote","taken_realtime_ns":1,"taken_monotonic_ns":1,"devices":[],)"
    R"("processes":[],"dropped_events":0,"leaked_buffers":0,"problems":[]})";

TEST(RemoteCli, GarbageFromTheServerIsAnErrorNotACrash) {
  FakeServer fake;
  fake.answer("/api/v1/status", {200, kEmptyStatus});
  fake.answer("/api/v1/leaks", {200, R"({"leaks":[]})"});
  fake.answer("/api/v1/buffers", {200, R"({"total":0,"buffers":[]})"});
  // Sanity: a well-formed empty answer prints like an empty local directory.
  RunResult ok = ttmem({"--server", fake.url(), "status"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("No devices: no tracked process has registered a device in /remote."),
            std::string::npos)
      << ok.out;

  std::string deep(100000, '[');
  struct Case {
    const char* path;
    FakeServer::Answer answer;
    const char* says;
  };
  const Case cases[] = {
      {"/api/v1/status", {200, "<html>hello</html>"}, "malformed JSON for GET /api/v1/status"},
      {"/api/v1/status", {200, ""}, "malformed JSON"},
      {"/api/v1/status", {200, deep}, "malformed JSON"},
      {"/api/v1/status", {200, "[1,2,3]"}, "cannot read"},
      {"/api/v1/status", {200, R"({"devices":5})"}, "cannot read"},
      {"/api/v1/status", {500, "{\"error\":\"disk \\u0007 on fire\\n\"}"}, "HTTP 500"},
      {"/api/v1/status", {404, "not json"}, "HTTP 404 to GET /api/v1/status: no error message"},
      {"/api/v1/status", {302, ""}, "HTTP 302"},
      {"/api/v1/leaks", {200, R"({"leaks":[{"pid":1}]})"}, "cannot read"},
      {"/api/v1/leaks", {200, R"({"leaks":{}})"}, "'leaks' must be an array"},
      {"/api/v1/buffers", {200, R"({"total":1,"buffers":[7]})"}, "cannot read"},
  };
  for (const auto& c : cases) {
    fake.answer("/api/v1/status", {200, kEmptyStatus});
    fake.answer("/api/v1/leaks", {200, R"({"leaks":[]})"});
    fake.answer("/api/v1/buffers", {200, R"({"total":0,"buffers":[]})"});
    fake.answer(c.path, c.answer);
    // `buffers` reads the status and the buffer list, `leaks` the status and the leak list.
    const char* command = std::string_view(c.path) == "/api/v1/leaks" ? "leaks" : "buffers";
    expect_clean_error(ttmem({"--server", fake.url(), command}), c.says,
                       std::string(c.path) + " " + c.answer.body.substr(0, 40));
  }
  // The server's error text reaches the terminal without its control characters.
  fake.answer("/api/v1/status", {500, "{\"error\":\"disk \\u0007 on fire\\n\"}"});
  RunResult r = ttmem({"--server", fake.url(), "status"});
  EXPECT_NE(r.err.find("disk ? on fire?"), std::string::npos) << r.err;
}

// snapshot_from_json over both DOMs it takes: nlohmann's, and the JsonDocument that `ttmem
// --server` and `ttmem top` parse a ttmemd's answers into. The two must agree on every document.
Snapshot from_reader(const json& status, const json& buffers, const json& leaks) {
  auto doc = [](const json& j) { return collector::JsonDocument::parse(j.dump()); };
  const collector::JsonDocument s = doc(status), b = doc(buffers), l = doc(leaks);
  return snapshot_from_json(s.root(), b.root(), l.root());
}

// Every field of a real daemon's answer, replaced by a value of the wrong type or range, is an
// exception from snapshot_from_json, and the untouched answer reads back to the same JSON:
// through either DOM.
TEST(SnapshotFromJson, RoundTripsAndRejectsEveryMutilatedField) {
  TempDir dir;
  auto sim = start_held_llama(dir.path());
  Ttmemd d(dir.path());
  ASSERT_FALSE(d.url().empty());
  json status, buffers, leaks;
  ASSERT_EQ(eventually([&] {
              status = get_json(d.url(), "/api/v1/status");
              return status.at("devices").empty() ? "no devices yet" : "";
            }),
            "");
  buffers = get_json(d.url(), "/api/v1/buffers?limit=0");
  leaks = get_json(d.url(), "/api/v1/leaks");
  ASSERT_FALSE(buffers.at("buffers").empty());

  for (bool reader : {false, true}) {
    SCOPED_TRACE(reader ? "JsonDocument" : "nlohmann::json");
    auto read = [reader](const json& st, const json& bu, const json& le) {
      return reader ? from_reader(st, bu, le) : snapshot_from_json(st, bu, le);
    };
    Snapshot s = read(status, buffers, leaks);
    json back = status_json(s);
    back["leaked_buffers"] = status["leaked_buffers"];  // the count comes from the leak list
    EXPECT_EQ(back, status);
    // Without the leak list (`ttmem status`) the count is the status document's own.
    EXPECT_EQ(status_json(read(status, buffers, json())), status);
    json bad_count = status;
    bad_count["leaked_buffers"] = -1;
    EXPECT_THROW(read(bad_count, buffers, json()), json::exception);
    BufferSelection all{{}, s.buffers.size()};
    for (const auto& b : s.buffers) all.rows.push_back(&b);
    EXPECT_EQ(buffers_json(all), buffers);
  }

  // Mutilate each leaf of one device, process and buffer in turn (the rest left out: the
  // checks are per element, and a full buffer list would make this slow).
  status["devices"] = json::array({status["devices"][0]});
  status["processes"] = json::array({status["processes"][0]});
  buffers["buffers"] = json::array({buffers["buffers"][0]});
  size_t mutilated = 0;
  auto expect_both_throw = [&](const json& st, const json& bu, const std::string& what) {
    EXPECT_THROW(snapshot_from_json(st, bu, leaks), json::exception) << what;
    EXPECT_THROW(from_reader(st, bu, leaks), json::exception) << what << " (JsonDocument)";
  };
  for (json* doc : {&status, &buffers}) {
    json flat = doc->flatten();
    for (auto& [pointer, value] : flat.items()) {
      bool element = pointer.find("/devices/0/") == 0 || pointer.find("/processes/0/") == 0 ||
                     pointer.find("/buffers/0/") == 0;
      // program_id repeats buffer_id for CBs and is not read back.
      if (!element || pointer.ends_with("/program_id")) continue;
      for (const json& bad : {json("x"), json(-1), json(nullptr), json::array()}) {
        // Free text takes any string; signed and real fields take -1.
        if (value.is_string() && bad.is_string()) continue;
        if (bad == json(-1) && (pointer.ends_with("/pid") || value.is_number_float() ||
                                pointer.ends_with("/clash_margin_bytes"))) {
          continue;
        }
        // A null leaf is an absent optional or an empty list: null and [] are what it may be.
        if (value.is_null() && (bad.is_null() || bad.is_array())) continue;
        json copy = *doc;
        copy[json::json_pointer(pointer)] = bad;
        expect_both_throw(doc == &status ? copy : status, doc == &buffers ? copy : buffers,
                          pointer + " = " + bad.dump());
        ++mutilated;
      }
      // A CB's size_per_core_bytes repeats size_bytes, and an older ttmemd's documents lack it.
      if (pointer.ends_with("/size_per_core_bytes")) continue;
      json copy = doc->flatten();
      copy.erase(pointer);
      expect_both_throw(doc == &status ? copy.unflatten() : status,
                        doc == &buffers ? copy.unflatten() : buffers, "without " + pointer);
    }
  }
  EXPECT_GT(mutilated, 100u);
}

}  // namespace
}  // namespace ttmem::test
