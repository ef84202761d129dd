// Incremental collection: the fold's figures kept up to date from the event rings,
// so a long-lived collector's refresh costs what changed, not what is live.
//
// A process is read in full once (its records, with the ring heads taken before the slab scan);
// from then on each event of its device rings is applied to its live set and to the aggregates:
// per chip and kind the count and bytes, a per-bank free-space structure (BankSpace) updated per
// range, the L1 buffer starts for the clash margin; per tag and per process their sums. A gap (an
// event overwritten before it was read, or one that does not validate) sends the process back
// to a full read. CB figures (covered L1, CB region, per-program counts) are recomputed from the
// live CB records at each snapshot: CB sets change only when a program is created or destroyed,
// and a chip holds a few hundred of their records, not a million.
//
// IncrementalFold::snapshot() builds the same Snapshot fold_snapshot() would from the same
// records (tests/unit/incremental_test.cpp folds one state both ways and compares them).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "collector/address_map.h"
#include "collector/fold.h"
#include "collector/segment_reader.h"
#include "collector/snapshot.h"

namespace ttmem::collector {

// Free space of one bank's region as ranges come and go: what free_space() computes from all of
// them, kept per change. Coverage is held as pieces (a start address and how many ranges cover
// the piece up to the next start; neighbours always differ), and the lengths of the uncovered
// pieces in a multiset, so a range costs O(log n) plus the pieces it spans.
//
// Ranges of one allocator do not overlap, and a few processes' layouts on one chip overlap a
// few deep, so a range spans a handful of pieces. Ranges laid anywhere (a test's random
// addresses, a hostile segment) could make each span thousands: a change that would span more
// than kMaxSpannedPieces gives the structure up (overflowed(); the caller computes free space
// from the ranges instead, and hands it back with set_free_space() to keep until the next
// change) rather than cost O(n) per change.
class BankSpace {
 public:
  static constexpr size_t kMaxSpannedPieces = 64;

  BankSpace() = default;
  BankSpace(uint64_t region_begin, uint64_t region_end);

  // A range as free_space() takes it: clipped to the region. remove() takes back an earlier
  // add() of the same range. Once overflowed, both only forget the free space last set.
  void add(const AddressRange& r) { change(r, +1); }
  void remove(const AddressRange& r) { change(r, -1); }

  // Valid unless needs_ranges().
  FreeSpace free_space() const {
    if (overflowed_) return overflowed_free_space_;
    return {free_bytes_, gaps_.empty() ? 0 : *gaps_.rbegin()};
  }
  bool overflowed() const { return overflowed_; }
  // Overflowed, and changed since the caller last set its free space: a snapshot of a chip
  // whose buffers did not change then costs nothing, however many there are.
  bool needs_ranges() const { return overflowed_ && !overflowed_free_space_known_; }
  void set_free_space(const FreeSpace& computed) {
    overflowed_free_space_ = computed;
    overflowed_free_space_known_ = true;
  }
  uint64_t region_begin() const { return begin_; }
  uint64_t region_end() const { return end_; }

 private:
  using Pieces = std::map<uint64_t, uint32_t>;
  void change(AddressRange r, int delta);
  void split_at(uint64_t address);
  void merge_at(uint64_t address);
  // Adds (sign +1) or takes out (-1) the gaps among pieces [first, last).
  void count_gaps(Pieces::iterator first, Pieces::iterator last, int sign);

  uint64_t begin_ = 0, end_ = 0;
  Pieces pieces_;
  std::multiset<uint64_t> gaps_;
  uint64_t free_bytes_ = 0;
  bool overflowed_ = false;
  FreeSpace overflowed_free_space_{};
  bool overflowed_free_space_known_ = false;
};

// One process as IncrementalFold::snapshot() takes it: what the collect stage knows of it and
// its segment as last read (device slots and counters; records are the fold's own).
struct IncrementalInput {
  std::string key;  // the segment path: one live set per key
  ProcessView identity;
  const SegmentState* state = nullptr;
  TagText tags;
  std::array<uint64_t, protocol::kMaxDevices> dropped_events{};
};

class IncrementalFold {
 public:
  IncrementalFold();
  ~IncrementalFold();
  IncrementalFold(const IncrementalFold&) = delete;
  IncrementalFold& operator=(const IncrementalFold&) = delete;

