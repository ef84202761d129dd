// ttmemd killed with SIGKILL under load: tracked processes never notice (their calls never wait
// for a reader), and a restarted ttmemd serves the exact state from the segments, including the
// leaks of a process that died while no daemon was running. Legacy socket clients see the socket
// close instead of hanging, and the restarted daemon takes over the stale socket path.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "collector/json.h"
#include "daemon_harness.h"
#include "fault_harness.h"
#include "legacy_client.h"

namespace ttmem::test::fault {

using collector::leak_from_json;
using collector::LeakRecord;

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

struct Latency {
  uint64_t calls = 0;
  uint64_t median_ns = 0;
  uint64_t over_1ms = 0;
};

// Per-call latency of every thread of a client in one window.
Latency latency(const AckTable& t, uint32_t window) {
  std::array<uint64_t, kBuckets> hist{};
  for (uint32_t th = 0; th < t.threads; ++th) {
    for (uint32_t b = 0; b < kBuckets; ++b) hist[b] += t.thread[th].latency[window][b].load();
  }
  Latency l;
  for (uint32_t b = 0; b < kBuckets; ++b) {
    l.calls += hist[b];
    if (bucket_floor_ns(b) >= (1u << 20)) l.over_1ms += hist[b];
  }
  uint64_t seen = 0;
  for (uint32_t b = 0; b < kBuckets; ++b) {
    seen += hist[b];
    if (2 * seen >= l.calls) {
      l.median_ns = bucket_floor_ns(b);
      break;
    }
  }
  return l;
}

void kill_daemon(std::unique_ptr<Ttmemd>& d) {
  d->child().kill(SIGKILL);
  EXPECT_EQ(d->child().wait(), 128 + SIGKILL);
  d.reset();
}

TEST(DaemonKill, ClientsNeverWaitForTheDaemonAndARestartedDaemonIsExact) {
  const uint64_t seed = test_seed();
  TempDir dir, scratch;
  auto daemon = std::make_unique<Ttmemd>(dir.path());
  ASSERT_FALSE(daemon->url().empty());
  AckFile survivor(scratch.path() + "/survivor", 2, 4), victim(scratch.path() + "/victim", 1, 4);
  auto survivor_process = start_churn(dir.path(), survivor, seed);
  auto victim_process = start_churn(dir.path(), victim, seed + 1);

  // Window 0: the clients' own latency while a healthy daemon reads them.
  sleep_ms(1000);
  ASSERT_GT(survivor.ops(), 1000u) << "the client did not get going";
  survivor.table().window = 1;

  // Window 1: the daemon dies, a client dies while no daemon runs, a new daemon starts and maps
  // and reads every segment.
  kill_daemon(daemon);
  sleep_ms(300);
  victim_process->kill(SIGKILL);
  victim_process->wait();
  sleep_ms(300);
  daemon = std::make_unique<Ttmemd>(dir.path());
  ASSERT_FALSE(daemon->url().empty());
  sleep_ms(700);
  survivor.table().window = 2;

  Latency before = latency(survivor.table(), 0), during = latency(survivor.table(), 1);
  std::printf(
      "calls: %llu before (median %llu ns, %llu over 1 ms), %llu during the crash and "
      "restart (median %llu ns, %llu over 1 ms)\n",
      (unsigned long long)before.calls, (unsigned long long)before.median_ns,
      (unsigned long long)before.over_1ms, (unsigned long long)during.calls,
      (unsigned long long)during.median_ns, (unsigned long long)during.over_1ms);
  ASSERT_GT(during.calls, 1000u);
  // A call never waits for a reader, so the typical call costs the same with the daemon alive,
  // dead or starting up, and slow calls are no more common. The bounds are generous: a loaded
  // machine preempts some calls in any window, but a call that waited for the daemon would
  // show in every call of the window, and waiting costs microseconds (a system call at least),
  // far above this bound; a machine busy with other builds moves the median by tens of ns.
  EXPECT_LE(during.median_ns, 3 * before.median_ns + 500);
  const double slow_before = double(before.over_1ms) / double(before.calls);
  const double slow_during = double(during.over_1ms) / double(during.calls);
  EXPECT_LE(slow_during, std::max(0.001, 3 * slow_before))
      << "calls over 1 ms: " << slow_during * 100 << "% during, " << slow_before * 100
      << "% before";

  // The restarted daemon's totals are the survivor's acknowledged state, exactly.
  ASSERT_TRUE(survivor.pause());
  json truth = truth_json(survivor.table());
  EXPECT_EQ(
      eventually([&] { return status_differs(get_json(daemon->url(), "/api/v1/status"), truth); }),
      "");
  // And the process that died while no daemon ran became exactly its acknowledged leaks.
  std::vector<LeakRecord> leaks;
  EXPECT_EQ(eventually([&] {
              json j = get_json(daemon->url(), "/api/v1/leaks");
              leaks.clear();
              for (const auto& l : j.at("leaks")) leaks.push_back(leak_from_json(l));
              return leaks.empty() ? "no leak records yet" : "";
            }),
            "");
  expect_leaks_are_acknowledged(leaks, victim_process->pid(), victim.table());
  for (const LeakRecord& l : leaks) EXPECT_EQ(l.pid, victim_process->pid());
}

TEST(DaemonKill, LegacyClientsSeeTheSocketCloseAndARestartTakesOverTheStaleSocket) {
  TempDir dir;
  const std::string sock = dir.path() + "/alloc.sock";
  auto daemon =
      std::make_unique<Ttmemd>(dir.path(), std::vector<std::string>{"--legacy-socket", sock});
  ASSERT_FALSE(daemon->url().empty());
  constexpr uint8_t kDram = 0;
  LegacyClient before(sock, 72);
  ASSERT_TRUE(before.connected());
  before.send(LegacyClient::message(lg::MessageType::Alloc, 0, 4096, kDram, 0x1000));
  EXPECT_EQ(before.query(0).dram, 4096u);

  kill_daemon(daemon);
  // The prototype's client writes and then waits for replies; with the server gone, a write fails
  // at once (EPIPE) and a read sees end of file: nothing hangs.
  auto t0 = Clock::now();
  EXPECT_FALSE(
      before.try_send(LegacyClient::message(lg::MessageType::Alloc, 0, 64, kDram, 0x2000)));
  EXPECT_TRUE(before.closed_by_peer());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  EXPECT_TRUE(std::filesystem::exists(sock)) << "a killed daemon cannot remove its socket";

  // The restarted daemon finds nobody listening on the stale socket, replaces it, and serves.
  daemon = std::make_unique<Ttmemd>(dir.path(), std::vector<std::string>{"--legacy-socket", sock});
  ASSERT_FALSE(daemon->url().empty());
  LegacyClient after(sock, 72);
  ASSERT_TRUE(after.connected());
  after.send(LegacyClient::message(lg::MessageType::Alloc, 0, 8192, kDram, 0x3000));
  // Legacy clients kept their state only in the daemon's memory: what the dead daemon knew is
  // gone, what the new one was told is exact.
  EXPECT_EQ(after.query(0).dram, 8192u);
}

}  // namespace
}  // namespace ttmem::test::fault
