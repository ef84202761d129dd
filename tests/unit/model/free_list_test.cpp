// FreeList placement and bookkeeping, the rules of tt-metal's FreeListOpt.
#include "model/free_list.h"

#include <gtest/gtest.h>

namespace ttmem::model {
namespace {

TEST(FreeList, RoundsBlocksUpToTheAlignment) {
  FreeList list(1000, 1 << 20, 32);
  EXPECT_EQ(list.block_size(1), 32u);
  EXPECT_EQ(list.block_size(32), 32u);
  EXPECT_EQ(list.block_size(33), 64u);
  auto a = list.allocate(33, /*bottom_up=*/true, AllocPolicy::FirstFit);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, 1000u);
  EXPECT_EQ(list.statistics().total_allocated, 64u);
}

TEST(FreeList, BottomUpTakesTheLowestBlockTopDownTheHighest) {
  FreeList list(0, 10'240, 32);
  EXPECT_EQ(list.allocate(1024, true, AllocPolicy::FirstFit), 0u);
  EXPECT_EQ(list.allocate(1024, false, AllocPolicy::FirstFit), 10'240u - 1024);
  EXPECT_EQ(list.allocate(1024, false, AllocPolicy::FirstFit), 10'240u - 2048);
  EXPECT_EQ(list.allocate(1024, true, AllocPolicy::FirstFit), 1024u);
}

TEST(FreeList, FreeingCoalescesWithBothNeighbours) {
  FreeList list(0, 4096, 32);
  auto a = list.allocate(1024, true, AllocPolicy::FirstFit);
  auto b = list.allocate(1024, true, AllocPolicy::FirstFit);
  auto c = list.allocate(1024, true, AllocPolicy::FirstFit);
  ASSERT_TRUE(a && b && c);
  EXPECT_TRUE(list.deallocate(*a));
  EXPECT_TRUE(list.deallocate(*c));
  EXPECT_EQ(list.free_ranges().size(), 2u);
  EXPECT_EQ(list.statistics().largest_free_block, 2048u);  // c merged with the tail
  EXPECT_TRUE(list.deallocate(*b));
  ASSERT_EQ(list.free_ranges().size(), 1u);
  EXPECT_EQ(list.free_ranges()[0], (AddressRange{0, 4096}));
  EXPECT_EQ(list.num_allocated(), 0u);
}

TEST(FreeList, RejectsFreesOfAddressesThatAreNotBlockStarts) {
  FreeList list(0, 4096, 32);
  auto a = list.allocate(1024, true, AllocPolicy::FirstFit);
  ASSERT_TRUE(a);
  EXPECT_FALSE(list.deallocate(*a + 32));
  EXPECT_FALSE(list.deallocate(8192));
  EXPECT_TRUE(list.deallocate(*a));
  EXPECT_FALSE(list.deallocate(*a));  // twice
}

TEST(FreeList, AllocateAtNeedsTheWholeRangeFree) {
  FreeList list(0, 4096, 32);
  EXPECT_TRUE(list.allocate_at(1024, 1024));
  EXPECT_FALSE(list.allocate_at(1536, 64));    // inside the block just taken
  EXPECT_FALSE(list.allocate_at(3072, 2048));  // runs past the end
  EXPECT_TRUE(list.allocate_at(0, 1024));
  EXPECT_EQ(list.lowest_allocated(), 0u);
}

TEST(FreeList, StatisticsFollowGetMemoryView) {
  FreeList list(0, 8192, 32);
  ASSERT_TRUE(list.allocate_at(2048, 2048));
  const BankStatistics s = list.statistics();
  EXPECT_EQ(s.total_allocatable, 8192u);
  EXPECT_EQ(s.total_allocated, 2048u);
  EXPECT_EQ(s.total_free, 6144u);
  EXPECT_EQ(s.largest_free_block, 4096u);
}

// Two free holes: 8 KiB low in the bank and 2 KiB above it. First-fit bottom-up takes the low
// hole; best-fit takes the 2 KiB hole, the smallest size class that holds a fitting block.
TEST(FreeList, BestFitPrefersTheSmallestSizeClass) {
  for (AllocPolicy policy : {AllocPolicy::FirstFit, AllocPolicy::BestFit}) {
    FreeList list(0, 64 * 1024, 32);
    ASSERT_TRUE(list.allocate_at(8192, 1024));  // ends the 8 KiB hole [0, 8192)
    ASSERT_TRUE(list.allocate_at(8192 + 1024 + 2048, 64 * 1024 - 11'264));  // 2 KiB hole
    auto a = list.allocate(2048, /*bottom_up=*/true, policy);
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, policy == AllocPolicy::FirstFit ? 0u : 9216u) << policy_name(policy);
  }
}

TEST(FreeList, SizeClassesAreLog2OfKibibytes) {
  EXPECT_EQ(size_class_count(1'071'821'792), 18u);  // a Wormhole DRAM bank: capped
  EXPECT_EQ(size_class_count(1'396'736), 11u);      // a Wormhole L1 bank
  EXPECT_EQ(size_class_count(0), 2u);
  EXPECT_EQ(size_class(512, 11), 0u);
  EXPECT_EQ(size_class(1024, 11), 0u);
  EXPECT_EQ(size_class(2048, 11), 1u);
  EXPECT_EQ(size_class(4095, 11), 1u);
  EXPECT_EQ(size_class(uint64_t{1} << 40, 11), 10u);
}

TEST(FreeList, IntersectKeepsOnlyRangesFreeInBoth) {
  const std::vector<AddressRange> a = {{0, 100}, {200, 300}};
  const std::vector<AddressRange> b = {{50, 250}, {280, 400}};
  const std::vector<AddressRange> expected = {{50, 100}, {200, 250}, {280, 300}};
  EXPECT_EQ(intersect(a, b), expected);
  EXPECT_TRUE(intersect(a, {}).empty());
}

}  // namespace
}  // namespace ttmem::model
