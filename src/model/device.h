// Chips and meshes: the allocator, the live buffers and the live CB set of every chip, and the
// events tt-metal's hooks would fire for them.
//
// A MeshDevice owns its chips. A mesh buffer is one allocation at a lock-step address on every
// member chip; a device-local buffer lives on one chip. Either way the observer hears about it
// once per chip, with the same buffer id, which is what a tracker hooked into tt-metal sees after
// fanning a MeshBuffer out to its member chips.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/allocator.h"
#include "model/device_spec.h"
#include "model/program.h"

namespace ttmem::model {

struct Buffer {
  uint64_t id = 0;  // process-wide, like tt-metal's Buffer::unique_id()
  BufferType type = BufferType::Dram;
  Layout layout = Layout::Interleaved;
  uint64_t address = 0;  // relative address, the same in every bank
  uint64_t size = 0;
  uint64_t page_size = 0;
  uint64_t size_per_bank = 0;
  uint32_t num_banks = 0;  // banks or shards
  uint32_t num_cores = 0;
  bool bottom_up = true;
  std::string tag;
  std::vector<uint32_t> chips;  // member chips, as indexes into the mesh
};

class Chip;

// The hooks tt-metal offers a tracker (tt-metalium/graph_tracking.hpp), reduced to what the
// model produces.
class AllocationObserver {
 public:
  virtual ~AllocationObserver() = default;
  virtual void on_allocate(const Chip& /*chip*/, const Buffer& /*buffer*/) {}
  virtual void on_deallocate(const Chip& /*chip*/, const Buffer& /*buffer*/) {}
  // A program's CB, on the program's first launch on the chip (cache hits report nothing).
  virtual void on_circular_buffer(const Chip& /*chip*/, const PlacedCircularBuffer& /*cb*/,
                                  uint64_t /*program_id*/) {}
  // A program's CB set on the chip is gone: the program was destroyed (track_deallocate_cb,
  // once per program and chip).
  virtual void on_program_circular_buffers_freed(const Chip& /*chip*/, uint64_t /*program_id*/) {}
};

// detail::GetMemoryView for one buffer type of one chip.
struct MemoryView {
  BufferType type = BufferType::Dram;
  uint32_t num_banks = 0;
  uint64_t bank_base = 0;
  uint64_t total_bytes_per_bank = 0;
  uint64_t total_bytes_allocated_per_bank = 0;
  uint64_t total_bytes_free_per_bank = 0;
  uint64_t largest_contiguous_bytes_free_per_bank = 0;
  bool operator==(const MemoryView&) const = default;
};

class Chip {
 public:
  Chip(uint32_t logical_id, uint64_t chip_id, const ChipGeometry& geometry);

  uint32_t logical_id() const { return logical_id_; }
  uint64_t chip_id() const { return chip_id_; }
  const ChipGeometry& geometry() const { return allocator_.geometry(); }
  Allocator& allocator() { return allocator_; }
  const Allocator& allocator() const { return allocator_; }

  MemoryView memory_view(BufferType type) const;
  // The CB set of every live program launched here, by program id. The sets overlap: each
  // stacks up from the unreserved base.
  const std::map<uint64_t, std::vector<PlacedCircularBuffer>>& program_cbs() const {
    return program_cbs_;
  }
  uint64_t cb_region_end() const;  // highest CB end among live programs; the base if none

 private:
  friend class MeshDevice;
  uint32_t logical_id_;
  uint64_t chip_id_;
  Allocator allocator_;
  std::map<uint64_t, std::vector<PlacedCircularBuffer>> program_cbs_;
};

class MeshDevice {
 public:
  // Opens the board's chips as one mesh (params.mesh, default the board's first shape).
  MeshDevice(const BoardSpec& board, const DeviceParams& params,
             AllocationObserver* observer = nullptr);
  MeshDevice(const MeshDevice&) = delete;
  MeshDevice& operator=(const MeshDevice&) = delete;

  uint32_t id() const { return id_; }  // process-wide mesh id, as MeshDevice::id()
  const BoardSpec& board() const { return *board_; }
  MeshShape shape() const { return shape_; }
  const ChipGeometry& geometry() const { return chips_.front()->geometry(); }
  size_t num_chips() const { return chips_.size(); }
  Chip& chip(size_t index) { return *chips_.at(index); }
  const Chip& chip(size_t index) const { return *chips_.at(index); }

  // A mesh buffer on every chip. Throws ModelError on failure; nothing is allocated then.
  const Buffer& allocate(const BufferConfig& config);
  // A device-local buffer on one chip.
  const Buffer& allocate_on(uint32_t chip, const BufferConfig& config);
  // Throws ModelError (InvalidRequest) for an id that is not live.
  void deallocate(uint64_t buffer_id);
  const Buffer* find(uint64_t buffer_id) const;
  std::vector<const Buffer*> buffers() const;  // live buffers, by id

  // Runs a program on every chip (or one). On its first launch on a chip its CBs are placed and
  // reported, and they stay allocated until the program is released (tt-metal keeps a live
  // program's CBs; ttnn's program cache keeps programs live); later launches report nothing.
  // Every launch validates the program's CB region. On a failed check the CBs stay reported, as
  // in tt-metal, and ModelError is thrown.
  void launch(const Program& program);
  void launch_on(uint32_t chip, const Program& program);
  // The program was destroyed: its CB set is freed on every chip that holds it.
  void release_program(uint64_t program_id);

  // Ends a trace capture of `command_bytes` of dispatch commands: checks the trace budget and
  // allocates the trace buffer in the TRACE region of every chip. Returns the TRACE buffer.
  const Buffer& capture_trace(uint64_t command_bytes);
  void release_trace(uint64_t buffer_id);
  uint64_t trace_buffers_size() const { return trace_buffers_size_; }

  // Releases every live program, as clearing the program cache does.
  void release_circular_buffers();
  // Frees every live buffer and CB, reporting each.
  void close();

 private:
  const Buffer& allocate_members(std::vector<uint32_t> members, const BufferConfig& config);
  void launch_members(std::span<const uint32_t> members, const Program& program);
  std::vector<uint32_t> all_chips() const;
  uint32_t checked_chip(uint32_t chip) const;

  const BoardSpec* board_;
  MeshShape shape_;
  uint32_t id_;
  AllocationObserver* observer_;
  std::vector<std::unique_ptr<Chip>> chips_;
  std::unordered_map<uint64_t, Buffer> buffers_;
  std::unordered_map<uint64_t, uint64_t> trace_sizes_;  // TRACE buffer id -> padded size
  uint64_t trace_buffers_size_ = 0;
};

// The answers to a failure, in one line each (ModelError::answer()).
std::string clash_answer(const ChipGeometry& geometry, uint64_t program_id, uint64_t bytes_over,
                         uint64_t l1_small_in_use);
std::string trace_answer(uint64_t trace_buffers_size, uint64_t trace_region_size);

// The page size tt-metal picks for a trace of `bytes` over `num_banks` DRAM banks: the largest
// power of two in [1 KiB, max] that wastes the least padding.
uint64_t trace_page_size(uint64_t bytes, uint32_t num_banks, uint64_t max_page_size);

}  // namespace ttmem::model
