// What an HTTP client can make ttmemd hold: request bodies are refused unread, idle connections
// are closed and never keep /metrics from answering, and the longest lists are streamed, so
// concurrent requests for them leave ttmemd's memory where it was.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "daemon_harness.h"
#include "fault_harness.h"

namespace ttmem::test::fault {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = 1 << 20;

// A TCP connection to ttmemd's port on loopback; -1 when it cannot connect.
int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends a POST announcing `body_bytes`, then as much of the body as the server takes; returns
// the status line of the answer.
std::string post_large_body(int port, uint64_t body_bytes, const std::string& extra_header) {
  int fd = connect_to(port);
  EXPECT_GE(fd, 0);
  std::string head = "POST /api/v1/status HTTP/1.1\r\nHost: x\r\n" + extra_header +
                     "Content-Length: " + std::to_string(body_bytes) + "\r\n\r\n";
  ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  std::vector<char> zeros(kMiB);
  for (uint64_t sent = 0; sent < body_bytes;) {
    ssize_t n = ::send(fd, zeros.data(), std::min<uint64_t>(zeros.size(), body_bytes - sent),
                       MSG_NOSIGNAL);
    if (n <= 0) break;  // the server answered and closed without reading it: what we want
    sent += uint64_t(n);
  }
  char reply[256] = {};
  ssize_t n = ::recv(fd, reply, sizeof reply - 1, 0);
  ::close(fd);
  std::string text(reply, n > 0 ? size_t(n) : 0);
  return text.substr(0, text.find("\r\n"));
}

TEST(HttpBounds, BodiesAreRefusedUnreadAndIdleConnectionsNeverBlockMetrics) {
  TempDir dir;
  const std::string token_file = dir.path() + "/token";
  std::ofstream(token_file) << "s3cret\n";
  std::filesystem::permissions(token_file, std::filesystem::perms::owner_read |
                                               std::filesystem::perms::owner_write);
  Ttmemd daemon(dir.path() + "/segments", {"--token-file", token_file});
  const pid_t pid = daemon.child().pid();
  const uint64_t before = peak_rss_bytes(pid);

  // 256 MiB bodies: without the token (401), and with it (405). Before, both were read whole
  // first: 271 MB resident for one, and 560 MB for 512 MiB.
  EXPECT_EQ(post_large_body(daemon.port(), 256 * kMiB, ""), "HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(post_large_body(daemon.port(), 256 * kMiB, "Authorization: Bearer s3cret\r\n"),
            "HTTP/1.1 405 Method Not Allowed");
  const uint64_t after = peak_rss_bytes(pid);
  std::printf("ttmemd peak RSS %.1f MiB before the bodies, %.1f MiB after\n",
              double(before) / kMiB, double(after) / kMiB);
  EXPECT_LT(after, before + 16 * kMiB) << "a refused body was read into memory";

  // 48 idle connections (before, 32 made /metrics time out at 10 s): /metrics and
  // /api/v1/status still answer at once.
  std::vector<int> idle;
  for (int i = 0; i < 48; ++i) idle.push_back(connect_to(daemon.port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (const char* path : {"/metrics", "/api/v1/status"}) {
    auto start = Clock::now();
    EXPECT_EQ(http_get(daemon.url(), path, "s3cret").status, 200) << path;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    std::printf("%s with 48 idle connections: %lld ms\n", path, (long long)ms);
    EXPECT_LT(ms, 1000) << path;
  }
  // The server closes connections that stay silent (2 s), freeing their threads.
  char byte;
  for (int fd : idle) {
    EXPECT_EQ(::recv(fd, &byte, 1, 0), 0) << "an idle connection was kept open";
    ::close(fd);
  }
}

TEST(HttpBounds, ConcurrentListsOf200000BuffersAreStreamedAndMemoryComesBack) {
  TempDir dir;
  Child holder({TTMEM_FAULT_CLIENT, "short", "--allocs", "200000", "--keep", "200000", "--wait"},
               {{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(holder.expect_line("ready"));
  Ttmemd daemon(dir.path());
  ASSERT_EQ(eventually([&] {
              auto status = get_json(daemon.url(), "/api/v1/status");
              if (status.at("processes").size() != 1) return std::string("no process yet");
              return status["processes"][0].at("buffers") == 200000 ? std::string()
                                                                    : std::string("loading");
            }),
            "");
  const pid_t pid = daemon.child().pid();
  // Its resident memory once it has settled (its first refreshes of 200,000 buffers grow it).
  uint64_t resident = rss_bytes(pid);
  for (uint64_t previous = 0; resident > previous + kMiB || previous > resident + kMiB;) {
    previous = resident;
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    resident = rss_bytes(pid);
  }

  // Four at once, all 200,000 each (limit=0). Before, built whole: 3.5 GB, and it stayed.
  std::vector<std::thread> lists;
  std::vector<HttpReply> replies(4);
  for (auto& reply : replies) {
    lists.emplace_back([&] { reply = http_get(daemon.url(), "/api/v1/buffers?limit=0"); });
  }
  for (auto& t : lists) t.join();
  for (const auto& reply : replies) {
    ASSERT_EQ(reply.status, 200);
    size_t entries = 0;
    for (size_t at = 0; (at = reply.body.find("\"buffer_id\":", at)) != std::string::npos; ++at) {
      ++entries;
    }
    EXPECT_EQ(entries, 200000u);
    EXPECT_EQ(reply.body.rfind(R"(],"total":200000})"), reply.body.size() - 17);
  }
  // The same text as the whole document would be: it parses, with every buffer in it.
  auto whole = nlohmann::json::parse(replies[0].body);
  EXPECT_EQ(whole.at("buffers").size(), 200000u);
  const uint64_t peak = peak_rss_bytes(pid), after = rss_bytes(pid);
  std::printf("ttmemd RSS %.1f MiB before, peak %.1f MiB, %.1f MiB after 4 lists of %zu bytes\n",
              double(resident) / kMiB, double(peak) / kMiB, double(after) / kMiB,
              replies[0].body.size());
  // A sanitizer's allocator keeps freed memory in quarantine: resident memory says nothing there.
  if (kResidentMemoryIsMeaningful) {
    EXPECT_LT(peak, resident + 128 * kMiB);
    EXPECT_LT(after, resident + 32 * kMiB);
  }
  holder.close_stdin();
  holder.wait();
}

}  // namespace
}  // namespace ttmem::test::fault
