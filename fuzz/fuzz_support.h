// What the fuzz targets share: a property check that aborts (so libFuzzer, and the replay
// test, report the input), and a scratch file for readers that take a path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

// Aborts with the failed condition when a property of the code under test does not hold: a
// fuzz target checks what the reader promises, not only that it does not crash.
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : ::ttmem::fuzz::check_failed(#cond, __FILE__, __LINE__))

namespace ttmem::fuzz {

[[noreturn]] void check_failed(const char* what, const char* file, int line);

// One file in a private directory under /dev/shm (else $TMPDIR or /tmp), rewritten for every
// input; the file and the directory are removed when the process exits normally.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& name);
  ~ScratchFile();
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::string& path() const { return path_; }
  // Replaces the contents with `size` bytes at `data`.
  void write(const uint8_t* data, size_t size);
  // Empties the file, then sizes it to `size` zero bytes (sparse).
  void reset(uint64_t size);
  // Writes `size` bytes at `offset`; the file grows if they reach past its end.
  void write_at(uint64_t offset, const uint8_t* data, size_t size);

 private:
  std::string dir_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace ttmem::fuzz
