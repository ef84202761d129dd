// `ttmem --server URL`: the snapshot a ttmemd serves, read over its HTTP API, so status, buffers
// and leaks print from another host exactly what they print locally.
#pragma once

#include <optional>
#include <string>

#include "cli/commands.h"
#include "collector/snapshot.h"

namespace ttmem::cli {

struct ServerAddress {
  std::string host;  // name, IPv4 address or [IPv6] as given
  int port = 0;
  std::string url;   // http://host:port, without a trailing slash
};

// Accepts only http://HOST:PORT with an optional trailing '/'; throws CliError saying the form.
ServerAddress parse_server_url(const std::string& text);

// GET /api/v1/status, (with list_buffers) /api/v1/buffers?limit=0 and (with leak_records)
// /api/v1/leaks from the daemon at global.server, with the token of global.token_file or
// $TTMEM_TOKEN; without leak_records the leaks are only counted, from the status. Throws
// CliError (one line saying what to do) when the URL is invalid, the daemon is unreachable,
// answers an HTTP error or 401, or sends anything that is not the JSON it should.
collector::Snapshot fetch_snapshot(const GlobalOptions& global, bool list_buffers,
                                   bool leak_records);

// The status of the ttmemd at `url` that serves the segment directory (collector/daemon_file.h).
// With `fresh`, refreshed for this request (GET /api/v1/status?fresh=1), so it shows everything
// allocated before the call, as reading the segments would; otherwise as the daemon last
// published it (within its interval). nullopt when it does not answer so within a few seconds:
// the caller then reads the segments itself.
std::optional<collector::Snapshot> fetch_daemon_status(const std::string& url, bool fresh);

}  // namespace ttmem::cli
