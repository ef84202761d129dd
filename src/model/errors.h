// The errors the model raises. Allocation failures carry tt-metal's exact texts (its allocator),
// built here and nowhere else, so the sim, `ttmem model` and the tests all print the same words.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ttmem::model {

enum class ErrorKind {
  OutOfMemory,     // no free block large enough in the bank manager
  CbBeyondL1,      // static CB region ends past the top of L1
  CbClash,         // static CB region ends above the lowest L1 buffer
  TraceTooSmall,   // captured trace buffers exceed trace_region_size
  InvalidRequest,  // a request tt-metal would refuse before allocating (shard count, page size)
};

class ModelError : public std::runtime_error {
 public:
  ModelError(ErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  // A short stable name for scripts: "out_of_memory", "cb_clash", ...
  std::string_view kind_name() const;

 private:
  ErrorKind kind_;
};

struct OutOfMemoryFacts {
  uint64_t size = 0;
  std::string_view buffer_type;  // "DRAM", "L1", ...
  uint32_t num_banks = 0;        // banks or shards
  uint64_t size_per_bank = 0;
  uint64_t bank_size = 0;
  uint64_t allocated = 0;  // per bank
  uint64_t free = 0;
  uint64_t largest_free_block = 0;
};

[[noreturn]] void throw_out_of_memory(const OutOfMemoryFacts& facts);
[[noreturn]] void throw_cb_beyond_l1(std::string_view core_range, uint64_t region_end,
                                     uint64_t l1_size);
[[noreturn]] void throw_cb_clash(uint64_t program_id, std::string_view core_range,
                                 uint64_t lowest_l1_address, uint64_t region_end);
[[noreturn]] void throw_trace_too_small(uint64_t trace_buffers_size, uint32_t mesh_id,
                                        uint64_t trace_region_size);
[[noreturn]] void throw_invalid(const std::string& message);

}  // namespace ttmem::model
