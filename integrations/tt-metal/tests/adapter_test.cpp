// The tt-metal adapter's mapping, driven by a small tt-metal (fake_tt_metal.h) of each vintage it
// supports, through the real client library; every figure is read back through the collector
// from this process's real segment and compared with what ttmem's model of tt-metal computes for
// the same workload.
//
// The client reads TTMEM_DIR once per process, so main() points it at a fresh directory before
// the first report; each test starts from and returns to an empty live set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "collector/collector.h"
#include "collector/query.h"
#include "fake_tt_metal.h"
#include "ttmem_tt_metal/hooks.hpp"

namespace {

namespace model = ttmem::model;
using ttmem::collector::BufferView;
using ttmem::collector::ProgramCbSet;
using ttmem::collector::Snapshot;
using ttmem::tt_metal::GraphProcessor;
using ttmem::tt_metal::Mapper;

std::string g_dir;  // NOLINT: set once in main

Snapshot snapshot() {
  ttmem::collector::Collector c({.dir = g_dir, .reap = false});
  c.refresh();
  return c.snapshot();
}

std::vector<BufferView> own_buffers(const Snapshot& s) {
  std::vector<BufferView> out;
  for (const auto& b : s.buffers) {
    if (b.pid == ::getpid()) out.push_back(b);
  }
  return out;
}

// The program CB sets of this process on a chip, keyed by program id.
std::map<uint64_t, ProgramCbSet> cb_sets(const Snapshot& s, uint64_t chip_id) {
  ttmem::collector::BufferFilter f;
  f.chip_id = chip_id;
  f.pid = ::getpid();
  std::map<uint64_t, ProgramCbSet> out;
  for (ProgramCbSet& p : ttmem::collector::select_programs(s, f)) out[p.program_id] = p;
  return out;
}

const ttmem::collector::DeviceView* device(const Snapshot& s, uint64_t chip_id) {
  for (const auto& d : s.devices) {
    if (d.chip_id == chip_id) return &d;
  }
  return nullptr;
}

constexpr uint64_t kChip0 = 0x100;  // unique ids of the fake chips: 0x100 + i

// What the model computes for a program's CB set: its CB bytes and where its region ends.
struct ExpectedSet {
  uint64_t bytes = 0;
  uint64_t region_end = 0;
};
ExpectedSet expected_set(const std::vector<fake::CbConfig>& cbs, const model::ChipGeometry& g) {
  model::Program p;
  ExpectedSet e;
  for (const auto& cb : cbs) {
    if (cb.global) continue;
    p.add_circular_buffer(fake::to_model(cb.cores), cb.size);
    e.bytes += cb.size * model::num_cores(fake::to_model(cb.cores));
  }
  e.region_end = model::place_circular_buffers(p, g).region_end();
  return e;
}

// A program of an op: CBs on the first `cores` cores, row-major, as ttnn lays out a grid.
std::vector<fake::CbConfig> op_cbs(const model::ChipGeometry& g, uint32_t cores,
                                   std::initializer_list<uint64_t> sizes) {
  std::vector<fake::CbConfig> out;
  for (uint64_t size : sizes) {
    out.push_back({fake::from_model(model::row_major_cores(cores, g.grid_x)), size, false});
  }
  return out;
}

// One T3K (8 Wormhole chips), as ttnn opens it: one MeshDevice over eight chips.
struct Machine {
  model::MeshDevice model{*model::find_board("t3k"), {.trace_region_size = 1 << 20,
                                                       .l1_small_size = 32768}};
  std::vector<std::unique_ptr<fake::IDevice>> chips;
  std::unique_ptr<fake::MeshDevice> mesh;
  Machine() {
    std::vector<fake::IDevice*> raw;
    for (int i = 0; i < 8; ++i) {
      chips.push_back(std::make_unique<fake::IDevice>(i, kChip0 + uint64_t(i), model, i));
      raw.push_back(chips.back().get());
    }
    mesh = std::make_unique<fake::MeshDevice>(40, model, raw);
  }
  const model::ChipGeometry& geometry() const { return model.geometry(); }
};

template <class V>
class AdapterTest : public ::testing::Test {
 public:
  using Tracker = fake::GraphTracker<V>;
  using Processor = GraphProcessor<fake::IGraphProcessor<V>, fake::Traits<V>>;

