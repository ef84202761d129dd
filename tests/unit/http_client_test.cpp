// The CLI's HTTP client: the response parser over well-formed and hostile answers, fed whole and
// a byte at a time, and http_get() against a real socket that answers scripted bytes.
#include "cli/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace ttmem::cli {
namespace {

struct Parsed {
  ParseState state;
  HttpResponse response;
  std::string error;
};

Parsed parse(std::string_view raw, bool closed) {
  Parsed p;
  p.state = parse_http_response(raw, closed, &p.response, &p.error);
  return p;
}

// Feeds `raw` a byte at a time as a reader would, then signals the end of the connection.
Parsed parse_incrementally(const std::string& raw) {
  for (size_t n = 0; n <= raw.size(); ++n) {
    Parsed p = parse(std::string_view(raw).substr(0, n), false);
    if (p.state != ParseState::Incomplete) return p;
  }
  return parse(raw, true);
}

TEST(HttpResponseParser, ContentLengthBodyIsExactAndWaitsForTheRest) {
  const std::string raw =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}";
  Parsed whole = parse(raw, false);
  ASSERT_EQ(whole.state, ParseState::Complete) << whole.error;
  EXPECT_EQ(whole.response.status, 200);
  EXPECT_EQ(whole.response.body, "{\"a\":1}");

  HttpResponse r;
  std::string error;
  size_t wanted = 0;
  EXPECT_EQ(parse_http_response(raw.substr(0, raw.size() - 3), false, &r, &error, &wanted),
            ParseState::Incomplete);
  EXPECT_EQ(wanted, raw.size());
  Parsed cut = parse(raw.substr(0, raw.size() - 3), true);
  EXPECT_EQ(cut.state, ParseState::Malformed);
  EXPECT_NE(cut.error.find("closed before the whole answer"), std::string::npos) << cut.error;

  // Bytes past the length (a server that ignored Connection: close) are not body.
  Parsed extra = parse(raw + "garbage", false);
  ASSERT_EQ(extra.state, ParseState::Complete);
  EXPECT_EQ(extra.response.body, "{\"a\":1}");
  EXPECT_EQ(parse_incrementally(raw).response.body, "{\"a\":1}");
}

TEST(HttpResponseParser, ChunkedAndUnframedBodiesRunToTheEndOfTheConnection) {
  const std::string chunked =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "4;ext=1\r\n{\"a\"\r\n3\r\n:12\r\nA\r\n3456789012\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n";
  EXPECT_EQ(parse(chunked, false).state, ParseState::Incomplete);
  Parsed p = parse(chunked, true);
  ASSERT_EQ(p.state, ParseState::Complete) << p.error;
  EXPECT_EQ(p.response.body, "{\"a\":123456789012}");
  EXPECT_EQ(parse_incrementally(chunked).response.body, "{\"a\":123456789012}");

  Parsed unframed = parse("HTTP/1.0 404 Not Found\r\n\r\nno such path", true);
  ASSERT_EQ(unframed.state, ParseState::Complete);
  EXPECT_EQ(unframed.response.status, 404);
  EXPECT_EQ(unframed.response.body, "no such path");
  EXPECT_EQ(parse("HTTP/1.1 204\r\n\r\n", true).state, ParseState::Complete);  // empty reason
}

