// The segment reader against hand-made segments: every header defect is refused with a reason,
// and hostile records are counted, never trusted.
#include "collector/segment_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>

namespace ttmem {
namespace {

namespace pr = protocol;

constexpr uint32_t kSlab = 1024;
constexpr uint32_t kRing = 16;

// A valid, empty segment file with one registered device, editable through a mapping.
class SegmentFile {
 public:
  SegmentFile() {
    char tmpl[] = "/tmp/ttmem-unit-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/ttmem-1-1.seg";
    layout_ = pr::compute_layout(kSlab, kRing);
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT, 0600);
    EXPECT_EQ(::ftruncate(fd, off_t(layout_.segment_size)), 0);
    base_ = static_cast<uint8_t*>(
        ::mmap(nullptr, layout_.segment_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    ::close(fd);
    auto* h = header();
    h->magic = pr::kSegmentMagic;
    h->version = pr::kSegmentVersion;
    h->header_size = sizeof(pr::SegmentHeader);
    h->segment_size = layout_.segment_size;
    h->pid = 1;
    h->start_time = 1;
    h->max_devices = pr::kMaxDevices;
    h->num_kinds = pr::kNumKinds;
    h->string_capacity = pr::kStringCapacity;
    h->slab_capacity = kSlab;
    h->ring_capacity = kRing;
    h->device_slot_size = sizeof(pr::DeviceSlot);
    h->record_size = sizeof(pr::BufferRecord);
    h->event_size = sizeof(pr::EventRecord);
    h->string_slot_size = sizeof(pr::StringSlot);
    h->devices_offset = layout_.devices_offset;
    h->counters_offset = layout_.counters_offset;
    h->ring_heads_offset = layout_.ring_heads_offset;
    h->strings_offset = layout_.strings_offset;
    h->slab_offset = layout_.slab_offset;
    h->rings_offset = layout_.rings_offset;
    h->state = pr::kStateActive;
    h->string_count = 1;
    h->slab_high_water = kSlab;
    pr::DeviceSlot d{};
    d.flags = pr::kDeviceRegistered;
    d.logical_id = 0;
    d.chip_id = 77;
    d.kinds[0] = {12 << 20, 1 << 20, 0, 12, 32};
    pr::seqlock_write32(devices(), d);
  }
  ~SegmentFile() {
    ::munmap(base_, layout_.segment_size);
    std::filesystem::remove_all(dir_);
  }
  pr::SegmentHeader* header() { return reinterpret_cast<pr::SegmentHeader*>(base_); }
  pr::DeviceSlot* devices() {
    return reinterpret_cast<pr::DeviceSlot*>(base_ + layout_.devices_offset);
  }
  pr::StringSlot* strings() {
    return reinterpret_cast<pr::StringSlot*>(base_ + layout_.strings_offset);
  }
  pr::BufferRecord* slab() {
    return reinterpret_cast<pr::BufferRecord*>(base_ + layout_.slab_offset);
  }
  void put(uint32_t slot, pr::BufferRecord r) {
    r.flags = pr::kRecordLive;
    pr::seqlock_write32(&slab()[slot], r);
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
  pr::Layout layout_;
  uint8_t* base_ = nullptr;
};

TEST(SegmentReader, ReadsValidRecords) {
  SegmentFile f;
  pr::BufferRecord r{};
  r.device = 0;
  r.kind = 0;
  r.buffer_id = 5;
  r.size = 4096;
  r.size_per_bank = 512;
  f.put(3, r);
  std::string err;
  auto reader = SegmentReader::open(f.path(), &err);
  ASSERT_TRUE(reader) << err;
  SegmentState st;
  ASSERT_TRUE(reader->read(&st, &err)) << err;
  ASSERT_EQ(st.records.size(), 1u);
  EXPECT_EQ(st.records[0].buffer_id, 5u);
  ASSERT_TRUE(st.devices[0]);
  EXPECT_EQ(st.devices[0]->chip_id, 77u);
  EXPECT_EQ(st.corrupt_records, 0u);
}

TEST(SegmentReader, HostileRecordsAreCountedNotTrusted) {
  SegmentFile f;
  pr::BufferRecord bad_device{};
  bad_device.device = 9;  // not registered
  pr::BufferRecord bad_kind{};
  bad_kind.kind = 200;
  pr::BufferRecord bad_tag{};
  bad_tag.tag = 4000;  // beyond string_count
  pr::BufferRecord wraps{};
  wraps.address = UINT64_MAX - 10;
  wraps.size_per_bank = 100;
  f.put(0, bad_device);
  f.put(1, bad_kind);
  f.put(2, bad_tag);
  f.put(3, wraps);
  f.slab()[4].seq = 7;  // in progress: not live, not corrupt
  f.slab()[4].flags = pr::kRecordLive;
  f.header()->slab_high_water = 0xFFFFFFFF;  // clamped to the capacity
  f.header()->string_count = 0xFFFFFFFF;     // clamped too
  std::string err;
  auto reader = SegmentReader::open(f.path(), &err);
  ASSERT_TRUE(reader) << err;
  SegmentState st;
  ASSERT_TRUE(reader->read(&st, &err));
  // With string_count forced to the capacity, tag 4000 names a (blank) string: that record is
  // usable; the other three are not.
  ASSERT_EQ(st.records.size(), 1u);
  EXPECT_EQ(st.records[0].tag, 4000u);
  EXPECT_EQ(reader->tag(4000), "");
  EXPECT_EQ(st.corrupt_records, 3u);
}

// Command lines, tags and board names are whatever bytes the writer put there; what the reader
// hands on must be printable UTF-8, or JSON output and leak files fail on it.
TEST(SegmentReader, TextThatIsNotUtf8IsMadePrintable) {
  SegmentFile f;
  std::strcpy(f.header()->cmdline, "load\xff\xfe\tpy \xc3\xa9");
  pr::StringSlot tag{};
  std::strcpy(tag.text, "mat\xc0\xafmul\n");
  tag.len = uint8_t(std::strlen(tag.text));
  f.strings()[1] = tag;
  f.header()->string_count = 2;
  pr::DeviceSlot d = *f.devices();
  std::strcpy(d.board, "n300\xed\xa0\x80");
  pr::seqlock_write32(f.devices(), d);
  pr::BufferRecord r{};
  r.tag = 1;
  f.put(0, r);
  std::string err;
  auto reader = SegmentReader::open(f.path(), &err);
  ASSERT_TRUE(reader) << err;
  SegmentState st;
  ASSERT_TRUE(reader->read(&st, &err)) << err;
  EXPECT_EQ(reader->command(), "load?? py \xc3\xa9");  // valid UTF-8 (an e-acute) is kept
  EXPECT_EQ(reader->tag(1), "mat??mul?");
  ASSERT_TRUE(st.devices[0]);
  EXPECT_STREQ(st.devices[0]->board, "n300???");
  ASSERT_EQ(st.records.size(), 1u);
}

struct HeaderCase {
  const char* name;
  std::function<void(pr::SegmentHeader*)> corrupt;
  const char* expect;  // substring of the error
};

TEST(SegmentReader, EveryHeaderDefectIsRefusedWithAReason) {
  const HeaderCase cases[] = {
      {"magic", [](pr::SegmentHeader* h) { h->magic = 1; }, "bad magic"},
      {"version", [](pr::SegmentHeader* h) { h->version = 2; }, "version 2"},
      {"header size", [](pr::SegmentHeader* h) { h->header_size = 1; }, "header size"},
      {"record size", [](pr::SegmentHeader* h) { h->record_size = 32; }, "record sizes"},
      {"slab", [](pr::SegmentHeader* h) { h->slab_capacity = 1; }, "slab capacity"},
      {"ring", [](pr::SegmentHeader* h) { h->ring_capacity = 17; }, "ring capacity"},
      {"offset", [](pr::SegmentHeader* h) { h->slab_offset += 64; }, "offsets"},
      {"size", [](pr::SegmentHeader* h) { h->segment_size *= 2; }, "offsets"},
      {"pid", [](pr::SegmentHeader* h) { h->pid = 0; }, "pid"},
  };
  for (const auto& c : cases) {
    SegmentFile f;
    c.corrupt(f.header());
    std::string err;
    EXPECT_FALSE(SegmentReader::open(f.path(), &err)) << c.name;
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.name << ": " << err;
  }
}

TEST(SegmentReader, TruncatedFileIsRefused) {
  SegmentFile f;
  ASSERT_EQ(::truncate(f.path().c_str(), 100), 0);
  std::string err;
  EXPECT_FALSE(SegmentReader::open(f.path(), &err));
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
}

TEST(SegmentReader, RingDrainCountsOverwrittenEvents) {
  SegmentFile f;
  auto* heads = reinterpret_cast<pr::RingHead*>(reinterpret_cast<uint8_t*>(f.header()) +
                                                f.header()->ring_heads_offset);
  auto* ring = reinterpret_cast<pr::EventRecord*>(reinterpret_cast<uint8_t*>(f.header()) +
                                                  f.header()->rings_offset);
  // 20 events written into a 16-slot ring: events 0..3 were overwritten.
  for (uint64_t i = 0; i < 20; ++i) {
    pr::EventRecord& e = ring[i % kRing];
    e.seq = 2 * i + 2;
    e.buffer_id = i;
  }
  heads[0].head = 20;
  std::string err;
  auto reader = SegmentReader::open(f.path(), &err);
  ASSERT_TRUE(reader);
  std::vector<uint64_t> seen;
  reader->drain([&](uint32_t, const pr::EventRecord& e) { seen.push_back(e.buffer_id); });
  ASSERT_EQ(seen.size(), 16u);
  EXPECT_EQ(seen.front(), 4u);
  EXPECT_EQ(seen.back(), 19u);
  EXPECT_EQ(reader->dropped(0), 4u);
  // Nothing new: nothing delivered, nothing more dropped.
  seen.clear();
  reader->drain([&](uint32_t, const pr::EventRecord& e) { seen.push_back(e.buffer_id); });
  EXPECT_TRUE(seen.empty());
  EXPECT_EQ(reader->dropped(0), 4u);
}

}  // namespace
}  // namespace ttmem
