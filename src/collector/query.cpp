#include "collector/query.h"

#include <algorithm>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "common/kinds.h"

namespace ttmem::collector {

using common::kKindNames;
using common::parse_kind;

std::optional<uint64_t> find_device(const Snapshot& s, uint32_t logical_id, std::string* error) {
  std::string known;
  for (const auto& d : s.devices) {
    for (uint32_t id : d.logical_ids) {
      if (id == logical_id) return d.chip_id;
      known += (known.empty() ? "" : ", ") + std::to_string(id);
    }
  }
  if (known.empty()) {
    *error = fmt::format(
        "no device {}: no tracked process has registered any device (is the program running "
        "with the same TTMEM_DIR?)",
        logical_id);
  } else {
    *error = fmt::format("no device {}; tracked devices are: {}", logical_id, known);
  }
  return std::nullopt;
}

std::optional<uint32_t> find_kind(const std::string& name, std::string* error) {
  if (auto k = parse_kind(name)) return *k;
  std::string names;
  for (auto n : kKindNames) names += (names.empty() ? "" : ", ") + std::string(n);
  *error = fmt::format("unknown memory kind '{}'; use one of: {}", name, names);
  return std::nullopt;
}

bool has_process(const Snapshot& s, pid_t pid, std::string* error) {
  if (std::any_of(s.processes.begin(), s.processes.end(),
                  [&](const ProcessView& p) { return p.pid == pid; })) {
    return true;
  }
  *error = fmt::format("no tracked process {}; `ttmem status` lists them", pid);
  return false;
}

BufferSelection select_buffers(const Snapshot& s, const BufferFilter& f) {
  BufferSelection out;
  for (const auto& b : s.buffers) {
    if (f.chip_id && b.chip_id != *f.chip_id) continue;
    if (f.kind && b.kind != *f.kind) continue;
    if (f.pid && b.pid != *f.pid) continue;
    out.rows.push_back(&b);
  }
  // Ties fall back to identity: the order must not depend on the order the snapshot lists its
  // buffers in (slab order for a collector that reads everything, live-set order for an
  // incremental one such as ttmemd's).
  auto identity = [](const BufferView* x) {
    return std::tie(x->pid, x->device, x->kind, x->buffer_id, x->address, x->core_bbox,
                    x->time_ns);
  };
  if (f.sort == BufferSort::Size) {
    std::sort(out.rows.begin(), out.rows.end(), [&](auto* x, auto* y) {
      if (x->reserved != y->reserved) return x->reserved > y->reserved;
      return identity(x) < identity(y);
    });
  } else {
    std::sort(out.rows.begin(), out.rows.end(), [&](auto* x, auto* y) {
      if (x->time_ns != y->time_ns) return x->time_ns < y->time_ns;
      return identity(x) < identity(y);
    });
  }
  out.total = out.rows.size();
  if (f.limit != 0 && out.rows.size() > f.limit) out.rows.resize(f.limit);
  return out;
}

std::vector<ProgramCbSet> select_programs(const Snapshot& s, const BufferFilter& f) {
  struct Key {
    pid_t pid;
    uint64_t chip_id;
    uint64_t program_id;
    bool operator<(const Key& o) const {
      return std::tie(pid, chip_id, program_id) < std::tie(o.pid, o.chip_id, o.program_id);
    }
  };
  std::map<Key, ProgramCbSet> sets;
  std::map<Key, uint64_t> oldest;
  for (const auto& b : s.buffers) {
    if (b.kind != uint32_t(Kind::Cb)) continue;
    if (f.chip_id && b.chip_id != *f.chip_id) continue;
    if (f.pid && b.pid != *f.pid) continue;
    const Key key{b.pid, b.chip_id, b.buffer_id};
    auto [it, fresh] = sets.try_emplace(key);
    ProgramCbSet& p = it->second;
    if (fresh) {
      p.pid = b.pid;
      p.chip_id = b.chip_id;
      p.device = b.device;
      p.program_id = b.buffer_id;
      p.tag = b.tag;
      oldest[key] = b.time_ns;
    }
    p.bytes += b.reserved;
    p.region_end = std::max(p.region_end, b.address + b.size);
    p.records += 1;
    oldest[key] = std::min(oldest[key], b.time_ns);
  }
  std::vector<std::pair<uint64_t, ProgramCbSet>> rows;
  for (auto& [key, p] : sets) rows.emplace_back(oldest[key], std::move(p));
  if (f.sort == BufferSort::Size) {
    std::stable_sort(rows.begin(), rows.end(),
                     [](const auto& x, const auto& y) { return x.second.bytes > y.second.bytes; });
  } else {
    std::stable_sort(rows.begin(), rows.end(),
                     [](const auto& x, const auto& y) { return x.first < y.first; });
  }
  if (f.limit != 0 && rows.size() > f.limit) rows.resize(f.limit);
  std::vector<ProgramCbSet> out;
  out.reserve(rows.size());
  for (auto& r : rows) out.push_back(std::move(r.second));
  return out;
}

std::string join_ids(const std::vector<uint32_t>& ids) {
  std::string s;
  for (uint32_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

bool device_order(const DeviceView& a, const DeviceView& b) {
  uint32_t la = a.logical_ids.empty() ? UINT32_MAX : a.logical_ids[0];
  uint32_t lb = b.logical_ids.empty() ? UINT32_MAX : b.logical_ids[0];
  return la != lb ? la < lb : a.chip_id < b.chip_id;
}

}  // namespace ttmem::collector
