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

std::string core_range_text(const CoreRange& r, MessageVintage vintage) {
  if (vintage == MessageVintage::Current) {
    return fmt::format("[{}-{} - {}-{}]", r.start.x, r.start.y, r.end.x, r.end.y);
  }
  return fmt::format("[(x={},y={}) - (x={},y={})]", r.start.x, r.start.y, r.end.x, r.end.y);
}

std::string out_of_memory_text(const OutOfMemoryFacts& f) {
  // Each form extends the one before it; the sub-device form words the request differently.
  const std::string request = fmt::format(
      "Out of Memory: Not enough space to allocate {} B {} buffer across {} banks, where each bank "
      "needs to store {} B",
      f.size, f.buffer_type, f.num_banks, f.size_per_bank);
  if (f.vintage == MessageVintage::V2024) return request;
  if (f.vintage == MessageVintage::V2025) {
    return fmt::format("{}, but bank size is only {} B", request, f.bank_size);
  }
  const std::string bank =
      fmt::format("bank size is {} B (allocated: {} B, free: {} B, largest free block: {} B)",
                  f.bank_size, f.allocated, f.free, f.largest_free_block);
  if (f.sub_devices) {
    return fmt::format(
        "Out of Memory: Not enough space after considering dependencies to allocate {} B {} "
        "across {} banks ({} B per bank), {}",
        f.size, f.buffer_type, f.num_banks, f.size_per_bank, bank);
  }
  return fmt::format("{}, but {}", request, bank);
}

void throw_out_of_memory(const OutOfMemoryFacts& f) {
  throw ModelError(ErrorKind::OutOfMemory, out_of_memory_text(f));
}

void throw_cb_beyond_l1(const std::string& core_range, uint64_t region_end, uint64_t l1_size) {
  throw ModelError(ErrorKind::CbBeyondL1,
                   fmt::format("Statically allocated circular buffers on core range {} grow to {} "
                               "B which is beyond max L1 size of {} B",
                               core_range, region_end, l1_size));
}

void throw_cb_clash(uint64_t program_id, const std::string& core_range, uint64_t lowest_l1_address,
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
