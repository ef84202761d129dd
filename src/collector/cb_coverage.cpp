#include "collector/cb_coverage.h"

#include <algorithm>
#include <vector>

namespace ttmem::collector {

void CbCoverage::add(CoreRect cores, uint64_t end) {
  if (cores.x1 < cores.x0 || cores.y1 < cores.y0) return;  // not a rectangle: nothing covered
  uint64_t& e = highest_end_[key(cores)];
  e = std::max(e, end);
}

void CbCoverage::merge(const CbCoverage& other) {
  for (const auto& [k, end] : other.highest_end_) {
    uint64_t& e = highest_end_[k];
    e = std::max(e, end);
  }
}

uint64_t CbCoverage::region_end(uint64_t base) const {
  uint64_t end = base;
  for (const auto& [k, e] : highest_end_) end = std::max(end, e);
  return end;
}

uint64_t CbCoverage::covered_bytes(uint64_t base) const {
  if (highest_end_.empty()) return 0;
  uint32_t width = 0, height = 0;
  for (const auto& [k, e] : highest_end_) {
    width = std::max(width, ((k >> 16) & 0xFF) + 1);
    height = std::max(height, (k >> 24) + 1);
  }
  // At most 256 x 256 cores (coordinates are bytes); real grids are about 10 x 13.
  std::vector<uint64_t> core_end(size_t(width) * height, base);
  for (const auto& [k, e] : highest_end_) {
    const uint32_t x0 = k & 0xFF, y0 = (k >> 8) & 0xFF, x1 = (k >> 16) & 0xFF, y1 = k >> 24;
    for (uint32_t y = y0; y <= y1; ++y) {
      for (uint32_t x = x0; x <= x1; ++x) {
        uint64_t& c = core_end[size_t(y) * width + x];
        c = std::max(c, e);
      }
    }
  }
  uint64_t covered = 0;
  for (uint64_t e : core_end) covered += e - base;
  return covered;
}

}  // namespace ttmem::collector
