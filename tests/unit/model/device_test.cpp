// Meshes: lock-step mesh buffers, device-local buffers, observer events, traces, memory views.
#include "model/device.h"

#include <gtest/gtest.h>

#include <map>

#include "model/errors.h"

namespace ttmem::model {
namespace {

// Records what a tracker hooked into tt-metal would see.
struct Recorder : AllocationObserver {
  struct Event {
    char what;  // 'A'llocate, 'D'eallocate, 'C'B, 'F'ree all CBs
    uint32_t chip;
    uint64_t id;
    uint64_t address;
  };
  std::vector<Event> events;
  void on_allocate(const Chip& c, const Buffer& b) override {
    events.push_back({'A', c.logical_id(), b.id, b.address});
  }
  void on_deallocate(const Chip& c, const Buffer& b) override {
    events.push_back({'D', c.logical_id(), b.id, b.address});
  }
  void on_circular_buffer(const Chip& c, const PlacedCircularBuffer& cb,
                          uint64_t program) override {
    events.push_back({'C', c.logical_id(), program, cb.address});
  }
  void on_program_circular_buffers_freed(const Chip& c, uint64_t program) override {
    events.push_back({'F', c.logical_id(), program, 0});
  }
  size_t count(char what) const {
    size_t n = 0;
    for (const Event& e : events) n += e.what == what;
    return n;
  }
};

const BufferConfig kWeights{.type = BufferType::Dram, .size = 12 * 4096, .page_size = 4096};

TEST(MeshDevice, MeshBuffersFanOutWithOneIdAndOneAddress) {
  Recorder recorder;
  MeshDevice mesh(*find_board("t3k"), {}, &recorder);
  ASSERT_EQ(mesh.num_chips(), 8u);
  EXPECT_EQ(mesh.shape(), (MeshShape{1, 8}));
  const Buffer& b = mesh.allocate(kWeights);
  ASSERT_EQ(recorder.count('A'), 8u);
  for (const auto& e : recorder.events) {
    EXPECT_EQ(e.id, b.id);
    EXPECT_EQ(e.address, b.address);
  }
  const uint64_t id = b.id;
  mesh.deallocate(id);
  EXPECT_EQ(recorder.count('D'), 8u);
  EXPECT_EQ(mesh.find(id), nullptr);
  EXPECT_THROW(mesh.deallocate(id), ModelError);
}

TEST(MeshDevice, DeviceLocalBuffersStayOnTheirChip) {
  Recorder recorder;
  MeshDevice mesh(*find_board("t3k"), {.mesh = MeshShape{2, 4}}, &recorder);
  const Buffer& local = mesh.allocate_on(0, kWeights);
  const Buffer& shared = mesh.allocate(kWeights);
  EXPECT_EQ(recorder.count('A'), 9u);
  // The mesh buffer skips the range chip 0 holds, on every chip.
  EXPECT_EQ(shared.address, local.address + 4096);
  EXPECT_EQ(mesh.chip(0).memory_view(BufferType::Dram).total_bytes_allocated_per_bank, 8192u);
  EXPECT_EQ(mesh.chip(5).memory_view(BufferType::Dram).total_bytes_allocated_per_bank, 4096u);
  EXPECT_THROW(mesh.allocate_on(8, kWeights), ModelError);
}

TEST(MeshDevice, IdsAreUniqueAcrossMeshes) {
  MeshDevice a(*find_board("n150"), {});
  MeshDevice b(*find_board("n150"), {});
  EXPECT_NE(a.id(), b.id());
  EXPECT_NE(a.allocate(kWeights).id, b.allocate(kWeights).id);
  EXPECT_NE(a.chip(0).chip_id(), MeshDevice(*find_board("p150"), {}).chip(0).chip_id());
  EXPECT_EQ(a.chip(0).chip_id(), b.chip(0).chip_id());  // stable per product and position
}

TEST(MeshDevice, RejectsMeshesLargerThanTheProduct) {
  EXPECT_THROW(MeshDevice(*find_board("n300"), {.mesh = MeshShape{2, 2}}), ModelError);
}

TEST(MeshDevice, ProgramsKeepTheirCbsUntilReleasedAndCacheHitsReportNothing) {
  Recorder recorder;
  MeshDevice mesh(*find_board("n300"), {}, &recorder);
  Program first;
  first.add_circular_buffer({{{0, 0}, {7, 6}}}, 8192).add_circular_buffer({{{0, 0}, {7, 6}}}, 4096);
  Program second;
  second.add_circular_buffer({{{0, 0}, {3, 3}}}, 2048);
  mesh.launch(first);
  EXPECT_EQ(recorder.count('C'), 4u);  // two CBs on each of two chips
  mesh.launch(first);                  // a program-cache hit: tt-metal reports nothing
  EXPECT_EQ(recorder.count('C'), 4u);
  mesh.launch_on(1, second);
  EXPECT_EQ(recorder.count('C'), 5u);
  EXPECT_EQ(recorder.count('F'), 0u);  // launching a program frees no other program's CBs
  EXPECT_EQ(mesh.chip(0).program_cbs().size(), 1u);
  EXPECT_EQ(mesh.chip(1).program_cbs().size(), 2u);
  // The sets overlap from the base: chip 1's region ends where the larger program's does.
  const uint64_t base = mesh.geometry().l1_unreserved_base;
  EXPECT_EQ(mesh.chip(1).cb_region_end(), base + 8192 + 4096);
  mesh.release_program(first.id());
  EXPECT_EQ(recorder.count('F'), 2u);  // one per chip that held it
  EXPECT_EQ(mesh.chip(1).cb_region_end(), base + 2048);
  mesh.close();
  EXPECT_EQ(recorder.count('F'), 3u);
  EXPECT_TRUE(mesh.chip(1).program_cbs().empty());
}

TEST(MeshDevice, TraceCaptureFillsTheTraceRegionBottomUp) {
  MeshDevice mesh(*find_board("t3k"), {.trace_region_size = 50'000'000});
  const ChipGeometry& g = mesh.geometry();
  const Buffer& trace = mesh.capture_trace(10'000'000);
  EXPECT_EQ(trace.type, BufferType::Trace);
  // Over 12 banks 1 KiB and 2 KiB pages both pad 10,000,000 B by 2,432 B, 4 and 8 KiB by
  // 27,008 B; ties go to the larger page. The buffer is 4,883 pages, 407 per bank.
  EXPECT_EQ(trace.page_size, 2048u);
  EXPECT_EQ(trace.size, 4883u * 2048);
  EXPECT_EQ(trace.size_per_bank, 407u * 2048);
  // TRACE buffers leave the direction unset, so the DRAM default applies: bottom-up from the
  // region's base. On a plain Wormhole the region starts at 1,073,741,824 - 4,169,728
  // (round_up(ceil(50,000,000 / 12), 8,192)) = 1,069,572,096.
  const KindGeometry& region = g.kind(BufferType::Trace);
  EXPECT_EQ(region.bank_base, 1'069'572'096u);
  EXPECT_EQ(trace.address, region.bank_base);
  EXPECT_EQ(mesh.trace_buffers_size(), trace.size);
  const uint64_t id = trace.id;
  mesh.release_trace(id);
  EXPECT_EQ(mesh.trace_buffers_size(), 0u);
}

TEST(MeshDevice, TraceLargerThanTheRegionFailsWithTtMetalsText) {
  MeshDevice mesh(*find_board("n150"), {.trace_region_size = 1'000'000});
  try {
    mesh.capture_trace(1'500'000);
    FAIL() << "no error";
  } catch (const ModelError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::TraceTooSmall);
    const uint64_t padded = align_up(1'500'000, trace_page_size(1'500'000, 12, kMaxTracePageSize));
    EXPECT_EQ(std::string(e.what()), "Creating trace buffers of size " + std::to_string(padded) +
                                         "B on MeshDevice " + std::to_string(mesh.id()) +
                                         ", but only 1000000B is allocated for trace region.");
  }
  EXPECT_TRUE(mesh.buffers().empty());
}

TEST(MeshDevice, TracePageSizeMinimisesPadding) {
  EXPECT_EQ(trace_page_size(12 * 4096, 12, 8192), 4096u);
  EXPECT_EQ(trace_page_size(12 * 8192, 12, 8192), 8192u);
  // 1 KiB and 2 KiB pages waste the same here; the larger wins the tie.
  EXPECT_EQ(trace_page_size(12 * 1024 + 1, 12, 4096), 2048u);
  EXPECT_EQ(trace_page_size(12 * 1024 * 3, 12, 8192), 1024u);
}

TEST(MeshDevice, CloseFreesEverythingAndReportsIt) {
  Recorder recorder;
  MeshDevice mesh(*find_board("n300"), {.trace_region_size = 4'000'000}, &recorder);
  mesh.allocate(kWeights);
  mesh.allocate_on(1, {.type = BufferType::L1, .size = 56 * 2048, .page_size = 2048});
  mesh.capture_trace(100'000);
  mesh.close();
  EXPECT_EQ(recorder.count('A'), recorder.count('D'));
  EXPECT_TRUE(mesh.buffers().empty());
  EXPECT_EQ(mesh.trace_buffers_size(), 0u);
  for (BufferType t : {BufferType::Dram, BufferType::L1, BufferType::Trace}) {
    const MemoryView v = mesh.chip(1).memory_view(t);
    EXPECT_EQ(v.total_bytes_allocated_per_bank, 0u);
    EXPECT_EQ(v.total_bytes_free_per_bank, v.total_bytes_per_bank);
    EXPECT_EQ(v.largest_contiguous_bytes_free_per_bank, v.total_bytes_per_bank);
  }
}

}  // namespace
}  // namespace ttmem::model
