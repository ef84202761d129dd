// The tt-metal → ttmem mapping, independent of tt-metal itself.
//
// tt-metal reports allocations through IGraphProcessor hooks (tt-metalium/graph_tracking.hpp).
// They hand over tt-metal objects (Buffer, IDevice, CoreRangeSet, Program); this header turns
// them into ttmem client calls. It never names a tt-metal type: buffers and core ranges are used
// through their accessors, devices and programs through a Traits class, so the same code runs
// against tt-metal in the adapter library and against the test types of tests/fake_tt_metal.h.
//
// Buffers (tt-metal facts; README of this directory):
//   - Buffer::unique_id() is the buffer id (a process-wide counter; addresses are reused at once).
//   - A MeshBuffer is reported once, on the MeshDevice, with a lock-step address and a per-chip
//     size(): it is fanned out to every member chip under the same id.
//   - A hooked allocation (graph capture in NO_DISPATCH mode) has address 0 and occupies
//     nothing; zero-size buffers are never allocated. Both are ignored, on free as well.
//   - Sharded (height, width, block or ND) buffers spread over their cores: num_cores() of them.
//
// Circular buffers (CBs). A chip holds the CB set of every live program at once: tt-metal
// allocates a program's CBs on its first launch on a chip (track_allocate_cb, one call per CB and
// chip), keeps them for the program's life (ttnn's program cache keeps programs alive; cache hits
// report nothing), and frees them from ~ProgramImpl (track_deallocate_cb, once per program and
// chip, naming no program). Each program's set is one ttmem program set, freed on its own:
//   - With ttnn (track_program before every launch): exact. A program is known by its
//     implementation object; on its first launch its set is built from Program::circular_buffers()
//     (O(its CBs)), a cache hit is one hash lookup (O(1)), and the CB events that follow
//     track_program on the same thread replace the built set with tt-metal's own addresses (also
//     when tt-metal re-allocates a program's CBs after a change, which it reports again with no
//     deallocate in between). track_deallocate_cb frees the programs whose implementation object
//     has been destroyed (Traits::program_life); where the Traits cannot tell (no lifetime), the
//     oldest program on the chip is freed.
//   - Plain tt-metal (no track_program): CB events carry no program. Consecutive CBs of one
//     thread form one anonymous set per chip; a CB that starts at or below an earlier CB of the
//     set on shared cores begins a new set (a program's CBs stack upwards). Where tt-metal sends
//     track_deallocate_cb (2026 on), each frees the chip's oldest anonymous set, and a set whose
//     first CB repeats an existing set's first CB replaces it (a re-allocation). Where it never
//     does (2025), a new set replaces the chip's previous anonymous sets. Either way the sets on a
//     chip never outnumber its live programs, and none is counted twice.
//   - Globally allocated CBs sit in an L1 buffer already counted: not counted again. Dataflow
//     buffers that borrow a tensor's memory likewise. Dataflow buffers and scratchpads that do not
//     borrow are program-scope L1 with the CBs' lifetime: they join the program's set. tt-metal
//     reports them with address 0 only for hooked (never run) programs: ignored, as hooked
//     buffers are.
//
// Op names: track_function_start/end name what the thread allocates in between (the tag).
// Devices are registered with their real descriptors (Traits::facts) on first sight, under their
// tt-metal id when it fits ttmem's 64 logical ids, else under the next free one.
//
// Traits requirements:
//   using Device = ...;                                          // tt-metal: IDevice
//   static uint32_t logical_id(const Device&);                   // IDevice::id()
//   static std::vector<const Device*> members(const Device&);    // a mesh's chips; {} for a chip
//   static DeviceFacts facts(const Device&);                     // the chip's real descriptor
//   static constexpr bool kDeallocatesCbs;                       // sends track_deallocate_cb
//   static uint64_t program_key(const Program&);                 // identity while alive
//   static uint64_t program_runtime_id(const Program&);          // Program::get_runtime_id()
//   static std::weak_ptr<const void> program_life(const Program&);  // expires when destroyed
//   static std::vector<ProgramCb> program_cbs(const Program&);   // Program::circular_buffers()
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ttmem/ttmem.hpp"

