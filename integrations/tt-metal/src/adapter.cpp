// libttmem_tt_metal.so: puts ttmem into a tt-metal program that links it or LD_PRELOADs it.
// Built only where find_package(TT-Metalium) succeeds; the mapping it uses (mapping.hpp,
// hooks.hpp) is unit-tested without tt-metal, and `make conformance` compiles this file against
// real tt-metal trees (integrations/tt-metal/README.md lists the commits).
//
// Registration, at load time (a constructor function): a GraphTracker processor that reports
// buffers, CBs and op names. Its is_capture_processor() is false, so it never switches ttnn into
// graph-capture mode. tt-metal before PR #42649 (2026-04-19) has no such flag: there a permanent
// processor makes GraphTracker::is_enabled() true and breaks ttnn graph capture, so none is
// pushed unless TTMEM_TT_METAL_PROCESSOR=1 says to, and one line on stderr says why.
//
// GraphTracker's processor stack is thread_local since tt-metal #44668, so the processor is
// pushed on the loading thread and, through a pthread_create wrapper, on every thread started
// afterwards, unless that thread already sees it (older tt-metal, whose stack is process-wide).
//
// Vintages are told apart by probing the real declarations (requires-expressions on templates),
// never by version macros; a probe whose answer matters and that cannot be answered is a
// compile error (static_assert), so nothing silently falls back to zeros.
//
// TTMEM_DISABLE=1 turns all of it off, as for every ttmem client.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <any>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <tt-metalium/allocator.hpp>
#include <tt-metalium/buffer.hpp>
#include <tt-metalium/circular_buffer.hpp>
#include <tt-metalium/core_coord.hpp>
#include <tt-metalium/device.hpp>
#include <tt-metalium/graph_tracking.hpp>
#include <tt-metalium/mesh_device.hpp>
#include <tt-metalium/program.hpp>

#include "protocol/tt_metal_shm.h"
#include "ttmem_tt_metal/hooks.hpp"

