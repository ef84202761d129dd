// Prometheus exposition (text format 0.0.4) of the model. Names follow Prometheus's rules: base
// units (bytes), `_bytes` and `_total` suffixes, and labels with bounded values (device, chip
// id, kind; pid and command only in the per-process family, which can be switched off).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "collector/snapshot.h"

namespace ttmem::daemon {

// Lifetime totals per chip that stay monotonic when processes end: a process's last seen
// counters are retired into a running sum when it leaves the model.
struct ChipTotals {
  std::array<uint64_t, collector::kNumKinds> allocs{};
  std::array<uint64_t, collector::kNumKinds> frees{};
  uint64_t dropped_events = 0;
  // The chip's logical ids ("0", "0,4") when the ledger first saw it on a device, kept for the
  // counters' whole life: a counter whose labels change is a new series to Prometheus, and
  // rate() over the change breaks. "" until it has been seen on one.
  std::string device;
};

class CounterLedger {
 public:
  // Call once per refreshed snapshot, in order.
  void update(const collector::Snapshot& s);
  // Retired plus live totals, for every chip ever seen.
  const std::map<uint64_t, ChipTotals>& totals() const { return totals_; }

 private:
  using Key = std::pair<pid_t, std::string>;  // pid + segment (unique per process)
  std::map<Key, std::vector<collector::ProcessDeviceTotals>> live_;
  std::map<uint64_t, ChipTotals> retired_;
  std::map<uint64_t, ChipTotals> totals_;
};

struct MetricsOptions {
  bool per_process = true;
  std::string version;
};

struct MetricsInput {
  const collector::Snapshot* snapshot = nullptr;
  const std::map<uint64_t, ChipTotals>* totals = nullptr;
  uint64_t legacy_connections = 0;
  uint64_t legacy_rejected_bytes = 0;
  // Kernel bytes legacy clients hold loaded, per logical device (none without legacy ingest).
  const std::map<uint32_t, uint64_t>* legacy_kernel_bytes = nullptr;
  // ttmemd's own work: collector refreshes, and the thread CPU time they took.
  uint64_t refreshes = 0;
  uint64_t refresh_cpu_ns = 0;
};

std::string render_metrics(const MetricsInput& in, const MetricsOptions& options);

// Escapes a label value per the exposition format (backslash, double quote, newline).
std::string escape_label(const std::string& value);

}  // namespace ttmem::daemon
