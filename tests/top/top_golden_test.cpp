// `ttmem top` text output against golden files, and its command line, with a real tracked
// workload. The workload is deterministic: one thread, a fixed seed, held after its last phase.
//
// Regenerate the goldens after an intended change of the output (see golden.h):
//   TTMEM_UPDATE_GOLDEN=1 ctest --test-dir build -R TopCli.Golden
#include <gtest/gtest.h>

#include <cstdlib>
#include <regex>
#include <sstream>

#include "golden.h"
#include "harness.h"

namespace ttmem::test {
namespace {

class TopCli : public ::testing::Test {
 protected:
  void SetUp() override {
    // A deterministic sim state: the seeded Llama decode holding its trace-replay plateau.
    load_ = std::make_unique<Child>(
        std::vector<std::string>{TTMEM_CLI, "sim", "llama-decode", "--speed", "0", "--seed", "7",
                                 "--hold", "120"},
        std::map<std::string, std::string>{{"TTMEM_DIR", dir_.path()}});
    ASSERT_TRUE(load_->expect_line("holding for 120 s"));
  }

  RunResult top(std::vector<std::string> args, const char* program = TTMEM_CLI,
                std::map<std::string, std::string> env = {{"LC_ALL", "C"}}) {
    std::vector<std::string> argv = {program, "--dir", dir_.path()};
    if (std::string(program) == TTMEM_CLI) argv.push_back("top");
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, env);
  }

  TempDir dir_;
  std::unique_ptr<Child> load_;
};

TEST_F(TopCli, GoldenOverview) {
  RunResult r = top({"--once", "--stable", "--ascii", "--width", "120"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_golden("top_overview.txt", r.out);
}

TEST_F(TopCli, GoldenOverviewUtf8) {
  RunResult r = top({"--once", "--stable", "--width", "120"}, TTMEM_CLI, {{"LC_ALL", "C.UTF-8"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("█"), std::string::npos);
  expect_golden("top_overview_utf8.txt", r.out);
}

TEST_F(TopCli, GoldenBuffers) {
  RunResult r = top({"--once", "--stable", "--ascii", "--width", "120", "--view", "buffers",
                     "--sort", "size", "--limit", "12"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_golden("top_buffers.txt", r.out);
}

TEST_F(TopCli, GoldenL1Map) {
  RunResult r = top({"--once", "--stable", "--ascii", "--width", "120", "--view", "l1map", "-d",
                     "2", "--limit", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_golden("top_l1map.txt", r.out);
}

// The compatibility name shows the same view as `ttmem top`.
TEST_F(TopCli, CompatibilityNameShowsTheSameView) {
  RunResult a = top({"--once", "--stable", "--ascii", "--width", "120"});
  RunResult b = top({"-a", "--once", "--stable", "--ascii", "--width", "120"}, TTMEM_COMPAT);
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  // Without a terminal, a plain `allocation_monitor_client -a` (the prototype monitor's name and
  // flags) prints one snapshot.
  RunResult c = top({"-a", "-r", "100"}, TTMEM_COMPAT);
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("8 devices"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("llama-decode"), std::string::npos) << c.out;
  RunResult d = top({"-d", "3", "-d", "5", "--width", "120"}, TTMEM_COMPAT);
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.out.find("2 devices"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("Device 5"), std::string::npos) << d.out;
  EXPECT_EQ(d.out.find("Device 0"), std::string::npos) << d.out;
}

TEST_F(TopCli, CountPrintsOneSnapshotPerRefresh) {
  RunResult r = top({"--count", "3", "-r", "50", "--width", "100"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t frames = 0;
  for (size_t at = r.out.find("ttmem top"); at != std::string::npos;
       at = r.out.find("ttmem top", at + 1)) {
    ++frames;
  }
  EXPECT_EQ(frames, 3u);
  // The history has three samples by the last frame: the sparkline is three glyphs wide, each
  // TRACE's share of its capacity (28%, the third of eight levels), not a solid block.
  std::string last = r.out.substr(r.out.rfind("ttmem top"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(last, m, std::regex(R"(\n  TRACE .* (\S+)\n)"))) << last;
  EXPECT_EQ(m[1].str(), "---") << last;
}

TEST_F(TopCli, JsonSnapshots) {
  RunResult r = top({"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["devices"].size(), 8u);
  EXPECT_EQ(j["processes"].size(), 1u);
  EXPECT_GT(j["buffers"].get<int>(), 0);
  r = top({"--json", "--count", "2", "-r", "20", "-d", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    auto k = nlohmann::json::parse(line);
    ASSERT_EQ(k["devices"].size(), 1u);
    EXPECT_EQ(k["devices"][0]["logical_ids"][0], 4);
    ++n;
  }
  EXPECT_EQ(n, 2);
}

// -p keeps one process, --filter what matches a tag, pid or command, --peak each kind's history
// peak; the sim's tensor-parallel buffers are one buffer per chip: one row each, "0-7 x8".
TEST_F(TopCli, PidFilterPeakAndMeshRows) {
  const std::string pid = std::to_string(load_->pid());
  RunResult r =
      top({"--once", "--ascii", "--width", "160", "--view", "buffers", "-p", pid, "--limit", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Only process " + pid + ": "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0-7 x8  DRAM"), std::string::npos) << r.out;
  r = top({"--once", "--ascii", "--width", "160", "-p", "999999"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no tracked process 999999"), std::string::npos) << r.err;

  r = top({"--once", "--stable", "--ascii", "--width", "160", "--view", "buffers", "--filter",
           "LM_HEAD"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Only \"LM_HEAD\": 8 buffers in 1 rows"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lm_head"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("embedding"), std::string::npos) << r.out;

  r = top(
      {"--count", "2", "-r", "50", "--stable", "--ascii", "--width", "200", "--peak", "-d", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("HISTORY PEAK (P: back)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("s ago"), std::string::npos) << r.out;
}

TEST_F(TopCli, BadInputIsAClearErrorAndNonZeroExit) {
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"-r", "0"}, 2, "--refresh"},
      {{"-a", "-d", "1"}, 2, "excludes"},
      {{"--count", "0"}, 2, "--count"},
      {{"--view", "nope"}, 2, "--view"},
      {{"--sort", "colour"}, 2, "--sort"},
      {{"-d", "99", "--once"}, 1, "no device 99; tracked devices are: 0, 1"},
  };
  for (const auto& c : cases) {
    RunResult r = top(c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args[0] << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
  RunResult r = top({"-d", "99"}, TTMEM_COMPAT);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("allocation_monitor_client: no device 99"), std::string::npos) << r.err;
  r = run({TTMEM_CLI, "--dir", "/proc/nope", "top", "--once"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(r.err.empty());
}

}  // namespace
}  // namespace ttmem::test
