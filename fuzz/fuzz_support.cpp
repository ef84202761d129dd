#include "fuzz_support.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace ttmem::fuzz {

void check_failed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: property violated: %s\n", file, line, what);
  std::abort();
}

ScratchFile::ScratchFile(const std::string& name) {
  // tmpfs first: rewriting the file for every input must cost no disk I/O.
  std::string base = "/dev/shm";
  if (::access(base.c_str(), W_OK) != 0) {
    const char* tmp = std::getenv("TMPDIR");
    base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  std::string pattern = base + "/ttmem-fuzz-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("cannot create a scratch directory under " + base);
  }
  dir_ = pattern;
  path_ = dir_ + "/" + name;
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd_ < 0) throw std::runtime_error("cannot create " + path_);
}

ScratchFile::~ScratchFile() {
  ::close(fd_);
  ::unlink(path_.c_str());
  ::rmdir(dir_.c_str());
}

void ScratchFile::write(const uint8_t* data, size_t size) {
  reset(0);
  write_at(0, data, size);
}

void ScratchFile::reset(uint64_t size) {
  if (::ftruncate(fd_, 0) != 0 || ::ftruncate(fd_, off_t(size)) != 0) {
    throw std::runtime_error("cannot resize " + path_);
  }
}

void ScratchFile::write_at(uint64_t offset, const uint8_t* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(fd_, data + done, size - done, off_t(offset + done));
    if (n <= 0) throw std::runtime_error("cannot write " + path_);
    done += size_t(n);
  }
}

}  // namespace ttmem::fuzz
