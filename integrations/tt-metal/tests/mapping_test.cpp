// The tt-metal adapter's mapping, driven through test types that mirror tt-metal's hook
// interfaces (one per vintage) and accessors, with the real client library. Every result is read
// back through the collector from this process's real segment.
//
// The client reads TTMEM_DIR once per process, so main() points it at a fresh directory before
// the first report; each test starts from and returns to an empty live set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "collector/collector.h"
#include "fake_tt_metal.h"
#include "ttmem_tt_metal/hooks.hpp"

namespace {

using ttmem::BufferView;
using ttmem::tt_metal::AllocationObserver;
using ttmem::tt_metal::GraphProcessor;
using ttmem::tt_metal::Mapper;

std::string g_dir;  // NOLINT: set once in main

using TraitsAny = fake::Traits<std::span<std::any>>;
using TraitsTracked = fake::Traits<std::span<fake::TrackedArgument>>;

ttmem::Snapshot snapshot() {
  ttmem::Collector c({.dir = g_dir, .reap = false});
  c.refresh();
  return c.snapshot();
}

std::vector<BufferView> own_buffers() {
  std::vector<BufferView> out;
  for (const auto& b : snapshot().buffers) {
    if (b.pid == ::getpid()) out.push_back(b);
  }
  std::sort(out.begin(), out.end(), [](const BufferView& a, const BufferView& b) {
    return std::tie(a.device, a.kind, a.buffer_id) < std::tie(b.device, b.kind, b.buffer_id);
  });
  return out;
}

const ttmem::ProcessView* own_process(const ttmem::Snapshot& s) {
  for (const auto& p : s.processes) {
    if (p.pid == ::getpid()) return &p;
  }
  return nullptr;
}

size_t next_id() {
  static size_t id = 1000;
  return ++id;
}

class Chips {
 public:
  Chips() {
    for (int i = 0; i < 8; ++i) chips_.push_back(std::make_unique<fake::IDevice>(i, 0x100 + i));
    std::vector<fake::IDevice*> raw;
    for (auto& c : chips_) raw.push_back(c.get());
    mesh_ = std::make_unique<fake::MeshDevice>(40, raw);
  }
  fake::IDevice* chip(int i) { return chips_[size_t(i)].get(); }
  fake::MeshDevice* mesh() { return mesh_.get(); }

 private:
  std::vector<std::unique_ptr<fake::IDevice>> chips_;
  std::unique_ptr<fake::MeshDevice> mesh_;
};

fake::Buffer dram(fake::IDevice* d, uint64_t size, uint64_t address) {
  fake::Buffer b;
  b.device_ = d;
  b.size_ = size;
  b.address_ = address;
  b.unique_id_ = next_id();
  return b;
}

fake::Buffer l1_sharded(fake::IDevice* d, uint64_t size, uint64_t address, uint32_t cores,
                        uint64_t per_bank) {
  fake::Buffer b = dram(d, size, address);
  b.type_ = fake::BufferType::L1;
  b.layout_ = fake::TensorMemoryLayout::WIDTH_SHARDED;
  b.num_cores_ = cores;
  b.aligned_size_per_bank_ = per_bank;
  return b;
}

fake::CoreRange cores(size_t x0, size_t y0, size_t x1, size_t y1) {
  return {{x0, y0}, {x1, y1}};
}

// A mapper and the hook class of one vintage, used through the vintage's interface as tt-metal
// calls it.
template <class Base, class Traits>
struct Hooked {
  Mapper<Traits> mapper;
  GraphProcessor<Base, Traits> processor{mapper};
  Base& hooks = processor;
};

class MappingTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(own_buffers().empty()) << "a previous test left buffers"; }
  void TearDown() override {
    for (const auto& b : own_buffers()) {
      if (b.kind != TTMEM_KIND_CB) ttmem_buffer_free(b.device, b.buffer_id);
    }
    for (uint32_t d = 0; d < 8; ++d) ttmem_cb_free_all(d);
  }
  Chips chips_;
};

// --- Vintage 4 (current): buffers, device registration, CB device, tags -------------------------

