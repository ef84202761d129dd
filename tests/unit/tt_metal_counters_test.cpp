// tt-metal's per-chip counter files: the checks of the reader, and the merge into a snapshot
// (liveness of slots, stale totals, processes ttmem's client reports too).
#include "collector/tt_metal_counters.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "../integration/tt_metal_region_writer.h"
#include "common/clock.h"
#include "common/proc.h"
#include "temp_dir.h"

namespace ttmem::collector {

using common::process_start_time;
using common::realtime_ns;

namespace {

using test::TtMetalBytes;
using test::TtMetalRegionWriter;
constexpr uint32_t kDram = uint32_t(Kind::Dram);
constexpr uint32_t kL1 = uint32_t(Kind::L1);
constexpr uint32_t kCb = uint32_t(Kind::Cb);

class TtMetalCounters : public ::testing::Test {
 protected:
  // A pid no process holds: a child that has exited and been reaped.
  static pid_t dead_pid() {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    ::waitpid(pid, nullptr, 0);
    return pid;
  }

  Snapshot merged(const TtMetalScan& scan, Snapshot s = {}) {
    merge_tt_metal_counters(s, scan);
    return s;
  }

  static const DeviceView* device(const Snapshot& s, uint64_t chip) {
    auto it = std::find_if(s.devices.begin(), s.devices.end(),
                           [&](const DeviceView& d) { return d.chip_id == chip; });
    return it == s.devices.end() ? nullptr : &*it;
  }
  static const ProcessView* process(const Snapshot& s, pid_t pid, const std::string& source) {
    auto it = std::find_if(s.processes.begin(), s.processes.end(), [&](const ProcessView& p) {
      return p.pid == pid && p.source == source;
    });
    return it == s.processes.end() ? nullptr : &*it;
  }
  static std::string problems(const Snapshot& s) {
    std::string all;
    for (const auto& p : s.problems) all += p.path + ": " + p.error + "\n";
    return all;
  }

