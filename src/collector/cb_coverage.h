// The L1 that circular buffers cover on a chip, without adding overlapping CB sets.
//
// tt-metal keeps the CB set of every live (cached) program allocated at once. Each set stacks up
// from the same unreserved base, so the sets overlap: on each core what the CBs take is the
// highest CB end among all sets, minus the base. Summing the sets' bytes instead counts the same
// addresses once per program (the mistake behind tt-metal #52010), and grows with the program
// cache while the device's real CB region does not.
//
// CB records are exact core rectangles (one record per CB and core range), so the coverage is
// exact: the distinct rectangles keep their highest end, then each core takes the highest end of
// the rectangles over it.
#pragma once

#include <cstdint>
#include <unordered_map>

namespace ttmem::collector {

// What a chip's CB sets take of its L1: the bytes they cover (summed over cores) and the highest
// CB end (the base when there are none).
struct CbRegion {
  uint64_t covered_bytes = 0;
  uint64_t end = 0;
};

struct CoreRect {
  uint8_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // inclusive
};

class CbCoverage {
 public:
  // A CB on every core of `cores` ending (address + size per core) at `end`.
  void add(CoreRect cores, uint64_t end);
  void merge(const CbCoverage& other);
  bool empty() const { return highest_end_.empty(); }

  // Highest CB end on any core; `base` when there are no CBs.
  uint64_t region_end(uint64_t base) const;
  // Sum over cores of (highest CB end on the core - base): the L1 bytes the CB region covers.
  uint64_t covered_bytes(uint64_t base) const;
  CbRegion region(uint64_t base) const { return {covered_bytes(base), region_end(base)}; }

 private:
  static uint32_t key(CoreRect r) {
    return uint32_t(r.x0) | uint32_t(r.y0) << 8 | uint32_t(r.x1) << 16 | uint32_t(r.y1) << 24;
  }
  std::unordered_map<uint32_t, uint64_t> highest_end_;  // per distinct rectangle
};

// The core rectangle packed in a CB record's `aux` word (x0, y0, x1, y1 as bytes).
inline CoreRect core_rect_of(uint32_t aux) {
  return {uint8_t(aux), uint8_t(aux >> 8), uint8_t(aux >> 16), uint8_t(aux >> 24)};
}

}  // namespace ttmem::collector
