#include "cli/http_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

namespace ttmem::cli {
namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;  // ttmemd sends a few hundred

// Header names and the few values we look at are ASCII: compared without the C locale.
bool iequals(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [&](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A whole string of digits in `base` that fits in size_t; nullopt otherwise.
std::optional<size_t> parse_number(std::string_view s, int base) {
  size_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// Decodes a chunked body (RFC 9112 section 7.1), `in` being everything after the header up to
// the end of the connection.
ParseState dechunk(std::string_view in, std::string* body, std::string* error) {
  body->clear();
  size_t pos = 0;
  for (;;) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string_view::npos) break;
    std::string_view line = in.substr(pos, eol - pos);
    line = trim(line.substr(0, line.find(';')));  // chunk extensions carry nothing for us
    auto size = parse_number(line, 16);
    if (!size) {
      *error = "bad chunk size in a chunked answer";
      return ParseState::Malformed;
    }
    pos = eol + 2;
    if (*size == 0) {
      // Trailer fields, if any, end with an empty line.
      for (;;) {
        size_t end = in.find("\r\n", pos);
        if (end == std::string_view::npos) break;
        if (end == pos) return ParseState::Complete;
        pos = end + 2;
      }
      break;
    }
    if (in.size() - pos < *size || in.size() - pos - *size < 2) break;
    if (in.substr(pos + *size, 2) != "\r\n") {
      *error = "a chunk of a chunked answer is longer than its size says";
      return ParseState::Malformed;
    }
    body->append(in.substr(pos, *size));
    pos += *size + 2;
  }
  *error = "the connection closed in the middle of a chunked answer";
  return ParseState::Malformed;
}

std::string errno_text(int err) {
  std::string s = std::strerror(err);
  if (!s.empty()) s[0] = char(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

// Waits for `events` on fd; false on timeout (errno ETIMEDOUT) or error.
bool wait_for(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    int n = ::poll(&p, 1, timeout_ms);
    if (n > 0) return true;
    if (n == 0) {
      errno = ETIMEDOUT;
      return false;
    }
    if (errno != EINTR) return false;
  }
}

// A connected non-blocking socket, or -1 with *error set.
int connect_to(const HttpGet& request, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string port = std::to_string(request.port);
  if (int rc = ::getaddrinfo(request.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    *error = std::string("cannot resolve the host: ") + ::gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      *error = errno_text(errno);
      continue;
    }
    bool ok = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    if (!ok && errno == EINPROGRESS && wait_for(fd, POLLOUT, request.connect_timeout_ms)) {
      int err = 0;
      socklen_t len = sizeof err;
      ok = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
      if (!ok) errno = err;
    }
    if (!ok) {
      *error = errno == ETIMEDOUT ? "connection timed out" : errno_text(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  return fd;
}

bool send_all(int fd, std::string_view data, int timeout_ms, std::string* error) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(size_t(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
               wait_for(fd, POLLOUT, timeout_ms)) {
      continue;
    } else {
      *error = "cannot send the request: " + errno_text(errno);
      return false;
    }
  }
  return true;
}

}  // namespace

ParseState parse_http_response(std::string_view raw, bool closed, HttpResponse* out,
                               std::string* error, size_t* wanted) {
  size_t header_end = raw.find("\r\n\r\n");
  if (wanted != nullptr) *wanted = raw.size() + 1;
  if (header_end == std::string_view::npos) {
    if (raw.size() > kMaxHeaderBytes) {
      *error = "the answer's header is over 64 KiB";
      return ParseState::Malformed;
    }
    if (closed) {
      *error = raw.empty() ? "the server closed the connection without answering"
                           : "the connection closed in the middle of the answer's header";
      return ParseState::Malformed;
    }
    return ParseState::Incomplete;
  }
  if (header_end > kMaxHeaderBytes) {
    *error = "the answer's header is over 64 KiB";
    return ParseState::Malformed;
  }
  std::string_view head = raw.substr(0, header_end + 2);  // every line ends with CRLF
  std::string_view rest = raw.substr(header_end + 4);

  size_t eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  // "HTTP/1.x NNN reason"; the reason may be empty.
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." ||
      (status_line[7] != '0' && status_line[7] != '1') || status_line[8] != ' ' ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    *error = "not an HTTP/1.x answer";
    return ParseState::Malformed;
  }
  auto status = parse_number(status_line.substr(9, 3), 10);
  if (!status || *status < 100 || *status > 599) {
    *error = "bad HTTP status code";
    return ParseState::Malformed;
  }

  std::optional<size_t> content_length;
  bool chunked = false;
  for (size_t pos = eol + 2; pos < head.size();) {
    size_t end = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, end - pos);
    pos = end + 2;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      *error = "a header line of the answer has no name";
      return ParseState::Malformed;
    }
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "Content-Length")) {
      auto n = parse_number(value, 10);
      if (!n || *n > SIZE_MAX / 2 || (content_length && *content_length != *n)) {
        *error = "bad Content-Length in the answer";
        return ParseState::Malformed;
      }
      content_length = n;
    } else if (iequals(name, "Transfer-Encoding")) {
      if (!iequals(value, "chunked")) {
        *error = "the answer uses a transfer encoding other than chunked";
        return ParseState::Malformed;
      }
      chunked = true;
    } else if (iequals(name, "Content-Encoding") && !iequals(value, "identity")) {
      *error = "the answer is compressed, though none was asked for";
      return ParseState::Malformed;
    }
  }

  out->status = int(*status);
  if (chunked || !content_length) {
    // Both end with the connection (the request said `Connection: close`): decoding them
    // before that would only be repeated.
    if (wanted != nullptr) *wanted = SIZE_MAX;
    if (!closed) return ParseState::Incomplete;
  }
  if (chunked) return dechunk(rest, &out->body, error);
  if (content_length) {
    if (rest.size() < *content_length) {
      if (wanted != nullptr) *wanted = header_end + 4 + *content_length;
      if (!closed) return ParseState::Incomplete;
      *error = "the connection closed before the whole answer arrived";
      return ParseState::Malformed;
    }
    out->body.assign(rest.substr(0, *content_length));
    return ParseState::Complete;
  }
  // No length: the body runs to the end of the connection.
  out->body.assign(rest);
  return ParseState::Complete;
}