TEST_F(MappingTest, CurrentVintageBufferBecomesRecordWithUniqueIdAndRealDescriptor) {
  Hooked<fake::ProcessorV4, TraitsTracked> h;
  auto& mapper = h.mapper;
  fake::ProcessorV4& hooks = h.hooks;
  EXPECT_FALSE(hooks.is_capture_processor());

  fake::Buffer b = dram(chips_.chip(2), 1 << 20, 0x40000);
  b.page_size_ = 2048;
  hooks.track_allocate(&b);

  auto bufs = own_buffers();
  ASSERT_EQ(bufs.size(), 1u);
  EXPECT_EQ(bufs[0].device, 2u);
  EXPECT_EQ(bufs[0].chip_id, 0x102u);
  EXPECT_EQ(bufs[0].kind, uint32_t(TTMEM_KIND_DRAM));
  EXPECT_EQ(bufs[0].buffer_id, b.unique_id());
  EXPECT_EQ(bufs[0].address, 0x40000u);
  EXPECT_EQ(bufs[0].size, uint64_t(1 << 20));
  // 512 pages over 12 banks: 43 pages of 2048 B per bank, on all 12 banks (lock-step).
  EXPECT_EQ(bufs[0].reserved, 43u * 2048 * 12);

  ttmem::Snapshot s = snapshot();
  auto dev = std::find_if(s.devices.begin(), s.devices.end(),
                          [](const auto& d) { return d.chip_id == 0x102; });
  ASSERT_NE(dev, s.devices.end());
  EXPECT_EQ(dev->board, "fake-n300");
  EXPECT_EQ(dev->arch, uint32_t(TTMEM_ARCH_WORMHOLE_B0));
  EXPECT_EQ(dev->grid_x, 8);
  EXPECT_EQ(dev->kinds[TTMEM_KIND_DRAM].capacity, 12ull << 30);
  EXPECT_EQ(dev->kinds[TTMEM_KIND_DRAM].num_banks, 12u);
  EXPECT_EQ(dev->l1_per_core, 1499136u);

  hooks.track_deallocate(&b);
  EXPECT_TRUE(own_buffers().empty());
  EXPECT_EQ(own_process(snapshot())->counters.unknown_frees, 0u);
  EXPECT_EQ(mapper.stats().rejected.load(), 0u);
}

TEST_F(MappingTest, ShardedL1UsesShardCoresAndAlignedSizePerBank) {
  Hooked<fake::ProcessorV4, TraitsTracked> h;
  fake::ProcessorV4& hooks = h.hooks;
  fake::Buffer b = l1_sharded(chips_.chip(0), 32 * 1024, 0x140000, 16, 2048);
  hooks.track_allocate(&b);
  auto bufs = own_buffers();
  ASSERT_EQ(bufs.size(), 1u);
  EXPECT_EQ(bufs[0].kind, uint32_t(TTMEM_KIND_L1));
  EXPECT_EQ(bufs[0].num_banks, 16u);
  EXPECT_EQ(bufs[0].num_cores, 16u);
  EXPECT_EQ(bufs[0].size_per_bank, 2048u);
  // The range is reserved on every one of the 64 L1 banks, holding a shard or not.
  EXPECT_EQ(bufs[0].reserved, 2048u * 64);
  hooks.track_deallocate(&b);
}

TEST_F(MappingTest, MeshBufferFansOutToEveryMemberChipAndViewsAreNotReported) {
  Hooked<fake::ProcessorV4, TraitsTracked> h;
  fake::ProcessorV4& hooks = h.hooks;
  // One event on the MeshDevice; size() is already per chip. The per-chip buffers tt-metal makes
  // for it are non-owning views and are never reported.
  fake::Buffer backing = dram(chips_.mesh(), 4 << 20, 0x80000);
  hooks.track_allocate(&backing);

  ttmem::Snapshot s = snapshot();
  auto bufs = own_buffers();
  ASSERT_EQ(bufs.size(), 8u);
  for (uint32_t i = 0; i < 8; ++i) {
    EXPECT_EQ(bufs[i].device, i);
    EXPECT_EQ(bufs[i].chip_id, 0x100u + i);
    EXPECT_EQ(bufs[i].buffer_id, backing.unique_id());
    EXPECT_EQ(bufs[i].address, 0x80000u);
    EXPECT_EQ(bufs[i].size, uint64_t(4 << 20));
  }
  for (const auto& d : s.devices) {
    EXPECT_NE(d.chip_id, 40u) << "the mesh itself must not be registered as a chip";
  }

  hooks.track_deallocate(&backing);
  EXPECT_TRUE(own_buffers().empty());
  EXPECT_EQ(own_process(snapshot())->counters.unknown_frees, 0u);
}

