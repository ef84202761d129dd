#include "collector/json.h"

#include "common/kinds.h"

namespace ttmem {

using nlohmann::json;

namespace {

template <class Array>
json per_kind(const Array& values) {
  json j = json::object();
  for (uint32_t k = 0; k < kNumKinds; ++k) j[std::string(kind_name(k))] = values[k];
  return j;
}

}  // namespace

json to_json(const KindUsage& k) {
  return {{"requested_bytes", k.requested},
          {"reserved_bytes", k.reserved},
          {"peak_bytes", k.peak},
          {"buffers", k.count},
          {"total_allocs", k.total_allocs},
          {"total_frees", k.total_frees},
          {"capacity_bytes", k.capacity},
          {"banks", k.num_banks},
          {"bank_size_bytes", k.bank_size},
          {"bank_base", k.bank_base},
          {"largest_free_block_bytes", k.largest_free_block},
          {"free_per_bank_bytes", k.free_per_bank},
          {"fragmentation", k.fragmentation}};
}

json to_json(const DeviceView& d) {
  json kinds = json::object();
  for (uint32_t k = 0; k < kNumKinds; ++k) kinds[std::string(kind_name(k))] = to_json(d.kinds[k]);
  return {{"chip_id", d.chip_id},
          {"logical_ids", d.logical_ids},
          {"arch", arch_name(d.arch)},
          {"board", d.board},
          {"grid", {d.grid_x, d.grid_y}},
          {"l1_per_core_bytes", d.l1_per_core},
          {"unreserved_base", d.unreserved_base},
          {"trace_region_size_bytes", d.trace_region_size},
          {"l1_small_size_bytes", d.l1_small_size},
          {"kinds", kinds},
          {"cb_region_end", d.cb_region_end},
          {"lowest_l1_address", d.lowest_l1_address},
          {"has_l1_buffers", d.has_l1_buffers},
          {"clash_margin_bytes", d.clash_margin},
          {"dropped_events", d.dropped_events}};
}

json to_json(const ProcessView& p) {
  return {{"pid", p.pid},
          {"start_time", p.start_time},
          {"uid", p.uid},
          {"command", p.command},
          {"segment", p.segment},
          {"exited", p.exited},
          {"reserved_bytes", per_kind(p.reserved)},
          {"requested_bytes", per_kind(p.requested)},
          {"buffers", p.buffers},
          {"cbs", p.cbs},
          {"dropped_events", p.dropped_events},
          {"slab_overflow", p.counters.slab_overflow},
          {"unknown_frees", p.counters.unknown_frees},
          {"duplicate_allocs", p.counters.duplicate_allocs},
          {"invalid_calls", p.counters.invalid_calls},
          {"cb_overflow", p.counters.cb_overflow},
          {"torn_records", p.torn_records},
          {"corrupt_records", p.corrupt_records}};
}

json to_json(const BufferView& b) {
  json j = {{"pid", b.pid},
            {"chip_id", b.chip_id},
            {"device", b.device},
            {"kind", kind_name(b.kind)},
            {"buffer_id", b.buffer_id},
            {"address", b.address},
            {"size_bytes", b.size},
            {"size_per_bank_bytes", b.size_per_bank},
            {"reserved_bytes", b.reserved},
            {"page_size", b.page_size},
            {"banks", b.num_banks},
            {"cores", b.num_cores},
            {"tag", b.tag},
            {"time_ns", b.time_ns}};
  if (b.kind == uint32_t(protocol::Kind::Cb)) {
    j["program_id"] = b.buffer_id;
    j["core_range"] = {b.core_bbox[0], b.core_bbox[1], b.core_bbox[2], b.core_bbox[3]};
  } else {
    j["layout"] = layout_name(b.layout);
  }
  return j;
}

json to_json(const LeakRecord& l) {
  return {{"pid", l.pid},
          {"process_start_time", l.process_start_time},
          {"command", l.command},
          {"detected_realtime_ns", l.detected_realtime_ns},
          {"chip_id", l.chip_id},
          {"device", l.device},
          {"kind", kind_name(l.kind)},
          {"buffer_id", l.buffer_id},
          {"address", l.address},
          {"size_bytes", l.size},
          {"reserved_bytes", l.reserved},
          {"tag", l.tag},
          {"time_ns", l.time_ns}};
}

json to_json(const TagUsage& t) {
  return {{"tag", t.tag}, {"reserved_bytes", per_kind(t.reserved)}, {"buffers", t.buffers}};
}

json to_json(const SegmentProblem& p) { return {{"path", p.path}, {"error", p.error}}; }

json status_json(const Snapshot& s) {
  json devices = json::array(), processes = json::array(), problems = json::array();
  for (const auto& d : s.devices) devices.push_back(to_json(d));
  for (const auto& p : s.processes) processes.push_back(to_json(p));
  for (const auto& p : s.problems) problems.push_back(to_json(p));
  return {{"segment_dir", s.segment_dir},
          {"taken_realtime_ns", s.taken_realtime_ns},
          {"devices", devices},
          {"processes", processes},
          {"dropped_events", s.dropped_events},
          {"leaked_buffers", s.leaks.size()},
          {"problems", problems}};
}

json buffers_json(const BufferSelection& selection) {
  json arr = json::array();
  for (const BufferView* b : selection.rows) arr.push_back(to_json(*b));
  return {{"total", selection.total}, {"buffers", arr}};
}

json leaks_json(const std::vector<LeakRecord>& leaks) {
  json arr = json::array();
  for (const auto& l : leaks) arr.push_back(to_json(l));
  return {{"leaks", arr}};
}

LeakRecord leak_from_json(const json& j) {
  LeakRecord l;
  l.pid = j.at("pid").get<pid_t>();
  l.process_start_time = j.at("process_start_time").get<uint64_t>();
  l.command = j.at("command").get<std::string>();
  l.detected_realtime_ns = j.at("detected_realtime_ns").get<uint64_t>();
  l.chip_id = j.at("chip_id").get<uint64_t>();
  l.device = j.at("device").get<uint32_t>();
  auto kind = parse_kind(j.at("kind").get<std::string>());
  if (!kind) throw json::other_error::create(501, "unknown kind", &j);
  l.kind = *kind;
  l.buffer_id = j.at("buffer_id").get<uint64_t>();
  l.address = j.at("address").get<uint64_t>();
  l.size = j.at("size_bytes").get<uint64_t>();
  l.reserved = j.at("reserved_bytes").get<uint64_t>();
  l.tag = j.at("tag").get<std::string>();
  l.time_ns = j.at("time_ns").get<uint64_t>();
  return l;
}

}  // namespace ttmem
