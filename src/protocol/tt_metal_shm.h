// tt-metal's own per-chip memory counters: the layout of /dev/shm/tt_device_<chip>_memory.
//
// tt-metal (PR #37218, on by default; TT_METAL_SHM_TRACKING_DISABLED=1 turns it off) keeps one
// file per chip, named by the chip's unique id in decimal, holding a DeviceMemoryRegion
// (tt_metal/impl/memory_tracking/memory_stats_shm.hpp, an internal header). This is our own
// declaration of that layout, every offset pinned below; readers copy the file into private
// memory and check it before use, because any process of the user may write it.
//
// Versions: 3 (tt-metal main of 2026-04) and 4 (later: the same layout plus `init_state`, which
// is READY once the creator has filled the header; totals move by deltas and slots of dead
// processes are reaped by the next process to attach).
//
//     0 version u32 | 4 num_active_processes u32 | 8 last_update_timestamp u64
//    16 reference_count u32 | 24 board_serial u64 | 32 asic_id u64 (the unique chip id)
//    40 device_id u32 (the creator's logical id)
//    48 total_{dram,l1,l1_small,trace,cb}_allocated u64 (to 88)
//    88 ChipStats[16] (48 B each): chip_id u32 (UINT32_MAX: unused) | is_remote u32 |
//       {dram,l1,l1_small,trace,cb}_allocated u64
//   856 ProcessStats[64] (120 B each): pid i32 | pad | {dram,l1,l1_small,trace,cb}_allocated u64
//       | last_update_timestamp u64 | process_name[64]
//  8536 init_state u32 (version 4) | padding to 8576 (the struct is 64-byte aligned)
//
// Timestamps are nanoseconds since the Unix epoch. chip_id in a ChipStats is tt-metal's logical
// chip id (chip_stats[0] the file's own chip, the others remote chips reached through it); pid 0
// marks an unused process slot. Counters are bytes allocated now, written with relaxed atomics
// and no lock: a reader sees each one whole but not all at one instant.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "protocol/segment.h"

namespace ttmem::protocol::tt_metal_shm {

inline constexpr const char* kFilePrefix = "tt_device_";
inline constexpr const char* kFileSuffix = "_memory";
inline constexpr uint32_t kMinVersion = 3;
inline constexpr uint32_t kMaxVersion = 4;
inline constexpr size_t kMaxChips = 16;
inline constexpr size_t kMaxProcesses = 64;
inline constexpr uint32_t kChipUnused = UINT32_MAX;
inline constexpr uint32_t kInitReady = 0x52454459u;  // "REDY", version 4

// The kinds in tt-metal's counters, in its order: DRAM, L1, L1_SMALL, TRACE, CB.
inline constexpr size_t kCounterKinds = 5;
// ttmem's kind of each of tt-metal's counters (tt-metal has no SYSTEM_MEMORY counter).
inline constexpr Kind kCounterKind[kCounterKinds] = {Kind::Dram, Kind::L1, Kind::L1Small,
                                                     Kind::Trace, Kind::Cb};

// The unique chip id a file name `tt_device_<decimal id>_memory` names, or nullopt for any other
// name (digits only: no sign, no spaces, no overflow).
inline std::optional<uint64_t> chip_id_from_file_name(std::string_view name) {
  const std::string_view prefix = kFilePrefix, suffix = kFileSuffix;
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix)) {
    return std::nullopt;
  }
  const std::string_view digits =
      name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return id;
}

struct ChipStats {
  uint32_t chip_id;
  uint32_t is_remote;
  uint64_t allocated[kCounterKinds];
};
static_assert(sizeof(ChipStats) == 48);

struct ProcessStats {
  int32_t pid;
  uint32_t pad;
  uint64_t allocated[kCounterKinds];
  uint64_t last_update_timestamp;
  char process_name[64];
};
static_assert(sizeof(ProcessStats) == 120);

struct alignas(64) DeviceMemoryRegion {
  uint32_t version;
  uint32_t num_active_processes;
  uint64_t last_update_timestamp;
  uint32_t reference_count;
  uint32_t pad0;
  uint64_t board_serial;
  uint64_t asic_id;
  uint32_t device_id;
  uint32_t pad1;
  uint64_t total_allocated[kCounterKinds];
  ChipStats chip_stats[kMaxChips];
  ProcessStats processes[kMaxProcesses];
  uint32_t init_state;  // version 4
};
static_assert(offsetof(DeviceMemoryRegion, last_update_timestamp) == 8);
static_assert(offsetof(DeviceMemoryRegion, board_serial) == 24);
static_assert(offsetof(DeviceMemoryRegion, asic_id) == 32);
static_assert(offsetof(DeviceMemoryRegion, device_id) == 40);
static_assert(offsetof(DeviceMemoryRegion, total_allocated) == 48);
static_assert(offsetof(DeviceMemoryRegion, chip_stats) == 88);
static_assert(offsetof(DeviceMemoryRegion, processes) == 856);
static_assert(offsetof(DeviceMemoryRegion, init_state) == 8536);
static_assert(sizeof(DeviceMemoryRegion) == 8576);
static_assert(offsetof(ProcessStats, allocated) == 8);
static_assert(offsetof(ProcessStats, last_update_timestamp) == 48);
static_assert(offsetof(ProcessStats, process_name) == 56);
static_assert(offsetof(ChipStats, allocated) == 8);

// tt-metal sizes the file to the whole struct (ftruncate) in both versions: any other size is a
// file being created, truncated or not tt-metal's.
inline constexpr size_t kFileSize = sizeof(DeviceMemoryRegion);

}  // namespace ttmem::protocol::tt_metal_shm
