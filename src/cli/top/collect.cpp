#include "cli/top/collect.h"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <map>
#include <tuple>
#include <unordered_map>

#include "common/kinds.h"

namespace ttmem::top {

using collector::BufferView;
using collector::DeviceView;
using collector::kDetailCounters;
using collector::KindUsage;
using collector::ProcessView;
using collector::Snapshot;
using collector::sorts_before;
using collector::TagUsage;
using common::arch_name;

namespace {

bool shown(const std::vector<uint32_t>& wanted, const std::vector<uint32_t>& ids) {
  if (wanted.empty()) return true;
  return std::any_of(ids.begin(), ids.end(), [&](uint32_t id) {
    return std::find(wanted.begin(), wanted.end(), id) != wanted.end();
  });
}

DeviceRow device_row(const DeviceView& d, const History& history) {
  DeviceRow r;
  r.chip_id = d.chip_id;
  r.logical_ids = d.logical_ids;
  r.arch = std::string(arch_name(d.arch));
  r.board = d.board;
  if (d.tt_metal) {
    r.source_note = d.detail == kDetailCounters ? "tt-metal counters only, capacity unknown"
                                                : "+ tt-metal counters";
    if (d.tt_metal->totals_stale) r.source_note += " (stale totals)";
  }
  r.grid_x = d.grid_x;
  r.grid_y = d.grid_y;
  for (size_t i = 0; i < kBarKinds.size(); ++i) {
    const KindUsage& u = d.kinds[kBarKinds[i]];
    KindRow& k = r.kinds[i];
    k.kind = kBarKinds[i];
    k.used = u.reserved;
    k.requested = u.requested;
    k.capacity = u.capacity;
    k.peak = u.peak;
    k.count = u.count;
    k.largest_free_block = u.largest_free_block;
    k.fragmentation = u.fragmentation;
    k.history = history.series(d.chip_id, i);
    r.buffers += u.count;
  }
  r.clash_margin = d.clash_margin;
  r.has_l1_buffers = d.has_l1_buffers;
  r.dropped_events = d.dropped_events;
  return r;
}

bool contains_any_case(const std::string& text, const std::string& lowered_needle) {
  auto it = std::search(text.begin(), text.end(), lowered_needle.begin(), lowered_needle.end(),
                        [](char a, char b) { return std::tolower((unsigned char)a) == b; });
  return it != text.end();
}

// "0-7" for consecutive logical ids, else "0,2,5".
std::string device_list(std::vector<uint32_t> ids) {
  std::sort(ids.begin(), ids.end());
  if (ids.back() - ids.front() + 1 == ids.size()) {
    return std::to_string(ids.front()) + "-" + std::to_string(ids.back());
  }
  std::string out;
  for (uint32_t id : ids) out += (out.empty() ? "" : ",") + std::to_string(id);
  return out;
}

// The copies of one mesh buffer: same process, kind, address, sizes and tag, on other devices.
// CBs are left apart: one program's CB records on one device share all of these.
struct MeshKey {
  const BufferView* b;
  bool operator==(const MeshKey& o) const {
    return b->pid == o.b->pid && b->kind == o.b->kind && b->address == o.b->address &&
           b->size == o.b->size && b->reserved == o.b->reserved && b->tag == o.b->tag;
  }
};
struct MeshKeyHash {
  size_t operator()(const MeshKey& k) const {
    return std::hash<uint64_t>()(k.b->address ^ (k.b->size << 20) ^ (uint64_t(k.b->pid) << 40) ^
                                 k.b->kind);
  }
};

BufferRow buffer_row(const BufferView& b, uint64_t now_ns) {
  BufferRow r;
  r.pid = b.pid;
  r.device = b.device;
  r.kind = b.kind;
  r.buffer_id = b.buffer_id;
  r.address = b.address;
  r.size = b.size;
  r.reserved = b.reserved;
  r.banks = b.num_banks;
  r.age_ns = now_ns > b.time_ns ? now_ns - b.time_ns : 0;
  r.tag = b.tag;
  return r;
}

// An interval map over [0, size): assign() paints a range with a region, later paints win.
class Painter {
 public:
  Painter(uint64_t size, Region base) : size_(size) { starts_[0] = base; }

  void assign(uint64_t begin, uint64_t end, Region r) {
    end = std::min(end, size_);
    if (begin >= end) return;
    Region after = region_at(end);
    auto first = starts_.lower_bound(begin);
    auto last = starts_.lower_bound(end);
    starts_.erase(first, last);
    starts_[begin] = r;
    if (end < size_) starts_.emplace(end, after);
  }

  std::vector<RegionSpan> spans() const {
    std::vector<RegionSpan> out;
    for (auto it = starts_.begin(); it != starts_.end(); ++it) {
      uint64_t end = std::next(it) == starts_.end() ? size_ : std::next(it)->first;
      if (!out.empty() && out.back().region == it->second) {
        out.back().end = end;
      } else {
        out.push_back({it->first, end, it->second});
      }
    }
    return out;
  }

