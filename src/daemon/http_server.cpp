#include "daemon/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>

#include "common/clock.h"

namespace ttmem::daemon {

using common::monotonic_ns;

namespace {

// What a request head may take (docs/security.md#the-http-api). The request line includes its
// line end; the header bytes are every header line with its line end plus the blank line.
constexpr size_t kMaxRequestLineBytes = 8 << 10;
constexpr size_t kMaxHeaderBytes = 16 << 10;
constexpr size_t kMaxHeaderCount = 100;
// A head that fits both bounds fits this, so a connection's buffer never holds more.
constexpr size_t kMaxHeadBytes = kMaxRequestLineBytes + kMaxHeaderBytes;

constexpr uint64_t kIdleMs = 2000;          // waiting for a request's first byte
constexpr uint64_t kRequestHeadMs = 10000;  // from a request's first byte to its blank line
constexpr uint64_t kWriteStallMs = 10000;   // an answer the client takes none of
// A streamed answer asks for its next piece once less than this waits to be sent.
constexpr size_t kSendLowWater = 64 << 10;
// Out of descriptors, the listener rests this long rather than fail accept() in a busy loop.
constexpr uint64_t kAcceptPauseMs = 100;

uint64_t now_ms() { return monotonic_ns() / 1'000'000; }

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

// An answer of the server's own (the request never reached the API), in the API's JSON form.
// `message` is a constant of this file: nothing from the request is echoed.
HttpResponse server_error(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = fmt::format(R"({{"error":"{}"}})", message);
  r.close = true;
  return r;
}

// The status line and headers of `r`: framed by Content-Length, or chunked when streamed.
std::string answer_head(const HttpResponse& r, bool close) {
  std::string head = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\n", r.status,
                                 reason_phrase(r.status), r.content_type);
  for (const auto& [name, value] : r.headers) head += fmt::format("{}: {}\r\n", name, value);
  head += r.next_piece ? std::string("Transfer-Encoding: chunked\r\n")
                       : fmt::format("Content-Length: {}\r\n", r.body.size());
  if (close) head += "Connection: close\r\n";
  head += "\r\n";
  return head;
}

// A line ends with LF, and a CR before it is not part of it.
std::string_view without_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

enum class Head { Incomplete, Complete, Malformed, LineTooLong, HeadersTooLarge };

// Parses the request head at the start of `in`. Complete: `req` is filled, *head_bytes is its
// length. Every bound is checked on what has arrived so far, so a head that will be too long is
// refused as soon as it is, without waiting for its end.
Head parse_head(std::string_view in, HttpRequest* req, bool* http10, size_t* head_bytes) {
  size_t line_end = in.find('\n');
  if (line_end == std::string_view::npos) {
    return in.size() > kMaxRequestLineBytes ? Head::LineTooLong : Head::Incomplete;
  }
  if (line_end + 1 > kMaxRequestLineBytes) return Head::LineTooLong;
  // METHOD SP TARGET SP HTTP/1.x
  std::string_view line = without_cr(in.substr(0, line_end));
  size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == 0 || sp1 == std::string_view::npos || sp2 == sp1) return Head::Malformed;
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (target.empty() || target.front() != '/' || target.find(' ') != std::string_view::npos ||
      (version != "HTTP/1.1" && version != "HTTP/1.0")) {
    return Head::Malformed;
  }
  const size_t headers_start = line_end + 1;
  std::vector<std::pair<std::string, std::string>> headers;
  for (size_t at = headers_start;;) {
    size_t end = in.find('\n', at);
    size_t header_bytes = (end == std::string_view::npos ? in.size() : end + 1) - headers_start;
    if (header_bytes > kMaxHeaderBytes) return Head::HeadersTooLarge;
    if (end == std::string_view::npos) return Head::Incomplete;
    std::string_view field = without_cr(in.substr(at, end - at));
    at = end + 1;
    if (field.empty()) {
      *head_bytes = at;
      break;
    }
    if (headers.size() == kMaxHeaderCount) return Head::HeadersTooLarge;
    size_t colon = field.find(':');
    // A line folded onto the previous one (obsolete) or a name with blanks is not a header.
    if (colon == 0 || colon == std::string_view::npos || field.front() == ' ' ||
        field.front() == '\t' || trim_blanks(field.substr(0, colon)).size() != colon) {
      return Head::Malformed;
    }
    headers.emplace_back(field.substr(0, colon), trim_blanks(field.substr(colon + 1)));
  }
  req->method = line.substr(0, sp1);
  req->headers = std::move(headers);
  parse_target(target, &req->path, &req->params);
  *http10 = version == "HTTP/1.0";
  return Head::Complete;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// The address a connection comes from, as text: the key of the per-client cap.
std::string peer_address(const sockaddr_storage& peer) {
  char text[INET6_ADDRSTRLEN] = {};
  if (peer.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr, text,
                sizeof text);
  } else if (peer.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(peer).sin_addr, text, sizeof text);
  }
  return text;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return &value;
  }
  return nullptr;
}

