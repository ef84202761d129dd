#include "model/types.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <utility>

namespace ttmem::model {
namespace {

// Lower-case with '-' folded to '_', so "Height-Sharded" matches "height_sharded".
std::string normalise(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    c = c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

template <class Enum, size_t N>
std::optional<Enum> lookup(const std::array<std::pair<std::string_view, Enum>, N>& table,
                           std::string_view text) {
  const std::string key = normalise(text);
  for (const auto& [name, value] : table) {
    if (key == name) return value;
  }
  return std::nullopt;
}

template <class Enum, size_t N>
std::string_view name_of(const std::array<std::pair<std::string_view, Enum>, N>& table,
                         Enum value) {
  for (const auto& [name, entry] : table) {
    if (entry == value) return name;
  }
  return "?";
}

constexpr std::array<std::pair<std::string_view, BufferType>, 7> kBufferTypeNames = {{
    {"dram", BufferType::Dram},
    {"l1", BufferType::L1},
    {"system_memory", BufferType::SystemMemory},
    {"l1_small", BufferType::L1Small},
    {"l1small", BufferType::L1Small},
    {"trace", BufferType::Trace},
    {"sysmem", BufferType::SystemMemory},
}};

constexpr std::array<std::pair<std::string_view, Layout>, 5> kLayoutNames = {{
    {"interleaved", Layout::Interleaved},
    {"height_sharded", Layout::HeightSharded},
    {"width_sharded", Layout::WidthSharded},
    {"block_sharded", Layout::BlockSharded},
    {"nd_sharded", Layout::NdSharded},
}};

constexpr std::array<std::pair<std::string_view, DataType>, 4> kDataTypeNames = {{
    {"float32", DataType::Float32},
    {"bfloat16", DataType::BFloat16},
    {"bfloat8_b", DataType::BFloat8B},
    {"bfloat4_b", DataType::BFloat4B},
}};

std::optional<uint32_t> parse_u32(std::string_view text) {
  uint32_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::optional<CoreCoord> parse_core(std::string_view text) {
  // Accept "(x,y)" as well as "x,y".
  if (text.size() >= 2 && text.front() == '(' && text.back() == ')') {
    text = text.substr(1, text.size() - 2);
  }
  const size_t comma = text.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  auto x = parse_u32(text.substr(0, comma));
  auto y = parse_u32(text.substr(comma + 1));
  if (!x || !y) return std::nullopt;
  return CoreCoord{*x, *y};
}

}  // namespace

std::string_view buffer_type_name(BufferType type) {
  switch (type) {
    case BufferType::Dram:
      return "DRAM";
    case BufferType::L1:
      return "L1";
    case BufferType::SystemMemory:
      return "SYSTEM_MEMORY";
    case BufferType::L1Small:
      return "L1_SMALL";
    case BufferType::Trace:
      return "TRACE";
    case BufferType::Cb:  // ttmem's own kind past tt-metal's: named as everywhere else
      return "CB";
  }
  return "?";
}

std::optional<BufferType> parse_buffer_type(std::string_view text) {
  return lookup(kBufferTypeNames, text);
}

std::string_view layout_name(Layout layout) {
  return name_of(kLayoutNames, layout);
}

std::optional<Layout> parse_layout(std::string_view text) {
  return lookup(kLayoutNames, text);
}

std::string_view data_type_name(DataType type) {
  return name_of(kDataTypeNames, type);
}

std::optional<DataType> parse_data_type(std::string_view text) {
  return lookup(kDataTypeNames, text);
}

uint64_t tile_bytes(DataType type) {
  // bfloat8_b / bfloat4_b: 1024 mantissas plus 64 shared exponents per tile.
  switch (type) {
    case DataType::Float32:
      return 4096;
    case DataType::BFloat16:
      return 2048;
    case DataType::BFloat8B:
      return 1088;
    case DataType::BFloat4B:
      return 576;
  }
  return 0;
}

std::string CoreRange::str() const {
  return "[(x=" + std::to_string(start.x) + ",y=" + std::to_string(start.y) +
         ") - (x=" + std::to_string(end.x) + ",y=" + std::to_string(end.y) + ")]";
}

uint32_t num_cores(const CoreRangeSet& ranges) {
  uint32_t total = 0;
  for (const CoreRange& r : ranges) total += r.num_cores();
  return total;
}

CoreRangeSet row_major_cores(uint32_t count, uint32_t grid_x) {
  CoreRangeSet ranges;
  if (count == 0 || grid_x == 0) return ranges;
  const uint32_t full_rows = count / grid_x;
  const uint32_t rest = count % grid_x;
  if (full_rows > 0) ranges.push_back({{0, 0}, {grid_x - 1, full_rows - 1}});
  if (rest > 0) ranges.push_back({{0, full_rows}, {rest - 1, full_rows}});
  return ranges;
}

std::optional<CoreRangeSet> parse_core_ranges(std::string_view text) {
  CoreRangeSet ranges;
  while (!text.empty()) {
    const size_t semi = text.find(';');
    std::string_view item = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
    const size_t dash = item.find('-');
    auto start = parse_core(item.substr(0, dash));
    auto end = dash == std::string_view::npos ? start : parse_core(item.substr(dash + 1));
    if (!start || !end || end->x < start->x || end->y < start->y) return std::nullopt;
    ranges.push_back({*start, *end});
  }
  if (ranges.empty()) return std::nullopt;
  return ranges;
}

}  // namespace ttmem::model
