// The device every tracked test program registers: a Wormhole-like chip (12 DRAM banks, an 8x8
// grid of L1 banks) whose geometry lets tests compute the reserved figure of any buffer.
#pragma once

#include <cstdint>

#include "ttmem/ttmem.hpp"

namespace ttmem::test {

inline constexpr uint32_t kTestL1PerCore = 1499136;
inline constexpr uint32_t kTestUnreservedBase = 102400;
inline constexpr uint32_t kTestCores = 64;

// Logical device `id`, chip id 0x7000 + id.
inline ttmem_device_desc test_device_desc(uint32_t id) {
  ttmem_device_desc d = ttmem::make_device_desc();
  d.logical_id = id;
  d.chip_id = 0x7000 + id;
  d.arch = TTMEM_ARCH_WORMHOLE_B0;
  d.grid_x = 8;
  d.grid_y = 8;
  d.l1_per_core = kTestL1PerCore;
  d.unreserved_base = kTestUnreservedBase;
  d.trace_region_size = 50'000'000;
  d.l1_small_size = 65536;
  d.board = "testload";
  const uint64_t l1_bank = kTestL1PerCore - kTestUnreservedBase - 65536;
  d.kinds[TTMEM_KIND_DRAM] = {12ull * 1'023'741'824, 1'023'741'824, 0, 12, 32};
  d.kinds[TTMEM_KIND_TRACE] = {12ull * 50'000'000, 50'000'000, 1'023'741'824, 12, 32};
  d.kinds[TTMEM_KIND_L1] = {kTestCores * l1_bank, l1_bank, kTestUnreservedBase, kTestCores, 16};
  d.kinds[TTMEM_KIND_L1_SMALL] = {kTestCores * 65536ull, 65536, kTestL1PerCore - 65536, kTestCores,
                                  16};
  d.kinds[TTMEM_KIND_CB] = {kTestCores * l1_bank, l1_bank, kTestUnreservedBase, kTestCores, 32};
  d.kinds[TTMEM_KIND_SYSTEM_MEMORY] = {1ull << 30, 0, 0, 0, 0};
  return d;
}

}  // namespace ttmem::test