 private:
  Region region_at(uint64_t addr) const { return std::prev(starts_.upper_bound(addr))->second; }

  uint64_t size_;
  std::map<uint64_t, Region> starts_;
};

// Sorted, merged [begin, end) ranges.
std::vector<std::pair<uint64_t, uint64_t>> merged(std::vector<std::pair<uint64_t, uint64_t>> v) {
  std::sort(v.begin(), v.end());
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& r : v) {
    if (!out.empty() && r.first <= out.back().second) {
      out.back().second = std::max(out.back().second, r.second);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

// True when two sorted vectors have an element in common.
template <class T>
bool shares_one(const std::vector<T>& a, const std::vector<T>& b) {
  for (auto i = a.begin(), j = b.begin(); i != a.end() && j != b.end();) {
    if (*i < *j) {
      ++i;
    } else if (*j < *i) {
      ++j;
    } else {
      return true;
    }
  }
  return false;
}

}  // namespace

void History::push(const Snapshot& s) {
  // Who holds each chip now: live, counted processes registered on it.
  std::map<uint64_t, std::vector<ProcessKey>> holders;
  for (const ProcessView& p : s.processes) {
    if (!p.counted || p.exited) continue;
    for (const auto& t : p.device_totals) holders[t.chip_id].emplace_back(p.pid, p.start_time);
    for (uint64_t chip : p.chips) holders[chip].emplace_back(p.pid, p.start_time);
  }
  auto append = [](Ring& r, uint64_t v) {
    r.values[r.next] = v;
    r.next = (r.next + 1) % kCapacity;
    r.size = std::min(r.size + 1, kCapacity);
  };
  for (const DeviceView& d : s.devices) {
    auto& rings = rings_[d.chip_id];
    bool restarted = false;
    if (auto now = holders.find(d.chip_id); now != holders.end()) {
      // Sorted, so that finding one holder in common is linear: a Galaxy chip has one holder
      // per serving process, and comparing each with each was quadratic per chip per refresh.
      std::sort(now->second.begin(), now->second.end());
      std::vector<ProcessKey>& last = holders_[d.chip_id];
      restarted = !last.empty() && !shares_one(now->second, last);
      last = std::move(now->second);
    }
    for (size_t i = 0; i < kBarKinds.size(); ++i) {
      if (restarted) append(rings[i], kHistoryRestart);
      append(rings[i], d.kinds[kBarKinds[i]].reserved);
    }
    last_seen_[d.chip_id] = {d, s.taken_monotonic_ns};
  }
  ++samples_;
}

std::vector<uint64_t> History::series(uint64_t chip_id, size_t bar_kind_index) const {
  auto it = rings_.find(chip_id);
  if (it == rings_.end() || bar_kind_index >= kBarKinds.size()) return {};
  const Ring& r = it->second[bar_kind_index];
  std::vector<uint64_t> out(r.size);
  size_t start = (r.next + kCapacity - r.size) % kCapacity;
  for (size_t i = 0; i < r.size; ++i) out[i] = r.values[(start + i) % kCapacity];
  return out;
}

L1Map build_l1_map(const Snapshot& s, const DeviceView& d) {
  L1Map m;
  const KindUsage& l1 = d.kinds[uint32_t(Kind::L1)];
  const KindUsage& l1s = d.kinds[uint32_t(Kind::L1Small)];
  m.chip_id = d.chip_id;
  m.logical_id = d.logical_ids.empty() ? 0 : d.logical_ids[0];
  m.l1_per_core = d.l1_per_core;
  if (m.l1_per_core == 0) m.l1_per_core = std::max(l1.bank_base + l1.bank_size, d.cb_region_end);
  if (m.l1_per_core == 0) return m;
  m.valid = true;
  m.unreserved_base = d.unreserved_base;
  m.cb_region_end = d.cb_region_end;
  m.cb_region_bytes = d.cb_region_in_use();
  m.cb_programs = d.cb_programs;
  m.lowest_l1_address = d.lowest_l1_address;
  m.has_l1_buffers = d.has_l1_buffers;
  m.clash_margin = d.clash_margin;
  if (l1s.bank_size != 0) {
    m.l1_small_base = l1s.bank_base;
    m.l1_small_end = l1s.bank_base + l1s.bank_size;
  }

  std::vector<std::pair<uint64_t, uint64_t>> l1_ranges, small_ranges;
  for (const BufferView& b : s.buffers) {
    if (b.chip_id != d.chip_id) continue;
    if (b.kind == uint32_t(Kind::L1)) {
      l1_ranges.emplace_back(b.address, b.address + b.size_per_bank);
    } else if (b.kind == uint32_t(Kind::L1Small)) {
      small_ranges.emplace_back(b.address, b.address + b.size_per_bank);
    } else {
      continue;
    }
    m.l1_buffers.push_back(buffer_row(b, s.taken_monotonic_ns));
  }
  std::sort(m.l1_buffers.begin(), m.l1_buffers.end(), [](const BufferRow& a, const BufferRow& b) {
    return std::tie(a.address, a.pid, a.buffer_id) < std::tie(b.address, b.pid, b.buffer_id);
  });
  l1_ranges = merged(std::move(l1_ranges));
  small_ranges = merged(std::move(small_ranges));

  // Painted from the bottom layer up: what sits on top is what the map shows.
  Painter p(m.l1_per_core, Region::kFree);
  p.assign(0, m.unreserved_base, Region::kFirmware);
  p.assign(m.l1_small_base, m.l1_small_end, Region::kL1SmallFree);
  if (m.clash_margin > 0) p.assign(m.cb_region_end, m.lowest_l1_address, Region::kMargin);
  p.assign(m.unreserved_base, m.cb_region_end, Region::kCb);
  for (const auto& [b, e] : l1_ranges) p.assign(b, e, Region::kL1Buffer);
  for (const auto& [b, e] : small_ranges) p.assign(b, e, Region::kL1SmallBuffer);
  for (const auto& [b, e] : l1_ranges) {
    p.assign(std::max(b, m.unreserved_base), std::min(e, m.cb_region_end), Region::kClash);
  }
  m.spans = p.spans();
  return m;
}

ViewModel collect(const Snapshot& s, const History& history, const CollectRequest& req) {
  ViewModel vm;
  vm.segment_dir = s.segment_dir;
  vm.segment_dir_missing = s.segment_dir_missing;
  vm.taken_realtime_ns = s.taken_realtime_ns;
  vm.samples = history.samples();
  vm.dropped_events = s.dropped_events;
  vm.leaks = s.leaks.count();
  for (const auto& p : s.problems) vm.problems.push_back(p.path + ": " + p.error);

  // -p: the chips the process holds buffers on (none known, as for tt-metal's counters: all).
  std::vector<uint64_t> pid_chips;
  for (const BufferView& b : s.buffers) {
    if (req.pid && b.pid == *req.pid &&
        std::find(pid_chips.begin(), pid_chips.end(), b.chip_id) == pid_chips.end()) {
      pid_chips.push_back(b.chip_id);
    }
  }
  auto held = [&](uint64_t chip) {
    return pid_chips.empty() ||
           std::find(pid_chips.begin(), pid_chips.end(), chip) != pid_chips.end();
  };
  std::vector<const DeviceView*> shown_devices;
  for (const DeviceView& d : s.devices) {
    if (!shown(req.devices, d.logical_ids) || !held(d.chip_id)) continue;
    shown_devices.push_back(&d);
    vm.devices.push_back(device_row(d, history));
  }
  // Devices gone from the snapshot but seen lately: greyed rows after the live ones (the L1 map
  // indexes the live ones only, so they stay first).
  for (const auto& [chip, seen] : history.last_seen()) {
    const uint64_t gone_chip = chip;  // clang before 16 cannot capture a structured binding
    const bool live = std::any_of(s.devices.begin(), s.devices.end(),
                                  [&](const DeviceView& d) { return d.chip_id == gone_chip; });
    if (live || !shown(req.devices, seen.device.logical_ids) || req.pid) continue;
    const uint64_t gone_for =
        s.taken_monotonic_ns > seen.seen_ns ? s.taken_monotonic_ns - seen.seen_ns : 0;
    if (gone_for > History::kKeepGoneNs) continue;
    DeviceRow r = device_row(seen.device, history);
    r.gone = true;
    r.gone_for_ns = gone_for;
    vm.devices.push_back(std::move(r));
  }
  for (uint32_t id : req.devices) {
    bool found = std::any_of(s.devices.begin(), s.devices.end(), [&](const DeviceView& d) {
      return std::find(d.logical_ids.begin(), d.logical_ids.end(), id) != d.logical_ids.end();
    });
    if (!found) vm.missing_devices.push_back(id);
  }

  std::string needle = req.filter;
  for (char& c : needle) c = char(std::tolower((unsigned char)c));
  std::map<pid_t, const ProcessView*> process_of;
  for (const ProcessView& p : s.processes) process_of.emplace(p.pid, &p);
  // `/`: a process matches by its pid or command; a buffer by its tag or its process.
  auto process_matches = [&](pid_t pid) {
    if (needle.empty() || std::to_string(pid) == needle) return true;
    auto it = process_of.find(pid);
    return it != process_of.end() && contains_any_case(it->second->command, needle);
  };
  auto buffer_matches = [&](const BufferView& b) {
    if (req.pid && b.pid != *req.pid) return false;
    return needle.empty() || contains_any_case(b.tag, needle) || process_matches(b.pid);
  };
  vm.filter = req.filter;
  vm.pid = req.pid;

  // Buffers: filter to the shown devices and the filter, fold each mesh buffer's copies, then
  // sort only as many rows as are wanted.
  std::vector<const BufferView*> rows;
  rows.reserve(s.buffers.size());
  std::map<pid_t, bool> tagged_match;  // processes with a buffer whose tag matches
  for (const BufferView& b : s.buffers) {
    if (!buffer_matches(b)) continue;
    if ((req.devices.empty() && !req.pid) ||
        std::any_of(shown_devices.begin(), shown_devices.end(),
                    [&](const DeviceView* d) { return d->chip_id == b.chip_id; })) {
      rows.push_back(&b);
      if (!needle.empty()) tagged_match[b.pid] = true;
    }
  }
  // A snapshot that lists no buffers (the overview's do not: SnapshotSource::set_list_buffers)
  // counts them from its devices; one that lists them has the same count in its devices.
  vm.live_buffers = rows.size();
  if (s.buffers.empty() && needle.empty() && !req.pid) {
    vm.live_buffers = 0;
    for (const DeviceView* d : shown_devices) {
      for (const auto& k : d->kinds) vm.live_buffers += k.count;
    }
  }
  struct Group {
    const BufferView* first;  // the copy that sorts first by identity: the lowest device
    std::vector<uint32_t> devices;
  };
  std::vector<Group> groups;
  groups.reserve(rows.size());
  std::unordered_map<MeshKey, std::vector<size_t>, MeshKeyHash> by_key;
  for (const BufferView* b : rows) {
    Group* into = nullptr;
    if (b->kind != uint32_t(Kind::Cb)) {
      std::vector<size_t>& candidates = by_key[MeshKey{b}];
      for (size_t g : candidates) {
        auto& ids = groups[g].devices;
        if (std::find(ids.begin(), ids.end(), b->device) == ids.end()) into = &groups[g];
      }
      if (into == nullptr) candidates.push_back(groups.size());
    }
    if (into == nullptr) {
      groups.push_back({b, {b->device}});
      continue;
    }
    into->devices.push_back(b->device);
    if (sorts_before(*b, *into->first, BufferSort::kPid)) into->first = b;
  }
  vm.total_buffers = groups.size();
  auto cmp = [&](const Group& a, const Group& b) {
    return req.reverse ? sorts_before(*b.first, *a.first, req.sort)
                       : sorts_before(*a.first, *b.first, req.sort);
  };
  size_t n = req.buffer_limit == 0 ? groups.size() : std::min(req.buffer_limit, groups.size());
  std::partial_sort(groups.begin(), groups.begin() + ptrdiff_t(n), groups.end(), cmp);
  uint64_t now = req.now_monotonic_ns != 0 ? req.now_monotonic_ns : s.taken_monotonic_ns;
  vm.buffers.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    BufferRow r = buffer_row(*groups[i].first, now);
    r.copies = uint32_t(groups[i].devices.size());
    if (r.copies > 1) r.devices = device_list(groups[i].devices);
    vm.buffers.push_back(std::move(r));
  }

  for (const ProcessView& p : s.processes) {
    // A tt-metal slot not counted (stale, or ttmem's client reports it) holds no memory in use.
    if (!p.counted) continue;
    if (req.pid && p.pid != *req.pid) continue;
    if (!process_matches(p.pid) && !tagged_match.count(p.pid)) continue;
    ProcessRow r;
    r.pid = p.pid;
    r.command = p.command;
    r.exited = p.exited;
    r.reserved = p.reserved;
    r.buffers = p.buffers;
    r.cbs = p.cbs;
    r.dropped_events = p.dropped_events;
    const auto& c = p.counters;
    r.problems = c.slab_overflow + c.unknown_frees + c.duplicate_allocs + c.invalid_calls +
                 c.cb_overflow + c.tag_overflow + p.torn_records + p.corrupt_records;
    vm.processes.push_back(std::move(r));
  }
  // Tags are totals over every process: filtered by their own name only.
  for (const TagUsage& t : s.tags) {
    if (needle.empty() || contains_any_case(t.tag, needle)) vm.tags.push_back(t);
  }

  if (req.map_device >= 0 && size_t(req.map_device) < shown_devices.size()) {
    vm.l1_map = build_l1_map(s, *shown_devices[size_t(req.map_device)]);
    vm.l1_map.l1_buffers_total = vm.l1_map.l1_buffers.size();
    if (req.buffer_limit != 0 && vm.l1_map.l1_buffers.size() > req.buffer_limit) {
      vm.l1_map.l1_buffers.resize(req.buffer_limit);
    }
  }
  return vm;
}

}  // namespace ttmem::top