namespace ttmem::tt_metal {

// What the adapter knows of a chip, in plain numbers (ttmem.hpp's DeviceInfo: a kind's capacity
// 0 is banks x bank size, a chip id 0 the logical id). Filled from IDevice by the adapter
// library, from test types in the unit tests.
using DeviceFacts = ttmem::DeviceInfo;

// Where mapped reports go: the ttmem client library.
struct ClientSink {
  int register_device(const ttmem_device_desc& d) { return ttmem_register_device(&d); }
  int buffer_alloc(const ttmem_buffer_desc& b) { return ttmem_buffer_alloc(&b); }
  int buffer_free(uint32_t device, uint64_t id) { return ttmem_buffer_free(device, id); }
  int cb_alloc(uint32_t device, const ttmem_core_range* r, size_t n, uint64_t addr, uint64_t size,
               uint64_t program) {
    return ttmem_cb_alloc(device, r, n, addr, size, program);
  }
  int cb_free_program(uint32_t device, uint64_t program) {
    return ttmem_cb_free_program(device, program);
  }
  int op_push(const char* name) { return ttmem_op_push(name); }
  int op_pop() { return ttmem_op_pop(); }
};

// Whether a CB was globally allocated, as far as the hook vintage says.
enum class CbPlacement { kLocal, kGlobal, kUnknown };

// One CB of a program as Program::circular_buffers() describes it.
struct ProgramCb {
  std::vector<ttmem_core_range> cores;
  uint64_t size = 0;
  bool global = false;
  std::optional<uint64_t> address;  // CircularBuffer::address() where tt-metal has it (2025)
};

// Events the mapper deliberately did not report, and reports the client refused.
struct MapperStats {
  std::atomic<uint64_t> hooked{0};            // address 0: graph capture without allocation
  std::atomic<uint64_t> zero_size{0};
  std::atomic<uint64_t> global_cbs{0};        // CBs over an existing L1 buffer
  std::atomic<uint64_t> borrowed_views{0};    // dataflow buffers over a tensor's memory
  std::atomic<uint64_t> unattributed_cbs{0};  // CB events with no program or device to own them
  std::atomic<uint64_t> chips_refused{0};     // chips past ttmem's 64 logical ids
  std::atomic<uint64_t> rejected{0};          // the client returned an error
  std::atomic<uint64_t> programs_built{0};    // sets built from Program::circular_buffers()
  std::atomic<uint64_t> sets_replaced{0};     // sets replaced by tt-metal's own CB events
  std::atomic<uint64_t> programs_freed{0};    // sets freed because their program was destroyed
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

inline bool same_cores(const ttmem_core_range& a, const ttmem_core_range& b) {
  return a.x0 == b.x0 && a.y0 == b.y0 && a.x1 == b.x1 && a.y1 == b.y1;
}
inline bool intersect(const ttmem_core_range& a, const ttmem_core_range& b) {
  return a.x0 <= b.x1 && b.x0 <= a.x1 && a.y0 <= b.y1 && b.y0 <= a.y1;
}
inline bool any_intersect(const std::vector<ttmem_core_range>& a,
                          const std::vector<ttmem_core_range>& b) {
  for (const auto& x : a) {
    for (const auto& y : b) {
      if (intersect(x, y)) return true;
    }
  }
  return false;
}

// Buffer layouts that spread a buffer over its shard cores (TensorMemoryLayout 2..5).
inline bool is_sharded_layout(uint64_t layout) {
  return layout >= TTMEM_LAYOUT_HEIGHT_SHARDED && layout <= TTMEM_LAYOUT_ND_SHARDED;
}

}  // namespace detail

// Gives a program's local CBs the addresses tt-metal's ProgramImpl::allocate_circular_buffers
// gives them, where Program::circular_buffers() does not say (2026 on): one allocator per
// distinct core range starting at the L1 unreserved base; a CB starts at the highest region end
// of the allocators of its own ranges, rounded up to the DRAM alignment, and raises the region
// end of every allocator whose range it touches (an allocator of another, overlapping range only
// when that one ends below the new CB).
inline void place_program_cbs(std::vector<ProgramCb>& cbs, uint64_t base, uint64_t alignment) {
  struct Allocator {
    ttmem_core_range cores;
    uint64_t end;
  };
  std::vector<Allocator> allocators;
  for (const ProgramCb& cb : cbs) {
    for (const ttmem_core_range& r : cb.cores) {
      auto same = [&](const Allocator& a) { return detail::same_cores(a.cores, r); };
      if (std::none_of(allocators.begin(), allocators.end(), same)) allocators.push_back({r, base});
    }
  }
  const uint64_t align = std::max<uint64_t>(alignment, 1);
  for (ProgramCb& cb : cbs) {
    if (cb.global) continue;
    uint64_t addr = base;
    for (const Allocator& a : allocators) {
      for (const ttmem_core_range& r : cb.cores) {
        if (detail::same_cores(a.cores, r)) addr = std::max(addr, a.end);
      }
    }
    addr = (addr + align - 1) / align * align;
    for (Allocator& a : allocators) {
      bool own = false, touches = false;
      for (const ttmem_core_range& r : cb.cores) {
        own = own || detail::same_cores(a.cores, r);
        touches = touches || detail::intersect(a.cores, r);
      }
      if (own || (touches && a.end <= addr)) a.end = addr + cb.size;
    }
    if (!cb.address) cb.address = addr;
  }
}

// Program::circular_buffers() as ProgramCbs: core ranges, size and the globally-allocated flag
// of each CB, and its address where CircularBuffer::address() exists (up to 2025).
template <class Program>
std::vector<ProgramCb> program_cbs_of(const Program& p) {
  std::vector<ProgramCb> out;
  for (const auto& cb : p.circular_buffers()) {
    ProgramCb c;
    c.cores = detail::to_core_ranges(cb->core_ranges());
    c.size = detail::as_u64(cb->size());
    c.global = cb->globally_allocated();
    if constexpr (requires { cb->address(); }) {
      // 0 until tt-metal has placed the CBs (a program's first launch): computed meanwhile.
      const uint64_t address = detail::as_u64(cb->address());
      if (!c.global && address != 0) c.address = address;
    }
    out.push_back(std::move(c));
  }
  return out;
}

// A set of ttmem logical ids (there are TTMEM_MAX_DEVICES = 64 of them): one bit per chip.
using ChipMask = uint64_t;
static_assert(TTMEM_MAX_DEVICES <= 64);

template <class Fn>
void for_each_chip_in(ChipMask chips, Fn&& fn) {
  for (; chips != 0; chips &= chips - 1) fn(uint32_t(__builtin_ctzll(chips)));
}
inline ChipMask chip_bit(uint32_t chip) { return ChipMask{1} << chip; }

template <class Traits, class Sink = ClientSink>
class Mapper {
 public:
  using Device = typename Traits::Device;

