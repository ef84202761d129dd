// Queries over a Snapshot shared by the CLI and ttmemd's HTTP API, so both select, sort and
// reject the same way.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collector/snapshot.h"

namespace ttmem::collector {

// Device logical id -> chip id; nullopt with *error saying which ids exist.
std::optional<uint64_t> find_device(const Snapshot& s, uint32_t logical_id, std::string* error);

// Kind name (any case) -> kind; nullopt with *error listing the names.
std::optional<uint32_t> find_kind(const std::string& name, std::string* error);

// nullopt with *error when no process has this pid.
bool has_process(const Snapshot& s, pid_t pid, std::string* error);

// The orders of a buffer list, by the same names everywhere: `ttmem buffers --sort`,
// /api/v1/buffers?sort=, `ttmem top --sort` and top's s/r keys. Each is its key's natural
// order: reserved and size largest first, age oldest first, the rest lowest first. Ties fall
// back to identity (pid, device, kind, id), so equal keys keep one order from refresh to refresh.
enum class BufferSort { kReserved, kSize, kAge, kAddress, kDevice, kKind, kPid, kTag };
inline constexpr int kNumBufferSorts = 8;

std::string_view sort_name(BufferSort sort);

// "reserved, size, age, address, device, kind, pid, tag": the names, for help and errors.
std::string sort_names();

// The sort of this name; nullopt with *error naming the valid ones.
std::optional<BufferSort> parse_sort(std::string_view name, std::string* error);

// Whether `a` comes before `b` in `sort`'s order.
bool sorts_before(const BufferView& a, const BufferView& b, BufferSort sort);

struct BufferFilter {
  std::optional<uint64_t> chip_id;
  std::optional<uint32_t> kind;
  std::optional<pid_t> pid;
  BufferSort sort = BufferSort::kReserved;
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
// in the filter's order: reserved and size by the set's CB bytes, age by its oldest CB, address
// by its region end, kind as identity (every set is CB). Needs a snapshot with buffers listed.
std::vector<ProgramCbSet> select_programs(const Snapshot& s, const BufferFilter& f);

// The logical ids of a device as "0" or "0,4".
std::string join_ids(const std::vector<uint32_t>& ids);

// Devices by first logical id, then chip id: the order every view lists them in.
bool device_order(const DeviceView& a, const DeviceView& b);

}  // namespace ttmem::collector
