// The tt-metal → ttmem mapping, independent of tt-metal itself.
//
// tt-metal reports allocations through IGraphProcessor hooks (graph_tracking.hpp) or, in newer
// versions, a process-wide BufferAllocationObserver. Both hand over tt-metal objects (Buffer,
// IDevice, CoreRangeSet, Program); this header turns them into ttmem client calls. It never names
// a tt-metal type: buffers, core ranges and programs are used through their accessors (duck
// typing), and devices through a Traits class, so the same code runs against tt-metal in the
// adapter library and against test types that mirror tt-metal's accessors in the unit tests.
//
// Rules (tt-metal facts, see the README of this directory):
//   - Buffer::unique_id() is the buffer id (a process-wide counter; addresses are reused at once).
//   - A MeshBuffer is reported once, on the MeshDevice, with a lock-step address and a per-chip
//     size(): it is fanned out to every member chip under the same id.
//   - A hooked allocation (graph capture in NO_DISPATCH mode) has address 0 and occupies
//     nothing; zero-size buffers are never allocated. Both are ignored, on free as well.
//   - A globally allocated CB reuses an L1 buffer's address: it is not counted again. Hook
//     vintages without the is_globally_allocated flag are judged by address: a CB starting where
//     a live L1 or L1_SMALL buffer of the same chip starts is globally allocated.
//   - track_deallocate_cb(device) frees every CB of the device (of every member chip of a mesh).
//   - track_function_start/end name what the thread allocates in between: the op becomes the tag.
//   - Devices are registered with their real descriptors (Traits::facts) on first sight.
//
// Traits requirements (Traits is stateless or cheap to copy):
//   using Device = ...;                                         // tt-metal: IDevice
//   static uint32_t logical_id(const Device&);                  // IDevice::id()
//   static std::vector<const Device*> members(const Device&);   // a mesh's chips; {} for a chip
//   static DeviceFacts facts(const Device&);                    // the chip's real descriptor
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "ttmem/ttmem.h"

