// Segments that someone other than their writer changes or names: truncated under readers,
// written in another PID namespace. No reader may crash, and no live process's buffers may turn
// into leak records.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "daemon_harness.h"
#include "fault_harness.h"

namespace ttmem::test::fault {
namespace {

using nlohmann::json;

// A tracked program holding `buffers` buffers until its stdin closes; returns its segment path.
std::string start_holder(std::unique_ptr<Child>& child, const std::string& dir, int buffers,
                         std::vector<std::string> prefix = {}) {
  std::vector<std::string> argv = std::move(prefix);
  for (std::string arg : {std::string(TTMEM_FAULT_CLIENT), std::string("short"),
                          std::string("--allocs"), std::to_string(buffers), std::string("--keep"),
                          std::to_string(buffers), std::string("--wait")}) {
    argv.push_back(arg);
  }
  child = std::make_unique<Child>(argv, std::map<std::string, std::string>{{"TTMEM_DIR", dir}});
  std::string segment;
  while (auto line = child->read_line()) {
    if (line->rfind("segment ", 0) == 0) segment = line->substr(8);
    if (*line == "ready") break;
  }
  return segment;
}

// Anyone who can write a segment file can shrink it; before, a read of the vanished pages
// killed the reader with SIGBUS: ttmemd (signal 7), and 140 of 545 `ttmem status` runs. Here the
// test flips a live process's segment between its header alone and its full size 1,000 times
// while ttmemd serves and four loops run `ttmem status`.
TEST(ForeignSegment, TruncatingALiveSegmentNeverCrashesTheDaemonOrTheCli) {
  TempDir dir;
  std::unique_ptr<Child> holder;
  const std::string segment = start_holder(holder, dir.path(), 500);
  ASSERT_FALSE(segment.empty());
  const auto full = std::filesystem::file_size(segment);
  Ttmemd daemon(dir.path(), {"--change-poll", "1"});

  std::atomic<bool> flipping{true};
  std::atomic<int> runs{0}, crashed{0};
  std::vector<std::thread> loops;
  for (int i = 0; i < 4; ++i) {
    loops.emplace_back([&] {
      while (flipping.load()) {
        RunResult r = run({TTMEM_CLI, "--dir", dir.path(), "status", "--json"});
        ++runs;
        if (r.exit_code >= 128) ++crashed;
      }
    });
  }
  for (int flip = 0; flip < 1000; ++flip) {
    std::filesystem::resize_file(segment, 4096);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    std::filesystem::resize_file(segment, full);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  flipping = false;
  for (auto& t : loops) t.join();
  std::printf("%d ttmem status runs during 1,000 flips\n", runs.load());
  EXPECT_EQ(crashed.load(), 0) << "`ttmem status` died of a signal";
  EXPECT_GT(runs.load(), 0);

  // ttmemd is alive and, the file whole again, tracks the process again. (Truncation discarded
  // the pages the records were on: what the file says now is all there is to show.)
  EXPECT_EQ(eventually([&] {
              json status = get_json(daemon.url(), "/api/v1/status");
              return status.at("processes").size() == 1 ? std::string() : status.dump();
            }),
            "");
  EXPECT_EQ(http_get(daemon.url(), "/metrics").status, 200);
  holder->write_line("free");
  holder->close_stdin();
  EXPECT_EQ(holder->wait(), 0);
}

// A process in a container (its own PID namespace) sharing the segment directory: its pid means
// another process here (pid 1 in the container is this machine's init), or none. Before, a
// collector outside took it for dead and reaped its live buffers into 10 false leak records.
TEST(ForeignSegment, ProcessInAnotherPidNamespaceIsShownButNeverReapedOrCalledDead) {
  const std::vector<std::string> in_new_namespace = {"/usr/bin/unshare", "--pid", "--fork",
                                                     "--mount-proc"};
  std::vector<std::string> probe = in_new_namespace;
  probe.push_back("/bin/true");
  if (run(probe).exit_code != 0) GTEST_SKIP() << "cannot create a PID namespace here (not root)";
  TempDir dir;
  std::unique_ptr<Child> holder;
  const std::string segment = start_holder(holder, dir.path(), 10, in_new_namespace);
  ASSERT_FALSE(segment.empty());

  for (int look = 0; look < 3; ++look) {  // each `ttmem status` is a reaping collector
    json status = ttmem_json(dir.path(), {"status", "--json"});
    ASSERT_EQ(status.at("processes").size(), 1u) << status.dump();
    EXPECT_EQ(status["processes"][0].at("segment_check"), "other_namespace");
    EXPECT_EQ(status["processes"][0].at("buffers"), 10);
    EXPECT_TRUE(status.at("problems").empty()) << status.dump();
  }
  EXPECT_TRUE(ttmem_json(dir.path(), {"leaks", "--json"}).at("leaks").empty());
  Ttmemd daemon(dir.path());
  EXPECT_EQ(get_json(daemon.url(), "/api/v1/status").at("processes").size(), 1u);
  EXPECT_TRUE(get_json(daemon.url(), "/api/v1/leaks").at("leaks").empty());
  RunResult text = run({TTMEM_CLI, "--dir", dir.path(), "status"});
  EXPECT_NE(text.out.find("[other pid namespace]"), std::string::npos) << text.out;
  EXPECT_TRUE(std::filesystem::exists(segment));

  holder->write_line("free");
  holder->close_stdin();
  EXPECT_EQ(holder->wait(), 0);
}

}  // namespace
}  // namespace ttmem::test::fault
