// tt-metal's texts in each message vintage, and the answers the model adds to every failure,
// on examples computed by hand (the arithmetic is in the comments).
#include <gtest/gtest.h>

#include "model/allocator.h"
#include "model/device.h"
#include "model/errors.h"
#include "model/program.h"

namespace ttmem::model {
namespace {

// An n150 L1 request of 40 B pages too large for a bank:
//   pages per bank  ceil(1,862,336 / 64) = 29,099; page 40 B aligned to 16 B = 48 B
//   per bank        29,099 x 48 = 1,396,752 B > 1,499,136 - 102,400 = 1,396,736 B allocatable
//   size asked      1,862,336 x 40 = 74,493,440 B; aligned size printed 1,862,336 x 48 = 89,392,128
constexpr uint64_t kPages = 1'862'336;
const BufferConfig kTooBig{.type = BufferType::L1, .size = kPages * 40, .page_size = 40};

ModelError oom_in(MessageVintage vintage, bool sub_devices = false) {
  Allocator a(compute_geometry(*find_board("n150"),
                               {.messages = vintage, .sub_devices = sub_devices}));
  Allocator* self = &a;
  try {
    allocate_lockstep({&self, 1}, kTooBig);
  } catch (const ModelError& e) {
    return e;
  }
  ADD_FAILURE() << "no out-of-memory error";
  return ModelError(ErrorKind::InvalidRequest, "");
}

TEST(Vintage, OutOfMemory2024HasNoBankSize) {
  EXPECT_EQ(std::string(oom_in(MessageVintage::V2024).what()),
            "Out of Memory: Not enough space to allocate 89392128 B L1 buffer across 64 banks, "
            "where each bank needs to store 1396752 B");
}

TEST(Vintage, OutOfMemory2025SaysOnly) {
  EXPECT_EQ(std::string(oom_in(MessageVintage::V2025).what()),
            "Out of Memory: Not enough space to allocate 89392128 B L1 buffer across 64 banks, "
            "where each bank needs to store 1396752 B, but bank size is only 1396736 B");
}

TEST(Vintage, OutOfMemory2026AndCurrentCarryTheStatistics) {
  const std::string expected =
      "Out of Memory: Not enough space to allocate 89392128 B L1 buffer across 64 banks, where "
      "each bank needs to store 1396752 B, but bank size is 1396736 B (allocated: 0 B, free: "
      "1396736 B, largest free block: 1396736 B)";
  EXPECT_EQ(std::string(oom_in(MessageVintage::V2026).what()), expected);
  EXPECT_EQ(std::string(oom_in(MessageVintage::Current).what()), expected);
}

TEST(Vintage, OutOfMemoryWithSubDevicesConsidersDependencies) {
  EXPECT_EQ(std::string(oom_in(MessageVintage::Current, true).what()),
            "Out of Memory: Not enough space after considering dependencies to allocate 89392128 "
            "B L1 across 64 banks (1396752 B per bank), bank size is 1396736 B (allocated: 0 B, "
            "free: 1396736 B, largest free block: 1396736 B)");
}

TEST(Answers, ExhaustionSaysHowMuchToFree) {
  // The free list holds 1,396,752 rounded up to the 32 B allocator alignment: 1,396,768 B,
  // 32 B more than the 1,396,736 B free.
  EXPECT_EQ(oom_in(MessageVintage::Current).answer(),
            "exhaustion: L1 needs 1396768 B per bank (aligned) but only 1396736 B per bank is "
            "free; free at least 32 B per bank of L1");
}

TEST(Answers, FragmentationNamesTheBiggestHolders) {
  MeshDevice mesh(*find_board("n150"), {});
  // Three 256 MiB-per-bank buffers in the 1,073,741,792 B bank leave 268,435,424 B at the top;
  // freeing the first adds a 268,435,456 B hole at the bottom: 536,870,880 B free in total, no
  // block of the 268,439,552 B per bank asked for.
  const uint64_t quarter = 256ull << 20;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(mesh.allocate({.type = BufferType::Dram,
                                 .size = 12 * quarter,
                                 .page_size = 4096,
                                 .tag = "kv_cache"})
                      .id);
  }
  mesh.deallocate(ids[0]);
  try {
    mesh.allocate({.type = BufferType::Dram, .size = 12 * (quarter + 4096), .page_size = 4096});
    FAIL() << "no error";
  } catch (const ModelError& e) {
    ASSERT_EQ(e.kind(), ErrorKind::OutOfMemory);
    EXPECT_EQ(e.answer().rfind("fragmentation: ", 0), 0u) << e.answer();
    // Two kv_cache buffers of 268,435,456 B per bank are left: 536,870,912 B.
    EXPECT_NE(e.answer().find("biggest holders: kv_cache 536870912 B/bank (2 buffers)"),
              std::string::npos)
        << e.answer();
  }
}

TEST(Vintage, CoreRangesChangedWithUmd2397) {
  const CoreRange all{{0, 0}, {7, 7}};
  EXPECT_EQ(core_range_text(all, MessageVintage::V2024), "[(x=0,y=0) - (x=7,y=7)]");
  EXPECT_EQ(core_range_text(all, MessageVintage::V2026), "[(x=0,y=0) - (x=7,y=7)]");
  EXPECT_EQ(core_range_text(all, MessageVintage::Current), "[0-0 - 7-7]");
}

TEST(Answers, ClashNamesTheBytesOverAndTheL1SmallSizeThatAvoidsIt) {
  // n150, l1_small_size 32,768: L1 buffers end at 1,499,136 - 32,768 = 1,466,368; a
  // 16 KiB-per-bank buffer sits at 1,449,984. A CB set ending 100 B above it clashes.
  // l1_small_size 32,768 - 100 = 32,668, floored to the 32 B alignment: 32,640 lifts the
  // buffer to 1,450,112 >= 1,450,084. L1_SMALL holds one 2,048 B shard per core.
  MessageVintage vintages[] = {MessageVintage::V2026, MessageVintage::Current};
  for (MessageVintage vintage : vintages) {
    MeshDevice mesh(*find_board("n150"), {.l1_small_size = 32'768, .messages = vintage});
    mesh.allocate({.type = BufferType::L1Small,
                   .size = 64 * 2048,
                   .page_size = 2048,
                   .layout = Layout::HeightSharded,
                   .num_shards = 64});
    const Buffer& act =
        mesh.allocate({.type = BufferType::L1, .size = 64 * 16384, .page_size = 16384});
    ASSERT_EQ(act.address, 1'449'984u);
    Program conv("conv", 4242);  // the id a user quotes from a real run
    conv.add_circular_buffer({{{0, 0}, {7, 7}}}, 1'449'984 + 100 - 102'400);
    try {
      mesh.launch(conv);
      FAIL() << "no clash";
    } catch (const ModelError& e) {
      const std::string range =
          vintage == MessageVintage::Current ? "[0-0 - 7-7]" : "[(x=0,y=0) - (x=7,y=7)]";
      EXPECT_EQ(std::string(e.what()),
                "Statically allocated circular buffers in program 4242 clash with L1 buffers on "
                "core range " +
                    range +
                    ". L1 buffer allocated at 1449984 and static circular buffer region ends at "
                    "1450084");
      EXPECT_EQ(e.answer(),
                "the CB region ends 100 B above the lowest L1 buffer; l1_small_size 32640 B or "
                "less (now 32768 B, L1_SMALL holds 2048 B per core) avoids it, or shave 100 B "
                "per core off program 4242's circular buffers");
    }
  }
  // The advised size passes.
  MeshDevice mesh(*find_board("n150"), {.l1_small_size = 32'640});
  const Buffer& act =
      mesh.allocate({.type = BufferType::L1, .size = 64 * 16384, .page_size = 16384});
  EXPECT_EQ(act.address, 1'450'112u);
  Program conv("conv", 4242);
  conv.add_circular_buffer({{{0, 0}, {7, 7}}}, 1'449'984 + 100 - 102'400);
  EXPECT_NO_THROW(mesh.launch(conv));
}

TEST(Answers, ClashWithNoL1SmallToGiveShavesTheProgram) {
  MeshDevice mesh(*find_board("n150"), {});
  const Buffer& act =
      mesh.allocate({.type = BufferType::L1, .size = 64 * 16384, .page_size = 16384});
  Program conv("conv", 7);
  conv.add_circular_buffer({{{0, 0}, {7, 7}}}, act.address + 64 - 102'400);
  try {
    mesh.launch(conv);
    FAIL() << "no clash";
  } catch (const ModelError& e) {
    EXPECT_EQ(e.answer(),
              "the CB region ends 64 B above the lowest L1 buffer; shave 64 B per core off "
              "program 7's circular buffers (l1_small_size 0 B cannot shrink enough: L1_SMALL "
              "holds 0 B per core)");
  }
}

TEST(Answers, TraceTooSmallGivesTheRegionThatPasses) {
  // 1,500,000 B over 12 banks pads least with 1 KiB pages (to 123 x 12,288 = 1,511,424, waste
  // 11,424; 2 and 4 KiB waste 23,712, 8 KiB 72,864): 1,465 pages, 1,500,160 B.
  MeshDevice mesh(*find_board("n150"), {.trace_region_size = 1'000'000});
  try {
    mesh.capture_trace(1'500'000);
    FAIL() << "no error";
  } catch (const ModelError& e) {
    EXPECT_EQ(e.needed(), 1'500'160u);
    EXPECT_EQ(e.answer(),
              "the trace buffers need 1500160 B, 500160 B more than the trace region; "
              "trace_region_size 1500160 B or more passes");
  }
  MeshDevice fits(*find_board("n150"), {.trace_region_size = 1'500'160});
  EXPECT_NO_THROW(fits.capture_trace(1'500'000));
}

TEST(Vintage, TraceRegionZeroPutsTracesInDramSince2026) {
  MeshDevice current(*find_board("n150"), {});
  const Buffer& trace = current.capture_trace(1'500'000);
  EXPECT_EQ(trace.type, BufferType::Dram);
  EXPECT_FALSE(trace.bottom_up);
  // Top-down from the bank top: 1,073,741,824 - ceil(1,465 / 12) x 1,024 = 1,073,615,872.
  EXPECT_EQ(trace.address, 1'073'741'824u - 123u * 1024);
  MeshDevice older(*find_board("n150"), {.messages = MessageVintage::V2025});
  EXPECT_THROW(older.capture_trace(1'500'000), ModelError);
}

}  // namespace
}  // namespace ttmem::model
