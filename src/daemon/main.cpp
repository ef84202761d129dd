// ttmemd: the collector plus an HTTP API, Prometheus /metrics and legacy socket ingest.
#include <CLI/CLI.hpp>

#include <sys/resource.h>

#include <cstdio>

#include "common/access.h"
#include "common/token.h"
#include "daemon/daemon.h"
#include "protocol/legacy.h"

int main(int argc, char** argv) {
  using namespace ttmem::daemon;
  CLI::App app{"ttmemd: device-memory tracking daemon (HTTP API, Prometheus metrics, legacy "
               "socket ingest)"};
  app.set_version_flag("--version", std::string("ttmemd ") + TTMEM_VERSION);
  DaemonOptions o;
  std::string token_file;
  bool legacy = false;
  bool no_process_metrics = false;
  bool no_reap = false;
  bool no_tt_metal_shm = false;
  app.add_option("--dir", o.dir, "Segment directory (default: $TTMEM_DIR, else /dev/shm/ttmem-<uid>)");
  app.add_option("--listen", o.listen, "HTTP address HOST:PORT (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--token-file", token_file,
                 "File whose first line is the bearer token every request must carry; required "
                 "to listen on a non-loopback address");
  app.add_option("--http-max-connections", o.http_limits.max_connections,
                 "HTTP connections open at once from all clients; more are answered 503 and "
                 "closed")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app.add_option("--http-max-connections-per-client", o.http_limits.max_connections_per_client,
                 "HTTP connections open at once from one client address; more are answered 503 "
                 "and closed")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app.add_option("--interval", o.refresh_ms, "Refresh interval in milliseconds")
      ->check(CLI::Range(10, 60000))
      ->capture_default_str();
  app.add_option("--change-poll", o.change_poll_ms,
                 "Check for new reports every N ms and refresh early when there are some, using "
                 "at most a tenth of a core for it (0: refresh only every --interval)")
      ->check(CLI::Range(0, 60000))
      ->capture_default_str();
  app.add_option("--history-resolution", o.history.resolution_ms,
                 "History: one point per device and kind every N milliseconds")
      ->check(CLI::Range(10, 3600000))
      ->capture_default_str();
  app.add_option("--history-retention", o.history.retention_s,
                 "History: keep N seconds of points")
      ->check(CLI::Range(1, 31 * 86400))
      ->capture_default_str();
  app.add_flag("--no-process-metrics", no_process_metrics,
               "Leave the per-process families out of /metrics");
  app.add_flag("--legacy", legacy,
               "Listen for the AllocMessage clients of tt-metal's allocation-server prototype on "
               "the legacy socket");
  app.add_option("--legacy-socket", o.legacy_socket,
                 std::string("Legacy socket path (implies --legacy; default ") +
                     ttmem::protocol::legacy::kDefaultSocketPath + ")");
  app.add_option("--legacy-message-size", o.legacy_form,
                 "Legacy message size: 72, 112 or 144 bytes; 0 detects it per connection")
      ->check(CLI::IsMember({0, 72, 112, 144}))
      ->capture_default_str();
  app.add_option("--legacy-max-buffers", o.legacy_max_records,
                 "Buffers and kernels all legacy clients may hold together (about 80 bytes "
                 "each); allocations beyond are refused and counted as slab_overflow")
      ->check(CLI::Range(1, 1 << 26))
      ->capture_default_str();
  std::string legacy_group;
  app.add_option("--legacy-socket-group", legacy_group,
                 "Group (name or gid) whose members may connect to the legacy socket (mode "
                 "0660); default: owner only (0600)");
  app.add_flag("--no-reap", no_reap,
               "Leave dead processes' segments for another collector to report");
  app.add_flag("--no-tt-metal-shm", no_tt_metal_shm,
               "Do not read tt-metal's own per-chip counters (tt_device_<chip>_memory in "
               "$TTMEM_TT_METAL_SHM_DIR, else /dev/shm)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  o.process_metrics = !no_process_metrics;
  o.reap = !no_reap;
  o.tt_metal_shm = !no_tt_metal_shm;
  if (legacy && o.legacy_socket.empty()) o.legacy_socket = ttmem::protocol::legacy::kDefaultSocketPath;
  try {
    if (!token_file.empty()) o.token = ttmem::common::read_token_file(token_file);
    if (!legacy_group.empty()) {
      if (o.legacy_socket.empty()) {
        throw std::runtime_error("--legacy-socket-group needs --legacy or --legacy-socket");
      }
      std::string error;
      o.legacy_group = ttmem::common::resolve_group(legacy_group, &error);
      if (!o.legacy_group) throw std::runtime_error("--legacy-socket-group: " + error);
    }
    // Before the first thread exists (the HTTP server's, the collector's): see block_stop_signals.
    block_stop_signals();
    // Every legacy connection holds a descriptor: allow as many as the hard limit lets us, so
    // the connection bound is memory (LegacyIngest::kMaxConnections), not the soft 1024.
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
      files.rlim_cur = files.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &files);
    }
    Daemon d(o);
    // The first line on stdout is the URL, so scripts and tests can start ttmemd on port 0.
    std::printf("ttmemd listening on %s\n", d.url().c_str());
    if (!d.legacy_status().empty()) std::printf("%s\n", d.legacy_status().c_str());
    if (d.segment_dir_missing()) {
      std::fprintf(stderr, "ttmemd: %s; serving it once it appears\n",
                   ttmem::collector::missing_segment_dir_text(d.segment_dir()).c_str());
    }
    std::fflush(stdout);
    return d.run(/*handle_signals=*/true);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ttmemd: %s\n", e.what());
    return 1;
  }
}
