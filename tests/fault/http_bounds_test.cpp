// What an HTTP client can make ttmemd hold: request bodies are refused unread, request lines and
// headers are bounded, connections are capped per client and in all, idle and crawling ones are
// closed and never keep /metrics from answering, and the longest lists are streamed as the
// client takes them, so concurrent or slow requests for them leave ttmemd's memory where it was.
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

// A TCP connection to ttmemd's port on 127.0.0.1, from `source` (another loopback address is
// another client to ttmemd's per-client cap); -1 when it cannot connect. A receive buffer of
// `receive_buffer` bytes (0: the default) makes a slow reader.
int connect_to(int port, const char* source = "127.0.0.1", int receive_buffer = 0,
               int timeout_s = 10) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from);
  if (receive_buffer > 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

// The first line of what the server sends on `fd` ("" if it closes first).
std::string status_line(int fd) {
  char reply[256] = {};
  ssize_t n = ::recv(fd, reply, sizeof reply - 1, 0);
  std::string text(reply, n > 0 ? size_t(n) : 0);
  return text.substr(0, text.find("\r\n"));
}

// Sends `head`, then `flood_bytes` of `fill` (as much as the server takes), and returns the status
// line of the answer.
std::string send_flood(int port, const std::string& head, uint64_t flood_bytes, char fill) {
  int fd = connect_to(port);
  EXPECT_GE(fd, 0);
  ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  std::vector<char> filler(kMiB, fill);
  for (uint64_t sent = 0; sent < flood_bytes;) {
    ssize_t n = ::send(fd, filler.data(), std::min<uint64_t>(filler.size(), flood_bytes - sent),
                       MSG_NOSIGNAL);
    if (n <= 0) break;  // the server answered and closed without reading it: what we want
    sent += uint64_t(n);
  }
  std::string line = status_line(fd);
  ::close(fd);
  return line;
}

// Sends a POST announcing `body_bytes`, then as much of the body as the server takes; returns
// the status line of the answer.
std::string post_large_body(int port, uint64_t body_bytes, const std::string& extra_header) {
  return send_flood(port,
                    "POST /api/v1/status HTTP/1.1\r\nHost: x\r\n" + extra_header +
                        "Content-Length: " + std::to_string(body_bytes) + "\r\n\r\n",
                    body_bytes, 0);
}

// GET `path` from `source` on a connection of its own: the status code (0: none came within
// timeout_s).
int status_from(int port, const char* source, const std::string& path, int timeout_s = 10) {
  int fd = connect_to(port, source, 0, timeout_s);
  if (fd < 0) return 0;
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string line = status_line(fd);
  ::close(fd);
  return line.size() >= 12 ? std::atoi(line.c_str() + 9) : 0;
}

// How long `request` takes to answer `status`; a test failure if it does not.
template <class Request>
long long answer_ms(Request request, int status, const char* what) {
  auto start = Clock::now();
  EXPECT_EQ(request(), status) << what;
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
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
    auto ms = answer_ms([&] { return http_get(daemon.url(), path, "s3cret").status; }, 200, path);
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

// The lists below are of 200,000 buffers. Under ThreadSanitizer ttmemd builds them 5 to 15
// times slower, and of four at once some wait longer than the client's 10 s read timeout for
// their next piece: there they are of 50,000. That still is 13 MB an answer, three times what a
// loopback socket buffers, so a list that is not read still stalls, and all else is asserted
// alike.
constexpr int kHeldBuffers = kUnderThreadSanitizer ? 50000 : 200000;

// The end of a list of all kHeldBuffers buffers.
std::string list_end() { return R"(],"total":)" + std::to_string(kHeldBuffers) + "}"; }

// A process holding kHeldBuffers buffers, and ttmemd once it shows all of them and its resident
// memory has settled (its first refreshes of 200,000 buffers grow it).
struct DaemonOver200000Buffers {
  DaemonOver200000Buffers()
      : holder({TTMEM_FAULT_CLIENT, "short", "--allocs", std::to_string(kHeldBuffers), "--keep",
                std::to_string(kHeldBuffers), "--wait"},
               {{"TTMEM_DIR", dir.path()}}) {
    if (!holder.expect_line("ready")) return;
    daemon = std::make_unique<Ttmemd>(dir.path());
    if (!eventually([&] {
           auto status = get_json(daemon->url(), "/api/v1/status");
           if (status.at("processes").size() != 1) return std::string("no process yet");
           return status["processes"][0].at("buffers") == kHeldBuffers ? std::string()
                                                                 : std::string("loading");
         }).empty()) {
      return;
    }
    resident = rss_bytes(pid());
    // Under the sanitizers resident memory is not judged, and need not settle: their allocators
    // keep what is freed in quarantine, and shadow memory grows with use. Elsewhere the wait
    // also lets ttmemd's first refreshes of all the buffers end first.
    if (!kResidentMemoryIsMeaningful) {
      ready = true;
      return;
    }
    const auto give_up = Clock::now() + std::chrono::seconds(120);
    for (uint64_t previous = 0; resident > previous + kMiB || previous > resident + kMiB;) {
      if (Clock::now() > give_up) return;  // never settled: `ready` stays false
      previous = resident;
      std::this_thread::sleep_for(std::chrono::milliseconds(1000));
      resident = rss_bytes(pid());
    }
    ready = true;
  }
  ~DaemonOver200000Buffers() {
    holder.close_stdin();
    holder.wait();
  }
  pid_t pid() { return daemon->child().pid(); }

  TempDir dir;
  Child holder;
  std::unique_ptr<Ttmemd> daemon;
  uint64_t resident = 0;  // ttmemd's, settled
  bool ready = false;     // all of the above came to be
};

// How many buffers a /api/v1/buffers answer lists.
size_t buffer_entries(const std::string& body) {
  size_t entries = 0;
  for (size_t at = 0; (at = body.find("\"buffer_id\":", at)) != std::string::npos; ++at) {
    ++entries;
  }
  return entries;
}

TEST(HttpBounds, ConcurrentListsOf200000BuffersAreStreamedAndMemoryComesBack) {
  DaemonOver200000Buffers held;
  ASSERT_TRUE(held.ready) << "ttmemd did not show 200,000 buffers, or its memory never settled";
  Ttmemd& daemon = *held.daemon;
  const pid_t pid = held.pid();
  const uint64_t resident = held.resident;

  // Four at once, all 200,000 each (limit=0). Before, built whole: 3.5 GB, and it stayed.
  std::vector<std::thread> lists;
  std::vector<HttpReply> replies(4);
  for (auto& reply : replies) {
    lists.emplace_back([&] { reply = http_get(daemon.url(), "/api/v1/buffers?limit=0"); });
  }
  for (auto& t : lists) t.join();
  for (const auto& reply : replies) {
    ASSERT_EQ(reply.status, 200);
    EXPECT_EQ(buffer_entries(reply.body), size_t(kHeldBuffers));
    EXPECT_EQ(reply.body.rfind(list_end()), reply.body.size() - list_end().size());
  }
  // The same text as the whole document would be: it parses, with every buffer in it.
  auto whole = nlohmann::json::parse(replies[0].body);
  EXPECT_EQ(whole.at("buffers").size(), size_t(kHeldBuffers));
  const uint64_t peak = peak_rss_bytes(pid), after = rss_bytes(pid);
  std::printf("ttmemd RSS %.1f MiB before, peak %.1f MiB, %.1f MiB after 4 lists of %zu bytes\n",
              double(resident) / kMiB, double(peak) / kMiB, double(after) / kMiB,
              replies[0].body.size());
  // A sanitizer's allocator keeps freed memory in quarantine: resident memory says nothing there.
  if (kResidentMemoryIsMeaningful) {
    EXPECT_LT(peak, resident + 128 * kMiB);
    EXPECT_LT(after, resident + 32 * kMiB);
  }
}

// Request lines and headers are read only up to their bounds: a 64 MiB request line, a 64 MiB
// header and 101 headers are each refused with nothing more read. Before (cpp-httplib 0.11 read
// a line whole), the line took ttmemd to a peak of 137 MiB and left 74 MiB resident; the header,
// a peak of 201 MiB.
TEST(HttpBounds, HugeRequestLinesAndHeadersAreRefusedUnread) {
  TempDir dir;
  Ttmemd daemon(dir.path());
  const pid_t pid = daemon.child().pid();
  const uint64_t before = peak_rss_bytes(pid);

  EXPECT_EQ(send_flood(daemon.port(), "GET /", 64 * kMiB, 'a'), "HTTP/1.1 414 URI Too Long");
  EXPECT_EQ(send_flood(daemon.port(), "GET /metrics HTTP/1.1\r\nX-Big: ", 64 * kMiB, 'a'),
            "HTTP/1.1 431 Request Header Fields Too Large");
  std::string many = "GET /metrics HTTP/1.1\r\n";
  for (int i = 0; i <= 100; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(send_flood(daemon.port(), many + "\r\n", 0, 0),
            "HTTP/1.1 431 Request Header Fields Too Large");
  // Within the bounds, a request is served as before.
  EXPECT_EQ(send_flood(daemon.port(), "GET /metrics HTTP/1.1\r\nX-Fine: " +
                                          std::string(8000, 'a') + "\r\n\r\n",
                       0, 0),
            "HTTP/1.1 200 OK");

  const uint64_t after = peak_rss_bytes(pid);
  std::printf("ttmemd peak RSS %.1f MiB before 64 MiB lines, %.1f MiB after\n",
              double(before) / kMiB, double(after) / kMiB);
  if (kResidentMemoryIsMeaningful) {
    EXPECT_LT(after, before + 4 * kMiB) << "an oversized request head was read into memory";
  }
  EXPECT_EQ(http_get(daemon.url(), "/api/v1/status").status, 200);
}

// Connections beyond the per-client cap, or beyond the cap of all, are answered 503 and closed
// at once; another client's /metrics is answered all the while, and a client whose connections
// were closed is served again. A request head sent a byte at a time is cut off.
TEST(HttpBounds, ConnectionCapsRefuseTheExcessAndOthersAreStillServed) {
  TempDir dir;
  Ttmemd daemon(dir.path(), {"--http-max-connections", "12", "--http-max-connections-per-client",
                             "8"});
  const int port = daemon.port();
  // A request head that never ends: one header byte every 200 ms.
  std::thread crawler([port] {
    int fd = connect_to(port, "127.0.0.9");
    const std::string head = "GET /metrics HTTP/1.1\r\nX-Slow: ";
    ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
    auto start = Clock::now();
    while (::send(fd, "a", 1, MSG_NOSIGNAL) == 1 && Clock::now() - start < std::chrono::seconds(30)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
    std::printf("a request head sent a byte at a time was cut off after %lld s\n",
                (long long)seconds);
    EXPECT_LT(seconds, 20) << "a crawling request head was kept open";
    ::close(fd);
  });

  std::vector<int> hostile;
  for (int i = 0; i < 8; ++i) hostile.push_back(connect_to(port, "127.0.0.1"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // The ninth from the same address.
  int excess = connect_to(port, "127.0.0.1");
  EXPECT_EQ(status_line(excess), "HTTP/1.1 503 Service Unavailable");
  ::close(excess);
  // Another client is served at once.
  auto ms = answer_ms([&] { return status_from(port, "127.0.0.2", "/metrics"); }, 200,
                      "/metrics from another client");
  std::printf("/metrics from another client with 8 connections at the cap: %lld ms\n", ms);
  EXPECT_LT(ms, 1000);

  // 8 + 1 (the crawler) + 3 more = the cap of 12 in all: a client with none open is refused too.
  for (int i = 0; i < 3; ++i) hostile.push_back(connect_to(port, "127.0.0.3"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(status_from(port, "127.0.0.4", "/metrics"), 503);

  for (int fd : hostile) ::close(fd);
  EXPECT_EQ(eventually([&] {
              int status = status_from(port, "127.0.0.1", "/metrics");
              return status == 200 ? "" : "status " + std::to_string(status);
            }),
            "");
  crawler.join();
}

// A client that asks for 200,000 buffers and then reads slowly holds ttmemd to what it has
// built of the answer so far: the answer (53 MB) is built as the socket takes it, while /metrics
// is answered to others. At most 8 such lists are sent at once.
TEST(HttpBounds, ASlowReaderOf200000BuffersKeepsMemoryBoundedAndMetricsAnswered) {
  DaemonOver200000Buffers held;
  ASSERT_TRUE(held.ready) << "ttmemd did not show 200,000 buffers, or its memory never settled";
  Ttmemd& daemon = *held.daemon;
  int fd = connect_to(daemon.port(), "127.0.0.1", 4096);
  const std::string request = "GET /api/v1/buffers?limit=0 HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);

  // Nothing read for 3 s (ttmemd drops a client that takes nothing for 10 s).
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto ms = answer_ms([&] { return http_get(daemon.url(), "/metrics").status; }, 200,
                      "/metrics during a stalled answer");
  const uint64_t stalled = rss_bytes(held.pid());

  // Then slowly, 16 KiB at a time, the whole answer, as one connection keeps it alive.
  std::string text;
  char buffer[16 << 10];
  for (;;) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    text.append(buffer, size_t(n));
    if (text.size() > 5 && text.compare(text.size() - 5, 5, "0\r\n\r\n") == 0) break;
  }
  ::close(fd);
  const uint64_t peak = peak_rss_bytes(held.pid());
  std::printf("ttmemd RSS %.1f MiB settled, %.1f MiB with the answer stalled, peak %.1f MiB; "
              "/metrics meanwhile in %lld ms; %zu bytes read\n",
              double(held.resident) / kMiB, double(stalled) / kMiB, double(peak) / kMiB, ms,
              text.size());
  EXPECT_EQ(text.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_NE(text.find("Transfer-Encoding: chunked"), std::string::npos);
  EXPECT_EQ(buffer_entries(text), size_t(kHeldBuffers));
  EXPECT_NE(text.find(list_end()), std::string::npos);
  EXPECT_LT(ms, 1000);
  // What the stalled answer costs is the publication it holds (a snapshot of 200,000 buffers,
  // about 30 MiB, as before this server) and one piece; built whole, the answer alone would
  // be its 53 MB on top.
  if (kResidentMemoryIsMeaningful) {
    EXPECT_LT(stalled, held.resident + text.size() * 3 / 4) << "the stalled answer was built whole";
    EXPECT_LT(peak, held.resident + text.size());
  }

  // Each stalled list holds a publication: beyond 8 at once, a list is refused (503), not built,
  // and /metrics is still answered.
  std::vector<int> stalled_lists;
  for (int i = 0; i < 8; ++i) {
    stalled_lists.push_back(connect_to(daemon.port(), "127.0.0.1", 4096));
    ::send(stalled_lists.back(), request.data(), request.size(), MSG_NOSIGNAL);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // These answers may wait while the eight lists are selected (about 100 ms each here, ten
  // times that under sanitizers): what this part guarantees is a refusal and an answer, not
  // their speed (the stalled answer above measured that).
  EXPECT_EQ(status_from(daemon.port(), "127.0.0.1", "/api/v1/leaks", 120), 503);
  EXPECT_EQ(status_from(daemon.port(), "127.0.0.1", "/metrics", 120), 200);
  for (int fd : stalled_lists) ::close(fd);
  EXPECT_EQ(eventually([&] {
              int status = http_get(daemon.url(), "/api/v1/leaks").status;
              return status == 200 ? "" : "status " + std::to_string(status);
            }),
            "");
}

}  // namespace
}  // namespace ttmem::test::fault
