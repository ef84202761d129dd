// ttmemd's share of access control: who may connect to the legacy socket, and rejected
// segments in /metrics (docs/security.md).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access_harness.h"
#include "common/proc.h"
#include "daemon_harness.h"

namespace ttmem::test {

using common::process_start_time;

namespace {

TEST(DaemonAccess, LegacySocketIsOwnerOnlyUnlessAGroupIsGiven) {
  ::umask(0);  // even with no umask at all the socket is born owner-only
  TempDir dir;
  const std::string socket = dir.path() + "/legacy.sock";
  {
    Ttmemd d(dir.path(), {"--legacy-socket", socket});
    ASSERT_FALSE(d.url().empty());
    EXPECT_EQ(file_mode(socket).bits, 0600u);
  }
  std::optional<gid_t> group = another_group();
  if (group) {
    Ttmemd d(dir.path(),
             {"--legacy-socket", socket, "--legacy-socket-group", std::to_string(*group)});
    ASSERT_FALSE(d.url().empty());
    FileMode m = file_mode(socket);
    EXPECT_EQ(m.bits, 0660u);
    EXPECT_EQ(m.gid, *group);
  }
  ::umask(022);
  RunResult bad = run({TTMEMD, "--dir", dir.path(), "--listen", "127.0.0.1:0", "--legacy-socket",
                       socket, "--legacy-socket-group", "no-such-ttmem-group"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("no group 'no-such-ttmem-group'"), std::string::npos) << bad.err;
  RunResult without_socket =
      run({TTMEMD, "--dir", dir.path(), "--legacy-socket-group", std::to_string(::getegid())});
  EXPECT_EQ(without_socket.exit_code, 1);
  EXPECT_NE(without_socket.err.find("needs --legacy"), std::string::npos) << without_socket.err;
}

TEST(DaemonAccess, RejectedSegmentsAreCountedByReason) {
  TempDir base;
  const std::string dir = base.path() + "/segments";
  auto load = start_load(dir, base.path() + "/truth");
  const std::string real = only_segment(dir);
  ASSERT_FALSE(real.empty());
  forge_segment(real, dir, ::getpid(), process_start_time(::getpid()).value_or(0));
  Ttmemd d(dir);
  std::string why = eventually([&] {
    HttpReply r = http_get(d.url(), "/metrics");
    for (const char* line :
         {"ttmem_segments_rejected{reason=\"not_held\"} 1\n",
          "ttmem_segments_rejected{reason=\"wrong_owner\"} 0\n",
          "ttmem_segments_rejected{reason=\"unverifiable\"} 0\n", "ttmem_tracked_processes 1\n"}) {
      if (r.body.find(line) == std::string::npos) return std::string("no line ") + line + r.body;
    }
    return std::string();
  });
  EXPECT_EQ(why, "");
}

}  // namespace
}  // namespace ttmem::test
