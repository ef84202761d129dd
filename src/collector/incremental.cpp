#include "collector/incremental.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <memory>
#include <utility>

#include "collector/device_figures.h"
#include "collector/json.h"

namespace ttmem::collector {

namespace pr = protocol;

namespace {

constexpr uint32_t kCb = uint32_t(Kind::Cb);
constexpr uint32_t kL1 = uint32_t(Kind::L1);
// A piece past the region's end: never a gap, never merged with its neighbour.
constexpr uint32_t kRegionEnd = UINT32_MAX;

}  // namespace

// ---------------------------------------------------------------------------------------------
// BankSpace

BankSpace::BankSpace(uint64_t region_begin, uint64_t region_end)
    : begin_(region_begin), end_(region_end) {
  if (end_ <= begin_) return;
  pieces_.emplace(begin_, 0);
  pieces_.emplace(end_, kRegionEnd);
  gaps_.insert(end_ - begin_);
  free_bytes_ = end_ - begin_;
}

void BankSpace::count_gaps(Pieces::iterator first, Pieces::iterator last, int sign) {
  for (auto it = first; it != last; ++it) {
    if (it->second != 0) continue;
    const uint64_t length = std::next(it)->first - it->first;
    if (sign > 0) {
      gaps_.insert(length);
      free_bytes_ += length;
    } else {
      gaps_.erase(gaps_.find(length));
      free_bytes_ -= length;
    }
  }
}

void BankSpace::split_at(uint64_t address) {
  auto at = pieces_.lower_bound(address);
  if (at != pieces_.end() && at->first == address) return;
  pieces_.emplace_hint(at, address, std::prev(at)->second);
}

void BankSpace::merge_at(uint64_t address) {
  auto at = pieces_.find(address);
  if (at == pieces_.begin() || at->second == kRegionEnd) return;
  if (std::prev(at)->second == at->second) pieces_.erase(at);
}

void BankSpace::change(AddressRange r, int delta) {
  if (overflowed_) overflowed_free_space_known_ = false;
  if (end_ <= begin_ || overflowed_) return;
  const uint64_t b = std::max(r.begin, begin_), e = std::min(r.end, end_);
  if (e <= b) return;
  size_t spanned = 0;
  for (auto it = pieces_.lower_bound(b); it->first < e && spanned <= kMaxSpannedPieces; ++it) {
    ++spanned;
  }
  if (spanned > kMaxSpannedPieces) {
    overflowed_ = true;
    pieces_.clear();
    gaps_.clear();
    return;
  }
  // The pieces whose gaps can change: from the one before the piece holding b (b's piece may
  // merge into it) to the piece holding e (the piece from e on may merge back into it).
  auto first = std::prev(pieces_.upper_bound(b));
  if (first != pieces_.begin()) --first;
  const uint64_t first_key = first->first;
  count_gaps(first, pieces_.upper_bound(e), -1);
  split_at(b);
  split_at(e);
  for (auto it = pieces_.find(b); it->first < e; ++it) it->second += uint32_t(delta);
  merge_at(b);
  merge_at(e);
  count_gaps(pieces_.find(first_key), pieces_.upper_bound(e), +1);
}

// ---------------------------------------------------------------------------------------------
// IncrementalFold

namespace {

struct KindSums {
  uint64_t count = 0;
  uint64_t requested = 0;
  uint64_t reserved = 0;
};

}  // namespace

struct IncrementalFold::Live {
  pr::BufferRecord record;
  uint64_t reserved;
  uint64_t chip_id;
  int tag;            // index into tags_
  bool hole = false;  // in a LiveSet: a freed place, for the next insert
};

// A process's live buffers (CBs excluded) by device and buffer id: the records in one array and
// an open-addressing index of their positions (linear probing, at most half full). Applying an
// event at a million live buffers is mostly waiting for memory: a lookup here touches one index
// slot and the record, where a node-based map touched a bucket, a node or two and the chain.
//
// A freed record leaves a hole that the next insert fills: moving the last record into it
// instead cost two more index lookups per free, each a likely miss.
class IncrementalFold::LiveSet {
 public:
  // Visits the records, skipping holes.
  class const_iterator {
   public:
    using Base = std::vector<Live>::const_iterator;
    const_iterator(Base at, Base end) : at_(at), end_(end) { skip_holes(); }
    const Live& operator*() const { return *at_; }
    const_iterator& operator++() {
      ++at_;
      skip_holes();
      return *this;
    }
    bool operator!=(const const_iterator& other) const { return at_ != other.at_; }

   private:
    void skip_holes() {
      while (at_ != end_ && at_->hole) ++at_;
    }
    Base at_, end_;
  };

