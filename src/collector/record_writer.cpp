// Writing recordings: RecordWriter's checksummed blocks, and the Recorder that feeds it from a
// live Collector (protocol/record_file.h).
#include "collector/recording.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "common/clock.h"
#include "common/crc32c.h"

namespace ttmem::collector {

using common::crc32c;
using common::monotonic_ns;
using common::realtime_ns;

namespace pr = protocol;
namespace rf = protocol::record;

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
  collector_.set_event_sink(
      [this](const EventSource& source, uint32_t device, const pr::EventRecord& e) {
        on_event(source, device, e);
      });
}

EventSource Recorder::source_of(const ProcessKey& key) const {
  auto access = collector_.process(key);
  if (!access) return EventSource{key};
  return EventSource{key, access->reader, access->state};
}

Recorder::ProcessEntry& Recorder::process_entry(const EventSource& source) {
  const ProcessKey& key = source.key;
  if (last_key_ != nullptr && *last_key_ == key) return *last_entry_;
  auto [it, added] = processes_.try_emplace(key);
  ProcessEntry& p = it->second;
  if (added) {
    p.index = uint32_t(processes_.size() - 1);
    rf::ProcessRecord rec{p.index, uint32_t(key.pid), key.start_time, 0, 0};
    std::string command;
    if (source.reader) {
      rec.uid = source.reader->uid();
      command = source.reader->command().substr(0, rf::kMaxCommandBytes);
    }
    writer_.write(rf::RecordType::Process, monotonic_ns(), &rec, sizeof rec, command.data(),
                  command.size());
  }
  last_key_ = &it->first;  // std::map nodes never move
  last_entry_ = &p;
  return p;
}

void Recorder::ensure_device(ProcessEntry& p, const EventSource& source, uint32_t device) {
  if (device >= pr::kMaxDevices || p.described[device] || !source.reader) return;
  // A device registered after the last read (a short program can register, report and exit
  // between two refreshes) is read from the segment now.
  std::optional<pr::DeviceSlot> slot = source.state->devices[device];
  if (!slot) slot = source.reader->device(device);
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

uint32_t Recorder::recording_tag(ProcessEntry& p, const EventSource& source,
                                 uint32_t segment_tag) {
  if (segment_tag == 0 || segment_tag >= pr::kStringCapacity) return 0;
  if (segment_tag < p.tag_ids.size() && p.tag_ids[segment_tag] != 0) {
    return p.tag_ids[segment_tag];
  }
  uint32_t id = source.reader ? string_id(source.reader->tag(segment_tag)) : 0;
  if (id != 0) {
    if (segment_tag >= p.tag_ids.size()) p.tag_ids.resize(segment_tag + 1, 0);
    p.tag_ids[segment_tag] = id;  // strings are append-only: the mapping never changes
  }
  return id;
}

void Recorder::on_event(const EventSource& source, uint32_t device, const pr::EventRecord& e) {
  ProcessEntry& p = process_entry(source);
  ensure_device(p, source, device);
  rf::EventEntry entry{p.index, device, e};
  entry.event.tag = recording_tag(p, source, e.tag);
  writer_.write(rf::RecordType::Event, e.time_ns, &entry, sizeof entry);
  latest_event_ns_ = std::max(latest_event_ns_, e.time_ns);
  ++events_;
}

void Recorder::checkpoint(uint64_t time_ns) {
  const Snapshot& s = collector_.snapshot();
  std::vector<rf::CheckpointEntry> entries;
  entries.reserve(s.buffers.size());
  std::optional<EventSource> source;  // the snapshot lists each process's buffers together
  for (const BufferView& b : s.buffers) {
    ProcessKey key{b.pid, b.process_start_time};
    if (!source || source->key != key) source = source_of(key);
    ProcessEntry& p = process_entry(*source);
    ensure_device(p, *source, b.device);
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
    ProcessEntry& p = process_entry(EventSource{key, access->reader, access->state});
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

}  // namespace ttmem::collector
