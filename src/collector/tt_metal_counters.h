// tt-metal's own per-chip memory counters (/dev/shm/tt_device_<chip>_memory, layout in
// protocol/tt_metal_shm.h): read, checked and merged into a Snapshot, so every tt-metal process
// on the machine shows up with nothing preloaded. Counters only: no buffers, banks or addresses.
//
// Every file is hostile input: any process of any user may write one. It is copied into private
// memory with one bounded read (never mapped: a mapping of a file truncated under it faults) and
// checked before a field is believed.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "collector/snapshot.h"

namespace ttmem::collector {

// Files read per refresh at most: a machine has a few dozen chips; beyond this the rest are
// ignored and one problem says so, so a directory full of junk cannot slow every refresh.
inline constexpr size_t kMaxTtMetalFiles = 256;

// The directory tt-metal writes its files to: $TTMEM_TT_METAL_SHM_DIR, else /dev/shm.
std::string default_tt_metal_shm_dir();

// One checked DeviceMemoryRegion. Byte counters are indexed by ttmem's kinds (kNumKinds).
struct TtMetalRegion {
  uint64_t chip_id = 0;  // the unique chip id of the file name (and of the header's asic_id)
  // What the file says of the chip, as a snapshot shows it; the liveness counts are filled in by
  // merge_tt_metal_counters().
  TtMetalChipCounters file;
  struct Process {
    pid_t pid = 0;
    std::string name;
    uint64_t last_update_realtime_ns = 0;
    std::array<uint64_t, kNumKinds> bytes{};
  };
  std::vector<Process> processes;  // used process slots that passed the checks
  // What was wrong but did not make the whole file unusable: slots skipped, counters that do
  // not add up. Reported under the snapshot's problems, one line per file.
  std::vector<std::string> warnings;
};

// Checks a private copy of a file named for chip `chip_id_from_name`. nullopt, with the reason in
// *error, when the file as a whole cannot be believed (wrong size, unknown version, not
// initialised, a header naming another chip, impossible totals).
std::optional<TtMetalRegion> parse_tt_metal_region(std::span<const std::byte> bytes,
                                                   uint64_t chip_id_from_name, std::string* error);

struct TtMetalScan {
  std::vector<TtMetalRegion> regions;
  std::vector<SegmentProblem> problems;
};

// Reads and checks every tt-metal file in `dir` (at most kMaxTtMetalFiles). A directory that does
// not exist holds no files. `before_read` runs between the size check and the read of each file:
// a seam for tests that change a file while it is read.
TtMetalScan read_tt_metal_counters(const std::string& dir,
                                   const std::function<void(const std::string&)>& before_read = {});

// Adds the regions to `s`: chips keyed by unique chip id (the key ttmem's client uses), a process
// per pid over its chips, counted only where alive and not reported by a ttmem client on the same
// chip; problems appended. Call after every other source is in `s` and it is sorted
// (sort_snapshot).
void merge_tt_metal_counters(Snapshot& s, const TtMetalScan& scan);

}  // namespace ttmem::collector