  size_t size() const { return records_.size() - holes_.size(); }
  void reserve(size_t n) {
    records_.reserve(n);
    if (2 * n > slots_.size()) rehash(2 * n);
  }
  const_iterator begin() const { return {records_.begin(), records_.end()}; }
  const_iterator end() const { return {records_.end(), records_.end()}; }

  // Starts loading what find() will read first (its home slot), or second (the record).
  void prefetch_slot(uint32_t device, uint64_t id) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash(device, id) & mask()]);
  }
  void prefetch_record(uint32_t device, uint64_t id) const {
    if (slots_.empty()) return;
    const uint64_t key = key_of(device, id);
    for (size_t i = size_t(key >> 32) & mask(); slots_[i] != 0; i = (i + 1) & mask()) {
      if ((slots_[i] & ~kIndexMask) == key) {
        __builtin_prefetch(&records_[index_of(slots_[i])]);
        return;
      }
    }
  }

  Live* find(uint32_t device, uint64_t id) {
    if (slots_.empty()) return nullptr;
    const uint64_t key = key_of(device, id);
    for (size_t i = size_t(key >> 32) & mask(); slots_[i] != 0; i = (i + 1) & mask()) {
      if ((slots_[i] & ~kIndexMask) != key) continue;
      Live& live = records_[index_of(slots_[i])];
      if (live.record.device == device && live.record.buffer_id == id) return &live;
    }
    return nullptr;
  }
  // The record of `live`'s buffer: found (second false) or added as `live` (second true);
  // {nullptr, false} when the set holds as many records as a slot can index (only events no
  // client wrote make that many: a slab holds at most kMaxSlabCapacity).
  std::pair<Live*, bool> insert(const Live& live) {
    if (Live* known = find(live.record.device, live.record.buffer_id)) return {known, false};
    if (holes_.empty() && records_.size() >= kMaxRecords) return {nullptr, false};
    if (2 * (size() + 1) > slots_.size()) rehash(std::max<size_t>(64, 2 * slots_.size()));
    size_t index = records_.size();
    if (holes_.empty()) {
      records_.push_back(live);
    } else {
      index = holes_.back();  // the most recently freed: likely still in cache
      holes_.pop_back();
      records_[index] = live;
    }
    place(index);
    return {&records_[index], true};
  }
  // Removes a record find() or insert() returned, leaving a hole.
  void erase(const Live* live) {
    const size_t index = size_t(live - records_.data());
    unplace(index);
    records_[index].hole = true;
    holes_.push_back(uint32_t(index));
    // Mostly holes (a process freed most of what it held): packed again, so that visiting the
    // records costs what is live.
    if (holes_.size() > 1024 && 2 * holes_.size() > records_.size()) pack();
  }

 private:
  // A slot: the id's hash (its home slot), the device, and the record's index + 1 (0: empty).
  // Hash and device together tell records apart without reading them: a mesh op's copies share
  // an index line, and comparing records whose hash alone matched cost a cache miss each.
  static constexpr int kIndexBits = 25;
  static constexpr uint64_t kIndexMask = (uint64_t{1} << kIndexBits) - 1;
  static constexpr size_t kMaxRecords = kIndexMask - 1;  // index + 1 must fit
  static_assert(pr::kMaxSlabCapacity <= kMaxRecords);
  static_assert(pr::kMaxDevices <= (uint64_t{1} << (32 - kIndexBits)));

  // On one device, ids in runs of eight share a cache line of the index: buffers are numbered
  // from one counter per process and freed soon after, and a refresh applies one device's
  // events together, so its churn touches a few lines, not one per event. The runs are spread
  // by the murmur3 finaliser (ids are often dense), and the low id bits pick the place within
  // the run's line. The device is hashed too: a mesh buffer keeps one id on every chip, and
  // with the id alone its copies on 32 chips, and those of its run's neighbours, made one
  // cluster of 256 slots that every insert, find and erase among them walked.
  static uint32_t hash(uint32_t device, uint64_t id) {
    uint64_t h = ((id >> 3) ^ (uint64_t(device) << 56)) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return uint32_t((h << 3) | (id & 7));
  }
  // A slot's bits but the index.
  static uint64_t key_of(uint32_t device, uint64_t id) {
    return (uint64_t(hash(device, id)) << 32) | (uint64_t(device) << kIndexBits);
  }
  static size_t index_of(uint64_t slot) { return size_t(slot & kIndexMask) - 1; }
  size_t mask() const { return slots_.size() - 1; }
  void place(size_t index) {
    const Live& live = records_[index];
    const uint64_t key = key_of(live.record.device, live.record.buffer_id);
    size_t i = size_t(key >> 32) & mask();
    while (slots_[i] != 0) i = (i + 1) & mask();
    slots_[i] = key | uint64_t(index + 1);
  }
  // Empties the slot of record `index`, shifting later slots of its run back so that every
  // record stays reachable from its home slot.
  void unplace(size_t index) {
    const Live& live = records_[index];
    size_t i = hash(live.record.device, live.record.buffer_id) & mask();
    while ((slots_[i] & kIndexMask) != index + 1) i = (i + 1) & mask();
    for (size_t j = (i + 1) & mask(); slots_[j] != 0; j = (j + 1) & mask()) {
      const size_t home = size_t(slots_[j] >> 32) & mask();
      // Slot j may move to the hole at i unless its home lies cyclically in (i, j].
      const bool home_after_hole = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (home_after_hole) continue;
      slots_[i] = slots_[j];
      i = j;
    }
    slots_[i] = 0;
  }
  void rehash(size_t want) {
    size_t n = 64;
    while (n < want) n *= 2;
    slots_.assign(n, 0);
    for (size_t r = 0; r < records_.size(); ++r) {
      if (!records_[r].hole) place(r);
    }
  }
  void pack() {
    std::erase_if(records_, [](const Live& live) { return live.hole; });
    holes_.clear();
    rehash(2 * records_.size());
  }

  std::vector<Live> records_;
  std::vector<uint64_t> slots_;
  std::vector<uint32_t> holes_;  // indexes into records_
};

