// C++ conveniences over the ttmem C API (include/ttmem/ttmem.h). Header-only; nothing here
// throws, and every call keeps the C API's contract: it never fails or slows the caller.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "ttmem/ttmem.h"

namespace ttmem {

// The memory kinds (ttmem_kind). ttmem's own C++ code uses this one enum too: the segment's
// records, the collector and the tt-metal model (as tt-metal's BufferType).
enum class Kind : uint32_t {
  Dram = TTMEM_KIND_DRAM,
  L1 = TTMEM_KIND_L1,
  SystemMemory = TTMEM_KIND_SYSTEM_MEMORY,
  L1Small = TTMEM_KIND_L1_SMALL,
  Trace = TTMEM_KIND_TRACE,
  Cb = TTMEM_KIND_CB,
};

// A zero-initialised descriptor with struct_size set.
inline ttmem_device_desc make_device_desc() {
  ttmem_device_desc d{};
  d.struct_size = sizeof d;
  return d;
}

inline ttmem_buffer_desc make_buffer_desc(uint32_t device, uint64_t buffer_id, Kind kind,
                                          uint64_t address, uint64_t size) {
  ttmem_buffer_desc b{};
  b.struct_size = sizeof b;
  b.device = device;
  b.buffer_id = buffer_id;
  b.kind = static_cast<uint32_t>(kind);
  b.address = address;
  b.size = size;
  return b;
}

inline int register_device(const ttmem_device_desc& d) { return ttmem_register_device(&d); }
inline int buffer_alloc(const ttmem_buffer_desc& b) { return ttmem_buffer_alloc(&b); }
inline int buffer_free(uint32_t device, uint64_t buffer_id) {
  return ttmem_buffer_free(device, buffer_id);
}
inline int cb_alloc(uint32_t device, std::initializer_list<ttmem_core_range> ranges,
                    uint64_t address, uint64_t size_per_core, uint64_t program_id) {
  return ttmem_cb_alloc(device, ranges.begin(), ranges.size(), address, size_per_core,
                        program_id);
}
inline int cb_free_program(uint32_t device, uint64_t program_id) {
  return ttmem_cb_free_program(device, program_id);
}
inline int cb_free_all(uint32_t device) { return ttmem_cb_free_all(device); }
inline bool enabled() { return ttmem_enabled() != 0; }

// Names what the current thread allocates for the lifetime of the scope (innermost wins).
// The name is copied; a string_view need not be NUL-terminated.
class OpScope {
 public:
  explicit OpScope(std::string_view name) {
    char buf[128];
    size_t n = name.size() < sizeof buf - 1 ? name.size() : sizeof buf - 1;
    for (size_t i = 0; i < n; ++i) buf[i] = name[i];
    buf[n] = '\0';
    pushed_ = ttmem_op_push(buf) == TTMEM_OK;
  }
  ~OpScope() {
    if (pushed_) ttmem_op_pop();
  }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  bool pushed_ = false;
};

}  // namespace ttmem
