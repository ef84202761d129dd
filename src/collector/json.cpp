#include "collector/json.h"

#include <fmt/format.h>

#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include "common/format.h"
#include "common/kinds.h"

namespace ttmem::collector {

using common::arch_name;
using common::format_chip_id;
using common::kind_name;
using common::layout_name;
using common::parse_kind;
using common::parse_chip_id;

using nlohmann::json;

namespace {

// Builds a JSON object a member at a time, moving nested values in. nlohmann's
// {{"key", value}, ...} makes each pair a two-element array before it becomes a member, and
// copies every nested object or array it is given: building a Galaxy host's status (32 chips,
// 64 processes) that way took twice as long.
class Object {
 public:
  template <class T>
  Object& add(std::string_view key, T&& value) & {
    members_->emplace(std::string(key), std::forward<T>(value));
    return *this;
  }
  // The same on a temporary, so that a chain of add()s can be returned as it is.
  template <class T>
  Object&& add(std::string_view key, T&& value) && {
    return std::move(add(key, std::forward<T>(value)));
  }
  operator json() && { return std::move(object_); }

 private:
  json object_ = json::object();
  json::object_t* members_ = object_.get_ptr<json::object_t*>();
};

// An object keyed by kind name (DRAM, L1, ...), of `value` applied to each of `values`.
template <class Array, class Value = std::identity>
json per_kind(const Array& values, Value value = {}) {
  Object o;
  for (uint32_t k = 0; k < kNumKinds; ++k) o.add(kind_name(k), value(values[k]));
  return o;
}

}  // namespace

json to_json(const KindUsage& k) {
  return Object()
      .add("requested_bytes", k.requested)
      .add("reserved_bytes", k.reserved)
      .add("peak_bytes", k.peak)
      .add("buffers", k.count)
      .add("total_allocs", k.total_allocs)
      .add("total_frees", k.total_frees)
      .add("capacity_bytes", k.capacity)
      .add("banks", k.num_banks)
      .add("bank_size_bytes", k.bank_size)
      .add("bank_base", k.bank_base)
      .add("largest_free_block_bytes", k.largest_free_block)
      .add("free_per_bank_bytes", k.free_per_bank)
      .add("fragmentation", k.fragmentation);
}

json to_json(const TtMetalChipCounters& c) {
  json remote = json::array();
  for (const auto& r : c.remote_chips) {
    remote.push_back(
        Object().add("logical_id", r.logical_id).add("allocated_bytes", per_kind(r.bytes)));
  }
  return Object()
      .add("path", c.path)
      .add("version", c.version)
      .add("creator_logical_id", c.creator_logical_id)
      .add("board_serial", format_chip_id(c.board_serial))  // 64 bits: a hex string, as chip ids
      .add("last_update_realtime_ns", c.last_update_realtime_ns)
      .add("total_allocated_bytes", per_kind(c.totals))
      .add("totals_stale", c.totals_stale)
      .add("live_processes", c.live_processes)
      .add("stale_processes", c.stale_processes)
      .add("remote_chips", std::move(remote));
}

// What a device's client registered for it (its descriptor), by JSON name: the one list that
// to_json(DeviceView) writes and device_from_json() reads. The arch (by name) and the grid (a
// pair) are written and read beside it, and so is the chip id, which is a hex string.
template <class View, class Visit>
void descriptor_fields(View& d, Visit&& visit) {
  visit("logical_ids", d.logical_ids);
  visit("board", d.board);
  visit("l1_per_core_bytes", d.l1_per_core);
  visit("unreserved_base", d.unreserved_base);
  visit("trace_region_size_bytes", d.trace_region_size);
  visit("l1_small_size_bytes", d.l1_small_size);
}

json to_json(const DeviceView& d) {
  Object out;
  out.add("detail", d.detail)
      .add("tt_metal_shm", d.tt_metal ? to_json(*d.tt_metal) : json(nullptr))
      .add("arch", arch_name(d.arch))
      .add("grid", json::array({d.grid_x, d.grid_y}))
      .add("kinds", per_kind(d.kinds, [](const KindUsage& k) { return to_json(k); }))
      .add("cb_region_end", d.cb_region_end)
      .add("cb_region_in_use_bytes", d.cb_region_in_use())
      .add("cb_programs", d.cb_programs)
      .add("lowest_l1_address", d.lowest_l1_address)
      .add("has_l1_buffers", d.has_l1_buffers)
      .add("clash_margin_bytes", d.clash_margin)
      .add("dropped_events", d.dropped_events)
      .add("chip_id", format_chip_id(d.chip_id));  // a string: jq and JavaScript round 64 bits
  descriptor_fields(d, [&](const char* key, const auto& value) { out.add(key, value); });
  return out;
}

json to_json(const ProcessView& p) {
  return Object()
      .add("pid", p.pid)
      .add("start_time", p.start_time)
      .add("uid", p.uid)
      .add("command", p.command)
      .add("source", p.source)
      .add("counted", p.counted)
      .add("stale", p.stale)
      .add("reported_bytes", per_kind(p.reported))
      .add("chips", p.chips)
      .add("segment", p.segment)
      .add("segment_check", p.segment_check)
      .add("exited", p.exited)
      .add("reserved_bytes", per_kind(p.reserved))
      .add("requested_bytes", per_kind(p.requested))
      .add("buffers", p.buffers)
      .add("cbs", p.cbs)
      .add("cb_programs", p.cb_programs)
      .add("dropped_events", p.dropped_events)
      .add("slab_overflow", p.counters.slab_overflow)
      .add("unknown_frees", p.counters.unknown_frees)
      .add("duplicate_allocs", p.counters.duplicate_allocs)
      .add("invalid_calls", p.counters.invalid_calls)
      .add("cb_overflow", p.counters.cb_overflow)
      .add("tag_overflow", p.counters.tag_overflow)
      .add("torn_records", p.torn_records)
      .add("corrupt_records", p.corrupt_records);
}

namespace {

// What a live buffer (BufferView) and a leaked one (LeakRecord) both say, by the same names.
template <class Buffer>
Object buffer_object(const Buffer& b) {
  Object o;
  o.add("pid", b.pid)
      .add("chip_id", format_chip_id(b.chip_id))
      .add("device", b.device)
      .add("kind", kind_name(b.kind))
      .add("buffer_id", b.buffer_id)
      .add("address", b.address)
      .add("size_bytes", b.size)
      .add("reserved_bytes", b.reserved)
      .add("tag", b.tag)
      .add("time_ns", b.time_ns);
  return o;
}

}  // namespace

json to_json(const BufferView& b) {
  Object j = buffer_object(b);
  j.add("size_per_bank_bytes", b.size_per_bank)
      .add("page_size", b.page_size)
      .add("banks", b.num_banks)
      .add("cores", b.num_cores);
  if (b.kind == uint32_t(Kind::Cb)) {
    // size_bytes of a CB is per core (reserved_bytes: per core x cores); the name says so here.
    j.add("size_per_core_bytes", b.size)
        .add("program_id", b.buffer_id)
        .add("core_range",
             json::array({b.core_bbox[0], b.core_bbox[1], b.core_bbox[2], b.core_bbox[3]}));
  } else {
    j.add("layout", layout_name(b.layout));
  }
  return j;
}

json to_json(const LeakRecord& l) {
  return buffer_object(l)
      .add("process_start_time", l.process_start_time)
      .add("command", l.command)
      .add("detected_realtime_ns", l.detected_realtime_ns);
}

json to_json(const TagUsage& t) {
  return Object()
      .add("tag", t.tag)
      .add("reserved_bytes", per_kind(t.reserved))
      .add("buffers", t.buffers);
}

json to_json(const SegmentProblem& p) {
  return Object()
      .add("path", p.path)
      .add("error", p.error)
      .add("rejected", p.rejected)
      .add("leaks", p.leaks);
}

json status_json(const Snapshot& s) {
  json devices = json::array(), processes = json::array(), problems = json::array();
  for (const auto& d : s.devices) devices.push_back(to_json(d));
  for (const auto& p : s.processes) processes.push_back(to_json(p));
  for (const auto& p : s.problems) problems.push_back(to_json(p));
  return Object()
      .add("segment_dir", s.segment_dir)
      .add("segment_dir_missing", s.segment_dir_missing)
      .add("taken_realtime_ns", s.taken_realtime_ns)
      .add("taken_monotonic_ns", s.taken_monotonic_ns)
      .add("devices", std::move(devices))
      .add("processes", std::move(processes))
      .add("dropped_events", s.dropped_events)
      .add("leaked_buffers", s.leaks.count())
      .add("problems", std::move(problems));
}

json buffers_json(const BufferSelection& selection) {
  json arr = json::array();
  for (const BufferView* b : selection.rows) arr.push_back(to_json(*b));
  return Object().add("total", selection.total).add("buffers", std::move(arr));
}

json to_json(const ProgramCbSet& p) {
  return Object()
      .add("pid", p.pid)
      .add("chip_id", format_chip_id(p.chip_id))
      .add("device", p.device)
      .add("program_id", p.program_id)
      .add("cb_bytes", p.bytes)
      .add("region_end", p.region_end)
      .add("records", p.records)
      .add("tag", p.tag);
}

json programs_json(const std::vector<ProgramCbSet>& programs) {
  json arr = json::array();
  for (const ProgramCbSet& p : programs) arr.push_back(to_json(p));
  return Object().add("programs", std::move(arr));
}

json leaks_json(const LeakList& leaks) {
  json arr = json::array();
  for (const auto& l : leaks) arr.push_back(to_json(l));
  return Object().add("leaks", std::move(arr));
}

// ---------------------------------------------------------------------------------------------
// From JSON: every field checked, since the input may come from another host.

namespace {

// The readers below take either DOM: nlohmann's, or the leaner JsonValue that the answers of a
// ttmemd are parsed into (json_reader.h). These few helpers are where the two differ.

template <class J>
[[noreturn]] void malformed(const J& j, const std::string& what) {
  if constexpr (std::is_same_v<J, json>) {
    throw json::other_error::create(501, what, &j);
  } else {
    throw json::other_error::create(501, what, nullptr);
  }
}

// The member `key` of object `j`, or null.
const json* member(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}
const JsonValue* member(const JsonValue& j, const char* key) { return j.find(key); }

std::string_view text_of(const json& v) { return v.get_ref<const std::string&>(); }
std::string_view text_of(const JsonValue& v) { return v.string_view(); }

template <class J>
const J& field(const J& j, const char* key) {
  if (!j.is_object()) malformed(j, fmt::format("expected an object with '{}'", key));
  const J* found = member(j, key);
  if (found == nullptr) malformed(j, fmt::format("'{}' is missing", key));
  return *found;
}

template <class T, class J>
T integer(const J& v, const char* key) {
  if (v.is_number_unsigned()) {
    auto u = v.template get<uint64_t>();
    if (std::in_range<T>(u)) return T(u);
  } else if (v.is_number_integer()) {
    auto i = v.template get<int64_t>();
    if (std::in_range<T>(i)) return T(i);
  }
  malformed(v, fmt::format("'{}' must be a whole number from {} to {}", key,
                           std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
}

template <class T, class J>
T integer_field(const J& j, const char* key) {
  return integer<T>(field(j, key), key);
}

// A 64-bit id written as a hex string, "0x7000" as format_chip_id() writes it; an older ttmemd
// wrote chip ids as whole numbers.
template <class J>
uint64_t hex_id_field(const J& j, const char* key) {
  const J& v = field(j, key);
  if (!v.is_string()) return integer<uint64_t>(v, key);
  auto id = parse_chip_id(text_of(v));
  if (!id) malformed(v, fmt::format("'{}' must be \"0x\" and 1 to 16 hex digits", key));
  return *id;
}

template <class J>
uint64_t chip_id_field(const J& j) { return hex_id_field(j, "chip_id"); }

template <class J>
std::string string_field(const J& j, const char* key) {
  const J& v = field(j, key);
  if (!v.is_string()) malformed(v, fmt::format("'{}' must be a string", key));
  return v.template get<std::string>();
}

template <class J>
bool bool_field(const J& j, const char* key) {
  const J& v = field(j, key);
  if (!v.is_boolean()) malformed(v, fmt::format("'{}' must be true or false", key));
  return v.template get<bool>();
}

template <class J>
double number_field(const J& j, const char* key) {
  const J& v = field(j, key);
  if (!v.is_number()) malformed(v, fmt::format("'{}' must be a number", key));
  return v.template get<double>();
}

template <class J>
const J& array_field(const J& j, const char* key) {
  const J& v = field(j, key);
  if (!v.is_array()) malformed(v, fmt::format("'{}' must be an array", key));
  return v;
}

// An array of exactly `out.size()` (or any number, into a vector) whole numbers.
template <class T, size_t N, class J>
void integers_field(const J& j, const char* key, std::array<T, N>& out) {
  const J& v = array_field(j, key);
  if (v.size() != N) malformed(v, fmt::format("'{}' must have {} elements", key, N));
  for (size_t i = 0; i < N; ++i) out[i] = integer<T>(v[i], key);
}

template <class T, class J>
void integers_field(const J& j, const char* key, std::vector<T>& out) {
  for (const J& x : array_field(j, key)) out.push_back(integer<T>(x, key));
}

// One field into `out`, checked as its type requires.
template <class T, class J>
void read_field(const J& j, const char* key, T& out) {
  if constexpr (std::is_same_v<T, std::string>) {
    out = string_field(j, key);
  } else if constexpr (std::is_integral_v<T>) {
    out = integer_field<T>(j, key);
  } else {
    integers_field(j, key, out);
  }
}

template <class J>
uint32_t kind_field(const J& j) {
  auto kind = parse_kind(string_field(j, "kind"));
  if (!kind) {
    malformed(j, fmt::format("unknown kind '{}'", text_of(field(j, "kind")).substr(0, 64)));
  }
  return *kind;
}

// The value whose name(value) is the field's text; names are few, so a scan is enough.
template <class J>
uint32_t named_field(const J& j, const char* key, std::string_view (*name)(uint32_t),
                     uint32_t count) {
  std::string text = string_field(j, key);
  for (uint32_t v = 0; v < count; ++v) {
    if (name(v) == text) return v;
  }
  malformed(j, fmt::format("unknown {} '{}'", key, text.substr(0, 64)));
}

template <class J, class Array>
void per_kind_field(const J& j, const char* key, Array& out) {
  const J& v = field(j, key);
  for (uint32_t k = 0; k < kNumKinds; ++k) {
    out[k] = integer_field<uint64_t>(v, std::string(kind_name(k)).c_str());
  }
}

template <class J>
KindUsage kind_usage_from_json(const J& j) {
  KindUsage k;
  k.requested = integer_field<uint64_t>(j, "requested_bytes");
  k.reserved = integer_field<uint64_t>(j, "reserved_bytes");
  k.peak = integer_field<uint64_t>(j, "peak_bytes");
  k.count = integer_field<uint64_t>(j, "buffers");
  k.total_allocs = integer_field<uint64_t>(j, "total_allocs");
  k.total_frees = integer_field<uint64_t>(j, "total_frees");
  k.capacity = integer_field<uint64_t>(j, "capacity_bytes");
  k.num_banks = integer_field<uint32_t>(j, "banks");
  k.bank_size = integer_field<uint64_t>(j, "bank_size_bytes");
  k.bank_base = integer_field<uint64_t>(j, "bank_base");
  k.largest_free_block = integer_field<uint64_t>(j, "largest_free_block_bytes");
  k.free_per_bank = integer_field<uint64_t>(j, "free_per_bank_bytes");
  k.fragmentation = number_field(j, "fragmentation");
  return k;
}

template <class J>
DeviceView device_from_json(const J& j) {
  DeviceView d;
  d.chip_id = chip_id_field(j);
  descriptor_fields(d, [&](const char* key, auto& value) { read_field(j, key, value); });
  d.arch = named_field(j, "arch", arch_name, 4);
  std::array<uint16_t, 2> grid{};
  integers_field(j, "grid", grid);
  d.grid_x = grid[0];
  d.grid_y = grid[1];
  const J& kinds = field(j, "kinds");
  for (uint32_t k = 0; k < kNumKinds; ++k) {
    d.kinds[k] = kind_usage_from_json(field(kinds, std::string(kind_name(k)).c_str()));
  }
  d.cb_region_end = integer_field<uint64_t>(j, "cb_region_end");
  d.cb_programs = integer_field<uint64_t>(j, "cb_programs");
  // Derived from the two fields above; a document where it disagrees was not written by ttmem.
  if (integer_field<uint64_t>(j, "cb_region_in_use_bytes") != d.cb_region_in_use()) {
    malformed(field(j, "cb_region_in_use_bytes"),
              "'cb_region_in_use_bytes' must be cb_region_end - unreserved_base");
  }
  d.lowest_l1_address = integer_field<uint64_t>(j, "lowest_l1_address");
  d.has_l1_buffers = bool_field(j, "has_l1_buffers");
  d.clash_margin = integer_field<int64_t>(j, "clash_margin_bytes");
  d.dropped_events = integer_field<uint64_t>(j, "dropped_events");
  // Absent from an older ttmemd's documents: then every chip had ttmem's detail.
  if (j.contains("detail")) {
    d.detail = string_field(j, "detail") == kDetailCounters ? kDetailCounters : kDetailBuffers;
  }
  if (j.contains("tt_metal_shm") && !field(j, "tt_metal_shm").is_null()) {
    const J& t = field(j, "tt_metal_shm");
    TtMetalChipCounters& c = d.tt_metal.emplace();
    c.path = string_field(t, "path");
    c.version = integer_field<uint32_t>(t, "version");
    c.creator_logical_id = integer_field<uint32_t>(t, "creator_logical_id");
    c.board_serial = hex_id_field(t, "board_serial");
    c.last_update_realtime_ns = integer_field<uint64_t>(t, "last_update_realtime_ns");
    per_kind_field(t, "total_allocated_bytes", c.totals);
    c.totals_stale = bool_field(t, "totals_stale");
    c.live_processes = integer_field<uint64_t>(t, "live_processes");
    c.stale_processes = integer_field<uint64_t>(t, "stale_processes");
    for (const J& r : array_field(t, "remote_chips")) {
      TtMetalChipCounters::RemoteChip& chip = c.remote_chips.emplace_back();
      chip.logical_id = integer_field<uint32_t>(r, "logical_id");
      per_kind_field(r, "allocated_bytes", chip.bytes);
    }
  }
  return d;
}

template <class J>
ProcessView process_from_json(const J& j) {
  ProcessView p;
  p.pid = integer_field<pid_t>(j, "pid");
  p.start_time = integer_field<uint64_t>(j, "start_time");
  p.uid = integer_field<uint32_t>(j, "uid");
  p.command = string_field(j, "command");
  // Absent from an older ttmemd's documents: then every process was ttmem's.
  if (j.contains("source")) {
    p.source = string_field(j, "source") == kSourceTtMetalShm ? kSourceTtMetalShm : kSourceTtmem;
    p.counted = bool_field(j, "counted");
    p.stale = bool_field(j, "stale");
    per_kind_field(j, "reported_bytes", p.reported);
    // null: no chips (what an empty list becomes when a document is flattened and rebuilt).
    if (!field(j, "chips").is_null()) integers_field(j, "chips", p.chips);
  }
  p.segment = string_field(j, "segment");
  p.segment_check = string_field(j, "segment_check");
  p.exited = bool_field(j, "exited");
  per_kind_field(j, "reserved_bytes", p.reserved);
  per_kind_field(j, "requested_bytes", p.requested);
  p.buffers = integer_field<uint64_t>(j, "buffers");
  p.cbs = integer_field<uint64_t>(j, "cbs");
  p.cb_programs = integer_field<uint64_t>(j, "cb_programs");
  p.dropped_events = integer_field<uint64_t>(j, "dropped_events");
  p.counters.slab_overflow = integer_field<uint64_t>(j, "slab_overflow");
  p.counters.unknown_frees = integer_field<uint64_t>(j, "unknown_frees");
  p.counters.duplicate_allocs = integer_field<uint64_t>(j, "duplicate_allocs");
  p.counters.invalid_calls = integer_field<uint64_t>(j, "invalid_calls");
  p.counters.cb_overflow = integer_field<uint64_t>(j, "cb_overflow");
  // Absent from an older ttmemd's documents.
  if (j.contains("tag_overflow")) {
    p.counters.tag_overflow = integer_field<uint64_t>(j, "tag_overflow");
  }
  p.torn_records = integer_field<uint64_t>(j, "torn_records");
  p.corrupt_records = integer_field<uint64_t>(j, "corrupt_records");
  return p;
}

// The fields a live buffer (BufferView) and a leaked one (LeakRecord) share, by the same names.
template <class J, class Buffer>
void common_buffer_fields(const J& j, Buffer& b) {
  b.pid = integer_field<pid_t>(j, "pid");
  b.chip_id = chip_id_field(j);
  b.device = integer_field<uint32_t>(j, "device");
  b.kind = kind_field(j);
  b.buffer_id = integer_field<uint64_t>(j, "buffer_id");
  b.address = integer_field<uint64_t>(j, "address");
  b.size = integer_field<uint64_t>(j, "size_bytes");
  b.reserved = integer_field<uint64_t>(j, "reserved_bytes");
  b.tag = string_field(j, "tag");
  b.time_ns = integer_field<uint64_t>(j, "time_ns");
}

template <class J>
BufferView buffer_from_json(const J& j) {
  BufferView b;
  common_buffer_fields(j, b);
  b.size_per_bank = integer_field<uint64_t>(j, "size_per_bank_bytes");
  b.page_size = integer_field<uint32_t>(j, "page_size");
  b.num_banks = integer_field<uint32_t>(j, "banks");
  b.num_cores = integer_field<uint32_t>(j, "cores");
  if (b.kind == uint32_t(Kind::Cb)) {
    integers_field(j, "core_range", b.core_bbox);
    // Absent from an older ttmemd's documents; where present it repeats size_bytes.
    if (j.contains("size_per_core_bytes") &&
        integer_field<uint64_t>(j, "size_per_core_bytes") != b.size) {
      malformed(field(j, "size_per_core_bytes"), "'size_per_core_bytes' must be 'size_bytes'");
    }
  } else {
    // layout_name() answers "?" from 6 on; 255 stands for any such layout.
    std::string text = string_field(j, "layout");
    b.layout = text == "?" ? 255 : named_field(j, "layout", layout_name, 6);
  }
  return b;
}

template <class J>
SegmentProblem problem_from_json(const J& j) {
  // "leaks" is absent from an older ttmemd's documents.
  return {string_field(j, "path"), string_field(j, "error"), string_field(j, "rejected"),
          j.contains("leaks") && bool_field(j, "leaks")};
}

}  // namespace

template <class J>
LeakRecord read_leak(const J& j) {
  LeakRecord l;
  common_buffer_fields(j, l);
  l.process_start_time = integer_field<uint64_t>(j, "process_start_time");
  l.command = string_field(j, "command");
  l.detected_realtime_ns = integer_field<uint64_t>(j, "detected_realtime_ns");
  return l;
}

template <class J>
Snapshot read_snapshot(const J& status, const J& buffers, const J& leaks) {
  Snapshot s;
  s.segment_dir = string_field(status, "segment_dir");
  // Absent from older ttmemd versions.
  const J* missing = member(status, "segment_dir_missing");
  s.segment_dir_missing =
      missing != nullptr && missing->is_boolean() && missing->template get<bool>();
  s.taken_realtime_ns = integer_field<uint64_t>(status, "taken_realtime_ns");
  // Absent from older ttmemd versions; 0 means "now" to whoever computes ages.
  if (status.contains("taken_monotonic_ns")) {
    s.taken_monotonic_ns = integer_field<uint64_t>(status, "taken_monotonic_ns");
  }
  for (const J& d : array_field(status, "devices")) s.devices.push_back(device_from_json(d));
  for (const J& p : array_field(status, "processes")) {
    s.processes.push_back(process_from_json(p));
  }
  for (const J& p : array_field(status, "problems")) s.problems.push_back(problem_from_json(p));
  s.dropped_events = integer_field<uint64_t>(status, "dropped_events");
  if (!buffers.is_null()) {
    for (const J& b : array_field(buffers, "buffers")) s.buffers.push_back(buffer_from_json(b));
  }
  if (leaks.is_null()) {
    s.leaks = LeakList::counted_only(integer_field<uint64_t>(status, "leaked_buffers"));
  } else {
    std::vector<LeakRecord> records;
    for (const J& l : array_field(leaks, "leaks")) records.push_back(read_leak(l));
    s.leaks = LeakList(std::move(records));
  }
  return s;
}

LeakRecord leak_from_json(const json& j) { return read_leak(j); }
LeakRecord leak_from_json(const JsonValue& j) { return read_leak(j); }

Snapshot snapshot_from_json(const json& status, const json& buffers, const json& leaks) {
  return read_snapshot(status, buffers, leaks);
}
Snapshot snapshot_from_json(const JsonValue& status, const JsonValue& buffers,
                            const JsonValue& leaks) {
  return read_snapshot(status, buffers, leaks);
}

}  // namespace ttmem::collector
