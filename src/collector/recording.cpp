#include "collector/recording.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/kinds.h"

namespace ttmem {

namespace pr = protocol;
namespace rf = protocol::record;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Writing

RecordWriter::RecordWriter(const std::string& path, uint32_t checkpoint_interval_ms)
    : path_(path) {
  // Owner-only, like everything ttmem writes: a recording names every process and buffer.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  f_ = fd >= 0 ? ::fdopen(fd, "wb") : nullptr;
  if (f_ == nullptr) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error(fmt::format("cannot create {}: {}; choose another -o path", path,
                                         std::strerror(errno)));
  }
  rf::FileHeader h{};
  h.magic = rf::kFileMagic;
  h.version = rf::kFileVersion;
  h.header_size = sizeof(rf::FileHeader);
  h.record_header_size = sizeof(rf::RecordHeader);
  h.event_size = sizeof(pr::EventRecord);
  h.buffer_record_size = sizeof(pr::BufferRecord);
  h.device_slot_size = sizeof(pr::DeviceSlot);
  h.checkpoint_interval_ms = checkpoint_interval_ms;
  h.created_realtime_ns = realtime_ns();
  h.created_monotonic_ns = monotonic_ns();
  if (std::fwrite(&h, sizeof h, 1, f_) != 1) throw std::runtime_error("cannot write " + path);
}

RecordWriter::~RecordWriter() {
  if (f_ != nullptr) std::fclose(f_);
}

void RecordWriter::write(rf::RecordType type, uint64_t time_ns, const void* payload, size_t size,
                         const void* tail, size_t tail_size) {
  rf::RecordHeader h{uint16_t(type), 0, uint32_t(size + tail_size), time_ns};
  bool ok = std::fwrite(&h, sizeof h, 1, f_) == 1 &&
            (size == 0 || std::fwrite(payload, size, 1, f_) == 1) &&
            (tail_size == 0 || std::fwrite(tail, tail_size, 1, f_) == 1);
  if (!ok) {
    throw std::runtime_error(fmt::format("cannot write {}: {} (is the disk full?)", path_,
                                         std::strerror(errno)));
  }
}

void RecordWriter::close() {
  if (f_ != nullptr && std::fclose(f_) != 0) {
    f_ = nullptr;
    throw std::runtime_error(fmt::format("cannot finish {}: {}", path_, std::strerror(errno)));
  }
  f_ = nullptr;
}

Recorder::Recorder(Collector& collector, const std::string& path, uint32_t checkpoint_interval_ms)
    : collector_(collector), writer_(path, checkpoint_interval_ms),
      interval_ms_(checkpoint_interval_ms) {
  collector_.set_event_sink([this](const ProcessKey& key, uint32_t device,
                                   const pr::EventRecord& e) { on_event(key, device, e); });
}

uint32_t Recorder::process_index(const ProcessKey& key) {
  auto it = processes_.find(key);
  if (it != processes_.end()) return it->second;
  uint32_t index = uint32_t(processes_.size());
  processes_.emplace(key, index);
  rf::ProcessRecord p{index, uint32_t(key.pid), key.start_time, 0, 0};
  std::string command;
  if (auto access = collector_.process(key)) {
    p.uid = access->reader->uid();
    command = access->reader->command().substr(0, rf::kMaxCommandBytes);
  }
  writer_.write(rf::RecordType::Process, monotonic_ns(), &p, sizeof p, command.data(),
                command.size());
  return index;
}

void Recorder::ensure_device(uint32_t process, const ProcessKey& key, uint32_t device) {
  if (device >= pr::kMaxDevices || devices_.count({process, device})) return;
  auto access = collector_.process(key);
  if (!access || !access->state->devices[device]) return;
  devices_[{process, device}] = true;
  rf::DeviceRecord d{process, device, *access->state->devices[device]};
  writer_.write(rf::RecordType::Device, monotonic_ns(), &d, sizeof d);
}

