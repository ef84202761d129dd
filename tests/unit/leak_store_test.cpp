// The leak store: records survive as files, bad files are reported with what to do, a viewer
// that loads many times sees every change to the directory and otherwise gets the same shared
// list, and a count-only load trusts a file's header only as far as its size allows.
#include "collector/leak_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <thread>

#include "collector/json.h"
#include "common/kinds.h"
#include "temp_dir.h"

namespace ttmem::collector {

using common::parse_kind;

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

std::vector<LeakRecord> records_of(const LeakList& list) {
  return {list.begin(), list.end()};
}

class LeakStoreTest : public ::testing::Test {
 protected:
  test::TempDir base_;
  // Not there yet: the store makes it.
  std::string dir_ = base_.path() + "/leaks";
};

TEST_F(LeakStoreTest, SavedRecordsLoadBackAndChangesAreSeen) {
  LeakStore store(dir_);
  ASSERT_EQ(store.save({leak(10, 1, 4096), leak(10, 2, 8192)}), "");
  std::vector<SegmentProblem> problems;
  auto loaded = store.load(&problems);
  ASSERT_EQ(loaded.count(), 2u);
  ASSERT_EQ(records_of(loaded).size(), 2u);
  EXPECT_EQ(records_of(loaded)[1].size, 8192u);
  EXPECT_EQ(records_of(loaded)[0].tag, "ttnn::linear");
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
  ASSERT_EQ(records_of(loaded).size(), 2 * third);
  EXPECT_EQ(records_of(loaded).front().pid, 102);
  EXPECT_EQ(records_of(loaded).back().pid, 103);
  EXPECT_FALSE(fs::exists(dir_ + "/ttmem-101-42.leaks.json"));

  // A file over the bound by itself: it is kept, every older one goes.
  ASSERT_EQ(store.save(leaks_of(104, LeakStore::kMaxRecords + 1)), "");
  loaded = store.load(&problems);
  ASSERT_EQ(records_of(loaded).size(), LeakStore::kMaxRecords + 1);
  EXPECT_EQ(records_of(loaded).front().pid, 104);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);