  explicit Mapper(Sink sink = {}) : sink_(std::move(sink)) {}
  Mapper(const Mapper&) = delete;
  Mapper& operator=(const Mapper&) = delete;

  Sink& sink() { return sink_; }
  const MapperStats& stats() const { return stats_; }

  // track_allocate: called after the address was assigned.
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
    // Sharded buffers (ND-sharded ones have no shard spec, so the layout decides) spread over
    // their cores; interleaved ones over every bank of the kind (0: the registered count).
    d.num_banks = detail::is_sharded_layout(d.layout) ? d.num_cores : 0;
    for_each_chip(b->device(), [&](uint32_t chip) {
      d.device = chip;
      check(sink_.buffer_alloc(d));
      if (is_l1(d.kind)) note_l1(chip, d.address, +1);
    });
  }

  // track_deallocate: called before the allocator frees it.
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

  // track_program(program, device): ttnn, before every launch of a program.
  template <class Program>
  void program(const Program* p, const Device* device) {
    if (p == nullptr) return;
    ThreadContext& t = thread_context();
    t.program_key = Traits::program_key(*p);
    if (device != nullptr) t.chips = chips_of(t, device);
    t.replaced = 0;
    if (t.chips == 0) return;
    std::lock_guard lock(mutex_);
    ttnn_seen_ = true;
    if ((++launches_ & 1023) == 0) sweep_if_due_locked();
    auto it = programs_.find(t.program_key);
    if (it != programs_.end() && it->second.dead()) {
      free_program_locked(it, kNoChip);  // its object was destroyed; the key now names a new program
      it = programs_.end();
    }
    if (it == programs_.end()) {
      ProgramState state;
      state.id = unique_program_id(Traits::program_runtime_id(*p));
      state.life = Traits::program_life(*p);
      state.has_life = !state.life.expired();
      state.order = ++program_order_;
      it = programs_.emplace(t.program_key, std::move(state)).first;
      cbs_of_new_program_ = Traits::program_cbs(*p);
    } else if ((t.chips & ~it->second.chips) == 0) {
      return;  // a cache hit
    } else {
      cbs_of_new_program_ = Traits::program_cbs(*p);
    }
    build_sets_locked(it->second, t.chips);
    sweep_if_grown_locked();
  }