uint32_t Recorder::string_id(const std::string& text) {
  if (text.empty()) return 0;
  auto it = strings_.find(text);
  if (it != strings_.end()) return it->second;
  uint32_t id = uint32_t(strings_.size() + 1);
  strings_.emplace(text, id);
  std::string t = text.substr(0, pr::kStringMaxLen);
  rf::StringRecord s{id};
  writer_.write(rf::RecordType::String, monotonic_ns(), &s, sizeof s, t.data(), t.size());
  return id;
}

void Recorder::on_event(const ProcessKey& key, uint32_t device, const pr::EventRecord& e) {
  uint32_t process = process_index(key);
  ensure_device(process, key, device);
  rf::EventEntry entry{process, device, e};
  auto access = collector_.process(key);
  entry.event.tag = access ? string_id(access->reader->tag(e.tag)) : 0;
  writer_.write(rf::RecordType::Event, e.time_ns, &entry, sizeof entry);
  ++events_;
}

void Recorder::checkpoint(uint64_t time_ns) {
  const Snapshot& s = collector_.snapshot();
  std::vector<rf::CheckpointEntry> entries;
  for (const BufferView& b : s.buffers) {
    ProcessKey key{b.pid, b.process_start_time};
    uint32_t process = process_index(key);
    ensure_device(process, key, b.device);
    rf::CheckpointEntry c{};
    c.process = process;
    c.device = b.device;
    pr::BufferRecord& r = c.buffer;
    r.device = uint8_t(b.device);
    r.kind = uint8_t(b.kind);
    r.layout = uint8_t(b.layout);
    r.flags = pr::kRecordLive;
    r.buffer_id = b.buffer_id;
    r.address = b.address;
    r.size = b.size;
    r.size_per_bank = b.size_per_bank;
    r.page_size = b.page_size;
    r.tag = string_id(b.tag);
    r.num_banks = uint16_t(b.num_banks);
    r.num_cores = uint16_t(b.num_cores);
    for (int i = 0; i < 4; ++i) r.aux |= uint32_t(b.core_bbox[size_t(i)]) << (8 * i);
    r.time_ns = b.time_ns;
    entries.push_back(c);
  }
  rf::CheckpointHead head{uint32_t(entries.size()), 0};
  writer_.write(rf::RecordType::Checkpoint, time_ns, &head, sizeof head, entries.data(),
                entries.size() * sizeof(rf::CheckpointEntry));
  last_checkpoint_ = time_ns;
}

void Recorder::after_refresh(uint64_t refresh_started_ns) {
  const Snapshot& s = collector_.snapshot();
  // Drops, problems and ends were observed by the refresh that just finished; they may have
  // happened at any time before now, so they are stamped now (a process's end comes after its
  // last event). Checkpoints keep the refresh's start time (see record_file.h).
  const uint64_t observed_ns = monotonic_ns();
  std::set<ProcessKey> present;
  for (const ProcessView& p : s.processes) {
    ProcessKey key{p.pid, p.start_time};
    present.insert(key);
    auto access = collector_.process(key);
    if (!access) continue;
    uint32_t process = process_index(key);
    for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
      uint64_t lost = access->reader->dropped(d);
      uint64_t& seen = dropped_[{process, d}];
      if (lost > seen) {
        rf::DroppedRecord r{process, d, lost - seen};
        writer_.write(rf::RecordType::Dropped, observed_ns, &r, sizeof r);
        seen = lost;
      }
    }
    const pr::ProcessCounters& now = p.counters;
    pr::ProcessCounters& before = counters_[key];
    const uint64_t pairs[][2] = {{now.slab_overflow, before.slab_overflow},
                                 {now.unknown_frees, before.unknown_frees},
                                 {now.duplicate_allocs, before.duplicate_allocs},
                                 {now.invalid_calls, before.invalid_calls},
                                 {now.cb_overflow, before.cb_overflow}};
    for (uint32_t code = 1; code <= rf::kMaxProblemCode; ++code) {
      if (pairs[code - 1][0] > pairs[code - 1][1]) {
        rf::ProblemRecord r{process, code, pairs[code - 1][0] - pairs[code - 1][1]};
        writer_.write(rf::RecordType::Problem, observed_ns, &r, sizeof r);
      }
    }
    before = now;
  }
  for (auto it = processes_.begin(); it != processes_.end(); ++it) {
    if (present.count(it->first) || counters_.count(it->first) == 0) continue;
    uint32_t leaked = uint32_t(std::count_if(s.leaks.begin(), s.leaks.end(), [&](const auto& l) {
      return l.pid == it->first.pid && l.process_start_time == it->first.start_time;
    }));
    rf::ProcessEndRecord r{it->second, leaked};
    writer_.write(rf::RecordType::ProcessEnd, observed_ns, &r, sizeof r);
    counters_.erase(it->first);  // reported once
  }
  if (!last_checkpoint_ ||
      refresh_started_ns >= *last_checkpoint_ + uint64_t(interval_ms_) * 1'000'000) {
    checkpoint(refresh_started_ns);
  }
}

