// Tenstorrent products and the device-open parameters that shape their memory
// (docs/model.md, Sources).
//
// A BoardSpec says what the hardware is; DeviceParams say how tt-metal opened it; ChipGeometry is
// what follows from both: per memory kind, the relative address range every bank allocates in.
//
//   DRAM bank:  [0, dram_unreserved_base) reserved | DRAM buffers ↑ | TRACE region (top)
//   L1 bank:    [0, l1_unreserved_base) firmware | CBs ↑ | free | ↓ L1 buffers | L1_SMALL (top)
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "model/types.h"

namespace ttmem::model {

// Same numbers as ttmem_arch in ttmem.h.
enum class Arch : uint32_t { WormholeB0 = 2, Blackhole = 3 };
std::string_view arch_name(Arch arch);

struct ChipSpec {
  Arch arch = Arch::WormholeB0;
  uint64_t l1_per_core = 0;         // worker L1 bytes
  uint64_t l1_unreserved_base = 0;  // default; moves with firmware versions
  uint32_t dram_banks = 0;
  uint64_t dram_bank_size = 0;
  // Reserved bottom of every DRAM bank: the host barrier word (rounded to the DRAM alignment)
  // in plain builds; the barrier plus the Tracy profiler's buffers in TRACY_ENABLE builds.
  uint64_t dram_base_plain = 0;
  uint64_t dram_base_profiler = 0;
  uint32_t dram_alignment = 0;
  uint32_t l1_alignment = 0;
};

// Where fast dispatch runs, which decides how many Tensix cores are left as compute cores:
// n300/T3K give up a row to Tensix dispatch (8x7) or dispatch on ethernet cores (8x8); a Galaxy
// gives up a column (7x10) or a row (8x9).
enum class Dispatch : uint32_t { Tensix, Ethernet, Row, Column };
std::string_view dispatch_name(Dispatch dispatch);  // "tensix", "ethernet", "row", "column"
std::optional<Dispatch> parse_dispatch(std::string_view text);

struct DispatchGrid {
  Dispatch dispatch = Dispatch::Tensix;
  uint32_t grid_x = 0;  // compute grid: one L1 bank per core
  uint32_t grid_y = 0;
};

// Which tt-metal's error texts the model prints (they changed; docs/model.md, Sources):
//   V2024    out of memory without the bank size; core ranges "[(x=0,y=0) - (x=7,y=7)]"
//   V2025    "... but bank size is only {} B"
//   V2026    "... but bank size is {} B (allocated: .., free: .., largest free block: ..)"
//   Current  the 2026 texts with core ranges "[0-0 - 7-7]" (tt-umd PR #2397, 2026-04-28), and
//            trace_region_size 0 meaning "trace buffers go in DRAM, top-down"
enum class MessageVintage : uint32_t { V2024, V2025, V2026, Current };
std::string_view vintage_name(MessageVintage vintage);  // "2024", "2025", "2026", "current"
std::optional<MessageVintage> parse_vintage(std::string_view text);

struct MeshShape {
  uint32_t rows = 1;
  uint32_t cols = 1;
  uint32_t num_chips() const { return rows * cols; }
  bool operator==(const MeshShape&) const = default;
};
std::string mesh_name(MeshShape shape);                      // "2x4"
std::optional<MeshShape> parse_mesh(std::string_view text);  // "2x4"

struct BoardSpec {
  std::string_view name;  // "n150", "t3k", ...
  std::string_view description;
  ChipSpec chip;
  uint32_t num_chips = 1;
  std::array<MeshShape, 2> meshes{};  // first is the default; second equal to it if no choice
  // The compute grid per dispatch choice; the first is tt-metal's default for the product, the
  // second equal to it when there is no choice.
  std::array<DispatchGrid, 2> grids{};

