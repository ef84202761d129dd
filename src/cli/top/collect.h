// The collect step of `ttmem top`: Snapshot (+ history) -> ViewModel. No terminal, no clock
// reads except the one the caller passes, so the same step serves the TUI, `--once`, the goldens
// and the benchmark.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/top/view_model.h"
#include "collector/snapshot.h"

namespace ttmem::top {

// Used bytes per device x kind over the last refreshes, for the sparklines. Keyed by chip id, so
// a device keeps its history when processes come and go. Not the daemon's HistoryStore
// (daemon/history.h): a sparkline needs one value per refresh and per bar, kinds merged as the
// bars show them, in a fixed ring that one thread owns; the daemon's samples each kind at a
// wall-clock resolution for many readers.
class History {
 public:
  static constexpr size_t kCapacity = 240;  // 2 minutes at the default 500 ms

  // Appends each device's usage. When none of the processes that last held a chip holds it now
  // and others do, a kHistoryRestart mark goes in first: a new run does not silently continue
  // the old run's sparkline.
  void push(const collector::Snapshot& s);
  // Oldest first, restart marks included; empty when the device was never seen.
  std::vector<uint64_t> series(uint64_t chip_id, size_t bar_kind_index) const;
  uint64_t samples() const { return samples_; }

  // A device as last seen, and when (monotonic ns): a device that disappears stays on screen,
  // greyed, for kKeepGoneNs instead of leaving a blank "No devices".
  struct LastSeen {
    collector::DeviceView device;
    uint64_t seen_ns = 0;
  };
  static constexpr uint64_t kKeepGoneNs = 30'000'000'000;
  const std::map<uint64_t, LastSeen>& last_seen() const { return last_seen_; }

 private:
  struct Ring {
    std::array<uint64_t, kCapacity> values{};
    size_t size = 0;
    size_t next = 0;  // where the next value goes
  };
  // A process as identified across refreshes (pids are reused).
  using ProcessKey = std::pair<pid_t, uint64_t>;  // pid, start time
  std::map<uint64_t, std::array<Ring, kBarKinds.size()>> rings_;
  std::map<uint64_t, std::vector<ProcessKey>> holders_;  // per chip: who held it last (non-empty)
  std::map<uint64_t, LastSeen> last_seen_;  // by chip id
  uint64_t samples_ = 0;
};

struct CollectRequest {
  std::vector<uint32_t> devices;  // logical ids to show; empty: all
  BufferSort sort = BufferSort::kReserved;
  bool reverse = false;   // ascending instead of the sort's natural order
  size_t buffer_limit = 0;  // 0: all
  int map_device = -1;    // index into the shown devices for the L1 map; -1: no map
  uint64_t now_monotonic_ns = 0;  // for buffer ages; 0: the snapshot's time
  std::optional<pid_t> pid;       // -p: that process's buffers, row and devices only
  // `/`: buffers whose tag, or whose process's pid or command, contains this (any case); the
  // processes and tags that match. Empty: everything.
  std::string filter;
};

ViewModel collect(const collector::Snapshot& s, const History& history,
                  const CollectRequest& request);

// The per-core L1 address space of one device, painted from its buffers and CB region.
L1Map build_l1_map(const collector::Snapshot& s, const collector::DeviceView& d);

}  // namespace ttmem::top