namespace ttmem::tt_metal {

// What the adapter knows of a chip, in plain numbers. Filled from IDevice by the adapter
// library, from test types in the unit tests.
struct DeviceFacts {
  struct Kind {
    uint64_t capacity = 0;  // 0: banks x bank_size
    uint64_t bank_size = 0;
    uint64_t bank_base = 0;
    uint32_t banks = 0;
    uint32_t alignment = 0;
  };
  uint32_t logical_id = 0;
  uint64_t chip_id = 0;  // stable unique chip id; 0: unknown (the logical id is used)
  uint32_t arch = TTMEM_ARCH_UNKNOWN;
  uint16_t grid_x = 0, grid_y = 0;
  uint64_t l1_per_core = 0;
  uint64_t unreserved_base = 0;
  uint64_t trace_region_size = 0;
  uint64_t l1_small_size = 0;
  std::array<Kind, TTMEM_KIND_COUNT> kinds{};
  std::string board;
};

// The ttmem descriptor for a chip. `board` must outlive the call that uses the descriptor.
inline ttmem_device_desc to_device_desc(const DeviceFacts& f) {
  ttmem_device_desc d{};
  d.struct_size = sizeof d;
  d.logical_id = f.logical_id;
  d.chip_id = f.chip_id != 0 ? f.chip_id : f.logical_id;
  d.arch = f.arch;
  d.grid_x = f.grid_x;
  d.grid_y = f.grid_y;
  d.l1_per_core = f.l1_per_core;
  d.unreserved_base = f.unreserved_base;
  d.trace_region_size = f.trace_region_size;
  d.l1_small_size = f.l1_small_size;
  for (size_t k = 0; k < f.kinds.size(); ++k) {
    const DeviceFacts::Kind& src = f.kinds[k];
    ttmem_kind_geometry& g = d.kinds[k];
    g.capacity = src.capacity != 0 ? src.capacity : src.bank_size * src.banks;
    g.bank_size = src.bank_size;
    g.bank_base = src.bank_base;
    g.num_banks = src.banks;
    g.alignment = src.alignment;
  }
  d.board = f.board.empty() ? nullptr : f.board.c_str();
  return d;
}

// Where mapped reports go: the ttmem client library.
struct ClientSink {
  int register_device(const ttmem_device_desc& d) { return ttmem_register_device(&d); }
  int buffer_alloc(const ttmem_buffer_desc& b) { return ttmem_buffer_alloc(&b); }
  int buffer_free(uint32_t device, uint64_t id) { return ttmem_buffer_free(device, id); }
  int cb_alloc(uint32_t device, const ttmem_core_range* r, size_t n, uint64_t addr, uint64_t size,
               uint64_t program) {
    return ttmem_cb_alloc(device, r, n, addr, size, program);
  }
  int cb_free_all(uint32_t device) { return ttmem_cb_free_all(device); }
  int op_push(const char* name) { return ttmem_op_push(name); }
  int op_pop() { return ttmem_op_pop(); }
};

// Whether a CB was globally allocated, as far as the hook vintage says.
enum class CbPlacement { kLocal, kGlobal, kUnknown };

// Events the mapper deliberately did not report, and reports the client refused.
struct MapperStats {
  std::atomic<uint64_t> hooked{0};        // address 0: graph capture without allocation
  std::atomic<uint64_t> zero_size{0};
  std::atomic<uint64_t> global_cbs{0};    // CBs over an existing L1 buffer
  std::atomic<uint64_t> unattributed_cbs{0};  // no device known for a CB (oldest vintage)
  std::atomic<uint64_t> rejected{0};      // the client returned an error
};

namespace detail {

template <class T>
uint64_t as_u64(const T& v) {
  if constexpr (requires { v.has_value(); *v; }) {  // std::optional<N> (e.g. num_cores())
    return v.has_value() ? uint64_t(*v) : 0;
  } else {
    return static_cast<uint64_t>(v);
  }
}

template <class P>
uint64_t program_id(const P* p) {
  if (p == nullptr) return 0;
  if constexpr (requires { p->get_id(); }) {
    return as_u64(p->get_id());
  } else if constexpr (requires { p->id(); }) {
    return as_u64(p->id());
  } else {
    return reinterpret_cast<uintptr_t>(p);
  }
}

// CoreRange (start_coord/end_coord, or start/end in older versions) → ttmem_core_range.
template <class R>
ttmem_core_range to_core_range(const R& r) {
  auto clamp16 = [](auto v) { return uint16_t(std::min<uint64_t>(uint64_t(v), UINT16_MAX)); };
  if constexpr (requires { r.start_coord.x; r.end_coord.y; }) {
    return {clamp16(r.start_coord.x), clamp16(r.start_coord.y), clamp16(r.end_coord.x),
            clamp16(r.end_coord.y)};
  } else {
    return {clamp16(r.start.x), clamp16(r.start.y), clamp16(r.end.x), clamp16(r.end.y)};
  }
}

// A CoreRangeSet (has ranges()) or a single CoreRange.
template <class Ranges>
std::vector<ttmem_core_range> to_core_ranges(const Ranges& rs) {
  std::vector<ttmem_core_range> out;
  if constexpr (requires { rs.ranges(); }) {
    for (const auto& r : rs.ranges()) out.push_back(to_core_range(r));
  } else {
    out.push_back(to_core_range(rs));
  }
  return out;
}

}  // namespace detail

template <class Traits, class Sink = ClientSink>
class Mapper {
 public:
  using Device = typename Traits::Device;

  explicit Mapper(Sink sink = {}) : sink_(std::move(sink)) {}
  Mapper(const Mapper&) = delete;
  Mapper& operator=(const Mapper&) = delete;

  Sink& sink() { return sink_; }
  const MapperStats& stats() const { return stats_; }