  // track_allocate_cb, every vintage: `ranges` is a CoreRange or a CoreRangeSet; `device` is
  // null for vintages that do not pass it (the thread's last program's chips are used then).
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
    program_l1_allocated(detail::to_core_ranges(ranges), addr, size, placement, device);
  }

  // track_allocate_dataflow_buffer: program-scope L1 with the CBs' lifetime, unless it borrows
  // a tensor's memory. Address 0: a hooked program that never runs.
  template <class Ranges>
  void dataflow_buffer_allocated(const Ranges& ranges, uint64_t addr, uint64_t size,
                                 bool borrows_memory, const Device* device) {
    if (borrows_memory) {
      stats_.borrowed_views.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    scratch_allocated(ranges, addr, size, device);
  }

  // track_allocate_scratchpad: a kernel's scratchpad, program-scope L1 like a CB.
  template <class Ranges>
  void scratch_allocated(const Ranges& ranges, uint64_t addr, uint64_t size, const Device* device) {
    if (addr == 0) {
      stats_.hooked.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (size == 0) {
      stats_.zero_size.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    program_l1_allocated(detail::to_core_ranges(ranges), addr, size, CbPlacement::kLocal, device);
  }

  // track_deallocate_cb(device): one program's set on the device is gone (~ProgramImpl), but
  // which program is not said.
  void cb_deallocated(const Device* device) {
    ThreadContext& t = thread_context();
    const ChipMask chips = device != nullptr ? chips_of(t, device) : t.chips;
    std::lock_guard lock(mutex_);
    for_each_chip_in(chips, [&](uint32_t chip) { deallocate_one_locked(chip); });
  }

  // track_function_start(name, args) / track_function_end(...): the op names what the thread
  // allocates in between. The name is copied (a string_view need not be NUL-terminated). An op
  // boundary also ends the thread's program context: the CB events of a launch follow its
  // track_program inside the same op.
  void function_start(std::string_view name) {
    thread_context().program_key = 0;
    char buf[128];
    const size_t n = std::min(name.size(), sizeof buf - 1);
    std::memcpy(buf, name.data(), n);
    buf[n] = '\0';
    check(sink_.op_push(buf));
  }
  void function_end() {
    thread_context().program_key = 0;
    check(sink_.op_pop());
  }

  // Registers a chip (and, for a mesh, its members) now rather than at its first allocation.
  void add_device(const Device* device) {
    for_each_chip(device, [](uint32_t) {});
  }

  // Frees the sets of programs tt-metal destroyed without saying so (2025 never does; later
  // versions not for programs without CBs). Runs by itself at most once a second while programs
  // launch, and whenever the number of programs doubles.
  void sweep_destroyed_programs() {
    std::lock_guard lock(mutex_);
    sweep_locked();
  }

  // Programs with a CB set, and the anonymous sets, per chip: for tests and diagnostics.
  size_t program_sets(uint32_t chip) {
    std::lock_guard lock(mutex_);
    size_t n = 0;
    for (const auto& [key, p] : programs_) n += p.holds(chip);
    auto it = anonymous_.find(chip);
    return n + (it != anonymous_.end() ? it->second.size() : 0);
  }

 private:
  // A program known from track_program.
  struct ProgramState {
    uint64_t id = 0;                 // the ttmem program id of its sets
    std::weak_ptr<const void> life;  // expires when tt-metal destroys the program
    bool has_life = false;
    uint64_t order = 0;              // first seen, for the oldest-first fallback
    bool has_cbs = false;            // tt-metal reports the destruction only of these
    ChipMask chips = 0;              // chips holding its set
    bool holds(uint32_t chip) const { return (chips & chip_bit(chip)) != 0; }
    bool dead() const { return has_life && life.expired(); }
  };
  // An anonymous set (plain tt-metal): its id and its CBs, to tell where the next set begins.
  struct AnonymousSet {
    uint64_t id = 0;
    std::vector<std::pair<std::vector<ttmem_core_range>, uint64_t>> cbs;  // cores, address
    uint64_t first_size = 0;
  };

  // What track_program told this thread. Chips are kept as logical ids, not device pointers: a
  // device may be closed (and its IDevice freed) before the thread's next hook.
  struct ThreadContext {
    uint64_t owner = 0;  // the Mapper instance it belongs to
    ChipMask chips = 0;
    uint64_t program_key = 0;         // 0: none
    ChipMask replaced = 0;            // chips whose set this launch's CB events replaced
    // The chips of the device last asked about: a launch names the same device again and again.
    const Device* last_device = nullptr;
    uint32_t last_device_id = 0;
    ChipMask last_device_chips = 0;
    std::unordered_map<uint32_t, uint64_t> anonymous;  // chip -> the set this thread builds
  };

  ThreadContext& thread_context() {
    static thread_local ThreadContext t;
    if (t.owner != instance_) t = ThreadContext{.owner = instance_};
    return t;
  }

  static uint64_t next_instance() {
    static std::atomic<uint64_t> n{0};
    return n.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  // CB-like program L1 on the chips of `device` (or of the thread's last program).
  void program_l1_allocated(const std::vector<ttmem_core_range>& cores, uint64_t addr,
                            uint64_t size, CbPlacement placement, const Device* device) {
    ThreadContext& t = thread_context();
    ChipMask chips = device != nullptr ? chips_of(t, device) : t.chips;
    std::lock_guard lock(mutex_);
    if (chips == 0) {
      if (std::optional<uint32_t> only = only_chip_locked()) chips = chip_bit(*only);
    }
    if (chips == 0) {
      stats_.unattributed_cbs.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    auto program = t.program_key != 0 ? programs_.find(t.program_key) : programs_.end();
    if (program != programs_.end()) {
      // tt-metal's own CB events for the program this thread launches: they replace the set
      // (the first event on each chip per launch starts it afresh).
      ProgramState& p = program->second;
      p.has_cbs = true;
      for_each_chip_in(chips, [&](uint32_t chip) {
        if ((t.replaced & chip_bit(chip)) == 0) {
          t.replaced |= chip_bit(chip);
          if (p.holds(chip)) {
            check(sink_.cb_free_program(chip, p.id));
            stats_.sets_replaced.fetch_add(1, std::memory_order_relaxed);
          }
          p.chips |= chip_bit(chip);
        }
        if (placement == CbPlacement::kUnknown && is_l1_buffer_start_locked(chip, addr)) return;
        check(sink_.cb_alloc(chip, cores.data(), cores.size(), addr, size, p.id));
      });
      return;
    }
    if (ttnn_seen_) {
      // ttnn builds every set at track_program; a CB event of another thread (a workload
      // compiled on a pool thread) is already counted there.
      stats_.unattributed_cbs.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    for_each_chip_in(chips, [&](uint32_t chip) {
      if (placement == CbPlacement::kUnknown && is_l1_buffer_start_locked(chip, addr)) {
        stats_.global_cbs.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      const uint64_t id = anonymous_set_locked(t, chip, cores, addr, size);
      check(sink_.cb_alloc(chip, cores.data(), cores.size(), addr, size, id));
    });
  }

  // The anonymous set on `chip` that a CB at `addr` joins (plain tt-metal), starting one when
  // the thread has none or the CB starts at or below an earlier CB of the set on shared cores.
  uint64_t anonymous_set_locked(ThreadContext& t, uint32_t chip,
                                const std::vector<ttmem_core_range>& cores, uint64_t addr,
                                uint64_t size) {
    std::deque<AnonymousSet>& sets = anonymous_[chip];
    auto current = t.anonymous.find(chip);
    AnonymousSet* set = nullptr;
    if (current != t.anonymous.end()) {
      for (AnonymousSet& s : sets) {
        if (s.id == current->second) set = &s;
      }
    }
    bool fresh = set == nullptr;
    if (!fresh) {
      for (const auto& [c, a] : set->cbs) {
        if (a >= addr && detail::any_intersect(c, cores)) fresh = true;
      }
    }
    if (fresh) {
      if (!Traits::kDeallocatesCbs) {
        // tt-metal never frees CB sets here: the newest program's set stands for the chip.
        while (!sets.empty()) free_anonymous_locked(chip, sets, sets.begin());
      } else {
        // A re-allocation reports a program's whole set again: its first CB repeats.
        auto repeat = std::find_if(sets.begin(), sets.end(), [&](const AnonymousSet& s) {
          return !s.cbs.empty() && s.cbs.front().second == addr && s.first_size == size &&
                 s.cbs.front().first.size() == cores.size() &&
                 std::equal(cores.begin(), cores.end(), s.cbs.front().first.begin(),
                            detail::same_cores);
        });
        if (repeat != sets.end()) free_anonymous_locked(chip, sets, repeat);
      }
      AnonymousSet s;
      s.id = unique_program_id(0);
      s.first_size = size;
      sets.push_back(std::move(s));
      set = &sets.back();
      t.anonymous[chip] = set->id;
    }
    set->cbs.emplace_back(cores, addr);
    return set->id;
  }

  void free_anonymous_locked(uint32_t chip, std::deque<AnonymousSet>& sets,
                             typename std::deque<AnonymousSet>::iterator it) {
    check(sink_.cb_free_program(chip, it->id));
    ids_in_use_.erase(it->id);
    sets.erase(it);
  }

  // One track_deallocate_cb on `chip`: the destroyed program's set goes.
  void deallocate_one_locked(uint32_t chip) {
    auto owed = pending_deallocations_.find(chip);
    if (owed != pending_deallocations_.end() && owed->second > 0) {
      --owed->second;  // a program already freed everywhere when one of its chips reported
      return;
    }
    // Programs known to be destroyed: exact.
    bool freed = false;
    for (auto it = programs_.begin(); it != programs_.end();) {
      if (it->second.dead() && it->second.holds(chip)) {
        it = free_program_locked(it, chip);
        freed = true;
      } else {
        ++it;
      }
    }
    if (freed) return;
    // No lifetime to go by: the oldest program on the chip, then the oldest anonymous set.
    auto oldest = programs_.end();
    for (auto it = programs_.begin(); it != programs_.end(); ++it) {
      if (!it->second.has_life && it->second.holds(chip) &&
          (oldest == programs_.end() || it->second.order < oldest->second.order)) {
        oldest = it;
      }
    }
    if (oldest != programs_.end()) {
      free_on_chip_locked(oldest, chip);
      return;
    }
    auto anon = anonymous_.find(chip);
    if (anon != anonymous_.end() && !anon->second.empty()) {
      free_anonymous_locked(chip, anon->second, anon->second.begin());
    }
  }

  // Frees a destroyed program's sets on every chip. tt-metal reports the destruction once per
  // chip: the reports of chips other than `reporting` (kNoChip: none) are owed and skipped.
  typename std::unordered_map<uint64_t, ProgramState>::iterator free_program_locked(
      typename std::unordered_map<uint64_t, ProgramState>::iterator it, uint32_t reporting) {
    for_each_chip_in(it->second.chips, [&](uint32_t chip) {
      check(sink_.cb_free_program(chip, it->second.id));
      if (chip != reporting && Traits::kDeallocatesCbs && it->second.has_cbs) {
        ++pending_deallocations_[chip];
      }
    });
    stats_.programs_freed.fetch_add(1, std::memory_order_relaxed);
    ids_in_use_.erase(it->second.id);
    return programs_.erase(it);
  }

  void free_on_chip_locked(typename std::unordered_map<uint64_t, ProgramState>::iterator it,
                           uint32_t chip) {
    ProgramState& p = it->second;
    check(sink_.cb_free_program(chip, p.id));
    p.chips &= ~chip_bit(chip);
    if (p.chips == 0) {
      ids_in_use_.erase(p.id);
      programs_.erase(it);
    }
  }

  // Reports the set of a program newly seen on `chips` from cbs_of_new_program_.
  void build_sets_locked(ProgramState& p, ChipMask chips) {
    p.has_cbs = p.has_cbs || !cbs_of_new_program_.empty();
    for_each_chip_in(chips & ~p.chips, [&](uint32_t chip) {
      p.chips |= chip_bit(chip);
      const ChipPlacement& where = placement_of_locked(chip);
      std::vector<ProgramCb> cbs = cbs_of_new_program_;
      place_program_cbs(cbs, where.base, where.alignment);
      for (const ProgramCb& cb : cbs) {
        if (cb.global || cb.size == 0 || cb.cores.empty()) continue;
        check(sink_.cb_alloc(chip, cb.cores.data(), cb.cores.size(), *cb.address, cb.size, p.id));
      }
    });
    stats_.programs_built.fetch_add(1, std::memory_order_relaxed);
  }

  // Destroyed programs that tt-metal does not report (all of them in 2025, those without CBs
  // later) are found by a sweep whenever the program count has doubled since the last one: O(1)
  // amortized per new program. The reports still owed for swept programs are skipped.
  void sweep_if_grown_locked() {
    if (programs_.size() >= 2 * programs_at_last_sweep_ + 16) sweep_locked();
  }
  void sweep_if_due_locked() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_sweep_ >= std::chrono::seconds(1)) sweep_locked();
  }
  void sweep_locked() {
    for (auto it = programs_.begin(); it != programs_.end();) {
      it = it->second.dead() ? free_program_locked(it, kNoChip) : std::next(it);
    }
    programs_at_last_sweep_ = programs_.size();
    last_sweep_ = std::chrono::steady_clock::now();
  }

  // A ttmem program id: tt-metal's runtime id when no other live set uses it, else one of ours.
  uint64_t unique_program_id(uint64_t runtime_id) {
    uint64_t id = runtime_id;
    while (id == 0 || ids_in_use_.count(id) != 0) id = kOwnIds | ++own_ids_;
    ids_in_use_.insert(id);
    return id;
  }

  struct ChipPlacement {
    uint64_t base = 0;
    uint64_t alignment = 0;
  };
  const ChipPlacement& placement_of_locked(uint32_t chip) { return placements_[chip]; }

  ChipMask chips_of(ThreadContext& t, const Device* device) {
    const uint32_t id = Traits::logical_id(*device);
    if (device == t.last_device && id == t.last_device_id) return t.last_device_chips;
    ChipMask chips = 0;
    for_each_chip(device, [&](uint32_t chip) { chips |= chip_bit(chip); });
    t.last_device = device;
    t.last_device_id = id;
    t.last_device_chips = chips;
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
    if (rc < 0 && rc != TTMEM_ENOENT) stats_.rejected.fetch_add(1, std::memory_order_relaxed);
  }

  // Calls fn(ttmem logical id) for the chip, or for every member chip of a mesh, registering
  // each chip the first time it is seen. Chips ttmem cannot register are skipped.
  template <class Fn>
  void for_each_chip(const Device* device, Fn&& fn) {
    if (device == nullptr) return;
    const std::vector<const Device*> members = Traits::members(*device);
    if (members.empty()) {
      if (std::optional<uint32_t> id = ensure_registered(*device)) fn(*id);
      return;
    }
    for (const Device* m : members) {
      if (m == nullptr) continue;
      if (std::optional<uint32_t> id = ensure_registered(*m)) fn(*id);
    }
  }

  // The ttmem logical id of a chip: its tt-metal id when free and below TTMEM_MAX_DEVICES, else
  // the lowest free one. Decided once per chip; the fast path is one atomic load.
  std::optional<uint32_t> ensure_registered(const Device& d) {
    const uint32_t metal_id = Traits::logical_id(d);
    if (metal_id < kFastIds) {
      const int v = fast_ids_[metal_id].load(std::memory_order_acquire);
      if (v > 0) return uint32_t(v - 1);
      if (v < 0) return std::nullopt;
    }
    std::lock_guard lock(mutex_);
    auto known = slow_ids_.find(metal_id);
    if (known != slow_ids_.end()) return known->second;
    std::optional<uint32_t> id = free_logical_id_locked(metal_id);
    if (id) {
      DeviceFacts facts = Traits::facts(d);
      facts.logical_id = *id;
      placements_[*id] = {facts.unreserved_base, facts.kinds[TTMEM_KIND_DRAM].alignment};
      check(sink_.register_device(facts.desc()));
      used_ids_ |= uint64_t{1} << *id;
    } else {
      stats_.chips_refused.fetch_add(1, std::memory_order_relaxed);
    }
    slow_ids_[metal_id] = id;
    if (metal_id < kFastIds) {
      fast_ids_[metal_id].store(id ? int(*id) + 1 : -1, std::memory_order_release);
    }
    return id;
  }

  std::optional<uint32_t> free_logical_id_locked(uint32_t metal_id) const {
    if (metal_id < TTMEM_MAX_DEVICES && (used_ids_ >> metal_id & 1) == 0) return metal_id;
    for (uint32_t i = 0; i < TTMEM_MAX_DEVICES; ++i) {
      if ((used_ids_ >> i & 1) == 0) return i;
    }
    return std::nullopt;
  }

  // The only chip registered so far, for CBs of vintages that name no device.
  std::optional<uint32_t> only_chip_locked() const {
    if (used_ids_ == 0 || (used_ids_ & (used_ids_ - 1)) != 0) return std::nullopt;
    return uint32_t(__builtin_ctzll(used_ids_));
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
  bool is_l1_buffer_start_locked(uint32_t chip, uint64_t address) const {
    return l1_starts_.count(uint64_t(chip) << 56 ^ address) != 0;
  }

  static constexpr uint32_t kFastIds = 4096;
  static constexpr uint32_t kNoChip = UINT32_MAX;
  static constexpr uint64_t kOwnIds = uint64_t{1} << 63;  // ids the mapper assigns itself

  const uint64_t instance_ = next_instance();
  Sink sink_;
  MapperStats stats_;
  std::mutex mutex_;  // everything below
  std::array<std::atomic<int>, kFastIds> fast_ids_{};  // tt-metal id -> ttmem id + 1; -1 refused
  std::unordered_map<uint32_t, std::optional<uint32_t>> slow_ids_;
  uint64_t used_ids_ = 0;
  std::array<ChipPlacement, TTMEM_MAX_DEVICES> placements_{};
  std::unordered_map<uint64_t, uint32_t> l1_starts_;
  std::unordered_map<uint64_t, ProgramState> programs_;  // by Traits::program_key
  std::vector<ProgramCb> cbs_of_new_program_;
  std::unordered_map<uint32_t, std::deque<AnonymousSet>> anonymous_;
  std::unordered_map<uint32_t, uint32_t> pending_deallocations_;
  std::unordered_set<uint64_t> ids_in_use_;
  uint64_t own_ids_ = 0;
  uint64_t program_order_ = 0;
  size_t programs_at_last_sweep_ = 0;
  uint64_t launches_ = 0;
  std::chrono::steady_clock::time_point last_sweep_ = std::chrono::steady_clock::now();
  bool ttnn_seen_ = false;
};

}  // namespace ttmem::tt_metal