bool HttpRequest::announces_body() const {
  const std::string* length = header("Content-Length");
  return header("Transfer-Encoding") ||
         (length && length->find_first_not_of('0') != std::string::npos);
}

std::string percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    int high = -1, low = -1;
    if (text[i] == '%' && i + 2 < text.size()) {
      high = hex_digit(text[i + 1]);
      low = hex_digit(text[i + 2]);
    }
    if (high >= 0 && low >= 0) {
      out += char(high * 16 + low);
      i += 2;
    } else {
      out += plus_is_space && text[i] == '+' ? ' ' : text[i];
    }
  }
  return out;
}

void parse_target(std::string_view target, std::string* path, ApiParams* params) {
  size_t question = target.find('?');
  *path = percent_decode(target.substr(0, question), false);
  params->clear();
  if (question == std::string_view::npos) return;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t equals = pair.find('=');
    std::string name = percent_decode(pair.substr(0, equals), true);
    if (name.empty()) continue;
    params->emplace(std::move(name), equals == std::string_view::npos
                                         ? std::string()
                                         : percent_decode(pair.substr(equals + 1), true));
  }
}

struct HttpServer::Connection {
  int fd = -1;
  std::string client;  // peer address
  bool writing = false;  // an answer is being sent; the next request waits in the kernel
  std::string in;        // the request head read so far, and any request pipelined after it
  std::string out;       // the answer's bytes not yet sent, from out_sent on
  size_t out_sent = 0;
  std::function<bool(std::string&)> next_piece;  // the rest of a streamed answer
  bool close_after = false;  // close once `out` is sent
  uint32_t watching = 0;     // the epoll events asked for
  uint64_t deadline_ms = 0;  // closed if still waiting then
};

struct HttpServer::State {
  std::unordered_map<int, Connection> connections;  // by descriptor
  std::map<std::string, size_t> per_client;         // open connections by peer address
};

HttpServer::HttpServer(const std::string& host, int port, HttpLimits limits, Handler handler)
    : limits_(limits), handler_(std::move(handler)), state_(std::make_unique<State>()) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  std::string port_text = std::to_string(port);
  if (::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &found) != 0) found = nullptr;
  for (addrinfo* a = found; a != nullptr && listen_fd_ < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
      listen_fd_ = fd;
    } else {
      ::close(fd);
    }
  }
  if (found) ::freeaddrinfo(found);
  if (listen_fd_ < 0) {
    throw std::runtime_error(fmt::format(
        "cannot listen on {}:{}: the address is in use or not local; choose another with "
        "--listen",
        host, port));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(bound).sin6_port
                                            : reinterpret_cast<sockaddr_in&>(bound).sin_port);

  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    throw std::runtime_error(fmt::format("cannot create the HTTP event loop: {}",
                                         std::strerror(errno)));
  }
  for (int fd : {listen_fd_, wake_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
}

HttpServer::~HttpServer() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd_, &one, sizeof one);
    (void)n;
    thread_.join();
  }
  for (auto& [fd, connection] : state_->connections) ::close(fd);
  for (int fd : {listen_fd_, epoll_fd_, wake_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

void HttpServer::start() {
  thread_ = std::thread([this] { run(); });
}

void HttpServer::run() {
  epoll_event events[64];
  for (;;) {
    int n = ::epoll_wait(epoll_fd_, events, 64, next_timeout_ms(now_ms()));
    if (n < 0 && errno != EINTR) return;
    const uint64_t now = now_ms();
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) return;
      if (fd == listen_fd_) {
        accept_connections(now);
        continue;
      }
      auto it = state_->connections.find(fd);
      if (it == state_->connections.end()) continue;  // closed by an earlier event
      Connection& c = it->second;
      if (events[i].events & (EPOLLERR | EPOLLHUP)) {
        close_connection(fd);
      } else if (c.writing || (events[i].events & EPOLLOUT)) {
        serve(c, now);
      } else {
        read_request(c, now);
      }
    }
    close_expired(now_ms());
    if (listener_paused_until_ms_ != 0 && now_ms() >= listener_paused_until_ms_) {
      listener_paused_until_ms_ = 0;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = listen_fd_;
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
    }
  }
}