  // The grid for `dispatch` (default: the product's); nullopt if the product has no such choice.
  std::optional<DispatchGrid> grid(std::optional<Dispatch> dispatch) const;
  std::string dispatch_choices() const;  // "ethernet or tensix"
};

// The product table, in the order products are listed to users.
std::span<const BoardSpec> boards();
// Looks a product up by name in any case; "t3000" and "tg" are accepted aliases.
const BoardSpec* find_board(std::string_view name);
std::string board_names();  // "n150, n300, t3k, galaxy, p100a, p150"

// Whether the trace region is carved out of every DRAM bank at its full size (tt-metal before
// PR #47122) or is the total over the device's banks (after it; issue #35259).
enum class TraceRegionMode : uint32_t { PerBank, PerDevice };
// FreeListOpt's search policies. First-fit is what tt-metal uses.
enum class AllocPolicy : uint32_t { FirstFit, BestFit };

std::string_view trace_mode_name(TraceRegionMode mode);  // "per-bank", "per-device"
std::optional<TraceRegionMode> parse_trace_mode(std::string_view text);
std::string_view policy_name(AllocPolicy policy);  // "first-fit", "best-fit"
std::optional<AllocPolicy> parse_policy(std::string_view text);

struct DeviceParams {
  uint64_t trace_region_size = 0;
  uint64_t l1_small_size = 0;
  TraceRegionMode trace_mode = TraceRegionMode::PerDevice;
  AllocPolicy policy = AllocPolicy::FirstFit;
  std::optional<uint64_t> l1_unreserved_base;  // override the board's default
  std::optional<Dispatch> dispatch;            // default: the product's (BoardSpec::grids)
  bool profiler = false;                       // a TRACY_ENABLE build: DRAM reserved base grows
  MessageVintage messages = MessageVintage::Current;
  // A sub-device manager is loaded, so bank managers have dependencies and out-of-memory
  // failures use the "after considering dependencies" text.
  bool sub_devices = false;
  std::optional<MeshShape> mesh;  // default: the board's first mesh shape
};

// Per-bank geometry of one memory kind: every bank allocates in [bank_base, bank_base+bank_size).
struct KindGeometry {
  uint64_t bank_base = 0;
  uint64_t bank_size = 0;
  uint32_t num_banks = 0;
  uint32_t alignment = 0;  // page alignment used for the per-bank size
};

struct ChipGeometry {
  Arch arch = Arch::WormholeB0;
  uint32_t grid_x = 0;
  uint32_t grid_y = 0;
  uint64_t l1_per_core = 0;
  uint64_t l1_unreserved_base = 0;
  uint64_t l1_small_size = 0;      // rounded up to the DRAM alignment
  uint64_t trace_region_size = 0;  // as tt-metal's config holds it (aligned)
  uint32_t dram_alignment = 0;     // every free list rounds blocks to this
  TraceRegionMode trace_mode = TraceRegionMode::PerDevice;
  AllocPolicy policy = AllocPolicy::FirstFit;
  Dispatch dispatch = Dispatch::Tensix;
  bool profiler = false;
  MessageVintage messages = MessageVintage::Current;
  bool sub_devices = false;
  // Indexed by BufferType for DRAM, L1, L1_SMALL, TRACE, and kCbKind for the CB region.
  std::array<KindGeometry, kNumBufferTypes + 1> kinds{};

  uint32_t num_cores() const { return grid_x * grid_y; }
  const KindGeometry& kind(BufferType type) const { return kinds[static_cast<uint32_t>(type)]; }
  const KindGeometry& cb() const { return kinds[kCbKind]; }
};

// Largest trace page tt-metal picks, and the granule a per-device trace region is reserved in
// per bank (PR #47766).
inline constexpr uint64_t kMinTracePageSize = 1024;
inline constexpr uint64_t kMaxTracePageSize = 8192;

// Derives the geometry; throws ModelError (InvalidRequest) when the parameters cannot describe
// a device, e.g. an l1_small_size larger than the free L1.
ChipGeometry compute_geometry(const BoardSpec& board, const DeviceParams& params);

// Allocatable L1 per bank: worker L1 - unreserved base - l1_small_size.
inline uint64_t allocatable_l1_per_bank(const ChipGeometry& g) {
  return g.kind(BufferType::L1).bank_size;
}

}  // namespace ttmem::model
