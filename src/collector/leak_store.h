// Leak records outlive the processes and segments they came from: when a collector reaps a dead
// process with outstanding buffers, it writes them to <segment dir>/leaks/ (one file per process,
// written atomically) so any later `ttmem leaks` still sees them.
//
// Retention is bounded in files and in records, newest kept: every collector that loads the
// records holds them in memory, so a bound on files alone would let a few crashed large runs (a
// failed Llama decode on a T3K leaves ~2,400 records) grow every collector by hundreds of MiB.
// The newest file is always kept whole.
//
// A file (version 2) is JSON Lines: a header line {"bytes":B,"count":N,"pid":P,
// "process_start_time":S,"version":2}, then one record per line, B bytes in all after the
// header. The header gives the count without parsing the records, which is all `ttmem status`
// and the retention bounds need; it is checked against the file's size, since a leak file is
// input from whoever can write the directory. Files of version 1 ({"leaks":[...],"version":1},
// one document) still load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "collector/snapshot.h"

namespace ttmem::collector {

class LeakStore {
 public:
  static constexpr size_t kMaxFiles = 512;            // oldest files beyond this are pruned
  static constexpr size_t kMaxRecords = 20'000;       // so are the oldest beyond this many records
  // A version-1 file is one JSON document, parsed whole: larger ones are refused (loudly, as a
  // problem). Version-2 files, which every ttmem since writes, have no size limit: they are
  // read a chunk at a time, so a process killed holding 200,000 buffers is reported whole.
  static constexpr size_t kMaxVersion1Bytes = 64u << 20;
  static constexpr size_t kReadChunkBytes = 1u << 20;
  // No record line is longer (a record holds at most a 1,024-byte command and a 126-byte tag,
  // escaped): a longer line is malformed, so a hostile file cannot make a reader buffer it.
  static constexpr size_t kMaxRecordLineBytes = 64u << 10;

  explicit LeakStore(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }

  // Writes the records of one process: ttmem-<pid>-<start time>.leaks.json, or with a `source`
  // (a channel other than the process's segment, such as "legacy") ttmem-<pid>-<start
  // time>-<source>.leaks.json, so the two never replace each other's file. Returns "" or what
  // went wrong.
  std::string save(const std::vector<LeakRecord>& leaks, std::string_view source = {});

  // Every retained record, oldest process first (files beyond the bounds are left out, as if
  // already pruned). Unreadable files are reported in *problems. A file is parsed once, and the
  // list is built again only when a retained file changed or the retained set did: a
  // long-running viewer refreshing many times a second gets the same shared list every time.
  LeakList load(std::vector<SegmentProblem>* problems) const;

  // The number of retained records, from the files' headers, without parsing any record of a
  // version-2 file (a version-1 file is parsed to be counted). Bad headers are reported in
  // *problems.
  LeakList load_count(std::vector<SegmentProblem>* problems) const;

  // Deletes every stored record; returns how many files were removed.
  size_t clear();

 private:
  // What is known of one file; kept while its size and modification time stay the same.
  struct CachedFile {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    uint64_t count = 0;  // records in the file: its header's count (version 1: parsed)
    std::string error;   // set when the file could not be used
    // Its records once a load parsed them, shared with every list that holds the file; dropped
    // when the file falls beyond the bounds.
    std::shared_ptr<const LeakList::Records> records;
  };

  // Brings the cache up to date with the directory, newest file first, within the bounds;
  // returns the paths of the older files beyond them. Reads only the headers of files it has
  // not seen (or that changed) and marks the list stale when the retained records changed.
  std::vector<std::string> scan() const;

  // list_ from the retained files, parsing those whose records are not cached yet.
  void rebuild_list() const;

  void report_problems(std::vector<SegmentProblem>* problems) const;

  std::string dir_;
  mutable std::map<std::string, CachedFile> cache_;  // by path
  mutable std::vector<std::string> retained_;        // paths within the bounds, oldest first
  mutable LeakList list_;                            // the records of retained_ when not stale
  mutable bool list_stale_ = true;
};

}  // namespace ttmem::collector