  void SetUp() override {
    ASSERT_TRUE(own_buffers(snapshot()).empty()) << "a previous test left buffers";
    Tracker::instance().clear();
    push_on_this_thread();
  }
  void TearDown() override {
    ttnn_.clear_program_cache();
    Tracker::instance().clear();
    for (const auto& b : own_buffers(snapshot())) {
      if (b.kind != TTMEM_KIND_CB) ttmem_buffer_free(b.device, b.buffer_id);
    }
    for (uint32_t d = 0; d < TTMEM_MAX_DEVICES; ++d) ttmem_cb_free_all(d);
  }

  // What the adapter's pthread_create wrapper does on every new thread: push the processor
  // unless the (process-wide) stack already has it.
  void push_on_this_thread() {
    for (const auto& p : Tracker::instance().get_processors()) {
      if (p.get() == processor_.get()) return;
    }
    Tracker::instance().push_processor(processor_);
  }

  // Runs `fn` on a new thread set up as the adapter sets up tt-metal's threads.
  void on_new_thread(const std::function<void()>& fn) {
    std::thread t([&] {
      push_on_this_thread();
      fn();
    });
    t.join();
  }

  Machine m_;
  fake::Ttnn<V> ttnn_;
  Mapper<fake::Traits<V>> mapper_;
  std::shared_ptr<Processor> processor_ = std::make_shared<Processor>(mapper_);
};

using Vintages = ::testing::Types<fake::V2025, fake::V2026, fake::VMain>;
struct VintageNames {
  template <class V>
  static std::string GetName(int) {
    std::string n = V::kName;
    std::replace(n.begin(), n.end(), '-', '_');
    return n;
  }
};
TYPED_TEST_SUITE(AdapterTest, Vintages, VintageNames);

// --- Buffers ------------------------------------------------------------------------------------

TYPED_TEST(AdapterTest, MeshBufferIsOneEventFannedOutAndTotalsEqualTheModel) {
  using V = TypeParam;
  const model::ChipGeometry& g = this->m_.geometry();
  auto weights = fake::create_buffer<V>(this->m_.mesh.get(),
                                        {.type = model::BufferType::Dram, .size = 12 * 4096 * 5,
                                         .page_size = 4096});
  auto act = fake::create_buffer<V>(this->m_.mesh.get(),
                                    {.type = model::BufferType::L1, .size = 64 * 2048,
                                     .page_size = 2048, .layout = model::Layout::HeightSharded,
                                     .num_shards = 32});
  auto nd = fake::create_buffer<V>(this->m_.chips[3].get(),
                                   {.type = model::BufferType::L1, .size = 16 * 2048,
                                    .page_size = 2048, .layout = model::Layout::NdSharded,
                                    .num_shards = 8});
  Snapshot s = snapshot();
  std::vector<BufferView> bufs = own_buffers(s);
  ASSERT_EQ(bufs.size(), 8u + 8u + 1u);
  EXPECT_EQ(std::count_if(bufs.begin(), bufs.end(),
                          [&](const BufferView& b) { return b.buffer_id == weights->unique_id(); }),
            8);
  for (int i = 0; i < 8; ++i) {
    const ttmem::collector::DeviceView* d = device(s, kChip0 + uint64_t(i));
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->logical_ids, std::vector<uint32_t>{uint32_t(i)});
    // The model's own statistics for the chip, over all banks.
    for (auto [kind, type] : {std::pair{TTMEM_KIND_DRAM, model::BufferType::Dram},
                              std::pair{TTMEM_KIND_L1, model::BufferType::L1}}) {
      const model::MemoryView v = this->m_.model.chip(size_t(i)).memory_view(type);
      EXPECT_EQ(d->kinds[kind].reserved, v.total_bytes_allocated_per_bank * v.num_banks)
          << "chip " << i << " kind " << kind;
      EXPECT_EQ(d->kinds[kind].largest_free_block, v.largest_contiguous_bytes_free_per_bank);
    }
  }
  for (const auto& s_buf : {std::pair{act.get(), 32u}, std::pair{nd.get(), 8u}}) {
    auto b = std::find_if(bufs.begin(), bufs.end(), [&](const BufferView& x) {
      return x.buffer_id == s_buf.first->unique_id();
    });
    ASSERT_NE(b, bufs.end());
    EXPECT_EQ(b->num_banks, s_buf.second) << "sharded buffers spread over their cores";
    EXPECT_EQ(b->reserved, s_buf.first->aligned_size_per_bank() * g.kind(model::BufferType::L1).num_banks);
  }
  fake::destroy_buffer<V>(weights);
  fake::destroy_buffer<V>(act);
  fake::destroy_buffer<V>(nd);
  EXPECT_TRUE(own_buffers(snapshot()).empty());
  EXPECT_EQ(this->mapper_.stats().rejected.load(), 0u);
}

