// The long-lived collector of the soak, other than ttmemd: the collector library used the way a
// viewer that stays open uses it (ttmem top, ttmem record, the Python module) — refresh on every
// segment change or every --interval ms, drain every event ring, keep a history of every device
// and kind, render the status document — for as long as the soak runs.
//
//   ttmem_soak_collector --dir DIR [--interval MS] [--history-retention S]
//
// Prints "collecting" once the first refresh is done, then runs until a line (or end of input)
// arrives on stdin, and prints "stopped <refreshes> <events drained>".
#include <poll.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "collector/collector.h"
#include "daemon/history.h"
#include "collector/json.h"

namespace {

struct Options {
  std::string dir;
  int interval_ms = 50;
  uint64_t history_retention_s = 60;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--dir")
      o.dir = v;
    else if (k == "--interval")
      o.interval_ms = std::atoi(v);
    else if (k == "--history-retention")
      o.history_retention_s = std::strtoull(v, nullptr, 10);
    else
      return false;
  }
  return argc % 2 == 1 && !o.dir.empty() && o.interval_ms > 0;
}

bool stdin_readable() {
  pollfd p{0, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: ttmem_soak_collector --dir DIR [--interval MS] [--history-retention S]\n");
    return 2;
  }
  ttmem::collector::Collector collector({.dir = o.dir, .drain_events = true});
  uint64_t events = 0;
  collector.set_event_sink(
      [&](const ttmem::collector::EventSource&, uint32_t, const auto&) { ++events; });
  ttmem::daemon::HistoryStore history({.resolution_ms = 100, .retention_s = o.history_retention_s});
  collector.refresh();
  std::printf("collecting\n");
  std::fflush(stdout);

  uint64_t refreshes = 0;
  size_t rendered_bytes = 0;
  while (!stdin_readable()) {
    collector.wait(o.interval_ms);
    history.sample(collector.snapshot());
    // What a viewer shows each refresh; the size is kept so the rendering cannot be optimised out.
    rendered_bytes += ttmem::collector::status_json(collector.snapshot()).dump().size();
    ++refreshes;
  }
  std::printf("stopped %llu %llu\n", static_cast<unsigned long long>(refreshes),
              static_cast<unsigned long long>(events));
  return rendered_bytes > 0 ? 0 : 1;
}
