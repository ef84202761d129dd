#include "collector/query.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/kinds.h"

namespace ttmem {

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
  if (f.sort == BufferSort::Size) {
    std::stable_sort(out.rows.begin(), out.rows.end(),
                     [](auto* x, auto* y) { return x->reserved > y->reserved; });
  } else {
    std::stable_sort(out.rows.begin(), out.rows.end(),
                     [](auto* x, auto* y) { return x->time_ns < y->time_ns; });
  }
  out.total = out.rows.size();
  if (f.limit != 0 && out.rows.size() > f.limit) out.rows.resize(f.limit);
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

}  // namespace ttmem
