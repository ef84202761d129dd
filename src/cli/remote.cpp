#include "cli/remote.h"

#include <cctype>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/http_client.h"
#include "collector/json.h"
#include "common/token.h"

namespace ttmem::cli {

using collector::JsonDocument;
using collector::JsonValue;
using collector::Snapshot;
using collector::snapshot_from_json;
using common::read_token_file;

namespace {

using nlohmann::json;

constexpr size_t kMaxBodyBytes = size_t(1) << 30;  // more is not a ttmemd answer
constexpr const char* kUrlForm = "http://HOST:PORT (ttmemd prints its URL when it starts)";

// Text from the server, made safe for one line of a terminal: printable ASCII, at most 200 chars.
std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text.substr(0, 200)) out += std::isprint(c) ? char(c) : '?';
  if (text.size() > 200) out += "...";
  return out;
}

// nlohmann's messages start with "[json.exception.type_error.302] "; the rest says what.
std::string json_message(const json::exception& e) {
  std::string what = e.what();
  auto end = what.find("] ");
  return end == std::string::npos ? what : what.substr(end + 2);
}

struct Token {
  std::string value;   // empty: send none
  std::string source;  // where it came from, for the 401 message
};

Token find_token(const GlobalOptions& global) {
  Token t;
  if (!global.token_file.empty()) {
    try {
      t.value = read_token_file(global.token_file);
    } catch (const std::runtime_error& e) {
      throw CliError(e.what());
    }
    t.source = global.token_file;
  } else if (const char* env = std::getenv("TTMEM_TOKEN"); env != nullptr && *env != '\0') {
    t.value = env;
    t.source = "TTMEM_TOKEN";
  }
  for (unsigned char c : t.value) {
    if (!std::isprint(c)) {
      throw CliError("the token from " + t.source + " has a control character; a token is one "
                     "line of printable text");
    }
  }
  return t;
}

// The answer to GET `path`, parsed into a JsonDocument: several times faster than nlohmann's DOM,
// which matters for `ttmem top` showing a daemon's overview ten times a second.
JsonDocument get_json(const ServerAddress& server, const std::string& path, const Token& token,
                      int connect_timeout_ms = 5000, int idle_timeout_ms = 30000) {
  HttpGet request;
  request.connect_timeout_ms = connect_timeout_ms;
  request.idle_timeout_ms = idle_timeout_ms;
  // An IPv6 address is written in brackets in a URL, and resolved without them.
  request.host = server.host.front() == '[' ? server.host.substr(1, server.host.size() - 2)
                                            : server.host;
  request.port = server.port;
  request.target = path;
  if (!token.value.empty()) request.headers.emplace_back("Authorization", "Bearer " + token.value);
  request.max_response_bytes = kMaxBodyBytes;
  HttpResult got = http_get(request);
  switch (got.failure) {
    case HttpFailure::None:
      break;
    case HttpFailure::Connect:
      throw CliError(fmt::format("cannot reach ttmemd at {} ({}): check that ttmemd runs there "
                                 "and listens on that address (ttmemd --listen HOST:PORT)",
                                 server.url, got.detail));
    case HttpFailure::TooLarge:
      throw CliError(fmt::format("ttmemd at {} sent more than 1 GiB for GET {}; is that URL a "
                                 "ttmemd?",
                                 server.url, path));
    case HttpFailure::Transfer:
    case HttpFailure::Malformed:
      throw CliError(fmt::format("GET {} from {} failed ({}): is that URL a ttmemd, and is it "
                                 "still running?",
                                 path, server.url, printable(got.detail)));
  }
  const HttpResponse& res = got.response;
  if (res.status == 401) {
    if (token.value.empty()) {
      throw CliError(fmt::format("ttmemd at {} needs a token: pass --token-file FILE (the token "
                                 "on its first line) or set TTMEM_TOKEN",
                                 server.url));
    }
    throw CliError(fmt::format("ttmemd at {} refused the token from {}: use the token in that "
                               "ttmemd's --token-file",
                               server.url, token.source));
  }
  std::optional<JsonDocument> doc;
  try {
    doc = JsonDocument::parse(std::move(got.response.body));
  } catch (const json::parse_error&) {
  }
  if (res.status != 200) {
    std::string says = "no error message";
    const JsonValue* error = doc ? doc->root().find("error") : nullptr;
    if (error != nullptr && error->is_string()) says = printable(error->get<std::string>());
    throw CliError(fmt::format("ttmemd at {} answered HTTP {} to GET {}: {}", server.url,
                               res.status, path, says));
  }
  if (!doc) {
    throw CliError(fmt::format("{} sent malformed JSON for GET {}: is that URL a ttmemd? (its "
                               "first stdout line gives the URL)",
                               server.url, path));
  }
  return std::move(*doc);
}

}  // namespace

