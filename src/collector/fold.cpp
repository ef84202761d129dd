#include "collector/fold.h"

#include <algorithm>

#include "collector/device_figures.h"
#include "collector/query.h"

namespace ttmem::collector {

namespace pr = protocol;

namespace {

constexpr uint32_t kCb = uint32_t(Kind::Cb);

}  // namespace

void fill_buffer_identity(BufferIdentity& out, const ProcessView& process,
                          const pr::BufferRecord& record, const pr::DeviceSlot& device,
                          const std::string& tag) {
  out.pid = process.pid;
  out.process_start_time = process.start_time;
  out.chip_id = device.chip_id;
  out.device = record.device;
  out.kind = record.kind;
  out.buffer_id = record.buffer_id;
  out.address = record.address;
  out.size = record.size;
  out.reserved = reserved_bytes(record, device);
  out.tag = tag;
  out.time_ns = record.time_ns;
}

DeviceView device_view_of(const pr::DeviceSlot& slot) {
  DeviceView v;
  v.chip_id = slot.chip_id;
  v.arch = slot.arch;
  v.board = pr::board_of(slot);
  v.grid_x = slot.grid_x;
  v.grid_y = slot.grid_y;
  v.l1_per_core = slot.l1_per_core;
  v.unreserved_base = slot.unreserved_base;
  v.trace_region_size = slot.trace_region_size;
  v.l1_small_size = slot.l1_small_size;
  for (uint32_t k = 0; k < kNumKinds; ++k) {
    v.kinds[k].capacity = slot.kinds[k].capacity;
    v.kinds[k].num_banks = slot.kinds[k].num_banks;
    v.kinds[k].bank_size = slot.kinds[k].bank_size;
    v.kinds[k].bank_base = slot.kinds[k].bank_base;
  }
  return v;
}

SnapshotFold::SnapshotFold(bool list_buffers, size_t expected_records)
    : list_buffers_(list_buffers) {
  if (list_buffers_) s_.buffers.reserve(expected_records);
}

void SnapshotFold::begin_process(ProcessView identity, const SegmentState& state, TagText tags,
                                 uint64_t expected_records) {
  p_ = std::move(identity);
  state_ = &state;
  tag_text_ = std::move(tags);
  // Devices of this process are mapped to the snapshot's devices by chip id on first use:
  // records folded in place may name a device the reader found only while scanning them.
  local_to_model_.fill(-1);
  unreserved_ranges_ = expected_records;
  tag_ids_.clear();
  process_cbs_.clear();
  cb_programs_.clear();
}

size_t SnapshotFold::model_device(uint32_t d) {
  if (local_to_model_[d] >= 0) return size_t(local_to_model_[d]);
  const pr::DeviceSlot& slot = *state_->devices[d];
  auto [it, inserted] = device_index_.emplace(slot.chip_id, s_.devices.size());
  if (inserted) {
    s_.devices.push_back(device_view_of(slot));
    ranges_.emplace_back();
    device_cbs_.emplace_back();
  }
  DeviceView& v = s_.devices[it->second];
  local_to_model_[d] = int(it->second);
  if (std::find(v.logical_ids.begin(), v.logical_ids.end(), d) == v.logical_ids.end()) {
    v.logical_ids.push_back(d);
  }
  // Room for this process's ranges up front. The live counters are not trusted: together they
  // are held to the records there are (or, before a scan, the slots it will visit).
  for (uint32_t k = 0; k < kNumKinds; ++k) {
    if (k == kCb) continue;  // CBs take no ranges in the map
    uint64_t room = std::min<uint64_t>(state_->counters[d][k].live_count, unreserved_ranges_);
    unreserved_ranges_ -= room;
    auto& kind_ranges = ranges_[it->second][k];
    // Grown geometrically: reserving exactly each process's share would copy a chip's ranges
    // once per process, quadratic in the processes sharing the chip (a Galaxy host's 56
    // processes on 32 chips copied 450 MB that way).
    const size_t wanted = kind_ranges.size() + room;
    if (wanted > kind_ranges.capacity()) {
      kind_ranges.reserve(std::max(wanted, 2 * kind_ranges.capacity()));
    }
  }
  return it->second;
}

// Tag ids are small per-segment integers: each is resolved to its TagUsage once.
TagUsage& SnapshotFold::tag_usage(uint32_t id) {
  if (id >= tag_ids_.size()) tag_ids_.resize(size_t(id) + 1);
  TagId& known = tag_ids_[id];
  if (known.usage < 0) {
    known.text = tag_text_(id);
    std::string name = known.text.empty() ? "(untagged)" : known.text;
    auto [ti, fresh] = tag_index_.emplace(name, s_.tags.size());
    if (fresh) s_.tags.push_back(TagUsage{name, {}, 0});
    known.usage = int(ti->second);
  }
  return s_.tags[size_t(known.usage)];
}

void SnapshotFold::add(const pr::BufferRecord& rec) {
  const size_t m = model_device(rec.device);
  const pr::DeviceSlot& slot = *state_->devices[rec.device];
  DeviceView& v = s_.devices[m];
  const uint64_t reserved = reserved_bytes(rec, slot);
  const bool is_cb = rec.kind == kCb;
  KindUsage& ku = v.kinds[rec.kind];
  ku.count += 1;
  (is_cb ? p_.cbs : p_.buffers) += 1;
  if (is_cb) {
    // CB sets overlap: their bytes are not added, the covered L1 is computed at end_process().
    process_cbs_[m].add(core_rect_of(rec.aux), rec.address + rec.size);
    if (cb_programs_.empty() || cb_programs_.back() != std::pair{m, rec.buffer_id}) {
      cb_programs_.emplace_back(m, rec.buffer_id);
    }
  } else {
    ku.requested += rec.size;
    ku.reserved += reserved;
    p_.reserved[rec.kind] += reserved;
    p_.requested[rec.kind] += rec.size;
    ranges_[m][rec.kind].push_back({rec.address, rec.address + rec.size_per_bank});
    if (rec.kind == uint8_t(Kind::L1)) {
      v.lowest_l1_address =
          v.has_l1_buffers ? std::min(v.lowest_l1_address, rec.address) : rec.address;
      v.has_l1_buffers = true;
    }
  }
  TagUsage& tag = tag_usage(rec.tag);
  if (is_cb) {
    tag_cbs_[{size_t(&tag - s_.tags.data()), m}].add(core_rect_of(rec.aux),
                                                     rec.address + rec.size);
  } else {
    tag.reserved[rec.kind] += reserved;
  }
  tag.buffers += 1;
  if (!list_buffers_) return;
  fill_buffer_view(s_.buffers.emplace_back(), p_, rec, slot, tag_ids_[rec.tag].text);
}

void SnapshotFold::end_process(const std::array<uint64_t, pr::kMaxDevices>& dropped_events) {
  const SegmentState& st = *state_;
  ProcessView& p = p_;
  p.torn_records = st.torn_records;
  p.corrupt_records = st.corrupt_records;
  for (const auto& [m, cbs] : process_cbs_) {
    const uint64_t covered = cbs.covered_bytes(s_.devices[m].unreserved_base);
    p.reserved[kCb] += covered;
    p.requested[kCb] += covered;
    device_cbs_[m].merge(cbs);
  }
  std::sort(cb_programs_.begin(), cb_programs_.end());
  cb_programs_.erase(std::unique(cb_programs_.begin(), cb_programs_.end()), cb_programs_.end());
  for (const auto& [m, program] : cb_programs_) s_.devices[m].cb_programs += 1;
  p.cb_programs = cb_programs_.size();

  // After the records: a scan in place may have found devices the read had not.
  for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
    if (!st.devices[d]) continue;
    add_device_counters(s_.devices[model_device(d)], p, st.devices[d]->chip_id, st.counters[d],
                        dropped_events[d]);
  }
  s_.dropped_events += p.dropped_events;
  s_.processes.push_back(std::move(p));
  state_ = nullptr;
  tag_text_ = nullptr;
}