void Recorder::finish(uint64_t refresh_started_ns) {
  after_refresh(refresh_started_ns);
  if (last_checkpoint_ != refresh_started_ns) checkpoint(refresh_started_ns);
  writer_.close();
}

// ---------------------------------------------------------------------------------------------
// Reading

uint64_t Recording::chip_id(uint32_t process, uint32_t device) const {
  auto it = devices.find({process, device});
  return it == devices.end() ? 0 : it->second.chip_id;
}

uint64_t Recording::reserved_of(uint32_t process, uint32_t device, uint32_t kind, uint64_t size,
                                uint64_t size_per_bank, uint32_t num_cores) const {
  auto it = devices.find({process, device});
  uint32_t banks = it == devices.end() || kind >= pr::kNumKinds ? 0 : it->second.kinds[kind].num_banks;
  return pr::reserved_bytes(kind, size, size_per_bank, num_cores, banks);
}

namespace {

// Cursor over the file's bytes; every read is bounds-checked.
class Bytes {
 public:
  explicit Bytes(std::vector<uint8_t> data) : data_(std::move(data)) {}
  size_t offset() const { return at_; }
  size_t left() const { return data_.size() - at_; }
  template <class T>
  T take() {
    T v;
    std::memcpy(&v, data_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string take_text(size_t n) {
    std::string s(reinterpret_cast<const char*>(data_.data() + at_), n);
    at_ += n;
    return s;
  }

 private:
  std::vector<uint8_t> data_;
  size_t at_ = 0;
};

}  // namespace

std::optional<Recording> read_recording(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = fmt::format("cannot open {}: {}", path, std::strerror(errno));
    return std::nullopt;
  }
  std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Bytes b(std::move(data));
  auto fail = [&](const std::string& what) {
    *error = fmt::format("{} is not a usable recording: {} (at byte {}); record it again with "
                         "`ttmem record`",
                         path, what, b.offset());
    return std::nullopt;
  };
  Recording r;
  if (b.left() < sizeof(rf::FileHeader)) return fail("shorter than the 64-byte file header");
  r.header = b.take<rf::FileHeader>();
  const rf::FileHeader& h = r.header;
  if (h.magic != rf::kFileMagic) return fail("wrong magic (not a ttmem recording)");
  if (h.version != rf::kFileVersion) {
    *error = fmt::format("{} is recording version {}; this ttmem reads version {}: use a "
                         "matching ttmem",
                         path, h.version, rf::kFileVersion);
    return std::nullopt;
  }
  if (h.header_size != sizeof(rf::FileHeader) || h.record_header_size != sizeof(rf::RecordHeader) ||
      h.event_size != sizeof(pr::EventRecord) || h.buffer_record_size != sizeof(pr::BufferRecord) ||
      h.device_slot_size != sizeof(pr::DeviceSlot)) {
    return fail("record sizes in the header differ from this version's");
  }
  auto known_process = [&](uint32_t p) { return p < r.processes.size(); };
  while (b.left() > 0) {
    // A last record cut short (the recorder was killed while writing) ends the recording;
    // everything before it is usable, and the caller is told.
    if (b.left() < sizeof(rf::RecordHeader)) {
      r.truncated = true;
      break;
    }
    auto rh = b.take<rf::RecordHeader>();
    if (rh.size > b.left()) {
      r.truncated = true;
      break;
    }
    if (rh.type == 0 || rh.type > rf::kMaxRecordType) {
      return fail(fmt::format("unknown record type {}", rh.type));
    }
    auto exact = [&](size_t want) { return rh.size == want; };
    r.end_ns = std::max(r.end_ns, rh.time_ns);
    switch (rf::RecordType(rh.type)) {
      case rf::RecordType::Process: {
        if (rh.size < sizeof(rf::ProcessRecord) ||
            rh.size > sizeof(rf::ProcessRecord) + rf::kMaxCommandBytes) {
          return fail("PROCESS record of a wrong size");
        }
        auto p = b.take<rf::ProcessRecord>();
        if (p.process != r.processes.size() || p.process >= rf::kMaxProcesses) {
          return fail("PROCESS records out of order");
        }
        r.processes.push_back({p.pid, p.start_time, p.uid,
                               b.take_text(rh.size - sizeof(rf::ProcessRecord)), std::nullopt, 0});
        break;
      }
      case rf::RecordType::Device: {
        if (!exact(sizeof(rf::DeviceRecord))) return fail("DEVICE record of a wrong size");
        auto d = b.take<rf::DeviceRecord>();
        if (!known_process(d.process) || d.device >= pr::kMaxDevices) {
          return fail("DEVICE record names an unknown process or device");
        }
        r.devices[{d.process, d.device}] = d.slot;
        break;
      }
      case rf::RecordType::String: {
        if (rh.size <= sizeof(rf::StringRecord) ||
            rh.size > sizeof(rf::StringRecord) + pr::kStringMaxLen) {
          return fail("STRING record of a wrong size");
        }
        auto s = b.take<rf::StringRecord>();
        if (s.id != r.strings.size() || s.id >= rf::kMaxStrings) {
          return fail("STRING records out of order");
        }
        r.strings.push_back(b.take_text(rh.size - sizeof(rf::StringRecord)));
        break;
      }
      case rf::RecordType::Event: {
        if (!exact(sizeof(rf::EventEntry))) return fail("EVENT record of a wrong size");
        auto e = b.take<rf::EventEntry>();
        if (!known_process(e.process) || e.device >= pr::kMaxDevices ||
            e.event.kind >= pr::kNumKinds || e.event.type < 1 ||
            e.event.type > uint8_t(pr::EventType::CbFreeProgram) ||
            e.event.tag >= r.strings.size()) {
          return fail("EVENT record with an unknown process, device, kind, type or tag");
        }
        r.events.push_back({rh.time_ns, e.process, e.device, e.event});
        break;
      }
      case rf::RecordType::Checkpoint: {
        if (rh.size < sizeof(rf::CheckpointHead)) return fail("CHECKPOINT record too short");
        auto c = b.take<rf::CheckpointHead>();
        if (c.count > rf::kMaxCheckpointEntries ||
            rh.size != sizeof c + uint64_t(c.count) * sizeof(rf::CheckpointEntry)) {
          return fail("CHECKPOINT count does not match its size");
        }
        Recording::Checkpoint cp{rh.time_ns, {}};
        cp.buffers.reserve(c.count);
        for (uint32_t i = 0; i < c.count; ++i) {
          auto e = b.take<rf::CheckpointEntry>();
          if (!known_process(e.process) || e.device >= pr::kMaxDevices ||
              e.buffer.kind >= pr::kNumKinds || e.buffer.tag >= r.strings.size()) {
            return fail("CHECKPOINT entry with an unknown process, device, kind or tag");
          }
          uint64_t reserved = r.reserved_of(e.process, e.device, e.buffer.kind, e.buffer.size,
                                            e.buffer.size_per_bank, e.buffer.num_cores);
          cp.buffers.push_back({e.process, e.device, e.buffer, reserved});
        }
        if (!r.checkpoints.empty() && cp.time_ns < r.checkpoints.back().time_ns) {
          return fail("CHECKPOINT records out of time order");
        }
        r.checkpoints.push_back(std::move(cp));
        break;
      }
      case rf::RecordType::Dropped: {
        if (!exact(sizeof(rf::DroppedRecord))) return fail("DROPPED record of a wrong size");
        auto d = b.take<rf::DroppedRecord>();
        if (!known_process(d.process) || d.device >= pr::kMaxDevices) {
          return fail("DROPPED record names an unknown process or device");
        }
        r.instants.push_back({rh.time_ns, d.process, d.device, "dropped events", d.count});
        break;
      }
      case rf::RecordType::Problem: {
        if (!exact(sizeof(rf::ProblemRecord))) return fail("PROBLEM record of a wrong size");
        auto p = b.take<rf::ProblemRecord>();
        static const char* kNames[] = {"", "slab overflow", "unknown frees", "duplicate allocs",
                                       "invalid calls", "CB overflow"};
        if (!known_process(p.process) || p.code < 1 || p.code > rf::kMaxProblemCode) {
          return fail("PROBLEM record with an unknown process or code");
        }
        r.instants.push_back({rh.time_ns, p.process, UINT32_MAX, kNames[p.code], p.count});
        break;
      }
      case rf::RecordType::ProcessEnd: {
        if (!exact(sizeof(rf::ProcessEndRecord))) return fail("PROCESS_END record of a wrong size");
        auto e = b.take<rf::ProcessEndRecord>();
        if (!known_process(e.process)) return fail("PROCESS_END names an unknown process");
        r.processes[e.process].end_ns = rh.time_ns;
        r.processes[e.process].leaked = e.live_buffers;
        break;
      }
    }
  }
  std::stable_sort(r.events.begin(), r.events.end(),
                   [](const auto& a, const auto& b2) { return a.time_ns < b2.time_ns; });
  return r;
}

// ---------------------------------------------------------------------------------------------
// Replay: live buffers as events are applied (idempotently, see record_file.h).

namespace {

struct Replay {
  const Recording& rec;
  // Non-CB buffers by (process, device, buffer id); CBs by (process, device), in order.
  std::map<std::tuple<uint32_t, uint32_t, uint64_t>, RecordedBuffer> buffers;
  std::map<std::pair<uint32_t, uint32_t>, std::vector<RecordedBuffer>> cbs;

