// The fold stage fed records directly: no segment file, no collector. Each test states the
// figure a front-end prints and the records that must give it.
#include "collector/fold.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace ttmem::collector {
namespace {

namespace pr = protocol;

constexpr uint32_t kDram = uint32_t(Kind::Dram);
constexpr uint32_t kL1 = uint32_t(Kind::L1);
constexpr uint32_t kCb = uint32_t(Kind::Cb);

constexpr uint64_t kUnreservedBase = 100'000;
constexpr uint64_t kL1BankSize = 1'000'000;
constexpr uint64_t kDramBankBase = 0;
constexpr uint64_t kDramBankSize = 1'000'000;
constexpr uint32_t kDramBanks = 12;
constexpr uint32_t kL1Banks = 64;

pr::DeviceSlot device_slot(uint64_t chip_id) {
  pr::DeviceSlot d{};
  d.flags = pr::kDeviceRegistered;
  d.chip_id = chip_id;
  d.grid_x = d.grid_y = 8;
  d.l1_per_core = kUnreservedBase + kL1BankSize;
  d.unreserved_base = kUnreservedBase;
  std::strcpy(d.board, "n150");
  d.kinds[kDram] = {kDramBankSize * kDramBanks, kDramBankSize, kDramBankBase, kDramBanks, 32};
  d.kinds[kL1] = {kL1BankSize * kL1Banks, kL1BankSize, kUnreservedBase, kL1Banks, 32};
  return d;
}

struct Process {
  FoldInput in;

  explicit Process(pid_t pid, uint64_t chip_id = 7) {
    in.identity.pid = pid;
    in.identity.start_time = 1;
    in.state.devices[0] = device_slot(chip_id);
    in.tags = {"", "matmul", "conv"};
  }

  // An interleaved buffer: size_per_bank on every bank of its kind.
  Process& buffer(uint32_t kind, uint64_t address, uint64_t size, uint64_t size_per_bank,
                  uint32_t tag = 0) {
    pr::BufferRecord r{};
    r.kind = uint8_t(kind);
    r.flags = pr::kRecordLive;
    r.buffer_id = ++next_id;
    r.address = address;
    r.size = size;
    r.size_per_bank = size_per_bank;
    r.tag = tag;
    return live(r);
  }

  // A CB of `program` on the cores x0..x1, y0..y1, `size` bytes per core at `address`.
  Process& cb(uint64_t program, uint64_t address, uint64_t size, uint8_t x0, uint8_t y0,
              uint8_t x1, uint8_t y1, uint32_t tag = 0) {
    pr::BufferRecord r{};
    r.kind = uint8_t(kCb);
    r.flags = pr::kRecordLive;
    r.buffer_id = program;
    r.address = address;
    r.size = r.size_per_bank = size;
    r.num_cores = uint16_t((x1 - x0 + 1) * (y1 - y0 + 1));
    r.aux = uint32_t(x0) | uint32_t(y0) << 8 | uint32_t(x1) << 16 | uint32_t(y1) << 24;
    r.tag = tag;
    return live(r);
  }

  Process& live(const pr::BufferRecord& r) {
    in.state.records.push_back(r);
    pr::KindCounters& c = in.state.counters[0][r.kind];
    c.live_count += 1;
    c.total_allocs += 1;
    return *this;
  }