TEST(HttpResponseParser, HostileAnswersAreMalformedWithAReason) {
  const std::string big_header = "HTTP/1.1 200 OK\r\nX: " + std::string(70 * 1024, 'a');
  struct Case {
    std::string raw;
    const char* says;
  };
  const Case cases[] = {
      {"", "without answering"},
      {"HTTP/1.1 200 OK\r\nContent-Le", "middle of the answer's header"},
      {"<html>hello</html>\r\n\r\n", "not an HTTP/1.x answer"},
      {"HTTP/2 200\r\n\r\n", "not an HTTP/1.x answer"},
      {"HTTP/1.1 20\r\n\r\n", "not an HTTP/1.x answer"},
      {"HTTP/1.1 200x\r\n\r\n", "not an HTTP/1.x answer"},
      {"HTTP/1.1 2x0 OK\r\n\r\n", "bad HTTP status code"},
      {"HTTP/1.1 999 OK\r\n\r\n", "bad HTTP status code"},
      {"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "has no name"},
      {"HTTP/1.1 200 OK\r\n: value\r\n\r\n", "has no name"},
      {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", "bad Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", "bad Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "bad Content-Length"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "transfer encoding other than"},
      {"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n", "compressed"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
       "bad chunk size"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
       "longer than its size"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "middle of a chunked"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", "middle of a chunked"},
      {big_header, "over 64 KiB"},
  };
  for (const Case& c : cases) {
    Parsed p = parse(c.raw, true);
    EXPECT_EQ(p.state, ParseState::Malformed) << c.raw.substr(0, 60);
    EXPECT_NE(p.error.find(c.says), std::string::npos) << c.raw.substr(0, 60) << ": " << p.error;
  }
  // An oversized header is refused before the connection ends, not buffered without bound.
  EXPECT_EQ(parse(big_header, false).state, ParseState::Malformed);
}

// Listens on 127.0.0.1; for each connection reads the request, then writes `answer` and closes
// (or, with hold_open, keeps the connection silent until the test ends).
class ScriptedServer {
 public:
  explicit ScriptedServer(std::string answer, bool hold_open = false)
      : answer_(std::move(answer)), hold_open_(hold_open) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "cannot listen";
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::string request() const { return request_; }

 private:
  void serve() {
    int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    char buf[4096];
    while (request_.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      request_.append(buf, size_t(n));
    }
    if (!answer_.empty()) ::send(c, answer_.data(), answer_.size(), MSG_NOSIGNAL);
    while (hold_open_ && !stop_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ::close(c);
  }

  std::string answer_;
  bool hold_open_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::string request_;
  std::thread thread_;
};

HttpGet get(int port) {
  HttpGet g;
  g.host = "127.0.0.1";
  g.port = port;
  g.target = "/api/v1/status";
  g.headers = {{"Authorization", "Bearer t0ken"}};
  return g;
}

TEST(HttpGet, SendsOneRequestAndReadsAChunkedAnswer) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\nhello\r\n0\r\n\r\n");
  HttpResult r = http_get(get(server.port()));
  ASSERT_EQ(r.failure, HttpFailure::None) << r.detail;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "hello");
  const std::string req = server.request();
  EXPECT_EQ(req.rfind("GET /api/v1/status HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos)
      << req;
  EXPECT_NE(req.find("\r\nAuthorization: Bearer t0ken\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nConnection: close\r\n"), std::string::npos) << req;
}

TEST(HttpGet, FailuresAreReportedNotThrown) {
  {
    ScriptedServer server("");  // reads the request, closes without a word
    HttpResult r = http_get(get(server.port()));
    EXPECT_EQ(r.failure, HttpFailure::Malformed);
    EXPECT_NE(r.detail.find("without answering"), std::string::npos) << r.detail;
  }
  {
    ScriptedServer server("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" +
                          std::string(200, 'x'));
    HttpGet g = get(server.port());
    g.max_response_bytes = 64;
    EXPECT_EQ(http_get(g).failure, HttpFailure::TooLarge);
  }
  {
    ScriptedServer server("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", /*hold_open=*/true);
    HttpGet g = get(server.port());
    g.idle_timeout_ms = 100;
    auto start = std::chrono::steady_clock::now();
    HttpResult r = http_get(g);
    EXPECT_EQ(r.failure, HttpFailure::Transfer);
    EXPECT_NE(r.detail.find("timed out"), std::string::npos) << r.detail;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  }
  int port;
  {
    ScriptedServer server("");
    port = server.port();
    http_get(get(port));
  }
  HttpResult refused = http_get(get(port));  // nothing listens there any more
  EXPECT_EQ(refused.failure, HttpFailure::Connect);
  EXPECT_NE(refused.detail.find("refused"), std::string::npos) << refused.detail;

}

}  // namespace
}  // namespace ttmem::cli
