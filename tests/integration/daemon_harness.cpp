#include "daemon_harness.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "common/format.h"
#include "common/kinds.h"

namespace ttmem::test {

using common::kKindNames;

HttpReply http_get(const std::string& url, const std::string& path, const std::string& token) {
  httplib::Client client(url);
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  auto res = client.Get(path, headers);
  if (!res) return {};
  return {res->status, res->body};
}

HttpReply http_request(const std::string& method, const std::string& url, const std::string& path) {
  httplib::Client client(url);
  httplib::Request req;
  req.method = method;
  req.path = path;
  auto res = client.send(req);
  if (!res) return {};
  return {res->status, res->body};
}

nlohmann::json get_json(const std::string& url, const std::string& path,
                        const std::string& token) {
  HttpReply r = http_get(url, path, token);
  EXPECT_EQ(r.status, 200) << path << ": " << r.body;
  return nlohmann::json::parse(r.body);
}

std::unique_ptr<Child> start_held_llama(const std::string& dir) {
  // Held far longer than any test lasts (the Child is killed when the test ends): at
  // ThreadSanitizer's speed RemoteCli.PrintsWhatTheLocalCommandsPrint takes over 60 s, and a
  // sim held 60 s was gone before its last commands.
  auto sim = std::make_unique<Child>(
      std::vector<std::string>{TTMEM_CLI, "--dir", dir, "sim", "llama-decode", "--speed", "0",
                               "--hold", "900"},
      std::map<std::string, std::string>{});
  EXPECT_TRUE(sim->expect_line("holding for 900 s", 30000)) << "ttmem sim did not get to its hold";
  return sim;
}

std::string status_differs(const nlohmann::json& status, const nlohmann::json& truth) {
  static const std::pair<const char*, const char*> kFields[] = {
      {"requested_bytes", "requested"}, {"reserved_bytes", "reserved"}, {"buffers", "count"},
      {"total_allocs", "allocs"},       {"total_frees", "frees"}};
  for (auto& [dev, kinds] : truth.at("devices").items()) {
    uint64_t chip = truth.at("chip_id").at(dev).get<uint64_t>();
    const nlohmann::json* d = nullptr;
    for (const auto& x : status.at("devices")) {
      if (x.at("chip_id") == common::format_chip_id(chip)) d = &x;
    }
    if (d == nullptr) return "device " + dev + " missing";
    for (std::string_view kind_view : kKindNames) {
      std::string kind(kind_view);
      for (const auto& [api, want] : kFields) {
        if (d->at("kinds").at(kind).at(api) != kinds.at(kind).at(want)) {
          return "device " + dev + " " + kind + " " + api + ": got " +
                 d->at("kinds").at(kind).at(api).dump() + ", want " +
                 kinds.at(kind).at(want).dump();
        }
      }
    }
    for (const char* field : {"cb_region_end", "cb_programs"}) {
      if (d->at(field) != truth.at(field).at(dev)) {
        return "device " + dev + " " + field + ": got " + d->at(field).dump() + ", want " +
               truth.at(field).at(dev).dump();
      }
    }
  }
  return "";
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

Ttmemd::Ttmemd(const std::string& dir, std::vector<std::string> extra) {
  std::vector<std::string> argv = {TTMEMD, "--dir", dir};
  if (std::find(extra.begin(), extra.end(), "--interval") == extra.end()) {
    extra.insert(extra.end(), {"--interval", "100"});
  }
  if (std::find(extra.begin(), extra.end(), "--listen") == extra.end()) {
    extra.insert(extra.end(), {"--listen", "127.0.0.1:0"});
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  child_ = std::make_unique<Child>(argv, std::map<std::string, std::string>{});
  auto line = child_->read_line(10000);
  const std::string prefix = "ttmemd listening on ";
  if (!line || line->rfind(prefix, 0) != 0) {
    ADD_FAILURE() << "ttmemd did not start: " << line.value_or("(no output)");
    return;
  }
  url_ = line->substr(prefix.size());
}

int Ttmemd::port() const { return std::stoi(url_.substr(url_.rfind(':') + 1)); }

}  // namespace ttmem::test