  uint64_t next_id = 0;
};

Snapshot fold(const std::vector<Process>& processes, bool list_buffers = true) {
  std::vector<FoldInput> inputs;
  for (const Process& p : processes) inputs.push_back(p.in);
  CbPeaks peaks;
  return fold_snapshot(inputs, list_buffers, &peaks);
}

TEST(Fold, ReservedIsPerBankRangeTimesBanksRequestedIsSize) {
  // 1000 bytes over 12 DRAM banks take 96 bytes (84 rounded up to the page) in every bank.
  Snapshot s = fold({Process(10).buffer(kDram, 0, 1000, 96)});
  ASSERT_EQ(s.devices.size(), 1u);
  const KindUsage& dram = s.devices[0].kinds[kDram];
  EXPECT_EQ(dram.requested, 1000u);
  EXPECT_EQ(dram.reserved, 96u * kDramBanks);
  EXPECT_EQ(dram.count, 1u);
  ASSERT_EQ(s.processes.size(), 1u);
  EXPECT_EQ(s.processes[0].requested[kDram], 1000u);
  EXPECT_EQ(s.processes[0].reserved[kDram], 96u * kDramBanks);
  ASSERT_EQ(s.buffers.size(), 1u);
  EXPECT_EQ(s.buffers[0].reserved, 96u * kDramBanks);
  EXPECT_EQ(s.buffers[0].chip_id, 7u);
}

TEST(Fold, LargestFreeBlockIsTheLongestGapInOneBank) {
  // Per bank: [0, 100) used, [100, 300) free, [300, 400) used, the rest free.
  Snapshot s = fold({Process(10)
                         .buffer(kDram, 0, 100 * kDramBanks, 100)
                         .buffer(kDram, 300, 100 * kDramBanks, 100)});
  const KindUsage& dram = s.devices[0].kinds[kDram];
  EXPECT_EQ(dram.free_per_bank, kDramBankSize - 200);
  EXPECT_EQ(dram.largest_free_block, kDramBankSize - 400);
  EXPECT_DOUBLE_EQ(dram.fragmentation, 1.0 - double(kDramBankSize - 400) /
                                                 double(kDramBankSize - 200));
}

TEST(Fold, LargestFreeBlockCountsEveryProcessOnTheChip) {
  // Two processes on one chip share its banks: the gap between their buffers is what is free.
  Snapshot s = fold({Process(10).buffer(kDram, 0, 1200, 100),
                     Process(11).buffer(kDram, 500'000, 1200, 100)});
  ASSERT_EQ(s.devices.size(), 1u);
  const KindUsage& dram = s.devices[0].kinds[kDram];
  EXPECT_EQ(dram.largest_free_block, kDramBankSize - 500'100);
  EXPECT_EQ(dram.count, 2u);
  EXPECT_EQ(s.processes.size(), 2u);
}

TEST(Fold, CbSetsOfProgramsOverlapAndCoverPerCoreHighestEndMinusBase) {
  // Two cached programs, each with its CB set from the unreserved base on the same 2x2 cores:
  // their sets overlap, so the L1 they cover is the larger set, not the sum.
  Snapshot s = fold({Process(10)
                         .cb(1, kUnreservedBase, 4096, 0, 0, 1, 1)
                         .cb(1, kUnreservedBase + 4096, 2048, 0, 0, 1, 1)
                         .cb(2, kUnreservedBase, 8192, 0, 0, 1, 1)});
  const DeviceView& d = s.devices[0];
  EXPECT_EQ(d.kinds[kCb].reserved, 4u * 8192);
  EXPECT_EQ(d.kinds[kCb].requested, 4u * 8192);
  EXPECT_EQ(d.kinds[kCb].count, 3u);
  EXPECT_EQ(d.cb_programs, 2u);
  EXPECT_EQ(d.cb_region_end, kUnreservedBase + 8192);
  EXPECT_EQ(d.cb_region_in_use(), 8192u);
  EXPECT_EQ(s.processes[0].reserved[kCb], 4u * 8192);
  EXPECT_EQ(s.processes[0].cbs, 3u);
  EXPECT_EQ(s.processes[0].buffers, 0u);
  EXPECT_EQ(s.processes[0].cb_programs, 2u);
}

TEST(Fold, CbCoverageIsPerCore) {
  // Program 1 covers core (0,0) to base + 6144; program 2 covers cores (0,0)-(1,0) to
  // base + 4096. Core (0,0) takes 6144, core (1,0) 4096.
  Snapshot s = fold({Process(10)
                         .cb(1, kUnreservedBase, 6144, 0, 0, 0, 0)
                         .cb(2, kUnreservedBase, 4096, 0, 0, 1, 0)});
  EXPECT_EQ(s.devices[0].kinds[kCb].reserved, 6144u + 4096u);
  EXPECT_EQ(s.devices[0].cb_region_end, kUnreservedBase + 6144);
}

TEST(Fold, CbSetsOfTwoProcessesOverlapToo) {
  Snapshot s = fold({Process(10).cb(1, kUnreservedBase, 4096, 0, 0, 0, 0),
                     Process(11).cb(1, kUnreservedBase, 1024, 0, 0, 0, 0)});
  EXPECT_EQ(s.devices[0].kinds[kCb].reserved, 4096u);
  EXPECT_EQ(s.devices[0].cb_programs, 2u);  // one per process
  EXPECT_EQ(s.processes[0].reserved[kCb], 4096u);
  EXPECT_EQ(s.processes[1].reserved[kCb], 1024u);
}

TEST(Fold, ClashMarginIsLowestL1BufferMinusCbRegionEnd) {
  Snapshot s = fold({Process(10)
                         .cb(1, kUnreservedBase, 4096, 0, 0, 0, 0)
                         .buffer(kL1, kUnreservedBase + 10'000, 64 * 256, 256)});
  const DeviceView& d = s.devices[0];
  EXPECT_TRUE(d.has_l1_buffers);
  EXPECT_EQ(d.lowest_l1_address, kUnreservedBase + 10'000);
  EXPECT_EQ(d.clash_margin, 10'000 - 4096);
  EXPECT_EQ(d.kinds[kCb].largest_free_block, 10'000u - 4096u);
}

TEST(Fold, CbPeakIsKeptAcrossFolds) {
  CbPeaks peaks;
  std::vector<FoldInput> big{Process(10).cb(1, kUnreservedBase, 8192, 0, 0, 0, 0).in};
  std::vector<FoldInput> small{Process(10).cb(1, kUnreservedBase, 1024, 0, 0, 0, 0).in};
  EXPECT_EQ(fold_snapshot(big, false, &peaks).devices[0].kinds[kCb].peak, 8192u);
  Snapshot later = fold_snapshot(small, false, &peaks);
  EXPECT_EQ(later.devices[0].kinds[kCb].reserved, 1024u);
  EXPECT_EQ(later.devices[0].kinds[kCb].peak, 8192u);
}

TEST(Fold, TagsAddReservedBytesAndCoveredCbBytes) {
  Snapshot s = fold({Process(10)
                         .buffer(kDram, 0, 1200, 100, 1)
                         .buffer(kDram, 100, 2400, 200, 2)
                         .cb(1, kUnreservedBase, 4096, 0, 0, 0, 0, 1)
                         .cb(2, kUnreservedBase, 2048, 0, 0, 0, 0, 1)});
  ASSERT_EQ(s.tags.size(), 2u);
  // Most reserved first: matmul's two CB sets cover 4096 bytes, not 6144.
  EXPECT_EQ(s.tags[0].tag, "matmul");
  EXPECT_EQ(s.tags[0].reserved[kDram], 100u * kDramBanks);
  EXPECT_EQ(s.tags[0].reserved[kCb], 4096u);
  EXPECT_EQ(s.tags[0].buffers, 3u);
  EXPECT_EQ(s.tags[1].tag, "conv");
  EXPECT_EQ(s.tags[1].reserved[kDram], 200u * kDramBanks);
}

TEST(Fold, WithoutListingBuffersTheAggregatesAreTheSame) {
  Process p(10);
  p.buffer(kDram, 0, 1200, 100, 1).cb(1, kUnreservedBase, 4096, 0, 0, 0, 0);
  Snapshot listed = fold({p}, true);
  Snapshot counted = fold({p}, false);
  EXPECT_TRUE(counted.buffers.empty());
  EXPECT_EQ(listed.buffers.size(), 2u);
  EXPECT_EQ(listed.buffers[0].tag, "matmul");
  EXPECT_EQ(counted.devices[0].kinds[kDram].reserved, listed.devices[0].kinds[kDram].reserved);
  EXPECT_EQ(counted.devices[0].kinds[kCb].reserved, listed.devices[0].kinds[kCb].reserved);
}

TEST(Fold, LeaksAreTheLiveBuffersOfAnEndedProcessWithoutItsCbs) {
  // CBs end with their program; every other live buffer of a process that ended is a leak, with
  // the bytes its record reserves.
  Process p(10, 9);
  p.in.identity.command = "pytest";
  p.buffer(kDram, 0, 1000, 96, 2).cb(1, kUnreservedBase, 4096, 0, 0, 0, 0).buffer(kL1, 0, 64, 64);
  const std::vector<std::string>& tags = p.in.tags;
  std::vector<LeakRecord> leaks = leak_records(
      p.in.identity, p.in.state, [&tags](uint32_t id) { return tags[id]; }, 1234);
  ASSERT_EQ(leaks.size(), 2u);
  EXPECT_EQ(leaks[0].pid, 10);
  EXPECT_EQ(leaks[0].command, "pytest");
  EXPECT_EQ(leaks[0].chip_id, 9u);
  EXPECT_EQ(leaks[0].detected_realtime_ns, 1234u);
  EXPECT_EQ(leaks[0].kind, kDram);
  EXPECT_EQ(leaks[0].size, 1000u);
  EXPECT_EQ(leaks[0].reserved, 96u * kDramBanks);
  EXPECT_EQ(leaks[0].tag, "conv");
  EXPECT_EQ(leaks[1].kind, kL1);
  EXPECT_EQ(leaks[1].reserved, 64u * kL1Banks);
  EXPECT_EQ(leaks[1].tag, "");
}

TEST(Fold, DroppedEventsAndDeviceTotalsPerProcess) {
  Process p(10);
  p.buffer(kDram, 0, 1200, 100);
  p.in.state.counters[0][kDram].total_frees = 3;
  p.in.dropped_events[0] = 5;
  Snapshot s = fold({p});
  EXPECT_EQ(s.dropped_events, 5u);
  EXPECT_EQ(s.devices[0].dropped_events, 5u);
  ASSERT_EQ(s.processes[0].device_totals.size(), 1u);
  EXPECT_EQ(s.processes[0].device_totals[0].frees[kDram], 3u);
  EXPECT_EQ(s.devices[0].kinds[kDram].total_frees, 3u);
}

}  // namespace
}  // namespace ttmem::collector
