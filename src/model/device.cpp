#include "model/device.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>

#include "model/errors.h"

namespace ttmem::model {
namespace {

std::atomic<uint64_t> g_next_buffer_id{1};

// What each tag holds of `type` on `chip`.
std::map<std::string, Holding> holdings(const std::unordered_map<uint64_t, Buffer>& buffers,
                                        uint32_t chip, BufferType type) {
  std::map<std::string, Holding> by_tag;
  for (const auto& [id, b] : buffers) {
    if (b.type != type || std::find(b.chips.begin(), b.chips.end(), chip) == b.chips.end()) {
      continue;
    }
    Holding& h = by_tag[b.tag];
    h.bytes_per_bank += b.size_per_bank;
    ++h.buffers;
  }
  return by_tag;
}

std::atomic<uint32_t> g_next_mesh_id{0};

// A stable chip id per (product, position): the same simulated chip keeps its id across runs,
// as a real chip keeps its unique id whatever TT_VISIBLE_DEVICES says.
uint64_t stable_chip_id(std::string_view board, uint32_t index) {
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a
  for (char c : board) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return (hash & 0xFFFF'FFFF'FFFF'0000ULL) | index;
}

}  // namespace

std::string trace_answer(uint64_t trace_buffers_size, uint64_t trace_region_size) {
  return fmt::format("the trace buffers need {} B, {} B more than the trace region; "
                     "trace_region_size {} B or more passes",
                     trace_buffers_size, trace_buffers_size - trace_region_size,
                     trace_buffers_size);
}

std::string clash_answer(const ChipGeometry& g, uint64_t program_id, uint64_t bytes_over,
                         uint64_t l1_small_in_use) {
  // Top-down L1 buffers sit below L1_SMALL: shrinking it by `bytes_over` lifts them as much.
  const uint64_t shrunk = g.l1_small_size >= bytes_over
                              ? (g.l1_small_size - bytes_over) / g.dram_alignment * g.dram_alignment
                              : 0;
  if (g.l1_small_size >= bytes_over && shrunk >= l1_small_in_use) {
    return fmt::format(
        "the CB region ends {} B above the lowest L1 buffer; l1_small_size {} B or less (now {} "
        "B, L1_SMALL holds {} B per core) avoids it, or shave {} B per core off program {}'s "
        "circular buffers",
        bytes_over, shrunk, g.l1_small_size, l1_small_in_use, bytes_over, program_id);
  }
  return fmt::format(
      "the CB region ends {} B above the lowest L1 buffer; shave {} B per core off program {}'s "
      "circular buffers (l1_small_size {} B cannot shrink enough: L1_SMALL holds {} B per core)",
      bytes_over, bytes_over, program_id, g.l1_small_size, l1_small_in_use);
}

uint64_t trace_page_size(uint64_t bytes, uint32_t num_banks, uint64_t max_page_size) {
  uint64_t pick = kMinTracePageSize;
  uint64_t least_waste = UINT64_MAX;
  for (uint64_t page = kMinTracePageSize; page <= max_page_size; page <<= 1) {
    const uint64_t waste = align_up(bytes, page * num_banks) - bytes;
    if (waste <= least_waste) {  // ties go to the larger page
      least_waste = waste;
      pick = page;
    }
  }
  return pick;
}

Chip::Chip(uint32_t logical_id, uint64_t chip_id, const ChipGeometry& geometry)
    : logical_id_(logical_id), chip_id_(chip_id), allocator_(geometry) {}

MemoryView Chip::memory_view(BufferType type) const {
  const BankStatistics s = allocator_.statistics(type);
  const KindGeometry& k = geometry().kind(type);
  return MemoryView{.type = type,
                    .num_banks = k.num_banks,
                    .bank_base = k.bank_base,
                    .total_bytes_per_bank = s.total_allocatable,
                    .total_bytes_allocated_per_bank = s.total_allocated,
                    .total_bytes_free_per_bank = s.total_free,
                    .largest_contiguous_bytes_free_per_bank = s.largest_free_block};
}

uint64_t Chip::cb_region_end() const {
  uint64_t end = geometry().l1_unreserved_base;
  for (const auto& [program, cbs] : program_cbs_) {
    for (const PlacedCircularBuffer& cb : cbs) end = std::max(end, cb.address + cb.size);
  }
  return end;
}

MeshDevice::MeshDevice(const BoardSpec& board, const DeviceParams& params,
                       AllocationObserver* observer)
    : board_(&board), shape_(params.mesh.value_or(board.meshes[0])), observer_(observer) {
  if (shape_.num_chips() == 0 || shape_.num_chips() > board.num_chips) {
    throw_invalid(
        fmt::format("A {} mesh needs {} chips but {} has {}: give a mesh of at most {} "
                    "chips (e.g. {})",
                    mesh_name(shape_), shape_.num_chips(), board.name, board.num_chips,
                    board.num_chips, mesh_name(board.meshes[0])));
  }
  const ChipGeometry geometry = compute_geometry(board, params);
  id_ = g_next_mesh_id++;
  for (uint32_t i = 0; i < shape_.num_chips(); ++i) {
    chips_.push_back(std::make_unique<Chip>(i, stable_chip_id(board.name, i), geometry));
  }
}

std::vector<uint32_t> MeshDevice::all_chips() const {
  std::vector<uint32_t> out(chips_.size());
  for (uint32_t i = 0; i < out.size(); ++i) out[i] = i;
  return out;
}

uint32_t MeshDevice::checked_chip(uint32_t chip) const {
  if (chip >= chips_.size()) {
    throw_invalid(fmt::format("Chip {} is not in this {}-chip mesh: give 0 to {}", chip,
                              chips_.size(), chips_.size() - 1));
  }
  return chip;
}

const Buffer& MeshDevice::allocate(const BufferConfig& config) {
  return allocate_members(all_chips(), config);
}

const Buffer& MeshDevice::allocate_on(uint32_t chip, const BufferConfig& config) {
  return allocate_members({checked_chip(chip)}, config);
}

const Buffer& MeshDevice::allocate_members(std::vector<uint32_t> members,
                                           const BufferConfig& config) {
  std::vector<Allocator*> allocators;
  allocators.reserve(members.size());
  for (uint32_t m : members) allocators.push_back(&chips_[m]->allocator());
  Allocation a;
  try {
    a = allocate_lockstep(allocators, config);
  } catch (ModelError& e) {
    if (e.kind() != ErrorKind::OutOfMemory) throw;
    const std::string holders =
        biggest_holders(holdings(buffers_, members.front(), config.type));
    if (!holders.empty()) e.set_answer(e.answer() + "; biggest holders: " + holders);
    throw;
  }

  Buffer buffer{.id = g_next_buffer_id++,
                .type = config.type,
                .layout = config.layout,
                .address = a.address,
                .size = config.size,
                .page_size = config.page_size,
                .size_per_bank = a.placement.size_per_bank,
                .num_banks = a.placement.num_banks,
                .num_cores = a.placement.num_cores,
                .bottom_up = a.placement.bottom_up,
                .tag = config.tag,
                .chips = std::move(members)};
  const uint64_t id = buffer.id;
  const Buffer& stored = buffers_.emplace(id, std::move(buffer)).first->second;
  if (observer_) {
    for (uint32_t m : stored.chips) observer_->on_allocate(*chips_[m], stored);
  }
  return stored;
}

void MeshDevice::deallocate(uint64_t buffer_id) {
  auto it = buffers_.find(buffer_id);
  if (it == buffers_.end()) {
    throw_invalid(fmt::format("Buffer {} is not allocated on mesh {}", buffer_id, id_));
  }
  const Buffer& buffer = it->second;
  for (uint32_t m : buffer.chips) {
    // tt-metal reports a deallocation before the allocator frees the range.
    if (observer_) observer_->on_deallocate(*chips_[m], buffer);
    chips_[m]->allocator().bank(buffer.type).deallocate(buffer.address);
  }
  buffers_.erase(it);
}

const Buffer* MeshDevice::find(uint64_t buffer_id) const {
  auto it = buffers_.find(buffer_id);
  return it == buffers_.end() ? nullptr : &it->second;
}

std::vector<const Buffer*> MeshDevice::buffers() const {
  std::vector<const Buffer*> out;
  out.reserve(buffers_.size());
  for (const auto& [id, buffer] : buffers_) out.push_back(&buffer);
  std::sort(out.begin(), out.end(), [](const Buffer* a, const Buffer* b) { return a->id < b->id; });
  return out;
}

void MeshDevice::launch(const Program& program) {
  launch_members(all_chips(), program);
}

void MeshDevice::launch_on(uint32_t chip, const Program& program) {
  const uint32_t member = checked_chip(chip);
  launch_members({&member, 1}, program);
}

void MeshDevice::launch_members(std::span<const uint32_t> members, const Program& program) {
  // Chips are identical in geometry, so one placement serves every member.
  const CbLayout layout = place_circular_buffers(program, geometry());
  for (uint32_t m : members) {
    Chip& chip = *chips_[m];
    auto [it, first_launch] = chip.program_cbs_.try_emplace(program.id(), layout.cbs);
    if (!first_launch || observer_ == nullptr) continue;  // a cache hit reports nothing
    for (const PlacedCircularBuffer& cb : it->second) {
      observer_->on_circular_buffer(chip, cb, program.id());
    }
  }
  for (uint32_t m : members) {
    const Allocator& allocator = chips_[m]->allocator();
    try {
      validate_circular_buffer_region(program, layout, geometry(), allocator.lowest_l1_address());
    } catch (ModelError& e) {
      if (e.kind() != ErrorKind::CbClash) throw;
      const FreeList& small = allocator.bank(BufferType::L1Small);
      const uint64_t small_in_use =
          small.lowest_allocated() ? small.offset() + small.size() - *small.lowest_allocated() : 0;
      e.set_answer(clash_answer(geometry(), program.id(),
                                layout.region_end() - *allocator.lowest_l1_address(),
                                small_in_use));
      throw;
    }
  }
}

const Buffer& MeshDevice::capture_trace(uint64_t command_bytes) {
  const ChipGeometry& g = geometry();
  const uint32_t banks = g.kind(BufferType::Trace).num_banks;
  // Trace pages grew to 8 KiB together with the per-device trace budget (PR #47766).
  const uint64_t max_page = g.trace_mode == TraceRegionMode::PerDevice ? kMaxTracePageSize : 4096;
  const uint64_t page = trace_page_size(command_bytes, banks, max_page);
  const uint64_t padded = align_up(command_bytes, page);
  // Since 2026 a trace_region_size of 0 means "no trace region": trace buffers go in DRAM,
  // top-down (tt_metal/distributed/mesh_trace.cpp).
  const bool dynamic = g.trace_region_size == 0 && (g.messages == MessageVintage::V2026 ||
                                                    g.messages == MessageVintage::Current);
  if (!dynamic && trace_buffers_size_ + padded > g.trace_region_size) {
    try {
      throw_trace_too_small(trace_buffers_size_ + padded, id_, g.trace_region_size);
    } catch (ModelError& e) {
      e.set_answer(trace_answer(trace_buffers_size_ + padded, g.trace_region_size));
      e.set_needed(trace_buffers_size_ + padded);
      throw;
    }
  }
  // TRACE buffers leave the direction unset, so the DRAM default applies: bottom-up inside the
  // trace region.
  const Buffer& buffer = allocate(BufferConfig{.type = dynamic ? BufferType::Dram : BufferType::Trace,
                                               .size = padded,
                                               .page_size = page,
                                               .bottom_up = dynamic ? std::optional<bool>(false)
                                                                    : std::nullopt,
                                               .tag = "trace"});
  trace_buffers_size_ += padded;
  trace_sizes_[buffer.id] = padded;
  return buffer;
}

void MeshDevice::release_trace(uint64_t buffer_id) {
  auto it = trace_sizes_.find(buffer_id);
  if (it == trace_sizes_.end()) {
    throw_invalid(fmt::format("Buffer {} is not a captured trace on mesh {}", buffer_id, id_));
  }
  trace_buffers_size_ -= it->second;
  trace_sizes_.erase(it);
  deallocate(buffer_id);
}

void MeshDevice::close() {
  for (const Buffer* buffer : buffers()) {
    if (trace_sizes_.count(buffer->id) != 0) {
      release_trace(buffer->id);
    } else {
      deallocate(buffer->id);
    }
  }
  release_circular_buffers();
}

void MeshDevice::release_program(uint64_t program_id) {
  for (auto& chip : chips_) {
    if (chip->program_cbs_.erase(program_id) != 0 && observer_) {
      observer_->on_program_circular_buffers_freed(*chip, program_id);
    }
  }
}

void MeshDevice::release_circular_buffers() {
  for (auto& chip : chips_) {
    for (const auto& [program, cbs] : chip->program_cbs_) {
      if (observer_) observer_->on_program_circular_buffers_freed(*chip, program);
    }
    chip->program_cbs_.clear();
  }
}

}  // namespace ttmem::model
