#include "daemon/external.h"

#include <algorithm>

#include "collector/query.h"

namespace ttmem::daemon {

using collector::BufferView;
using collector::device_order;
using collector::DeviceView;
using collector::KindUsage;
using collector::kNumKinds;
using collector::ProcessDeviceTotals;
using collector::ProcessView;
using collector::Snapshot;
using collector::TagUsage;

namespace {

DeviceView* find_by_logical(Snapshot& s, uint32_t logical_id) {
  for (auto& d : s.devices) {
    if (std::find(d.logical_ids.begin(), d.logical_ids.end(), logical_id) != d.logical_ids.end()) {
      return &d;
    }
  }
  return nullptr;
}

DeviceView& device_for(Snapshot& s, uint32_t logical_id) {
  if (DeviceView* d = find_by_logical(s, logical_id)) return *d;
  DeviceView v;
  v.chip_id = kExternalChipBase + logical_id;
  v.logical_ids = {logical_id};
  s.devices.push_back(std::move(v));
  return s.devices.back();
}

// Adds `count` buffers of one kind, `requested` and `reserved` bytes in all, to the device, the
// process and the tag.
void add_usage(Snapshot& s, ProcessView& p, DeviceView& d, uint32_t kind, uint64_t requested,
               uint64_t reserved, uint64_t count, const std::string& tag) {
  KindUsage& u = d.kinds[kind];
  u.requested += requested;
  u.reserved += reserved;
  u.count += count;
  u.peak = std::max(u.peak, u.reserved);
  p.reserved[kind] += reserved;
  p.requested[kind] += requested;
  (kind == uint32_t(Kind::Cb) ? p.cbs : p.buffers) += count;
  std::string tag_name = tag.empty() ? "(untagged)" : tag;
  auto t = std::find_if(s.tags.begin(), s.tags.end(),
                        [&](const TagUsage& x) { return x.tag == tag_name; });
  if (t == s.tags.end()) t = s.tags.insert(s.tags.end(), TagUsage{tag_name, {}, 0});
  t->reserved[kind] += reserved;
  t->buffers += count;
}

}  // namespace

uint64_t external_chip_id(const Snapshot& s, uint32_t logical_id) {
  if (const DeviceView* d = find_by_logical(const_cast<Snapshot&>(s), logical_id)) {
    return d->chip_id;
  }
  return kExternalChipBase + logical_id;
}

void merge_external(Snapshot& s, const std::vector<ExternalProcess>& processes) {
  for (const ExternalProcess& ext : processes) {
    ProcessView p = ext.process;
    p.reserved = {};
    p.requested = {};
    p.buffers = p.cbs = 0;
    p.device_totals.clear();
    for (const auto& c : ext.counts) {
      DeviceView& d = device_for(s, c.device);
      ProcessDeviceTotals t;
      t.chip_id = d.chip_id;
      t.allocs = c.allocs;
      t.frees = c.frees;
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        d.kinds[k].total_allocs += c.allocs[k];
        d.kinds[k].total_frees += c.frees[k];
      }
      p.device_totals.push_back(t);
    }
    for (BufferView b : ext.buffers) {
      if (b.kind >= kNumKinds) continue;
      DeviceView& d = device_for(s, b.device);
      b.chip_id = d.chip_id;
      b.pid = p.pid;
      b.process_start_time = p.start_time;
      add_usage(s, p, d, b.kind, b.size, b.reserved, 1, b.tag);
      s.buffers.push_back(std::move(b));
    }
    for (const auto& u : ext.unlisted) {
      if (u.kind >= kNumKinds) continue;
      add_usage(s, p, device_for(s, u.device), u.kind, u.bytes, u.bytes, u.count, u.tag);
    }
    s.processes.push_back(std::move(p));
  }
  std::sort(s.devices.begin(), s.devices.end(), device_order);
  std::stable_sort(s.processes.begin(), s.processes.end(),
                   [](const ProcessView& a, const ProcessView& b) { return a.pid < b.pid; });
}

}  // namespace ttmem::daemon
