// Text that arrives from outside ttmem (segment command lines and tags, /proc cmdlines) made
// safe to print and to put in JSON: nlohmann::json refuses to serialise bytes that are not
// UTF-8, and control characters would garble terminals and line-based output.
#pragma once

#include <string>
#include <string_view>

namespace ttmem::common {

// `raw` with every control character (below 0x20) replaced by `control` and every byte that is
// not part of a well-formed UTF-8 sequence replaced by '?'. Valid UTF-8 passes unchanged; the
// result is exactly as long as `raw`.
std::string printable_text(std::string_view raw, char control);

}  // namespace ttmem::common
