// The L1 that circular buffers cover, worked out the slow and obvious way, for tests to compare
// with what the collector shows (it is deliberately not the collector's own code).
//
// Every live program keeps its CB set; the sets stack up from the same unreserved base and
// overlap. On each core of the grid the CBs take the highest end of any CB on that core, minus
// the base; the device's figure is the sum over cores. Adding the sets' bytes instead would count
// the same addresses once per program.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ttmem/ttmem.h"

namespace ttmem::test {

// One CB on one core range (inclusive), ending (address + bytes per core) at `end`.
struct CbExtent {
  ttmem_core_range cores;
  uint64_t end;
};

struct CbGrid {
  uint16_t x = 8, y = 8;
  uint64_t unreserved_base = 0;
};

// Sum over the grid's cores of (highest CB end on the core - base).
inline uint64_t covered_cb_bytes(const std::vector<CbExtent>& cbs, const CbGrid& grid) {
  uint64_t covered = 0;
  for (uint16_t y = 0; y < grid.y; ++y) {
    for (uint16_t x = 0; x < grid.x; ++x) {
      uint64_t highest = grid.unreserved_base;
      for (const CbExtent& cb : cbs) {
        const bool on_core =
            cb.cores.x0 <= x && x <= cb.cores.x1 && cb.cores.y0 <= y && y <= cb.cores.y1;
        if (on_core) highest = std::max(highest, cb.end);
      }
      covered += highest - grid.unreserved_base;
    }
  }
  return covered;
}

// The highest CB end on any core; the base when there are no CBs.
inline uint64_t cb_region_end(const std::vector<CbExtent>& cbs, uint64_t unreserved_base) {
  uint64_t end = unreserved_base;
  for (const CbExtent& cb : cbs) end = std::max(end, cb.end);
  return end;
}

}  // namespace ttmem::test
