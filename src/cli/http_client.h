// A plain HTTP/1.1 GET client for `ttmem --server`: just what talking to ttmemd needs.
//
// Why not an HTTP library: the one ttmemd serves with is built with OpenSSL, zlib and brotli,
// and loading those costs every `ttmem` command about 3 ms of start-up, a quarter of a
// `ttmem status` that reads 100,000 buffers locally. ttmemd speaks plain HTTP, so the client
// needs no TLS and no compression.
//
// Everything the server sends is hostile input: the response is parsed strictly and bounded in
// size, and every failure is reported, never thrown past the caller or fatal.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ttmem::cli {

struct HttpResponse {
  int status = 0;    // 100..599
  std::string body;  // de-chunked
};

enum class ParseState { Complete, Incomplete, Malformed };

// Parses `raw`, the bytes received so far. Complete: *out holds the answer. Incomplete: more
// bytes are needed (with `closed`, the connection ended: a body without a length runs to the
// end, anything else short is Malformed); *wanted, if given, is then the size `raw` must reach
// before parsing again is worth it (SIZE_MAX: only the end of the connection completes it).
// Malformed: *error says what is wrong.
ParseState parse_http_response(std::string_view raw, bool closed, HttpResponse* out,
                               std::string* error, size_t* wanted = nullptr);

struct HttpGet {
  std::string host;  // a name or an address; an IPv6 address without brackets
  int port = 0;
  std::string target;                                       // "/api/v1/status"
  std::vector<std::pair<std::string, std::string>> headers;  // sent as given
  int connect_timeout_ms = 5000;
  int idle_timeout_ms = 30000;  // the longest wait for the next bytes of the answer
  size_t max_response_bytes = size_t(1) << 30;
};

enum class HttpFailure {
  None,
  Connect,    // no address of the host accepted a connection in time
  Transfer,   // the connection broke, or the answer stalled past idle_timeout_ms
  TooLarge,   // the answer passed max_response_bytes
  Malformed,  // not an HTTP/1.x answer
};

struct HttpResult {
  HttpFailure failure = HttpFailure::None;
  std::string detail;  // for a failure: what happened, e.g. "connection refused"
  HttpResponse response;
};

// Connects, sends `GET target` with `Connection: close`, and reads the answer. Blocks for at
// most the timeouts; never raises SIGPIPE.
HttpResult http_get(const HttpGet& request);

}  // namespace ttmem::cli