TYPED_TEST(AdapterTest, ChipsPastTtmemsLogicalIdsAreRegisteredOnceUnderAFreeId) {
  using V = TypeParam;
  fake::IDevice far(100, 0x900, this->m_.model, 5);
  auto a = fake::create_buffer<V>(&far, {.type = model::BufferType::Dram, .size = 8192,
                                         .page_size = 2048});
  auto b = fake::create_buffer<V>(&far, {.type = model::BufferType::Dram, .size = 8192,
                                         .page_size = 2048});
  Snapshot s = snapshot();
  const ttmem::collector::DeviceView* d = device(s, 0x900);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->logical_ids, std::vector<uint32_t>{0u}) << "the lowest free ttmem id";
  EXPECT_EQ(d->kinds[TTMEM_KIND_DRAM].count, 2u);
  fake::destroy_buffer<V>(a);
  fake::destroy_buffer<V>(b);
}

// --- CB sets per program ---------------------------------------------------------------------

TYPED_TEST(AdapterTest, EachCachedProgramKeepsItsOwnSetAndCacheHitsReportNothing) {
  const model::ChipGeometry& g = this->m_.geometry();
  const auto matmul = op_cbs(g, 48, {65536, 65536, 32768});
  const auto add = op_cbs(g, 56, {8192, 8192, 4096});
  for (int step = 0; step < 3; ++step) {  // the first launch fills the cache; then hits
    this->ttnn_.run("ttnn::linear", this->m_.mesh.get(), "linear", matmul);
    this->ttnn_.run("ttnn::add", this->m_.mesh.get(), "add", add);
  }
  const ExpectedSet em = expected_set(matmul, g), ea = expected_set(add, g);
  Snapshot s = snapshot();
  for (int i = 0; i < 8; ++i) {
    auto sets = cb_sets(s, kChip0 + uint64_t(i));
    ASSERT_EQ(sets.size(), 2u) << "chip " << i;
    std::vector<uint64_t> bytes, ends;
    for (const auto& [id, p] : sets) {
      bytes.push_back(p.bytes);
      ends.push_back(p.region_end);
    }
    std::sort(bytes.begin(), bytes.end());
    EXPECT_EQ(bytes, (std::vector<uint64_t>{std::min(em.bytes, ea.bytes), std::max(em.bytes, ea.bytes)}));
    const ttmem::collector::DeviceView* d = device(s, kChip0 + uint64_t(i));
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->cb_programs, 2u);
    // The sets overlap from the base: the region in use is the larger one, never the sum.
    EXPECT_EQ(d->cb_region_end, std::max(em.region_end, ea.region_end));
    // Covered L1: 48 cores up to the matmul's end, the other 8 up to the add's.
    EXPECT_EQ(d->kinds[TTMEM_KIND_CB].reserved,
              48 * (em.region_end - g.l1_unreserved_base) + 8 * (ea.region_end - g.l1_unreserved_base));
  }
  EXPECT_EQ(this->mapper_.stats().programs_built.load(), 2u) << "one build per program";
}