  // track_allocate / BufferAllocationObserver: called after the address was assigned.
  template <class Buffer>
  void buffer_allocated(const Buffer* b) {
    if (!reportable(b)) return;
    ttmem_buffer_desc d{};
    d.struct_size = sizeof d;
    d.buffer_id = detail::as_u64(b->unique_id());
    d.kind = uint32_t(detail::as_u64(b->buffer_type()));
    d.layout = uint32_t(detail::as_u64(b->buffer_layout()));
    d.address = detail::as_u64(b->address());
    d.size = detail::as_u64(b->size());
    d.page_size = detail::as_u64(b->page_size());
    if constexpr (requires { b->aligned_size_per_bank(); }) {
      d.size_per_bank = detail::as_u64(b->aligned_size_per_bank());
    }
    if constexpr (requires { b->num_cores(); }) {
      d.num_cores = uint32_t(detail::as_u64(b->num_cores()));
    }
    bool sharded = false;
    if constexpr (requires { b->has_shard_spec(); }) sharded = b->has_shard_spec();
    // Sharded buffers spread over the shard grid's cores; interleaved ones over every bank of
    // the kind (0 lets the client use the registered bank count).
    d.num_banks = sharded ? d.num_cores : 0;
    for_each_chip(b->device(), [&](uint32_t chip) {
      d.device = chip;
      check(sink_.buffer_alloc(d));
      if (is_l1(d.kind)) note_l1(chip, d.address, +1);
    });
  }

  // track_deallocate / BufferAllocationObserver: called before the allocator frees it.
  template <class Buffer>
  void buffer_deallocated(const Buffer* b) {
    if (!reportable(b)) return;
    const uint64_t id = detail::as_u64(b->unique_id());
    const uint32_t kind = uint32_t(detail::as_u64(b->buffer_type()));
    const uint64_t address = detail::as_u64(b->address());
    for_each_chip(b->device(), [&](uint32_t chip) {
      check(sink_.buffer_free(chip, id));
      if (is_l1(kind)) note_l1(chip, address, -1);
    });
  }