// What a process's CB records add to a snapshot, per chip and per tag and chip: kept until the
// records change (CB sets change when programs are made or destroyed, not per op), where
// remaking them from a Galaxy host's ten thousand CB records was a fifth of every refresh.
struct IncrementalFold::CbFigures {
  struct Part {
    uint64_t records = 0;
    uint64_t programs = 0;  // distinct programs (on a chip; unused per tag)
    CbCoverage coverage;
    // coverage.region(base), kept for the base it was worked out for.
    const CbRegion& region(uint64_t base) const {
      if (base != region_base) {
        cached_region = coverage.region(base);
        region_base = base;
      }
      return cached_region;
    }
    mutable uint64_t region_base = UINT64_MAX;
    mutable CbRegion cached_region;
  };
  std::map<uint64_t, Part> chips;                  // by chip id
  std::map<std::pair<int, uint64_t>, Part> tags;  // by tag index and chip id
  uint64_t records = 0;   // over all chips
  uint64_t programs = 0;  // over all chips
  // The L1 all chips' CB sets cover, for the regions of the snapshot whose chip bases carried
  // `covered_bases` (IncrementalFold::bases_generation_): summing it chip by chip again at every
  // snapshot walked 32 map nodes per process.
  mutable uint64_t covered = 0;
  mutable uint64_t covered_bases = 0;  // 0: not worked out
};

IncrementalFold::CbFigures IncrementalFold::cb_figures_of(const std::vector<Live>& cbs) {
  CbFigures f;
  std::set<std::pair<uint64_t, uint64_t>> programs;  // chip id, program id
  for (const Live& live : cbs) {
    const pr::BufferRecord& rec = live.record;
    CbFigures::Part& chip = f.chips[live.chip_id];
    chip.records += 1;
    chip.coverage.add(core_rect_of(rec.aux), rec.address + rec.size);
    if (programs.emplace(live.chip_id, rec.buffer_id).second) {
      chip.programs += 1;
      f.programs += 1;
    }
    f.records += 1;
    CbFigures::Part& tag = f.tags[{live.tag, live.chip_id}];
    tag.records += 1;
    tag.coverage.add(core_rect_of(rec.aux), rec.address + rec.size);
  }
  return f;
}

// Every process's CB figures of a snapshot merged per chip and per tag and chip. Merging 56
// processes' coverage of 32 chips at every refresh was a sixth of `ttmem top`'s refresh at a
// million buffers, and CB sets change when programs are made or destroyed, not per op.
struct IncrementalFold::CbTotals {
  uint64_t generation = 0;  // cb_generation_ when made
  std::vector<Process*> members;
  std::unordered_map<uint64_t, CbFigures::Part> chips;              // by chip id
  std::map<std::pair<int, uint64_t>, CbFigures::Part> tags;  // by tag index and chip id
};

struct IncrementalFold::Process {
  LiveSet buffers;        // CBs excluded
  std::vector<Live> cbs;  // a few hundred: programs x CBs x core ranges
  std::optional<CbFigures> cb_figures;  // of `cbs`; reset whenever they change
  // The device slots its records were folded with: a device registered again with another
  // chip or geometry needs its records folded again (a full read).
  std::array<std::optional<pr::DeviceSlot>, pr::kMaxDevices> devices;
  // Per device, the SegmentState::device_marks of the slot device_for_events() last found to
  // agree with `devices` (0: none), so an unchanged slot is not compared again at every batch.
  std::array<uint64_t, pr::kMaxDevices> device_marks{};
  struct TagId {
    int index = -1;
    std::string text;
  };
  std::vector<TagId> tag_ids;
  std::array<uint64_t, kNumKinds> reserved{};
  std::array<uint64_t, kNumKinds> requested{};
  uint64_t buffer_count = 0;
  // Whose buffers these are, as the last snapshot() named the process (for list_buffers()).
  ProcessView identity;
  bool in_snapshot = false;
};

