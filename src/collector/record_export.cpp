// Exporting recordings: Perfetto trace-event JSON, JSON, CSV and the state at one moment.
#include "collector/recording.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/format.h"
#include "common/kinds.h"

namespace ttmem::collector {

using common::arch_name;
using common::format_chip_id;
using common::kind_name;

namespace pr = protocol;
namespace rf = protocol::record;
using nlohmann::json;

namespace {

// Reserved bytes an event adds or removes; CB_FREE_ALL and CB_FREE_PROGRAM carry the freed
// bytes in `size`.
uint64_t event_reserved(const Recording& r, const Recording::Event& e) {
  const auto& ev = e.event;
  if (ev.type == uint8_t(pr::EventType::CbFreeAll) ||
      ev.type == uint8_t(pr::EventType::CbFreeProgram)) {
    return ev.size;
  }
  return r.reserved_of(e.process, e.device, ev.kind, ev.size, ev.size_per_bank, ev.num_cores);
}

// Tags and commands came from other processes: invalid UTF-8 is replaced, never fatal.
std::string dump(const json& j) {
  return j.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string counter_name(uint32_t kind) {
  return std::string(kind_name(kind)) + (kind == uint32_t(Kind::Cb) ? " covered" : " reserved");
}

}  // namespace

std::string export_perfetto(const Recording& r) {
  const uint64_t start = recording_start_ns(r);
  auto ts = [&](uint64_t t) { return double(t < start ? 0 : t - start) / 1000.0; };
  // One trace "process" per chip, in chip-id order.
  std::map<uint64_t, int> chip_pid;
  for (const auto& [key, slot] : r.devices) chip_pid.emplace(slot.chip_id, 0);
  int next = 1;
  for (auto& [chip, pid] : chip_pid) pid = next++;
  json events = json::array();
  for (const auto& [chip, pid] : chip_pid) {
    uint32_t logical = 0;
    for (const auto& [key, slot] : r.devices) {
      if (slot.chip_id == chip) logical = key.second;
    }
    events.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", pid},
                      {"args", {{"name", fmt::format("device {} (chip {:#x})", logical, chip)}}}});
  }

  // Slices per buffer lifetime; counters are the replay's exact figures.
  class Trace : public ReplayVisitor {
   public:
    Trace(const Recording& r, std::map<uint64_t, int>& chip_pid, json& events,
          std::function<double(uint64_t)> ts)
        : r_(r), chip_pid_(chip_pid), events_(events), ts_(std::move(ts)) {}
    void begin(const RecordedBuffer& b, uint64_t t) override {
      std::string base =
          fmt::format("p{}.d{}.{}{}", b.process, b.device,
                      b.record.kind == uint8_t(Kind::Cb) ? "cb" : "b", b.record.buffer_id);
      std::string id = fmt::format("{}.{}", base, serial_[base]++);
      open_[key_of(b)] = id;
      events_.push_back({{"ph", "b"}, {"cat", kind_name(b.record.kind)}, {"name", name(b)},
                         {"id", id}, {"pid", pid(b)}, {"tid", 0}, {"ts", ts_(t)},
                         {"args", {{"pid", r_.processes[b.process].pid},
                                   {"buffer_id", b.record.buffer_id},
                                   {"address", b.record.address},
                                   {"size_bytes", b.record.size},
                                   {"reserved_bytes", b.reserved}}}});
    }
    void end(const RecordedBuffer& b, uint64_t t) override {
      auto it = open_.find(key_of(b));
      if (it == open_.end()) return;
      events_.push_back({{"ph", "e"}, {"cat", kind_name(b.record.kind)}, {"name", name(b)},
                         {"id", it->second}, {"pid", pid(b)}, {"tid", 0}, {"ts", ts_(t)}});
      open_.erase(it);
    }
    void usage(uint64_t t, uint64_t chip, uint32_t kind, uint64_t bytes) override {
      events_.push_back({{"ph", "C"}, {"name", counter_name(kind)}, {"pid", chip_pid_[chip]},
                         {"ts", ts_(t)}, {"args", {{"bytes", bytes}}}});
    }

