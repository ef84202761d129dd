// The segment reader against hand-made segments: every header defect is refused with a reason,
// and hostile records are counted, never trusted.
#include "collector/segment_reader.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <cstring>
#include <functional>
#include <vector>

#include "collector/mapping_guard.h"
#include "segment_file.h"

namespace ttmem::collector {
namespace {

namespace pr = protocol;

using test::SegmentFile;
constexpr uint32_t kRing = SegmentFile::kRing;

// Opens and reads `path`, expecting exactly one live record, with id `buffer_id`, on device 0.
void expect_one_record(const std::string& path, uint64_t buffer_id) {
  std::string err;
  auto reader = SegmentReader::open(path, &err);
  ASSERT_TRUE(reader) << err;
  SegmentState st;
  ASSERT_TRUE(reader->read(&st, &err)) << err;
  ASSERT_EQ(st.records.size(), 1u);
  EXPECT_EQ(st.records[0].buffer_id, buffer_id);
  ASSERT_TRUE(st.devices[0]);
  EXPECT_EQ(st.devices[0]->chip_id, 77u);
  EXPECT_EQ(st.corrupt_records, 0u);
}

// A DRAM buffer of 4 KiB on device 0, id 5, put in slab slot 3.
void put_one_record(SegmentFile& f) {
  pr::BufferRecord r{};
  r.device = 0;
  r.kind = 0;
  r.buffer_id = 5;
  r.size = 4096;
  r.size_per_bank = 512;
  f.put(3, r);
}

TEST(SegmentReader, ReadsValidRecords) {
  SegmentFile f;
  put_one_record(f);
  expect_one_record(f.path(), 5);
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

// The scan in place visits exactly what read() copies, with the same counts, and finds a device
// or tag registered after the rest of the segment was read.
TEST(SegmentReader, VisitingInPlaceSeesWhatReadCopies) {
  SegmentFile f;
  for (uint32_t slot = 0; slot < 40; ++slot) {
    pr::BufferRecord r{};
    r.kind = uint8_t(slot % pr::kNumKinds);
    r.buffer_id = slot;
    r.address = slot * 4096;
    r.size_per_bank = 4096;
    if (slot % 7 == 3) r.kind = 99;    // corrupt
    if (slot % 11 == 5) r.device = 3;  // unregistered: corrupt
    if (slot % 4 == 1) continue;       // free slot
    f.put(slot, r);
  }
  std::string err;
  auto reader = SegmentReader::open(f.path(), &err);
  ASSERT_TRUE(reader) << err;
  SegmentState copied;
  ASSERT_TRUE(reader->read(&copied, &err)) << err;
  ASSERT_GT(copied.corrupt_records, 0u);

  SegmentState in_place;
  ASSERT_TRUE(reader->read_without_records(&in_place, &err)) << err;
  EXPECT_TRUE(in_place.records.empty());
  // Registered after the device slots and strings were read, before the records are.
  pr::DeviceSlot late = *f.devices();
  late.logical_id = 2;
  late.chip_id = 78;
  pr::seqlock_write32(&f.devices()[2], late);
  pr::StringSlot tag{};
  std::strcpy(tag.text, "ttnn::late");
  tag.len = uint8_t(std::strlen(tag.text));
  f.strings()[1] = tag;
  f.header()->string_count = 2;
  pr::BufferRecord on_late{};
  on_late.device = 2;
  on_late.tag = 1;
  on_late.buffer_id = 1000;
  f.put(40, on_late);

  std::vector<pr::BufferRecord> visited;
  reader->for_each_live_record(&in_place, [&](const pr::BufferRecord& r) { visited.push_back(r); });
  ASSERT_EQ(visited.size(), copied.records.size() + 1);
  for (size_t i = 0; i < copied.records.size(); ++i) {
    EXPECT_EQ(std::memcmp(&visited[i], &copied.records[i], sizeof(pr::BufferRecord)), 0) << i;
  }
  EXPECT_EQ(visited.back().buffer_id, 1000u);
  ASSERT_TRUE(in_place.devices[2]);
  EXPECT_EQ(in_place.devices[2]->chip_id, 78u);
  EXPECT_EQ(reader->tag(1), "ttnn::late");
  EXPECT_EQ(in_place.corrupt_records, copied.corrupt_records);
  EXPECT_EQ(in_place.torn_records, copied.torn_records);
}

// Command lines, tags and board names are whatever bytes the writer put there; what the reader
// hands on must be printable UTF-8, or JSON output and leak files fail on it.
// A reader copies an unchanged device slot only into a state it did not fill last. Every other
// state must still get the slot: one made afresh (in a loop, at the address of the last), one
// another reader filled since, and a copy of an older fill.
TEST(SegmentReader, EveryStateGetsTheDeviceSlotsItDoesNotHoldYet) {
  SegmentFile f(1), other(2);
  pr::DeviceSlot second{};
  second.flags = pr::kDeviceRegistered;
  second.logical_id = 0;
  second.chip_id = 88;
  second.kinds[0] = {12 << 20, 1 << 20, 0, 12, 32};
  pr::seqlock_write32(other.devices(), second);
  std::string err;
  auto reader = SegmentReader::open(f.path(), &err);
  auto other_reader = SegmentReader::open(other.path(), &err);
  ASSERT_TRUE(reader && other_reader) << err;

  SegmentState kept;
  ASSERT_TRUE(reader->read_without_records(&kept, &err)) << err;
  for (int i = 0; i < 3; ++i) {
    SegmentState fresh;
    ASSERT_TRUE(reader->read_without_records(&fresh, &err)) << err;
    ASSERT_TRUE(fresh.devices[0]) << "read " << i;
    EXPECT_EQ(fresh.devices[0]->chip_id, 77u);
  }
  // Filled by this reader, then by another, then by this one again.
  ASSERT_TRUE(reader->read_without_records(&kept, &err)) << err;
  ASSERT_TRUE(other_reader->read_without_records(&kept, &err)) << err;
  ASSERT_TRUE(kept.devices[0]);
  EXPECT_EQ(kept.devices[0]->chip_id, 88u);
  ASSERT_TRUE(reader->read_without_records(&kept, &err)) << err;
  ASSERT_TRUE(kept.devices[0]);
  EXPECT_EQ(kept.devices[0]->chip_id, 77u);
  // A copy of an older fill, with the slot changed since, and the fill it is older than.
  const SegmentState older = kept;
  pr::DeviceSlot moved = *kept.devices[0];
  moved.chip_id = 99;
  pr::seqlock_write32(f.devices(), moved);
  ASSERT_TRUE(reader->read_without_records(&kept, &err)) << err;
  EXPECT_EQ(kept.devices[0]->chip_id, 99u);
  SegmentState copy = older;
  ASSERT_TRUE(reader->read_without_records(&copy, &err)) << err;
  ASSERT_TRUE(copy.devices[0]);
  EXPECT_EQ(copy.devices[0]->chip_id, 99u);
  // And the state filled last keeps what it holds.
  ASSERT_TRUE(reader->read_without_records(&kept, &err)) << err;
  EXPECT_EQ(kept.devices[0]->chip_id, 99u);
  // A device registered since, read on its own first (as `ttmem record` asks for a device
  // registered between two refreshes), still reaches the state filled last.
  pr::DeviceSlot late = moved;
  late.logical_id = 1;
  late.chip_id = 111;
  pr::seqlock_write32(&f.devices()[1], late);
  ASSERT_TRUE(reader->device(1));
  ASSERT_TRUE(reader->read_without_records(&kept, &err)) << err;
  ASSERT_TRUE(kept.devices[1]);
  EXPECT_EQ(kept.devices[1]->chip_id, 111u);
}

// A device whose slot and `registering` copy are both mid-write at every try (a writer that
// re-registers faster than a reader copies them): the descriptor of the last stable reading
// stands, and the device's records are read, not rejected as records of no device. A reader
// that never had a stable reading has nothing to stand in, and says the device is absent.
TEST(SegmentReader, ADeviceRewrittenAtEveryTryKeepsItsLastStableDescriptor) {
  SegmentFile f;
  put_one_record(f);
  std::string err;
  auto reader = SegmentReader::open(f.path(), &err);
  auto late_reader = SegmentReader::open(f.path(), &err);
  ASSERT_TRUE(reader && late_reader) << err;
  SegmentState st;
  ASSERT_TRUE(reader->read(&st, &err)) << err;
  ASSERT_TRUE(st.devices[0]);

  // Both copies left with an odd sequence: every try sees a write in progress. Another chip's
  // descriptor is on its way, but neither copy is readable.
  pr::DeviceSlot next = *st.devices[0];
  next.chip_id = 78;
  pr::seqlock_write32(&f.header()->registering, next);
  pr::seqlock_write32(f.devices(), next);
  auto leave_odd = [](pr::DeviceSlot* slot) {
    auto* word0 = reinterpret_cast<uint64_t*>(slot);
    *word0 += 1;
  };
  ASSERT_TRUE(reader->read(&st, &err)) << err;  // a stable reading of chip 78 first
  ASSERT_TRUE(st.devices[0]);
  EXPECT_EQ(st.devices[0]->chip_id, 78u);
  leave_odd(f.devices());
  leave_odd(&f.header()->registering);
  for (int i = 0; i < 2; ++i) {
    SegmentState again;
    ASSERT_TRUE(reader->read(&again, &err)) << err;
    ASSERT_TRUE(again.devices[0]) << "read " << i;
    EXPECT_EQ(again.devices[0]->chip_id, 78u);
    EXPECT_EQ(again.records.size(), 1u);
    EXPECT_EQ(again.corrupt_records, 0u);
  }
  SegmentState first;
  ASSERT_TRUE(late_reader->read(&first, &err)) << err;
  EXPECT_FALSE(first.devices[0]);
  EXPECT_EQ(first.records.size(), 0u);
  EXPECT_EQ(first.corrupt_records, 1u);
}

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

// A file that grew past its header's size is read up to that size: refusing it would leave its
// process's buffers unread, its leak records never made and the file in place.
TEST(SegmentReader, GrownFileIsReadUpToItsDeclaredSize) {
  SegmentFile f;
  pr::BufferRecord r{};
  r.buffer_id = 9;
  r.size = r.size_per_bank = 64;
  f.put(0, r);
  ASSERT_EQ(::truncate(f.path().c_str(), off_t(f.header()->segment_size + (1 << 20))), 0);
  expect_one_record(f.path(), 9);
}

// Someone who can write a segment can shrink it at any moment, also between a reader's size
// check and its loads. Four readers loop over every kind of access while a writer flips the
// file between its full size and its header alone 1,000 times (and on until a reader met a
// truncation): no reader may die of SIGBUS
// (which would end this test), and each truncation they meet is reported as one.
TEST(SegmentReader, ReadersNeverFaultWhileAWriterFlipsTheSize) {
  SegmentFile f;
  for (uint32_t slot = 0; slot < SegmentFile::kSlab; slot += 3) {
    pr::BufferRecord r{};
    r.buffer_id = slot;
    r.size = r.size_per_bank = 4096;
    f.put(slot, r);
  }
  f.ring_heads()[0].head = 5;
  const off_t full = off_t(f.header()->segment_size);
  std::atomic<bool> flipping{true};
  std::atomic<uint64_t> good_reads{0}, truncations_met{0}, faults_caught{0};
  auto reader_loop = [&] {
    std::unique_ptr<SegmentReader> reader;
    while (flipping.load()) {
      std::string err;
      if (!reader && !(reader = SegmentReader::open(f.path(), &err))) continue;
      SegmentState st;
      uint64_t visited = 0;
      reader->change_stamp();
      reader->drain([](uint32_t, const pr::EventRecord&) {});
      bool ok = reader->read(&st, &err) && reader->read_without_records(&st, &err) &&
                reader->for_each_live_record(&st, [&](const pr::BufferRecord&) { ++visited; });
      if (ok) {
        ++good_reads;
        continue;
      }
      // Failed reads name the truncation; a failed visit says so by its result alone.
      EXPECT_TRUE(reader->truncated()) << err;
      EXPECT_TRUE(err.empty() || err.find("truncated") != std::string::npos) << err;
      ++truncations_met;
      if (err.empty() || err.find("while being read") != std::string::npos) ++faults_caught;
      reader.reset();  // a truncated reader is finished: open the file afresh
    }
  };
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) readers.emplace_back(reader_loop);
  // On a loaded machine (a sanitizer build beside other work) the readers may barely run
  // during 1,000 flips: flipping goes on until they have met a truncation, for up to 30 s.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int flip = 0;
       flip < 1000 || (truncations_met.load() == 0 && std::chrono::steady_clock::now() < give_up);
       ++flip) {
    ASSERT_EQ(::truncate(f.path().c_str(), 4096), 0);
    std::this_thread::yield();
    ASSERT_EQ(::truncate(f.path().c_str(), full), 0);
    std::this_thread::yield();
  }
  flipping = false;
  for (auto& t : readers) t.join();
  std::printf("%llu good reads, %llu truncations met, %llu of them inside a guarded load\n",
              (unsigned long long)good_reads.load(), (unsigned long long)truncations_met.load(),
              (unsigned long long)faults_caught.load());
  EXPECT_GT(truncations_met.load(), 0u);
  EXPECT_GT(good_reads.load(), 0u);
}

// A caught fault leaves the reading thread as it found it: its signal mask as before the read
// (ThreadSanitizer runs handlers with every signal blocked, and a jump out of one keeps that
// mask: the thread's next fault in a mapping then killed the process, and SIGTERM never came
// through), and a second fault in the same thread is caught like the first.
TEST(SegmentReader, ACaughtFaultLeavesTheSignalMaskAsItWas) {
  SegmentFile f;
  const size_t full = f.header()->segment_size;
  ASSERT_GT(full, 8192u);
  const auto* past_end = reinterpret_cast<const volatile unsigned char*>(f.header()) + 8192;
  sigset_t before;
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, nullptr, &before), 0);
  for (int fault = 1; fault <= 2; ++fault) {
    // Only the header page left: a load from the third page faults.
    ASSERT_EQ(::truncate(f.path().c_str(), 4096), 0);
    EXPECT_FALSE(guarded(f.header(), full, [&] { (void)*past_end; })) << "fault " << fault;
    sigset_t after;
    ASSERT_EQ(pthread_sigmask(SIG_SETMASK, nullptr, &after), 0);
    for (int sig : {SIGBUS, SIGTERM, SIGINT, SIGUSR1}) {
      EXPECT_EQ(sigismember(&after, sig), sigismember(&before, sig))
          << "signal " << sig << " after fault " << fault;
    }
    ASSERT_EQ(::truncate(f.path().c_str(), off_t(full)), 0);
  }
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
}  // namespace ttmem::collector
