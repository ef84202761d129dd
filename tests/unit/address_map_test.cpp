#include "collector/address_map.h"

#include <gtest/gtest.h>

namespace ttmem {
namespace {

TEST(AddressMap, EmptyRegionIsOneBlock) {
  std::vector<AddressRange> used;
  FreeSpace f = free_space(used, 100, 1100);
  EXPECT_EQ(f.free_bytes, 1000u);
  EXPECT_EQ(f.largest_free_block, 1000u);
}

TEST(AddressMap, GapsBetweenAndAroundRanges) {
  std::vector<AddressRange> used = {{600, 700}, {100, 200}, {300, 350}};
  FreeSpace f = free_space(used, 0, 1000);
  // Free: [0,100) [200,300) [350,600) [700,1000)
  EXPECT_EQ(f.free_bytes, 100u + 100 + 250 + 300);
  EXPECT_EQ(f.largest_free_block, 300u);
}

TEST(AddressMap, OverlapsAndOutOfRegionPartsCountOnce) {
  std::vector<AddressRange> used = {{0, 150}, {100, 200}, {150, 180}, {900, 5000}};
  FreeSpace f = free_space(used, 100, 1000);
  EXPECT_EQ(f.free_bytes, 700u);  // [200, 900)
  EXPECT_EQ(f.largest_free_block, 700u);
}

TEST(AddressMap, FullAndDegenerateRegions) {
  std::vector<AddressRange> used = {{0, 1000}};
  EXPECT_EQ(free_space(used, 0, 1000).largest_free_block, 0u);
  std::vector<AddressRange> none;
  EXPECT_EQ(free_space(none, 10, 10).free_bytes, 0u);
  EXPECT_EQ(free_space(none, 10, 5).free_bytes, 0u);
}

}  // namespace
}  // namespace ttmem