  // An older file written behind the store's back: a reader leaves it alone but does not hold it.
  const fs::path older = dir_ + "/ttmem-100-42.leaks.json";
  fs::copy_file(dir_ + "/ttmem-104-42.leaks.json", older);
  fs::last_write_time(older, fs::last_write_time(older) - std::chrono::hours(1));
  LeakStore reader(dir_);
  loaded = reader.load(&problems);
  ASSERT_EQ(records_of(loaded).size(), LeakStore::kMaxRecords + 1);
  EXPECT_EQ(records_of(loaded).front().pid, 104);
  EXPECT_TRUE(fs::exists(older));
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(reader.load_count(&problems).count(), LeakStore::kMaxRecords + 1);
  EXPECT_TRUE(problems.empty());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

std::string record_lines(const std::vector<LeakRecord>& records) {
  std::string lines;
  for (const auto& l : records) lines += to_json(l).dump() + "\n";
  return lines;
}

// A version-2 file: `header` as its first line, then `records`.
std::string leak_file(const nlohmann::json& header, const std::string& records) {
  return header.dump() + "\n" + records;
}

// Both loads of a fresh store (the cache keys files by size and modification time, which a
// rewrite within one clock tick may not change).
struct BothLoads {
  LeakList counted, loaded;
  std::vector<SegmentProblem> count_problems, load_problems;
};
BothLoads load_both(const std::string& dir) {
  BothLoads b;
  b.counted = LeakStore(dir).load_count(&b.count_problems);
  b.loaded = LeakStore(dir).load(&b.load_problems);
  return b;
}

// `ttmem status` counts leaks from the files' headers; the count is the full load's.
TEST_F(LeakStoreTest, CountOnlyLoadCountsWhatAFullLoadHolds) {
  LeakStore store(dir_);
  const size_t third = LeakStore::kMaxRecords * 2 / 5;
  ASSERT_EQ(store.save(leaks_of(101, 3)), "");
  ASSERT_EQ(store.save(leaks_of(102, third)), "");
  ASSERT_EQ(store.save(leaks_of(103, third)), "");
  ASSERT_EQ(store.save(leaks_of(104, third)), "");  // 101 and 102 are beyond the bounds now
  BothLoads b = load_both(dir_);
  EXPECT_EQ(b.counted.count(), 2 * third);
  EXPECT_EQ(b.counted.begin(), b.counted.end());
  EXPECT_EQ(b.loaded.count(), b.counted.count());
  EXPECT_EQ(records_of(b.loaded).size(), b.counted.count());
  EXPECT_TRUE(b.count_problems.empty());
  EXPECT_TRUE(b.load_problems.empty());

  // The first line is the header; the records follow, one a line.
  std::istringstream file(read_file(dir_ + "/ttmem-103-42.leaks.json"));
  std::string first;
  std::getline(file, first);
  const nlohmann::json header = nlohmann::json::parse(first);
  EXPECT_EQ(header.at("version"), 2);
  EXPECT_EQ(header.at("count"), third);
  EXPECT_EQ(header.at("pid"), 103);
  EXPECT_EQ(header.at("process_start_time"), 42);
  std::string rest(std::istreambuf_iterator<char>(file), {});
  EXPECT_EQ(header.at("bytes"), rest.size());
  EXPECT_EQ(std::count(rest.begin(), rest.end(), '\n'), std::ptrdiff_t(third));
}

// The header's count is bounded by the bytes that follow it, with each record at its shortest:
// records of that size must fit.
TEST_F(LeakStoreTest, TheShortestRecordsFitTheirCount) {
  std::vector<LeakRecord> shortest(50);
  for (auto& l : shortest) l.kind = *parse_kind("L1");
  ASSERT_EQ(LeakStore(dir_).save(shortest), "");
  BothLoads b = load_both(dir_);
  EXPECT_EQ(b.counted.count(), 50u);
  EXPECT_EQ(b.loaded.count(), 50u);
  EXPECT_TRUE(b.count_problems.empty()) << b.count_problems[0].error;
  EXPECT_TRUE(b.load_problems.empty());
}

// A leak file is input from anyone who can write the directory: a header that cannot be
// believed is a problem saying to remove the file, in either load, and nothing is counted from
// it; the other files still load.
TEST_F(LeakStoreTest, HostileHeadersAreReportedNotBelieved) {
  ASSERT_EQ(LeakStore(dir_).save(leaks_of(10, 2)), "");
  const std::string one = record_lines({leak(99, 1, 4096)});
  const std::string three = record_lines(leaks_of(99, 3));
  const auto header = [](const nlohmann::json& count, size_t bytes) {
    return nlohmann::json{{"version", 2}, {"count", count}, {"bytes", bytes}};
  };
  const std::string good_three = leak_file(header(3, three.size()), three);
  struct Case {
    std::string name, text, says;
  };
  const Case cases[] = {
      {"count larger than the file could hold", leak_file(header(1000, one.size()), one),
       "1000 records cannot fit in"},
      {"count at the largest whole number", leak_file(header(UINT64_MAX, one.size()), one),
       "cannot fit"},
      {"negative count", leak_file(header(-1, one.size()), one),
       "the header's 'count' must be a whole number"},
      {"count not a number", leak_file(header("1", one.size()), one), "'count' must be"},
      {"count not whole", leak_file(header(1.5, one.size()), one), "'count' must be"},
      {"no count", leak_file({{"version", 2}, {"bytes", one.size()}}, one), "'count' must be"},
      {"negative bytes", leak_file({{"version", 2}, {"count", 1}, {"bytes", -5}}, one),
       "the header's 'bytes' must be a whole number"},
      {"truncated in the records", good_three.substr(0, good_three.size() - 10),
       "bytes of records follow it, the file has"},
      {"longer than its header says", good_three + one, "bytes of records follow it"},
      {"truncated in the header", good_three.substr(0, 12), "parse_error"},
      {"empty", "", "parse_error"},
      {"unknown version", leak_file({{"version", 3}, {"count", 1}, {"bytes", one.size()}}, one),
       "version 3 is not one this ttmem reads"},
      {"header line beyond 4 KiB",
       leak_file({{"version", 2},
                  {"count", 1},
                  {"bytes", one.size()},
                  {"padding", std::string(5000, 'x')}},
                 one),
       "parse_error"},
  };
  const std::string bad = dir_ + "/ttmem-99-1.leaks.json";
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    write_file(bad, c.text);
    BothLoads b = load_both(dir_);
    for (const auto* problems : {&b.count_problems, &b.load_problems}) {
      ASSERT_EQ(problems->size(), 1u);
      EXPECT_EQ((*problems)[0].path, bad);
      const std::string& error = (*problems)[0].error;
      EXPECT_EQ(error.rfind("malformed leak file (", 0), 0u) << error;
      EXPECT_NE(error.find(c.says), std::string::npos) << error;
      EXPECT_TRUE(error.ends_with("; remove it")) << error;
    }
    EXPECT_EQ(b.counted.count(), 2u);
    EXPECT_EQ(b.loaded.count(), 2u);
  }
}

