// Access control across real processes: what the client creates and with which permissions, who
// may read it, and which segments the collector believes (docs/security.md).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "access_harness.h"
#include "common/proc.h"

namespace ttmem::test {

using common::process_start_time;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uid_t kNobody = 65534;

const json* find_problem(const json& status, const std::string& path) {
  for (const auto& p : status.at("problems")) {
    if (p.at("path") == path) return &p;
  }
  return nullptr;
}

// A `sleep` child: a live process that never touches ttmem.
std::unique_ptr<Child> start_sleeper() {
  return std::make_unique<Child>(std::vector<std::string>{"/bin/sleep", "120"},
                                 std::map<std::string, std::string>{});
}

TEST(Access, EverythingIsOwnerOnlyByDefault) {
  ::umask(022);  // the usual umask: files it would leave readable must not be
  TempDir base;
  const std::string dir = base.path() + "/segments";
  auto load = start_load(dir, base.path() + "/truth");
  EXPECT_EQ(file_mode(dir).bits, 0700u);
  const std::string segment = only_segment(dir);
  ASSERT_FALSE(segment.empty());
  EXPECT_EQ(file_mode(segment).bits, 0600u);
  EXPECT_EQ(read_json_file(base.path() + "/truth.1.json").at("setup_message"), "");

  const std::string recording = base.path() + "/run.ttmem";
  RunResult rec = run({TTMEM_CLI, "--dir", dir, "record", "-o", recording, "--duration", "1"});
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  EXPECT_EQ(file_mode(recording).bits, 0600u);

  load->kill(SIGKILL);
  load->wait();
  json leaks = ttmem_json(dir, {"leaks", "--json"});
  ASSERT_FALSE(leaks.at("leaks").empty());
  EXPECT_EQ(file_mode(dir + "/leaks").bits, 0700u);
  for (const auto& e : fs::directory_iterator(dir + "/leaks")) {
    EXPECT_EQ(file_mode(e.path().string()).bits, 0600u) << e.path();
  }
}

TEST(Access, GroupModeLetsTheGroupReadSegmentsAndLeaks) {
  std::optional<gid_t> group = another_group();
  if (!group) GTEST_SKIP() << "this user has no group besides its primary one to share with";
  TempDir base;
  ::chmod(base.path().c_str(), 0711);  // others may pass through to the segment directory
  const std::string dir = base.path() + "/segments";
  auto load = start_load(dir, base.path() + "/truth", {{"TTMEM_GROUP", std::to_string(*group)}});
  EXPECT_EQ(read_json_file(base.path() + "/truth.1.json").at("setup_message"), "");
  // Set-gid, so every file created inside gets the group; group may list and open, not write.
  FileMode d = file_mode(dir);
  EXPECT_EQ(d.bits, 02750u);
  EXPECT_EQ(d.gid, *group);
  const std::string segment = only_segment(dir);
  ASSERT_FALSE(segment.empty());
  FileMode f = file_mode(segment);
  EXPECT_EQ(f.bits, 0640u);
  EXPECT_EQ(f.gid, *group);

  // A member of the group who is another user reads the segment; it cannot inspect the
  // process's descriptors, so only the file's owner is checked. Without the group: nothing.
  if (::geteuid() == 0 && ::access("/usr/bin/setpriv", X_OK) == 0) {
    auto as_nobody = [&](const std::string& groups) {
      return run({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", groups, TTMEM_CLI, "--dir",
                  dir, "status", "--json"});
    };
    RunResult member = as_nobody("--groups=" + std::to_string(*group));
    ASSERT_EQ(member.exit_code, 0) << member.err;
    json status = json::parse(member.out);
    ASSERT_EQ(status.at("processes").size(), 1u) << member.out;
    EXPECT_EQ(status.at("processes")[0].at("pid"), load->pid());
    EXPECT_EQ(status.at("processes")[0].at("segment_check"), "owner");
    EXPECT_EQ(status.at("devices").size(), 2u);
    RunResult outsider = as_nobody("--clear-groups");
    if (*group != kNobody && outsider.exit_code == 0) {
      EXPECT_TRUE(json::parse(outsider.out).at("processes").empty()) << outsider.out;
    }
  }
  // Our own collector sees the process hold its segment.
  json status = ttmem_json(dir, {"status", "--json"});
  ASSERT_EQ(status.at("processes").size(), 1u);
  EXPECT_EQ(status.at("processes")[0].at("segment_check"), "held");

  load->kill(SIGKILL);
  load->wait();
  ASSERT_FALSE(ttmem_json(dir, {"leaks", "--json"}).at("leaks").empty());
  FileMode leak_dir = file_mode(dir + "/leaks");
  EXPECT_EQ(leak_dir.bits, 02750u);
  EXPECT_EQ(leak_dir.gid, *group);
  for (const auto& e : fs::directory_iterator(dir + "/leaks")) {
    FileMode leak = file_mode(e.path().string());
    EXPECT_EQ(leak.bits, 0640u) << e.path();
    EXPECT_EQ(leak.gid, *group) << e.path();
  }
}

TEST(Access, UnusableGroupLeavesTrackingOnAndOwnerOnly) {
  TempDir base;
  const std::string dir = base.path() + "/segments";
  auto load = start_load(dir, base.path() + "/truth", {{"TTMEM_GROUP", "no-such-ttmem-group"}});
  std::string why = read_json_file(base.path() + "/truth.1.json").at("setup_message");
  EXPECT_NE(why.find("no group 'no-such-ttmem-group'"), std::string::npos) << why;
  EXPECT_NE(why.find("owner-only"), std::string::npos) << why;
  EXPECT_EQ(file_mode(dir).bits, 0700u);
  const std::string segment = only_segment(dir);
  ASSERT_FALSE(segment.empty()) << "tracking must go on without the group";
  EXPECT_EQ(file_mode(segment).bits, 0600u);
  EXPECT_EQ(ttmem_json(dir, {"status", "--json"}).at("processes").size(), 1u);
}

TEST(Access, ClientRefusesDirectoriesItDoesNotOwnAndSymlinks) {
  TempDir base;
  const std::string mine = base.path() + "/mine";
  ASSERT_EQ(::mkdir(mine.c_str(), 0700), 0);
  const std::string link = base.path() + "/link";
  ASSERT_EQ(::symlink(mine.c_str(), link.c_str()), 0);
  auto through_link = start_load(link, base.path() + "/link-truth");
  std::string why = read_json_file(base.path() + "/link-truth.1.json").at("setup_message");
  EXPECT_NE(why.find("symlink"), std::string::npos) << why;
  EXPECT_NE(why.find("tracking is off"), std::string::npos) << why;
  EXPECT_TRUE(fs::is_empty(mine));

  if (::geteuid() != 0) return;  // only root can make a directory of another user here
  const std::string theirs = base.path() + "/theirs";
  ASSERT_EQ(::mkdir(theirs.c_str(), 0700), 0);
  ASSERT_EQ(::chown(theirs.c_str(), kNobody, gid_t(-1)), 0);
  auto in_theirs = start_load(theirs, base.path() + "/theirs-truth");
  why = read_json_file(base.path() + "/theirs-truth.1.json").at("setup_message");
  EXPECT_NE(why.find("belongs to uid 65534"), std::string::npos) << why;
  EXPECT_TRUE(fs::is_empty(theirs)) << "root wrote into another user's directory";
}

// The spoofing check: copies of a real segment, each named for a process that did not write it,
// are rejected with their reason, change no total, and are never reaped into leak records.
TEST(Access, ForgedSegmentsAreRejectedAndChangeNothing) {
  TempDir base;
  const std::string dir = base.path() + "/segments";
  auto load = start_load(dir, base.path() + "/truth");
  const std::string real = only_segment(dir);
  ASSERT_FALSE(real.empty());
  const json before = ttmem_json(dir, {"status", "--json"});
  ASSERT_EQ(before.at("processes").size(), 1u);
  EXPECT_EQ(before.at("processes")[0].at("segment_check"), "held");

  // A live process that never opened the copy.
  auto sleeper = start_sleeper();
  auto start_of = [](pid_t pid) {
    std::optional<uint64_t> t = process_start_time(pid);
    EXPECT_TRUE(t.has_value()) << pid;
    return t.value_or(0);
  };
  const std::string not_held = forge_segment(real, dir, sleeper->pid(), start_of(sleeper->pid()));
  // The test's own process: live, same user, holds no segment of that inode.
  const std::string own_pid = forge_segment(real, dir, ::getpid(), start_of(::getpid()));

  std::string wrong_owner, dead_foreign, dead_own;
  pid_t dead_pid = 0;
  if (::geteuid() == 0) {
    auto other = start_sleeper();
    wrong_owner = forge_segment(real, dir, other->pid(), start_of(other->pid()));
    ASSERT_EQ(::chown(wrong_owner.c_str(), kNobody, gid_t(-1)), 0);
    // Processes that are gone before any collector saw them.
    auto gone = start_sleeper();
    auto gone_too = start_sleeper();
    uint64_t gone_start = start_of(gone->pid()), gone_too_start = start_of(gone_too->pid());
    gone->kill(SIGKILL);
    gone->wait();
    gone_too->kill(SIGKILL);
    gone_too->wait();
    dead_foreign = forge_segment(real, dir, gone->pid(), gone_start);
    ASSERT_EQ(::chown(dead_foreign.c_str(), kNobody, gid_t(-1)), 0);
    dead_own = forge_segment(real, dir, gone_too->pid(), gone_too_start);
    dead_pid = gone_too->pid();
    json status = ttmem_json(dir, {"status", "--json"});
    const json* p = find_problem(status, wrong_owner);
    ASSERT_NE(p, nullptr) << status.at("problems");
    EXPECT_EQ(p->at("rejected"), "wrong_owner");
    EXPECT_NE(p->at("error").get<std::string>().find("belongs to uid 65534"), std::string::npos);
    p = find_problem(status, dead_foreign);
    ASSERT_NE(p, nullptr) << status.at("problems");
    EXPECT_EQ(p->at("rejected"), "unverifiable");
  }

  json after = ttmem_json(dir, {"status", "--json"});
  for (const std::string& path : {not_held, own_pid}) {
    const json* p = find_problem(after, path);
    ASSERT_NE(p, nullptr) << path << " was not reported: " << after.at("problems");
    EXPECT_EQ(p->at("rejected"), "not_held") << path;
    EXPECT_NE(p->at("error").get<std::string>().find("does not hold this segment open"),
              std::string::npos);
  }
  // Only the real process is in the model, and every figure is what it was.
  ASSERT_EQ(after.at("processes").size(), 1u);
  EXPECT_EQ(after.at("processes")[0].at("pid"), load->pid());
  EXPECT_EQ(after.at("devices"), before.at("devices"));

  json leaks = ttmem_json(dir, {"leaks", "--json"});
  for (const auto& l : leaks.at("leaks")) {
    // A segment of this user whose process ended unseen is still reported, as a late
    // collector must; a foreign one never is.
    EXPECT_EQ(l.at("pid"), dead_pid) << l;
  }
  if (!dead_own.empty()) {
    EXPECT_FALSE(leaks.at("leaks").empty()) << "own segment of an ended process was not reaped";
    EXPECT_FALSE(fs::exists(dead_own));
    EXPECT_TRUE(fs::exists(dead_foreign)) << "a rejected segment must be left alone";
  }
  EXPECT_TRUE(fs::exists(real));
}

// A copy named for a PID that a live process holds, but with another start time, names a
// process that ended before that one started: it can only be believed if it could have been
// written then. Before, such copies were reaped into leak records listed under the live,
// unrelated process's pid.
TEST(Access, CopiesNamingALivePidWithAnotherStartTimeAreImpossibleAndLeakNothing) {
  TempDir base;
  const std::string dir = base.path() + "/segments";
  auto load = start_load(dir, base.path() + "/truth");
  const std::string real = only_segment(dir);
  ASSERT_FALSE(real.empty());
  auto sleeper = start_sleeper();
  const uint64_t started = process_start_time(sleeper->pid()).value_or(0);
  ASSERT_GT(started, 1u);
  // Copies made well after it started (start times are in 10 ms ticks).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Started after the live holder: no such process can have had its pid.
  const std::string later = forge_segment(real, dir, sleeper->pid(), started + 1);
  // Started before it, but the file was made (copied) after the holder started.
  const std::string copied = forge_segment(real, dir, sleeper->pid(), started - 1);

  json status = ttmem_json(dir, {"status", "--json"});
  for (const std::string& path : {later, copied}) {
    const json* p = find_problem(status, path);
    ASSERT_NE(p, nullptr) << path << " was not reported: " << status.at("problems");
    EXPECT_EQ(p->at("rejected"), "impossible") << path;
    EXPECT_NE(p->at("error").get<std::string>().find("has belonged to another process"),
              std::string::npos)
        << p->at("error");
    EXPECT_TRUE(fs::exists(path)) << "a rejected segment must be left alone";
  }
  ASSERT_EQ(status.at("processes").size(), 1u);
  EXPECT_EQ(status.at("processes")[0].at("pid"), load->pid());
  EXPECT_TRUE(ttmem_json(dir, {"leaks", "--json"}).at("leaks").empty());
}

}  // namespace
}  // namespace ttmem::test