struct IncrementalFold::Chip {
  std::array<KindSums, kNumKinds> kinds{};
  std::array<BankSpace, kNumKinds> banks;
  std::array<bool, kNumKinds> region_set{};
  std::map<uint64_t, uint32_t> l1_starts;  // L1 buffer start -> buffers starting there
};

struct IncrementalFold::Tag {
  std::string name;
  std::array<uint64_t, kNumKinds> reserved{};  // CBs excluded
  uint64_t buffers = 0;                        // CBs excluded
};

IncrementalFold::IncrementalFold() = default;
IncrementalFold::~IncrementalFold() = default;

bool IncrementalFold::has_process(const std::string& key) const {
  return processes_.count(key) != 0;
}

uint64_t IncrementalFold::live_records() const {
  uint64_t n = 0;
  for (const auto& [key, p] : processes_) n += p->buffers.size() + p->cbs.size();
  return n;
}

IncrementalFold::Chip& IncrementalFold::chip(uint64_t chip_id) {
  auto& c = chips_[chip_id];
  if (!c) c = std::make_unique<Chip>();
  return *c;
}

int IncrementalFold::tag_index(Process& p, uint32_t id, const TagText& tags) {
  if (id >= p.tag_ids.size()) p.tag_ids.resize(size_t(id) + 1);
  Process::TagId& known = p.tag_ids[id];
  if (known.index < 0) {
    known.text = tags(id);
    const std::string name = known.text.empty() ? "(untagged)" : known.text;
    auto [it, fresh] = tag_by_name_.emplace(name, tags_.size());
    if (fresh) tags_.push_back(Tag{name, {}, 0});
    known.index = int(it->second);
  }
  return known.index;
}

bool IncrementalFold::add(Process& p, const pr::BufferRecord& rec, const pr::DeviceSlot& slot,
                          const TagText& tags) {
  const Live live{rec, reserved_bytes(rec, slot), slot.chip_id, tag_index(p, rec.tag, tags)};
  if (rec.kind == kCb) {
    p.cbs.push_back(live);
    cbs_changed(p);
    return true;
  }
  // One lookup per record: at a million live buffers each is a cache miss or two, the largest
  // part of applying an event. A buffer id seen again replaces the record it had.
  auto [at, fresh] = p.buffers.insert(live);
  if (at == nullptr) return false;
  if (!fresh) {
    remove(p, *at);
    *at = live;
  }
  Chip& c = chip(slot.chip_id);
  KindSums& sums = c.kinds[rec.kind];
  sums.count += 1;
  sums.requested += rec.size;
  sums.reserved += live.reserved;
  if (has_bank_map(rec.kind)) {
    if (!c.region_set[rec.kind]) {
      const pr::KindGeometry& g = slot.kinds[rec.kind];
      c.banks[rec.kind] = BankSpace(g.bank_base, g.bank_base + g.bank_size);
      c.region_set[rec.kind] = true;
    }
    c.banks[rec.kind].add({rec.address, rec.address + rec.size_per_bank});
  }
  if (rec.kind == kL1) c.l1_starts[rec.address] += 1;
  p.reserved[rec.kind] += live.reserved;
  p.requested[rec.kind] += rec.size;
  p.buffer_count += 1;
  Tag& tag = tags_[size_t(live.tag)];
  tag.reserved[rec.kind] += live.reserved;
  tag.buffers += 1;
  return true;
}

void IncrementalFold::remove(Process& p, const Live& live) {
  const pr::BufferRecord& rec = live.record;
  Chip& c = chip(live.chip_id);
  KindSums& sums = c.kinds[rec.kind];
  sums.count -= 1;
  sums.requested -= rec.size;
  sums.reserved -= live.reserved;
  if (has_bank_map(rec.kind)) {
    BankSpace& bank = c.banks[rec.kind];
    bank.remove({rec.address, rec.address + rec.size_per_bank});
    // The last range gone: a fresh structure, so one that gave up starts over.
    if (sums.count == 0) bank = BankSpace(bank.region_begin(), bank.region_end());
  }
  if (rec.kind == kL1) {
    auto it = c.l1_starts.find(rec.address);
    if (--it->second == 0) c.l1_starts.erase(it);
  }
  p.reserved[rec.kind] -= live.reserved;
  p.requested[rec.kind] -= rec.size;
  p.buffer_count -= 1;
  Tag& tag = tags_[size_t(live.tag)];
  tag.reserved[rec.kind] -= live.reserved;
  tag.buffers -= 1;
}