namespace ttmem::tt_metal {
namespace {

namespace tm = ::tt::tt_metal;
namespace shm = ::ttmem::protocol::tt_metal_shm;

// ---------------------------------------------------------------------------------------------
// Probes of the installed tt-metal.

// PR #42649: processors can say they are not capturing.
template <class P>
constexpr bool kHasCaptureFlag = requires(const P& p) { p.is_capture_processor(); };

// The second parameter of IGraphProcessor::track_function_start: std::span<TrackedArgument>
// from 2026, std::span<std::any> before.
template <class Args>
Args function_args_of(void (tm::IGraphProcessor::*)(std::string_view, Args));
using MetalFunctionArgs = decltype(function_args_of(&tm::IGraphProcessor::track_function_start));

// device.hpp only forward-declares Allocator; allocator.hpp completes it. Without it every bank
// figure would be zero, so a tt-metal whose allocator no longer offers these fails to compile.
template <class D>
constexpr bool kHasAllocatorFacts = requires(const D& d) {
  d.allocator()->get_num_banks(tm::BufferType::DRAM);
  d.allocator()->get_bank_size(tm::BufferType::DRAM);
  d.allocator()->get_alignment(tm::BufferType::DRAM);
  d.allocator()->get_base_allocator_addr(tm::HalMemType::L1);
};
static_assert(kHasAllocatorFacts<tm::IDevice>,
              "tt-metalium/allocator.hpp does not give bank counts, sizes, alignments and bases: "
              "update metal_facts()");

// ---------------------------------------------------------------------------------------------
// A program's lifetime. tt-metal destroys a program's implementation (detail::ProgramImpl, held
// by a shared_ptr in Program) when the last owner lets go, and reports that with a
// track_deallocate_cb that names no program. A weak reference to the implementation tells the
// adapter exactly which program it was. Program keeps that shared_ptr private; the standard
// allows naming a private member in an explicit instantiation, which is how it is reached here
// (read only, never changed). A tt-metal that renames the member fails to compile this file.

using ProgramImplMember = std::shared_ptr<tm::detail::ProgramImpl> tm::Program::*;
struct ProgramImplTag {
  friend ProgramImplMember program_impl_member(ProgramImplTag);
};
template <ProgramImplMember Member>
struct ProgramImplAccess {
  friend ProgramImplMember program_impl_member(ProgramImplTag) { return Member; }
};
template struct ProgramImplAccess<&tm::Program::internal_>;

const std::shared_ptr<tm::detail::ProgramImpl>& program_impl(const tm::Program& p) {
  return p.*program_impl_member(ProgramImplTag{});
}

// ---------------------------------------------------------------------------------------------
// Unique chip ids. IDevice offers none. tt-metal's own per-chip counters (on by default since PR
// #37218) are files named by the chip's unique id that record the logical id of the process
// that created them: that is where the id is found. Otherwise the logical id stands in, and one
// line on stderr says so.

std::once_flag g_chip_id_warning;

std::optional<uint64_t> chip_id_from_tt_metal_counters(uint32_t logical_id) {
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return std::nullopt;
  std::optional<uint64_t> found;
  int matches = 0;
  while (dirent* e = ::readdir(dir)) {
    const std::optional<uint64_t> named = shm::chip_id_from_file_name(e->d_name);
    if (!named) continue;
    const uint64_t id = *named;
    // Copied into private memory: another process may truncate or rewrite the file.
    int fd = ::openat(::dirfd(dir), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    auto region = std::make_unique<shm::DeviceMemoryRegion>();
    const ssize_t n = ::pread(fd, region.get(), sizeof *region, 0);
    ::close(fd);
    if (n < ssize_t(offsetof(shm::DeviceMemoryRegion, processes))) continue;
    if (region->version < shm::kMinVersion || region->version > shm::kMaxVersion) continue;
    if (region->asic_id != id || region->device_id != logical_id) continue;
    ++matches;
    found = id;
  }
  ::closedir(dir);
  return matches == 1 ? found : std::nullopt;  // two chips claiming one logical id: unsure
}

uint64_t unique_chip_id(uint32_t logical_id) {
  if (std::optional<uint64_t> id = chip_id_from_tt_metal_counters(logical_id)) return *id;
  std::call_once(g_chip_id_warning, [] {
    std::fprintf(stderr,
                 "ttmem: tt-metal's per-chip counters (/dev/shm/tt_device_<chip>_memory) give no "
                 "unique chip id here (TT_METAL_SHM_TRACKING_DISABLED?); chips are keyed by "
                 "their logical ids\n");
  });
  return 0;  // DeviceInfo::desc() uses the logical id
}

// ---------------------------------------------------------------------------------------------
// Devices and programs.

// Reads a chip's real descriptor from IDevice and its allocator.
template <class D>
DeviceFacts metal_facts(const D& d) {
  DeviceFacts f;
  f.logical_id = uint32_t(d.id());
  f.chip_id = unique_chip_id(f.logical_id);
  // tt::ARCH (UMD) numbers GRAYSKULL 1, WORMHOLE_B0 2, BLACKHOLE 3, as ttmem_arch does.
  const auto arch = uint32_t(d.arch());
  f.arch = arch <= TTMEM_ARCH_BLACKHOLE ? arch : uint32_t(TTMEM_ARCH_UNKNOWN);
  const auto grid = d.compute_with_storage_grid_size();
  f.grid_x = uint16_t(grid.x);
  f.grid_y = uint16_t(grid.y);
  f.l1_per_core = d.l1_size_per_core();
  const auto& a = d.allocator();
  f.unreserved_base = a->get_base_allocator_addr(tm::HalMemType::L1);
  auto fill = [&](uint32_t kind, tm::BufferType type) {
    ttmem_kind_geometry& k = f.kinds[kind];
    k.num_banks = a->get_num_banks(type);
    k.bank_size = a->get_bank_size(type);
    k.alignment = a->get_alignment(type);
  };
  fill(TTMEM_KIND_DRAM, tm::BufferType::DRAM);
  fill(TTMEM_KIND_L1, tm::BufferType::L1);
  fill(TTMEM_KIND_L1_SMALL, tm::BufferType::L1_SMALL);
  fill(TTMEM_KIND_TRACE, tm::BufferType::TRACE);
  // Per bank: DRAM buffers from the DRAM base up, the trace region above them; L1 buffers from
  // the unreserved base (CBs grow up from the same base), L1_SMALL at the very top.
  ttmem_kind_geometry& dram = f.kinds[TTMEM_KIND_DRAM];
  dram.bank_base = a->get_base_allocator_addr(tm::HalMemType::DRAM);
  f.kinds[TTMEM_KIND_TRACE].bank_base = dram.bank_base + dram.bank_size;
  f.kinds[TTMEM_KIND_L1].bank_base = f.unreserved_base;
  f.l1_small_size = f.kinds[TTMEM_KIND_L1_SMALL].bank_size;
  f.trace_region_size = f.kinds[TTMEM_KIND_TRACE].bank_size;
  f.kinds[TTMEM_KIND_L1_SMALL].bank_base = f.l1_per_core - f.l1_small_size;
  f.kinds[TTMEM_KIND_CB] = f.kinds[TTMEM_KIND_L1];
  f.kinds[TTMEM_KIND_CB].alignment = dram.alignment;  // CB addresses use the DRAM alignment
  return f;
}

struct MetalTraits {
  using Device = tm::IDevice;
  using Buffer = tm::Buffer;
  using CoreRange = tm::CoreRange;
  using CoreRangeSet = tm::CoreRangeSet;
  using Program = tm::Program;
  using FunctionArgs = MetalFunctionArgs;

  // tt-metal from PR #42649 on also frees a program's CBs from ~ProgramImpl.
  static constexpr bool kDeallocatesCbs = kHasCaptureFlag<tm::IGraphProcessor>;

  static uint32_t logical_id(const Device& d) { return uint32_t(d.id()); }
  static std::vector<const Device*> members(const Device& d) {
    std::vector<const Device*> out;
    if (const auto* mesh = dynamic_cast<const tm::distributed::MeshDevice*>(&d)) {
      for (Device* chip : mesh->get_devices()) out.push_back(chip);
    }
    return out;
  }
  static DeviceFacts facts(const Device& d) { return metal_facts(d); }

  static uint64_t program_key(const Program& p) {
    return reinterpret_cast<uintptr_t>(program_impl(p).get());
  }
  static uint64_t program_runtime_id(const Program& p) { return p.get_runtime_id(); }
  static std::weak_ptr<const void> program_life(const Program& p) { return program_impl(p); }
  static std::vector<ProgramCb> program_cbs(const Program& p) { return program_cbs_of(p); }
};

using MetalMapper = Mapper<MetalTraits>;
using Processor = GraphProcessor<tm::IGraphProcessor, MetalTraits>;

// Never destroyed: hooks may fire from other threads while the process exits.
MetalMapper* g_mapper = nullptr;
std::shared_ptr<Processor>* g_processor = nullptr;

void push_on_this_thread() {
  if (g_processor == nullptr) return;
  auto& tracker = tm::GraphTracker::instance();
  for (const auto& p : tracker.get_processors()) {
    if (p.get() == g_processor->get()) return;  // process-wide stack: already there
  }
  tracker.push_processor(*g_processor);
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

__attribute__((constructor)) void ttmem_tt_metal_init() {
  if (env_flag("TTMEM_DISABLE") || ttmem_enabled() == 0) return;
  if constexpr (!kHasCaptureFlag<tm::IGraphProcessor>) {
    if (!env_flag("TTMEM_TT_METAL_PROCESSOR")) {
      std::fprintf(stderr,
                   "ttmem: this tt-metal predates PR #42649: a permanent GraphTracker processor "
                   "would turn on ttnn graph capture, so none is installed and nothing is "
                   "tracked; set TTMEM_TT_METAL_PROCESSOR=1 to track anyway (ttnn graph capture "
                   "then misbehaves)\n");
      return;
    }
  }
  g_mapper = new MetalMapper();
  g_processor = new std::shared_ptr<Processor>(std::make_shared<Processor>(*g_mapper));
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
