#include "sim/reporter.h"

#include <string>
#include <vector>

#include "ttmem/ttmem.hpp"

namespace ttmem::sim {

void ClientReporter::register_mesh(const model::MeshDevice& mesh) {
  const model::ChipGeometry& g = mesh.geometry();
  const std::string board(mesh.board().name);
  for (size_t i = 0; i < mesh.num_chips(); ++i) {
    const model::Chip& chip = mesh.chip(i);
    ttmem_device_desc d = make_device_desc();
    d.logical_id = chip.logical_id();
    d.chip_id = chip.chip_id();
    d.arch = static_cast<uint32_t>(g.arch);
    d.grid_x = static_cast<uint16_t>(g.grid_x);
    d.grid_y = static_cast<uint16_t>(g.grid_y);
    d.l1_per_core = g.l1_per_core;
    d.unreserved_base = g.l1_unreserved_base;
    d.trace_region_size = g.trace_region_size;
    d.l1_small_size = g.l1_small_size;
    // DRAM, L1, L1_SMALL, TRACE and CB; SYSTEM_MEMORY has no device banks and stays zero.
    for (uint32_t k = 0; k < g.kinds.size(); ++k) {
      const model::KindGeometry& kind = g.kinds[k];
      d.kinds[k] = ttmem_kind_geometry{.capacity = kind.bank_size * kind.num_banks,
                                       .bank_size = kind.bank_size,
                                       .bank_base = kind.bank_base,
                                       .num_banks = kind.num_banks,
                                       .alignment = kind.alignment};
    }
    d.board = board.c_str();
    ttmem_register_device(&d);
  }
}

void ClientReporter::on_allocate(const model::Chip& chip, const model::Buffer& buffer) {
  ttmem_buffer_desc d =
      make_buffer_desc(chip.logical_id(), buffer.id, buffer.type, buffer.address, buffer.size);
  d.layout = static_cast<uint32_t>(buffer.layout);
  d.page_size = buffer.page_size;
  d.size_per_bank = buffer.size_per_bank;
  d.num_banks = buffer.num_banks;
  d.num_cores = buffer.num_cores;
  d.tag = buffer.tag.empty() ? nullptr : buffer.tag.c_str();  // NULL: the innermost op
  ttmem_buffer_alloc(&d);
}

void ClientReporter::on_deallocate(const model::Chip& chip, const model::Buffer& buffer) {
  ttmem_buffer_free(chip.logical_id(), buffer.id);
}

void ClientReporter::on_circular_buffer(const model::Chip& chip,
                                        const model::PlacedCircularBuffer& cb,
                                        uint64_t program_id) {
  std::vector<ttmem_core_range> ranges;
  ranges.reserve(cb.cores.size());
  for (const model::CoreRange& r : cb.cores) {
    ranges.push_back({static_cast<uint16_t>(r.start.x), static_cast<uint16_t>(r.start.y),
                      static_cast<uint16_t>(r.end.x), static_cast<uint16_t>(r.end.y)});
  }
  ttmem_cb_alloc(chip.logical_id(), ranges.data(), ranges.size(), cb.address, cb.size, program_id);
}

void ClientReporter::on_program_circular_buffers_freed(const model::Chip& chip,
                                                       uint64_t program_id) {
  ttmem_cb_free_program(chip.logical_id(), program_id);
}

}  // namespace ttmem::sim
