#include "common/token.h"

#include <fstream>
#include <stdexcept>

namespace ttmem::common {

std::string read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read token file " + path);
  std::string line;
  std::getline(in, line);
  auto b = line.find_first_not_of(" \t\r");
  auto e = line.find_last_not_of(" \t\r");
  if (b == std::string::npos) {
    throw std::runtime_error("token file " + path + " is empty; put the token on its first line");
  }
  return line.substr(b, e - b + 1);
}

}  // namespace ttmem::common
