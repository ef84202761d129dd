// Leak records outlive the processes and segments they came from: when a collector reaps a dead
// process with outstanding buffers, it writes them to <segment dir>/leaks/ (one JSON file per
// process, written atomically) so any later `ttmem leaks` still sees them.
//
// Retention is bounded in files and in records, newest kept: every collector holds the records
// in memory, so a bound on files alone would let a few crashed large runs (a failed Llama decode
// on a T3K leaves ~2,400 records) grow every collector by hundreds of MiB. The newest file is
// always kept whole.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "collector/model.h"

namespace ttmem {

class LeakStore {
 public:
  static constexpr size_t kMaxFiles = 512;            // oldest files beyond this are pruned
  static constexpr size_t kMaxRecords = 20'000;       // so are the oldest beyond this many records
  static constexpr size_t kMaxFileBytes = 64u << 20;  // larger files are not parsed

  explicit LeakStore(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }

  // Writes the records of one process. Returns "" or what went wrong.
  std::string save(const std::vector<LeakRecord>& leaks);

  // Every retained record, oldest process first (files beyond the bounds are left out, as if
  // already pruned). Unreadable files are reported in *problems. A file is parsed once, and the
  // list is built again only when a retained file changed or the retained set did: a
  // long-running viewer refreshing many times a second gets the same shared list every time.
  LeakList load(std::vector<SegmentProblem>* problems) const;

  // Deletes every stored record; returns how many files were removed.
  size_t clear();

 private:
  struct Parsed {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    size_t count = 0;                 // records in the file, kept when `records` is not
    std::vector<LeakRecord> records;  // empty for a file beyond the bounds
    std::string error;                // set when the file could not be used
  };

  static Parsed parse_file(const std::string& path, uint64_t size, std::error_code size_error);

  // Brings the cache up to date with the directory, newest file first, within the bounds;
  // returns the paths of the older files beyond them. Marks the list stale when the retained
  // records changed.
  std::vector<std::string> scan() const;

  std::string dir_;
  mutable std::map<std::string, Parsed> cache_;  // by path
  mutable std::vector<std::string> retained_;    // paths within the bounds, oldest first
  mutable LeakList list_;                        // the records of retained_ when not stale
  mutable bool list_stale_ = true;
};

}  // namespace ttmem