void IncrementalFold::remove_process(const std::string& key) {
  auto it = processes_.find(key);
  if (it == processes_.end()) return;
  Process& p = *it->second;
  for (const Live& live : p.buffers) remove(p, live);
  cbs_changed(p);  // a new Process may take its address
  processes_.erase(it);
}

void IncrementalFold::cbs_changed(Process& p) {
  p.cb_figures.reset();
  ++cb_generation_;
}

const IncrementalFold::CbTotals& IncrementalFold::cb_totals(const std::vector<Process*>& members) {
  if (cb_totals_ && cb_totals_->generation == cb_generation_ && cb_totals_->members == members) {
    return *cb_totals_;
  }
  auto totals = std::make_unique<CbTotals>();
  totals->generation = cb_generation_;
  totals->members = members;
  for (Process* proc : members) {
    if (!proc->cb_figures) proc->cb_figures = cb_figures_of(proc->cbs);
    for (const auto& [chip_id, chip] : proc->cb_figures->chips) {
      CbFigures::Part& part = totals->chips[chip_id];
      part.records += chip.records;
      part.programs += chip.programs;
      part.coverage.merge(chip.coverage);
    }
    for (const auto& [tag_and_chip, tag] : proc->cb_figures->tags) {
      CbFigures::Part& part = totals->tags[tag_and_chip];
      part.records += tag.records;
      part.coverage.merge(tag.coverage);
    }
  }
  cb_totals_ = std::move(totals);
  return *cb_totals_;
}

void IncrementalFold::forget_all_but(const std::set<std::string>& keys) {
  std::vector<std::string> gone;
  for (const auto& [key, p] : processes_) {
    if (!keys.count(key)) gone.push_back(key);
  }
  for (const std::string& key : gone) remove_process(key);
}

void IncrementalFold::start_process(const std::string& key, const SegmentState& state) {
  remove_process(key);
  auto& slot = processes_[key];
  slot = std::make_unique<Process>();
  slot->devices = state.devices;
  // Room for what the counters say is live, so the live set is not regrown (and left up to
  // twice its size) as the scan adds records. The counters are not trusted beyond the slots.
  uint64_t live = 0;
  for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
    if (!state.devices[d]) continue;
    for (uint32_t k = 0; k < kNumKinds; ++k) {
      if (k != kCb) live += std::min<uint64_t>(state.counters[d][k].live_count, state.record_slots);
    }
  }
  slot->buffers.reserve(size_t(std::min<uint64_t>(live + live / 64 + 16, state.record_slots)));
}

void IncrementalFold::add_read(const std::string& key, const SegmentState& state,
                               const pr::BufferRecord& rec, const TagText& tags) {
  Process& p = *processes_.at(key);
  // A scan that is not atomic can meet a buffer twice (freed from one slot and allocated
  // again in another while it ran): the later one stands (add() replaces it), and events put
  // it right.
  // A device the scan found registered after the read (SegmentReader reads its slot then).
  if (!p.devices[rec.device]) p.devices[rec.device] = state.devices[rec.device];
  add(p, rec, *state.devices[rec.device], tags);  // never full: a slab holds fewer records
}

void IncrementalFold::reset_process(const std::string& key, const SegmentState& state,
                                    const std::vector<pr::BufferRecord>& records,
                                    const TagText& tags) {
  start_process(key, state);
  processes_.at(key)->buffers.reserve(records.size());
  for (const pr::BufferRecord& rec : records) add_read(key, state, rec, tags);
}

namespace {

bool same_device(const pr::DeviceSlot& a, const pr::DeviceSlot& b) {
  return a.chip_id == b.chip_id && std::memcmp(a.kinds, b.kinds, sizeof a.kinds) == 0;
}

}  // namespace

bool IncrementalFold::apply(const std::string& key, const SegmentState& state, uint32_t device,
                            const pr::EventRecord& ev, const TagText& tags) {
  auto found = processes_.find(key);
  return found != processes_.end() && apply_to(*found->second, state, device, ev, tags);
}

