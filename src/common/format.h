// Human-readable figures for the CLI and the TUI.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ttmem::common {

// 1536 -> "1.50 KiB"; exact bytes below 1 KiB.
std::string format_bytes(uint64_t bytes);

// Percent with one decimal, "-" when the denominator is zero.
std::string format_percent(uint64_t part, uint64_t whole);

// 0x7000: how every output spells a chip id: text, metric labels and JSON alike. In JSON it is
// a string, since jq and JavaScript read numbers as doubles and round 64-bit ids together.
std::string format_chip_id(uint64_t chip_id);

// The chip id that format_chip_id() spelled: "0x" and 1 to 16 hex digits; nullopt otherwise.
std::optional<uint64_t> parse_chip_id(std::string_view text);

}  // namespace ttmem::common
