// Replay: a recorded run's allocations, frees, CB sets and traces, run again through the model
// under another configuration (`ttmem replay`, `ttmem advise`; docs/model.md).
//
// The input is neutral (no dependency on the recording file format): one chip per recorded
// (process, device), and its events in time order. Each chip is replayed on its own allocator,
// so a mesh buffer recorded on every chip is replayed on every chip, with the same result.
//
// What is re-derived under the new configuration: every buffer's per-bank size and address
// (bank counts, alignments, bases, l1_small_size, trace region, policy), each CB set's region
// end (the recorded offset above the unreserved base, moved onto the new base), the trace budget,
// and tt-metal's checks with their texts. What is kept: sizes, page sizes, layouts, shard counts,
// tags and the order of events.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/device_spec.h"
#include "model/errors.h"

namespace ttmem::model {

struct ReplayEvent {
  enum class Type : uint8_t { Alloc, Free, CbAlloc, CbFreeProgram, CbFreeAll };
  Type type = Type::Alloc;
  uint8_t kind = 0;  // BufferType, or kCbKind for CB events
  uint8_t layout = 0;
  uint16_t num_banks = 0;  // recorded banks, or shards of a sharded buffer
  uint32_t chip = 0;       // index into ReplayInput::chips
  uint32_t tag = 0;        // index into ReplayInput::tags
  uint32_t page_size = 0;
  uint64_t buffer_id = 0;  // the program id for CB events
  uint64_t address = 0;    // recorded; CB events only use it (its offset above the base)
  uint64_t size = 0;
  uint64_t size_per_bank = 0;  // recorded
};

// What the recording says about a chip's configuration.
struct RecordedChip {
  std::string board;  // product name as registered ("n150"); empty if unknown
  uint32_t process = 0;
  uint32_t device = 0;  // logical id within its process
  uint32_t grid_x = 0, grid_y = 0;
  uint64_t l1_unreserved_base = 0;
  uint64_t l1_small_size = 0;
  uint64_t trace_region_size = 0;
  uint64_t dram_bank_base = 0;
};

struct ReplayInput {
  std::vector<RecordedChip> chips;
  std::vector<std::string> tags{""};
  std::vector<ReplayEvent> events;  // time order
  // The most devices one process used: the chips a product must have.
  uint32_t chips_needed() const;
};

struct ReplayConfig {
  const BoardSpec* board = nullptr;
  DeviceParams params;
};

// The configuration the recording was made under: its product and device-open parameters.
// Throws ModelError (InvalidRequest) when the recording names no known product.
ReplayConfig recorded_config(const ReplayInput& input);

struct ReplayOptions {
  bool check_clashes = true;       // stop at a CB clash (off: only measure the margin)
  bool check_trace_budget = true;  // stop when traces exceed trace_region_size
};

// Peak of one memory kind over the chips, per bank.
struct KindPeak {
  uint64_t capacity_per_bank = 0;
  uint64_t peak_per_bank = 0;  // replayed; CB: highest region end above the unreserved base
  uint64_t free_at_peak = 0;
  uint64_t largest_free_at_peak = 0;
  uint64_t recorded_peak_per_bank = 0;  // from the recorded per-bank sizes
  double fragmentation_at_peak() const {
    return free_at_peak == 0 ? 0.0 : 1.0 - double(largest_free_at_peak) / double(free_at_peak);
  }
};

struct ReplayFailure {
  ModelError error;
  uint64_t event_index = 0;
  uint32_t chip = 0;
};

struct ReplayResult {
  ChipGeometry geometry;
  std::optional<ReplayFailure> failure;  // the first; the replay stops there
  uint64_t events = 0;                   // events replayed
  // DRAM, L1, SYSTEM_MEMORY (unused), L1_SMALL, TRACE, CB
  std::array<KindPeak, kNumBufferTypes + 1> peaks{};
  uint64_t peak_trace_bytes = 0;     // highest total of live trace buffers on a chip
  uint64_t peak_l1_small_span = 0;   // highest L1_SMALL span from the top of L1, per core
  // Smallest (lowest L1 buffer - CB region end) at any CB launch; negative is a clash. nullopt:
  // no CB launch with an L1 buffer live.
  std::optional<int64_t> min_clash_margin;
  uint64_t min_margin_program = 0;  // the program at that launch
};

// Replays `input` under `config`. Throws ModelError (InvalidRequest) when the configuration
// cannot describe a device or the recording needs more chips than the product has.
ReplayResult replay(const ReplayInput& input, const ReplayConfig& config,
                    const ReplayOptions& options = {});

// ttmem advise: the settings a recording needs and where it fits.
struct Verdict {
  std::string board;
  bool fits = false;
  std::string reason;                 // the failure's kind and answer, or the chips missing
  uint64_t dram_headroom_per_bank = 0;  // capacity - peak, when it fits
  uint64_t l1_headroom_per_bank = 0;
};

struct Advice {
  ReplayConfig recorded;
  uint64_t min_trace_region_size = 0;  // 0: no trace captured
  uint64_t l1_small_min = 0;           // the span L1_SMALL buffers need
  std::optional<uint64_t> l1_small_max;  // the largest that avoids every clash; nullopt: no CBs
  bool l1_small_range_empty = false;   // no l1_small_size avoids the clashes
  uint64_t clash_bytes_over = 0;       // when the recorded run clashes
  uint64_t clash_program = 0;
  DeviceParams proposal;               // recorded params with the advised sizes
  ReplayResult proposal_result;        // the recorded product under the proposal
  std::vector<Verdict> verdicts;       // n150, n300, t3k, p150, galaxy
};

Advice advise(const ReplayInput& input);

}  // namespace ttmem::model
