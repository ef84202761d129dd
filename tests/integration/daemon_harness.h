// Helpers for tests of ttmemd: a real daemon process on a free loopback port, HTTP GETs, and a
// free-port finder for servers that cannot pick their own (Prometheus).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "test_device.h"

namespace ttmem::test {

struct HttpReply {
  int status = 0;  // 0: no connection
  std::string body;
};

// GET url+path (url like http://127.0.0.1:1234), with an optional bearer token.
HttpReply http_get(const std::string& url, const std::string& path, const std::string& token = "");

// Any other method, without a body (the API must refuse all but GET).
HttpReply http_request(const std::string& method, const std::string& url, const std::string& path);

// GET that must answer 200 with JSON.
nlohmann::json get_json(const std::string& url, const std::string& path,
                        const std::string& token = "");

// Polls until `check` returns "" (success) or the deadline passes; returns the last complaint.
template <class Check>
std::string eventually(Check check, int seconds = 15) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::string why;
  while (std::chrono::steady_clock::now() < deadline) {
    why = check();
    if (why.empty()) return why;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return why;
}

// `ttmem --dir DIR sim llama-decode --speed 0 --hold 900` (8 devices, a few thousand buffers),
// returned once it holds its final state; a test failure if it does not get there.
std::unique_ptr<Child> start_held_llama(const std::string& dir);

// "" when every (device, kind) of a status document (`ttmem status --json`, /api/v1/status)
// equals a tracked program's truth file (ttmem_testload, ttmem_soak_client), else the first
// difference.
std::string status_differs(const nlohmann::json& status, const nlohmann::json& truth);

// A loopback TCP port that was free a moment ago.
int free_port();

// ttmemd on 127.0.0.1, port 0 (unless extra has --listen), refreshing every 100 ms (unless extra
// has --interval), with `dir` as its segment directory, plus extra arguments.
class Ttmemd {
 public:
  Ttmemd(const std::string& dir, std::vector<std::string> extra = {});
  const std::string& url() const { return url_; }
  int port() const;
  Child& child() { return *child_; }

 private:
  std::unique_ptr<Child> child_;
  std::string url_;
};

}  // namespace ttmem::test
