#include "client/slot_index.h"

#include <random>
#include <unordered_map>
#include <utility>
#include <vector>

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

TEST(SlotIndex, GrowsFromSmallUpToItsLimitThenRefuses) {
  SlotIndex idx;
  ASSERT_TRUE(idx.reserve(4096));  // up to 8192 entries, starting at 1024
  EXPECT_EQ(idx.capacity(), SlotIndex::kInitialCapacity);
  uint32_t inserted = 0;
  for (uint64_t k = 0; k < 10000; ++k) inserted += idx.insert(k, uint32_t(k)) ? 1 : 0;
  EXPECT_EQ(inserted, 4096u);
  EXPECT_EQ(idx.capacity(), 8192u);
  for (uint64_t k = 0; k < 4096; ++k) ASSERT_EQ(idx.find(k), k) << "lost across growth";
  EXPECT_EQ(idx.find(5000), SlotIndex::kNotFound);
}

// Long-lived low ids and a counter that wraps the table many times over: the pattern of
// weights allocated at start-up and activations churned for the rest of a run.
TEST(SlotIndex, LongLivedIdsDoNotSlowChurnDown) {
  SlotIndex idx;
  ASSERT_TRUE(idx.reserve(1u << 18));
  for (uint64_t k = 0; k < 10000; ++k) ASSERT_TRUE(idx.insert(k, uint32_t(k)));
  for (uint64_t k = 10000; k < 3'000'000; ++k) {
    ASSERT_EQ(idx.exchange(k, 1), SlotIndex::kNotFound);
    ASSERT_EQ(idx.erase(k), 1u);
  }
  EXPECT_LE(idx.capacity(), 32768u) << "the table only needs to fit the live set";
  for (uint64_t k = 0; k < 10000; ++k) ASSERT_EQ(idx.find(k), k);
}

// The id patterns a client sees stay close to their home slots at the table's fullest: a
// counter (tt-metal's unique_id), a counter in the low bits under a tag in the high ones, and
// addresses a page apart. Placed as they are, the addresses would share eight home slots.
TEST(SlotIndex, RealisticIdPatternsStayNearTheirHomeSlots) {
  const std::vector<std::pair<const char*, uint64_t (*)(uint64_t)>> patterns = {
      {"counter", [](uint64_t i) { return i + 1; }},
      {"tagged counter", [](uint64_t i) { return (uint64_t{3} << 48) | i; }},
      {"page addresses", [](uint64_t i) { return 0x7f00'0000'0000 + i * 4096; }},
  };
  for (const auto& [name, id_of] : patterns) {
    SlotIndex idx;
    ASSERT_TRUE(idx.reserve(16384));  // a table of 32768 entries
    for (uint64_t i = 0; i < 16384; ++i) ASSERT_TRUE(idx.insert(id_of(i), uint32_t(i)));
    EXPECT_EQ(idx.capacity(), 32768u);
    // Linear probing at half load with well-spread homes: a few tens at most. Homes that
    // cluster give runs of hundreds to thousands.
    EXPECT_LE(idx.longest_probe(), 48u) << name;
    for (uint64_t i = 0; i < 16384; ++i) ASSERT_EQ(idx.find(id_of(i)), i) << name;
  }
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
