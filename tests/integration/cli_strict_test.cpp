// Strict command lines and read-only readers: a reader never creates the directory it is pointed
// at (a mistyped --dir is said, not silently made and reported empty), ttmemd waits for a
// missing directory and serves it once a tracked program creates it, and out-of-range numbers
// are usage errors (exit 2) rather than wrapped around or silently clamped.
#include <filesystem>

#include <gtest/gtest.h>

#include "daemon_harness.h"

namespace ttmem::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

RunResult ttmem(std::vector<std::string> args, const std::map<std::string, std::string>& env = {}) {
  args.insert(args.begin(), TTMEM_CLI);
  return run(args, env);
}

TEST(ReadOnlyCommands, NeverCreateTheDirectoryTheyAreGiven) {
  TempDir dir;
  const std::string typo = dir.path() + "/typo/deeper";
  // Named with --dir: one line saying it does not exist, exit 1.
  for (const char* command : {"status", "buffers", "leaks", "query"}) {
    RunResult r = ttmem({"--dir", typo, command});
    EXPECT_EQ(r.exit_code, 1) << command << ": " << r.err;
    EXPECT_EQ(r.out, "") << command;
    EXPECT_NE(r.err.find("segment directory " + typo + " does not exist"), std::string::npos)
        << command << ": " << r.err;
    EXPECT_NE(r.err.find("check --dir"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  RunResult top = ttmem({"--dir", typo, "top", "--once"});
  EXPECT_EQ(top.exit_code, 1) << top.err;
  EXPECT_NE(top.err.find("does not exist"), std::string::npos) << top.err;
  // Given by TTMEM_DIR, `top` says why it shows nothing (the live screen waits for it).
  top = ttmem({"top", "--once"}, {{"TTMEM_DIR", typo}});
  EXPECT_EQ(top.exit_code, 0) << top.err;
  EXPECT_NE(top.out.find("No devices: segment directory " + typo + " does not exist"),
            std::string::npos)
      << top.out;
  EXPECT_FALSE(fs::exists(dir.path() + "/typo"));

  // Given by TTMEM_DIR (the clients' own setting), it is simply not made yet: an empty status
  // that says so, in text and in JSON.
  RunResult text = ttmem({"status"}, {{"TTMEM_DIR", typo}});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("No devices: segment directory " + typo +
                          " does not exist: no program has been tracked with it yet"),
            std::string::npos)
      << text.out;
  RunResult j = ttmem({"status", "--json"}, {{"TTMEM_DIR", typo}});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json status = json::parse(j.out);
  EXPECT_EQ(status.at("segment_dir_missing"), true);
  EXPECT_TRUE(status.at("devices").empty());
  EXPECT_FALSE(fs::exists(dir.path() + "/typo"));
}

TEST(ReadOnlyCommands, DaemonWaitsForAMissingDirectoryAndServesItOnceCreated) {
  TempDir dir;
  const std::string later = dir.path() + "/later";
  Ttmemd d(later);
  ASSERT_FALSE(d.url().empty());
  json before = get_json(d.url(), "/api/v1/status");
  EXPECT_EQ(before.at("segment_dir_missing"), true);
  EXPECT_FALSE(fs::exists(later));

  // The first tracked program creates it; the daemon picks it up without a restart.
  Child load({TTMEM_TESTLOAD, "--devices", "2", "--threads", "1", "--ops", "200", "--phases",
              "1", "--seed", "3", "--truth", dir.path() + "/truth"},
             {{"TTMEM_DIR", later}});
  ASSERT_TRUE(load.expect_line("done"));
  json truth = read_json_file(dir.path() + "/truth.1.json");
  EXPECT_EQ(eventually([&] { return status_differs(get_json(d.url(), "/api/v1/status"), truth); }),
            "");
  EXPECT_EQ(get_json(d.url(), "/api/v1/status").at("segment_dir_missing"), false);
}

TEST(StrictArguments, OutOfRangeNumbersAreUsageErrors) {
  TempDir dir;
  const std::string recording = dir.path() + "/r.ttmem";
  // A real (empty) recording, so `export` fails on its argument and nothing else.
  ASSERT_EQ(ttmem({"--dir", dir.path(), "record", "-o", recording, "--duration", "0.2"}).exit_code,
            0);
  const std::vector<std::vector<std::string>> bad = {
      {"buffers", "--limit", "-5"},
      {"buffers", "--limit", "1e30"},
      {"export", recording, "--format", "json", "--at", "-1"},
      {"export", recording, "--format", "json", "--at", "1e30"},
      {"export", recording, "--format", "json", "--at", "nan"},
      {"record", "-o", recording + ".2", "--duration", "-1"},
      {"sim", "leak", "--seed", "-1"},
      {"sim", "leak", "--speed", "-2"},
      {"sim"},
      {"query", "--loop", "-1"},
      {"report", recording, "--points", "-1"},
      {"top", "--once", "--limit", "-1"},
      {"diff", recording, recording, "--fail-over", "-5"},
      {"model", "--alloc", "DRAM:nonsense"},
      {"model", "--mesh", "3"},
      {"model"},
  };
  for (const auto& args : bad) {
    std::vector<std::string> full = {"--dir", dir.path()};
    full.insert(full.end(), args.begin(), args.end());
    RunResult r = ttmem(full);
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    EXPECT_EQ(r.exit_code, 2) << shown << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << shown;
  }
  EXPECT_FALSE(fs::exists(recording + ".2"));
  // In range, the same options are accepted.
  EXPECT_EQ(ttmem({"--dir", dir.path(), "buffers", "--limit", "5"}).exit_code, 0);
  RunResult at = ttmem({"export", recording, "--format", "json", "--at", "0"});
  EXPECT_EQ(at.exit_code, 0) << at.err;
}

}  // namespace
}  // namespace ttmem::test