TEST_F(MappingTest, HookedAndZeroSizeAllocationsAreIgnoredOnAllocAndFree) {
  Hooked<fake::ProcessorV4, TraitsTracked> h;
  auto& mapper = h.mapper;
  fake::ProcessorV4& hooks = h.hooks;
  ttmem::Snapshot before = snapshot();
  const ttmem::ProcessView* p0 = own_process(before);
  const uint64_t unknown_before = p0 != nullptr ? p0->counters.unknown_frees : 0;

  fake::Buffer hooked = dram(chips_.chip(1), 1 << 20, 0);  // NO_DISPATCH capture: address 0
  fake::Buffer empty = dram(chips_.chip(1), 0, 0x1000);
  hooks.track_allocate(&hooked);
  hooks.track_allocate(&empty);
  EXPECT_TRUE(own_buffers().empty());
  hooks.track_deallocate(&hooked);
  hooks.track_deallocate(&empty);
  EXPECT_EQ(mapper.stats().hooked.load(), 2u);
  EXPECT_EQ(mapper.stats().zero_size.load(), 2u);
  ttmem::Snapshot s = snapshot();
  if (const auto* p = own_process(s)) {
    EXPECT_EQ(p->counters.unknown_frees, unknown_before);
  }
}

TEST_F(MappingTest, CurrentVintageCbsUseTheirDeviceAndDeallocateCbFreesAllOfIt) {
  Hooked<fake::ProcessorV4, TraitsTracked> h;
  auto& mapper = h.mapper;
  fake::ProcessorV4& hooks = h.hooks;
  fake::Program program{77};
  hooks.track_program(&program, chips_.chip(4));
  fake::CoreRangeSet set(std::vector{cores(0, 0, 3, 3), cores(4, 0, 7, 0)});  // 16 + 4 cores
  hooks.track_allocate_cb(set, 102400, 8192, false, chips_.chip(4));
  hooks.track_allocate_cb(set, 110592, 4096, false, chips_.chip(4));
  hooks.track_allocate_cb(cores(0, 0, 0, 0), 102400, 2048, false, chips_.chip(5));
  // A globally allocated CB sits on an L1 buffer already counted.
  hooks.track_allocate_cb(set, 0x150000, 65536, true, chips_.chip(4));

  auto bufs = own_buffers();
  ASSERT_EQ(bufs.size(), 3u);
  EXPECT_EQ(bufs[0].device, 4u);
  EXPECT_EQ(bufs[0].kind, uint32_t(TTMEM_KIND_CB));
  EXPECT_EQ(bufs[0].buffer_id, 77u);  // the program id
  EXPECT_EQ(bufs[0].num_cores, 20u);
  uint64_t reserved4 = 0;
  for (const auto& b : bufs) {
    if (b.device == 4) reserved4 += b.reserved;
  }
  EXPECT_EQ(reserved4, (8192u + 4096u) * 20);
  EXPECT_EQ(mapper.stats().global_cbs.load(), 1u);

  hooks.track_deallocate_cb(chips_.chip(4));
  bufs = own_buffers();
  ASSERT_EQ(bufs.size(), 1u);
  EXPECT_EQ(bufs[0].device, 5u);
  hooks.track_deallocate_cb(chips_.chip(5));
  EXPECT_TRUE(own_buffers().empty());
}

TEST_F(MappingTest, CbsOnAMeshDeviceFanOut) {
  Hooked<fake::ProcessorV4, TraitsTracked> h;
  fake::ProcessorV4& hooks = h.hooks;
  hooks.track_allocate_cb(fake::CoreRangeSet(cores(0, 0, 1, 1)), 102400, 4096, false,
                          chips_.mesh());
  EXPECT_EQ(own_buffers().size(), 8u);
  hooks.track_deallocate_cb(chips_.mesh());
  EXPECT_TRUE(own_buffers().empty());
}

