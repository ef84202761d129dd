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

#include "collector/cb_coverage.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/kinds.h"

namespace ttmem {

namespace pr = protocol;
namespace rf = protocol::record;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Writing

namespace {

// A block is written once it holds this much: large enough that a write() per block costs
// little per event (about 750 events a write), small enough to stay in cache while it fills and
// to lose little when a disk fills (a block that does not fit is the recording's cut-short end).
constexpr size_t kBlockTarget = 64 * 1024;

void write_all(int fd, const uint8_t* data, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw std::runtime_error(fmt::format("cannot write {}: {} (is the disk full?)", path,
                                           std::strerror(n < 0 ? errno : ENOSPC)));
    }
    data += n;
    size -= size_t(n);
  }
}

}  // namespace

RecordWriter::RecordWriter(const std::string& path, uint32_t checkpoint_interval_ms)
    : path_(path), block_(sizeof(rf::BlockHeader) + kBlockTarget + 4096),
      used_(sizeof(rf::BlockHeader)) {
  // Owner-only, like everything ttmem writes: a recording names every process and buffer.
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd_ < 0) {
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
  // Written with the first block: a file that cannot be written (a full disk) fails there, on
  // the recording thread, while the recorded program runs on.
  header_ = h;
}

RecordWriter::~RecordWriter() {
  if (fd_ < 0) return;
  try {
    flush();  // what was recorded so far stays readable
  } catch (const std::runtime_error&) {
  }
  ::close(fd_);
}

void RecordWriter::grow_block(size_t record_bytes) {
  if (records_ > 0) flush();
  // A record larger than a block (a big checkpoint) gets a block of its own.
  if (used_ + record_bytes > block_.size()) block_.resize(used_ + record_bytes);
}

void RecordWriter::write(rf::RecordType type, uint64_t time_ns, const void* payload, size_t size,
                         const void* tail, size_t tail_size) {
  const size_t bytes = sizeof(rf::RecordHeader) + size + tail_size;
  if (used_ + bytes > block_.size()) grow_block(bytes);
  rf::RecordHeader h{uint16_t(type), 0, uint32_t(size + tail_size), time_ns};
  uint8_t* at = block_.data() + used_;
  std::memcpy(at, &h, sizeof h);
  if (size > 0) std::memcpy(at + sizeof h, payload, size);
  if (tail_size > 0) std::memcpy(at + sizeof h + size, tail, tail_size);
  used_ += bytes;
  ++records_;
  if (used_ >= sizeof(rf::BlockHeader) + kBlockTarget) flush();
}

void RecordWriter::flush() {
  if (fd_ < 0) return;
  if (header_) {
    write_all(fd_, reinterpret_cast<const uint8_t*>(&*header_), sizeof *header_, path_);
    bytes_written_ = sizeof *header_;
    header_.reset();
  }
  if (records_ == 0) return;
  const size_t payload = used_ - sizeof(rf::BlockHeader);
  rf::BlockHeader h{rf::kBlockMarker, uint32_t(payload), records_,
                    crc32c(block_.data() + sizeof h, payload)};
  std::memcpy(block_.data(), &h, sizeof h);
  write_all(fd_, block_.data(), used_, path_);
  bytes_written_ += used_;
  used_ = sizeof(rf::BlockHeader);
  records_ = 0;
  if (block_.size() > sizeof(rf::BlockHeader) + kBlockTarget + 4096) {
    block_.resize(sizeof(rf::BlockHeader) + kBlockTarget + 4096);  // after a big checkpoint
    block_.shrink_to_fit();
  }
}

void RecordWriter::close() {
  flush();
  if (fd_ >= 0 && ::close(fd_) != 0) {
    fd_ = -1;
    throw std::runtime_error(fmt::format("cannot finish {}: {}", path_, std::strerror(errno)));
  }
  fd_ = -1;
}

Recorder::Recorder(Collector& collector, const std::string& path, uint32_t checkpoint_interval_ms)
    : collector_(collector), writer_(path, checkpoint_interval_ms),
      interval_ms_(checkpoint_interval_ms) {
  collector_.set_event_sink([this](const ProcessKey& key, uint32_t device,
                                   const pr::EventRecord& e) { on_event(key, device, e); });
}

