// The collector's snapshot: what every viewer (CLI, TUI, daemon, Python) reads. A Snapshot is a
// plain value built from all segments at one instant; it owns its data (the leak records shared,
// immutable, with other snapshots) and can be kept, diffed and serialised without touching shared
// memory again.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/segment.h"

namespace ttmem::collector {

inline constexpr uint32_t kNumKinds = protocol::kNumKinds;

// One buffer or CB that is live now. Identity: (pid, start_time, device logical id, buffer_id).
struct BufferView {
  pid_t pid = 0;
  uint64_t process_start_time = 0;
  uint64_t chip_id = 0;
  uint32_t device = 0;  // the process's logical id
  uint32_t kind = 0;
  uint32_t layout = 0;
  uint64_t buffer_id = 0;  // CB: program id
  uint64_t address = 0;
  uint64_t size = 0;           // requested bytes (CB: bytes per core)
  uint64_t size_per_bank = 0;  // per-bank range (CB: bytes per core)
  uint64_t reserved = 0;       // size_per_bank x banks of the kind (CB: per core x cores)
  uint32_t page_size = 0;
  uint32_t num_banks = 0;  // banks or shards (CB: cores)
  uint32_t num_cores = 0;
  std::array<uint8_t, 4> core_bbox{};  // CB: x0, y0, x1, y1
  std::string tag;
  uint64_t time_ns = 0;  // CLOCK_MONOTONIC at allocation
};

struct KindUsage {
  uint64_t requested = 0;  // bytes the buffers hold
  uint64_t reserved = 0;   // address range the lock-step allocator took, over all banks
  uint64_t peak = 0;       // highest `reserved` seen (per process, summed over processes)
  uint64_t count = 0;      // live buffers
  uint64_t total_allocs = 0;
  uint64_t total_frees = 0;
  uint64_t capacity = 0;   // over all banks
  uint32_t num_banks = 0;
  uint64_t bank_size = 0;
  uint64_t bank_base = 0;
  // From the per-bank address map: the largest contiguous free range in one bank, and the free
  // bytes per bank. fragmentation = 1 - largest_free_block / free_per_bank.
  uint64_t largest_free_block = 0;
  uint64_t free_per_bank = 0;
  double fragmentation = 0.0;
};

// tt-metal's own counters for one chip (protocol/tt_metal_shm.h), as its file holds them: what
// the chip's view can say about processes ttmem's client does not see. Counters only: no
// buffers, banks or addresses.
struct TtMetalChipCounters {
  std::string path;
  uint32_t version = 0;
  uint32_t creator_logical_id = 0;  // the logical id of the process that created the file
  uint64_t board_serial = 0;
  uint64_t last_update_realtime_ns = 0;
  std::array<uint64_t, kNumKinds> totals{};  // the file's totals (every process, every chip)
  // True when no process slot of the file belongs to a live process: the totals are what ended
  // processes left behind (the file outlives them), not memory in use.
  bool totals_stale = false;
  uint64_t live_processes = 0;   // slots of live processes
  uint64_t stale_processes = 0;  // slots of ended processes or of a pid since reused
  struct RemoteChip {            // chip_stats beyond the file's own chip: chips reached through it
    uint32_t logical_id = 0;
    std::array<uint64_t, kNumKinds> bytes{};
  };
  std::vector<RemoteChip> remote_chips;
};

// Where a chip's figures come from (DeviceView::detail).
inline constexpr const char* kDetailBuffers = "buffers";    // ttmem's client: every buffer
inline constexpr const char* kDetailCounters = "counters";  // tt-metal's counters only

// Who reported a process (ProcessView::source).
inline constexpr const char* kSourceTtmem = "ttmem";
inline constexpr const char* kSourceTtMetalShm = "tt-metal-shm";

struct DeviceView {
  uint64_t chip_id = 0;
  // kDetailBuffers when some ttmem client registered the chip, else kDetailCounters: then kinds
  // hold bytes only (requested = reserved = tt-metal's counters of live processes), and
  // capacity, banks and free space are unknown (0).
  std::string detail = kDetailBuffers;
  std::optional<TtMetalChipCounters> tt_metal;  // when tt-metal's file for the chip was read
  std::vector<uint32_t> logical_ids;  // as registered by each process (usually one value)
  uint32_t arch = 0;
  std::string board;
  uint16_t grid_x = 0, grid_y = 0;
  uint64_t l1_per_core = 0;
  uint64_t unreserved_base = 0;
  uint64_t trace_region_size = 0;
  uint64_t l1_small_size = 0;
  std::array<KindUsage, kNumKinds> kinds{};
  // Clash margin: the CB region grows up from unreserved_base, L1 buffers grow down. The margin
  // is lowest_l1_address - cb_region_end; negative means they overlap (tt-metal's CB clash).
  // CBs: every live (cached) program keeps its CB set allocated, and the sets overlap from the
  // same base. kinds[CB] holds the L1 they cover (per core, the highest CB end minus the base,
  // summed over cores), never the sum of the sets. cb_region_end - unreserved_base is the CB
  // region in use per core: what binds L1 and what the clash margin uses.
  uint64_t cb_region_end = 0;       // highest CB end on any core; unreserved_base if none
  uint64_t cb_programs = 0;         // programs with a CB set on this chip (over all processes)
  uint64_t lowest_l1_address = 0;   // lowest L1 buffer start; L1 top if none
  bool has_l1_buffers = false;
  int64_t clash_margin = 0;
  uint64_t dropped_events = 0;      // history events lost for this device (all processes)

