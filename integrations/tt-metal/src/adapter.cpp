// libttmem_tt_metal.so: puts ttmem into a tt-metal program that links it or LD_PRELOADs it.
// Built only where find_package(TT-Metalium) succeeds; the mapping it uses (mapping.hpp,
// hooks.hpp) is unit-tested without tt-metal.
//
// Registration, at load time (a constructor function), process-wide:
//   - where tt-metal has a BufferAllocationObserver (TTMEM_TT_METAL_HAS_OBSERVER), buffers are
//     reported by an observer registered once per process; a GraphTracker processor still
//     reports CBs and op names, with its buffer hooks off so nothing is counted twice;
//   - otherwise a GraphTracker processor reports everything.
// GraphTracker's processor stack is thread_local since tt-metal issue #44668, so the processor
// is pushed on the loading thread and, through a pthread_create wrapper, on every thread started
// afterwards, unless that thread already sees it (older tt-metal, whose stack is process-wide, or
// ThreadPool tasks that propagate the creator's stack).
//
// TTMEM_DISABLE=1 turns all of it off, as for every ttmem client.
#include <dlfcn.h>
#include <pthread.h>

#include <algorithm>
#include <any>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include <tt-metalium/buffer.hpp>
#include <tt-metalium/core_coord.hpp>
#include <tt-metalium/device.hpp>
#include <tt-metalium/graph_tracking.hpp>
#include <tt-metalium/mesh_device.hpp>
#include <tt-metalium/program.hpp>

#if TTMEM_TT_METAL_HAS_OBSERVER
#include <impl/memory_tracking/buffer_allocation_observer.hpp>
#endif

#include "ttmem_tt_metal/hooks.hpp"

namespace ttmem::tt_metal {
namespace {

namespace tm = ::tt::tt_metal;

// Reads a chip's real descriptor through whichever accessors this tt-metal has.
template <class D>
DeviceFacts metal_facts(const D& d) {
  DeviceFacts f;
  f.logical_id = uint32_t(d.id());
  // tt::ARCH (UMD) numbers GRAYSKULL 1, WORMHOLE_B0 2, BLACKHOLE 3, as ttmem_arch does.
  const auto arch = uint32_t(d.arch());
  f.arch = arch <= TTMEM_ARCH_BLACKHOLE ? arch : uint32_t(TTMEM_ARCH_UNKNOWN);
  const auto grid = d.compute_with_storage_grid_size();
  f.grid_x = uint16_t(grid.x);
  f.grid_y = uint16_t(grid.y);
  f.l1_per_core = d.l1_size_per_core();
  if constexpr (requires { d.allocator()->get_base_allocator_addr(tm::HalMemType::L1); }) {
    const auto& a = d.allocator();
    f.unreserved_base = a->get_base_allocator_addr(tm::HalMemType::L1);
    auto fill = [&](uint32_t kind, tm::BufferType type) {
      DeviceFacts::Kind& k = f.kinds[kind];
      k.banks = a->get_num_banks(type);
      k.bank_size = a->get_bank_size(type);
      k.alignment = a->get_alignment(type);
    };
    fill(TTMEM_KIND_DRAM, tm::BufferType::DRAM);
    fill(TTMEM_KIND_L1, tm::BufferType::L1);
    fill(TTMEM_KIND_L1_SMALL, tm::BufferType::L1_SMALL);
    fill(TTMEM_KIND_TRACE, tm::BufferType::TRACE);
  } else {
    f.kinds[TTMEM_KIND_DRAM].banks = d.num_dram_channels();
    f.kinds[TTMEM_KIND_DRAM].bank_size = d.dram_size_per_channel();
  }
  f.kinds[TTMEM_KIND_L1].bank_base = f.unreserved_base;
  f.l1_small_size = f.kinds[TTMEM_KIND_L1_SMALL].bank_size;
  f.trace_region_size = f.kinds[TTMEM_KIND_TRACE].bank_size;
  f.kinds[TTMEM_KIND_L1_SMALL].bank_base = f.l1_per_core - f.l1_small_size;
  f.kinds[TTMEM_KIND_TRACE].bank_base = f.kinds[TTMEM_KIND_DRAM].bank_size;
  f.kinds[TTMEM_KIND_CB] = f.kinds[TTMEM_KIND_L1];  // CBs grow up from the same base
  f.kinds[TTMEM_KIND_CB].alignment = f.kinds[TTMEM_KIND_DRAM].alignment;
  return f;
}

struct MetalTraits {
  using Device = tm::IDevice;
  using Buffer = tm::Buffer;
  using CoreRange = ::CoreRange;
  using CoreRangeSet = ::CoreRangeSet;
  using Program = tm::Program;
#if TTMEM_TT_METAL_HAS_TRACKED_ARGUMENT
  using FunctionArgs = std::span<tm::TrackedArgument>;
#else
  using FunctionArgs = std::span<std::any>;
#endif

