#include "collector/address_map.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <tuple>

namespace ttmem::collector {
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

// sort_by_begin() against std::sort: the same begins in the same order, and the same ranges.
void expect_sorted_like_std_sort(std::vector<AddressRange> input, const std::string& what) {
  std::vector<AddressRange> expected = input;
  std::sort(expected.begin(), expected.end(),
            [](const AddressRange& a, const AddressRange& b) { return a.begin < b.begin; });
  std::vector<AddressRange> sorted = input;
  sort_by_begin(sorted);
  ASSERT_EQ(sorted.size(), expected.size()) << what;
  for (size_t i = 0; i < sorted.size(); ++i) {
    ASSERT_EQ(sorted[i].begin, expected[i].begin) << what << ", index " << i;
  }
  // Ranges with equal begins may come in any order, but each range must still be there.
  auto by_begin_then_end = [](const AddressRange& a, const AddressRange& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  };
  std::sort(sorted.begin(), sorted.end(), by_begin_then_end);
  std::sort(input.begin(), input.end(), by_begin_then_end);
  for (size_t i = 0; i < sorted.size(); ++i) {
    ASSERT_EQ(sorted[i].end, input[i].end) << what << ", index " << i;
  }
}

TEST(AddressMap, SortByBeginAgreesWithStdSort) {
  std::mt19937_64 rng(20240601);
  // Below, at and above the size where the radix sort takes over.
  for (size_t n : {0, 1, 2, 100, 255, 256, 257, 1000, 20000}) {
    const std::string size = " of " + std::to_string(n);
    std::vector<AddressRange> random(n), sorted(n), reversed(n), duplicates(n), full_range(n),
        top_byte_only(n);
    for (size_t i = 0; i < n; ++i) {
      uint64_t begin = 0x10000000 + (rng() % (1u << 24)) * 32;  // aligned, as allocators give
      random[i] = {begin, begin + 4096 + i};
      sorted[i] = {0x1000 + i * 2048, 0x1000 + i * 2048 + 2048};
      reversed[i] = {1396736 - i * 64, 1396736 - i * 64 + 2048};
      uint64_t few = 102400 + (rng() % 4) * 65536;
      duplicates[i] = {few, few + i};
      uint64_t any = rng();
      full_range[i] = {any, any + (i % 7)};  // end may wrap: only begin is sorted on
      top_byte_only[i] = {(rng() % 256) << 56, i};
    }
    if (n > 2) {  // the lowest and highest begins
      full_range[0].begin = 0;
      full_range[n - 1].begin = UINT64_MAX;
    }
    expect_sorted_like_std_sort(random, "random" + size);
    expect_sorted_like_std_sort(sorted, "sorted" + size);
    expect_sorted_like_std_sort(reversed, "reversed" + size);
    expect_sorted_like_std_sort(duplicates, "duplicate-heavy" + size);
    expect_sorted_like_std_sort(full_range, "full 64-bit range" + size);
    expect_sorted_like_std_sort(top_byte_only, "begins differing in the top byte" + size);
    expect_sorted_like_std_sort(std::vector<AddressRange>(n, {42, 43}), "all equal" + size);
  }
}

}  // namespace
}  // namespace ttmem::collector