  // The CB region in use per core: bytes from the unreserved base to the highest CB end.
  uint64_t cb_region_in_use() const {
    return cb_region_end > unreserved_base ? cb_region_end - unreserved_base : 0;
  }
};

// A process's lifetime counters on one device: what cumulative metrics (Prometheus counters) need
// to stay monotonic when the process ends and leaves the model.
struct ProcessDeviceTotals {
  uint64_t chip_id = 0;
  std::array<uint64_t, kNumKinds> allocs{};
  std::array<uint64_t, kNumKinds> frees{};
  uint64_t dropped_events = 0;
};

struct ProcessView {
  pid_t pid = 0;
  uint64_t start_time = 0;
  uint32_t uid = 0;
  std::string command;
  // kSourceTtmem (a segment or a legacy client) or kSourceTtMetalShm (a slot in tt-metal's
  // per-chip counters; then no buffers, and start_time is that of the live process holding pid).
  std::string source = kSourceTtmem;
  // A tt-metal slot: counted (its bytes are in `reserved`, `requested` and its chips' usage) only
  // when its process is alive and no ttmem client reports the same process on the same chip.
  // Otherwise `reserved` is zero and `reported` alone holds what the slot says.
  bool counted = true;
  bool stale = false;  // a tt-metal slot of a process that ended (or whose pid was reused)
  std::array<uint64_t, kNumKinds> reported{};  // tt-metal's counters over the process's chips
  std::vector<uint64_t> chips;                 // tt-metal slot: the chips whose files name it
  std::string segment;  // path
  // How the segment's origin was checked: "held" (the process holds it open and the file is its
  // user's), "owner" (only the file's owner could be checked: the process belongs to another
  // user, or ended first and the file is the collector's own), "other_namespace" (the process
  // runs in another PID namespace: its pid means nothing here, so it is shown but never
  // checked, called dead or reaped; docs/security.md), "" (legacy: not a segment).
  std::string segment_check;
  bool exited = false;  // exited normally, segment waiting to be reported
  std::array<uint64_t, kNumKinds> reserved{};  // bytes per kind over its devices (CB: covered)
  std::array<uint64_t, kNumKinds> requested{};
  uint64_t buffers = 0;  // live buffers (CBs excluded)
  uint64_t cbs = 0;          // CB records (one per CB and core range)
  uint64_t cb_programs = 0;  // programs with a CB set, counted per device
  uint64_t dropped_events = 0;
  protocol::ProcessCounters counters{};  // reports the client could not record
  uint64_t torn_records = 0;             // records that kept changing while read
  uint64_t corrupt_records = 0;          // records that failed validation
  std::vector<ProcessDeviceTotals> device_totals;  // one per registered device
};

// An outstanding buffer of a process that died (or exited) without freeing it.
struct LeakRecord {
  pid_t pid = 0;
  uint64_t process_start_time = 0;
  std::string command;
  uint64_t detected_realtime_ns = 0;
  uint64_t chip_id = 0;
  uint32_t device = 0;
  uint32_t kind = 0;
  uint64_t buffer_id = 0;
  uint64_t address = 0;
  uint64_t size = 0;
  uint64_t reserved = 0;
  std::string tag;
  uint64_t time_ns = 0;
};

// The leak records of a snapshot, shared and immutable: a viewer refreshes many times a second
// and ttmemd keeps several publications, all holding the same up to LeakStore::kMaxRecords
// records, so copying a Snapshot must not copy them. They are kept per leak file, each file's
// records in one immutable vector that every list holding the file shares: while processes keep
// leaving leak files (the soak leaves one every 50 ms), a new list costs a vector of pointers,
// not a copy of every record. A list made from counts alone (CollectorOptions::leak_records
// false) knows how many buffers leaked and holds no records.
class LeakList {
 public:
  using Records = std::vector<LeakRecord>;
  using Files = std::vector<std::shared_ptr<const Records>>;  // records of each file, in order

