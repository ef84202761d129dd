// The leak store: records survive as files, bad files are reported with what to do, and a
// viewer that loads many times sees every change to the directory and otherwise gets the same
// shared list.
#include "collector/leak_store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

namespace ttmem {
namespace {

namespace fs = std::filesystem;

LeakRecord leak(pid_t pid, uint64_t id, uint64_t size) {
  LeakRecord l;
  l.pid = pid;
  l.process_start_time = 42;
  l.command = "python test_model.py";
  l.buffer_id = id;
  l.size = size;
  l.reserved = size;
  l.tag = "ttnn::linear";
  return l;
}

class LeakStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ttmem-leaks-XXXXXX";
    dir_ = std::string(::mkdtemp(tmpl)) + "/leaks";
  }
  void TearDown() override { fs::remove_all(fs::path(dir_).parent_path()); }
  std::string dir_;
};

TEST_F(LeakStoreTest, SavedRecordsLoadBackAndChangesAreSeen) {
  LeakStore store(dir_);
  ASSERT_EQ(store.save({leak(10, 1, 4096), leak(10, 2, 8192)}), "");
  std::vector<SegmentProblem> problems;
  auto loaded = store.load(&problems);
  ASSERT_EQ(loaded.count(), 2u);
  ASSERT_EQ(loaded.records().size(), 2u);
  EXPECT_EQ(loaded.records()[1].size, 8192u);
  EXPECT_EQ(loaded.records()[0].tag, "ttnn::linear");
  EXPECT_TRUE(problems.empty());

  // Another process's report appears; the first is rewritten with different content.
  ASSERT_EQ(store.save({leak(11, 7, 100)}), "");
  ASSERT_EQ(store.save({leak(10, 1, 4096), leak(10, 2, 8192), leak(10, 3, 1)}), "");
  EXPECT_EQ(store.load(&problems).count(), 4u);

  // A corrupted file is reported, the others still load; removing it clears the report.
  std::string bad = dir_ + "/ttmem-99-1.leaks.json";
  std::ofstream(bad) << "{\"leaks\": [ {\"pid\": \"not a number\"} ]}";
  problems.clear();
  EXPECT_EQ(store.load(&problems).count(), 4u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].error.find("remove it"), std::string::npos);
  fs::remove(bad);
  problems.clear();
  EXPECT_EQ(store.load(&problems).count(), 4u);
  EXPECT_TRUE(problems.empty());

  EXPECT_EQ(store.clear(), 2u);
  EXPECT_TRUE(store.load(&problems).empty());
}

std::vector<LeakRecord> leaks_of(pid_t pid, size_t n) {
  std::vector<LeakRecord> out;
  for (size_t i = 0; i < n; ++i) out.push_back(leak(pid, i + 1, 4096));
  return out;
}

// Collectors hold every retained record in memory, so retention is bounded in records as well as
// files: the oldest files go first, and the newest file is kept whole even when it alone is over.
TEST_F(LeakStoreTest, RetentionIsBoundedInRecordsNewestKept) {
  LeakStore store(dir_);
  const size_t third = LeakStore::kMaxRecords * 2 / 5;  // two fit, three do not
  std::vector<SegmentProblem> problems;
  // Increasing pids: files saved within one clock tick are ordered by name.
  ASSERT_EQ(store.save(leaks_of(101, third)), "");
  ASSERT_EQ(store.save(leaks_of(102, third)), "");
  EXPECT_EQ(store.load(&problems).count(), 2 * third);
  ASSERT_EQ(store.save(leaks_of(103, third)), "");
  auto loaded = store.load(&problems);
  ASSERT_EQ(loaded.records().size(), 2 * third);
  EXPECT_EQ(loaded.records().front().pid, 102);
  EXPECT_EQ(loaded.records().back().pid, 103);
  EXPECT_FALSE(fs::exists(dir_ + "/ttmem-101-42.leaks.json"));

  // A file over the bound by itself: it is kept, every older one goes.
  ASSERT_EQ(store.save(leaks_of(104, LeakStore::kMaxRecords + 1)), "");
  loaded = store.load(&problems);
  ASSERT_EQ(loaded.records().size(), LeakStore::kMaxRecords + 1);
  EXPECT_EQ(loaded.records().front().pid, 104);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);

  // An older file written behind the store's back: a reader leaves it alone but does not hold it.
  const fs::path older = dir_ + "/ttmem-100-42.leaks.json";
  fs::copy_file(dir_ + "/ttmem-104-42.leaks.json", older);
  fs::last_write_time(older, fs::last_write_time(older) - std::chrono::hours(1));
  LeakStore reader(dir_);
  loaded = reader.load(&problems);
  ASSERT_EQ(loaded.records().size(), LeakStore::kMaxRecords + 1);
  EXPECT_EQ(loaded.records().front().pid, 104);
  EXPECT_TRUE(fs::exists(older));
  EXPECT_TRUE(problems.empty());
}

// A viewer refreshing many times a second gets the same list, not a copy, until a retained file
// changes; a list it was given stays as it was.
TEST_F(LeakStoreTest, TheListIsSharedUntilAFileChanges) {
  LeakStore store(dir_);
  std::vector<SegmentProblem> problems;
  ASSERT_EQ(store.save(leaks_of(10, 2)), "");
  const LeakList first = store.load(&problems);
  EXPECT_EQ(&store.load(&problems).records(), &first.records());

  ASSERT_EQ(store.save(leaks_of(11, 3)), "");
  const LeakList second = store.load(&problems);
  EXPECT_NE(&second.records(), &first.records());
  EXPECT_EQ(first.count(), 2u);
  ASSERT_EQ(second.records().size(), 5u);
  EXPECT_EQ(second.records()[1].pid, 10);
  EXPECT_EQ(second.records()[2].pid, 11);
  EXPECT_EQ(&store.load(&problems).records(), &second.records());

  // A file removed behind the store's back: the list is rebuilt from the files still there.
  fs::remove(dir_ + "/ttmem-10-42.leaks.json");
  const LeakList third = store.load(&problems);
  ASSERT_EQ(third.records().size(), 3u);
  EXPECT_EQ(third.records()[0].pid, 11);
  EXPECT_EQ(third.records()[2].buffer_id, 3u);
  EXPECT_EQ(&store.load(&problems).records(), &third.records());
  EXPECT_TRUE(problems.empty());
}

}  // namespace
}  // namespace ttmem
