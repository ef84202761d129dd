// The collector over a hand-made segment. A collector that does not list buffers folds records
// in place instead of copying them; its aggregates must be those of one that copies.
#include "collector/collector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>

#include "segment_file.h"

namespace ttmem::collector {
namespace {

namespace pr = protocol;

using test::SegmentFile;

// No process has this pid (pid_max is at most 2^22): the collector takes the segment for one of
// a process that has ended, and believes it because the file is its own user's.
constexpr uint32_t kEndedPid = 1u << 30;

auto fields(const KindUsage& k) {
  return std::tie(k.requested, k.reserved, k.peak, k.count, k.total_allocs, k.total_frees,
                  k.capacity, k.num_banks, k.bank_size, k.bank_base, k.largest_free_block,
                  k.free_per_bank, k.fragmentation);
}

auto fields(const DeviceView& d) {
  return std::tie(d.chip_id, d.logical_ids, d.arch, d.board, d.grid_x, d.grid_y, d.l1_per_core,
                  d.unreserved_base, d.trace_region_size, d.l1_small_size, d.cb_region_end,
                  d.cb_programs, d.lowest_l1_address, d.has_l1_buffers, d.clash_margin, d.dropped_events);
}

auto fields(const ProcessDeviceTotals& t) {
  return std::tie(t.chip_id, t.allocs, t.frees, t.dropped_events);
}

auto fields(const ProcessView& p) {
  return std::tie(p.pid, p.start_time, p.uid, p.command, p.segment, p.segment_check, p.exited,
                  p.reserved, p.requested, p.buffers, p.cbs, p.cb_programs, p.dropped_events, p.torn_records,
                  p.corrupt_records);
}

void register_device(SegmentFile& f, uint32_t logical_id, uint64_t chip_id) {
  pr::DeviceSlot d{};
  d.flags = pr::kDeviceRegistered;
  d.logical_id = logical_id;
  d.chip_id = chip_id;
  d.grid_x = d.grid_y = 8;
  d.l1_per_core = 1499136;
  d.unreserved_base = 102400;
  d.trace_region_size = 4 << 20;
  d.l1_small_size = 32768;
  std::strcpy(d.board, "n300");
  const uint32_t dram = uint32_t(Kind::Dram), l1 = uint32_t(Kind::L1);
  d.kinds[dram] = {12ull << 30, 1ull << 30, 0, 12, 32};
  d.kinds[l1] = {64ull * 1396736, 1396736, 102400, 64, 16};
  d.kinds[uint32_t(Kind::L1Small)] = {64ull * 32768, 32768, 0, 64, 16};
  d.kinds[uint32_t(Kind::Trace)] = {12ull << 22, 4 << 20, 0, 12, 32};
  d.kinds[uint32_t(Kind::Cb)] = d.kinds[l1];
  pr::seqlock_write32(&f.devices()[logical_id], d);
}

void add_tag(SegmentFile& f, uint32_t id, const char* text) {
  pr::StringSlot s{};
  std::strcpy(s.text, text);
  s.len = uint8_t(std::strlen(text));
  f.strings()[id] = s;
  f.header()->string_count = std::max(f.header()->string_count, id + 1);
}

// Three devices (one without buffers), tags, counters, dropped events, and 600 records: every
// kind on two devices, ranges that overlap and leave gaps, corrupt records and free slots.
// Returns how many records are valid buffers (CBs excluded).
size_t fill_segment(SegmentFile& f) {
  register_device(f, 0, 0xB000);
  register_device(f, 1, 0xB001);
  register_device(f, 2, 0xB002);  // no buffers
  add_tag(f, 1, "ttnn::matmul");
  add_tag(f, 2, "ttnn::linear");
  for (uint32_t d = 0; d < 3; ++d) {
    for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
      pr::KindCounters& c = f.counters(d)[k];
      c.live_count = 90;
      c.peak_reserved = 1000 * (d + 1) + k;
      c.total_allocs = 300 + d + k;
      c.total_frees = 200 + d;
    }
    f.ring_heads()[d].head = SegmentFile::kRing * d + 3;  // device 1 and 2 dropped events
  }
  uint32_t slot = 0;
  size_t buffers = 0;
  for (uint32_t i = 0; i < 600; ++i) {
    pr::BufferRecord r{};
    r.device = uint8_t(i % 2);
    r.kind = uint8_t(i % pr::kNumKinds);
    r.buffer_id = i;
    r.tag = i % 3;
    r.size = 1000 + i;
    r.size_per_bank = 2048;
    r.page_size = 2048;
    r.num_banks = 12;
    r.num_cores = uint16_t(1 + i % 4);
    r.address = r.kind == uint8_t(Kind::L1) ? 1396736 - (i % 50) * 4096 : (i % 97) * 3000;
    if (r.kind == uint8_t(Kind::Cb)) r.address = 102400 + (i % 13) * 1024;
    r.time_ns = i;
    if (i % 17 == 4) r.kind = 42;        // corrupt: no such kind
    if (i % 23 == 6) r.device = 9;       // corrupt: not registered
    if (i % 29 == 7) r.address = ~0ull;  // corrupt: wraps
    if (i % 31 == 8) {                   // a free slot
      ++slot;
      continue;
    }
    f.put(slot++, r);
    bool valid = r.kind < pr::kNumKinds && r.device < 2 && r.address != ~0ull;
    if (valid && r.kind != uint8_t(Kind::Cb)) ++buffers;
  }
  return buffers;
}

TEST(Collector, AggregatesAreTheSameWhetherRecordsAreCopiedOrFoldedInPlace) {
  SegmentFile f(kEndedPid);
  fill_segment(f);

  const CollectorOptions listing{.dir = f.dir(), .reap = false, .list_buffers = true};
  CollectorOptions folding = listing;
  folding.list_buffers = false;
  Collector listed(listing), folded(folding);
  listed.refresh();
  folded.refresh();
  const Snapshot& a = listed.snapshot();
  const Snapshot& b = folded.snapshot();

  // The folding collector never copied the records.
  auto access = folded.process({pid_t(kEndedPid), 1});
  ASSERT_TRUE(access);
  EXPECT_TRUE(access->state->records.empty());
  EXPECT_TRUE(b.buffers.empty());
  EXPECT_GT(a.buffers.size(), 400u);

  ASSERT_EQ(a.devices.size(), 3u);
  ASSERT_EQ(b.devices.size(), a.devices.size());
  EXPECT_GT(a.devices[0].kinds[uint32_t(Kind::Dram)].fragmentation, 0.0);  // gaps to find
  for (size_t i = 0; i < a.devices.size(); ++i) {
    EXPECT_EQ(fields(a.devices[i]), fields(b.devices[i])) << "device " << i;
    for (uint32_t k = 0; k < kNumKinds; ++k) {
      EXPECT_EQ(fields(a.devices[i].kinds[k]), fields(b.devices[i].kinds[k]))
          << "device " << i << " kind " << k;
    }
  }
  ASSERT_EQ(a.processes.size(), 1u);
  ASSERT_EQ(b.processes.size(), 1u);
  const ProcessView& pa = a.processes[0];
  const ProcessView& pb = b.processes[0];
  EXPECT_EQ(fields(pa), fields(pb));
  EXPECT_EQ(std::memcmp(&pa.counters, &pb.counters, sizeof pa.counters), 0);
  ASSERT_EQ(pa.device_totals.size(), 3u);
  ASSERT_EQ(pb.device_totals.size(), pa.device_totals.size());
  for (size_t i = 0; i < pa.device_totals.size(); ++i) {
    EXPECT_EQ(fields(pa.device_totals[i]), fields(pb.device_totals[i])) << "device " << i;
  }
  EXPECT_GT(pa.corrupt_records, 0u);
  EXPECT_EQ(pa.buffers + pa.cbs, a.buffers.size());
  ASSERT_EQ(a.tags.size(), 3u);
  ASSERT_EQ(b.tags.size(), a.tags.size());
  for (size_t i = 0; i < a.tags.size(); ++i) {
    EXPECT_EQ(a.tags[i].tag, b.tags[i].tag);
    EXPECT_EQ(a.tags[i].reserved, b.tags[i].reserved) << a.tags[i].tag;
    EXPECT_EQ(a.tags[i].buffers, b.tags[i].buffers) << a.tags[i].tag;
  }
  // Neither reads history: rings that overwrote what nobody read lost nothing to them.
  EXPECT_EQ(a.dropped_events, 0u);
  EXPECT_EQ(b.dropped_events, 0u);
}

// Aggregates alone do not need the records, but reaping does: a collector that does not list
// buffers still turns every buffer of an ended process into a leak record.
TEST(Collector, AFoldingCollectorStillReapsEveryBuffer) {
  SegmentFile f(kEndedPid);
  const size_t buffers = fill_segment(f);
  Collector c(CollectorOptions{.dir = f.dir(), .reap = true, .list_buffers = false});
  c.refresh();
  EXPECT_EQ(c.snapshot().leaks.count(), buffers);
  EXPECT_TRUE(c.snapshot().processes.empty());
  EXPECT_FALSE(std::filesystem::exists(f.path()));
}

// Open inotify instances of this process.
int inotify_fds() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(e.path(), ec).string() == "anon_inode:inotify") ++n;
  }
  return n;
}

// A watching collector wakes from wait() when a segment appears; a one-shot one (`ttmem status`)
// holds no inotify watch, whose teardown at exit can cost tens of milliseconds of wall time.
TEST(Collector, OnlyAWatchingCollectorHoldsAnInotifyWatch) {
  SegmentFile f(kEndedPid);
  const int before = inotify_fds();
  {
    Collector once(CollectorOptions{.dir = f.dir(), .reap = false, .watch = false});
    once.refresh();
    EXPECT_EQ(inotify_fds(), before);
  }
  Collector watching(CollectorOptions{.dir = f.dir(), .reap = false});
  EXPECT_EQ(inotify_fds(), before + 1);
  watching.refresh();
  const auto start = std::chrono::steady_clock::now();
  std::ofstream(f.dir() + "/appeared") << "x";
  EXPECT_TRUE(watching.wait(10'000));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace ttmem::collector
