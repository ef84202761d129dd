// ttmemd stopped with SIGTERM (what systemd sends) while legacy clients keep it busy and some of
// them have just died: it exits 0, removes its socket, and every dead client's buffers are in a
// leak file, including those of clients whose death the daemon learnt of only while stopping.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "daemon_harness.h"
#include "legacy_client.h"

namespace ttmem::test::fault {
namespace {

using T = lg::MessageType;
constexpr uint8_t kDram = 0;

TEST(LegacySigterm, ExitsCleanlyRemovesTheSocketAndLosesNoLeakRecord) {
  TempDir dir;
  std::string sock = dir.path() + "/alloc.sock";
  Ttmemd d(dir.path(), {"--legacy-socket", sock});
  ASSERT_FALSE(d.url().empty());
  constexpr size_t kForms[] = {72, 112, 144};
  constexpr int kHolders = 9, kBuffersEach = 40;

  // Load: clients streaming allocations while the daemon is stopped.
  std::vector<std::unique_ptr<ScriptClient>> busy;
  for (int i = 0; i < 3; ++i) {
    busy.push_back(std::make_unique<ScriptClient>(sock));
    int c = busy.back()->connect(kForms[i]);
    busy.back()->child().write_line("many " + std::to_string(c) + " " + std::to_string(i) +
                                    " 200000 64 0 65536");
  }
  // Clients holding buffers, to be killed.
  std::vector<std::unique_ptr<ScriptClient>> holders;
  for (int i = 0; i < kHolders; ++i) {
    holders.push_back(std::make_unique<ScriptClient>(sock));
    ScriptClient& h = *holders.back();
    int c = h.connect(kForms[i % 3]);
    EXPECT_EQ(h.say("many " + std::to_string(c) + " " + std::to_string(3 + i % 4) + " " +
                    std::to_string(kBuffersEach) + " 4096 0 4096"),
              "ok");
    h.query(c, 0);  // every ALLOC has been read
  }
  // Kill the holders, then stop the daemon at once: some deaths reach it only while it stops.
  for (auto& h : holders) h->child().kill(SIGKILL);
  for (auto& h : holders) h->child().wait();
  d.child().kill(SIGTERM);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(d.child().wait(), 0);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("ttmemd stopped %.3f s after SIGTERM\n", seconds);
  EXPECT_LT(seconds, 10.0);
  struct stat st;
  EXPECT_NE(::lstat(sock.c_str(), &st), 0) << "the socket file was left behind";

  // Every killed holder has its own leak file with all its buffers.
  std::map<pid_t, size_t> records;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() + "/leaks", ec)) {
    if (e.path().filename().string().find("-legacy.leaks.json") == std::string::npos) continue;
    std::ifstream in(e.path());
    std::string header;
    std::getline(in, header);
    auto h = nlohmann::json::parse(header);
    records[h["pid"].get<pid_t>()] += h["count"].get<size_t>();
  }
  for (auto& h : holders) {
    EXPECT_EQ(records[h->child().pid()], size_t(kBuffersEach)) << "pid " << h->child().pid();
  }
  // The busy clients were alive when the daemon stopped: their buffers are not leaks.
  for (auto& b : busy) EXPECT_EQ(records.count(b->child().pid()), 0u);
}

}  // namespace
}  // namespace ttmem::test::fault
