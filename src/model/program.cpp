#include "model/program.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>

#include "model/errors.h"

namespace ttmem::model {
namespace {

std::atomic<uint64_t> g_next_program_id{0};

// Applies `fn(core_index)` to every core of `ranges` on a grid_x-wide grid.
template <class Fn>
void for_each_core(const CoreRangeSet& ranges, uint32_t grid_x, Fn&& fn) {
  for (const CoreRange& r : ranges) {
    for (uint32_t y = r.start.y; y <= r.end.y; ++y) {
      for (uint32_t x = r.start.x; x <= r.end.x; ++x) fn(y * grid_x + x);
    }
  }
}

}  // namespace

Program::Program(std::string name, std::optional<uint64_t> id)
    : id_(id ? *id : g_next_program_id++), name_(std::move(name)) {}

Program& Program::add_circular_buffer(CoreRangeSet cores, uint64_t size) {
  cbs_.push_back({std::move(cores), size});
  return *this;
}

uint64_t CbLayout::region_end() const {
  uint64_t end = 0;
  for (const CbRegion& r : regions) end = std::max(end, r.end);
  return end;
}

CbLayout place_circular_buffers(const Program& program, const ChipGeometry& g) {
  CbLayout layout;
  std::vector<uint64_t> core_end(g.num_cores(), g.l1_unreserved_base);
  for (const CircularBufferConfig& cb : program.circular_buffers()) {
    for (const CoreRange& r : cb.cores) {
      if (r.end.x >= g.grid_x || r.end.y >= g.grid_y) {
        throw_invalid(
            fmt::format("Circular buffer core range {} is outside the {}x{} compute "
                        "grid; give cores within x < {}, y < {}",
                        r.str(), g.grid_x, g.grid_y, g.grid_x, g.grid_y));
      }
    }
    uint64_t address = g.l1_unreserved_base;
    for_each_core(cb.cores, g.grid_x,
                  [&](uint32_t c) { address = std::max(address, core_end[c]); });
    address = align_up(address, g.dram_alignment);
    for_each_core(cb.cores, g.grid_x, [&](uint32_t c) { core_end[c] = address + cb.size; });
    layout.cbs.push_back({cb.cores, address, cb.size});
    for (const CoreRange& r : cb.cores) {
      auto same = [&r](const CbRegion& region) { return region.range == r; };
      if (std::none_of(layout.regions.begin(), layout.regions.end(), same)) {
        layout.regions.push_back({r, 0});
      }
    }
  }
  for (CbRegion& region : layout.regions) {
    for_each_core({region.range}, g.grid_x,
                  [&](uint32_t c) { region.end = std::max(region.end, core_end[c]); });
  }
  return layout;
}

void validate_circular_buffer_region(const Program& program, const CbLayout& layout,
                                     const ChipGeometry& g,
                                     std::optional<uint64_t> lowest_l1_address) {
  for (const CbRegion& region : layout.regions) {
    if (region.end > g.l1_per_core) {
      throw_cb_beyond_l1(core_range_text(region.range, g.messages), region.end, g.l1_per_core);
    }
    if (lowest_l1_address && *lowest_l1_address < region.end) {
      throw_cb_clash(program.id(), core_range_text(region.range, g.messages), *lowest_l1_address,
                     region.end);
    }
  }
}

}  // namespace ttmem::model