TYPED_TEST(AdapterTest, DestroyingAProgramFreesExactlyItsSet) {
  using V = TypeParam;
  const model::ChipGeometry& g = this->m_.geometry();
  const auto big = op_cbs(g, 56, {262144});
  const auto small = op_cbs(g, 56, {16384});
  this->ttnn_.run("ttnn::matmul", this->m_.mesh.get(), "big", big);
  this->ttnn_.run("ttnn::add", this->m_.mesh.get(), "small", small);
  const uint64_t small_id = this->ttnn_.cached("small")->get_runtime_id();
  std::unique_ptr<fake::Ttnn<V>> other = std::make_unique<fake::Ttnn<V>>();
  // A second cache holding the big program's twin, destroyed on its own.
  other->run("ttnn::matmul", this->m_.mesh.get(), "big", big);
  EXPECT_EQ(cb_sets(snapshot(), kChip0).size(), 3u);
  other.reset();  // ~ProgramImpl
  if constexpr (!V::kDeallocatesCbs) {
    EXPECT_EQ(cb_sets(snapshot(), kChip0).size(), 3u) << "2025 never says";
    this->mapper_.sweep_destroyed_programs();  // runs by itself within a second of launches
  }
  Snapshot s = snapshot();
  for (int i = 0; i < 8; ++i) {
    auto sets = cb_sets(s, kChip0 + uint64_t(i));
    EXPECT_EQ(sets.size(), 2u) << "chip " << i;
    EXPECT_EQ(sets.count(small_id), 1u);
  }
  this->ttnn_.clear_program_cache();
  if constexpr (!V::kDeallocatesCbs) this->mapper_.sweep_destroyed_programs();
  s = snapshot();
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(cb_sets(s, kChip0 + uint64_t(i)).empty());
  const ttmem::collector::DeviceView* d = device(s, kChip0);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->cb_region_end, g.l1_unreserved_base);
  EXPECT_EQ(d->kinds[TTMEM_KIND_CB].reserved, 0u);
  EXPECT_EQ(this->mapper_.stats().rejected.load(), 0u);
}

TYPED_TEST(AdapterTest, AReallocationAfterAChangeReplacesTheSetInsteadOfAddingToIt) {
  const model::ChipGeometry& g = this->m_.geometry();
  auto cbs = op_cbs(g, 56, {32768, 32768});
  fake::Program<TypeParam>& p = this->ttnn_.run("ttnn::conv2d", this->m_.mesh.get(), "conv", cbs);
  const auto core_set = fake::from_model(model::row_major_cores(56, g.grid_x));
  p.impl().add_circular_buffer({core_set, 16384, false});
  cbs.push_back({core_set, 16384, false});
  this->ttnn_.run("ttnn::conv2d", this->m_.mesh.get(), "conv", cbs);
  const ExpectedSet e = expected_set(cbs, g);
  Snapshot s = snapshot();
  for (int i = 0; i < 8; ++i) {
    auto sets = cb_sets(s, kChip0 + uint64_t(i));
    ASSERT_EQ(sets.size(), 1u);
    EXPECT_EQ(sets.begin()->second.bytes, e.bytes) << "replaced, not added";
    EXPECT_EQ(sets.begin()->second.region_end, e.region_end);
  }
}

TYPED_TEST(AdapterTest, WorkOnOtherThreadsIsCountedOnce) {
  using V = TypeParam;
  const model::ChipGeometry& g = this->m_.geometry();
  std::shared_ptr<fake::Buffer> made_elsewhere;
  this->on_new_thread([&] {
    made_elsewhere = fake::create_buffer<V>(this->m_.chips[2].get(),
                                            {.type = model::BufferType::Dram, .size = 65536,
                                             .page_size = 2048});
  });
  // A multi-program workload compiles (and allocates its CBs) on pool threads.
  static TestFixture* self;
  self = this;
  const auto cbs = op_cbs(g, 32, {4096, 8192});
  this->ttnn_.run("ttnn::all_gather", this->m_.mesh.get(), "gather", cbs,
                  [](std::function<void()> work) { self->on_new_thread(work); });
  const ExpectedSet e = expected_set(cbs, g);
  Snapshot s = snapshot();
  EXPECT_EQ(device(s, kChip0 + 2)->kinds[TTMEM_KIND_DRAM].count, 1u);
  for (int i = 0; i < 8; ++i) {
    auto sets = cb_sets(s, kChip0 + uint64_t(i));
    ASSERT_EQ(sets.size(), 1u);
    EXPECT_EQ(sets.begin()->second.bytes, e.bytes);
    EXPECT_EQ(sets.begin()->second.region_end, e.region_end);
  }
  fake::destroy_buffer<V>(made_elsewhere);
}