HttpResult http_get(const HttpGet& request) {
  HttpResult result;
  auto fail = [&](HttpFailure f, std::string detail) {
    result.failure = f;
    result.detail = std::move(detail);
    return result;
  };
  std::string error;
  int fd = connect_to(request, &error);
  if (fd < 0) return fail(HttpFailure::Connect, error);

  std::string message = "GET " + request.target + " HTTP/1.1\r\nHost: " + request.host + ":" +
                        std::to_string(request.port) +
                        "\r\nAccept: application/json\r\nConnection: close\r\n";
  for (const auto& [name, value] : request.headers) message += name + ": " + value + "\r\n";
  message += "\r\n";
  if (!send_all(fd, message, request.idle_timeout_ms, &error)) {
    ::close(fd);
    return fail(HttpFailure::Transfer, error);
  }

  std::string raw;
  char buf[64 * 1024];
  size_t wanted = 1;  // parse again once `raw` has this many bytes, or the connection closed
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_for(fd, POLLIN, request.idle_timeout_ms)) continue;
      ::close(fd);
      return fail(HttpFailure::Transfer, errno == ETIMEDOUT
                                             ? "the answer stalled (read timed out)"
                                             : "cannot read the answer: " + errno_text(errno));
    }
    if (n < 0) {
      ::close(fd);
      return fail(HttpFailure::Transfer, "cannot read the answer: " + errno_text(errno));
    }
    if (raw.size() + size_t(n) > request.max_response_bytes) {
      ::close(fd);
      return fail(HttpFailure::TooLarge, "the answer is larger than expected");
    }
    raw.append(buf, size_t(n));
    const bool closed = n == 0;
    if (!closed && raw.size() < wanted) continue;
    ParseState state = parse_http_response(raw, closed, &result.response, &error, &wanted);
    if (state == ParseState::Complete) break;
    if (state == ParseState::Malformed) {
      ::close(fd);
      return fail(HttpFailure::Malformed, error);
    }
  }
  ::close(fd);
  return result;
}

}  // namespace ttmem::cli
