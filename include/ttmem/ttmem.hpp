// C++ conveniences over the ttmem C API (include/ttmem/ttmem.h). Header-only; no call here
// throws (only filling DeviceInfo::board allocates), and every call keeps the C API's contract:
// it never fails or slows the caller.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
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

// A chip's descriptor with the board name owned: what a reporter (the simulator, the tt-metal
// adapter) fills, field by field, from what it knows of the chip. desc() is the one conversion to
// the C descriptor: a kind's capacity given as 0 is its banks x bank size, a chip id given as 0
// is the logical id.
struct DeviceInfo {
  uint32_t logical_id = 0;
  uint64_t chip_id = 0;
  uint32_t arch = TTMEM_ARCH_UNKNOWN;
  uint16_t grid_x = 0, grid_y = 0;
  uint64_t l1_per_core = 0;
  uint64_t unreserved_base = 0;
  uint64_t trace_region_size = 0;
  uint64_t l1_small_size = 0;
  ttmem_kind_geometry kinds[TTMEM_KIND_COUNT] = {};
  std::string board;  // may be empty

  // Points at `board`: valid while this DeviceInfo lives and is not changed.
  ttmem_device_desc desc() const {
    ttmem_device_desc d = make_device_desc();
    d.logical_id = logical_id;
    d.chip_id = chip_id != 0 ? chip_id : logical_id;
    d.arch = arch;
    d.grid_x = grid_x;
    d.grid_y = grid_y;
    d.l1_per_core = l1_per_core;
    d.unreserved_base = unreserved_base;
    d.trace_region_size = trace_region_size;
    d.l1_small_size = l1_small_size;
    for (int k = 0; k < TTMEM_KIND_COUNT; ++k) {
      d.kinds[k] = kinds[k];
      if (d.kinds[k].capacity == 0) {
        d.kinds[k].capacity = kinds[k].bank_size * kinds[k].num_banks;
      }
    }
    d.board = board.empty() ? nullptr : board.c_str();
    return d;
  }
};

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
inline int register_device(const DeviceInfo& info) {
  return register_device(info.desc());
}
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
