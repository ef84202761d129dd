// ttmemd's HTTP/1.1 server: one thread, one epoll loop, non-blocking sockets, in the manner of
// redis. It exists for what a general-purpose library (cpp-httplib 0.11, used before) could not
// bound: what a client may make the daemon read, hold and keep open.
//
// - A request head is read into a buffer that never grows past its bounds: a request line over
//   8 KiB is answered 414, headers over 16 KiB or 100 lines 431, and the connection closes with
//   nothing more read.
// - Request bodies are never read. The API refuses any request that announces one (http_api),
//   and the connection closes after the answer, so the body is never taken for a request.
// - Connections are capped per client address and in all; one beyond a cap is answered 503 and
//   closed at once. A connection waiting for a request is closed after 2 s, a request head must
//   be complete 10 s after its first byte, and an answer the client stops taking for 10 s is
//   dropped.
// - A streamed answer (HttpResponse::next_piece) is built a piece at a time as the socket takes
//   what was sent: a client that reads slowly holds at most one piece and 64 KiB, never the
//   whole answer.
// Since nothing waits on a client, a slow or hostile one never delays another's /metrics.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "daemon/http_message.h"

namespace ttmem::daemon {

struct HttpLimits {
  size_t max_connections = 512;            // open at once, from every client together
  size_t max_connections_per_client = 64;  // open at once from one client address
};

class HttpServer {
 public:
  // Answers one request. Runs on the server's thread; must not block.
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Binds host:port (port 0 picks a free one). Throws std::runtime_error saying what to do.
  HttpServer(const std::string& host, int port, HttpLimits limits, Handler handler);
  // Stops serving and closes every connection.
  ~HttpServer();

  int port() const { return port_; }

  // Serves on a thread of its own until the server is destroyed.
  void start();

 private:
  struct Connection;
  void run();
  void accept_connections(uint64_t now_ms);
  void refuse_connection(int fd);
  void read_request(Connection& c, uint64_t now_ms);
  // Answers the request at the start of c.in, or goes on with the answer being sent.
  void serve(Connection& c, uint64_t now_ms);
  // Parses the request at the start of c.in and builds its answer; false if the head is not
  // all there yet.
  bool start_answer(Connection& c, uint64_t now_ms);
  // Sends what the socket takes; true once the whole answer is sent and the connection waits
  // for the next request, false while it waits to be writable or once it is closed.
  bool write_answer(Connection& c, uint64_t now_ms);
  bool append_next_piece(Connection& c);
  void watch(Connection& c, uint32_t events);
  void close_connection(int fd);
  void close_expired(uint64_t now_ms);
  int next_timeout_ms(uint64_t now_ms) const;

  HttpLimits limits_;
  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;                  // eventfd: the destructor stops the loop
  uint64_t listener_paused_until_ms_ = 0;  // out of descriptors: accept again after this
  struct State;
  std::unique_ptr<State> state_;
  std::thread thread_;
};

}  // namespace ttmem::daemon