Snapshot SnapshotFold::finish(CbPeaks* cb_peaks) {
  Snapshot& s = s_;
  for (const auto& [tag_and_device, cbs] : tag_cbs_) {
    const size_t tag = tag_and_device.first, m = tag_and_device.second;
    s.tags[tag].reserved[kCb] += cbs.covered_bytes(s.devices[m].unreserved_base);
  }
  for (size_t i = 0; i < s.devices.size(); ++i) {
    finish_device(s.devices[i], device_cbs_[i].region(s.devices[i].unreserved_base), cb_peaks,
                  [&](uint32_t k) {
      const KindUsage& ku = s.devices[i].kinds[k];
      return free_space(ranges_[i][k], ku.bank_base, ku.bank_base + ku.bank_size);
    });
  }
  sort_snapshot(s);
  return std::move(s_);
}

Snapshot fold_snapshot(const std::vector<FoldInput>& processes, bool list_buffers,
                       CbPeaks* cb_peaks) {
  size_t records = 0;
  for (const FoldInput& in : processes) records += in.state.records.size();
  SnapshotFold fold(list_buffers, records);
  for (const FoldInput& in : processes) {
    const std::vector<std::string>& tags = in.tags;
    fold.begin_process(
        in.identity, in.state,
        [&tags](uint32_t id) { return id < tags.size() ? tags[id] : std::string(); },
        in.state.records.size());
    for (const pr::BufferRecord& rec : in.state.records) fold.add(rec);
    fold.end_process(in.dropped_events);
  }
  return fold.finish(cb_peaks);
}

std::vector<LeakRecord> leak_records(const ProcessView& identity, const SegmentState& state,
                                     const TagText& tags, uint64_t detected_realtime_ns) {
  std::vector<LeakRecord> leaks;
  for (const auto& rec : state.records) {
    if (rec.kind == kCb) continue;
    const pr::DeviceSlot& dev = *state.devices[rec.device];
    LeakRecord& l = leaks.emplace_back();
    fill_buffer_identity(l, identity, rec, dev, tags(rec.tag));
    l.command = identity.command;
    l.detected_realtime_ns = detected_realtime_ns;
  }
  return leaks;
}

}  // namespace ttmem::collector
