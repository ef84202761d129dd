// The fold stage of the collector (docs/architecture.md): records and device slots, per process,
// into one Snapshot. Nothing here reads a file, a clock or the process table, so the figures
// every front-end prints (covered CB bytes, reserved vs requested, largest free block) can be
// tested by feeding records directly. The collect stage (collector.h) discovers, validates and
// reaps segments and hands each process's read to SnapshotFold; fold_snapshot() is the same fold
// over records already in memory.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "collector/address_map.h"
#include "collector/cb_coverage.h"
#include "collector/segment_reader.h"
#include "collector/snapshot.h"

namespace ttmem::collector {

// Highest CB coverage seen per chip id, kept from one fold to the next: the CB peak (a process's
// own CB counters add overlapping sets, so they cannot give it).
using CbPeaks = std::unordered_map<uint64_t, uint64_t>;

// The bytes a record takes from its kind's banks (CB: per core x cores).
inline uint64_t reserved_bytes(const protocol::BufferRecord& r, const protocol::DeviceSlot& d) {
  return protocol::reserved_bytes(r.kind, r.size, r.size_per_bank, r.num_cores,
                                  d.kinds[r.kind].num_banks);
}

// The text of a process's tag id ("" for none). Asked once per id and process.
using TagText = std::function<std::string(uint32_t id)>;

// Builds a Snapshot one process and one record at a time, so the collector can fold records in
// place in the mapping (SegmentReader::for_each_live_record) without copying them first.
class SnapshotFold {
 public:
  // list_buffers: fill Snapshot::buffers (aggregates are always computed). expected_records
  // reserves room for them.
  explicit SnapshotFold(bool list_buffers, size_t expected_records = 0);

  // Starts a process: `identity` holds what the collect stage knows of it (pid, start time, uid,
  // command, segment, check, exited, counters); its usage is filled by the fold. `state` must
  // outlive end_process(): a scan in place may add device slots to it while records are folded.
  // expected_records bounds the room reserved for its address ranges (the live counters are
  // not trusted).
  void begin_process(ProcessView identity, const SegmentState& state, TagText tags,
                     uint64_t expected_records);
  // One live record of the current process, on a device registered in its state.
  void add(const protocol::BufferRecord& record);
  // Ends the current process. dropped_events: history events this reader missed per device.
  void end_process(const std::array<uint64_t, protocol::kMaxDevices>& dropped_events);

  // The devices' free space, CB regions and peaks; sorted devices, tags and processes. Updates
  // *cb_peaks. Leaks, problems and the time taken are the collect stage's to fill.
  Snapshot finish(CbPeaks* cb_peaks);

 private:
  size_t model_device(uint32_t local_device);
  TagUsage& tag_usage(uint32_t id);

  const bool list_buffers_;
  Snapshot s_;
  std::unordered_map<uint64_t, size_t> device_index_;  // chip id -> index in s_.devices
  // Per device and kind, the per-bank ranges for the address map.
  std::vector<std::array<std::vector<AddressRange>, kNumKinds>> ranges_;
  // Per device, the L1 the CB sets of every process cover (docs/architecture.md, CBs); the same
  // per tag (index into s_.tags) and device, so an op's CB figure adds no overlapping sets
  // either.
  std::vector<CbCoverage> device_cbs_;
  std::map<std::pair<size_t, size_t>, CbCoverage> tag_cbs_;
  std::unordered_map<std::string, size_t> tag_index_;

  // The process being folded.
  ProcessView p_;
  const SegmentState* state_ = nullptr;
  TagText tag_text_;
  std::array<int, protocol::kMaxDevices> local_to_model_{};
  uint64_t unreserved_ranges_ = 0;
  struct TagId {
    int usage = -1;    // index into s_.tags; -1 until first seen
    std::string text;  // as the process registered it
  };
  std::vector<TagId> tag_ids_;  // by the process's tag id
  // Its CB sets: the L1 they cover per model device, and which programs own them.
  std::unordered_map<size_t, CbCoverage> process_cbs_;
  std::vector<std::pair<size_t, uint64_t>> cb_programs_;  // (model device, program id)
};

// One process as fold_snapshot() takes it: what the collect stage knows of it, its segment as
// read (device slots, counters, records), its tag strings by id and the events missed per device.
struct FoldInput {
  ProcessView identity;
  SegmentState state;
  std::vector<std::string> tags;
  std::array<uint64_t, protocol::kMaxDevices> dropped_events{};
};

// The fold as one pure function: the snapshot of these processes, given the CB peaks seen so far
// (updated).
Snapshot fold_snapshot(const std::vector<FoldInput>& processes, bool list_buffers,
                       CbPeaks* cb_peaks);

// The leak records of a process that ended with `state.records` live, detected at
// detected_realtime_ns: every buffer but its CBs, which end with their program.
std::vector<LeakRecord> leak_records(const ProcessView& identity, const SegmentState& state,
                                     const TagText& tags, uint64_t detected_realtime_ns);

}  // namespace ttmem::collector
