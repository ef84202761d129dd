#include "model/allocator.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "model/errors.h"

namespace ttmem::model {
namespace {

// Bank counts with a dedicated modulo in tt-metal's dataflow API (issue #3321).
constexpr std::array<uint32_t, 18> kNonPow2BankCounts = {
    7, 12, 20, 48, 56, 63, 70, 72, 80, 94, 108, 110, 117, 120, 124, 126, 130, 140};

FreeList make_bank(const ChipGeometry& g, BufferType type) {
  const KindGeometry& k = g.kind(type);
  return FreeList(k.bank_base, k.bank_size, g.dram_alignment);
}

void check_interleavable(const ChipGeometry& g, BufferType type) {
  const uint32_t banks = g.kind(type).num_banks;
  if (!is_valid_interleaved_bank_count(banks)) {
    throw_invalid(
        fmt::format("Invalid number of memory banks {} for {}. Num banks must be power "
                    "of 2 or have a dedicated modulo implementation",
                    banks, buffer_type_name(type)));
  }
}

}  // namespace

std::string out_of_memory_answer(const BankStatistics& s, uint64_t needed_per_bank,
                                 BufferType type) {
  const std::string_view name = buffer_type_name(type);
  if (s.total_free < needed_per_bank) {
    return fmt::format(
        "exhaustion: {} needs {} B per bank (aligned) but only {} B per bank is free; free at "
        "least {} B per bank of {}",
        name, needed_per_bank, s.total_free, needed_per_bank - s.total_free, name);
  }
  return fmt::format(
      "fragmentation: {} B per bank is free in total, enough for the {} B per bank needed, but "
      "the largest free block is {} B; free a buffer next to a hole, allocate long-lived buffers "
      "first, or try --policy best-fit",
      s.total_free, needed_per_bank, s.largest_free_block);
}

std::string biggest_holders(const std::map<std::string, Holding>& by_tag) {
  std::vector<std::pair<std::string, Holding>> sorted(by_tag.begin(), by_tag.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second.bytes_per_bank > b.second.bytes_per_bank;
  });
  std::string out;
  for (size_t i = 0; i < sorted.size() && i < 3; ++i) {
    const auto& [tag, h] = sorted[i];
    if (!out.empty()) out += ", ";
    out += fmt::format("{} {} B/bank ({} buffer{})", tag.empty() ? "(untagged)" : tag,
                       h.bytes_per_bank, h.buffers, h.buffers == 1 ? "" : "s");
  }
  return out;
}

uint64_t size_per_bank(uint64_t size, uint64_t page_size, uint32_t num_banks, uint32_t alignment) {
  if (page_size == 0 || num_banks == 0) return 0;
  const uint64_t pages = size / page_size;
  return ceil_div(pages, num_banks) * align_up(page_size, alignment);
}

bool is_valid_interleaved_bank_count(uint32_t num_banks) {
  const bool pow2 = num_banks != 0 && (num_banks & (num_banks - 1)) == 0;
  return pow2 || std::find(kNonPow2BankCounts.begin(), kNonPow2BankCounts.end(), num_banks) !=
                     kNonPow2BankCounts.end();
}

Allocator::Allocator(const ChipGeometry& geometry)
    : geometry_(geometry),
      banks_{make_bank(geometry, BufferType::Dram), make_bank(geometry, BufferType::L1),
             FreeList(0, 0, geometry.dram_alignment), make_bank(geometry, BufferType::L1Small),
             make_bank(geometry, BufferType::Trace)} {
  // L1_SMALL is sharded only, so its bank count need not support interleaving.
  check_interleavable(geometry_, BufferType::Dram);
  check_interleavable(geometry_, BufferType::L1);
}

