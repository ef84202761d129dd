// Processes that report through a channel other than a segment (ttmemd's legacy socket ingest)
// are merged into the same Snapshot as segment processes, so every viewer, metric and history
// series sees one model.
#pragma once

#include <vector>

#include "collector/snapshot.h"

namespace ttmem::daemon {

// First chip id of devices that only external processes name (the legacy protocol knows logical
// device ids, not chip ids): kExternalChipBase + logical id.
inline constexpr uint64_t kExternalChipBase = 0xEE00'0000'0000'0000ULL;

struct ExternalProcess {
  // pid, start_time, command, segment (a description of the channel), counters. Per-kind
  // figures, buffer counts and device_totals are computed by merge_external().
  collector::ProcessView process;
  // Live buffers: `device` is the logical id; chip_id is filled in by merge_external().
  // `reserved` is taken as given.
  std::vector<collector::BufferView> buffers;
  // Allocations and frees so far per (logical device, kind).
  struct DeviceCounts {
    uint32_t device = 0;
    std::array<uint64_t, collector::kNumKinds> allocs{};
    std::array<uint64_t, collector::kNumKinds> frees{};
  };
  std::vector<DeviceCounts> counts;
  // Live bytes and buffers not in `buffers`, per (logical device, kind): a channel that holds
  // more buffers than a snapshot should copy (or counts without records, such as the legacy
  // protocol's CBs) reports them here. Requested = reserved; tagged like a listed buffer.
  struct Unlisted {
    uint32_t device = 0;
    uint32_t kind = 0;
    uint64_t bytes = 0;
    uint64_t count = 0;
    std::string tag;
  };
  std::vector<Unlisted> unlisted;
};

// The chip id an external process's logical device maps to in `s`: the device some segment
// process registered under that logical id, else kExternalChipBase + logical id.
uint64_t external_chip_id(const collector::Snapshot& s, uint32_t logical_id);

// Adds the processes, their buffers and their usage to `s`. Devices only they name are added
// with zero capacity. Free-space figures of existing devices are left as computed from segments.
void merge_external(collector::Snapshot& s, const std::vector<ExternalProcess>& processes);

}  // namespace ttmem::daemon
