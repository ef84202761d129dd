#include "client/slot_index.h"

#include <random>
#include <unordered_map>

#include <gtest/gtest.h>

namespace ttmem::client {
namespace {

TEST(SlotIndex, InsertFindErase) {
  SlotIndex idx;
  ASSERT_TRUE(idx.reserve(64));
  EXPECT_EQ(idx.find(7), SlotIndex::kNotFound);
  EXPECT_TRUE(idx.insert(7, 3));
  EXPECT_EQ(idx.find(7), 3u);
  EXPECT_EQ(idx.erase(7), 3u);
  EXPECT_EQ(idx.find(7), SlotIndex::kNotFound);
  EXPECT_EQ(idx.erase(7), SlotIndex::kNotFound);
  EXPECT_EQ(idx.size(), 0u);
}

TEST(SlotIndex, KeyZeroAndMaxAreOrdinaryKeys) {
  SlotIndex idx;
  ASSERT_TRUE(idx.reserve(16));
  EXPECT_TRUE(idx.insert(0, 1));
  EXPECT_TRUE(idx.insert(UINT64_MAX, 2));
  EXPECT_EQ(idx.find(0), 1u);
  EXPECT_EQ(idx.find(UINT64_MAX), 2u);
}

TEST(SlotIndex, RefusesToExceedHalfLoad) {
  SlotIndex idx;
  ASSERT_TRUE(idx.reserve(8));  // 16 entries
  uint32_t inserted = 0;
  for (uint64_t k = 0; k < 100; ++k) inserted += idx.insert(k, uint32_t(k)) ? 1 : 0;
  EXPECT_EQ(inserted, 8u);
}

// Random churn against std::unordered_map, with sequential ids (tt-metal's unique_id) that
// collide in long probe runs: backward-shift deletion must keep every key findable.
TEST(SlotIndex, RandomChurnMatchesReferenceMap) {
  SlotIndex idx;
  ASSERT_TRUE(idx.reserve(4096));
  std::unordered_map<uint64_t, uint32_t> ref;
  std::mt19937_64 rng(42);
  uint64_t next = 1;
  for (int step = 0; step < 200000; ++step) {
    if (ref.size() < 4000 && (ref.empty() || rng() % 100 < 52)) {
      uint64_t key = (rng() % 4 == 0) ? rng() : next++;
      uint32_t slot = uint32_t(rng() % 100000);
      if (ref.count(key)) continue;
      ASSERT_TRUE(idx.insert(key, slot));
      ref[key] = slot;
    } else {
      auto it = ref.begin();
      std::advance(it, rng() % ref.size());
      ASSERT_EQ(idx.erase(it->first), it->second);
      ref.erase(it);
    }
    if (step % 5000 == 0) {
      for (const auto& [k, v] : ref) ASSERT_EQ(idx.find(k), v);
    }
  }
  EXPECT_EQ(idx.size(), ref.size());
}

}  // namespace
}  // namespace ttmem::client
