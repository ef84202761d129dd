// Test types that mirror the tt-metal accessors and hook interfaces the adapter uses
// (../shared/FACTS.md §1, tt-metalium/graph_tracking.hpp, buffer.hpp, mesh_device.hpp), one
// processor interface per hook vintage. Names follow tt-metal, not this project's style.
// NOLINTBEGIN(readability-identifier-naming)
#pragma once

#include <any>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ttmem_tt_metal/mapping.hpp"

namespace fake {

enum class BufferType { DRAM = 0, L1 = 1, SYSTEM_MEMORY = 2, L1_SMALL = 3, TRACE = 4 };
enum class TensorMemoryLayout {
  INTERLEAVED = 0,
  HEIGHT_SHARDED = 2,
  WIDTH_SHARDED = 3,
  BLOCK_SHARDED = 4,
  ND_SHARDED = 5
};

struct CoreCoord {
  size_t x = 0, y = 0;
};
struct CoreRange {
  CoreCoord start_coord, end_coord;
};
class CoreRangeSet {
 public:
  CoreRangeSet(std::vector<CoreRange> r) : ranges_(std::move(r)) {}  // NOLINT: implicit as tt-metal
  CoreRangeSet(const CoreRange& r) : ranges_{r} {}                   // NOLINT
  const std::vector<CoreRange>& ranges() const { return ranges_; }

 private:
  std::vector<CoreRange> ranges_;
};

// IDevice: a chip.
class IDevice {
 public:
  IDevice(int id, uint64_t chip) : id_(id), chip_(chip) {}
  virtual ~IDevice() = default;
  int id() const { return id_; }
  uint64_t unique_chip_id() const { return chip_; }
  uint32_t num_dram_channels() const { return 12; }
  uint32_t dram_size_per_channel() const { return 1u << 30; }
  uint32_t l1_size_per_core() const { return 1499136; }
  CoreCoord compute_with_storage_grid_size() const { return {8, 8}; }

 private:
  int id_;
  uint64_t chip_;
};

// MeshDevice: an IDevice standing for several chips (get_devices(), row-major).
class MeshDevice : public IDevice {
 public:
  MeshDevice(int id, std::vector<IDevice*> chips) : IDevice(id, 0), chips_(std::move(chips)) {}
  std::vector<IDevice*> get_devices() const { return chips_; }

 private:
  std::vector<IDevice*> chips_;
};

struct Program {
  uint64_t id = 0;
  uint64_t get_id() const { return id; }
};

// tt-metal's Buffer accessors (FACTS §1).
struct Buffer {
  IDevice* device_ = nullptr;
  uint64_t size_ = 0;
  uint64_t address_ = 0;
  uint64_t page_size_ = 2048;
  BufferType type_ = BufferType::DRAM;
  TensorMemoryLayout layout_ = TensorMemoryLayout::INTERLEAVED;
  uint64_t aligned_size_per_bank_ = 0;
  std::optional<uint32_t> num_cores_;
  size_t unique_id_ = 0;

