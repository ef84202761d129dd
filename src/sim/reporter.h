// Reports the model's events through the ttmem C API, exactly as the tt-metal adapter would:
// a mesh buffer once per member chip with one buffer id, CBs per program, CB sets freed whole.
#pragma once

#include "model/device.h"

namespace ttmem::sim {

class ClientReporter final : public model::AllocationObserver {
 public:
  // Registers every chip of the mesh (logical id = position in the mesh) with full geometry.
  void register_mesh(const model::MeshDevice& mesh);

  void on_allocate(const model::Chip& chip, const model::Buffer& buffer) override;
  void on_deallocate(const model::Chip& chip, const model::Buffer& buffer) override;
  void on_circular_buffer(const model::Chip& chip, const model::PlacedCircularBuffer& cb,
                          uint64_t program_id) override;
  void on_program_circular_buffers_freed(const model::Chip& chip, uint64_t program_id) override;
};

}  // namespace ttmem::sim
