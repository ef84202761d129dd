// One chip's allocator: a banked, lock-step bank manager per buffer type (docs/model.md, Sources).
//
// Every bank of a buffer type reserves the same per-bank size at the same relative address,
// including banks that hold no page of the buffer. A mesh allocates in lock-step over several
// chips: allocate_lockstep() places one allocation at an address free on every member chip.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>

#include "model/device_spec.h"
#include "model/free_list.h"
#include "model/types.h"

namespace ttmem::model {

struct BufferConfig {
  BufferType type = BufferType::Dram;
  uint64_t size = 0;  // bytes; a whole number of pages
  uint64_t page_size = 0;
  Layout layout = Layout::Interleaved;
  uint32_t num_shards = 0;        // sharded: shards (cores of the shard grid, or DRAM banks)
  std::optional<bool> bottom_up;  // default: DRAM and TRACE bottom-up, L1 and L1_SMALL top-down
  std::string tag;                // what the buffer holds ("weights"); empty: the running op
};

// What the bank manager settles before it looks for an address.
struct Placement {
  uint64_t size_per_bank = 0;  // ceil(pages / banks) * page size rounded to the alignment
  uint32_t num_banks = 0;      // banks (interleaved) or shards (sharded)
  uint32_t num_cores = 0;      // cores of the shard grid for sharded L1 buffers, else 0
  bool bottom_up = true;
};

// ceil(num_pages / num_banks) * round_up(page_size, alignment), as tt-metal's
// calculate_bank_size_spread.
uint64_t size_per_bank(uint64_t size, uint64_t page_size, uint32_t num_banks, uint32_t alignment);

// Interleaving needs a power-of-two bank count or one with a dedicated modulo in the dataflow API.
bool is_valid_interleaved_bank_count(uint32_t num_banks);

class Allocator {
 public:
  explicit Allocator(const ChipGeometry& geometry);

  const ChipGeometry& geometry() const { return geometry_; }

  // Validates the request and computes its per-bank size; throws ModelError (InvalidRequest).
  Placement plan(const BufferConfig& config) const;

  FreeList& bank(BufferType type) { return banks_[index(type)]; }
  const FreeList& bank(BufferType type) const { return banks_[index(type)]; }
  BankStatistics statistics(BufferType type) const { return bank(type).statistics(); }

  // The lowest address of any L1 buffer (L1_SMALL sits above L1, so it never is the lowest).
  std::optional<uint64_t> lowest_l1_address() const {
    return bank(BufferType::L1).lowest_allocated();
  }

 private:
  static size_t index(BufferType type) { return static_cast<size_t>(type); }

  ChipGeometry geometry_;
  std::array<FreeList, kNumBufferTypes> banks_;  // SYSTEM_MEMORY's stays empty
};

struct Allocation {
  uint64_t address = 0;
  Placement placement;
};

// The answer to an out-of-memory failure: exhaustion (too little free in total) or
// fragmentation (enough free, no block large enough).
std::string out_of_memory_answer(const BankStatistics& stats, uint64_t needed_per_bank,
                                 BufferType type);

// What one tag (an op or a tensor's purpose) holds of a memory kind.
struct Holding {
  uint64_t bytes_per_bank = 0;
  uint32_t buffers = 0;
};
// "kv_cache 536870912 B/bank (2 buffers), weights ...": the three biggest, for the answer to an
// out-of-memory failure.
std::string biggest_holders(const std::map<std::string, Holding>& by_tag);

// Allocates `config` at one address on every member (a single chip is a mesh of one). Throws
// ModelError: InvalidRequest for a bad request, OutOfMemory when no address is free on all
// members (the figures are those of the member with the smallest largest free block).
Allocation allocate_lockstep(std::span<Allocator* const> members, const BufferConfig& config);

}  // namespace ttmem::model