  void load(const Recording::Checkpoint& cp) {
    buffers.clear();
    cbs.clear();
    for (const auto& b : cp.buffers) {
      if (b.record.kind == uint8_t(pr::Kind::Cb)) {
        cbs[{b.process, b.device}].push_back(b);
      } else {
        buffers[{b.process, b.device, b.record.buffer_id}] = b;
      }
    }
  }

  // Applies one event; calls begin(buffer) / end(buffer) for what starts or ends.
  template <class Begin, class End>
  void apply(const Recording::Event& e, Begin begin, End end) {
    const pr::EventRecord& ev = e.event;
    auto make = [&] {
      RecordedBuffer b;
      b.process = e.process;
      b.device = e.device;
      b.record.device = uint8_t(e.device);
      b.record.kind = ev.kind;
      b.record.layout = ev.layout;
      b.record.flags = pr::kRecordLive;
      b.record.buffer_id = ev.buffer_id;
      b.record.address = ev.address;
      b.record.size = ev.size;
      b.record.size_per_bank = ev.size_per_bank;
      b.record.page_size = ev.page_size;
      b.record.tag = ev.tag;
      b.record.num_banks = ev.num_banks;
      b.record.num_cores = ev.num_cores;
      b.record.time_ns = ev.time_ns;
      b.reserved = rec.reserved_of(e.process, e.device, ev.kind, ev.size, ev.size_per_bank,
                                   ev.num_cores);
      return b;
    };
    switch (pr::EventType(ev.type)) {
      case pr::EventType::Alloc: {
        auto key = std::make_tuple(e.process, e.device, ev.buffer_id);
        auto it = buffers.find(key);
        if (it != buffers.end()) {
          end(it->second, e.time_ns);
          buffers.erase(it);
        }
        RecordedBuffer b = make();
        begin(b, e.time_ns);
        buffers.emplace(key, b);
        break;
      }
      case pr::EventType::Free: {
        auto it = buffers.find({e.process, e.device, ev.buffer_id});
        if (it == buffers.end()) break;
        end(it->second, e.time_ns);
        buffers.erase(it);
        break;
      }
      case pr::EventType::CbAlloc: {
        RecordedBuffer b = make();
        begin(b, e.time_ns);
        cbs[{e.process, e.device}].push_back(b);
        break;
      }
      case pr::EventType::CbFreeAll: {
        auto& list = cbs[{e.process, e.device}];
        for (const auto& b : list) end(b, e.time_ns);
        list.clear();
        break;
      }
      case pr::EventType::CbFreeProgram: {
        auto& list = cbs[{e.process, e.device}];
        std::erase_if(list, [&](const RecordedBuffer& b) {
          if (b.record.buffer_id != ev.buffer_id) return false;
          end(b, e.time_ns);
          return true;
        });
        break;
      }
    }
  }

