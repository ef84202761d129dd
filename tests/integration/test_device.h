// The device every test program registers: a Wormhole-like chip with 12 DRAM banks, an 8x8
// grid and a 50 MB trace region, so tests that allocate through the C API agree on geometry.
#pragma once

#include <cstdint>

#include "ttmem/ttmem.hpp"

namespace ttmem::test {

constexpr uint32_t kL1PerCore = 1499136;
constexpr uint32_t kUnreservedBase = 102400;
constexpr uint32_t kCores = 64;

// Chip ids are 0x7000 + logical id, so a status document maps back to the logical id.
constexpr uint64_t kChipIdBase = 0x7000;

inline ttmem_device_desc test_device_desc(uint32_t id) {
  ttmem_device_desc d = ttmem::make_device_desc();
  d.logical_id = id;
  d.chip_id = kChipIdBase + id;
  d.arch = TTMEM_ARCH_WORMHOLE_B0;
  d.grid_x = 8;
  d.grid_y = 8;
  d.l1_per_core = kL1PerCore;
  d.unreserved_base = kUnreservedBase;
  d.trace_region_size = 50'000'000;
  d.l1_small_size = 65536;
  d.board = "testload";
  const uint64_t l1_bank = kL1PerCore - kUnreservedBase - 65536;
  d.kinds[TTMEM_KIND_DRAM] = {12ull * 1'023'741'824, 1'023'741'824, 0, 12, 32};
  d.kinds[TTMEM_KIND_TRACE] = {12ull * 50'000'000, 50'000'000, 1'023'741'824, 12, 32};
  d.kinds[TTMEM_KIND_L1] = {kCores * l1_bank, l1_bank, kUnreservedBase, kCores, 16};
  d.kinds[TTMEM_KIND_L1_SMALL] = {kCores * 65536ull, 65536, kL1PerCore - 65536, kCores, 16};
  d.kinds[TTMEM_KIND_CB] = {kCores * l1_bank, l1_bank, kUnreservedBase, kCores, 32};
  d.kinds[TTMEM_KIND_SYSTEM_MEMORY] = {1ull << 30, 0, 0, 0, 0};
  return d;
}

}  // namespace ttmem::test
