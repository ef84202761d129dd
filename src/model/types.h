// Vocabulary of the tt-metal model: buffer types, layouts, data types, cores and core ranges.
// Numbers follow tt-metal's enums (BufferType, TensorMemoryLayout) so they can go on the wire
// unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ttmem/ttmem.hpp"

namespace ttmem::model {

// tt-metal's BufferType: the memory kinds before Cb, with tt-metal's numbers, so the model uses
// the one kind enum (ttmem::Kind) under tt-metal's name. SYSTEM_MEMORY is host memory and never
// reaches the device allocator.
using BufferType = Kind;
inline constexpr uint32_t kNumBufferTypes = uint32_t(Kind::Cb);
// Circular-buffer space, the memory kind after the buffer types (ttmem_kind TTMEM_KIND_CB).
inline constexpr uint32_t kCbKind = uint32_t(Kind::Cb);

// tt-metal's TensorMemoryLayout.
enum class Layout : uint32_t {
  Interleaved = 0,
  HeightSharded = 2,
  WidthSharded = 3,
  BlockSharded = 4,
  NdSharded = 5
};

enum class DataType : uint32_t { Float32, BFloat16, BFloat8B, BFloat4B };

// tt-metal spells buffer types as the enum names: "DRAM", "L1", "L1_SMALL", "TRACE".
std::string_view buffer_type_name(BufferType type);
std::optional<BufferType> parse_buffer_type(std::string_view text);  // any case; "l1small" too

std::string_view layout_name(Layout layout);                // "interleaved", "height_sharded", ...
std::optional<Layout> parse_layout(std::string_view text);  // any case, '-' or '_'
inline bool is_sharded(Layout layout) {
  return layout != Layout::Interleaved;
}

std::string_view data_type_name(DataType type);  // "bfloat16", "bfloat8_b", ...
std::optional<DataType> parse_data_type(std::string_view text);

// --- tiles (32×32) --------------------------------------------------------------------------
inline constexpr uint64_t kTileRows = 32;
inline constexpr uint64_t kTileCols = 32;

constexpr uint64_t ceil_div(uint64_t value, uint64_t divisor) {
  return (value + divisor - 1) / divisor;
}
constexpr uint64_t align_up(uint64_t value, uint64_t alignment) {
  return ceil_div(value, alignment) * alignment;
}

// Bytes of one 32x32 tile, shared exponents included for the block-float formats.
uint64_t tile_bytes(DataType type);

// Tiles of a rows x cols matrix, each dimension padded to whole tiles.
constexpr uint64_t tile_count(uint64_t rows, uint64_t cols) {
  return ceil_div(rows, kTileRows) * ceil_div(cols, kTileCols);
}

// --- cores ----------------------------------------------------------------------------------
struct CoreCoord {
  uint32_t x = 0;
  uint32_t y = 0;
  bool operator==(const CoreCoord&) const = default;
};

// An inclusive rectangle of logical worker cores, as tt-metal's CoreRange.
struct CoreRange {
  CoreCoord start;
  CoreCoord end;
  bool operator==(const CoreRange&) const = default;

  uint32_t num_cores() const { return (end.x - start.x + 1) * (end.y - start.y + 1); }
  bool contains(CoreCoord core) const {
    return core.x >= start.x && core.x <= end.x && core.y >= start.y && core.y <= end.y;
  }
  // tt-metal's CoreRange::str(): "[(x=0,y=0) - (x=7,y=7)]".
  std::string str() const;
};

using CoreRangeSet = std::vector<CoreRange>;

uint32_t num_cores(const CoreRangeSet& ranges);

// The first `count` cores of a grid_x-wide grid in row-major order, as whole rows plus a partial
// row (how ttnn lays out a shard grid of `count` cores).
CoreRangeSet row_major_cores(uint32_t count, uint32_t grid_x);

// Parses "x0,y0-x1,y1" or "x,y" (one core); several ranges joined by ';'.
std::optional<CoreRangeSet> parse_core_ranges(std::string_view text);

}  // namespace ttmem::model
