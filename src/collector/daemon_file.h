// How `ttmem status` finds a ttmemd serving its segment directory: the daemon writes
// kDaemonFileName there while it runs ({"url", "pid", "start_time"}) and removes it at exit.
// A status asked of that daemon is answered from its incremental state, refreshed for the
// request: at a million live buffers a few milliseconds, where reading every record takes tens.
#pragma once

#include <optional>
#include <string>

namespace ttmem::collector {

inline constexpr const char* kDaemonFileName = "ttmemd.json";

// Replaces the file in `dir` (written aside, then renamed) with this process as the daemon at
// `url`. Returns "" or what went wrong.
std::string write_daemon_file(const std::string& dir, const std::string& url);

// Removes the file from `dir` if it still names this process (another daemon may have taken
// the directory over since).
void remove_daemon_file(const std::string& dir);

// The URL of the ttmemd the file in `dir` names, when it can be believed: a regular file owned
// by this user or root, naming a live process (pid and start time) and a loopback http URL.
// nullopt otherwise, and for a file of any other form.
std::optional<std::string> find_daemon_url(const std::string& dir);

}  // namespace ttmem::collector
