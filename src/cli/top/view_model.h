// The view model of `ttmem top`: everything the screen shows, computed by the collect step
// (collect.h) from a Snapshot and the history, and nothing the terminal decides. The layout step
// (layout.h) turns it, the UI state and a size into lines; the ncurses and text renderers only
// paint those lines. Keeping the three apart makes the screen a pure function of its inputs, so
// goldens and tests need no terminal.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "collector/query.h"  // BufferSort: the sort keys top shares with buffers and the API
#include "collector/snapshot.h"

namespace ttmem::top {

// The sort keys are the collector's (collector/query.h): the same for `ttmem buffers` and the API.
using collector::BufferSort;
using collector::kNumBufferSorts;

// The kinds the monitor draws a bar for, in screen order. SYSTEM_MEMORY is host memory and has
// no device capacity, so it is left to `ttmem status`.
inline constexpr std::array<uint32_t, 5> kBarKinds = {uint32_t(Kind::Dram), uint32_t(Kind::L1),
                                                      uint32_t(Kind::L1Small),
                                                      uint32_t(Kind::Trace), uint32_t(Kind::Cb)};

// In a history, the mark of a restart: the processes on the chip were all replaced, so what
// follows is not the same run's history. Drawn as a break in the sparkline.
inline constexpr uint64_t kHistoryRestart = UINT64_MAX;

struct KindRow {
  uint32_t kind = 0;
  uint64_t used = 0;  // reserved bytes (CB: the L1 the live programs' CB sets cover)
  uint64_t requested = 0;
  uint64_t capacity = 0;
  uint64_t peak = 0;
  uint64_t count = 0;
  uint64_t largest_free_block = 0;  // per bank
  double fragmentation = 0.0;
  std::vector<uint64_t> history;  // used bytes, oldest first; kHistoryRestart at a restart
};

struct DeviceRow {
  uint64_t chip_id = 0;
  std::vector<uint32_t> logical_ids;
  std::string arch;
  std::string board;
  // Where the figures come from, when not only ttmem's client: tt-metal's counters only (no
  // buffers, capacity unknown), or both; "stale" when tt-metal's totals have no live process.
  std::string source_note;
  uint16_t grid_x = 0, grid_y = 0;
  std::array<KindRow, kBarKinds.size()> kinds{};
  uint64_t buffers = 0;  // live buffers and CBs
  int64_t clash_margin = 0;
  bool has_l1_buffers = false;
  uint64_t dropped_events = 0;
  // No longer in the snapshot (its processes ended): the last figures, drawn greyed, until
  // History::kKeepGoneNs after it was last seen.
  bool gone = false;
  uint64_t gone_for_ns = 0;
};

struct ProcessRow {
  pid_t pid = 0;
  std::string command;
  bool exited = false;
  std::array<uint64_t, collector::kNumKinds> reserved{};
  uint64_t buffers = 0;
  uint64_t cbs = 0;
  uint64_t dropped_events = 0;
  uint64_t problems = 0;  // reports the client could not record, torn or corrupt records
};

struct BufferRow {
  pid_t pid = 0;
  uint32_t device = 0;  // the process's logical id
  uint32_t kind = 0;
  uint64_t buffer_id = 0;
  uint64_t address = 0;
  uint64_t size = 0;
  uint64_t reserved = 0;
  uint32_t banks = 0;
  uint64_t age_ns = 0;
  std::string tag;
  // A mesh buffer is one buffer per device of the mesh, at the same address with the same size
  // and tag: its copies fold into one row (figures of one copy), `copies` of them, on
  // `devices` ("0-7", or "0,2,5").
  uint32_t copies = 1;
  std::string devices;
};

// One region of the per-core L1 address space, [begin, end).
enum class Region { kFirmware, kCb, kMargin, kFree, kL1Buffer, kL1SmallFree, kL1SmallBuffer, kClash };

struct RegionSpan {
  uint64_t begin = 0, end = 0;
  Region region = Region::kFree;
};

// The per-core L1 map of one device: every byte of [0, l1_per_core) in exactly one span,
// sorted by address.
struct L1Map {
  bool valid = false;
  uint64_t chip_id = 0;
  uint32_t logical_id = 0;
  uint64_t l1_per_core = 0;
  uint64_t unreserved_base = 0;
  uint64_t cb_region_end = 0;  // highest CB end among every live program's CB set
  uint64_t cb_region_bytes = 0;  // per core: cb_region_end - unreserved_base
  uint64_t cb_programs = 0;    // programs holding a CB set on the chip
  uint64_t lowest_l1_address = 0;
  bool has_l1_buffers = false;
  int64_t clash_margin = 0;
  uint64_t l1_small_base = 0, l1_small_end = 0;
  std::vector<RegionSpan> spans;
  std::vector<BufferRow> l1_buffers;  // L1 and L1_SMALL buffers by address, up to the limit
  size_t l1_buffers_total = 0;
};

struct ViewModel {
  std::string segment_dir;
  std::string source_label;  // "via ttmemd" when the overview is that daemon's
  bool segment_dir_missing = false;
  uint64_t taken_realtime_ns = 0;
  uint64_t samples = 0;  // refreshes folded into the history
  std::vector<DeviceRow> devices;
  std::vector<uint32_t> missing_devices;  // requested with -d but not (yet) registered
  std::vector<ProcessRow> processes;
  std::vector<collector::TagUsage> tags;  // as the snapshot has them
  std::vector<BufferRow> buffers;  // sorted as requested, at most the requested limit
  uint64_t total_buffers = 0;      // rows before the limit (a mesh buffer's copies are one)
  uint64_t live_buffers = 0;       // buffers and CBs those rows stand for
  std::string filter;              // as requested, for the header
  std::optional<pid_t> pid;
  uint64_t dropped_events = 0;
  uint64_t leaks = 0;
  std::vector<std::string> problems;
  L1Map l1_map;
};

}  // namespace ttmem::top
