// Fuzz target: the collector's segment reader (open, read, drain, tags) and segment name
// parsing, over segment files that any process able to write the segment directory could have
// written.
//
// A real segment is at least 644 KiB, almost all zeros, so the input describes one sparsely:
//
//   name '\n'   optional: a file name for parse_segment_name (a first line of < 256 bytes)
//   header      the segment's first 4096 bytes; if the input ends sooner, the file is just
//               these bytes (a truncated segment)
//   patches     {offset u32, length u16, bytes[length]} written into a file of the size the
//               header declares (zeros elsewhere). A patch of length 0 is a step: the reader
//               reads and drains what is there so far, as a collector polling a segment that
//               its writer keeps changing. The reader opens the file at the first step.
//
// fuzz/segment_to_input.py turns a real segment file into this form.
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "collector/segment_reader.h"
#include "fuzz_support.h"

namespace {

namespace pr = ttmem::protocol;
using ttmem::fuzz::ScratchFile;

// Larger declared sizes are refused by the reader anyway; this keeps each run fast.
constexpr uint64_t kMaxFileSize = 16ull << 20;
constexpr size_t kMaxNameLine = 256;

void check_name(const std::string& name) {
  auto parsed = ttmem::collector::parse_segment_name(name);
  if (!parsed) return;
  FUZZ_CHECK(parsed->pid > 0);
  // A parsed name is canonical enough to be rebuilt from its parts and parsed the same way.
  std::string rebuilt = std::string(pr::kSegmentPrefix) + std::to_string(parsed->pid) + "-" +
                        std::to_string(parsed->start_time) + pr::kSegmentSuffix;
  auto again = ttmem::collector::parse_segment_name(rebuilt);
  FUZZ_CHECK(again && again->pid == parsed->pid && again->start_time == parsed->start_time);
}

// Text from a segment reaches JSON, terminals and leak files: it must be printable UTF-8
// whatever bytes the segment held. nlohmann::json's serializer is the independent judge.
void check_text(const std::string& text) {
  for (char c : text) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20);
  bool utf8 = true;
  try {
    (void)nlohmann::json(text).dump();
  } catch (const nlohmann::json::type_error&) {
    utf8 = false;
  }
  FUZZ_CHECK(utf8);
}

void read_and_check(ttmem::collector::SegmentReader& reader) {
  ttmem::collector::SegmentState state;
  std::string error;
  if (!reader.read(&state, &error)) return;
  for (const pr::BufferRecord& r : state.records) {
    FUZZ_CHECK(r.device < pr::kMaxDevices && state.devices[r.device].has_value());
    FUZZ_CHECK(r.kind < pr::kNumKinds);
    FUZZ_CHECK(r.flags & pr::kRecordLive);
    check_text(reader.tag(r.tag));
    FUZZ_CHECK(r.address <= UINT64_MAX - r.size_per_bank);
  }
  // Scanning in place (what a collector that only aggregates does) visits exactly the records
  // read() copied, and counts the same rejects.
  ttmem::collector::SegmentState in_place;
  FUZZ_CHECK(reader.read_without_records(&in_place, &error));
  size_t visited = 0;
  reader.for_each_live_record(&in_place, [&](const pr::BufferRecord& r) {
    FUZZ_CHECK(visited < state.records.size() &&
               std::memcmp(&r, &state.records[visited], sizeof r) == 0);
    ++visited;
  });
  FUZZ_CHECK(visited == state.records.size());
  FUZZ_CHECK(in_place.corrupt_records == state.corrupt_records &&
             in_place.torn_records == state.torn_records);
  for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
    if (!state.devices[d]) continue;
    FUZZ_CHECK(state.devices[d]->logical_id == d);
    check_text(state.devices[d]->board);
  }
  uint64_t dropped_before = reader.dropped_total();
  reader.drain([&](uint32_t device, const pr::EventRecord& e) {
    FUZZ_CHECK(device < pr::kMaxDevices);
    FUZZ_CHECK(e.seq % 2 == 0 && e.seq != 0);
    check_text(reader.tag(e.tag));  // any id is answered, known or not
  });
  FUZZ_CHECK(reader.dropped_total() >= dropped_before);
  check_text(reader.command());
}

uint64_t little_endian(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ScratchFile file("ttmem-1-1.seg");
  const void* newline = std::memchr(data, '\n', std::min(size, kMaxNameLine));
  if (newline != nullptr) {
    size_t len = size_t(static_cast<const uint8_t*>(newline) - data);
    check_name(std::string(reinterpret_cast<const char*>(data), len));
    data += len + 1;
    size -= len + 1;
  }

  std::string error;
  if (size < sizeof(pr::SegmentHeader)) {
    file.write(data, size);
    FUZZ_CHECK(ttmem::collector::SegmentReader::open(file.path(), &error) == nullptr &&
               !error.empty());
    return 0;
  }
  pr::SegmentHeader header;
  std::memcpy(&header, data, sizeof header);
  uint64_t file_size = header.segment_size <= kMaxFileSize ? header.segment_size : sizeof header;
  file_size = std::max<uint64_t>(file_size, sizeof header);
  file.reset(file_size);
  file.write_at(0, data, sizeof header);

  std::unique_ptr<ttmem::collector::SegmentReader> reader;
  bool refused = false;
  auto step = [&] {
    if (refused) return;
    if (!reader) {
      reader = ttmem::collector::SegmentReader::open(file.path(), &error);
      refused = reader == nullptr;
      if (refused) FUZZ_CHECK(!error.empty());
    }
    if (reader) read_and_check(*reader);
  };
  size_t at = sizeof header;
  while (size - at >= 6) {
    uint64_t offset = little_endian(data + at, 4);
    size_t length = std::min<size_t>(little_endian(data + at + 4, 2), size - at - 6);
    at += 6;
    if (length == 0) {
      step();
      continue;
    }
    // Patches stay inside the file: a segment that changes size is a different test.
    if (offset < file_size) {
      file.write_at(offset, data + at, size_t(std::min<uint64_t>(length, file_size - offset)));
    }
    at += length;
  }
  step();
  return 0;
}