// A capture processor of ttnn's graph capture: counts what it sees.
template <class V>
struct CaptureProcessor : fake::IGraphProcessor<V> {
  int allocations = 0;
  void track_allocate(const fake::Buffer*) override { ++allocations; }
};

TYPED_TEST(AdapterTest, GraphCaptureRunsAlongsideUndisturbed) {
  using V = TypeParam;
  auto& tracker = fake::GraphTracker<V>::instance();
  if constexpr (V::kCaptureFlag) {
    EXPECT_FALSE(this->processor_->is_capture_processor());
    EXPECT_FALSE(tracker.is_enabled()) << "ttmem's processor alone must not turn capture on";
  } else {
    // Why the adapter installs no processor on this vintage unless asked to.
    EXPECT_TRUE(tracker.is_enabled());
  }
  auto capture = std::make_shared<CaptureProcessor<V>>();
  tracker.push_processor(capture);
  EXPECT_TRUE(tracker.is_enabled());
  auto b = fake::create_buffer<V>(this->m_.mesh.get(), {.type = model::BufferType::L1,
                                                        .size = 64 * 2048, .page_size = 2048});
  const auto cbs = op_cbs(this->m_.geometry(), 56, {8192});
  this->ttnn_.run("ttnn::softmax", this->m_.mesh.get(), "softmax", cbs);
  tracker.pop_processor();
  EXPECT_EQ(capture->allocations, 1);
  Snapshot s = snapshot();
  EXPECT_EQ(device(s, kChip0)->kinds[TTMEM_KIND_L1].count, 1u);
  EXPECT_EQ(cb_sets(s, kChip0).size(), 1u);
  if constexpr (V::kCaptureFlag) {
    EXPECT_FALSE(tracker.is_enabled());
  }
  fake::destroy_buffer<V>(b);
}

TYPED_TEST(AdapterTest, OpNamesTagWhatTheOpAllocates) {
  using V = TypeParam;
  fake::Ttnn<V>::start("ttnn::embedding");
  auto b = fake::create_buffer<V>(this->m_.chips[0].get(),
                                  {.type = model::BufferType::Dram, .size = 4096, .page_size = 2048});
  fake::GraphTracker<V>::instance().each([](auto& p) { p.track_function_end(); });
  const auto cbs = op_cbs(this->m_.geometry(), 8, {2048});
  this->ttnn_.run("ttnn::rms_norm", this->m_.mesh.get(), "norm", cbs);
  Snapshot s = snapshot();
  std::vector<BufferView> bufs = own_buffers(s);
  auto tagged = [&](uint32_t kind, const char* tag) {
    return std::any_of(bufs.begin(), bufs.end(),
                       [&](const BufferView& x) { return x.kind == kind && x.tag == tag; });
  };
  EXPECT_TRUE(tagged(TTMEM_KIND_DRAM, "ttnn::embedding"));
  EXPECT_TRUE(tagged(TTMEM_KIND_CB, "ttnn::rms_norm"));
  fake::destroy_buffer<V>(b);
}

// --- Plain tt-metal: no track_program ------------------------------------------------------------

TYPED_TEST(AdapterTest, PlainProgramsNeverOutnumberLiveProgramsAndNeverGoNegative) {
  using V = TypeParam;
  const model::ChipGeometry& g = this->m_.geometry();
  const auto a_cbs = op_cbs(g, 56, {131072});
  const auto b_cbs = op_cbs(g, 56, {16384, 16384});
  auto a = std::make_unique<fake::Program<V>>(a_cbs);
  auto b = std::make_unique<fake::Program<V>>(b_cbs);
  fake::IDevice* chip = this->m_.chips[0].get();
  a->impl().allocate_circular_buffers(chip);
  b->impl().allocate_circular_buffers(chip);
  const ExpectedSet ea = expected_set(a_cbs, g), eb = expected_set(b_cbs, g);
  auto sets = cb_sets(snapshot(), kChip0);
  if constexpr (V::kDeallocatesCbs) {
    ASSERT_EQ(sets.size(), 2u);
    a.reset();  // the oldest set goes: exact for programs destroyed in creation order
    sets = cb_sets(snapshot(), kChip0);
    ASSERT_EQ(sets.size(), 1u);
    EXPECT_EQ(sets.begin()->second.bytes, eb.bytes);
  } else {
    // Nothing is ever freed here: the newest program's set stands for the chip.
    ASSERT_EQ(sets.size(), 1u);
    EXPECT_EQ(sets.begin()->second.bytes, eb.bytes);
    EXPECT_EQ(sets.begin()->second.region_end, eb.region_end);
    a.reset();
  }
  b.reset();
  if constexpr (V::kDeallocatesCbs) {
    EXPECT_TRUE(cb_sets(snapshot(), kChip0).empty());
  }
  // A destruction with nothing left to free changes nothing.
  this->processor_->track_deallocate_cb(chip);
  EXPECT_EQ(this->mapper_.stats().rejected.load(), 0u);
  (void)ea;
}

