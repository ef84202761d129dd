// Time series of device usage per (device, kind), sampled from snapshots at a fixed resolution
// and kept for a fixed retention: a ring per series, so memory is bounded by
// series x (retention / resolution) points no matter how long the daemon runs.
//
// Thread-safe: one thread records (the daemon's event loop), any number query (HTTP threads).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "collector/snapshot.h"

namespace ttmem::daemon {

struct HistoryPoint {
  uint64_t realtime_ns = 0;
  uint64_t requested = 0;
  uint64_t reserved = 0;
  uint64_t buffers = 0;
};

struct HistoryOptions {
  uint64_t resolution_ms = 1000;  // one point per series per resolution step
  uint64_t retention_s = 3600;    // points older than this are overwritten
};

class HistoryStore {
 public:
  static constexpr uint64_t kMinResolutionMs = 10;
  static constexpr size_t kMaxPointsPerSeries = 1u << 20;
  static constexpr size_t kMaxSeries = size_t{protocol::kMaxDevices} * 4 * collector::kNumKinds;

  // Throws std::invalid_argument (saying which bounds) for resolution or retention out of range.
  explicit HistoryStore(HistoryOptions options);

  const HistoryOptions& options() const { return options_; }
  size_t capacity_per_series() const { return capacity_; }

  // Adds one point per (device, kind) of `s` if a resolution step has passed since the last
  // sample; returns whether it sampled.
  bool sample(const collector::Snapshot& s);

  // Points of one series with realtime_ns >= since_ns, oldest first (empty if unknown).
  std::vector<HistoryPoint> query(uint64_t chip_id, uint32_t kind, uint64_t since_ns) const;

  // Every series key that has points.
  std::vector<std::pair<uint64_t, uint32_t>> series() const;

 private:
  struct Series {
    std::vector<HistoryPoint> ring;  // grows to capacity_, then overwrites
    size_t next = 0;                 // slot of the next point once full
  };

  HistoryOptions options_;
  size_t capacity_;
  mutable std::mutex mu_;
  std::map<std::pair<uint64_t, uint32_t>, Series> series_;
  std::optional<uint64_t> last_sample_ns_;
};

}  // namespace ttmem::daemon