int HttpServer::next_timeout_ms(uint64_t now) const {
  uint64_t soonest = listener_paused_until_ms_ != 0 ? listener_paused_until_ms_ : UINT64_MAX;
  for (const auto& [fd, c] : state_->connections) soonest = std::min(soonest, c.deadline_ms);
  if (soonest == UINT64_MAX) return -1;
  return soonest <= now ? 0 : int(std::min<uint64_t>(soonest - now, 60'000));
}

void HttpServer::accept_connections(uint64_t now) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
        listener_paused_until_ms_ = now + kAcceptPauseMs;
      }
      return;  // EAGAIN: all taken; anything else concerns that one connection only
    }
    std::string client = peer_address(peer);
    size_t& from_client = state_->per_client[client];
    if (state_->connections.size() >= limits_.max_connections ||
        from_client >= limits_.max_connections_per_client) {
      if (from_client == 0) state_->per_client.erase(client);
      refuse_connection(fd);
      continue;
    }
    ++from_client;
    // An answer is written in pieces, and a kept-alive connection waits for the next request
    // after it: Nagle's algorithm would hold a piece's tail until the client's delayed ACK.
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Connection& c = state_->connections[fd];
    c.fd = fd;
    c.client = std::move(client);
    c.deadline_ms = now + kIdleMs;
    watch(c, EPOLLIN);
  }
}

// A connection over a cap is told why and closed at once, before anything of it is read. The
// answer fits any new socket's send buffer, so the non-blocking send does not fall short.
void HttpServer::refuse_connection(int fd) {
  HttpResponse busy = server_error(
      503, "too many connections: close idle ones (at most one per scraper is needed)");
  std::string text = answer_head(busy, true) + busy.body;
  ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  (void)n;
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
}

void HttpServer::watch(Connection& c, uint32_t events) {
  if (c.watching == events) return;
  c.watching = events;
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = c.fd;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev) != 0) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev);
  }
}

void HttpServer::close_connection(int fd) {
  auto it = state_->connections.find(fd);
  if (it == state_->connections.end()) return;
  auto client = state_->per_client.find(it->second.client);
  if (client != state_->per_client.end() && --client->second == 0) {
    state_->per_client.erase(client);
  }
  state_->connections.erase(it);
  ::close(fd);  // also takes it out of the epoll set
}

void HttpServer::close_expired(uint64_t now) {
  std::vector<int> expired;
  for (auto& [fd, c] : state_->connections) {
    if (c.deadline_ms > now) continue;
    // A loop held up (long lists being selected) can pass a new connection's idle deadline
    // before reading the request its client sent in time: bytes waiting unread are not
    // idleness. They are read on the next turn, and from the first byte the head deadline
    // bounds the request as ever, so a client trickling bytes gains nothing.
    char byte;
    if (!c.writing && c.in.empty() && ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
      c.deadline_ms = now + kRequestHeadMs;
      continue;
    }
    expired.push_back(fd);
  }
  for (int fd : expired) close_connection(fd);
}

// Appends the streamed answer's next piece to c.out as a chunk, and the last chunk after the
// last piece. False when the piece could not be built: the answer has begun, so its status
// cannot change, and the connection is closed without the last chunk, which tells the client
// the answer is incomplete.
bool HttpServer::append_next_piece(Connection& c) {
  c.out.erase(0, c.out_sent);
  c.out_sent = 0;
  std::string piece;
  bool more = false;
  try {
    more = c.next_piece(piece);
  } catch (const std::exception&) {
    return false;
  }
  if (!piece.empty()) c.out += fmt::format("{:x}\r\n{}\r\n", piece.size(), piece);
  if (!more) {
    c.out += "0\r\n\r\n";
    c.next_piece = nullptr;
  }
  return true;
}

