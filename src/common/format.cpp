#include "common/format.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>

#include "common/kinds.h"

namespace ttmem::common {

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = double(bytes);
  int unit = 0;
  while (v >= 1024.0 && unit < 4) {
    v /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f %s", v, kUnits[unit]);
  return buf;
}

std::string format_chip_id(uint64_t chip_id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(chip_id));
  return chip_id == 0 ? "0x0" : buf;
}

std::optional<uint64_t> parse_chip_id(std::string_view text) {
  if (text.size() < 3 || text.size() > 18 || text[0] != '0' || (text[1] != 'x' && text[1] != 'X')) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : text.substr(2)) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v << 4 | uint64_t(std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                                                                         : (c | 0x20) - 'a' + 10);
  }
  return v;
}

std::string format_percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * double(part) / double(whole));
  return buf;
}

std::optional<uint32_t> parse_kind(std::string_view text) {
  std::string upper(text);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return char(std::toupper(c)); });
  for (uint32_t k = 0; k < kKindNames.size(); ++k) {
    if (upper == kKindNames[k]) return k;
  }
  if (upper == "L1SMALL") return uint32_t(Kind::L1Small);
  if (upper == "SYSTEM" || upper == "SYSMEM") return uint32_t(Kind::SystemMemory);
  return std::nullopt;
}

std::string_view arch_name(uint32_t arch) {
  switch (arch) {
    case 1: return "grayskull";
    case 2: return "wormhole_b0";
    case 3: return "blackhole";
    default: return "unknown";
  }
}

std::string_view layout_name(uint32_t layout) {
  switch (layout) {
    case 0: return "INTERLEAVED";
    case 1: return "SINGLE_BANK";
    case 2: return "HEIGHT_SHARDED";
    case 3: return "WIDTH_SHARDED";
    case 4: return "BLOCK_SHARDED";
    case 5: return "ND_SHARDED";
    default: return "?";
  }
}

}  // namespace ttmem::common
