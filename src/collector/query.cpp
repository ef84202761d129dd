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

namespace {

constexpr std::string_view kSortNames[kNumBufferSorts] = {"reserved", "size", "age", "address",
                                                          "device",   "kind", "pid", "tag"};

}  // namespace

std::string_view sort_name(BufferSort sort) {
  return kSortNames[int(sort)];
}

std::string sort_names() {
  std::string names;
  for (std::string_view n : kSortNames) names += (names.empty() ? "" : ", ") + std::string(n);
  return names;
}

std::optional<BufferSort> parse_sort(std::string_view name, std::string* error) {
  for (int i = 0; i < kNumBufferSorts; ++i) {
    if (name == kSortNames[i]) return BufferSort(i);
  }
  *error = fmt::format("unknown sort '{}'; use one of: {}", name.substr(0, 64), sort_names());
  return std::nullopt;
}

bool sorts_before(const BufferView& a, const BufferView& b, BufferSort sort) {
  // Ties fall back to the whole identity, so the order never depends on the order a snapshot
  // lists its buffers in: slab order for a full read, live-set order for an incremental one.
  auto id = [](const BufferView& x) {
    return std::tie(x.pid, x.device, x.kind, x.buffer_id, x.address, x.core_bbox, x.time_ns);
  };
  switch (sort) {
    case BufferSort::kReserved:
      if (a.reserved != b.reserved) return a.reserved > b.reserved;
      break;
    case BufferSort::kSize:
      if (a.size != b.size) return a.size > b.size;
      break;
    case BufferSort::kAge:
      if (a.time_ns != b.time_ns) return a.time_ns < b.time_ns;
      break;
    case BufferSort::kAddress:
      if (a.address != b.address) return a.address < b.address;
      break;
    case BufferSort::kDevice:
      if (a.device != b.device) return a.device < b.device;
      break;
    case BufferSort::kKind:
      if (a.kind != b.kind) return a.kind < b.kind;
      break;
    case BufferSort::kPid:
      break;  // identity order starts with the pid
    case BufferSort::kTag:
      if (a.tag != b.tag) return a.tag < b.tag;
      break;
  }
  return id(a) < id(b);
}

BufferSelection select_buffers(const Snapshot& s, const BufferFilter& f) {
  BufferSelection out;
  for (const auto& b : s.buffers) {
    if (f.chip_id && b.chip_id != *f.chip_id) continue;
    if (f.kind && b.kind != *f.kind) continue;
    if (f.pid && b.pid != *f.pid) continue;
    out.rows.push_back(&b);
  }
  std::sort(out.rows.begin(), out.rows.end(),
                   [&](auto* x, auto* y) { return sorts_before(*x, *y, f.sort); });
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
  // Rows come out of the map in identity order (pid, chip, program); stable sorts keep it for
  // equal keys.
  auto by = [&](auto key, bool largest_first) {
    std::stable_sort(rows.begin(), rows.end(), [&](const auto& x, const auto& y) {
      return largest_first ? key(y) < key(x) : key(x) < key(y);
    });
  };
  switch (f.sort) {
    case BufferSort::kReserved:
    case BufferSort::kSize:
      by([](const auto& r) { return r.second.bytes; }, true);
      break;
    case BufferSort::kAge:
      by([](const auto& r) { return r.first; }, false);
      break;
    case BufferSort::kAddress:
      by([](const auto& r) { return r.second.region_end; }, false);
      break;
    case BufferSort::kDevice:
      by([](const auto& r) { return r.second.device; }, false);
      break;
    case BufferSort::kTag:
      by([](const auto& r) { return r.second.tag; }, false);
      break;
    case BufferSort::kKind:
    case BufferSort::kPid:
      break;
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