   private:
    int pid(const RecordedBuffer& b) { return chip_pid_[r_.chip_id(b.process, b.device)]; }
    std::string name(const RecordedBuffer& b) const {
      const std::string& tag = r_.strings[b.record.tag];
      return tag.empty() ? std::string(kind_name(b.record.kind)) + " buffer" : tag;
    }
    const Recording& r_;
    std::map<uint64_t, int>& chip_pid_;
    json& events_;
    std::function<double(uint64_t)> ts_;
    std::map<std::string, uint32_t> serial_;
    std::map<LiveKey, std::string> open_;
  } trace(r, chip_pid, events, ts);

  // At the recording's end the slices of what is still live close; the buffers were not freed,
  // so the counters keep their values.
  const uint64_t last = std::max(r.end_ns, start);
  for (const auto& b : replay(r, trace)) trace.end(b, last);
  for (const auto& i : r.instants) {
    const bool gap = i.what == "dropped events";
    json ev = {{"ph", "i"},
               {"name", gap ? fmt::format("gap: {} events missed", i.count) : i.what},
               {"ts", ts(i.time_ns)},
               {"args", {{"count", i.count}, {"pid", r.processes[i.process].pid}}}};
    if (i.device == UINT32_MAX) {
      ev["s"] = "g";
      ev["pid"] = 0;
    } else {
      ev["s"] = "p";
      ev["pid"] = chip_pid[r.chip_id(i.process, i.device)];
    }
    events.push_back(ev);
  }
  json out = {{"traceEvents", events}, {"displayTimeUnit", "ms"},
              {"otherData", {{"source", "ttmem"}, {"recording_version", r.header.version}}}};
  return dump(out);
}

namespace {

const char* event_name(uint8_t type) {
  switch (pr::EventType(type)) {
    case pr::EventType::Alloc: return "alloc";
    case pr::EventType::Free: return "free";
    case pr::EventType::CbAlloc: return "cb_alloc";
    case pr::EventType::CbFreeAll: return "cb_free_all";
    case pr::EventType::CbFreeProgram: return "cb_free_program";
  }
  return "?";
}

}  // namespace

std::string export_json(const Recording& r) {
  const uint64_t start = recording_start_ns(r);
  json processes = json::array(), devices = json::array(), events = json::array(),
       checkpoints = json::array(), instants = json::array();
  for (size_t i = 0; i < r.processes.size(); ++i) {
    const auto& p = r.processes[i];
    processes.push_back({{"process", i}, {"pid", p.pid}, {"start_time", p.start_time},
                         {"command", p.command}, {"leaked_buffers", p.leaked},
                         {"end_ns", p.end_ns ? json(*p.end_ns - std::min(*p.end_ns, start)) : json()}});
  }
  for (const auto& [key, slot] : r.devices) {
    devices.push_back({{"process", key.first},
                       {"device", key.second},
                       {"chip_id", format_chip_id(slot.chip_id)},
                       {"arch", arch_name(slot.arch)}});
  }
  for (const auto& e : r.events) {
    const auto& ev = e.event;
    events.push_back({{"t_ns", e.time_ns - std::min(e.time_ns, start)}, {"process", e.process},
                      {"device", e.device},
                      {"chip_id", format_chip_id(r.chip_id(e.process, e.device))},
                      {"event", event_name(ev.type)}, {"kind", kind_name(ev.kind)},
                      {"buffer_id", ev.buffer_id}, {"address", ev.address}, {"size_bytes", ev.size},
                      {"reserved_bytes", event_reserved(r, e)},
                      {"tag", r.strings[ev.tag]}});
  }
  for (const auto& c : r.checkpoints) {
    checkpoints.push_back({{"t_ns", c.time_ns - std::min(c.time_ns, start)},
                           {"buffers", c.buffers.size()}});
  }
  for (const auto& i : r.instants) {
    instants.push_back({{"t_ns", i.time_ns - std::min(i.time_ns, start)}, {"process", i.process},
                        {"what", i.what}, {"count", i.count},
                        {"device", i.device == UINT32_MAX ? json() : json(i.device)}});
  }
  json out = {{"version", r.header.version},
              {"created_realtime_ns", r.header.created_realtime_ns},
              {"checkpoint_interval_ms", r.header.checkpoint_interval_ms},
              {"duration_ns", r.end_ns - std::min(r.end_ns, start)},
              {"processes", processes}, {"devices", devices}, {"events", events},
              {"checkpoints", checkpoints}, {"instants", instants}};
  return dump(out);
}