ServerAddress parse_server_url(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return CliError(fmt::format("bad --server '{}': {}; use {}", printable(text), why, kUrlForm));
  };
  const std::string scheme = "http://";
  if (text.rfind("https://", 0) == 0) throw bad("ttmemd serves plain HTTP, not HTTPS");
  if (text.rfind(scheme, 0) != 0) throw bad("it must start with http://");
  std::string rest = text.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  ServerAddress a;
  size_t colon;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos || close == 1) throw bad("unterminated [IPv6 address]");
    for (unsigned char c : rest.substr(1, close - 1)) {
      if (!std::isxdigit(c) && c != ':' && c != '.') throw bad("not an IPv6 address in [ ]");
    }
    a.host = rest.substr(0, close + 1);
    colon = close + 1;
    if (colon >= rest.size() || rest[colon] != ':') throw bad("no :PORT after the address");
  } else {
    colon = rest.rfind(':');
    if (colon == std::string::npos) throw bad("no :PORT");
    a.host = rest.substr(0, colon);
    if (a.host.empty()) throw bad("no host");
    for (unsigned char c : a.host) {
      if (!std::isalnum(c) && c != '.' && c != '-') {
        throw bad("the host may hold only letters, digits, '.' and '-' (no path, user or query)");
      }
    }
  }
  std::string port = rest.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) == 0 ||
      std::stoi(port) > 65535) {
    throw bad("the port must be a number from 1 to 65535, and nothing may follow it but '/'");
  }
  a.port = std::stoi(port);
  a.url = scheme + a.host + ":" + std::to_string(a.port);
  return a;
}

Snapshot fetch_snapshot(const GlobalOptions& global, bool list_buffers, bool leak_records) {
  ServerAddress server = parse_server_url(global.server);
  Token token = find_token(global);
  const JsonDocument status = get_json(server, "/api/v1/status", token);
  const JsonDocument buffers =
      list_buffers ? get_json(server, "/api/v1/buffers?limit=0", token) : JsonDocument();
  const JsonDocument leaks =
      leak_records ? get_json(server, "/api/v1/leaks", token) : JsonDocument();
  try {
    return snapshot_from_json(status.root(), buffers.root(), leaks.root());
  } catch (const json::exception& e) {
    throw CliError(fmt::format("ttmemd at {} sent a snapshot this ttmem cannot read ({}): use "
                               "a ttmem of the same version as that ttmemd",
                               server.url, printable(json_message(e))));
  }
}

std::optional<Snapshot> fetch_daemon_status(const std::string& url, bool fresh) {
  try {
    const ServerAddress server = parse_server_url(url);
    // Short waits: a daemon that is stopped or stuck must not hold `ttmem status` or `ttmem top`
    // up for long.
    const JsonDocument status =
        get_json(server, fresh ? "/api/v1/status?fresh=1" : "/api/v1/status", Token{}, 500, 5000);
    return snapshot_from_json(status.root(), JsonValue(), JsonValue());
  } catch (const CliError&) {
  } catch (const json::exception&) {
  }
  return std::nullopt;
}

}  // namespace ttmem::cli