bool IncrementalFold::apply_all(const std::string& key, const SegmentState& state,
                                const std::vector<DeviceEvent>& events, const TagText& tags) {
  auto found = processes_.find(key);
  if (found == processes_.end()) return false;
  Process& p = *found->second;
  // At a million live buffers nearly every lookup misses the cache. Asked for ahead, the
  // misses of a batch overlap instead of following one another: the index slot of the event
  // kSlotAhead on, and the record of a free kRecordAhead on, whose slot is on its way by then.
  // A window rather than the whole batch up front: the lines are still in L1 when used, and
  // the misses in flight stay within what a core can track.
  constexpr size_t kSlotAhead = 16, kRecordAhead = 8;
  auto prefetch_slot = [&](size_t i) {
    if (i < events.size()) p.buffers.prefetch_slot(events[i].first, events[i].second.buffer_id);
  };
  auto prefetch_record = [&](size_t i) {
    if (i < events.size() && events[i].second.type == uint8_t(pr::EventType::Free)) {
      p.buffers.prefetch_record(events[i].first, events[i].second.buffer_id);
    }
  };
  for (size_t i = 0; i < kSlotAhead; ++i) prefetch_slot(i);
  for (size_t i = 0; i < kRecordAhead; ++i) prefetch_record(i);
  // Each device's slot checked once per batch, not per event.
  std::array<const pr::DeviceSlot*, pr::kMaxDevices> slots{};
  for (size_t i = 0; i < events.size(); ++i) {
    prefetch_slot(i + kSlotAhead);
    prefetch_record(i + kRecordAhead);
    const auto& [device, ev] = events[i];
    if (device >= pr::kMaxDevices) return false;
    const pr::DeviceSlot*& slot = slots[device];
    if (slot == nullptr && (slot = device_for_events(p, state, device)) == nullptr) return false;
    if (!apply_event(p, *slot, device, ev, tags)) return false;
  }
  return true;
}

const pr::DeviceSlot* IncrementalFold::device_for_events(Process& p, const SegmentState& state,
                                                         uint32_t device) {
  if (device >= pr::kMaxDevices || !state.devices[device]) return nullptr;
  const pr::DeviceSlot& slot = *state.devices[device];
  // The very slot checked at an earlier batch: the reader has not put another there since.
  const uint64_t mark = state.device_marks[device];
  if (mark != 0 && p.device_marks[device] == mark) return &slot;
  std::optional<pr::DeviceSlot>& known = p.devices[device];
  if (known && !same_device(*known, slot)) return nullptr;
  // Copied (512 bytes) only when written again since: its sequence moved.
  if (!known || known->seq != slot.seq) known = slot;
  p.device_marks[device] = mark;
  return &slot;
}

bool IncrementalFold::apply_to(Process& p, const SegmentState& state, uint32_t device,
                               const pr::EventRecord& ev, const TagText& tags) {
  const pr::DeviceSlot* slot = device_for_events(p, state, device);
  return slot != nullptr && apply_event(p, *slot, device, ev, tags);
}

bool IncrementalFold::apply_event(Process& p, const pr::DeviceSlot& slot, uint32_t device,
                                  const pr::EventRecord& ev, const TagText& tags) {
  const bool cb = ev.kind == kCb;
  auto erase_cbs = [&](auto&& which) {
    if (std::erase_if(p.cbs, [&](const Live& l) { return l.record.device == device && which(l); })) {
      cbs_changed(p);
    }
  };
  switch (pr::EventType(ev.type)) {
    case pr::EventType::Alloc:
    case pr::EventType::CbAlloc: {
      // As SegmentReader checks a record: a kind, a tag the table can hold, a range that does
      // not wrap. An event type that disagrees with its kind is not the client's.
      if (ev.kind >= kNumKinds || cb != (ev.type == uint8_t(pr::EventType::CbAlloc)) ||
          ev.tag >= pr::kStringCapacity || ev.address > UINT64_MAX - ev.size_per_bank) {
        return false;
      }
      const pr::BufferRecord rec = pr::record_of(device, ev);
      if (cb) {
        erase_cbs([&](const Live& l) {
          return l.record.buffer_id == rec.buffer_id && l.record.address == rec.address &&
                 l.record.aux == rec.aux && l.record.size == rec.size;
        });
      }
      return add(p, rec, slot, tags);  // replaces a buffer of the same id
    }
    case pr::EventType::Free: {
      if (const Live* old = p.buffers.find(device, ev.buffer_id)) {
        remove(p, *old);
        p.buffers.erase(old);
      }
      return true;
    }
    case pr::EventType::CbFreeProgram:
      erase_cbs([&](const Live& l) { return l.record.buffer_id == ev.buffer_id; });
      return true;
    case pr::EventType::CbFreeAll:
      erase_cbs([](const Live&) { return true; });
      return true;
  }
  return false;
}

void IncrementalFold::align_regions(uint64_t chip_id, const DeviceView& view) {
  auto found = chips_.find(chip_id);
  if (found == chips_.end()) return;
  Chip& c = *found->second;
  for (uint32_t k = 0; k < kNumKinds; ++k) {
    if (!has_bank_map(k) || !c.region_set[k]) continue;
    const KindUsage& ku = view.kinds[k];
    BankSpace& bank = c.banks[k];
    if (bank.region_begin() == ku.bank_base && bank.region_end() == ku.bank_base + ku.bank_size) {
      continue;
    }
    // Processes registered the chip with different geometry, and the one the snapshot takes
    // it from changed: its ranges are laid out again over that region.
    bank = BankSpace(ku.bank_base, ku.bank_base + ku.bank_size);
    for (const auto& [key, p] : processes_) {
      for (const Live& live : p->buffers) {
        if (live.chip_id == chip_id && live.record.kind == k) {
          bank.add({live.record.address, live.record.address + live.record.size_per_bank});
        }
      }
    }
  }
}


