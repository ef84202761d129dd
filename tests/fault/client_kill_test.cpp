// A tracked process killed with SIGKILL at any point of any call: a collector reading it at the
// same time never shows a torn record, and the leak report after its death is exactly the set of
// buffers the process had been told were allocated.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <thread>

#include "collector/collector.h"
#include "common/proc.h"
#include "fault_harness.h"

namespace ttmem::test::fault {

using collector::BufferView;
using collector::Collector;
using collector::CollectorOptions;
using collector::LeakRecord;
using collector::ProcessView;
using collector::Snapshot;
using common::process_start_time;

namespace {

using Clock = std::chrono::steady_clock;

uint32_t iterations() {
  const char* s = std::getenv("TTMEM_FAULT_ITERATIONS");
  return s != nullptr && *s != '\0' ? uint32_t(std::atoi(s)) : 150;
}

// Every buffer of `pid` in a live snapshot is one the client wrote, field for field, and the
// reader rejected nothing as corrupt. Returns the torn records the reader skipped.
uint64_t expect_only_written_records(const Snapshot& s, pid_t pid, uint32_t devices) {
  uint64_t torn = 0;
  for (const ProcessView& p : s.processes) {
    if (p.pid != pid) continue;
    EXPECT_EQ(p.corrupt_records, 0u);
    torn += p.torn_records;
  }
  for (const BufferView& b : s.buffers) {
    if (b.pid != pid) continue;
    EXPECT_EQ(buffer_differs(b.buffer_id, b.device, b.kind, b.address, b.size, b.reserved,
                             buffer_for(b.buffer_id, devices)),
              "");
  }
  return torn;
}

TEST(ClientKill, RandomKillsNeverShowATornRecordAndLeaveExactlyTheAcknowledgedLeaks) {
  const uint64_t seed = test_seed();
  const uint32_t runs = iterations();
  constexpr uint32_t kThreads = 3, kDevices = 4;
  TempDir dir, scratch;
  CollectorOptions options;
  options.dir = dir.path();
  Collector collector(options);
  std::mt19937_64 rng(seed);
  uint64_t total_ops = 0, torn_while_running = 0, killed_before_first_op = 0;

  for (uint32_t run = 0; run < runs; ++run) {
    SCOPED_TRACE("TTMEM_FAULT_SEED=" + std::to_string(seed) + ", run " + std::to_string(run));
    AckFile ack(scratch.path() + "/ack", kThreads, kDevices);
    auto client = start_churn(dir.path(), ack, seed + run);
    auto read_while = [&](auto keep_reading) {
      while (keep_reading()) {
        collector.refresh();
        torn_while_running +=
            expect_only_written_records(collector.snapshot(), client->pid(), kDevices);
      }
    };
    // One run in eight dies in its first 3 ms (start-up: segment creation, registration). The
    // others die 0-20 ms after their first call returned, whatever the machine's load.
    if (rng() % 8 == 0) {
      auto kill_at = Clock::now() + std::chrono::microseconds(rng() % 3000);
      read_while([&] { return Clock::now() < kill_at; });
    } else {
      auto give_up = Clock::now() + std::chrono::seconds(20);
      read_while([&] { return ack.ops() == 0 && Clock::now() < give_up; });
      ASSERT_GT(ack.ops(), 0u) << "the client made no call in 20 s";
      auto kill_at = Clock::now() + std::chrono::microseconds(rng() % 20000);
      read_while([&] { return Clock::now() < kill_at; });
    }
    client->kill(SIGKILL);
    ASSERT_EQ(client->wait(), 128 + SIGKILL);
    uint64_t ops = ack.ops();
    total_ops += ops;
    killed_before_first_op += ops == 0;

    collector.refresh();  // sees the death, reads the final records, reaps
    const Snapshot& s = collector.snapshot();
    for (const ProcessView& p : s.processes) {
      EXPECT_NE(p.pid, client->pid()) << "the dead process is still in the model";
    }
    expect_leaks_are_acknowledged({s.leaks.begin(), s.leaks.end()}, client->pid(), ack.table());
    EXPECT_EQ(leftover_files(dir.path()), std::vector<std::string>{})
        << "the dead process left files behind";
    collector.leak_store().clear();
    if (HasFailure()) break;  // the first failing run, with its seed, is the useful report
  }
  std::printf(
      "%u kills after %llu calls in all (%llu before the first call); %llu torn "
      "reads skipped while running\n",
      runs, (unsigned long long)total_ops, (unsigned long long)killed_before_first_op,
      (unsigned long long)torn_while_running);
}

// A process killed between creating its segment's temporary file and renaming it into place
// leaves `ttmem-<pid>-<start>.seg.tmp`, which nobody would ever remove: /dev/shm would fill up
// one header at a time. A collector removes it once the process is dead.
TEST(ClientKill, HalfCreatedSegmentOfADeadProcessIsRemoved) {
  TempDir dir;
  Child dead({"/bin/sleep", "60"}, {});
  pid_t pid = dead.pid();
  uint64_t start = process_start_time(pid).value_or(0);
  dead.kill(SIGKILL);
  dead.wait();
  std::string stale =
      dir.path() + "/ttmem-" + std::to_string(pid) + "-" + std::to_string(start) + ".seg.tmp";
  std::string alive = dir.path() + "/ttmem-" + std::to_string(::getpid()) + "-" +
                      std::to_string(process_start_time(::getpid()).value_or(0)) + ".seg.tmp";
  for (const auto& path : {stale, alive})
    ASSERT_EQ(run({"/usr/bin/truncate", "-s", "4096", path}).exit_code, 0);

  CollectorOptions options;
  options.dir = dir.path();
  Collector collector(options);
  collector.refresh();
  EXPECT_FALSE(std::filesystem::exists(stale)) << "the dead process's temporary segment stays";
  EXPECT_TRUE(std::filesystem::exists(alive))
      << "the temporary segment of a live process (being created) was removed";
  EXPECT_TRUE(collector.snapshot().problems.empty());
}

// A process that re-registers device 0 over and over (a new descriptor each time) with 50
// buffers live on it. Returns it once it says "ready".
std::unique_ptr<Child> start_reregistering(const std::string& dir) {
  auto child = std::make_unique<Child>(
      std::vector<std::string>{TTMEM_FAULT_CLIENT, "short", "--devices", "1", "--allocs", "50",
                               "--keep", "50", "--reregister"},
      std::map<std::string, std::string>{{"TTMEM_DIR", dir}});
  EXPECT_TRUE(child->expect_line("ready"));
  return child;
}

// Re-registering a device is atomic for readers: every read while it happens sees the device
// and all 50 records (before, 53 of 300 reads dropped the device). And it is safe to be killed
// in: the leak report is all 50 records every time (before, 3 of 60 kills left the slot's
// sequence odd, and every record of the device was rejected as corrupt: 50 of 50 lost).
TEST(ClientKill, ReregisteringADeviceIsAtomicForReadersAndSafeToBeKilledIn) {
  TempDir dir;
  {
    auto client = start_reregistering(dir.path());
    CollectorOptions options;
    options.dir = dir.path();
    options.reap = false;
    Collector reader(options);
    int dropped = 0;
    for (int read = 0; read < 300; ++read) {
      reader.refresh();
      const Snapshot& s = reader.snapshot();
      const bool whole = s.processes.size() == 1 && s.processes[0].buffers == 50 &&
                         s.processes[0].corrupt_records == 0 && s.devices.size() == 1;
      dropped += !whole;
    }
    EXPECT_EQ(dropped, 0) << "reads that lost the device or its records, of 300";
    client->kill(SIGKILL);
    client->wait();
  }
  std::mt19937_64 rng(test_seed());
  CollectorOptions options;
  options.dir = dir.path();
  Collector reaper(options);
  reaper.refresh();  // the first process's 50
  int short_reports = 0;
  for (int kill = 0; kill < 60; ++kill) {
    auto client = start_reregistering(dir.path());
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    client->kill(SIGKILL);
    client->wait();
    reaper.refresh();
    size_t records = 0;
    for (const LeakRecord& l : reaper.snapshot().leaks) records += l.pid == client->pid();
    if (records != 50) {
      ++short_reports;
      ADD_FAILURE() << "kill " << kill << ": " << records << " of 50 leak records";
    }
    for (const auto& p : reaper.snapshot().problems) ADD_FAILURE() << p.path << ": " << p.error;
  }
  EXPECT_EQ(short_reports, 0);
}

}  // namespace
}  // namespace ttmem::test::fault