  LeakList() = default;
  explicit LeakList(Files files) : files_(std::make_shared<const Files>(std::move(files))) {
    for (const auto& f : *files_) count_ += f->size();
  }
  explicit LeakList(Records records)
      : LeakList(Files{std::make_shared<const Records>(std::move(records))}) {}
  static LeakList counted_only(uint64_t count) {
    LeakList list;
    list.count_ = count;
    return list;
  }

  // Leaked buffers, whether or not their records were loaded.
  uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }

  // True when both hold the very same list, as the lists of refreshes that changed nothing do.
  bool same_list_as(const LeakList& other) const { return files_ == other.files_; }

  // Walks the records, oldest process first; none when only counted.
  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = LeakRecord;
    using difference_type = std::ptrdiff_t;
    using pointer = const LeakRecord*;
    using reference = const LeakRecord&;

    const_iterator() = default;
    reference operator*() const { return (**file_)[index_]; }
    pointer operator->() const { return &**this; }
    const_iterator& operator++() {
      if (++index_ == (*file_)->size()) {
        ++file_;
        index_ = 0;
        skip_empty_files();
      }
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator before = *this;
      ++*this;
      return before;
    }
    bool operator==(const const_iterator&) const = default;

   private:
    friend class LeakList;
    const_iterator(Files::const_iterator file, Files::const_iterator end) : file_(file), end_(end) {
      skip_empty_files();
    }
    void skip_empty_files() {
      while (file_ != end_ && (*file_)->empty()) ++file_;
    }
    Files::const_iterator file_, end_;
    size_t index_ = 0;
  };
  const_iterator begin() const {
    return files_ ? const_iterator(files_->begin(), files_->end()) : const_iterator();
  }
  const_iterator end() const {
    return files_ ? const_iterator(files_->end(), files_->end()) : const_iterator();
  }

 private:
  std::shared_ptr<const Files> files_;
  uint64_t count_ = 0;
};

// A segment the collector would not use, and why.
// Why a well-formed segment was not believed (SegmentProblem::rejected); docs/security.md.
inline constexpr const char* kRejectedWrongOwner = "wrong_owner";     // owner is not its user
inline constexpr const char* kRejectedNotHeld = "not_held";           // process does not hold it
inline constexpr const char* kRejectedUnverifiable = "unverifiable";  // ended unseen, not ours
inline constexpr const char* kRejectedImpossible = "impossible";  // no such process could exist
// ProcessView::segment_check of a process in another PID namespace.
inline constexpr const char* kCheckOtherNamespace = "other_namespace";
inline constexpr const char* kRejectionReasons[] = {kRejectedWrongOwner, kRejectedNotHeld,
                                                    kRejectedUnverifiable, kRejectedImpossible};

struct SegmentProblem {
  std::string path;
  std::string error;
  std::string rejected;  // "" for a file that failed validation, else a kRejected* reason
  // Leak records are at stake: a leak file that cannot be read, or a dead process's leak report
  // that cannot be saved yet. `ttmem leaks` shows these, so "no leaks" is never said over them.
  bool leaks = false;
};

struct TagUsage {
  std::string tag;
  std::array<uint64_t, kNumKinds> reserved{};
  uint64_t buffers = 0;
};

struct Snapshot {
  uint64_t taken_realtime_ns = 0;
  uint64_t taken_monotonic_ns = 0;
  std::string segment_dir;
  bool segment_dir_missing = false;  // nothing has been tracked with segment_dir yet
  std::vector<DeviceView> devices;  // sorted by first logical id, then chip id
  std::vector<ProcessView> processes;
  std::vector<BufferView> buffers;  // live buffers and CBs of live processes
  std::vector<TagUsage> tags;       // sorted by total reserved, descending
  LeakList leaks;
  std::vector<SegmentProblem> problems;
  uint64_t dropped_events = 0;
};

}  // namespace ttmem::collector
