// ttmemd: one single-threaded event loop (epoll over the collector's fd, the legacy listener and
// a timer) that owns the collector and the legacy connections, and publishes an immutable
// snapshot to the HTTP server's thread (http_server.h) after each refresh.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "collector/collector.h"
#include "daemon/history.h"
#include "daemon/http_api.h"
#include "daemon/http_server.h"
#include "daemon/metrics.h"

namespace ttmem::daemon {

class LegacyIngest;

struct DaemonOptions {
  std::string dir;                  // segment directory ("" = default)
  std::string listen = "127.0.0.1:9464";  // host:port; port 0 picks a free one
  std::string token;                // required for a non-loopback address
  HttpLimits http_limits;           // connections open at once, per client and in all
  uint64_t refresh_ms = 500;
  // Between refreshes, check every N ms whether any process reported something and refresh
  // early if so (0: refresh only every refresh_ms). Early refreshes are limited to a tenth of
  // a core, so a large, busy live set is refreshed less often rather than costing more.
  uint64_t change_poll_ms = 20;
  HistoryOptions history;
  bool process_metrics = true;
  std::string legacy_socket;        // "" = no legacy ingest
  uint32_t legacy_form = 0;         // 0 = detect, else 72, 112 or 144
  std::optional<gid_t> legacy_group;  // group that may connect to the legacy socket, else owner
  size_t legacy_max_records = size_t{1} << 20;  // buffers and kernels of all legacy clients
  bool reap = true;
  bool tt_metal_shm = true;  // read tt-metal's per-chip counters ($TTMEM_TT_METAL_SHM_DIR)
  // CollectorOptions::incremental (--full-reads turns it off). Incremental, buffers are listed
  // only for the requests that list them (Published::list_buffers), not at every refresh.
  bool incremental = true;
};

// Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost).
bool is_loopback(const std::string& host);

// Splits "host:port" / "[v6]:port"; throws std::invalid_argument saying what is expected.
std::pair<std::string, int> parse_listen(const std::string& listen);

// Blocks SIGINT and SIGTERM in the calling thread, so every thread started after it inherits the
// mask and Daemon::run() receives them through its signalfd. Call before the Daemon exists: a
// thread started with the signals unblocked would take them and the default action would end
// the process without cleaning up (exit 143, the legacy socket left behind). Also ignores
// SIGPIPE. Returns the set of blocked signals.
sigset_t block_stop_signals();

class Daemon {
 public:
  // Validates the options, starts the collector, binds the HTTP port and the legacy socket.
  // Throws std::runtime_error with what to do. A legacy socket that cannot be served (its path
  // taken by a file that is not a socket, or by a live server) does not stop the daemon: that
  // listener stays off and legacy_status() says why.
  explicit Daemon(DaemonOptions options);
  ~Daemon();

  // The bound HTTP URL, e.g. http://127.0.0.1:9464.
  std::string url() const;

  // "legacy ingest on PATH", "legacy ingest off: WHY", or "" when no legacy socket was asked for.
  const std::string& legacy_status() const { return legacy_status_; }

  // True while the segment directory does not exist: the daemon watches for it and never
  // creates it (the first tracked program does).
  bool segment_dir_missing() const { return collector_.segment_dir_missing(); }
  const std::string& segment_dir() const { return collector_.dir(); }

  // Runs until stop() or SIGINT/SIGTERM (when handle_signals). Returns the exit code.
  int run(bool handle_signals);
  void stop();

 private:
  // Refreshes the collector (after draining its notifications if asked) and publishes.
  void refresh_and_publish(bool drain_notifications = false);
  void publish();
  // The collector's snapshot with the legacy clients' processes merged in; with buffers listed
  // when `list_buffers` (an incremental collector builds them now).
  collector::Snapshot merged_snapshot(bool list_buffers);
  // Answers the HTTP thread's requests (EventLoopRequests): one refresh for all that wait, and
  // one listed snapshot per publication at most, shared by the requests before the next.
  void answer_requests();
  // Writes the discovery file (collector::kDaemonFile) into the segment directory once it
  // exists, so `ttmem status` finds this daemon; removed at exit if it still names this one.
  void write_discovery_file();
  void remove_discovery_file();
  // Writes the leak records of legacy processes that ended, one file per process; true if any.
  bool save_legacy_leaks();

  DaemonOptions options_;
  collector::Collector collector_;
  HistoryStore history_;
  CounterLedger ledger_;
  SnapshotBoard board_;
  ListSlots list_slots_;
  std::shared_ptr<EventLoopRequests> requests_ = std::make_shared<EventLoopRequests>();
  uint64_t publications_ = 0;
  uint64_t refreshes_ = 0, refresh_cpu_ns_ = 0;  // Published::refreshes, refresh_cpu_ns
  std::weak_ptr<const collector::Snapshot> last_listing_;
  uint64_t last_listing_publication_ = 0;
  bool discovery_written_ = false;
  std::unique_ptr<LegacyIngest> legacy_;
  std::string legacy_status_;
  std::unique_ptr<HttpServer> http_;
  std::string host_;
  int port_ = 0;
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: stop() from any thread
};

}  // namespace ttmem::daemon