  static uint32_t logical_id(const Device& d) { return uint32_t(d.id()); }
  static std::vector<const Device*> members(const Device& d) {
    std::vector<const Device*> out;
    if (const auto* mesh = dynamic_cast<const tm::distributed::MeshDevice*>(&d)) {
      for (Device* chip : mesh->get_devices()) out.push_back(chip);
    }
    return out;
  }
  static DeviceFacts facts(const Device& d) { return metal_facts(d); }
};

using MetalMapper = Mapper<MetalTraits>;

// The processor; with an observer present its buffer hooks are off (the observer has them).
class Processor final : public GraphProcessor<tm::IGraphProcessor, MetalTraits> {
 public:
  Processor(MetalMapper& m, bool buffers) : GraphProcessor(m), mapper_(m), buffers_(buffers) {}
  void track_allocate(const tm::Buffer* b) {
    if (buffers_) mapper_.buffer_allocated(b);
  }
  void track_deallocate(tm::Buffer* b) {
    if (buffers_) mapper_.buffer_deallocated(b);
  }

 private:
  MetalMapper& mapper_;
  bool buffers_;
};

// Never destroyed: hooks may fire from other threads while the process exits.
MetalMapper* g_mapper = nullptr;
std::shared_ptr<Processor>* g_processor = nullptr;

void push_on_this_thread() {
  if (g_processor == nullptr) return;
  auto& tracker = tm::GraphTracker::instance();
  const auto& present = tracker.get_processors();
  for (const auto& p : present) {
    if (p.get() == g_processor->get()) return;  // process-wide stack, or propagated
  }
  tracker.push_processor(*g_processor);
}

bool disabled() {
  const char* v = std::getenv("TTMEM_DISABLE");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

#if TTMEM_TT_METAL_HAS_OBSERVER
class Observer final : public AllocationObserver<tm::BufferAllocationObserver, MetalTraits> {
 public:
  using AllocationObserver::AllocationObserver;
};
#endif

__attribute__((constructor)) void ttmem_tt_metal_init() {
  if (disabled() || ttmem_enabled() == 0) return;
  g_mapper = new MetalMapper();
  bool observer = false;
#if TTMEM_TT_METAL_HAS_OBSERVER
  observer = true;
  tm::register_buffer_allocation_observer_once(
      typeid(Observer), [] { return std::make_shared<Observer>(*g_mapper); });
#endif
  g_processor = new std::shared_ptr<Processor>(std::make_shared<Processor>(*g_mapper, !observer));
  push_on_this_thread();
}

struct StartArgs {
  void* (*start)(void*);
  void* arg;
};

void* start_tracked(void* p) {
  StartArgs a = *static_cast<StartArgs*>(p);
  delete static_cast<StartArgs*>(p);
  push_on_this_thread();
  return a.start(a.arg);
}

}  // namespace
}  // namespace ttmem::tt_metal

// Every thread the program starts gets the processor before it runs any of its code.
extern "C" __attribute__((visibility("default"))) int pthread_create(
    pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg) {
  using Create = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
  static Create real = reinterpret_cast<Create>(::dlsym(RTLD_NEXT, "pthread_create"));
  if (ttmem::tt_metal::g_processor == nullptr) return real(thread, attr, start, arg);
  auto* boxed = new (std::nothrow) ttmem::tt_metal::StartArgs{start, arg};
  if (boxed == nullptr) return real(thread, attr, start, arg);
  const int rc = real(thread, attr, &ttmem::tt_metal::start_tracked, boxed);
  if (rc != 0) delete boxed;
  return rc;
}