// A count-only load reads headers, not records: a header that fits its file is believed, while
// the full load checks every record against it.
TEST_F(LeakStoreTest, CountOnlyReadsNoRecordFullLoadChecksThemAll) {
  fs::create_directories(dir_);
  const std::string three = record_lines(leaks_of(99, 3));
  const std::string bad = dir_ + "/ttmem-99-1.leaks.json";
  struct Case {
    std::string name, records, says;
    uint64_t count;
  };
  const Case cases[] = {
      {"records that are not JSON", std::string(400, 'x') + "\n", "parse_error", 1},
      {"more records than counted", three, "more records than the header's count of 2", 2},
      {"a record without its newline", three.substr(0, three.size() - 1),
       "its last record has no newline", 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    write_file(bad, leak_file({{"version", 2}, {"count", c.count}, {"bytes", c.records.size()}},
                              c.records));
    BothLoads b = load_both(dir_);
    EXPECT_EQ(b.counted.count(), c.count);
    EXPECT_TRUE(b.count_problems.empty());
    EXPECT_EQ(b.loaded.count(), 0u);
    ASSERT_EQ(b.load_problems.size(), 1u);
    EXPECT_NE(b.load_problems[0].error.find(c.says), std::string::npos) << b.load_problems[0].error;
  }
}

// Files written before the header (version 1: one JSON document) still load, and are counted by
// parsing them.
TEST_F(LeakStoreTest, VersionOneFilesStillLoad) {
  fs::create_directories(dir_);
  for (size_t n : {2, 100}) {  // a document under and over the 4 KiB a header is looked for in
    SCOPED_TRACE(n);
    nlohmann::json doc = {{"version", 1}, {"leaks", nlohmann::json::array()}};
    for (const auto& l : leaks_of(7, n)) doc["leaks"].push_back(to_json(l));
    write_file(dir_ + "/ttmem-7-42.leaks.json", doc.dump() + "\n");
    BothLoads b = load_both(dir_);
    EXPECT_EQ(b.counted.count(), n);
    ASSERT_EQ(records_of(b.loaded).size(), n);
    EXPECT_EQ(records_of(b.loaded).back().buffer_id, n);
    EXPECT_TRUE(b.count_problems.empty());
    EXPECT_TRUE(b.load_problems.empty());
  }
}

// A process killed holding 200,000 buffers leaves a leak report of more than 64 MiB: it loads
// whole, by count and record by record, with no size at which leak records stop being shown.
TEST_F(LeakStoreTest, LeakReportsOver64MiBLoadWhole) {
  std::vector<LeakRecord> many = leaks_of(9, 200'000);
  for (auto& l : many) l.command = std::string(200, 'c');  // ~380 B a record line
  ASSERT_EQ(LeakStore(dir_).save(many), "");
  const uint64_t bytes = fs::file_size(dir_ + "/ttmem-9-42.leaks.json");
  ASSERT_GT(bytes, uint64_t{64} << 20);
  BothLoads b = load_both(dir_);
  EXPECT_TRUE(b.count_problems.empty());
  EXPECT_TRUE(b.load_problems.empty()) << b.load_problems.at(0).error;
  EXPECT_EQ(b.counted.count(), 200'000u);
  const std::vector<LeakRecord> loaded = records_of(b.loaded);
  ASSERT_EQ(loaded.size(), 200'000u);
  EXPECT_EQ(loaded.front().buffer_id, 1u);
  EXPECT_EQ(loaded.back().buffer_id, 200'000u);
}

// A version-1 file is parsed as one document, so one too large to parse is refused, and the
// refusal says so where leaks are shown (a problem marked as hiding leak records).
TEST_F(LeakStoreTest, OversizedVersionOneFileIsAProblemThatHidesLeaks) {
  fs::create_directories(dir_);
  write_file(dir_ + "/ttmem-7-42.leaks.json",
             R"({"version":1,"leaks":[)" + std::string(LeakStore::kMaxVersion1Bytes, ' ') + "]}");
  std::vector<SegmentProblem> problems;
  EXPECT_EQ(LeakStore(dir_).load(&problems).count(), 0u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_TRUE(problems[0].leaks);
  EXPECT_NE(problems[0].error.find("version-1 leak file"), std::string::npos) << problems[0].error;
}

// A viewer refreshing many times a second gets the same list, not a copy, until a retained file
// changes; a list it was given stays as it was.
TEST_F(LeakStoreTest, TheListIsSharedUntilAFileChanges) {
  LeakStore store(dir_);
  std::vector<SegmentProblem> problems;
  ASSERT_EQ(store.save(leaks_of(10, 2)), "");
  const LeakList first = store.load(&problems);
  EXPECT_TRUE(store.load(&problems).same_list_as(first));

  ASSERT_EQ(store.save(leaks_of(11, 3)), "");
  const LeakList second = store.load(&problems);
  EXPECT_FALSE(second.same_list_as(first));
  EXPECT_EQ(first.count(), 2u);
  ASSERT_EQ(records_of(second).size(), 5u);
  EXPECT_EQ(records_of(second)[1].pid, 10);
  EXPECT_EQ(records_of(second)[2].pid, 11);
  EXPECT_EQ(&*second.begin(), &*first.begin()) << "the unchanged file's records were copied";
  EXPECT_TRUE(store.load(&problems).same_list_as(second));

  // A file removed behind the store's back: the list is rebuilt from the files still there.
  fs::remove(dir_ + "/ttmem-10-42.leaks.json");
  const LeakList third = store.load(&problems);
  ASSERT_EQ(records_of(third).size(), 3u);
  EXPECT_EQ(records_of(third)[0].pid, 11);
  EXPECT_EQ(records_of(third)[2].buffer_id, 3u);
  EXPECT_EQ(&*third.begin(), &*std::next(second.begin(), 2));
  EXPECT_TRUE(store.load(&problems).same_list_as(third));
  EXPECT_TRUE(problems.empty());
}

// A list walks the records of its files in order, passing over files without any.
TEST(LeakList, WalksTheRecordsOfEveryFileInOrder) {
  const auto file = [](std::vector<uint64_t> ids) {
    LeakList::Records records;
    for (uint64_t id : ids) records.push_back(leak(1, id, 4096));
    return std::make_shared<const LeakList::Records>(std::move(records));
  };
  const LeakList list(LeakList::Files{file({}), file({1, 2}), file({}), file({3}), file({})});
  EXPECT_EQ(list.count(), 3u);
  std::vector<uint64_t> walked;
  for (const LeakRecord& l : list) walked.push_back(l.buffer_id);
  EXPECT_EQ(walked, (std::vector<uint64_t>{1, 2, 3}));
  const LeakList only_empty_files(LeakList::Files{file({}), file({})});
  EXPECT_EQ(only_empty_files.begin(), only_empty_files.end());
  const LeakList none;
  EXPECT_EQ(none.begin(), none.end());
  const LeakList counted = LeakList::counted_only(5);
  EXPECT_EQ(counted.count(), 5u);
  EXPECT_EQ(counted.begin(), counted.end());
}

// The retention bounds need only each file's count: a file beyond them is pruned on its header
// alone, its records never parsed (and so never reported, however broken).
TEST_F(LeakStoreTest, RetentionReadsOnlyHeaders) {
  fs::create_directories(dir_);
  const std::string older = dir_ + "/ttmem-100-42.leaks.json";
  const std::string garbage = std::string(400, 'x') + "\n" + std::string(400, 'x') + "\n";
  write_file(older, leak_file({{"version", 2}, {"count", 2}, {"bytes", garbage.size()}}, garbage));
  fs::last_write_time(older, fs::last_write_time(older) - std::chrono::hours(1));
  LeakStore store(dir_);
  // One record short of the bound: the older file's two do not fit.
  ASSERT_EQ(store.save(leaks_of(101, LeakStore::kMaxRecords - 1)), "");
  EXPECT_FALSE(fs::exists(older));
  std::vector<SegmentProblem> problems;
  EXPECT_EQ(store.load(&problems).count(), LeakStore::kMaxRecords - 1);
  EXPECT_TRUE(problems.empty());
}

// Collectors save and prune files while others load: a load must order the files by times that
// do not change under it (std::sort with a comparison that stats each time ran off its vector).
TEST_F(LeakStoreTest, LoadSurvivesFilesChangingWhileItSorts) {
  constexpr pid_t kFiles = 300;
  LeakStore store(dir_);
  for (pid_t pid = 1; pid <= kFiles; ++pid) ASSERT_EQ(store.save(leaks_of(pid, 1)), "");
  std::atomic<bool> stop = false;
  std::thread toucher([&] {
    std::mt19937 random(1);
    const auto now = fs::file_time_type::clock::now();
    while (!stop) {
      for (pid_t pid = 1; pid <= kFiles; ++pid) {
        std::error_code ec;
        fs::last_write_time(dir_ + "/ttmem-" + std::to_string(pid) + "-42.leaks.json",
                            now - std::chrono::seconds(random() % 1000), ec);
      }
    }
  });
  for (int i = 0; i < 300; ++i) {
    std::vector<SegmentProblem> problems;
    EXPECT_EQ(LeakStore(dir_).load_count(&problems).count(), uint64_t(kFiles));
  }
  stop = true;
  toucher.join();
}

}  // namespace
}  // namespace ttmem::collector