  std::vector<RecordedBuffer> live() const {
    std::vector<RecordedBuffer> out;
    for (const auto& [k, b] : buffers) out.push_back(b);
    for (const auto& [k, list] : cbs) out.insert(out.end(), list.begin(), list.end());
    return out;
  }
};

void ignore(const RecordedBuffer&, uint64_t) {}

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

uint64_t start_of(const Recording& r) {
  return r.checkpoints.empty() ? r.header.created_monotonic_ns
                               : std::min(r.header.created_monotonic_ns,
                                          r.checkpoints.front().time_ns);
}

}  // namespace

std::vector<RecordedBuffer> state_at(const Recording& r, uint64_t time_ns) {
  Replay replay{r, {}, {}};
  uint64_t from = 0;
  for (const auto& cp : r.checkpoints) {
    if (cp.time_ns > time_ns) break;
    replay.load(cp);
    from = cp.time_ns;
  }
  for (const auto& e : r.events) {
    if (e.time_ns <= from) continue;
    if (e.time_ns > time_ns) break;
    replay.apply(e, ignore, ignore);
  }
  return replay.live();
}

std::string export_perfetto(const Recording& r) {
  const uint64_t start = start_of(r);
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
  std::map<std::pair<int, uint32_t>, uint64_t> reserved;  // (trace pid, kind)
  std::map<std::string, uint32_t> slice_serial;
  // Open slices by (process, device, buffer id, time): the records one ttmem_cb_alloc call
  // writes for several core ranges share all four, and events do not carry the core range, so
  // such slices are interchangeable and each end closes one of them.
  std::map<std::tuple<uint32_t, uint32_t, uint64_t, uint64_t>, std::vector<std::string>> open_ids;
  auto counter = [&](int pid, uint32_t kind, uint64_t t) {
    events.push_back({{"ph", "C"}, {"name", std::string(kind_name(kind)) + " reserved"},
                      {"pid", pid}, {"ts", ts(t)},
                      {"args", {{"bytes", reserved[{pid, kind}]}}}});
  };
  auto slice_key = [](const RecordedBuffer& b) {
    return std::make_tuple(b.process, b.device, b.record.buffer_id, b.record.time_ns);
  };
  auto begin = [&](const RecordedBuffer& b, uint64_t t) {
    int pid = chip_pid[r.chip_id(b.process, b.device)];
    std::string base = fmt::format("p{}.d{}.{}{}", b.process, b.device,
                                   b.record.kind == uint8_t(pr::Kind::Cb) ? "cb" : "b",
                                   b.record.buffer_id);
    std::string id = fmt::format("{}.{}", base, slice_serial[base]++);
    open_ids[slice_key(b)].push_back(id);
    const std::string& tag = r.strings[b.record.tag];
    events.push_back({{"ph", "b"}, {"cat", kind_name(b.record.kind)},
                      {"name", tag.empty() ? std::string(kind_name(b.record.kind)) + " buffer" : tag},
                      {"id", id}, {"pid", pid}, {"tid", 0}, {"ts", ts(t)},
                      {"args", {{"pid", r.processes[b.process].pid},
                                {"buffer_id", b.record.buffer_id},
                                {"address", b.record.address},
                                {"size_bytes", b.record.size},
                                {"reserved_bytes", b.reserved}}}});
    reserved[{pid, b.record.kind}] += b.reserved;
    counter(pid, b.record.kind, t);
  };
  bool closing = false;  // at the recording's end: slices close, the buffers were not freed
  auto end = [&](const RecordedBuffer& b, uint64_t t) {
    int pid = chip_pid[r.chip_id(b.process, b.device)];
    auto it = open_ids.find(slice_key(b));
    if (it == open_ids.end()) return;
    const std::string& tag = r.strings[b.record.tag];
    events.push_back({{"ph", "e"}, {"cat", kind_name(b.record.kind)},
                      {"name", tag.empty() ? std::string(kind_name(b.record.kind)) + " buffer" : tag},
                      {"id", it->second.back()}, {"pid", pid}, {"tid", 0}, {"ts", ts(t)}});
    it->second.pop_back();
    if (it->second.empty()) open_ids.erase(it);
    if (closing) return;
    reserved[{pid, b.record.kind}] -= b.reserved;
    counter(pid, b.record.kind, t);
  };

  Replay replay{r, {}, {}};
  uint64_t from = 0;
  if (!r.checkpoints.empty()) {
    from = r.checkpoints.front().time_ns;
    replay.load(r.checkpoints.front());
    for (const auto& b : replay.live()) begin(b, std::max(b.record.time_ns, start));
  }
  for (const auto& e : r.events) {
    if (e.time_ns > from) replay.apply(e, begin, end);
  }
  uint64_t last = std::max(r.end_ns, start);
  closing = true;
  for (const auto& b : replay.live()) end(b, last);
  for (const auto& i : r.instants) {
    json ev = {{"ph", "i"}, {"name", i.what}, {"ts", ts(i.time_ns)},
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
  const uint64_t start = start_of(r);
  json processes = json::array(), devices = json::array(), events = json::array(),
       checkpoints = json::array(), instants = json::array();
  for (size_t i = 0; i < r.processes.size(); ++i) {
    const auto& p = r.processes[i];
    processes.push_back({{"process", i}, {"pid", p.pid}, {"start_time", p.start_time},
                         {"command", p.command}, {"leaked_buffers", p.leaked},
                         {"end_ns", p.end_ns ? json(*p.end_ns - std::min(*p.end_ns, start)) : json()}});
  }
  for (const auto& [key, slot] : r.devices) {
    devices.push_back({{"process", key.first}, {"device", key.second}, {"chip_id", slot.chip_id},
                       {"arch", arch_name(slot.arch)}});
  }
  for (const auto& e : r.events) {
    const auto& ev = e.event;
    events.push_back({{"t_ns", e.time_ns - std::min(e.time_ns, start)}, {"process", e.process},
                      {"device", e.device}, {"chip_id", r.chip_id(e.process, e.device)},
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
  const uint64_t start = start_of(r);
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
  const uint64_t start = start_of(r);
  std::map<uint64_t, std::array<std::array<uint64_t, 3>, pr::kNumKinds>> per_chip;
  json buffers = json::array();
  for (const auto& b : state_at(r, start + at_ns)) {
    uint64_t chip = r.chip_id(b.process, b.device);
    auto& k = per_chip[chip][b.record.kind];
    k[0] += b.record.kind == uint8_t(pr::Kind::Cb) ? b.reserved : b.record.size;
    k[1] += b.reserved;
    k[2] += 1;
    buffers.push_back({{"pid", r.processes[b.process].pid}, {"chip_id", chip},
                       {"device", b.device}, {"kind", kind_name(b.record.kind)},
                       {"buffer_id", b.record.buffer_id}, {"address", b.record.address},
                       {"size_bytes", b.record.size}, {"reserved_bytes", b.reserved},
                       {"tag", r.strings[b.record.tag]}});
  }
  json devices = json::array();
  for (const auto& [chip, kinds] : per_chip) {
    json k = json::object();
    for (uint32_t i = 0; i < pr::kNumKinds; ++i) {
      k[std::string(kind_name(i))] = {{"requested_bytes", kinds[i][0]},
                                      {"reserved_bytes", kinds[i][1]}, {"buffers", kinds[i][2]}};
    }
    devices.push_back({{"chip_id", chip}, {"kinds", k}});
  }
  return dump({{"at_ns", at_ns}, {"devices", devices}, {"buffers", buffers}});
}

}  // namespace ttmem
