// Human-readable figures for the CLI and the TUI.
#pragma once

#include <cstdint>
#include <string>

namespace ttmem::common {

// 1536 -> "1.50 KiB"; exact bytes below 1 KiB.
std::string format_bytes(uint64_t bytes);

// Percent with one decimal, "-" when the denominator is zero.
std::string format_percent(uint64_t part, uint64_t whole);

}  // namespace ttmem::common
