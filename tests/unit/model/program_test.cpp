// Circular-buffer placement and tt-metal's two CB checks, down to the byte.
#include "model/program.h"

#include <gtest/gtest.h>

#include "model/device.h"
#include "model/errors.h"

namespace ttmem::model {
namespace {

const CoreRange kAll{{0, 0}, {7, 7}};
const CoreRange kLeft{{0, 0}, {3, 7}};
const CoreRange kRight{{4, 0}, {7, 7}};

ChipGeometry n150(DeviceParams params = {}) {
  return compute_geometry(*find_board("n150"), params);
}

TEST(CircularBuffers, StackBottomUpPerCoreRange) {
  const ChipGeometry g = n150();
  Program program;
  program.add_circular_buffer({kLeft}, 4096)
      .add_circular_buffer({kLeft}, 1000)  // next CB starts at the aligned end of this one
      .add_circular_buffer({kRight}, 2048)
      .add_circular_buffer({kLeft, kRight}, 512);
  const CbLayout layout = place_circular_buffers(program, g);
  ASSERT_EQ(layout.cbs.size(), 4u);
  const uint64_t base = g.l1_unreserved_base;
  EXPECT_EQ(layout.cbs[0].address, base);
  EXPECT_EQ(layout.cbs[1].address, base + 4096);
  EXPECT_EQ(layout.cbs[2].address, base);  // another core range starts from the base again
  // Spanning both ranges: above the highest end on any of its cores, aligned to 32.
  EXPECT_EQ(layout.cbs[3].address, base + 4096 + 1024);
  ASSERT_EQ(layout.regions.size(), 2u);
  EXPECT_EQ(layout.regions[0].end, base + 4096 + 1024 + 512);
  EXPECT_EQ(layout.region_end(), base + 4096 + 1024 + 512);
}

TEST(CircularBuffers, CoreRangeStringsMatchTtMetal) {
  EXPECT_EQ(kAll.str(), "[(x=0,y=0) - (x=7,y=7)]");
  EXPECT_EQ(row_major_cores(20, 8).size(), 2u);
  EXPECT_EQ(row_major_cores(20, 8)[1].str(), "[(x=0,y=2) - (x=3,y=2)]");
  EXPECT_EQ(num_cores(row_major_cores(20, 8)), 20u);
  auto parsed = parse_core_ranges("0,0-7,3;(0,4)-(3,4)");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(num_cores(*parsed), 36u);
  EXPECT_FALSE(parse_core_ranges("7,7-0,0"));
  EXPECT_FALSE(parse_core_ranges("a,b"));
}

// An L1 buffer at the lowest address A: a CB region that ends exactly at A passes, one byte
// more clashes, with tt-metal's text.
TEST(CircularBuffers, ClashIsDetectedAtTheExactByte) {
  MeshDevice mesh(*find_board("n150"), {});
  const Buffer& l1 =
      mesh.allocate({.type = BufferType::L1, .size = 64 * 16 * 1024, .page_size = 16 * 1024});
  const uint64_t lowest = l1.address;
  const uint64_t base = mesh.geometry().l1_unreserved_base;

  Program fits;
  fits.add_circular_buffer({kAll}, lowest - base);
  EXPECT_NO_THROW(mesh.launch(fits));

  Program clashes;
  clashes.add_circular_buffer({kAll}, lowest - base + 1);
  try {
    mesh.launch(clashes);
    FAIL() << "no clash";
  } catch (const ModelError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::CbClash);
    EXPECT_EQ(std::string(e.what()),
              "Statically allocated circular buffers in program " + std::to_string(clashes.id()) +
                  " clash with L1 buffers on core range [0-0 - 7-7]. L1 buffer "
                  "allocated at " +
                  std::to_string(lowest) + " and static circular buffer region ends at " +
                  std::to_string(lowest + 1));
  }
  // As in tt-metal, the CBs were placed (and reported) before the check failed.
  EXPECT_EQ(mesh.chip(0).cb_region_end(), lowest + 1);
}

TEST(CircularBuffers, RegionBeyondL1) {
  const ChipGeometry g = n150();
  Program program;
  program.add_circular_buffer({kAll}, g.l1_per_core - g.l1_unreserved_base);
  const CbLayout exact = place_circular_buffers(program, g);
  EXPECT_NO_THROW(validate_circular_buffer_region(program, exact, g, std::nullopt));

  Program over;
  over.add_circular_buffer({kLeft}, g.l1_per_core - g.l1_unreserved_base + 32);
  const CbLayout layout = place_circular_buffers(over, g);
  try {
    validate_circular_buffer_region(over, layout, g, std::nullopt);
    FAIL() << "no error";
  } catch (const ModelError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::CbBeyondL1);
    EXPECT_EQ(std::string(e.what()),
              "Statically allocated circular buffers on core range [0-0 - 3-7] grow "
              "to 1499168 B which is beyond max L1 size of 1499136 B");
  }
}

// L1_SMALL lowers the top of L1, so the same L1 buffer sits lower and the same CBs clash.
TEST(CircularBuffers, L1SmallBringsTheClashCloser) {
  const uint64_t cb_bytes = 1'300'000;
  auto clashes_with = [&](uint64_t l1_small) {
    MeshDevice mesh(*find_board("n150"), {.l1_small_size = l1_small});
    mesh.allocate({.type = BufferType::L1, .size = 64 * 65'536, .page_size = 2048});
    Program program;
    program.add_circular_buffer({kAll}, cb_bytes);
    try {
      mesh.launch(program);
    } catch (const ModelError& e) {
      return e.kind() == ErrorKind::CbClash;
    }
    return false;
  };
  EXPECT_FALSE(clashes_with(0));
  EXPECT_TRUE(clashes_with(65'536));
}

TEST(CircularBuffers, RejectsCoresOutsideTheGrid) {
  Program program;
  program.add_circular_buffer({{{0, 0}, {8, 0}}}, 1024);
  EXPECT_THROW(place_circular_buffers(program, n150()), ModelError);
}

}  // namespace
}  // namespace ttmem::model