Snapshot IncrementalFold::snapshot(const std::vector<IncrementalInput>& processes,
                                   bool list_buffers, CbPeaks* cb_peaks) {
  Snapshot s;
  std::unordered_map<uint64_t, size_t> device_index;  // chip id -> index in s.devices
  std::vector<TagUsage> tags(tags_.size());
  for (size_t i = 0; i < tags_.size(); ++i) {
    tags[i] = TagUsage{tags_[i].name, tags_[i].reserved, tags_[i].buffers};
  }
  auto model_device = [&](const pr::DeviceSlot& slot, uint32_t logical_id) {
    auto [it, inserted] = device_index.try_emplace(slot.chip_id, s.devices.size());
    if (inserted) s.devices.push_back(device_view_of(slot));
    DeviceView& v = s.devices[it->second];
    if (std::find(v.logical_ids.begin(), v.logical_ids.end(), logical_id) ==
        v.logical_ids.end()) {
      v.logical_ids.push_back(logical_id);
    }
    return it->second;
  };
  if (list_buffers) s.buffers.reserve(live_records());
  for (auto& [key, proc] : processes_) proc->in_snapshot = false;
  std::vector<Process*> members;
  members.reserve(processes.size());
  for (const IncrementalInput& in : processes) members.push_back(processes_.at(in.key).get());
  const CbTotals& cb_totals = this->cb_totals(members);
  // Every chip first, so the region bases are known before any process's CB figures use them.
  for (const IncrementalInput& in : processes) {
    for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
      if (in.state->devices[d]) model_device(*in.state->devices[d], d);
    }
  }
  std::vector<std::pair<uint64_t, uint64_t>> bases;
  bases.reserve(s.devices.size());
  for (const DeviceView& v : s.devices) bases.emplace_back(v.chip_id, v.unreserved_base);
  if (bases != last_bases_) {
    last_bases_ = std::move(bases);
    ++bases_generation_;
  }
  // A chip's CB count and programs: every process's, summed once per CB change.
  for (const auto& [chip_id, chip] : cb_totals.chips) {
    DeviceView& v = s.devices[device_index.at(chip_id)];
    v.kinds[kCb].count += chip.records;
    v.cb_programs += chip.programs;
  }

  for (size_t i = 0; i < processes.size(); ++i) {
    const IncrementalInput& in = processes[i];
    const SegmentState& st = *in.state;
    Process& proc = *members[i];
    ProcessView p = in.identity;
    proc.identity.pid = p.pid;
    proc.identity.start_time = p.start_time;
    proc.in_snapshot = true;
    p.buffers = proc.buffer_count;
    p.reserved = proc.reserved;
    p.requested = proc.requested;
    // CB sets: what SnapshotFold::add and end_process do with them, from the process's CB
    // figures (made by cb_totals(), remade only when its CB records changed).
    const CbFigures& cbs = *proc.cb_figures;
    if (cbs.covered_bases != bases_generation_) {
      cbs.covered = 0;
      for (const auto& [chip_id, chip] : cbs.chips) {
        cbs.covered +=
            chip.region(s.devices[device_index.at(chip_id)].unreserved_base).covered_bytes;
      }
      cbs.covered_bases = bases_generation_;
    }
    p.cbs += cbs.records;
    p.cb_programs += cbs.programs;
    p.reserved[kCb] += cbs.covered;
    p.requested[kCb] += cbs.covered;
    p.torn_records = st.torn_records;
    p.corrupt_records = st.corrupt_records;
    for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
      if (!st.devices[d]) continue;
      const uint64_t chip_id = st.devices[d]->chip_id;
      add_device_counters(s.devices[device_index.at(chip_id)], p, chip_id, st.counters[d],
                          in.dropped_events[d]);
    }
    s.dropped_events += p.dropped_events;
    if (list_buffers) list_process_buffers(proc, &s.buffers);
    s.processes.push_back(std::move(p));
  }

  for (const auto& [tag_and_chip, part] : cb_totals.tags) {
    TagUsage& tag = tags[size_t(tag_and_chip.first)];
    tag.buffers += part.records;
    const uint64_t base = s.devices[device_index.at(tag_and_chip.second)].unreserved_base;
    tag.reserved[kCb] += part.region(base).covered_bytes;
  }
  for (TagUsage& t : tags) {
    if (t.buffers != 0) s.tags.push_back(std::move(t));
  }
  for (const DeviceView& v : s.devices) align_regions(v.chip_id, v);
  // Banks whose structure gave up and changed since: their ranges, gathered in one pass over
  // the live sets.
  std::map<std::pair<uint64_t, uint32_t>, std::vector<AddressRange>> overflowed;
  for (const auto& [chip_id, c] : chips_) {
    for (uint32_t k = 0; k < kNumKinds; ++k) {
      if (c->region_set[k] && c->banks[k].needs_ranges()) overflowed[{chip_id, k}];
    }
  }
  if (!overflowed.empty()) {
    for (const auto& [key, p] : processes_) {
      for (const Live& live : p->buffers) {
        auto bank = overflowed.find({live.chip_id, uint32_t(live.record.kind)});
        if (bank == overflowed.end()) continue;
        bank->second.push_back(
            {live.record.address, live.record.address + live.record.size_per_bank});
      }
    }
  }
  for (size_t i = 0; i < s.devices.size(); ++i) {
    DeviceView& v = s.devices[i];
    const auto found = chips_.find(v.chip_id);
    Chip* c = found == chips_.end() ? nullptr : found->second.get();
    for (uint32_t k = 0; k < kNumKinds; ++k) {
      if (k == kCb || c == nullptr) continue;
      v.kinds[k].count += c->kinds[k].count;
      v.kinds[k].requested += c->kinds[k].requested;
      v.kinds[k].reserved += c->kinds[k].reserved;
    }
    if (c != nullptr && !c->l1_starts.empty()) {
      v.has_l1_buffers = true;
      v.lowest_l1_address = c->l1_starts.begin()->first;
    }
    const auto cbs = cb_totals.chips.find(v.chip_id);
    const CbRegion cb_region = cbs == cb_totals.chips.end()
                                   ? CbRegion{0, v.unreserved_base}
                                   : cbs->second.region(v.unreserved_base);
    finish_device(v, cb_region, cb_peaks, [&](uint32_t k) {
      const KindUsage& ku = v.kinds[k];
      // A kind with no buffers on the chip: its whole region is free.
      if (c == nullptr || !c->region_set[k]) {
        return BankSpace(ku.bank_base, ku.bank_base + ku.bank_size).free_space();
      }
      BankSpace& bank = c->banks[k];
      if (bank.needs_ranges()) {
        bank.set_free_space(free_space(overflowed[{v.chip_id, k}], ku.bank_base,
                                       ku.bank_base + ku.bank_size));
      }
      return bank.free_space();
    });
  }
  sort_snapshot(s);
  return s;
}

