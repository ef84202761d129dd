// A full or unusable file system under the segments or a recording: the tracked program keeps
// running (no SIGBUS, no SIGXFSZ), every call returns a status, and the user is told what is
// wrong and what to do.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "daemon_harness.h"
#include "fault_harness.h"

namespace ttmem::test::fault {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A tmpfs of `bytes` mounted under a fresh directory, unmounted at destruction. Mounting needs
// CAP_SYS_ADMIN: without it, mounted() is false and the test skips itself.
class SmallTmpfs {
 public:
  explicit SmallTmpfs(uint64_t bytes) : path_(base_.path() + "/fs") {
    fs::create_directory(path_);
    std::string options = "size=" + std::to_string(bytes) + ",mode=0700";
    mounted_ = ::mount("tmpfs", path_.c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~SmallTmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  // Gives the file system a new size, keeping its files.
  bool resize(uint64_t bytes) {
    std::string options = "size=" + std::to_string(bytes);
    return ::mount("tmpfs", path_.c_str(), "tmpfs", MS_REMOUNT, options.c_str()) == 0;
  }
  const std::string& path() const { return path_; }

 private:
  TempDir base_;
  std::string path_;
  bool mounted_ = false;
};

#define REQUIRE_MOUNTED(fs_) \
  if (!(fs_).mounted()) GTEST_SKIP() << "mounting a small tmpfs needs CAP_SYS_ADMIN (root)"

struct ShortRun {
  int exit_code;
  uint64_t ok = 0, disabled = 0, full = 0, other = 0;
  std::string first_error, segment, err;
};

// Runs `ttmem_fault_client short` with TTMEM_DIR=dir and the extra arguments, to completion.
ShortRun run_short(const std::string& dir, std::vector<std::string> extra,
                   std::map<std::string, std::string> env = {}) {
  std::vector<std::string> argv = {TTMEM_FAULT_CLIENT, "short"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  env["TTMEM_DIR"] = dir;
  RunResult r = run(argv, env);
  ShortRun s{r.exit_code};
  s.err = r.err;
  std::smatch m;
  if (std::regex_search(
          r.out, m, std::regex("statuses ok=(\\d+) disabled=(\\d+) full=(\\d+) other=(\\d+)"))) {
    s.ok = std::stoull(m[1]), s.disabled = std::stoull(m[2]), s.full = std::stoull(m[3]);
    s.other = std::stoull(m[4]);
  }
  if (std::regex_search(r.out, m, std::regex("first-error ([^\n]*)"))) s.first_error = m[1];
  if (std::regex_search(r.out, m, std::regex("segment ([^\n]*)"))) s.segment = m[1];
  return s;
}

// The program ran to its end and every call answered "tracking is off".
void expect_ran_untracked(const ShortRun& r, uint64_t calls) {
  EXPECT_EQ(r.exit_code, 0) << "the tracked program did not run to its end: " << r.err;
  EXPECT_EQ(r.disabled, calls);
  EXPECT_EQ(r.ok + r.full + r.other, 0u);
  EXPECT_EQ(r.first_error, "tracking is disabled");
  EXPECT_EQ(r.segment, "none");
}

// 2 registrations + 10 allocs + 10 frees.
const std::vector<std::string> kTenBuffers = {"--devices", "2", "--allocs", "10"};
constexpr uint64_t kTenBufferCalls = 22;

TEST(DiskFull, FullSegmentFilesystemTurnsTrackingOffWithAClearMessage) {
  SmallTmpfs small(128 * 1024);  // less than a segment header's reservation
  REQUIRE_MOUNTED(small);
  ShortRun r = run_short(small.path() + "/ttmem", kTenBuffers);
  expect_ran_untracked(r, kTenBufferCalls);
  EXPECT_NE(r.err.find("ttmem: tracking is off for this process"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(small.path()), std::string::npos) << "the message names no directory";
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Set TTMEM_DIR"), std::string::npos) << r.err;
  EXPECT_EQ(leftover_files(small.path() + "/ttmem"), std::vector<std::string>{})
      << "a failed creation left its temporary file";
}

TEST(DiskFull, FilesystemFillingUpMidRunCountsOverflowsAndNeverRaisesSigbus) {
  // Room for the header (576 KiB), two 16 KiB rings and one 64 KiB slab chunk, not two chunks:
  // the first 1,024 buffers are recorded, the rest are refused and counted.
  SmallTmpfs small(720 * 1024);
  REQUIRE_MOUNTED(small);
  const std::string dir = small.path() + "/ttmem";
  Child client({TTMEM_FAULT_CLIENT, "short", "--devices", "2", "--allocs", "3000", "--keep", "3000",
                "--wait"},
               {{"TTMEM_DIR", dir}, {"TTMEM_RING_EVENTS", "256"}});
  auto statuses = client.read_line();
  ASSERT_TRUE(statuses.has_value()) << "the tracked program died";
  EXPECT_EQ(*statuses, "statuses ok=1026 disabled=0 full=1976 other=0");
  EXPECT_EQ(client.read_line(), "first-error live-buffer table full (raise TTMEM_MAX_BUFFERS)");
  ASSERT_TRUE(client.expect_line("ready"));

  // The collector shows exactly the recorded buffers, and counts the refused ones.
  json status = ttmem_json(dir, {"status", "--json"});
  ASSERT_EQ(status.at("processes").size(), 1u);
  EXPECT_EQ(status["processes"][0].at("buffers"), 1024);
  EXPECT_EQ(status["processes"][0].at("slab_overflow"), 1976);

  client.close_stdin();
  EXPECT_EQ(client.wait(), 0) << "the tracked program did not exit cleanly";

  // It exited holding 1,024 buffers, but the full file system has no room for their leak
  // report: the segment is kept (and the problem shown) rather than the leaks lost.
  status = ttmem_json(dir, {"status", "--json"});
  ASSERT_EQ(status.at("problems").size(), 1u) << status.dump();
  EXPECT_NE(status["problems"][0].at("error").get<std::string>().find("cannot save leak report"),
            std::string::npos);
  EXPECT_EQ(leftover_files(dir).size(), 1u) << "the segment holding the leaks was removed";
  EXPECT_TRUE(status["problems"][0].at("leaks").get<bool>());
  // `ttmem leaks` never says there are none while a report waits for room: it says how many
  // buffers wait, and why.
  RunResult leaks = run({TTMEM_CLI, "--dir", dir, "leaks"});
  EXPECT_EQ(leaks.exit_code, 0) << leaks.err;
  EXPECT_EQ(leaks.out.find("No leaked buffers recorded"), std::string::npos) << leaks.out;
  EXPECT_NE(leaks.err.find("1024 leaked buffers of process"), std::string::npos) << leaks.err;
  EXPECT_NE(leaks.err.find("not saved yet"), std::string::npos) << leaks.err;

  // Once there is room, the next collector reports every one of them.
  ASSERT_TRUE(small.resize(4u << 20));
  EXPECT_EQ(ttmem_json(dir, {"leaks", "--json"}).at("leaks").size(), 1024u);
  EXPECT_EQ(leftover_files(dir), std::vector<std::string>{});
}

TEST(DiskFull, SegmentDirectoryThatCannotExistTurnsTrackingOffWithAClearMessage) {
  // A path below a regular file: not even root can create it.
  TempDir scratch;
  std::string file = scratch.path() + "/not-a-directory";
  std::ofstream(file) << "x";
  ShortRun r = run_short(file + "/ttmem", kTenBuffers);
  expect_ran_untracked(r, kTenBufferCalls);
  EXPECT_NE(r.err.find("ttmem: tracking is off for this process: cannot create segment "
                       "directory " + file + "/ttmem (Not a directory)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("set TTMEM_DIR"), std::string::npos) << r.err;
}

TEST(DiskFull, FileSizeLimitNeverKillsTheTrackedProgram) {
  // Under `ulimit -f` smaller than a segment, sizing the segment file would raise SIGXFSZ, which
  // kills by default. The library must refuse to track instead.
  TempDir dir;
  ShortRun r =
      run_short(dir.path(), {"--devices", "2", "--allocs", "10", "--fsize-limit", "1048576"});
  expect_ran_untracked(r, kTenBufferCalls);
  EXPECT_NE(r.err.find("file-size limit (ulimit -f)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Raise the limit"), std::string::npos) << r.err;
  EXPECT_EQ(leftover_files(dir.path()), std::vector<std::string>{});
}

TEST(DiskFull, RecordingToAnUnwritablePathFailsAtOnceWithAClearMessage) {
  TempDir dir, scratch;
  std::string file = scratch.path() + "/not-a-directory";
  std::ofstream(file) << "x";
  auto started = std::chrono::steady_clock::now();
  RunResult r = run(
      {TTMEM_CLI, "--dir", dir.path(), "record", "-o", file + "/run.ttrec", "--duration", "30"});
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(
      r.err.find("cannot create " + file + "/run.ttrec: Not a directory; choose another -o path"),
      std::string::npos)
      << r.err;
}

// `ttmem record -o output -- <a program churning for 2 s>` onto a disk that fills up: ttmem
// must fail with the disk-full message, and the program must still run to its end (it writes
// `done` when it does).
void expect_record_fails_disk_full_and_program_runs(const std::string& output) {
  TempDir dir, scratch;
  const std::string done = scratch.path() + "/done";
  RunResult r = run({TTMEM_CLI, "--dir",        dir.path(),   "record",   "-o",
                     output,    "--checkpoint", "0.1",        "--",       TTMEM_FAULT_CLIENT,
                     "short",   "--devices",    "2",          "--allocs", "50",
                     "--keep",  "50",           "--churn-ms", "2000",     "--done-file",
                     done});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("No space left on device (is the disk full?)"), std::string::npos) << r.err;
  // The recorded program was not taken down with the recorder: it finishes its run.
  EXPECT_EQ(eventually([&] { return fs::exists(done) ? "" : "the program did not finish"; }, 20),
            "");
}

TEST(DiskFull, RecordingToAFullDeviceFailsWithAClearErrorAndTheProgramRuns) {
  // /dev/full refuses every write with ENOSPC, for any user.
  expect_record_fails_disk_full_and_program_runs("/dev/full");
}

TEST(DiskFull, RecordingThatFillsItsDiskStopsWithAClearErrorKeepsWhatItWroteAndTheProgramRuns) {
  SmallTmpfs small(256 * 1024);  // far fewer events than the program makes in 2 s
  REQUIRE_MOUNTED(small);
  const std::string recording = small.path() + "/run.ttrec";
  expect_record_fails_disk_full_and_program_runs(recording);

  // What was written before the disk filled is a valid recording.
  RunResult exported = run({TTMEM_CLI, "export", recording, "--format", "json"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  json j = json::parse(exported.out);
  EXPECT_GT(j.at("events").size(), 100u);
  EXPECT_GE(j.at("checkpoints").size(), 1u);
}

}  // namespace
}  // namespace ttmem::test::fault