TEST_F(MappingTest, OpNamesFromFunctionStartAndEndBecomeTags) {
  Hooked<fake::ProcessorV4, TraitsTracked> h;
  fake::ProcessorV4& hooks = h.hooks;
  std::vector<fake::TrackedArgument> args(2);
  fake::Buffer outer = dram(chips_.chip(0), 4096, 0x1000);
  fake::Buffer inner = dram(chips_.chip(0), 4096, 0x3000);
  fake::Buffer after = dram(chips_.chip(0), 4096, 0x5000);
  fake::Buffer untagged = dram(chips_.chip(0), 4096, 0x7000);

  std::string name = "ttnn::linear and more";  // a string_view need not end in NUL
  hooks.track_function_start(std::string_view(name).substr(0, 12), args);
  hooks.track_allocate(&outer);
  hooks.track_function_start("ttnn::matmul", args);
  hooks.track_allocate(&inner);
  hooks.track_function_end(std::any(1));
  hooks.track_allocate(&after);
  hooks.track_function_end();
  hooks.track_allocate(&untagged);

  auto tag_of = [](uint64_t id) {
    for (const auto& b : own_buffers()) {
      if (b.buffer_id == id) return b.tag;
    }
    return std::string("<missing>");
  };
  EXPECT_EQ(tag_of(outer.unique_id()), "ttnn::linear");
  EXPECT_EQ(tag_of(inner.unique_id()), "ttnn::matmul");
  EXPECT_EQ(tag_of(after.unique_id()), "ttnn::linear");
  EXPECT_EQ(tag_of(untagged.unique_id()), "");
}

TEST_F(MappingTest, OpTagsArePerThread) {
  Hooked<fake::ProcessorV4, TraitsTracked> h;
  fake::ProcessorV4& hooks = h.hooks;
  std::vector<fake::Buffer> bufs;
  for (int t = 0; t < 4; ++t) bufs.push_back(dram(chips_.chip(t), 4096, 0x1000));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<fake::TrackedArgument> args;
      std::string op = "op" + std::to_string(t);
      hooks.track_function_start(op, args);
      hooks.track_allocate(&bufs[size_t(t)]);
      hooks.track_function_end();
    });
  }
  for (auto& th : threads) th.join();
  auto live = own_buffers();
  ASSERT_EQ(live.size(), 4u);
  for (const auto& b : live) EXPECT_EQ(b.tag, "op" + std::to_string(b.device));
}

// --- Vintage 3: the is_globally_allocated flag, no device (the program's device is used) --------

TEST_F(MappingTest, Vintage3TrustsTheGlobalFlagAndTakesTheDeviceFromTrackProgram) {
  Hooked<fake::ProcessorV3, TraitsAny> h;
  auto& mapper = h.mapper;
  fake::ProcessorV3& hooks = h.hooks;
  fake::Program program{5};
  hooks.track_program(&program, chips_.chip(6));
  hooks.track_allocate_cb(fake::CoreRangeSet(cores(0, 0, 7, 7)), 102400, 16384, false);
  hooks.track_allocate_cb(fake::CoreRangeSet(cores(0, 0, 7, 7)), 0x120000, 16384, true);
  auto bufs = own_buffers();
  ASSERT_EQ(bufs.size(), 1u);
  EXPECT_EQ(bufs[0].device, 6u);
  EXPECT_EQ(bufs[0].reserved, 16384u * 64);
  EXPECT_EQ(mapper.stats().global_cbs.load(), 1u);
  hooks.track_deallocate_cb(chips_.chip(6));
  EXPECT_TRUE(own_buffers().empty());
}

// --- Vintage 2: a CoreRangeSet without the flag: global CBs are recognised by address ----------

TEST_F(MappingTest, Vintage2RecognisesGlobalCbsByTheAddressOfALiveL1Buffer) {
  Hooked<fake::ProcessorV2, TraitsAny> h;
  auto& mapper = h.mapper;
  fake::ProcessorV2& hooks = h.hooks;
  fake::Buffer sharded = l1_sharded(chips_.chip(1), 64 * 1024, 0x160000, 32, 2048);
  hooks.track_allocate(&sharded);
  fake::Program program{9};
  hooks.track_program(&program, chips_.chip(1));
  fake::CoreRangeSet grid(cores(0, 0, 7, 3));
  hooks.track_allocate_cb(grid, 0x160000, 2048);  // over the sharded buffer: global
  hooks.track_allocate_cb(grid, 102400, 4096);    // in the CB region: local
  auto bufs = own_buffers();
  ASSERT_EQ(bufs.size(), 2u);  // the L1 buffer and one CB
  EXPECT_EQ(bufs[1].kind, uint32_t(TTMEM_KIND_CB));
  EXPECT_EQ(bufs[1].address, 102400u);
  EXPECT_EQ(bufs[1].num_cores, 32u);
  EXPECT_EQ(mapper.stats().global_cbs.load(), 1u);

  // Once the L1 buffer is gone, a CB at that address is a local one again.
  hooks.track_deallocate(&sharded);
  hooks.track_allocate_cb(grid, 0x160000, 2048);
  EXPECT_EQ(own_buffers().size(), 2u);
  hooks.track_deallocate_cb(chips_.chip(1));
  EXPECT_TRUE(own_buffers().empty());
}

