#include "collector/address_map.h"

#include <algorithm>

namespace ttmem {

FreeSpace free_space(std::vector<AddressRange>& used, uint64_t region_begin, uint64_t region_end) {
  FreeSpace out;
  if (region_end <= region_begin) return out;
  std::sort(used.begin(), used.end(),
            [](const AddressRange& a, const AddressRange& b) { return a.begin < b.begin; });
  uint64_t cursor = region_begin;  // everything below is covered or outside the region
  for (const AddressRange& r : used) {
    uint64_t b = std::max(r.begin, region_begin);
    uint64_t e = std::min(r.end, region_end);
    if (e <= b) continue;
    if (b > cursor) {
      out.free_bytes += b - cursor;
      out.largest_free_block = std::max(out.largest_free_block, b - cursor);
    }
    cursor = std::max(cursor, e);
  }
  if (region_end > cursor) {
    out.free_bytes += region_end - cursor;
    out.largest_free_block = std::max(out.largest_free_block, region_end - cursor);
  }
  return out;
}

}  // namespace ttmem