Placement Allocator::plan(const BufferConfig& config) const {
  const std::string_view type = buffer_type_name(config.type);
  if (config.type == BufferType::SystemMemory) {
    throw_invalid(
        "SYSTEM_MEMORY buffers live in host memory: the device allocator has no banks "
        "for them; use DRAM, L1, L1_SMALL or TRACE");
  }
  if (config.size == 0) {
    throw_invalid(
        fmt::format("A {} buffer needs a size above 0 B (tt-metal never allocates "
                    "zero-size buffers)",
                    type));
  }
  if (config.page_size == 0 || config.size % config.page_size != 0) {
    throw_invalid(
        fmt::format("Buffer size {} B must be a whole number of pages of {} B: give a "
                    "page size that divides the size",
                    config.size, config.page_size));
  }
  const KindGeometry& kind = geometry_.kind(config.type);
  Placement p;
  // TRACE counts as DRAM (Buffer::is_dram): bottom-up unless asked otherwise.
  p.bottom_up = config.bottom_up.value_or(config.type == BufferType::Dram ||
                                          config.type == BufferType::Trace);
  if (is_sharded(config.layout)) {
    if (config.type == BufferType::Trace) {
      throw_invalid("TRACE buffers are interleaved over the DRAM banks; drop the sharding");
    }
    const bool on_l1 = config.type == BufferType::L1 || config.type == BufferType::L1Small;
    if (config.num_shards == 0 || config.num_shards > kind.num_banks) {
      throw_invalid(
          on_l1 ? fmt::format("Expected number of shards {} to be less than or equal to total "
                              "number of L1 banks {} in compute cores",
                              config.num_shards, kind.num_banks)
                : fmt::format("A sharded {} buffer needs 1 to {} shards (one per bank), not {}",
                              type, kind.num_banks, config.num_shards));
    }
    p.num_banks = config.num_shards;
    p.num_cores = on_l1 ? config.num_shards : 0;
  } else {
    if (config.type == BufferType::L1Small) {
      throw_invalid("L1_SMALL buffers are sharded only: give a sharded layout and a shard count");
    }
    p.num_banks = kind.num_banks;
  }
  p.size_per_bank = size_per_bank(config.size, config.page_size, p.num_banks, kind.alignment);
  return p;
}

Allocation allocate_lockstep(std::span<Allocator* const> members, const BufferConfig& config) {
  if (members.empty()) throw_invalid("An allocation needs at least one chip");
  Allocation result;
  result.placement = members.front()->plan(config);
  const Placement& p = result.placement;

  const FreeList& first = members.front()->bank(config.type);
  const uint64_t block = first.block_size(p.size_per_bank);
  std::vector<AddressRange> free = first.free_ranges();
  for (size_t i = 1; i < members.size() && !free.empty(); ++i) {
    free = intersect(free, members[i]->bank(config.type).free_ranges());
  }
  const auto address = choose_address(free, block, p.bottom_up, members.front()->geometry().policy,
                                      first.class_count());
  if (!address) {
    // Report the most constrained member, as a single shared mesh allocator would be.
    const Allocator* worst = members.front();
    for (const Allocator* m : members) {
      if (m->statistics(config.type).largest_free_block <
          worst->statistics(config.type).largest_free_block) {
        worst = m;
      }
    }
    const BankStatistics s = worst->statistics(config.type);
    const ChipGeometry& g = worst->geometry();
    // tt-metal prints the buffer's aligned size: pages x page size rounded to the alignment.
    const uint64_t aligned_size =
        config.size / config.page_size * align_up(config.page_size, g.kind(config.type).alignment);
    ModelError error(ErrorKind::OutOfMemory,
                     out_of_memory_text({.size = aligned_size,
                         .buffer_type = buffer_type_name(config.type),
                         .num_banks = p.num_banks,
                         .size_per_bank = p.size_per_bank,
                         .bank_size = s.total_allocatable,
                         .allocated = s.total_allocated,
                         .free = s.total_free,
                         .largest_free_block = s.largest_free_block,
                         .vintage = g.messages,
                         .sub_devices = g.sub_devices}));
    error.set_answer(out_of_memory_answer(s, block, config.type));
    throw error;
  }
  for (Allocator* m : members) m->bank(config.type).allocate_at(*address, p.size_per_bank);
  result.address = *address;
  return result;
}

}  // namespace ttmem::model
