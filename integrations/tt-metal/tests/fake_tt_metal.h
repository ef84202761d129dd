// A small tt-metal to drive the adapter's mapping without hardware: the declarations the adapter
// uses, signature for signature, in each vintage it supports, and the semantics behind them:
//
//   vintage   IGraphProcessor                          stack          CB events          CB frees
//   2025-09   span<std::any> args, no capture flag     process-wide   per CB, on the     never
//                                                                     device passed
//                                                                     (a mesh unexpanded)
//   2026-04   span<TrackedArgument>, is_capture_...    process-wide   per CB and chip,   once per
//                                                                     globals flagged    program
//                                                                                        and chip
//   main      + dataflow-buffer and scratchpad hooks   thread_local   as 2026-04         as 2026-04
//
// Common to all: track_allocate after the address is assigned and track_deallocate before the
// free; a MeshBuffer is one event on the MeshDevice; a program's CBs are reported on its first
// allocation on a chip only (program-cache hits report nothing) and again, for every chip, after
// the program's CBs change; programs are numbered by get_runtime_id(), which ttnn sets on every
// launch; ttnn calls track_program before every launch. Sources: tt-metal's
// tt_metal/api/tt-metalium/{graph_tracking,buffer,program,circular_buffer,mesh_device}.hpp and
// tt_metal/impl/program/program.cpp at the commits in the README of this directory.
//
// Allocation is delegated to ttmem's own model of tt-metal's allocator (src/model), so what the
// adapter reports can be compared with what the model computes for the same workload.
// Names follow tt-metal, not this project's style.
// NOLINTBEGIN(readability-identifier-naming)
#pragma once

#include <algorithm>
#include <any>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "model/device.h"
#include "model/program.h"
#include "ttmem_tt_metal/mapping.hpp"

namespace fake {

struct V2025 {
  static constexpr const char* kName = "2025-09";
  static constexpr bool kCaptureFlag = false, kTrackedArgument = false, kThreadLocalStack = false,
                        kCbEventsPerChip = false, kDeallocatesCbs = false, kCbAddress = true,
                        kProgramL1Hooks = false;
};
struct V2026 {
  static constexpr const char* kName = "2026-04";
  static constexpr bool kCaptureFlag = true, kTrackedArgument = true, kThreadLocalStack = false,
                        kCbEventsPerChip = true, kDeallocatesCbs = true, kCbAddress = false,
                        kProgramL1Hooks = false;
};
struct VMain {
  static constexpr const char* kName = "main";
  static constexpr bool kCaptureFlag = true, kTrackedArgument = true, kThreadLocalStack = true,
                        kCbEventsPerChip = true, kDeallocatesCbs = true, kCbAddress = false,
                        kProgramL1Hooks = true;
};

enum class BufferType { DRAM = 0, L1 = 1, SYSTEM_MEMORY = 2, L1_SMALL = 3, TRACE = 4 };
enum class TensorMemoryLayout {
  INTERLEAVED = 0,
  HEIGHT_SHARDED = 2,
  WIDTH_SHARDED = 3,
  BLOCK_SHARDED = 4,
  ND_SHARDED = 5
};

struct CoreCoord {
  size_t x = 0, y = 0;
};
struct CoreRange {
  CoreCoord start_coord, end_coord;
};
class CoreRangeSet {
 public:
  CoreRangeSet(std::vector<CoreRange> r) : ranges_(std::move(r)) {}  // NOLINT: implicit as tt-metal
  CoreRangeSet(const CoreRange& r) : ranges_{r} {}                   // NOLINT
  const std::vector<CoreRange>& ranges() const { return ranges_; }

 private:
  std::vector<CoreRange> ranges_;
};

inline ttmem::model::CoreRangeSet to_model(const CoreRangeSet& s) {
  ttmem::model::CoreRangeSet out;
  for (const CoreRange& r : s.ranges()) {
    out.push_back({{uint32_t(r.start_coord.x), uint32_t(r.start_coord.y)},
                   {uint32_t(r.end_coord.x), uint32_t(r.end_coord.y)}});
  }
  return out;
}
inline CoreRangeSet from_model(const ttmem::model::CoreRangeSet& s) {
  std::vector<CoreRange> out;
  for (const auto& r : s) out.push_back({{r.start.x, r.start.y}, {r.end.x, r.end.y}});
  return CoreRangeSet(std::move(out));
}

// IDevice: one chip of a model mesh (`member`), or a MeshDevice standing for all of them.
class IDevice {
 public:
  IDevice(int id, uint64_t unique_chip_id, ttmem::model::MeshDevice& model, int member)
      : id_(id), unique_(unique_chip_id), model_(&model), member_(member) {}
  virtual ~IDevice() = default;
  int id() const { return id_; }
  uint64_t unique_chip_id() const { return unique_; }  // test stand-in: IDevice has none
  const ttmem::model::ChipGeometry& geometry() const { return model_->geometry(); }
  ttmem::model::MeshDevice& model() const { return *model_; }
  int member() const { return member_; }  // -1: the mesh
  uint32_t l1_size_per_core() const { return uint32_t(geometry().l1_per_core); }
  CoreCoord compute_with_storage_grid_size() const { return {geometry().grid_x, geometry().grid_y}; }