// --- Dataflow buffers and scratchpads (main) ------------------------------------------------------

TEST(AdapterMain, DataflowBuffersAndScratchpadsJoinTheProgramSetUnlessBorrowedOrHooked) {
  using V = fake::VMain;
  Machine m;
  Mapper<fake::Traits<V>> mapper;
  auto processor = std::make_shared<GraphProcessor<fake::IGraphProcessor<V>, fake::Traits<V>>>(mapper);
  fake::IGraphProcessor<V>& hooks = *processor;
  const model::ChipGeometry& g = m.geometry();
  fake::Program<V> program(op_cbs(g, 56, {8192}));
  program.set_runtime_id(77);
  fake::IDevice* chip = m.chips[1].get();
  const fake::CoreRangeSet all = fake::from_model(model::row_major_cores(56, g.grid_x));
  hooks.track_program(&program, chip);
  const uint64_t base = g.l1_unreserved_base;
  hooks.track_allocate_dataflow_buffer(all, base + 8192, 4096, /*borrows_memory=*/false, chip);
  hooks.track_allocate_dataflow_buffer(all, base + 12288, 65536, /*borrows_memory=*/true, chip);
  hooks.track_allocate_scratchpad(all, base + 12288, 1024, chip);
  hooks.track_allocate_scratchpad(all, 0, 1024, chip);  // a hooked program: address 0
  auto sets = cb_sets(snapshot(), kChip0 + 1);
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_EQ(sets.begin()->first, 77u) << "the program's runtime id";
  EXPECT_EQ(sets.begin()->second.bytes, (4096u + 1024u) * 56) << "the built CB set was replaced";
  EXPECT_EQ(sets.begin()->second.region_end, base + 12288 + 1024);
  EXPECT_EQ(mapper.stats().borrowed_views.load(), 1u);
  EXPECT_EQ(mapper.stats().hooked.load(), 1u);
  for (uint32_t d = 0; d < 8; ++d) ttmem_cb_free_all(d);
}

// --- CB addresses the adapter computes where tt-metal does not say ------------------------------

TEST(AdapterPlacement, ComputedCbAddressesEqualTheModels) {
  Machine m;
  const model::ChipGeometry& g = m.geometry();
  // Two CBs on all cores, one on a sub-grid that overlaps them: tt-metal's per-range rule.
  std::vector<fake::CbConfig> cbs = op_cbs(g, 56, {4096, 2048});
  cbs.push_back({fake::CoreRange{{0, 0}, {3, 3}}, 1024, false});
  std::vector<ttmem::tt_metal::ProgramCb> placed;
  for (const auto& cb : cbs) {
    placed.push_back({ttmem::tt_metal::detail::to_core_ranges(cb.cores), cb.size, false, {}});
  }
  ttmem::tt_metal::place_program_cbs(placed, g.l1_unreserved_base, g.dram_alignment);
  model::Program p;
  for (const auto& cb : cbs) p.add_circular_buffer(fake::to_model(cb.cores), cb.size);
  const model::CbLayout layout = model::place_circular_buffers(p, g);
  ASSERT_EQ(layout.cbs.size(), placed.size());
  for (size_t i = 0; i < placed.size(); ++i) EXPECT_EQ(*placed[i].address, layout.cbs[i].address);
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
