// The banked, lock-step allocator: per-bank sizes, geometry and addresses, pinned against worked
// examples computed by hand from tt-metal's allocator rules and device sizes.
#include "model/allocator.h"

#include <gtest/gtest.h>

#include "model/errors.h"

namespace ttmem::model {
namespace {

ChipGeometry geometry_of(std::string_view board, DeviceParams params = {}) {
  const BoardSpec* spec = find_board(board);
  EXPECT_NE(spec, nullptr) << board;
  return compute_geometry(*spec, params);
}

// Runs `fn`, expecting a ModelError of `kind`; returns its message.
template <class Fn>
std::string error_of(Fn&& fn, ErrorKind kind) {
  try {
    fn();
  } catch (const ModelError& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no ModelError thrown";
  return {};
}

Allocation allocate(Allocator& allocator, const BufferConfig& config) {
  Allocator* members[] = {&allocator};
  return allocate_lockstep(members, config);
}

TEST(SizePerBank, InterleavedDramBufferOverTwelveWormholeBanks) {
  // 117,440,512 B = 57,344 pages of 2,048 B; ceil(57,344 / 12) = 4,779 pages per bank.
  EXPECT_EQ(size_per_bank(117'440'512, 2048, 12, 32), 9'787'392u);
}

TEST(SizePerBank, PagesAreRoundedToTheAlignment) {
  // bfloat8_b tiles are 1,088 B, already a multiple of 32; a 1,000 B page rounds to 1,008 (L1).
  EXPECT_EQ(size_per_bank(4'456'448, 1088, 12, 32), 342u * 1088);
  EXPECT_EQ(size_per_bank(64'000, 1000, 64, 16), 1008u);
  // Sharded buffers count shards: 32 rows x 512 bf16 over 32 cores is one 1 KiB shard each.
  EXPECT_EQ(size_per_bank(32 * 512 * 2, 1024, 32, 16), 1024u);
}

TEST(BankCounts, InterleavingNeedsAPowerOfTwoOrADedicatedModulo) {
  for (uint32_t ok : {1u, 2u, 8u, 7u, 12u, 56u, 64u, 80u, 110u, 130u}) {
    EXPECT_TRUE(is_valid_interleaved_bank_count(ok)) << ok;
  }
  for (uint32_t bad : {0u, 3u, 9u, 13u, 57u, 100u}) {
    EXPECT_FALSE(is_valid_interleaved_bank_count(bad)) << bad;
  }
}

TEST(Geometry, AllocatableL1PerBank) {
  // Wormhole: 1,499,136 B worker L1 - 102,400 B unreserved base - l1_small_size.
  EXPECT_EQ(allocatable_l1_per_bank(geometry_of("n150")), 1'396'736u);
  EXPECT_EQ(allocatable_l1_per_bank(geometry_of("n150", {.l1_small_size = 32'768})), 1'363'968u);
  // l1_small_size is rounded up to the 32 B DRAM alignment first.
  EXPECT_EQ(allocatable_l1_per_bank(geometry_of("n150", {.l1_small_size = 1000})), 1'395'712u);
  // A firmware with a 101,440 B base gives the 1,364,928 B bank tt-metal reports with 32 KiB
  // of L1_SMALL.
  EXPECT_EQ(allocatable_l1_per_bank(
                geometry_of("n150", {.l1_small_size = 32'768, .l1_unreserved_base = 101'440})),
            1'364'928u);
  // Blackhole: 1,572,864 - 102,400.
  EXPECT_EQ(allocatable_l1_per_bank(geometry_of("p150")), 1'470'464u);
}

TEST(Geometry, KindsTileEachBankWithoutOverlap) {
  for (const BoardSpec& board : boards()) {
    const ChipGeometry g =
        compute_geometry(board, {.trace_region_size = 50'000'000, .l1_small_size = 24'576});
    const KindGeometry& l1 = g.kind(BufferType::L1);
    const KindGeometry& small = g.kind(BufferType::L1Small);
    const KindGeometry& dram = g.kind(BufferType::Dram);
    const KindGeometry& trace = g.kind(BufferType::Trace);
    EXPECT_EQ(l1.bank_base, g.l1_unreserved_base) << board.name;
    EXPECT_EQ(l1.bank_base + l1.bank_size, small.bank_base) << board.name;
    EXPECT_EQ(small.bank_base + small.bank_size, g.l1_per_core) << board.name;
    EXPECT_EQ(dram.bank_base + dram.bank_size, trace.bank_base) << board.name;
    EXPECT_EQ(trace.bank_base + trace.bank_size, board.chip.dram_bank_size) << board.name;
    EXPECT_EQ(l1.num_banks, board.grids[0].grid_x * board.grids[0].grid_y) << board.name;
    EXPECT_EQ(g.cb().bank_base + g.cb().bank_size, g.l1_per_core) << board.name;
  }
}

TEST(Geometry, ProductTable) {
  EXPECT_EQ(geometry_of("n150").num_cores(), 64u);
  // n300 and T3K dispatch on ethernet by default: 8x8 = 64; Tensix dispatch takes a row: 8x7.
  EXPECT_EQ(geometry_of("n300").num_cores(), 64u);
  EXPECT_EQ(geometry_of("n300", {.dispatch = Dispatch::Tensix}).num_cores(), 56u);
  EXPECT_EQ(geometry_of("T3K").num_cores(), 64u);
  EXPECT_EQ(geometry_of("T3K", {.dispatch = Dispatch::Tensix}).num_cores(), 56u);
  // Galaxy: column dispatch 7x10 = 70 (default), row dispatch 8x9 = 72.
  EXPECT_EQ(geometry_of("galaxy").num_cores(), 70u);
  EXPECT_EQ(geometry_of("galaxy", {.dispatch = Dispatch::Row}).num_cores(), 72u);
  EXPECT_EQ(geometry_of("p100a").num_cores(), 110u);
  // p150 since firmware 19.5.0: 11x10 = 110.
  EXPECT_EQ(geometry_of("p150").num_cores(), 110u);
  error_of([] { geometry_of("n150", {.dispatch = Dispatch::Ethernet}); },
           ErrorKind::InvalidRequest);
  EXPECT_EQ(geometry_of("p100a").kind(BufferType::Dram).num_banks, 7u);
  EXPECT_EQ(geometry_of("p150").kind(BufferType::Dram).num_banks, 8u);
  EXPECT_EQ(find_board("t3k")->num_chips, 8u);
  EXPECT_EQ(find_board("t3k")->meshes[1], (MeshShape{2, 4}));
  EXPECT_EQ(find_board("galaxy")->num_chips, 32u);
  EXPECT_EQ(find_board("nope"), nullptr);
  // Plain build: 1,073,741,824 - 32 (the barrier word, 4 B rounded to 32) = 1,073,741,792.
  EXPECT_EQ(geometry_of("n150").kind(BufferType::Dram).bank_size, 1'073'741'792u);
  // Profiler build: 1,073,741,824 - (32 + 48,000 x 5 x 8) = 1,071,821,792, the bank size
  // tt-metal prints in profiler builds' out-of-memory errors.
  EXPECT_EQ(geometry_of("n150", {.profiler = true}).kind(BufferType::Dram).bank_size,
            1'071'821'792u);
  // Blackhole: 4,278,190,080 - 64 = 4,278,190,016 plain; - (64 + 48,000 x 5 x 20) =
  // 4,273,390,016 with the profiler.
  EXPECT_EQ(geometry_of("p150").kind(BufferType::Dram).bank_size, 4'278'190'016u);
  EXPECT_EQ(geometry_of("p150", {.profiler = true}).kind(BufferType::Dram).bank_size,
            4'273'390'016u);
}

TEST(Geometry, TraceRegionPerBankOrPerDevice) {
  const ChipGeometry per_bank =
      geometry_of("t3k", {.trace_region_size = 50'000'000, .trace_mode = TraceRegionMode::PerBank});
  EXPECT_EQ(per_bank.kind(BufferType::Trace).bank_size, 50'000'000u);
  EXPECT_EQ(per_bank.kind(BufferType::Dram).bank_size, 1'073'741'792u - 50'000'000u);
  // Per device: ceil(50,000,000 / 12) = 4,166,667, rounded up to 8 KiB trace pages.
  const ChipGeometry per_device = geometry_of(
      "t3k", {.trace_region_size = 50'000'000, .trace_mode = TraceRegionMode::PerDevice});
  EXPECT_EQ(per_device.kind(BufferType::Trace).bank_size, 4'169'728u);
  EXPECT_EQ(per_device.trace_region_size, 50'000'000u);
}

TEST(Geometry, RejectsParametersThatLeaveNoMemory) {
  error_of([] { geometry_of("n150", {.l1_small_size = 1'400'000}); }, ErrorKind::InvalidRequest);
  error_of(
      [] {
        geometry_of("n150", {.trace_region_size = uint64_t{2} << 30,
                             .trace_mode = TraceRegionMode::PerBank});
      },
      ErrorKind::InvalidRequest);
  error_of([] { geometry_of("n150", {.l1_unreserved_base = 100'001}); }, ErrorKind::InvalidRequest);
}

TEST(Allocator, DramAllocatesBottomUpFromTheReservedBase) {
  Allocator a(geometry_of("n150"));
  const BufferConfig config{.type = BufferType::Dram, .size = 117'440'512, .page_size = 2048};
  const Allocation first = allocate(a, config);
  const Allocation second = allocate(a, config);
  EXPECT_EQ(first.placement.size_per_bank, 9'787'392u);
  EXPECT_EQ(first.placement.num_banks, 12u);
  EXPECT_EQ(first.address, 32u);  // plain build: just above the barrier word
  EXPECT_EQ(second.address, 32u + 9'787'392u);
  Allocator profiled(geometry_of("n150", {.profiler = true}));
  EXPECT_EQ(allocate(profiled, config).address, 1'920'032u);
}

TEST(Allocator, ConsecutiveL1BuffersStackTopDown) {
  // n150 with 32 KiB of L1_SMALL: L1 ends at 1,499,136 - 32,768 = 1,466,368.
  Allocator a(geometry_of("n150", {.l1_small_size = 32'768}));
  const BufferConfig two_kib{.type = BufferType::L1, .size = 64 * 2048, .page_size = 2048};
  const BufferConfig six_kib{.type = BufferType::L1, .size = 3 * 64 * 2048, .page_size = 2048};
  const Allocation b1 = allocate(a, two_kib);  // 1 page per bank
  const Allocation b2 = allocate(a, six_kib);  // 3 pages per bank
  const Allocation b3 = allocate(a, two_kib);
  EXPECT_EQ(b1.address, 1'466'368u - 2048);
  EXPECT_EQ(b2.address, 1'466'368u - 2048 - 6144);
  EXPECT_EQ(b3.address, 1'466'368u - 2048 - 6144 - 2048);
  EXPECT_EQ(a.lowest_l1_address(), b3.address);
  // Freeing the top buffer reopens the highest hole, which first-fit top-down takes again.
  ASSERT_TRUE(a.bank(BufferType::L1).deallocate(b1.address));
  EXPECT_EQ(allocate(a, two_kib).address, b1.address);
}

TEST(Allocator, L1SmallSitsAtTheTopOfL1AndIsShardedOnly) {
  Allocator a(geometry_of("n150", {.l1_small_size = 32'768}));
  const Allocation s = allocate(a, {.type = BufferType::L1Small,
                                    .size = 64 * 1024,
                                    .page_size = 1024,
                                    .layout = Layout::HeightSharded,
                                    .num_shards = 64});
  EXPECT_EQ(s.address, 1'499'136u - 1024);
  EXPECT_EQ(s.placement.num_cores, 64u);
  const std::string message =
      error_of([&] { allocate(a, {.type = BufferType::L1Small, .size = 1024, .page_size = 1024}); },
               ErrorKind::InvalidRequest);
  EXPECT_NE(message.find("sharded"), std::string::npos);
}

TEST(Allocator, L1SmallWithoutARegionReportsABankSizeOfZero) {
  Allocator a(geometry_of("n150"));
  const std::string message = error_of(
      [&] {
        allocate(a, {.type = BufferType::L1Small,
                     .size = 1024,
                     .page_size = 16,
                     .layout = Layout::HeightSharded,
                     .num_shards = 64});
      },
      ErrorKind::OutOfMemory);
  EXPECT_EQ(message,
            "Out of Memory: Not enough space to allocate 1024 B L1_SMALL buffer across 64 banks, "
            "where each bank needs to store 16 B, but bank size is 0 B (allocated: 0 B, free: 0 B, "
            "largest free block: 0 B)");
}

TEST(Allocator, OutOfMemoryCarriesPerBankFigures) {
  Allocator a(geometry_of("n150"));
  const std::string message = error_of(
      [&] {
        allocate(a, {.type = BufferType::Dram, .size = 12 * 1'073'741'824ull, .page_size = 1024});
      },
      ErrorKind::OutOfMemory);
  EXPECT_EQ(message,
            "Out of Memory: Not enough space to allocate 12884901888 B DRAM buffer across 12 "
            "banks, where each bank needs to store 1073741824 B, but bank size is 1073741792 B "
            "(allocated: 0 B, free: 1073741792 B, largest free block: 1073741792 B)");
}

TEST(Allocator, FragmentationFailsWithEnoughFreeBytes) {
  // Four 200 MiB-per-bank buffers; freeing the first and third leaves holes of 200 MiB, 200 MiB
  // and the 222 MiB tail: 622 MiB free per bank, but no single hole of 300 MiB.
  Allocator a(geometry_of("n150"));
  const uint64_t per_bank = 200ull << 20;
  const BufferConfig quarter{.type = BufferType::Dram, .size = 12 * per_bank, .page_size = 4096};
  std::vector<uint64_t> addresses;
  for (int i = 0; i < 4; ++i) addresses.push_back(allocate(a, quarter).address);
  a.bank(BufferType::Dram).deallocate(addresses[0]);
  a.bank(BufferType::Dram).deallocate(addresses[2]);
  const BankStatistics s = a.statistics(BufferType::Dram);
  const uint64_t need = 300ull << 20;
  ASSERT_GT(s.total_free, need);
  ASSERT_LT(s.largest_free_block, need);
  const std::string message = error_of(
      [&] { allocate(a, {.type = BufferType::Dram, .size = 12 * need, .page_size = 4096}); },
      ErrorKind::OutOfMemory);
  EXPECT_NE(message.find("free: " + std::to_string(s.total_free) +
                         " B, largest free block: " + std::to_string(s.largest_free_block) + " B)"),
            std::string::npos)
      << message;
}

TEST(Allocator, ShardsAreBoundedByTheComputeCores) {
  // n300 with Tensix dispatch: 8x7 = 56 compute cores.
  Allocator a(geometry_of("n300", {.dispatch = Dispatch::Tensix}));
  const std::string message = error_of(
      [&] {
        allocate(a, {.type = BufferType::L1,
                     .size = 64 * 2048,
                     .page_size = 2048,
                     .layout = Layout::WidthSharded,
                     .num_shards = 64});
      },
      ErrorKind::InvalidRequest);
  EXPECT_EQ(message,
            "Expected number of shards 64 to be less than or equal to total number of L1 banks 56 "
            "in compute cores");
}

TEST(Allocator, RejectsMalformedRequests) {
  Allocator a(geometry_of("n150"));
  error_of([&] { allocate(a, {.type = BufferType::Dram, .size = 0, .page_size = 32}); },
           ErrorKind::InvalidRequest);
  error_of([&] { allocate(a, {.type = BufferType::Dram, .size = 100, .page_size = 32}); },
           ErrorKind::InvalidRequest);
  error_of([&] { allocate(a, {.type = BufferType::SystemMemory, .size = 64, .page_size = 32}); },
           ErrorKind::InvalidRequest);
}

TEST(Allocator, LockstepPicksAnAddressFreeOnEveryMember) {
  const ChipGeometry g = geometry_of("n300");
  Allocator chip0(g);
  Allocator chip1(g);
  // Chip 0 alone holds a buffer at the bottom of DRAM.
  const BufferConfig one_mib{.type = BufferType::Dram, .size = 12 << 20, .page_size = 4096};
  const Allocation local = allocate(chip0, one_mib);
  Allocator* both[] = {&chip0, &chip1};
  const Allocation mesh = allocate_lockstep(both, one_mib);
  EXPECT_EQ(mesh.address, local.address + (1 << 20));
  // Chip 1 keeps the hole below the mesh buffer.
  EXPECT_EQ(chip1.bank(BufferType::Dram).free_ranges().front().begin, local.address);
  EXPECT_EQ(chip1.statistics(BufferType::Dram).total_allocated, 1u << 20);
}

}  // namespace
}  // namespace ttmem::model