std::string export_csv(const Recording& r) {
  const uint64_t start = recording_start_ns(r);
  std::string out =
      "t_ns,pid,chip_id,device,event,kind,buffer_id,address,size_bytes,reserved_bytes,tag\n";
  for (const auto& e : r.events) {
    const auto& ev = e.event;
    std::string tag = r.strings[ev.tag];
    // RFC 4180: quote a field with a comma, quote or newline; double inner quotes.
    if (tag.find_first_of(",\"\n") != std::string::npos) {
      std::string q = "\"";
      for (char c : tag) q += c == '"' ? std::string("\"\"") : std::string(1, c);
      tag = q + "\"";
    }
    out += fmt::format("{},{},{:#x},{},{},{},{},{:#x},{},{},{}\n", e.time_ns - std::min(e.time_ns, start),
                       r.processes[e.process].pid, r.chip_id(e.process, e.device), e.device,
                       event_name(ev.type), kind_name(ev.kind), ev.buffer_id, ev.address, ev.size,
                       event_reserved(r, e), tag);
  }
  return out;
}

std::string export_state_json(const Recording& r, uint64_t at_ns) {
  const uint64_t start = recording_start_ns(r);
  // Each chip's figures as the replay left them: reserved bytes, CB the L1 covered.
  struct Figures : ReplayVisitor {
    std::map<uint64_t, std::array<uint64_t, pr::kNumKinds>> bytes;
    void usage(uint64_t, uint64_t chip, uint32_t kind, uint64_t b) override { bytes[chip][kind] = b; }
  } figures;
  std::map<uint64_t, std::array<std::array<uint64_t, 2>, pr::kNumKinds>> per_chip;
  json buffers = json::array();
  for (const auto& b : state_at(r, start + at_ns, figures)) {
    uint64_t chip = r.chip_id(b.process, b.device);
    auto& k = per_chip[chip][b.record.kind];
    k[0] += b.record.size;
    k[1] += 1;
    buffers.push_back({{"pid", r.processes[b.process].pid}, {"chip_id", format_chip_id(chip)},
                       {"device", b.device}, {"kind", kind_name(b.record.kind)},
                       {"buffer_id", b.record.buffer_id}, {"address", b.record.address},
                       {"size_bytes", b.record.size}, {"reserved_bytes", b.reserved},
                       {"tag", r.strings[b.record.tag]}});
  }
  json devices = json::array();
  for (const auto& [chip, kinds] : per_chip) {
    json k = json::object();
    for (uint32_t i = 0; i < pr::kNumKinds; ++i) {
      const uint64_t reserved = figures.bytes[chip][i];
      // CB sets overlap: both figures are the L1 they cover, never a sum of the sets.
      const uint64_t requested = i == uint32_t(Kind::Cb) ? reserved : kinds[i][0];
      k[std::string(kind_name(i))] = {{"requested_bytes", requested},
                                      {"reserved_bytes", reserved}, {"buffers", kinds[i][1]}};
    }
    devices.push_back({{"chip_id", format_chip_id(chip)}, {"kinds", k}});
  }
  return dump({{"at_ns", at_ns}, {"devices", devices}, {"buffers", buffers}});
}

}  // namespace ttmem::collector
