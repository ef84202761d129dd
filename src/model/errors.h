// The errors the model raises. Allocation failures carry tt-metal's exact texts (its allocator),
// built here and nowhere else, so the sim, `ttmem model` and the tests all print the same words.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "model/device_spec.h"

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

  // What would fix it, in one line (ttmem's own words, never tt-metal's); empty if unknown.
  const std::string& answer() const { return answer_; }
  void set_answer(std::string answer) { answer_ = std::move(answer); }
  // TraceTooSmall: the trace_region_size that passes; 0 for other kinds.
  uint64_t needed() const { return needed_; }
  void set_needed(uint64_t bytes) { needed_ = bytes; }

 private:
  ErrorKind kind_;
  std::string answer_;
  uint64_t needed_ = 0;
};

struct OutOfMemoryFacts {
  uint64_t size = 0;  // the buffer's aligned size: pages x page size rounded to the alignment
  std::string_view buffer_type;  // "DRAM", "L1", ...
  uint32_t num_banks = 0;        // banks or shards
  uint64_t size_per_bank = 0;
  uint64_t bank_size = 0;
  uint64_t allocated = 0;  // per bank
  uint64_t free = 0;
  uint64_t largest_free_block = 0;
  MessageVintage vintage = MessageVintage::Current;
  bool sub_devices = false;  // the bank manager has dependencies (a sub-device manager)
};

// tt-metal's text for a core range in that vintage's tt-umd: "[(x=0,y=0) - (x=7,y=7)]" before
// tt-umd PR #2397 (2026-04-28), "[0-0 - 7-7]" since.
std::string core_range_text(const CoreRange& range, MessageVintage vintage);

// The out-of-memory text alone (the four forms), for tests and the replay report.
std::string out_of_memory_text(const OutOfMemoryFacts& facts);
[[noreturn]] void throw_out_of_memory(const OutOfMemoryFacts& facts);
[[noreturn]] void throw_cb_beyond_l1(const std::string& core_range, uint64_t region_end,
                                     uint64_t l1_size);
[[noreturn]] void throw_cb_clash(uint64_t program_id, const std::string& core_range,
                                 uint64_t lowest_l1_address, uint64_t region_end);
[[noreturn]] void throw_trace_too_small(uint64_t trace_buffers_size, uint32_t mesh_id,
                                        uint64_t trace_region_size);
[[noreturn]] void throw_invalid(const std::string& message);

}  // namespace ttmem::model
