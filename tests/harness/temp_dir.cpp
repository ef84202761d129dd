#include "temp_dir.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace ttmem::test {

TempDir::TempDir() {
  // One fixed prefix, so what a killed test left behind is easy to find and remove.
  char tmpl[] = "/tmp/ttmem-test-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    throw std::runtime_error(std::string("mkdtemp /tmp/ttmem-test-XXXXXX: ") +
                             std::strerror(errno));
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace ttmem::test
