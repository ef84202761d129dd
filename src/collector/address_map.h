// Free space in one bank's address range, from the ranges its buffers reserve. Buffers are
// lock-step (the same relative range in every bank), so one bank's map stands for all of them.
#pragma once

#include <cstdint>
#include <vector>

namespace ttmem::collector {

struct AddressRange {
  uint64_t begin;
  uint64_t end;  // exclusive
};

struct FreeSpace {
  uint64_t free_bytes = 0;          // region bytes not covered by any range
  uint64_t largest_free_block = 0;  // longest uncovered run
};

// Ranges may overlap (several processes, or a hostile segment) and may stick out of the region;
// only their parts inside [region_begin, region_end) count. `used` is sorted in place.
FreeSpace free_space(std::vector<AddressRange>& used, uint64_t region_begin, uint64_t region_end);

// Sorts by `begin` (ranges with equal begins in no set order), as free_space() does: a radix sort
// over the bytes in which the begins differ, std::sort below a few hundred ranges.
void sort_by_begin(std::vector<AddressRange>& ranges);

}  // namespace ttmem::collector
