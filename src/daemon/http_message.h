// What ttmemd's HTTP server (http_server.h) hands the API (http_api.h) and gets back from it:
// a parsed request and an answer, with no sockets in either, so the endpoints can be tested and
// fuzzed without a connection.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ttmem::daemon {

// A request's query parameters, decoded, in the order given.
using ApiParams = std::multimap<std::string, std::string>;

struct HttpRequest {
  std::string method;  // as sent, e.g. "GET"
  std::string path;    // the target before '?', percent-decoded
  ApiParams params;    // the query, decoded (parse_target)
  std::vector<std::pair<std::string, std::string>> headers;  // as sent, values trimmed

  // The first header called `name` (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;

  // Whether a body follows the head (Transfer-Encoding, or a Content-Length other than 0). No
  // body is ever read: the API refuses such a request, and its connection carries no other.
  bool announces_body() const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones: Allow, ...
  std::string body;
  // A body too long to build whole: the server calls this whenever it has sent most of what it
  // holds; it appends the next piece to `out` and returns false once that was the last. Set, it
  // replaces `body` and the answer is sent chunked.
  std::function<bool(std::string& out)> next_piece;
  bool close = false;  // the connection ends after this answer
};

// Splits a request target ("/api/v1/buffers?kind=l1&limit=3") into its percent-decoded path and
// its query parameters (names and values decoded, '+' as a space; a pair without a name is
// dropped).
void parse_target(std::string_view target, std::string* path, ApiParams* params);

// "%41+b" -> "A+b", or "A b" with plus_is_space. A '%' not followed by two hex digits stays.
std::string percent_decode(std::string_view text, bool plus_is_space);

}  // namespace ttmem::daemon
