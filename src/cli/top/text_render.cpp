#include "cli/top/text_render.h"

namespace ttmem::top {

std::string render_text(const Frame& frame) {
  std::string out;
  for (const Line& line : frame) {
    std::string t = line.text();
    while (!t.empty() && t.back() == ' ') t.pop_back();
    out += t;
    out += '\n';
  }
  return out;
}

}  // namespace ttmem::top
