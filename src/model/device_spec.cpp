#include "model/device_spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include "model/errors.h"

namespace ttmem::model {
namespace {

// The Tracy profiler's DRAM buffers: 48,000 B per RISC, 5 RISCs per core, and the cores of
// each DRAM channel: ceil((80 Tensix + 16 ethernet) / 12) = 8 on Wormhole,
// ceil((140 + 14) / 8) = 20 on Blackhole (the HAL, tt_metal/llrt/hal/tt-1xx/*/..._hal.cpp).
constexpr uint64_t profiler_dram_bytes(uint64_t cores_per_channel) {
  return 48'000 * 5 * cores_per_channel;
}

// Wormhole B0: 1,499,136 B worker L1, 12 DRAM banks of 1 GiB, 32 B DRAM alignment. Below the
// DRAM buffers: the 4 B host barrier rounded to 32 B; profiler builds add 1,920,000 B, which
// reproduces the 1,071,821,792 B bank size of their out-of-memory reports. The L1 unreserved
// base is a parameter (it moves with firmware, ~100-104 KiB).
constexpr ChipSpec wormhole() {
  return ChipSpec{.arch = Arch::WormholeB0,
                  .l1_per_core = 1'499'136,
                  .l1_unreserved_base = 102'400,
                  .dram_banks = 12,
                  .dram_bank_size = 1'073'741'824,
                  .dram_base_plain = 32,
                  .dram_base_profiler = 32 + profiler_dram_bytes(8),  // 1,920,032
                  .dram_alignment = 32,
                  .l1_alignment = 16};
}

// Blackhole: 1,572,864 B worker L1, DRAM banks of 4,278,190,080 B, 64 B DRAM alignment. The
// profiler base (64 + 4,800,000) reproduces the 4,273,390,016 B bank size of p150 reports.
constexpr ChipSpec blackhole(uint32_t dram_banks) {
  return ChipSpec{.arch = Arch::Blackhole,
                  .l1_per_core = 1'572'864,
                  .l1_unreserved_base = 102'400,
                  .dram_banks = dram_banks,
                  .dram_bank_size = 4'278'190'080,
                  .dram_base_plain = 64,
                  .dram_base_profiler = 64 + profiler_dram_bytes(20),  // 4,800,064
                  .dram_alignment = 64,
                  .l1_alignment = 16};
}

constexpr std::array<DispatchGrid, 2> only(uint32_t x, uint32_t y) {
  return {{{Dispatch::Tensix, x, y}, {Dispatch::Tensix, x, y}}};
}
// n300 and T3K: ttnn dispatches on ethernet there by default.
constexpr std::array<DispatchGrid, 2> kN300Grids = {
    {{Dispatch::Ethernet, 8, 8}, {Dispatch::Tensix, 8, 7}}};
// Galaxy: column dispatch by default, row dispatch since PR #26373.
constexpr std::array<DispatchGrid, 2> kGalaxyGrids = {
    {{Dispatch::Column, 7, 10}, {Dispatch::Row, 8, 9}}};

constexpr std::array<BoardSpec, 6> kBoards = {{
    {"n150", "Wormhole, 1 chip, 8x8 cores", wormhole(), 1, {{{1, 1}, {1, 1}}}, only(8, 8)},
    {"n300",
     "Wormhole, 2 chips, 8x8 cores (ethernet dispatch; 8x7 with Tensix dispatch)",
     wormhole(),
     2,
     {{{1, 2}, {1, 2}}},
     kN300Grids},
    {"t3k",
     "Wormhole T3000, 8 chips (4 x n300), mesh 1x8 or 2x4, 8x8 cores (8x7 Tensix dispatch)",
     wormhole(),
     8,
     {{{1, 8}, {2, 4}}},
     kN300Grids},
    {"galaxy",
     "Wormhole Galaxy, 32 chips, mesh 4x8, 7x10 cores (8x9 with row dispatch)",
     wormhole(),
     32,
     {{{4, 8}, {4, 8}}},
     kGalaxyGrids},
    {"p100a", "Blackhole, 1 chip, 11x10 cores, 7 DRAM banks", blackhole(7), 1,
     {{{1, 1}, {1, 1}}}, only(11, 10)},
    // 11x10 since firmware 19.5.0 (tt-metal #47014); 13x10 before.
    {"p150", "Blackhole, 1 chip, 11x10 cores, 8 DRAM banks", blackhole(8), 1,
     {{{1, 1}, {1, 1}}}, only(11, 10)},
}};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string_view dispatch_name(Dispatch dispatch) {
  switch (dispatch) {
    case Dispatch::Tensix:
      return "tensix";
    case Dispatch::Ethernet:
      return "ethernet";
    case Dispatch::Row:
      return "row";
    case Dispatch::Column:
      return "column";
  }
  return "?";
}

std::optional<Dispatch> parse_dispatch(std::string_view text) {
  const std::string key = lower(text);
  if (key == "tensix" || key == "worker") return Dispatch::Tensix;
  if (key == "ethernet" || key == "eth") return Dispatch::Ethernet;
  if (key == "row") return Dispatch::Row;
  if (key == "column" || key == "col") return Dispatch::Column;
  return std::nullopt;
}

std::string_view vintage_name(MessageVintage vintage) {
  switch (vintage) {
    case MessageVintage::V2024:
      return "2024";
    case MessageVintage::V2025:
      return "2025";
    case MessageVintage::V2026:
      return "2026";
    case MessageVintage::Current:
      return "current";
  }
  return "?";
}

std::optional<MessageVintage> parse_vintage(std::string_view text) {
  const std::string key = lower(text);
  if (key == "2024") return MessageVintage::V2024;
  if (key == "2025") return MessageVintage::V2025;
  if (key == "2026") return MessageVintage::V2026;
  if (key == "current" || key == "latest") return MessageVintage::Current;
  return std::nullopt;
}

std::optional<DispatchGrid> BoardSpec::grid(std::optional<Dispatch> dispatch) const {
  if (!dispatch) return grids[0];
  for (const DispatchGrid& g : grids) {
    if (g.dispatch == *dispatch) return g;
  }
  return std::nullopt;
}

std::string BoardSpec::dispatch_choices() const {
  std::string out(dispatch_name(grids[0].dispatch));
  if (grids[1].dispatch != grids[0].dispatch) {
    out += " or ";
    out += dispatch_name(grids[1].dispatch);
  }
  return out;
}

std::string_view arch_name(Arch arch) {
  return arch == Arch::Blackhole ? "blackhole" : "wormhole_b0";
}

std::string mesh_name(MeshShape shape) {
  return fmt::format("{}x{}", shape.rows, shape.cols);
}

std::optional<MeshShape> parse_mesh(std::string_view text) {
  const size_t x = text.find_first_of("xX");
  if (x == std::string_view::npos) return std::nullopt;
  MeshShape shape;
  auto parse = [](std::string_view s, uint32_t& out) {
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && ptr == s.data() + s.size() && !s.empty() && out > 0;
  };
  if (!parse(text.substr(0, x), shape.rows) || !parse(text.substr(x + 1), shape.cols)) {
    return std::nullopt;
  }
  return shape;
}

std::span<const BoardSpec> boards() {
  return kBoards;
}

const BoardSpec* find_board(std::string_view name) {
  std::string key = lower(name);
  if (key == "t3000") key = "t3k";
  if (key == "tg") key = "galaxy";
  for (const BoardSpec& board : kBoards) {
    if (board.name == key) return &board;
  }
  return nullptr;
}

std::string board_names() {
  std::string out;
  for (const BoardSpec& board : kBoards) {
    if (!out.empty()) out += ", ";
    out += board.name;
  }
  return out;
}

std::string_view trace_mode_name(TraceRegionMode mode) {
  return mode == TraceRegionMode::PerBank ? "per-bank" : "per-device";
}

std::optional<TraceRegionMode> parse_trace_mode(std::string_view text) {
  const std::string key = lower(text);
  if (key == "per-bank" || key == "per_bank" || key == "bank") return TraceRegionMode::PerBank;
  if (key == "per-device" || key == "per_device" || key == "device") {
    return TraceRegionMode::PerDevice;
  }
  return std::nullopt;
}

std::string_view policy_name(AllocPolicy policy) {
  return policy == AllocPolicy::BestFit ? "best-fit" : "first-fit";
}

std::optional<AllocPolicy> parse_policy(std::string_view text) {
  const std::string key = lower(text);
  if (key == "first-fit" || key == "first_fit" || key == "first") return AllocPolicy::FirstFit;
  if (key == "best-fit" || key == "best_fit" || key == "best") return AllocPolicy::BestFit;
  return std::nullopt;
}

ChipGeometry compute_geometry(const BoardSpec& board, const DeviceParams& params) {
  const ChipSpec& chip = board.chip;
  ChipGeometry g;
  g.arch = chip.arch;
  const std::optional<DispatchGrid> grid = board.grid(params.dispatch);
  if (!grid) {
    throw_invalid(fmt::format("{} has no {} dispatch: give --dispatch {}", board.name,
                              dispatch_name(*params.dispatch), board.dispatch_choices()));
  }
  g.grid_x = grid->grid_x;
  g.grid_y = grid->grid_y;
  g.dispatch = grid->dispatch;
  g.l1_per_core = chip.l1_per_core;
  g.dram_alignment = chip.dram_alignment;
  g.trace_mode = params.trace_mode;
  g.policy = params.policy;
  g.profiler = params.profiler;
  g.messages = params.messages;
  g.sub_devices = params.sub_devices;
  const uint64_t dram_base = params.profiler ? chip.dram_base_profiler : chip.dram_base_plain;

  g.l1_unreserved_base = params.l1_unreserved_base.value_or(chip.l1_unreserved_base);
  if (g.l1_unreserved_base % chip.dram_alignment != 0 || g.l1_unreserved_base >= chip.l1_per_core) {
    throw_invalid(
        fmt::format("L1 unreserved base {} B is not usable on {}: give a multiple of {} below {} B",
                    g.l1_unreserved_base, board.name, chip.dram_alignment, chip.l1_per_core));
  }
  // tt-metal rounds l1_small_size and trace_region_size to the DRAM alignment at device open.
  g.l1_small_size = align_up(params.l1_small_size, chip.dram_alignment);
  if (g.l1_unreserved_base + g.l1_small_size >= chip.l1_per_core) {
    throw_invalid(fmt::format(
        "l1_small_size {} B leaves no L1 on {}: each core has {} B above the unreserved base {} B; "
        "choose a smaller l1_small_size",
        params.l1_small_size, board.name, chip.l1_per_core - g.l1_unreserved_base,
        g.l1_unreserved_base));
  }
  g.trace_region_size = align_up(params.trace_region_size, chip.dram_alignment);

  uint64_t trace_per_bank = 0;
  if (params.trace_mode == TraceRegionMode::PerBank) {
    trace_per_bank = g.trace_region_size;
  } else if (g.trace_region_size > 0) {
    // Each bank holds a whole number of the largest trace pages (PR #47766).
    trace_per_bank = align_up(ceil_div(g.trace_region_size, chip.dram_banks), kMaxTracePageSize);
  }
  const uint64_t dram_above_base = chip.dram_bank_size - dram_base;
  if (trace_per_bank >= dram_above_base) {
    throw_invalid(fmt::format(
        "trace_region_size {} B takes {} B of every DRAM bank, but a bank has only {} B: choose "
        "a smaller trace_region_size",
        params.trace_region_size, trace_per_bank, dram_above_base));
  }

  const uint32_t cores = g.num_cores();
  const uint64_t l1_allocatable = chip.l1_per_core - g.l1_unreserved_base - g.l1_small_size;
  const uint64_t dram_allocatable = dram_above_base - trace_per_bank;
  auto set = [&g](uint32_t kind, uint64_t base, uint64_t size, uint32_t banks, uint32_t align) {
    g.kinds[kind] = KindGeometry{base, size, banks, align};
  };
  set(uint32_t(BufferType::Dram), dram_base, dram_allocatable, chip.dram_banks,
      chip.dram_alignment);
  set(uint32_t(BufferType::Trace), dram_base + dram_allocatable, trace_per_bank,
      chip.dram_banks, chip.dram_alignment);
  set(uint32_t(BufferType::L1), g.l1_unreserved_base, l1_allocatable, cores, chip.l1_alignment);
  set(uint32_t(BufferType::L1Small), g.l1_unreserved_base + l1_allocatable, g.l1_small_size, cores,
      chip.l1_alignment);
  // CBs may grow from the unreserved base up to the top of L1 (the first CB check).
  set(kCbKind, g.l1_unreserved_base, chip.l1_per_core - g.l1_unreserved_base, cores,
      chip.dram_alignment);
  return g;
}

}  // namespace ttmem::model
