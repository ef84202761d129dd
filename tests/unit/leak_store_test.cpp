// The leak store: records survive as files, bad files are reported with what to do, and a
// viewer that loads many times sees every change to the directory.
#include "collector/leak_store.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

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
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[1].size, 8192u);
  EXPECT_EQ(loaded[0].tag, "ttnn::linear");
  EXPECT_TRUE(problems.empty());

  // Another process's report appears; the first is rewritten with different content.
  ASSERT_EQ(store.save({leak(11, 7, 100)}), "");
  ASSERT_EQ(store.save({leak(10, 1, 4096), leak(10, 2, 8192), leak(10, 3, 1)}), "");
  EXPECT_EQ(store.load(&problems).size(), 4u);

  // A corrupted file is reported, the others still load; removing it clears the report.
  std::string bad = dir_ + "/ttmem-99-1.leaks.json";
  std::ofstream(bad) << "{\"leaks\": [ {\"pid\": \"not a number\"} ]}";
  problems.clear();
  EXPECT_EQ(store.load(&problems).size(), 4u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].error.find("remove it"), std::string::npos);
  fs::remove(bad);
  problems.clear();
  EXPECT_EQ(store.load(&problems).size(), 4u);
  EXPECT_TRUE(problems.empty());

  EXPECT_EQ(store.clear(), 2u);
  EXPECT_TRUE(store.load(&problems).empty());
}

}  // namespace
}  // namespace ttmem
