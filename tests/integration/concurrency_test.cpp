// Client threads report on shared and separate devices while collectors read the same segment
// from another thread: readers must never see a corrupt record, totals must be exact once the
// writers stop, and (in the TSan build) nothing may race.
#include <atomic>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "collector/collector.h"
#include "common/clock.h"
#include "temp_dir.h"
#include "ttmem/ttmem.hpp"

namespace ttmem::collector {
namespace {

std::string g_dir;

TEST(Concurrency, ReadersNeverSeeCorruptRecordsAndTotalsEndExact) {
  constexpr uint32_t kDevices = 2;
  for (uint32_t d = 0; d < kDevices; ++d) {
    ttmem_device_desc desc = make_device_desc();
    desc.logical_id = d;
    desc.chip_id = 0xC000 + d;
    desc.kinds[TTMEM_KIND_DRAM] = {12ull << 30, 1ull << 30, 0, 12, 32};
    desc.kinds[TTMEM_KIND_L1] = {64ull << 20, 1 << 20, 0, 64, 16};
    ASSERT_EQ(register_device(desc), TTMEM_OK);
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> snapshots{0};
  std::thread reader([&] {
    Collector c(CollectorOptions{g_dir});
    while (!stop.load()) {
      c.refresh();
      for (const auto& p : c.snapshot().processes) EXPECT_EQ(p.corrupt_records, 0u);
      snapshots.fetch_add(1);
    }
  });
  // Three writers: two share device 0, one has device 1. Each keeps half its buffers.
  constexpr uint32_t kWriters = 3, kOps = 20000;
  std::vector<std::thread> writers;
  for (uint32_t w = 0; w < kWriters; ++w) {
    writers.emplace_back([w] {
      uint32_t device = w == 2 ? 1 : 0;
      OpScope op(w % 2 ? "ttnn::linear" : "ttnn::matmul");
      for (uint64_t i = 0; i < kOps; ++i) {
        uint64_t id = (uint64_t(w) << 32) | i;
        auto b = make_buffer_desc(device, id, i % 2 ? Kind::L1 : Kind::Dram, i * 64, 1000 + i);
        b.page_size = 32;
        EXPECT_EQ(buffer_alloc(b), TTMEM_OK);
        if (i % 2 == 0) EXPECT_EQ(buffer_free(device, id), TTMEM_OK);
        if (w == 2 && i % 100 == 0) {
          cb_alloc(device, {{0, 0, 1, 1}}, 4096, 256, i);
          if (i % 300 == 0) cb_free_all(device);
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  stop = true;
  reader.join();
  EXPECT_GT(snapshots.load(), 0u);

  Collector c(CollectorOptions{g_dir});
  c.refresh();
  const Snapshot& s = c.snapshot();
  ASSERT_EQ(s.processes.size(), 1u);
  // Odd i survive: kOps/2 per writer; on device 0 two writers.
  uint64_t live = 0;
  for (const auto& d : s.devices) live += d.kinds[TTMEM_KIND_DRAM].count + d.kinds[TTMEM_KIND_L1].count;
  EXPECT_EQ(live, uint64_t(kWriters) * kOps / 2);
  EXPECT_EQ(s.processes[0].buffers, uint64_t(kWriters) * kOps / 2);
  EXPECT_EQ(s.processes[0].torn_records, 0u);
  // Freeing the rest leaves nothing.
  for (uint32_t w = 0; w < kWriters; ++w) {
    for (uint64_t i = 1; i < kOps; i += 2) buffer_free(w == 2 ? 1 : 0, (uint64_t(w) << 32) | i);
  }
  cb_free_all(1);
  c.refresh();
  for (const auto& d : c.snapshot().devices) {
    for (const auto& k : d.kinds) EXPECT_EQ(k.reserved, 0u);
  }
}

// The client stamps events from the TSC, converted with a rate each thread measures itself and
// re-anchored every second. Over more than a re-anchoring, in two threads, every stamp must lie
// between CLOCK_MONOTONIC read just before and just after its allocation.
TEST(Concurrency, AllocationTimesFollowTheMonotonicClock) {
  constexpr uint32_t kDevice = 3;
  ttmem_device_desc desc = make_device_desc();
  desc.logical_id = kDevice;
  desc.chip_id = 0xC003;
  desc.kinds[TTMEM_KIND_DRAM] = {12ull << 30, 1ull << 30, 0, 12, 32};
  ASSERT_EQ(register_device(desc), TTMEM_OK);
  struct Bracket {
    uint64_t id, before, after;
  };
  constexpr uint64_t kRunNs = 1'300'000'000;  // past the first re-anchoring
  std::vector<std::vector<Bracket>> brackets(2);
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < brackets.size(); ++t) {
    threads.emplace_back([t, &brackets] {
      const uint64_t start = common::monotonic_ns();
      for (uint64_t i = 0;; ++i) {
        const uint64_t id = (uint64_t{0x7700 + t} << 32) | i;
        const uint64_t before = common::monotonic_ns();
        if (before - start > kRunNs) break;
        ASSERT_EQ(buffer_alloc(make_buffer_desc(kDevice, id, Kind::Dram, i * 64, 64)), TTMEM_OK);
        brackets[t].push_back({id, before, common::monotonic_ns()});
        // Keep every hundredth live; free the rest so the live set stays small.
        if (brackets[t].size() % 100 != 0) ASSERT_EQ(buffer_free(kDevice, id), TTMEM_OK);
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    });
  }
  for (auto& th : threads) th.join();

  Collector c(CollectorOptions{g_dir});
  c.refresh();
  std::map<uint64_t, uint64_t> stamped;
  for (const auto& b : c.snapshot().buffers) {
    if (b.device == kDevice) stamped[b.buffer_id] = b.time_ns;
  }
  size_t checked = 0;
  // Threads' conversions may disagree by well under a microsecond (fast_clock.h).
  constexpr uint64_t kSlackNs = 2'000;
  for (const auto& per_thread : brackets) {
    for (size_t i = 99; i < per_thread.size(); i += 100) {
      const Bracket& b = per_thread[i];
      auto it = stamped.find(b.id);
      ASSERT_NE(it, stamped.end()) << "buffer " << b.id << " is not live";
      EXPECT_GE(it->second + kSlackNs, b.before) << "buffer " << b.id;
      EXPECT_LE(it->second, b.after + kSlackNs) << "buffer " << b.id;
      ++checked;
    }
  }
  EXPECT_GE(checked, 20u);
  for (const auto& [id, time] : stamped) buffer_free(kDevice, id);
}

}  // namespace
}  // namespace ttmem::collector

int main(int argc, char** argv) {
  // The client reads TTMEM_DIR once, at its first call: point it at a private directory first.
  ttmem::test::TempDir dir;
  ttmem::collector::g_dir = dir.path();
  ::setenv("TTMEM_DIR", dir.path().c_str(), 1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