 private:
  int id_;
  uint64_t unique_;
  ttmem::model::MeshDevice* model_;
  int member_;
};

class MeshDevice : public IDevice {
 public:
  MeshDevice(int id, ttmem::model::MeshDevice& model, std::vector<IDevice*> chips)
      : IDevice(id, 0, model, -1), chips_(std::move(chips)) {}
  std::vector<IDevice*> get_devices() const { return chips_; }

 private:
  std::vector<IDevice*> chips_;
};

inline std::vector<const IDevice*> members_of(const IDevice* d) {
  if (const auto* mesh = dynamic_cast<const MeshDevice*>(d)) {
    std::vector<const IDevice*> out;
    for (IDevice* c : mesh->get_devices()) out.push_back(c);
    return out;
  }
  return {d};
}

// tt-metal's Buffer accessors.
struct Buffer {
  IDevice* device_ = nullptr;
  uint64_t size_ = 0;
  uint64_t address_ = 0;
  uint64_t page_size_ = 2048;
  BufferType type_ = BufferType::DRAM;
  TensorMemoryLayout layout_ = TensorMemoryLayout::INTERLEAVED;
  uint64_t aligned_size_per_bank_ = 0;
  std::optional<uint32_t> num_cores_;
  bool has_shard_spec_ = false;  // ND-sharded buffers have none
  size_t unique_id_ = 0;

  IDevice* device() const { return device_; }
  uint64_t size() const { return size_; }
  uint32_t address() const { return uint32_t(address_); }
  uint64_t page_size() const { return page_size_; }
  uint32_t num_pages() const { return page_size_ ? uint32_t((size_ + page_size_ - 1) / page_size_) : 0; }
  BufferType buffer_type() const { return type_; }
  TensorMemoryLayout buffer_layout() const { return layout_; }
  bool bottom_up() const { return type_ == BufferType::DRAM; }
  uint64_t aligned_size_per_bank() const { return aligned_size_per_bank_; }
  bool has_shard_spec() const { return has_shard_spec_; }
  std::optional<uint32_t> num_cores() const { return num_cores_; }
  size_t unique_id() const { return unique_id_; }
};

struct TrackedArgument {
  std::any value;
  std::string (*to_string_fn)(const std::any&);
};

template <class V>
class Program;

// IGraphProcessor, one declaration per vintage.
template <class V>
class IGraphProcessor;

template <>
class IGraphProcessor<V2025> {
 public:
  virtual void track_allocate(const Buffer*) {}
  virtual void track_deallocate(Buffer*) {}
  virtual void track_allocate_cb(const CoreRangeSet&, uint64_t, uint64_t, bool, const IDevice*) {}
  virtual void track_deallocate_cb(const IDevice*) {}
  virtual void track_program(Program<V2025>*, const IDevice*) {}
  virtual void track_function_start(std::string_view, std::span<std::any>) {}
  virtual void track_function_end() {}
  virtual void track_function_end(const std::any&) {}
  virtual ~IGraphProcessor() = default;
};

template <>
class IGraphProcessor<V2026> {
 public:
  virtual bool is_capture_processor() const { return true; }
  virtual void track_allocate(const Buffer*) {}
  virtual void track_deallocate(Buffer*) {}
  virtual void track_allocate_cb(const CoreRangeSet&, uint64_t, uint64_t, bool, const IDevice*) {}
  virtual void track_deallocate_cb(const IDevice*) {}
  virtual void track_program(Program<V2026>*, const IDevice*) {}
  virtual void track_function_start(std::string_view, std::span<TrackedArgument>) {}
  virtual void track_function_end() {}
  virtual void track_function_end(const std::any&) {}
  virtual ~IGraphProcessor() = default;
};

template <>
class IGraphProcessor<VMain> {
 public:
  virtual bool is_capture_processor() const { return true; }
  virtual void track_allocate(const Buffer*) {}
  virtual void track_deallocate(Buffer*) {}
  virtual void track_allocate_cb(const CoreRangeSet&, uint64_t, uint64_t, bool, const IDevice*) {}
  // borrows_memory: a view onto a tensor's buffer.
  virtual void track_allocate_dataflow_buffer(const CoreRangeSet&, uint64_t, uint64_t, bool,
                                              const IDevice*) {}
  virtual void track_allocate_scratchpad(const CoreRangeSet&, uint64_t, uint64_t, const IDevice*) {}
  virtual void track_deallocate_cb(const IDevice*) {}
  virtual void track_program(Program<VMain>*, const IDevice*) {}
  virtual void track_function_start(std::string_view, std::span<TrackedArgument>) {}
  virtual void track_function_end() {}
  virtual void track_function_end(const std::any&) {}
  virtual ~IGraphProcessor() = default;
};

// GraphTracker: the processor stack (process-wide, or per thread in main) and the fan-out.
template <class V>
class GraphTracker {
 public:
  using Processor = IGraphProcessor<V>;
  static GraphTracker& instance() {
    static GraphTracker t;
    return t;
  }
  void push_processor(const std::shared_ptr<Processor>& p) { stack().push_back(p); }
  void pop_processor() { stack().pop_back(); }
  const std::vector<std::shared_ptr<Processor>>& get_processors() const { return stack(); }
  void clear() { stack().clear(); }
  // 2025: any processor means a capture; since PR #42649 only capture processors do.
  bool is_enabled() const {
    if constexpr (V::kCaptureFlag) {
      return std::any_of(stack().begin(), stack().end(),
                         [](const auto& p) { return p->is_capture_processor(); });
    } else {
      return !stack().empty();
    }
  }
  template <class Fn>
  void each(Fn&& fn) const {
    for (const auto& p : stack()) fn(*p);
  }