  bool has_process(const std::string& key) const;
  // Replaces what is known of a process by `records` (a full read), its devices as in `state`.
  void reset_process(const std::string& key, const SegmentState& state,
                     const std::vector<protocol::BufferRecord>& records, const TagText& tags);
  // The same one record at a time, as a scan visits them in place: start_process(), then
  // add_read() for each record the full read found.
  void start_process(const std::string& key, const SegmentState& state);
  void add_read(const std::string& key, const SegmentState& state,
                const protocol::BufferRecord& record, const TagText& tags);
  // Applies one event of the process's ring for `device`. False, changing nothing, when the
  // event does not validate against `state` (as the full read validates records): the caller
  // reads the process again.
  bool apply(const std::string& key, const SegmentState& state, uint32_t device,
             const protocol::EventRecord& event, const TagText& tags);
  // The events of a refresh, in order, as apply() takes them one by one: false at the first
  // that does not validate (those before it stay applied; the caller reads the process again).
  // Faster than one by one: the batch's cache misses overlap.
  using DeviceEvent = std::pair<uint32_t, protocol::EventRecord>;
  bool apply_all(const std::string& key, const SegmentState& state,
                 const std::vector<DeviceEvent>& events, const TagText& tags);
  void remove_process(const std::string& key);
  // Forgets every process whose key is not in `keys` (their segments left the collector).
  void forget_all_but(const std::set<std::string>& keys);

  // The snapshot of these processes, in this order (their live sets must all be known), given
  // the CB peaks seen so far (updated): as fold_snapshot() of the same records.
  Snapshot snapshot(const std::vector<IncrementalInput>& processes, bool list_buffers,
                    CbPeaks* cb_peaks);

  uint64_t live_records() const;

  // The live buffers and CBs of the processes of the last snapshot(), as its Snapshot::buffers
  // would list them had it been asked to (in no particular order). For a collector that lists
  // buffers only when asked: building them costs the live set, a refresh costs what changed.
  std::vector<BufferView> list_buffers() const;

 private:
  struct Process;
  struct Chip;
  struct Tag;
  struct Live;
  class LiveSet;
  struct CbFigures;
  struct CbTotals;

  // False when the process's live set is full (see LiveSet::insert).
  bool add(Process& p, const protocol::BufferRecord& rec, const protocol::DeviceSlot& slot,
           const TagText& tags);
  // A process's CB records changed (or a process came or went): its figures and the totals are
  // made again at the next snapshot.
  void cbs_changed(Process& p);
  // The CB totals of `members` (a snapshot's processes, in order), made again only when some
  // CB records changed or the members are others.
  const CbTotals& cb_totals(const std::vector<Process*>& members);
  void remove(Process& p, const Live& live);
  int tag_index(Process& p, uint32_t id, const TagText& tags);
  Chip& chip(uint64_t chip_id);
  static void list_process_buffers(const Process& proc, std::vector<BufferView>* out);
  static CbFigures cb_figures_of(const std::vector<Live>& cbs);
  bool apply_to(Process& p, const SegmentState& state, uint32_t device,
                const protocol::EventRecord& event, const TagText& tags);
  // The slot of `device` in `state` once it agrees with the one the process's records were
  // folded with; nullptr when it does not (the caller reads the process again).
  static const protocol::DeviceSlot* device_for_events(Process& p, const SegmentState& state,
                                                       uint32_t device);
  // Applies an event of `device`, whose slot device_for_events() returned.
  bool apply_event(Process& p, const protocol::DeviceSlot& slot, uint32_t device,
                   const protocol::EventRecord& event, const TagText& tags);
  // Makes the free-space structures of a chip describe `view`'s bank regions, rebuilding one
  // from every process's ranges on the chip when its region changed.
  void align_regions(uint64_t chip_id, const DeviceView& view);

  std::unordered_map<std::string, std::unique_ptr<Process>> processes_;
  std::unordered_map<uint64_t, std::unique_ptr<Chip>> chips_;
  std::vector<Tag> tags_;
  std::unordered_map<std::string, size_t> tag_by_name_;
  uint64_t cb_generation_ = 0;  // advanced by cbs_changed()
  // The chips of the last snapshot and their unreserved bases (where CB regions start), and a
  // number advanced whenever they differ from the snapshot's before (never 0).
  std::vector<std::pair<uint64_t, uint64_t>> last_bases_;
  uint64_t bases_generation_ = 1;
  std::unique_ptr<CbTotals> cb_totals_;
};

// True when two snapshots hold the same figures: everything status_json() prints but the time
// they were taken. Otherwise *difference says where they first differ.
bool same_figures(const Snapshot& a, const Snapshot& b, std::string* difference);

}  // namespace ttmem::collector
