#include "model/errors.h"

#include <fmt/format.h>

namespace ttmem::model {

std::string_view ModelError::kind_name() const {
  switch (kind_) {
    case ErrorKind::OutOfMemory:
      return "out_of_memory";
    case ErrorKind::CbBeyondL1:
      return "cb_beyond_l1";
    case ErrorKind::CbClash:
      return "cb_clash";
    case ErrorKind::TraceTooSmall:
      return "trace_too_small";
    case ErrorKind::InvalidRequest:
      return "invalid_request";
  }
  return "?";
}

void throw_out_of_memory(const OutOfMemoryFacts& f) {
  throw ModelError(
      ErrorKind::OutOfMemory,
      fmt::format("Out of Memory: Not enough space to allocate {} B {} buffer across {} banks, "
                  "where each bank needs to store {} B, but bank size is {} B (allocated: {} B, "
                  "free: {} B, largest free block: {} B)",
                  f.size, f.buffer_type, f.num_banks, f.size_per_bank, f.bank_size, f.allocated,
                  f.free, f.largest_free_block));
}

void throw_cb_beyond_l1(std::string_view core_range, uint64_t region_end, uint64_t l1_size) {
  throw ModelError(ErrorKind::CbBeyondL1,
                   fmt::format("Statically allocated circular buffers on core range {} grow to {} "
                               "B which is beyond max L1 size of {} B",
                               core_range, region_end, l1_size));
}

void throw_cb_clash(uint64_t program_id, std::string_view core_range, uint64_t lowest_l1_address,
                    uint64_t region_end) {
  throw ModelError(ErrorKind::CbClash,
                   fmt::format("Statically allocated circular buffers in program {} clash with L1 "
                               "buffers on core range {}. L1 buffer allocated at {} and static "
                               "circular buffer region ends at {}",
                               program_id, core_range, lowest_l1_address, region_end));
}

void throw_trace_too_small(uint64_t trace_buffers_size, uint32_t mesh_id,
                           uint64_t trace_region_size) {
  throw ModelError(ErrorKind::TraceTooSmall,
                   fmt::format("Creating trace buffers of size {}B on MeshDevice {}, but only {}B "
                               "is allocated for trace region.",
                               trace_buffers_size, mesh_id, trace_region_size));
}

void throw_invalid(const std::string& message) {
  throw ModelError(ErrorKind::InvalidRequest, message);
}

}  // namespace ttmem::model