  // track_allocate_cb, every vintage: `ranges` is a CoreRange or a CoreRangeSet; `device` is
  // null for vintages that do not pass it (the thread's last program's device is used then).
  template <class Ranges>
  void cb_allocated(const Ranges& ranges, uint64_t addr, uint64_t size, CbPlacement placement,
                    const Device* device) {
    if (size == 0) {
      stats_.zero_size.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (placement == CbPlacement::kGlobal) {
      stats_.global_cbs.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // The chips: the hook's device, else the thread's last program's, else the only chip seen.
    std::vector<uint32_t> chips;
    if (device != nullptr) {
      chips = chips_of(device);
    } else {
      chips = thread_context().chips;
      if (chips.empty()) {
        if (std::optional<uint32_t> only = only_chip()) chips.push_back(*only);
      }
    }
    if (chips.empty()) {
      stats_.unattributed_cbs.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const std::vector<ttmem_core_range> cores = detail::to_core_ranges(ranges);
    uint64_t program = thread_context().program;
    if (program == 0) program = next_cb_id_.fetch_add(1, std::memory_order_relaxed);
    for (uint32_t chip : chips) {
      if (placement == CbPlacement::kUnknown && is_l1_buffer_start(chip, addr)) {
        stats_.global_cbs.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      check(sink_.cb_alloc(chip, cores.data(), cores.size(), addr, size, program));
    }
  }

  // track_deallocate_cb(device): every CB of the device is gone.
  void cb_deallocated(const Device* device) {
    const std::vector<uint32_t> chips =
        device != nullptr ? chips_of(device) : thread_context().chips;
    for (uint32_t chip : chips) check(sink_.cb_free_all(chip));
  }

  // track_program(program[, device]): the CBs that follow belong to this program and device.
  template <class Program>
  void program(const Program* p, const Device* device) {
    ThreadContext& t = thread_context();
    t.program = detail::program_id(p);
    if (device != nullptr) t.chips = chips_of(device);
  }

  // track_function_start(name, args) / track_function_end(...): the op names what the thread
  // allocates in between. The name is copied (a string_view need not be NUL-terminated).
  void function_start(std::string_view name) {
    char buf[128];
    const size_t n = std::min(name.size(), sizeof buf - 1);
    std::memcpy(buf, name.data(), n);
    buf[n] = '\0';
    check(sink_.op_push(buf));
  }
  void function_end() { check(sink_.op_pop()); }

  // Registers a chip (and, for a mesh, its members) now rather than at its first allocation.
  void add_device(const Device* device) {
    for_each_chip(device, [](uint32_t) {});
  }

 private:
  // What track_program told this thread. Chips are kept as logical ids, not device pointers: a
  // device may be closed (and its IDevice freed) before the thread's next hook.
  struct ThreadContext {
    uint64_t owner = 0;  // the Mapper instance it belongs to
    std::vector<uint32_t> chips;
    uint64_t program = 0;
  };

  ThreadContext& thread_context() {
    static thread_local ThreadContext t;
    if (t.owner != instance_) t = ThreadContext{instance_, {}, 0};
    return t;
  }

  static uint64_t next_instance() {
    static std::atomic<uint64_t> n{0};
    return n.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  std::vector<uint32_t> chips_of(const Device* device) {
    std::vector<uint32_t> chips;
    for_each_chip(device, [&](uint32_t chip) { chips.push_back(chip); });
    return chips;
  }

  static bool is_l1(uint32_t kind) { return kind == TTMEM_KIND_L1 || kind == TTMEM_KIND_L1_SMALL; }

  template <class Buffer>
  bool reportable(const Buffer* b) {
    if (b == nullptr || b->device() == nullptr) return false;
    if (detail::as_u64(b->size()) == 0) {
      stats_.zero_size.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (detail::as_u64(b->address()) == 0) {
      stats_.hooked.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  void check(int rc) {
    if (rc < 0) stats_.rejected.fetch_add(1, std::memory_order_relaxed);
  }

  // Calls fn(logical id) for the chip, or for every member chip of a mesh, registering each
  // chip the first time it is seen.
  template <class Fn>
  void for_each_chip(const Device* device, Fn&& fn) {
    const std::vector<const Device*> members = Traits::members(*device);
    if (members.empty()) {
      fn(ensure_registered(*device));
      return;
    }
    for (const Device* m : members) {
      if (m != nullptr) fn(ensure_registered(*m));
    }
  }

  uint32_t ensure_registered(const Device& d) {
    const uint32_t id = Traits::logical_id(d);
    if (id < 64 && (registered_.load(std::memory_order_acquire) >> id & 1) != 0) return id;
    std::lock_guard lock(mutex_);
    if (id < 64 && (registered_.load(std::memory_order_relaxed) >> id & 1) != 0) return id;
    DeviceFacts facts = Traits::facts(d);
    facts.logical_id = id;
    ttmem_device_desc desc = to_device_desc(facts);
    const int rc = sink_.register_device(desc);
    check(rc);
    if (id < 64) registered_.fetch_or(uint64_t{1} << id, std::memory_order_release);
    return id;
  }

  // The only chip registered so far, for CBs of vintages that name no device.
  std::optional<uint32_t> only_chip() {
    const uint64_t r = registered_.load(std::memory_order_acquire);
    if (r == 0 || (r & (r - 1)) != 0) return std::nullopt;
    return uint32_t(__builtin_ctzll(r));
  }

  // Start addresses of live L1 / L1_SMALL buffers per chip, to recognise globally allocated CBs
  // in hook vintages that do not say so.
  void note_l1(uint32_t chip, uint64_t address, int delta) {
    std::lock_guard lock(mutex_);
    const uint64_t key = uint64_t(chip) << 56 ^ address;
    auto it = l1_starts_.find(key);
    if (delta > 0) {
      ++l1_starts_[key];
    } else if (it != l1_starts_.end() && --it->second == 0) {
      l1_starts_.erase(it);
    }
  }
  bool is_l1_buffer_start(uint32_t chip, uint64_t address) {
    std::lock_guard lock(mutex_);
    return l1_starts_.count(uint64_t(chip) << 56 ^ address) != 0;
  }

  const uint64_t instance_ = next_instance();
  Sink sink_;
  MapperStats stats_;
  std::mutex mutex_;
  std::atomic<uint64_t> registered_{0};
  std::unordered_map<uint64_t, uint32_t> l1_starts_;
  std::atomic<uint64_t> next_cb_id_{1};
};

}  // namespace ttmem::tt_metal
