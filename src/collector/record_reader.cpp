// Reading recordings back, validating every block and record (protocol/record_file.h).
#include "collector/recording.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "common/crc32c.h"

namespace ttmem::collector {

using common::crc32c;

namespace pr = protocol;
namespace rf = protocol::record;

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

}  // namespace ttmem::collector
