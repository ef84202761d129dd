// Names of memory kinds and architectures, shared by every component that prints or parses them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "protocol/segment.h"

namespace ttmem::common {

inline constexpr std::array<std::string_view, protocol::kNumKinds> kKindNames = {
    "DRAM", "L1", "SYSTEM_MEMORY", "L1_SMALL", "TRACE", "CB"};

inline std::string_view kind_name(uint32_t kind) {
  return kind < kKindNames.size() ? kKindNames[kind] : std::string_view("?");
}

// Accepts the canonical names in any case, plus "l1small", "system" and "sysmem".
std::optional<uint32_t> parse_kind(std::string_view text);

std::string_view arch_name(uint32_t arch);

std::string_view layout_name(uint32_t layout);

}  // namespace ttmem::common