void HttpServer::read_request(Connection& c, uint64_t now) {
  // Never more than a head may take: what a client sends beyond it is not read at all (a head
  // that fills the buffer is too long, and refused by parse_head).
  char buffer[4096];
  size_t room = std::min(sizeof buffer, kMaxHeadBytes + 1 - std::min(c.in.size(), kMaxHeadBytes));
  ssize_t n = ::recv(c.fd, buffer, room, 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return close_connection(c.fd);
  if (n < 0) return;
  if (c.in.empty()) c.deadline_ms = now + kRequestHeadMs;
  c.in.append(buffer, size_t(n));
  serve(c, now);
}

void HttpServer::serve(Connection& c, uint64_t now) {
  if (!c.writing) {
    if (!start_answer(c, now)) {
      watch(c, EPOLLIN);  // the rest of the head
      return;
    }
    // A streamed answer starts on the next turn, after the other requests of this one: those
    // that came together are then answered from the same publication (see http_api.cpp).
    if (c.next_piece) {
      watch(c, EPOLLOUT);
      return;
    }
  }
  if (!write_answer(c, now)) return;
  // Answered. A request pipelined behind it waits for the next turn, after everyone else's, so
  // a client with a buffer full of requests does not keep the loop to itself: a socket with
  // room reports EPOLLOUT at once.
  watch(c, c.in.empty() ? EPOLLIN : EPOLLOUT);
}

bool HttpServer::start_answer(Connection& c, uint64_t now) {
  HttpRequest req;
  bool http10 = false;
  size_t head_bytes = 0;
  HttpResponse answer;
  bool head_only = false;
  switch (parse_head(c.in, &req, &http10, &head_bytes)) {
    case Head::Incomplete:
      return false;
    case Head::Malformed:
      answer = server_error(400, "malformed HTTP/1.x request head");
      break;
    case Head::LineTooLong:
      answer = server_error(414, "the request line is over 8 KiB");
      break;
    case Head::HeadersTooLarge:
      answer = server_error(431, "the request headers are over 16 KiB or 100 lines");
      break;
    case Head::Complete:
      c.in.erase(0, head_bytes);
      head_only = req.method == "HEAD";
      try {
        answer = handler_(req);
      } catch (const std::exception&) {
        answer = server_error(500, "internal error");
      }
      const std::string* connection = req.header("Connection");
      answer.close = answer.close || req.announces_body() || http10 ||
                     (connection && iequals(*connection, "close"));
      break;
  }
  // What follows a refused head is never parsed: it could be anything.
  if (answer.close) c.in = {};
  c.out = answer_head(answer, answer.close);
  if (!head_only) {
    c.out += answer.body;
    c.next_piece = std::move(answer.next_piece);
  }
  c.out_sent = 0;
  c.close_after = answer.close;
  c.writing = true;
  c.deadline_ms = now + kWriteStallMs;
  return true;
}

bool HttpServer::write_answer(Connection& c, uint64_t now) {
  bool built_a_piece = false;
  for (;;) {
    // Refill from a streamed answer once most of what was built is sent, so a slow reader holds
    // one piece at most; and one piece a turn, so a fast reader of a long answer does not keep
    // the loop from everyone else (four 200,000-buffer lists were otherwise sent one after
    // another, and /metrics waited behind them).
    if (c.next_piece && c.out.size() - c.out_sent < kSendLowWater) {
      if (built_a_piece) {
        watch(c, EPOLLOUT);
        return false;
      }
      if (!append_next_piece(c)) {
        close_connection(c.fd);
        return false;
      }
      built_a_piece = true;
    }
    if (c.out_sent == c.out.size()) break;
    ssize_t n = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent,
                       MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      watch(c, EPOLLOUT);
      return false;
    }
    if (n <= 0) {
      close_connection(c.fd);
      return false;
    }
    c.out_sent += size_t(n);
    c.deadline_ms = now + kWriteStallMs;
  }
  if (c.close_after) {
    ::shutdown(c.fd, SHUT_WR);
    close_connection(c.fd);
    return false;
  }
  // Kept alive: give the answer's memory back and wait for the next request, which may
  // already be here (pipelined).
  c.out = {};
  c.out_sent = 0;
  c.writing = false;
  c.deadline_ms = now + (c.in.empty() ? kIdleMs : kRequestHeadMs);
  return true;
}

}  // namespace ttmem::daemon