Recorder::ProcessEntry& Recorder::process_entry(const ProcessKey& key) {
  if (last_key_ != nullptr && *last_key_ == key) return *last_entry_;
  auto [it, added] = processes_.try_emplace(key);
  ProcessEntry& p = it->second;
  if (added) {
    p.index = uint32_t(processes_.size() - 1);
    rf::ProcessRecord rec{p.index, uint32_t(key.pid), key.start_time, 0, 0};
    std::string command;
    if (auto access = collector_.process(key)) {
      rec.uid = access->reader->uid();
      command = access->reader->command().substr(0, rf::kMaxCommandBytes);
    }
    writer_.write(rf::RecordType::Process, monotonic_ns(), &rec, sizeof rec, command.data(),
                  command.size());
  }
  last_key_ = &it->first;  // std::map nodes never move
  last_entry_ = &p;
  return p;
}

void Recorder::ensure_device(ProcessEntry& p, const ProcessKey& key, uint32_t device) {
  if (device >= pr::kMaxDevices || p.described[device]) return;
  auto access = collector_.process(key);
  if (!access) return;
  // A device registered after the last read (a short program can register, report and exit
  // between two refreshes) is read from the segment now.
  std::optional<pr::DeviceSlot> slot = access->state->devices[device];
  if (!slot) slot = access->reader->device(device);
  if (!slot) return;
  p.described[device] = true;
  rf::DeviceRecord d{p.index, device, *slot};
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

uint32_t Recorder::recording_tag(ProcessEntry& p, const ProcessKey& key, uint32_t segment_tag) {
  if (segment_tag == 0 || segment_tag >= pr::kStringCapacity) return 0;
  if (segment_tag < p.tag_ids.size() && p.tag_ids[segment_tag] != 0) {
    return p.tag_ids[segment_tag];
  }
  auto access = collector_.process(key);
  uint32_t id = access ? string_id(access->reader->tag(segment_tag)) : 0;
  if (id != 0) {
    if (segment_tag >= p.tag_ids.size()) p.tag_ids.resize(segment_tag + 1, 0);
    p.tag_ids[segment_tag] = id;  // strings are append-only: the mapping never changes
  }
  return id;
}

void Recorder::on_event(const ProcessKey& key, uint32_t device, const pr::EventRecord& e) {
  ProcessEntry& p = process_entry(key);
  ensure_device(p, key, device);
  rf::EventEntry entry{p.index, device, e};
  entry.event.tag = recording_tag(p, key, e.tag);
  writer_.write(rf::RecordType::Event, e.time_ns, &entry, sizeof entry);
  latest_event_ns_ = std::max(latest_event_ns_, e.time_ns);
  ++events_;
}

void Recorder::checkpoint(uint64_t time_ns) {
  const Snapshot& s = collector_.snapshot();
  std::vector<rf::CheckpointEntry> entries;
  entries.reserve(s.buffers.size());
  for (const BufferView& b : s.buffers) {
    ProcessKey key{b.pid, b.process_start_time};
    ProcessEntry& p = process_entry(key);
    ensure_device(p, key, b.device);
    rf::CheckpointEntry c{};
    c.process = p.index;
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

void Recorder::after_refresh(uint64_t refresh_started_ns, bool checkpoint_now) {
  const Snapshot& s = collector_.snapshot();
  // Problems and ends were observed by the refresh that just finished; they may have happened
  // at any time before now, so they are stamped now (a process's end comes after its last
  // event). Checkpoints, and the gaps they end, keep the refresh's start time (record_file.h).
  const uint64_t observed_ns = monotonic_ns();
  std::set<ProcessKey> present;
  for (const ProcessView& v : s.processes) {
    ProcessKey key{v.pid, v.start_time};
    present.insert(key);
    auto access = collector_.process(key);
    if (!access) continue;
    ProcessEntry& p = process_entry(key);
    for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
      const uint64_t lost = access->reader->dropped(d);
      if (lost > p.dropped[d]) {
        // The events were lost before this refresh began: the gap ends at the checkpoint
        // taken at that moment, now.
        rf::DroppedRecord r{p.index, d, lost - p.dropped[d]};
        writer_.write(rf::RecordType::Dropped, refresh_started_ns, &r, sizeof r);
        dropped_total_ += lost - p.dropped[d];
        p.dropped[d] = lost;
        checkpoint_now = true;  // the gap ends at the next exact state: take it now
      }
    }
    const pr::ProcessCounters& now = v.counters;
    pr::ProcessCounters& before = p.counters;
    const uint64_t pairs[][2] = {{now.slab_overflow, before.slab_overflow},
                                 {now.unknown_frees, before.unknown_frees},
                                 {now.duplicate_allocs, before.duplicate_allocs},
                                 {now.invalid_calls, before.invalid_calls},
                                 {now.cb_overflow, before.cb_overflow}};
    for (uint32_t code = 1; code <= rf::kMaxProblemCode; ++code) {
      if (pairs[code - 1][0] > pairs[code - 1][1]) {
        rf::ProblemRecord r{p.index, code, pairs[code - 1][0] - pairs[code - 1][1]};
        writer_.write(rf::RecordType::Problem, observed_ns, &r, sizeof r);
      }
    }
    before = now;
  }
  for (auto& [key, p] : processes_) {
    if (present.count(key) || p.ended) continue;
    const ProcessKey& process = key;  // clang before 16 cannot capture a structured binding
    uint32_t leaked = uint32_t(std::count_if(s.leaks.begin(), s.leaks.end(), [&](const auto& l) {
      return l.pid == process.pid && l.process_start_time == process.start_time;
    }));
    rf::ProcessEndRecord r{p.index, leaked};
    writer_.write(rf::RecordType::ProcessEnd, observed_ns, &r, sizeof r);
    p.ended = true;  // reported once
  }
  if (checkpoint_now || !last_checkpoint_ ||
      refresh_started_ns >= *last_checkpoint_ + uint64_t(interval_ms_) * 1'000'000) {
    checkpoint(refresh_started_ns);
  }
  writer_.flush();
}

void Recorder::finish(uint64_t refresh_started_ns) {
  after_refresh(refresh_started_ns);
  // Events read by the last refresh can postdate its start, and one of them can be an ALLOC
  // whose FREE that refresh did not reach; no later refresh will bring the FREE. So the last
  // checkpoint is stamped after every recorded event: a recording ends on an exact state.
  const uint64_t end_ns = std::max(refresh_started_ns, latest_event_ns_ + 1);
  if (last_checkpoint_ != end_ns) checkpoint(end_ns);
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
  Bytes(std::vector<uint8_t> data, uint64_t file_offset)
      : data_(std::move(data)), file_offset_(file_offset) {}
  uint64_t offset() const { return file_offset_ + at_; }  // in the file
  const uint8_t* data() const { return data_.data(); }
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
  uint64_t file_offset_ = 0;
  size_t at_ = 0;
};

}  // namespace

std::optional<Recording> read_recording(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    *error = fmt::format("cannot open {}: {}", path, std::strerror(errno));
    return std::nullopt;
  }
  const uint64_t file_size = uint64_t(in.tellg());
  in.seekg(0);
  Bytes b({}, 0);
  auto fail = [&](const std::string& what) {
    *error = fmt::format("{} is not a usable recording: {} (at byte {}); record it again with "
                         "`ttmem record`",
                         path, what, b.offset());
    return std::nullopt;
  };
  // Reads the next `size` bytes of the file as the cursor `b`, whose offsets are the file's.
  auto load = [&](uint64_t at, uint64_t size) {
    std::vector<uint8_t> data(size);
    in.read(reinterpret_cast<char*>(data.data()), std::streamsize(size));
    b = Bytes(std::move(data), at);
    return bool(in);
  };
  Recording r;
  if (file_size < sizeof(rf::FileHeader)) return fail("shorter than the 64-byte file header");
  if (!load(0, sizeof(rf::FileHeader))) return fail("cannot read the file header");
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
  // Mostly events: room for them at once, instead of growing (and copying) a large vector.
  r.events.reserve(size_t(file_size / (sizeof(rf::RecordHeader) + sizeof(rf::EventEntry))));
  auto known_process = [&](uint32_t p) { return p < r.processes.size(); };
  uint64_t block_at = sizeof(rf::FileHeader);
  while (block_at < file_size) {
    // A last block cut short (the recorder was killed while writing it) ends the recording;
    // everything before it is usable, and the caller is told.
    const uint64_t left = file_size - block_at;
    if (left < sizeof(rf::BlockHeader)) {
      r.truncated = true;
      break;
    }
    if (!load(block_at, sizeof(rf::BlockHeader))) return fail("cannot read a block header");
    const auto block = b.take<rf::BlockHeader>();
    if (block.marker != rf::kBlockMarker) {
      return fail("no block marker where a block starts (the file is damaged)");
    }
    if (block.size > left - sizeof(rf::BlockHeader)) {
      r.truncated = true;
      break;
    }
    if (!load(block_at + sizeof(rf::BlockHeader), block.size)) return fail("cannot read a block");
    if (crc32c(b.data(), block.size) != block.crc32c) {
      return fail("a block's checksum does not match its contents (the file is damaged)");
    }
    block_at += sizeof(rf::BlockHeader) + block.size;
    uint32_t records = 0;
    while (b.left() > 0) {
    if (b.left() < sizeof(rf::RecordHeader)) return fail("a record runs past its block");
    auto rh = b.take<rf::RecordHeader>();
    if (rh.size > b.left()) return fail("a record runs past its block");
    ++records;
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
        r.dropped_events += d.count;
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
    if (records != block.records) return fail("a block holds other than the records it counts");
  }
  std::stable_sort(r.events.begin(), r.events.end(),
                   [](const auto& a, const auto& b2) { return a.time_ns < b2.time_ns; });
  return r;
}

// ---------------------------------------------------------------------------------------------
// Replay: the live set and each chip's figures, exact at every checkpoint (see recording.h).

namespace {

// A live buffer's identity: (process, device, buffer id); a CB record's: its program, address
// and core rectangle (a program has one record per CB and core range).
struct LiveKey {
  uint32_t process, device;
  uint8_t cb;
  uint64_t id, address;
  uint32_t cores;
  auto operator<=>(const LiveKey&) const = default;
};

LiveKey key_of(const RecordedBuffer& b) {
  const bool cb = b.record.kind == uint8_t(pr::Kind::Cb);
  return {b.process, b.device, uint8_t(cb), b.record.buffer_id, cb ? b.record.address : 0,
          cb ? b.record.aux : 0};
}

bool same_buffer(const RecordedBuffer& a, const RecordedBuffer& b) {
  return a.record.kind == b.record.kind && a.record.address == b.record.address &&
         a.record.size == b.record.size && a.record.time_ns == b.record.time_ns;
}

class ReplayEngine {
 public:
  ReplayEngine(const Recording& r, ReplayVisitor& v) : r_(r), v_(v) {}

  // Applies everything up to and including `until_ns`, from where the last run stopped.
  void run(uint64_t until_ns) {
    auto& c = next_checkpoint_;
    for (; next_event_ < r_.events.size(); ++next_event_) {
      const auto& e = r_.events[next_event_];
      if (e.time_ns > until_ns) break;
      // Events at or before a checkpoint's time are in it (its time is taken before the read).
      while (c < r_.checkpoints.size() && r_.checkpoints[c].time_ns < e.time_ns) {
        apply_checkpoint(r_.checkpoints[c++]);
      }
      apply(e);
    }
    while (c < r_.checkpoints.size() && r_.checkpoints[c].time_ns <= until_ns) {
      apply_checkpoint(r_.checkpoints[c++]);
    }
  }

  std::vector<RecordedBuffer> live() const {
    std::vector<RecordedBuffer> out;
    out.reserve(live_.size());
    for (const auto& [k, b] : live_) out.push_back(b);
    return out;
  }

 private:
  RecordedBuffer from_event(const Recording::Event& e) const {
    const pr::EventRecord& ev = e.event;
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
    // A CB event carries its core rectangle where other events carry the page size.
    const bool cb = ev.kind == uint8_t(pr::Kind::Cb);
    b.record.page_size = cb ? 0 : ev.page_size;
    b.record.aux = cb ? ev.page_size : 0;
    b.record.tag = ev.tag;
    b.record.num_banks = ev.num_banks;
    b.record.num_cores = ev.num_cores;
    b.record.time_ns = ev.time_ns;
    b.reserved = r_.reserved_of(e.process, e.device, ev.kind, ev.size, ev.size_per_bank,
                                ev.num_cores);
    return b;
  }

  uint64_t chip_of(uint32_t process, uint32_t device) {
    auto [it, added] = chips_.try_emplace({process, device}, 0);
    if (added) {
      it->second = r_.chip_id(process, device);
      auto slot = r_.devices.find({process, device});
      if (slot != r_.devices.end()) cb_base_[it->second] = slot->second.unreserved_base;
    }
    return it->second;
  }

  void add(const RecordedBuffer& b, uint64_t t) {
    const LiveKey k = key_of(b);
    live_.insert_or_assign(k, b);
    v_.begin(b, t);
    touch(b, k, true);
  }

  void remove(std::map<LiveKey, RecordedBuffer>::iterator it, uint64_t t) {
    v_.end(it->second, t);
    touch(it->second, it->first, false);
    live_.erase(it);
  }

  // Keeps the chip's figure for the buffer's kind; published by publish().
  void touch(const RecordedBuffer& b, const LiveKey& k, bool added) {
    const uint64_t chip = chip_of(b.process, b.device);
    if (k.cb) {
      if (added) {
        cbs_[chip].insert(k);
      } else {
        cbs_[chip].erase(k);
      }
      cb_changed_.insert(chip);
      return;
    }
    uint64_t& bytes = figures_[{chip, b.record.kind}];
    bytes = added ? bytes + b.reserved : bytes - std::min(bytes, b.reserved);
    changed_.insert({chip, b.record.kind});
  }

  void publish(uint64_t t) {
    for (const auto& ck : changed_) v_.usage(t, ck.first, ck.second, figures_[ck]);
    changed_.clear();
    for (uint64_t chip : cb_changed_) {
      CbCoverage coverage;
      for (const LiveKey& k : cbs_[chip]) {
        const RecordedBuffer& b = live_.at(k);
        coverage.add(core_rect_of(b.record.aux), b.record.address + b.record.size);
      }
      const uint64_t covered = coverage.covered_bytes(cb_base_[chip]);
      uint64_t& last = figures_[{chip, uint32_t(pr::Kind::Cb)}];
      if (covered != last || coverage.empty()) {
        last = covered;
        v_.usage(t, chip, uint32_t(pr::Kind::Cb), covered);
      }
    }
    cb_changed_.clear();
  }

  // Removes the CB records of (process, device), of one program or of all.
  void free_cbs(uint32_t process, uint32_t device, std::optional<uint64_t> program, uint64_t t) {
    auto it = live_.lower_bound({process, device, 1, program.value_or(0), 0, 0});
    while (it != live_.end() && it->first.process == process && it->first.device == device &&
           it->first.cb == 1 && (!program || it->first.id == *program)) {
      auto next = std::next(it);
      remove(it, t);
      it = next;
    }
  }

  void apply(const Recording::Event& e) {
    const pr::EventRecord& ev = e.event;
    switch (pr::EventType(ev.type)) {
      case pr::EventType::Alloc:
      case pr::EventType::CbAlloc: {
        RecordedBuffer b = from_event(e);
        auto it = live_.find(key_of(b));
        if (it != live_.end()) {
          if (same_buffer(it->second, b)) return;  // already live from a checkpoint
          remove(it, e.time_ns);
        }
        add(b, e.time_ns);
        break;
      }
      case pr::EventType::Free: {
        auto it = live_.find({e.process, e.device, 0, ev.buffer_id, 0, 0});
        if (it == live_.end()) return;
        remove(it, e.time_ns);
        break;
      }
      case pr::EventType::CbFreeAll:
        free_cbs(e.process, e.device, std::nullopt, e.time_ns);
        break;
      case pr::EventType::CbFreeProgram:
        free_cbs(e.process, e.device, ev.buffer_id, e.time_ns);
        break;
    }
    publish(e.time_ns);
  }

  void apply_checkpoint(const Recording::Checkpoint& cp) {
    std::map<LiveKey, const RecordedBuffer*> exact;
    std::set<uint32_t> present;
    for (const auto& b : cp.buffers) {
      exact.emplace(key_of(b), &b);
      present.insert(b.process);
    }
    // A process that ended holding buffers leaves the live state when it is reaped, so later
    // checkpoints lack them; they are its leaks and stay in the figures to the end.
    auto leaked = [&](uint32_t process) {
      return !present.count(process) && r_.processes[process].leaked > 0;
    };
    for (auto it = live_.begin(); it != live_.end();) {
      auto want = exact.find(it->first);
      auto next = std::next(it);
      // (CBs are not leaks: they end with their program.)
      const bool stale = want == exact.end() ? it->first.cb || !leaked(it->first.process)
                                             : !same_buffer(it->second, *want->second);
      if (stale) remove(it, cp.time_ns);
      it = next;
    }
    for (const auto& [k, b] : exact) {
      if (!live_.count(k)) add(*b, cp.time_ns);
    }
    publish(cp.time_ns);
  }

  const Recording& r_;
  ReplayVisitor& v_;
  size_t next_event_ = 0, next_checkpoint_ = 0;
  std::map<LiveKey, RecordedBuffer> live_;
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> chips_;  // (process, device) -> chip id
  std::map<uint64_t, uint64_t> cb_base_;                     // chip -> unreserved L1 base
  std::map<std::pair<uint64_t, uint32_t>, uint64_t> figures_;  // (chip, kind) -> bytes
  std::set<std::pair<uint64_t, uint32_t>> changed_;
  std::map<uint64_t, std::set<LiveKey>> cbs_;  // chip -> its live CB records
  std::set<uint64_t> cb_changed_;
};

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
  return std::string(kind_name(kind)) + (kind == uint32_t(pr::Kind::Cb) ? " covered" : " reserved");
}

}  // namespace