 private:
  static std::vector<std::shared_ptr<Processor>>& stack() {
    if constexpr (V::kThreadLocalStack) {
      static thread_local std::vector<std::shared_ptr<Processor>> s;
      return s;
    } else {
      static std::vector<std::shared_ptr<Processor>> s;
      return s;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Buffers: allocated by the model, reported as tt-metal reports them.

template <class V>
std::shared_ptr<Buffer> create_buffer(IDevice* device, const ttmem::model::BufferConfig& config) {
  ttmem::model::MeshDevice& m = device->model();
  const ttmem::model::Buffer& mb =
      device->member() < 0 ? m.allocate(config) : m.allocate_on(uint32_t(device->member()), config);
  auto b = std::make_shared<Buffer>();
  b->device_ = device;
  b->size_ = mb.size;
  b->address_ = mb.address;
  b->page_size_ = mb.page_size;
  b->type_ = BufferType(mb.type);
  b->layout_ = TensorMemoryLayout(mb.layout);
  b->aligned_size_per_bank_ = mb.size_per_bank;
  if (mb.layout != ttmem::model::Layout::Interleaved) b->num_cores_ = mb.num_banks;
  b->has_shard_spec_ = mb.layout != ttmem::model::Layout::Interleaved &&
                       mb.layout != ttmem::model::Layout::NdSharded;
  b->unique_id_ = mb.id;
  GraphTracker<V>::instance().each([&](auto& p) { p.track_allocate(b.get()); });
  return b;
}

template <class V>
void destroy_buffer(const std::shared_ptr<Buffer>& b) {
  GraphTracker<V>::instance().each([&](auto& p) { p.track_deallocate(b.get()); });
  b->device()->model().deallocate(b->unique_id());
}

// ---------------------------------------------------------------------------------------------
// Programs and their CBs.

struct CbConfig {
  CoreRangeSet cores;
  uint64_t size = 0;
  bool global = false;
};

template <class V>
class CircularBuffer {
 public:
  CircularBuffer(CoreRangeSet cores, uint64_t size, bool global, uint64_t address)
      : cores_(std::move(cores)), size_(size), global_(global), address_(address) {}
  const CoreRangeSet& core_ranges() const { return cores_; }
  std::size_t size() const { return size_; }
  bool globally_allocated() const { return global_; }
  uint32_t address() const
    requires V::kCbAddress
  {
    return uint32_t(address_);
  }

 private:
  CoreRangeSet cores_;
  uint64_t size_;
  bool global_;
  uint64_t address_;
};

template <class V>
class ProgramImpl {
 public:
  explicit ProgramImpl(std::vector<CbConfig> cbs) : cbs_(std::move(cbs)), address_(cbs_.size()) {}
  ProgramImpl(const ProgramImpl&) = delete;
  ProgramImpl& operator=(const ProgramImpl&) = delete;

  // ~ProgramImpl → deallocate_circular_buffers: one report per chip that got the program's CBs.
  ~ProgramImpl() {
    if constexpr (V::kDeallocatesCbs) {
      if (cb_devices_.empty() || cbs_.empty()) return;
      for (const IDevice* d : cb_devices_) {
        GraphTracker<V>::instance().each([&](auto& p) { p.track_deallocate_cb(d); });
      }
    }
  }

  const std::vector<CbConfig>& cbs() const { return cbs_; }
  uint64_t address(size_t i) const { return address_[i]; }

  // Adding a CB invalidates the program's CB allocation: its next launch places and reports
  // the whole set again, on every chip.
  void add_circular_buffer(CbConfig cb) {
    cbs_.push_back(std::move(cb));
    address_.push_back(0);
    allocated_ = false;
  }

  void allocate_circular_buffers(const IDevice* device) {
    auto& tracker = GraphTracker<V>::instance();
    const std::vector<const IDevice*> chips = members_of(device);
    std::vector<const IDevice*> fresh;
    for (const IDevice* c : chips) {
      if (cb_devices_.insert(c).second) fresh.push_back(c);
    }
    if (allocated_) {
      if constexpr (V::kCbEventsPerChip) {
        for (const IDevice* c : fresh) {
          for (size_t i = 0; i < cbs_.size(); ++i) {
            if (cbs_[i].global) continue;
            tracker.each([&](auto& p) {
              p.track_allocate_cb(cbs_[i].cores, address_[i], cbs_[i].size, false, c);
            });
          }
        }
      }
      return;
    }
    // Placement by the model, which mirrors tt-metal's rule.
    ttmem::model::Program mp;
    std::vector<size_t> local;
    for (size_t i = 0; i < cbs_.size(); ++i) {
      if (cbs_[i].global) continue;
      mp.add_circular_buffer(to_model(cbs_[i].cores), cbs_[i].size);
      local.push_back(i);
    }
    const ttmem::model::CbLayout layout =
        ttmem::model::place_circular_buffers(mp, device->geometry());
    for (size_t j = 0; j < local.size(); ++j) address_[local[j]] = layout.cbs[j].address;
    allocated_ = true;
    for (size_t i = 0; i < cbs_.size(); ++i) {
      const CbConfig& cb = cbs_[i];
      if constexpr (V::kCbEventsPerChip) {
        for (const IDevice* c : chips) {
          tracker.each(
              [&](auto& p) { p.track_allocate_cb(cb.cores, address_[i], cb.size, cb.global, c); });
        }
      } else {
        if (cb.global) continue;  // 2025 did not report them
        tracker.each(
            [&](auto& p) { p.track_allocate_cb(cb.cores, address_[i], cb.size, false, device); });
      }
    }
  }

 private:
  std::vector<CbConfig> cbs_;
  std::vector<uint64_t> address_;
  std::set<const IDevice*> cb_devices_;
  bool allocated_ = false;
};

template <class V>
class Program {
 public:
  explicit Program(std::vector<CbConfig> cbs)
      : internal_(std::make_shared<ProgramImpl<V>>(std::move(cbs))) {}
  void set_runtime_id(uint64_t id) { runtime_id_ = id; }
  uint64_t get_runtime_id() const { return runtime_id_; }
  std::vector<std::shared_ptr<CircularBuffer<V>>> circular_buffers() const {
    std::vector<std::shared_ptr<CircularBuffer<V>>> out;
    for (size_t i = 0; i < internal_->cbs().size(); ++i) {
      const CbConfig& cb = internal_->cbs()[i];
      out.push_back(
          std::make_shared<CircularBuffer<V>>(cb.cores, cb.size, cb.global, internal_->address(i)));
    }
    return out;
  }
  ProgramImpl<V>& impl() { return *internal_; }
  // tt-metal keeps this pointer private; the adapter reads it through an explicit instantiation
  // (adapter.cpp). The fake's Traits read it here.
  const std::shared_ptr<ProgramImpl<V>>& internal() const { return internal_; }

 private:
  std::shared_ptr<ProgramImpl<V>> internal_;
  uint64_t runtime_id_ = 0;
};

// ttnn's part: the program cache, and an op that launches a cached program.
template <class V>
class Ttnn {
 public:
  // Runs `op` with the program cached under `key` (made from `cbs` on a miss): track_function_
  // start, set_runtime_id and track_program (every launch), then the CB allocation, on this
  // thread or, as a multi-program workload compiles, on `worker`, then track_function_end.
  Program<V>& run(std::string_view op, IDevice* device, const std::string& key,
                  const std::vector<CbConfig>& cbs, void (*on_worker)(std::function<void()>) = nullptr) {
    auto& tracker = GraphTracker<V>::instance();
    start(op);
    auto [it, miss] = cache_.try_emplace(key);
    if (miss) it->second = std::make_unique<Program<V>>(cbs);
    Program<V>& program = *it->second;
    program.set_runtime_id(++next_operation_id_);
    tracker.each([&](auto& p) { p.track_program(&program, device); });
    if (on_worker != nullptr) {
      on_worker([&] { program.impl().allocate_circular_buffers(device); });
    } else {
      program.impl().allocate_circular_buffers(device);
    }
    tracker.each([&](auto& p) { p.track_function_end(); });
    return program;
  }
  Program<V>* cached(const std::string& key) {
    auto it = cache_.find(key);
    return it != cache_.end() ? it->second.get() : nullptr;
  }
  void clear_program_cache() { cache_.clear(); }
  size_t cache_size() const { return cache_.size(); }

  static void start(std::string_view op) {
    auto& tracker = GraphTracker<V>::instance();
    if constexpr (V::kTrackedArgument) {
      tracker.each([&](auto& p) { p.track_function_start(op, std::span<TrackedArgument>()); });
    } else {
      tracker.each([&](auto& p) { p.track_function_start(op, std::span<std::any>()); });
    }
  }

 private:
  std::map<std::string, std::unique_ptr<Program<V>>> cache_;
  uint64_t next_operation_id_ = 0;
};

// The adapter's Traits over the fake, as adapter.cpp implements them over tt-metal.
template <class V>
struct Traits {
  using Device = IDevice;
  using Buffer = fake::Buffer;
  using CoreRange = fake::CoreRange;
  using CoreRangeSet = fake::CoreRangeSet;
  using Program = fake::Program<V>;
  using FunctionArgs =
      std::conditional_t<V::kTrackedArgument, std::span<TrackedArgument>, std::span<std::any>>;
  static constexpr bool kDeallocatesCbs = V::kCaptureFlag;  // the adapter's rule

  static uint32_t logical_id(const IDevice& d) { return uint32_t(d.id()); }
  static std::vector<const IDevice*> members(const IDevice& d) {
    std::vector<const IDevice*> out;
    if (const auto* mesh = dynamic_cast<const MeshDevice*>(&d)) {
      for (IDevice* c : mesh->get_devices()) out.push_back(c);
    }
    return out;
  }
  static ttmem::tt_metal::DeviceFacts facts(const IDevice& d) {
    const ttmem::model::ChipGeometry& g = d.geometry();
    ttmem::tt_metal::DeviceFacts f;
    f.chip_id = d.unique_chip_id();
    f.arch = TTMEM_ARCH_WORMHOLE_B0;
    f.grid_x = uint16_t(g.grid_x);
    f.grid_y = uint16_t(g.grid_y);
    f.l1_per_core = g.l1_per_core;
    f.unreserved_base = g.l1_unreserved_base;
    f.l1_small_size = g.l1_small_size;
    f.trace_region_size = g.trace_region_size;
    f.board = "fake";
    for (auto [kind, type] : {std::pair{TTMEM_KIND_DRAM, ttmem::model::BufferType::Dram},
                              std::pair{TTMEM_KIND_L1, ttmem::model::BufferType::L1},
                              std::pair{TTMEM_KIND_L1_SMALL, ttmem::model::BufferType::L1Small},
                              std::pair{TTMEM_KIND_TRACE, ttmem::model::BufferType::Trace}}) {
      const ttmem::model::KindGeometry& k = g.kind(type);
      f.kinds[kind] = {0, k.bank_size, k.bank_base, k.num_banks, k.alignment};
    }
    f.kinds[TTMEM_KIND_CB] = f.kinds[TTMEM_KIND_L1];
    f.kinds[TTMEM_KIND_CB].alignment = g.dram_alignment;
    return f;
  }
  static uint64_t program_key(const Program& p) {
    return reinterpret_cast<uintptr_t>(p.internal().get());
  }
  static uint64_t program_runtime_id(const Program& p) { return p.get_runtime_id(); }
  static std::weak_ptr<const void> program_life(const Program& p) { return p.internal(); }
  static std::vector<ttmem::tt_metal::ProgramCb> program_cbs(const Program& p) {
    return ttmem::tt_metal::program_cbs_of(p);
  }
};

}  // namespace fake
// NOLINTEND(readability-identifier-naming)
