// The text renderer of `ttmem top`: the same Frame the terminal UI paints, as plain lines, for
// `--once`, `--count`, a stdout that is not a terminal, and the golden files.
#pragma once

#include <string>

#include "cli/top/layout.h"

namespace ttmem::top {

// One line per Frame line, trailing blanks removed, each ending in '\n'.
std::string render_text(const Frame& frame);

}  // namespace ttmem::top