  test::TempDir tmp_;
  const std::string dir_ = tmp_.path();
};

TEST_F(TtMetalCounters, CountsLiveSlotsAndShowsEndedAndReusedOnesAsStale) {
  const uint64_t now = realtime_ns();
  const pid_t gone = dead_pid();
  for (uint32_t version : {3u, 4u}) {
    SCOPED_TRACE(version);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directory(dir_);
    TtMetalRegionWriter(version, 4242, 1)
        .process(::getpid(), {1000, 200, 30, 4, 50}, now, "live")
        .process(gone, {7000, 0, 0, 0, 0}, now, "ended")
        // The parent holds this pid now, but it started long after the slot's last update.
        .process(::getppid(), {9000, 0, 0, 0, 0}, 1'000'000'000, "reused")
        .remote_chip(5, {111, 22, 0, 0, 0})
        .write(dir_);
    Snapshot s = merged(read_tt_metal_counters(dir_));
    EXPECT_EQ(problems(s), "");
    const DeviceView* d = device(s, 4242);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->detail, kDetailCounters);
    EXPECT_TRUE(d->logical_ids.empty());
    EXPECT_EQ(d->tt_metal->creator_logical_id, 1u);
    // Only the live slot is memory in use; capacity is unknown.
    EXPECT_EQ(d->kinds[kDram].reserved, 1000u);
    EXPECT_EQ(d->kinds[kL1].requested, 200u);
    EXPECT_EQ(d->kinds[kCb].reserved, 50u);
    EXPECT_EQ(d->kinds[kDram].capacity, 0u);
    ASSERT_TRUE(d->tt_metal);
    EXPECT_EQ(d->tt_metal->version, version);
    EXPECT_EQ(d->tt_metal->totals[kDram], 1000u + 7000 + 9000 + 111);
    EXPECT_FALSE(d->tt_metal->totals_stale);
    EXPECT_EQ(d->tt_metal->live_processes, 1u);
    EXPECT_EQ(d->tt_metal->stale_processes, 2u);
    ASSERT_EQ(d->tt_metal->remote_chips.size(), 1u);
    EXPECT_EQ(d->tt_metal->remote_chips[0].logical_id, 5u);
    EXPECT_EQ(d->tt_metal->remote_chips[0].bytes[kL1], 22u);

    const ProcessView* live = process(s, ::getpid(), kSourceTtMetalShm);
    ASSERT_NE(live, nullptr);
    EXPECT_TRUE(live->counted);
    EXPECT_FALSE(live->stale);
    EXPECT_EQ(live->start_time, process_start_time(::getpid()).value());
    EXPECT_EQ(live->reserved[kDram], 1000u);
    EXPECT_EQ(live->command, "live");
    EXPECT_EQ(live->chips, std::vector<uint64_t>{4242});
    for (pid_t pid : {gone, ::getppid()}) {
      const ProcessView* stale = process(s, pid, kSourceTtMetalShm);
      ASSERT_NE(stale, nullptr) << pid;
      EXPECT_TRUE(stale->stale);
      EXPECT_FALSE(stale->counted);
      EXPECT_EQ(stale->reserved[kDram], 0u);  // never live memory
      EXPECT_GT(stale->reported[kDram], 0u);  // but what it left is shown
    }
  }
}

TEST_F(TtMetalCounters, AnEarlierProcessOfAReusedPidIsARowOfItsOwn) {
  // Chip 1's slot was last updated before this process started: an earlier holder of the pid.
  TtMetalRegionWriter(4, 1, 0).process(::getpid(), {300, 0, 0, 0, 0}, 1'000'000'000).write(dir_);
  TtMetalRegionWriter(4, 2, 0).process(::getpid(), {400, 0, 0, 0, 0}, realtime_ns()).write(dir_);
  Snapshot s = merged(read_tt_metal_counters(dir_));
  ASSERT_EQ(s.processes.size(), 2u);
  const ProcessView& earlier = s.processes[0].stale ? s.processes[0] : s.processes[1];
  const ProcessView& now = s.processes[0].stale ? s.processes[1] : s.processes[0];
  EXPECT_TRUE(earlier.stale);
  EXPECT_EQ(earlier.reported[kDram], 300u);
  EXPECT_EQ(earlier.chips, std::vector<uint64_t>{1});
  EXPECT_FALSE(now.stale);
  EXPECT_TRUE(now.counted);
  EXPECT_EQ(now.reserved[kDram], 400u);
  EXPECT_EQ(now.reported[kDram], 400u);
}

TEST_F(TtMetalCounters, TotalsWithNoLiveProcessAreStale) {
  TtMetalRegionWriter(4, 77, 0).process(dead_pid(), {5000, 0, 0, 0, 0}, realtime_ns()).write(dir_);
  Snapshot s = merged(read_tt_metal_counters(dir_));
  const DeviceView* d = device(s, 77);
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(d->tt_metal);
  EXPECT_TRUE(d->tt_metal->totals_stale);
  EXPECT_EQ(d->tt_metal->totals[kDram], 5000u);
  EXPECT_EQ(d->kinds[kDram].reserved, 0u);
}

TEST_F(TtMetalCounters, AProcessTtmemReportsOnTheSameChipIsNotCountedTwice) {
  TtMetalRegionWriter(4, 0x7000, 0)
      .process(::getpid(), {4096, 0, 0, 0, 0}, realtime_ns())
      .write(dir_);
  TtMetalRegionWriter(4, 0x7001, 1)
      .process(::getpid(), {8192, 0, 0, 0, 0}, realtime_ns())
      .write(dir_);
  Snapshot s;
  ProcessView own;
  own.pid = ::getpid();
  own.start_time = process_start_time(::getpid()).value();
  own.reserved[kDram] = 4096;
  ProcessDeviceTotals on_chip;
  on_chip.chip_id = 0x7000;
  own.device_totals.push_back(on_chip);
  s.processes.push_back(own);
  DeviceView detailed;
  detailed.chip_id = 0x7000;
  detailed.logical_ids = {0};
  detailed.kinds[kDram].reserved = 4096;
  s.devices.push_back(detailed);

  s = merged(read_tt_metal_counters(dir_), std::move(s));
  const DeviceView* d0 = device(s, 0x7000);
  const DeviceView* d1 = device(s, 0x7001);
  ASSERT_TRUE(d0 && d1);
  EXPECT_EQ(d0->detail, kDetailBuffers);
  EXPECT_EQ(d0->kinds[kDram].reserved, 4096u);  // ttmem's figure alone
  EXPECT_EQ(d1->detail, kDetailCounters);
  EXPECT_EQ(d1->kinds[kDram].reserved, 8192u);  // the chip ttmem does not see
  const ProcessView* shm = process(s, ::getpid(), kSourceTtMetalShm);
  ASSERT_NE(shm, nullptr);
  ASSERT_NE(process(s, ::getpid(), kSourceTtmem), nullptr);
  EXPECT_TRUE(shm->counted);
  EXPECT_EQ(shm->reserved[kDram], 8192u);
  EXPECT_EQ(shm->reported[kDram], 4096u + 8192);
}

TEST_F(TtMetalCounters, RefusesFilesThatCannotBeBelieved) {
  const uint64_t now = realtime_ns();
  TtMetalRegionWriter(5, 1, 0).process(::getpid(), {1, 0, 0, 0, 0}, now).write(dir_);
  TtMetalRegionWriter(4, 2, 0).process(::getpid(), {1, 0, 0, 0, 0}, now).write(dir_, 100);
  TtMetalRegionWriter torn(4, 3, 0);
  torn.region().init_state = 0;  // the creator has not finished the header
  torn.write(dir_);
  TtMetalRegionWriter other(3, 4, 0);
  other.region().asic_id = 99;  // names another chip than its file name
  TtMetalRegionWriter::write_bytes(dir_ + "/" + TtMetalRegionWriter::file_name(4), &other.region(),
                                   sizeof other.region());
  std::vector<unsigned char> garbage(test::tt_shm::kFileSize);
  std::mt19937 rng(7);
  for (auto& b : garbage) b = uint8_t(rng());
  TtMetalRegionWriter::write_bytes(dir_ + "/" + TtMetalRegionWriter::file_name(5), garbage.data(),
                                   garbage.size());
  std::vector<unsigned char> longer(test::tt_shm::kFileSize + 10);
  TtMetalRegionWriter::write_bytes(dir_ + "/" + TtMetalRegionWriter::file_name(6), longer.data(),
                                   longer.size());
  ::mkfifo((dir_ + "/" + TtMetalRegionWriter::file_name(7)).c_str(), 0600);
  // Not tt-metal's names: ignored, not reported.
  TtMetalRegionWriter::write_bytes(dir_ + "/tt_device_x_memory", garbage.data(), 10);
  TtMetalRegionWriter::write_bytes(dir_ + "/tt_device__memory", garbage.data(), 10);

  TtMetalScan scan = read_tt_metal_counters(dir_);
  EXPECT_TRUE(scan.regions.empty());
  ASSERT_EQ(scan.problems.size(), 7u);
  auto error_of = [&](uint64_t chip) {
    const std::string path = dir_ + "/" + TtMetalRegionWriter::file_name(chip);
    for (const auto& p : scan.problems) {
      if (p.path == path) return p.error;
    }
    return std::string("(none)");
  };
  EXPECT_NE(error_of(1).find("unknown version 5"), std::string::npos) << error_of(1);
  EXPECT_NE(error_of(2).find("size 100 bytes"), std::string::npos) << error_of(2);
  EXPECT_NE(error_of(3).find("not initialised"), std::string::npos) << error_of(3);
  EXPECT_NE(error_of(4).find("header names chip 99"), std::string::npos) << error_of(4);
  EXPECT_NE(error_of(5).find("tt-metal counters: "), std::string::npos) << error_of(5);
  EXPECT_NE(error_of(6).find("size 8586 bytes"), std::string::npos) << error_of(6);
  EXPECT_NE(error_of(7).find("not a regular file"), std::string::npos) << error_of(7);
  Snapshot s = merged(scan);
  EXPECT_TRUE(s.devices.empty());
  EXPECT_TRUE(s.processes.empty());
}

TEST_F(TtMetalCounters, AFileThatChangesSizeWhileReadIsReadAgainNextTime) {
  TtMetalRegionWriter(4, 9, 0).process(::getpid(), {1, 0, 0, 0, 0}, realtime_ns()).write(dir_);
  const std::string path = dir_ + "/" + TtMetalRegionWriter::file_name(9);
  TtMetalScan scan = read_tt_metal_counters(
      dir_, [](const std::string& p) { ASSERT_EQ(::truncate(p.c_str(), 4000), 0); });
  EXPECT_TRUE(scan.regions.empty());
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_NE(scan.problems[0].error.find("changed size while being read"), std::string::npos)
      << scan.problems[0].error;
  EXPECT_EQ(scan.problems[0].path, path);
}

TEST_F(TtMetalCounters, SkipsBadSlotsAndSaysWhenCountersDoNotAddUp) {
  TtMetalRegionWriter w(4, 11, 0);
  w.process(::getpid(), {100, 0, 0, 0, 0}, realtime_ns());
  w.process(-5, {1, 0, 0, 0, 0}, realtime_ns());
  w.process(::getpid(), {1, 0, 0, 0, 0}, realtime_ns());
  w.process(77, {uint64_t{1} << 60, 0, 0, 0, 0}, realtime_ns());
  w.region().chip_stats[3].allocated[0] = 5;  // an unused slot with counters
  w.region().total_allocated[0] = 50;         // less than the processes hold
  w.write(dir_);
  TtMetalScan scan = read_tt_metal_counters(dir_);
  ASSERT_EQ(scan.regions.size(), 1u);
  ASSERT_EQ(scan.regions[0].processes.size(), 1u);
  EXPECT_EQ(scan.regions[0].processes[0].bytes[kDram], 100u);
  ASSERT_EQ(scan.problems.size(), 1u);
  const std::string& e = scan.problems[0].error;
  EXPECT_NE(e.find("(pid -5) skipped: no such pid can exist"), std::string::npos) << e;
  EXPECT_NE(e.find("skipped: pid repeated"), std::string::npos) << e;
  EXPECT_NE(e.find("(pid 77) skipped: impossible counters"), std::string::npos) << e;
  EXPECT_NE(e.find("unused chip slot 3 holds counters"), std::string::npos) << e;
  EXPECT_NE(e.find("process counters add up to more than the totals: DRAM 100 > 50"),
            std::string::npos)
      << e;
}

TEST_F(TtMetalCounters, AMissingDirectoryHoldsNoFiles) {
  TtMetalScan scan = read_tt_metal_counters(dir_ + "/absent");
  EXPECT_TRUE(scan.regions.empty());
  EXPECT_TRUE(scan.problems.empty());
}

TEST_F(TtMetalCounters, ReadsABoundedNumberOfFiles) {
  TtMetalRegionWriter w(4, 0, 0);
  for (uint64_t chip = 0; chip < kMaxTtMetalFiles + 3; ++chip) {
    w.region().asic_id = chip;
    w.write(dir_);
  }
  TtMetalScan scan = read_tt_metal_counters(dir_);
  EXPECT_EQ(scan.regions.size(), kMaxTtMetalFiles);
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_NE(scan.problems[0].error.find("3 files beyond the first"), std::string::npos);
}

}  // namespace
}  // namespace ttmem::collector
