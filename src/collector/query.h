// Queries over a Snapshot shared by the CLI and ttmemd's HTTP API, so both select, sort and
// reject the same way.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "collector/snapshot.h"

namespace ttmem::collector {

// Device logical id -> chip id; nullopt with *error saying which ids exist.
std::optional<uint64_t> find_device(const Snapshot& s, uint32_t logical_id, std::string* error);

// Kind name (any case) -> kind; nullopt with *error listing the names.
std::optional<uint32_t> find_kind(const std::string& name, std::string* error);

// nullopt with *error when no process has this pid.
bool has_process(const Snapshot& s, pid_t pid, std::string* error);

enum class BufferSort { Size, Age };  // size: largest reserved first; age: oldest first

struct BufferFilter {
  std::optional<uint64_t> chip_id;
  std::optional<uint32_t> kind;
  std::optional<pid_t> pid;
  BufferSort sort = BufferSort::Size;
  size_t limit = 0;  // 0: all
};

struct BufferSelection {
  std::vector<const BufferView*> rows;  // point into the snapshot
  size_t total = 0;                     // matches before the limit
};

// Buffers that pass the filter, in the filter's order; equal keys by pid, device, kind, id and
// address, whatever order the snapshot holds them in.
BufferSelection select_buffers(const Snapshot& s, const BufferFilter& f);

// One program's CB set on one chip: the CB bytes of the program (its own L1 footprint; sets of
// different programs overlap, so these are never added into a device figure) and where its CB
// region ends.
struct ProgramCbSet {
  pid_t pid = 0;
  uint64_t chip_id = 0;
  uint32_t device = 0;  // the process's logical id
  uint64_t program_id = 0;
  uint64_t bytes = 0;       // sum over its CBs of bytes per core x cores
  uint64_t region_end = 0;  // highest CB end on any core
  uint32_t records = 0;     // CB records (one per CB and core range)
  std::string tag;          // the op that allocated them
};

// The program CB sets among the snapshot's CB rows that pass the filter (its kind is ignored),
// largest first, or oldest first when sorted by age. Needs a snapshot with buffers listed.
std::vector<ProgramCbSet> select_programs(const Snapshot& s, const BufferFilter& f);

// The logical ids of a device as "0" or "0,4".
std::string join_ids(const std::vector<uint32_t>& ids);

// Devices by first logical id, then chip id: the order every view lists them in.
bool device_order(const DeviceView& a, const DeviceView& b);

}  // namespace ttmem::collector