uint64_t recording_start_ns(const Recording& r) {
  return r.checkpoints.empty() ? r.header.created_monotonic_ns
                               : std::min(r.header.created_monotonic_ns,
                                          r.checkpoints.front().time_ns);
}

std::vector<RecordedBuffer> replay(const Recording& r, ReplayVisitor& visitor) {
  ReplayEngine engine(r, visitor);
  engine.run(UINT64_MAX);
  return engine.live();
}

std::vector<RecordedBuffer> state_at(const Recording& r, uint64_t time_ns) {
  ReplayVisitor nothing;
  ReplayEngine engine(r, nothing);
  engine.run(time_ns);
  return engine.live();
}

std::vector<std::vector<RecordedBuffer>> states_at(const Recording& r,
                                                   const std::vector<uint64_t>& times_ns) {
  ReplayVisitor nothing;
  ReplayEngine engine(r, nothing);
  std::vector<std::vector<RecordedBuffer>> out;
  for (uint64_t t : times_ns) {
    engine.run(t);
    out.push_back(engine.live());
  }
  return out;
}

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
      std::string base = fmt::format("p{}.d{}.{}{}", b.process, b.device,
                                     b.record.kind == uint8_t(pr::Kind::Cb) ? "cb" : "b",
                                     b.record.buffer_id);
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
  ReplayEngine engine(r, figures);
  engine.run(start + at_ns);
  std::map<uint64_t, std::array<std::array<uint64_t, 2>, pr::kNumKinds>> per_chip;
  json buffers = json::array();
  for (const auto& b : engine.live()) {
    uint64_t chip = r.chip_id(b.process, b.device);
    auto& k = per_chip[chip][b.record.kind];
    k[0] += b.record.size;
    k[1] += 1;
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
      const uint64_t reserved = figures.bytes[chip][i];
      // CB sets overlap: both figures are the L1 they cover, never a sum of the sets.
      const uint64_t requested = i == uint32_t(pr::Kind::Cb) ? reserved : kinds[i][0];
      k[std::string(kind_name(i))] = {{"requested_bytes", requested},
                                      {"reserved_bytes", reserved}, {"buffers", kinds[i][1]}};
    }
    devices.push_back({{"chip_id", chip}, {"kinds", k}});
  }
  return dump({{"at_ns", at_ns}, {"devices", devices}, {"buffers", buffers}});
}

}  // namespace ttmem