void IncrementalFold::list_process_buffers(const Process& proc, std::vector<BufferView>* out) {
  auto view = [&](const Live& live) {
    // The slot its record was folded with (a device registered again as another chip or
    // geometry is read in full before it folds anything).
    fill_buffer_view(out->emplace_back(), proc.identity, live.record,
                     *proc.devices[live.record.device], proc.tag_ids[live.record.tag].text);
  };
  for (const Live& live : proc.buffers) view(live);
  for (const Live& live : proc.cbs) view(live);
}

std::vector<BufferView> IncrementalFold::list_buffers() const {
  std::vector<BufferView> out;
  out.reserve(live_records());
  for (const auto& [key, proc] : processes_) {
    if (proc->in_snapshot) list_process_buffers(*proc, &out);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

bool same_figures(const Snapshot& a, const Snapshot& b, std::string* difference) {
  auto figures = [](const Snapshot& s) {
    nlohmann::json j = status_json(s);
    for (const char* when : {"taken_realtime_ns", "taken_monotonic_ns"}) j.erase(when);
    nlohmann::json tags = nlohmann::json::array();
    for (const TagUsage& t : s.tags) tags.push_back(to_json(t));
    j["tags"] = tags;
    nlohmann::json totals = nlohmann::json::array();
    for (const ProcessView& p : s.processes) {
      for (const ProcessDeviceTotals& t : p.device_totals) {
        totals.push_back({p.pid, t.chip_id, t.allocs, t.frees, t.dropped_events});
      }
    }
    j["device_totals"] = totals;
    // Buffers in no particular order: a scan lists them in slab order, a live set in its own.
    std::vector<std::string> buffers;
    for (const BufferView& v : s.buffers) {
      nlohmann::json bj = to_json(v);
      bj["process_start_time"] = v.process_start_time;
      buffers.push_back(bj.dump());
    }
    std::sort(buffers.begin(), buffers.end());
    j["buffers"] = buffers;
    return j;
  };
  const nlohmann::json ja = figures(a), jb = figures(b);
  if (ja == jb) return true;
  if (difference != nullptr) {
    const nlohmann::json patch = nlohmann::json::diff(ja, jb);
    *difference = patch.dump().substr(0, 2000);
  }
  return false;
}

}  // namespace ttmem::collector
