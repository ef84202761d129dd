// Leak records outlive the processes and segments they came from: when a collector reaps a dead
// process with outstanding buffers, it writes them to <segment dir>/leaks/ (one JSON file per
// process, written atomically) so any later `ttmem leaks` still sees them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "collector/model.h"

namespace ttmem {

class LeakStore {
 public:
  static constexpr size_t kMaxFiles = 512;            // oldest files beyond this are pruned
  static constexpr size_t kMaxFileBytes = 64u << 20;  // larger files are not parsed

  explicit LeakStore(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }

  // Writes the records of one process. Returns "" or what went wrong.
  std::string save(const std::vector<LeakRecord>& leaks);

  // Every stored record, oldest process first. Unreadable files are reported in *problems.
  // A file is parsed once: a long-running viewer refreshing many times a second re-reads only
  // files whose size or modification time changed.
  std::vector<LeakRecord> load(std::vector<SegmentProblem>* problems) const;

  // Deletes every stored record; returns how many files were removed.
  size_t clear();

 private:
  struct Parsed {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    std::vector<LeakRecord> records;
    std::string error;  // set when the file could not be used
  };

  std::string dir_;
  mutable std::map<std::string, Parsed> cache_;  // by path
};

}  // namespace ttmem