  IDevice* device() const { return device_; }
  uint64_t size() const { return size_; }
  uint64_t address() const { return address_; }
  uint64_t page_size() const { return page_size_; }
  uint64_t num_pages() const { return page_size_ ? (size_ + page_size_ - 1) / page_size_ : 0; }
  BufferType buffer_type() const { return type_; }
  TensorMemoryLayout buffer_layout() const { return layout_; }
  bool bottom_up() const { return type_ == BufferType::DRAM; }
  uint64_t aligned_size_per_bank() const { return aligned_size_per_bank_; }
  uint32_t alignment() const { return type_ == BufferType::DRAM ? 32 : 16; }
  bool has_shard_spec() const { return layout_ != TensorMemoryLayout::INTERLEAVED; }
  std::optional<uint32_t> num_cores() const { return num_cores_; }
  size_t unique_id() const { return unique_id_; }
};

struct TrackedArgument {
  std::any value;
};

// IGraphProcessor, vintage 1: track_allocate_cb(const CoreRange&, addr, size), no device.
class ProcessorV1 {
 public:
  virtual ~ProcessorV1() = default;
  virtual void track_allocate(const Buffer*) {}
  virtual void track_deallocate(Buffer*) {}
  virtual void track_allocate_cb(const CoreRange&, uint64_t, uint64_t) {}
  virtual void track_deallocate_cb(const IDevice*) {}
  virtual void track_program(Program*) {}
  virtual void track_function_start(std::string_view, std::span<std::any>) {}
  virtual void track_function_end() {}
  virtual void track_function_end(const std::any&) {}
};

// Vintage 2: a CoreRangeSet.
class ProcessorV2 {
 public:
  virtual ~ProcessorV2() = default;
  virtual void track_allocate(const Buffer*) {}
  virtual void track_deallocate(Buffer*) {}
  virtual void track_allocate_cb(const CoreRangeSet&, uint64_t, uint64_t) {}
  virtual void track_deallocate_cb(const IDevice*) {}
  virtual void track_program(Program*, const IDevice*) {}
  virtual void track_function_start(std::string_view, std::span<std::any>) {}
  virtual void track_function_end() {}
  virtual void track_function_end(const std::any&) {}
};

// Vintage 3: + bool is_globally_allocated.
class ProcessorV3 {
 public:
  virtual ~ProcessorV3() = default;
  virtual void track_allocate(const Buffer*) {}
  virtual void track_deallocate(Buffer*) {}
  virtual void track_allocate_cb(const CoreRangeSet&, uint64_t, uint64_t, bool) {}
  virtual void track_deallocate_cb(const IDevice*) {}
  virtual void track_program(Program*, const IDevice*) {}
  virtual void track_function_start(std::string_view, std::span<std::any>) {}
  virtual void track_function_end() {}
  virtual void track_function_end(const std::any&) {}
};

// Vintage 4 (current): + const IDevice*, TrackedArgument, is_capture_processor.
class ProcessorV4 {
 public:
  virtual ~ProcessorV4() = default;
  virtual bool is_capture_processor() const { return true; }
  virtual void track_allocate(const Buffer*) {}
  virtual void track_deallocate(Buffer*) {}
  virtual void track_allocate_cb(const CoreRangeSet&, uint64_t, uint64_t, bool, const IDevice*) {}
  virtual void track_deallocate_cb(const IDevice*) {}
  virtual void track_program(Program*, const IDevice*) {}
  virtual void track_function_start(std::string_view, std::span<TrackedArgument>) {}
  virtual void track_function_end() {}
  virtual void track_function_end(const std::any&) {}
};

// The process-wide observer, as FACTS.md names its notifications.
class BufferAllocationObserver {
 public:
  virtual ~BufferAllocationObserver() = default;
  virtual void notify_buffer_allocated(const Buffer* buffer) = 0;
  virtual void notify_buffer_deallocated(Buffer* buffer) = 0;
};

// The same observer as spelled in tt-metal's impl/memory_tracking sources.
class BufferAllocationObserverTrack {
 public:
  virtual ~BufferAllocationObserverTrack() = default;
  virtual void track_allocate(const Buffer* buffer) = 0;
  virtual void track_deallocate(Buffer* buffer) = 0;
};

// Traits as the adapter library implements them for tt-metal (dynamic_cast for meshes).
template <class Args>
struct Traits {
  using Device = IDevice;
  using Buffer = fake::Buffer;
  using CoreRange = fake::CoreRange;
  using CoreRangeSet = fake::CoreRangeSet;
  using Program = fake::Program;
  using FunctionArgs = Args;

  static uint32_t logical_id(const IDevice& d) { return uint32_t(d.id()); }
  static std::vector<const IDevice*> members(const IDevice& d) {
    std::vector<const IDevice*> out;
    if (const auto* mesh = dynamic_cast<const MeshDevice*>(&d)) {
      for (IDevice* c : mesh->get_devices()) out.push_back(c);
    }
    return out;
  }
  static ttmem::tt_metal::DeviceFacts facts(const IDevice& d) {
    ttmem::tt_metal::DeviceFacts f;
    f.chip_id = d.unique_chip_id();
    f.arch = TTMEM_ARCH_WORMHOLE_B0;
    f.grid_x = uint16_t(d.compute_with_storage_grid_size().x);
    f.grid_y = uint16_t(d.compute_with_storage_grid_size().y);
    f.l1_per_core = d.l1_size_per_core();
    f.unreserved_base = 102400;
    f.board = "fake-n300";
    auto& dram = f.kinds[TTMEM_KIND_DRAM];
    dram.banks = d.num_dram_channels();
    dram.bank_size = d.dram_size_per_channel();
    dram.alignment = 32;
    const uint64_t l1_bank = d.l1_size_per_core() - f.unreserved_base;
    auto& l1 = f.kinds[TTMEM_KIND_L1];
    l1 = {0, l1_bank, f.unreserved_base, 64, 16};
    f.kinds[TTMEM_KIND_CB] = l1;
    return f;
  }
};

}  // namespace fake
// NOLINTEND(readability-identifier-naming)