// --- Vintage 1: one CoreRange, no device anywhere -----------------------------------------------

TEST_F(MappingTest, Vintage1AttributesCbsToTheOnlyDeviceSeen) {
  Hooked<fake::ProcessorV1, TraitsAny> h;
  auto& mapper = h.mapper;
  fake::ProcessorV1& hooks = h.hooks;
  fake::Program program{3};
  hooks.track_program(&program);
  // No device seen yet: nothing to attribute the CB to.
  hooks.track_allocate_cb(cores(0, 0, 1, 1), 102400, 1024);
  EXPECT_TRUE(own_buffers().empty());
  EXPECT_EQ(mapper.stats().unattributed_cbs.load(), 1u);

  fake::Buffer b = dram(chips_.chip(3), 8192, 0x2000);
  hooks.track_allocate(&b);
  hooks.track_allocate_cb(cores(0, 0, 1, 1), 102400, 1024);
  auto bufs = own_buffers();
  ASSERT_EQ(bufs.size(), 2u);
  EXPECT_EQ(bufs[1].kind, uint32_t(TTMEM_KIND_CB));
  EXPECT_EQ(bufs[1].device, 3u);
  EXPECT_EQ(bufs[1].buffer_id, 3u);
  EXPECT_EQ(bufs[1].reserved, 1024u * 4);
  hooks.track_deallocate_cb(chips_.chip(3));
  hooks.track_deallocate(&b);
  EXPECT_TRUE(own_buffers().empty());
}

TEST_F(MappingTest, Vintage1WithSeveralDevicesDropsCbsItCannotAttribute) {
  Hooked<fake::ProcessorV1, TraitsAny> h;
  auto& mapper = h.mapper;
  fake::ProcessorV1& hooks = h.hooks;
  mapper.add_device(chips_.chip(0));
  mapper.add_device(chips_.chip(1));
  hooks.track_allocate_cb(cores(0, 0, 0, 0), 102400, 1024);
  EXPECT_TRUE(own_buffers().empty());
  EXPECT_EQ(mapper.stats().unattributed_cbs.load(), 1u);
}

// --- BufferAllocationObserver, both spellings ---------------------------------------------------

template <class Base>
void exercise_observer(Chips& chips) {
  Mapper<TraitsTracked> mapper;
  AllocationObserver<Base, TraitsTracked> observer(mapper);
  Base& base = observer;
  fake::Buffer a = dram(chips.chip(7), 1 << 16, 0x9000);
  fake::Buffer mesh = dram(chips.mesh(), 1 << 16, 0xa0000);
  fake::Buffer hooked = dram(chips.chip(7), 1 << 16, 0);
  if constexpr (std::is_same_v<Base, fake::BufferAllocationObserver>) {
    base.notify_buffer_allocated(&a);
    base.notify_buffer_allocated(&mesh);
    base.notify_buffer_allocated(&hooked);
  } else {
    base.track_allocate(&a);
    base.track_allocate(&mesh);
    base.track_allocate(&hooked);
  }
  auto bufs = own_buffers();
  ASSERT_EQ(bufs.size(), 9u);  // a, and the mesh buffer on 8 chips
  EXPECT_EQ(std::count_if(bufs.begin(), bufs.end(),
                          [&](const BufferView& b) { return b.buffer_id == a.unique_id(); }),
            1);
  if constexpr (std::is_same_v<Base, fake::BufferAllocationObserver>) {
    base.notify_buffer_deallocated(&a);
    base.notify_buffer_deallocated(&mesh);
  } else {
    base.track_deallocate(&a);
    base.track_deallocate(&mesh);
  }
  EXPECT_TRUE(own_buffers().empty());
  EXPECT_EQ(mapper.stats().hooked.load(), 1u);
}

TEST_F(MappingTest, ObserverAsNamedInFacts) { exercise_observer<fake::BufferAllocationObserver>(chips_); }

TEST_F(MappingTest, ObserverWithTrackSpelling) {
  exercise_observer<fake::BufferAllocationObserverTrack>(chips_);
}

}  // namespace

int main(int argc, char** argv) {
  // Before the first client call: the client reads TTMEM_DIR once per process.
  std::string tmpl = (std::filesystem::temp_directory_path() / "ttmem-adapter-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return 1;
  g_dir = tmpl;
  ::setenv("TTMEM_DIR", g_dir.c_str(), 1);
  ::unsetenv("TTMEM_DISABLE");
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
  return rc;
}
