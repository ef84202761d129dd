// What the full fold (fold.cpp) and the incremental one (incremental.cpp) both do once a chip's
// records are in: a buffer's row, and the figures derived from a chip's sums, CB coverage and
// free space. One definition, so the two folds cannot drift apart.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

#include "collector/address_map.h"
#include "collector/cb_coverage.h"
#include "collector/fold.h"
#include "collector/query.h"
#include "collector/snapshot.h"
#include "protocol/segment.h"

namespace ttmem::collector {

// A process's counters on one of its devices (`chip_id`), as its segment keeps them, added to
// the device's view and the process's: lifetime allocs and frees, peaks, events lost.
inline void add_device_counters(DeviceView& v, ProcessView& p, uint64_t chip_id,
                                const std::array<protocol::KindCounters, kNumKinds>& counters,
                                uint64_t dropped_events) {
  ProcessDeviceTotals totals;
  totals.chip_id = chip_id;
  for (uint32_t k = 0; k < kNumKinds; ++k) {
    const protocol::KindCounters& c = counters[k];
    // A process's CB counters add overlapping sets: the CB peak is the fold's own.
    if (k != uint32_t(Kind::Cb)) v.kinds[k].peak += c.peak_reserved;
    v.kinds[k].total_allocs += c.total_allocs;
    v.kinds[k].total_frees += c.total_frees;
    totals.allocs[k] = c.total_allocs;
    totals.frees[k] = c.total_frees;
  }
  v.dropped_events += dropped_events;
  p.dropped_events += dropped_events;
  totals.dropped_events = dropped_events;
  p.device_totals.push_back(totals);
}

// One live record as the snapshot lists it, for process `p`, its device slot `slot`.
inline void fill_buffer_view(BufferView& b, const ProcessView& p,
                             const protocol::BufferRecord& rec, const protocol::DeviceSlot& slot,
                             const std::string& tag) {
  fill_buffer_identity(b, p, rec, slot, tag);
  b.layout = rec.layout;
  b.size_per_bank = rec.size_per_bank;
  b.page_size = rec.page_size;
  b.num_banks = rec.num_banks;
  b.num_cores = rec.num_cores;
  for (int i = 0; i < 4; ++i) b.core_bbox[size_t(i)] = uint8_t(rec.aux >> (8 * i));
}

// Kinds whose banks have a free-space map: all but CB (covered L1, not ranges) and system
// memory (no device banks).
inline bool has_bank_map(uint32_t kind) {
  return kind != uint32_t(Kind::Cb) && kind != uint32_t(Kind::SystemMemory);
}

// Completes a chip whose counts and bytes are summed: the CB figures from the region of every
// process's CB sets taken together (the peak kept in *cb_peaks), peaks, free space per kind from
// free_space_of(kind) (kinds with a bank map), the CB region and the clash margin.
template <class FreeSpaceOf>
void finish_device(DeviceView& v, const CbRegion& cbs, CbPeaks* cb_peaks,
                   FreeSpaceOf&& free_space_of) {
  constexpr uint32_t kCb = uint32_t(Kind::Cb);
  KindUsage& cb = v.kinds[kCb];
  cb.reserved = cb.requested = cbs.covered_bytes;
  uint64_t& cb_peak = (*cb_peaks)[v.chip_id];
  cb_peak = std::max(cb_peak, cb.reserved);
  cb.peak = cb_peak;
  for (uint32_t k = 0; k < kNumKinds; ++k) {
    KindUsage& ku = v.kinds[k];
    ku.peak = std::max(ku.peak, ku.reserved);
    if (!has_bank_map(k)) continue;
    const FreeSpace f = free_space_of(k);
    ku.largest_free_block = f.largest_free_block;
    ku.free_per_bank = f.free_bytes;
    ku.fragmentation =
        f.free_bytes == 0 ? 0.0 : 1.0 - double(f.largest_free_block) / double(f.free_bytes);
  }
  // The CB region grows up from the unreserved base toward the lowest L1 buffer.
  const KindUsage& l1 = v.kinds[uint32_t(Kind::L1)];
  v.cb_region_end = cbs.end;
  if (!v.has_l1_buffers) v.lowest_l1_address = l1.bank_base + l1.bank_size;
  v.clash_margin = int64_t(v.lowest_l1_address) - int64_t(v.cb_region_end);
  cb.largest_free_block = v.clash_margin > 0 ? uint64_t(v.clash_margin) : 0;
  std::sort(v.logical_ids.begin(), v.logical_ids.end());
}

// The order every snapshot lists things in: devices by device_order, tags by reserved bytes
// (largest first, then name), processes by pid.
inline void sort_snapshot(Snapshot& s) {
  std::sort(s.devices.begin(), s.devices.end(), device_order);
  std::sort(s.tags.begin(), s.tags.end(), [](const TagUsage& a, const TagUsage& b) {
    uint64_t ta = 0, tb = 0;
    for (uint32_t k = 0; k < kNumKinds; ++k) {
      ta += a.reserved[k];
      tb += b.reserved[k];
    }
    return ta != tb ? ta > tb : a.tag < b.tag;
  });
  std::sort(s.processes.begin(), s.processes.end(),
            [](const ProcessView& a, const ProcessView& b) { return a.pid < b.pid; });
}

}  // namespace ttmem::collector
