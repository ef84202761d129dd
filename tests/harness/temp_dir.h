// The one temporary directory of the tests: fresh and empty, removed with everything in it at
// destruction.
#pragma once

#include <string>

namespace ttmem::test {

class TempDir {
 public:
  TempDir();  // throws std::runtime_error if it cannot be made
  ~TempDir();
  // One owner: a copy would remove the directory under the other.
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace ttmem::test
