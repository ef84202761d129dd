// Legacy ingest: clients of tt-metal's allocation-server prototype protocol, written here in all
// three message forms (72, 112 and 144 bytes), talk to the real ttmemd over its Unix socket, next
// to a real tracked process; replies, the HTTP model, leak files and the monitor must all agree.
// ScriptClient runs each legacy client as a process of its own, so ownership, deaths and
// SIGPIPE are real.
#include "protocol/legacy.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "daemon_harness.h"
#include "legacy_client.h"

namespace ttmem::test {
namespace {

using nlohmann::json;
using T = lg::MessageType;
namespace fs = std::filesystem;

constexpr uint8_t kDram = 0, kL1 = 1, kSystemMemory = 2, kTrace = 4;
constexpr size_t kForms[] = {72, 112, 144};

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// A device's kind figure in a status document (0 when the device is not there).
uint64_t device_figure(const json& status, uint32_t logical_id, const std::string& kind,
                       const std::string& field = "requested_bytes") {
  for (const auto& d : status["devices"]) {
    for (const auto& id : d["logical_ids"]) {
      if (id == logical_id) return d["kinds"][kind][field].get<uint64_t>();
    }
  }
  return 0;
}

// The legacy report's entry for `pid`, or null.
json legacy_process(const std::string& url, pid_t pid) {
  const json report = get_json(url, "/api/v1/legacy");  // kept: the loop walks into it
  for (const auto& p : report["processes"]) {
    if (p["pid"] == pid) return p;
  }
  return nullptr;
}

// "" once the legacy report shows `field` == `want` for `pid`, else what it shows.
std::string legacy_counter_is(const std::string& url, pid_t pid, const std::string& field,
                              uint64_t want) {
  json p = legacy_process(url, pid);
  if (p.is_null()) return "no process " + std::to_string(pid);
  return p[field] == want ? "" : field + " is " + p[field].dump();
}

// The leak records the daemon serves, per pid.
std::map<pid_t, size_t> leaks_per_pid(const std::string& url) {
  std::map<pid_t, size_t> out;
  const json leaks = get_json(url, "/api/v1/leaks");  // kept: the loop walks into it
  for (const auto& l : leaks["leaks"]) out[l["pid"].get<pid_t>()] += 1;
  return out;
}

std::vector<std::string> legacy_leak_files(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir + "/leaks", ec)) {
    std::string name = e.path().filename().string();
    if (name.find("-legacy.leaks.json") != std::string::npos) files.push_back(name);
  }
  return files;
}

// A ttmemd serving a legacy socket, in a fresh directory.
class LegacyIngest : public ::testing::Test {
 protected:
  TempDir dir;
  std::string sock = dir.path() + "/alloc.sock";
  Ttmemd d{dir.path(), {"--legacy-socket", sock}};
};

// The same, for tests run once per message form: GetParam() is 72, 112 or 144.
class LegacyIngestForm : public LegacyIngest, public ::testing::WithParamInterface<size_t> {};

TEST_F(LegacyIngest, ClientsOfEveryFormJoinTheModelOfATrackedProcess) {
  ASSERT_FALSE(d.url().empty());
  // A tracked process (segment) on devices 0 and 1, with ground truth.
  Child load({TTMEM_TESTLOAD, "--devices", "2", "--threads", "1", "--ops", "300", "--truth",
              dir.path() + "/truth"},
             {{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(load.expect_line("done"));
  json truth = read_json_file(dir.path() + "/truth.1.json");
  uint64_t seg_dram0 = truth["devices"]["0"]["DRAM"]["requested"].get<uint64_t>();
  uint64_t seg_l1_0 = truth["devices"]["0"]["L1"]["requested"].get<uint64_t>();
  uint64_t seg_trace1 = truth["devices"]["1"]["TRACE"]["requested"].get<uint64_t>();
  sleep_ms(300);  // one refresh

  // A monitor-style client: a lone QUERY, so the form is known only from its length.
  LegacyClient monitor(sock, 72);
  ASSERT_TRUE(monitor.connected());
  lg::Message first = monitor.query(0);
  EXPECT_EQ(first.head.type, uint8_t(T::Response));
  EXPECT_EQ(first.dram, seg_dram0);

  for (size_t form : kForms) {
    SCOPED_TRACE(form);
    ScriptClient c(sock);
    int conn = c.connect(form);
    c.send(conn, T::Alloc, 0, 1000, kDram, 0x1000);
    c.send(conn, T::Alloc, 0, 200, kL1, 0x2000);
    c.send(conn, T::Alloc, 1, 5000, kTrace, 0x9000);
    auto q = c.query(conn, 0);
    EXPECT_EQ(q[0], seg_dram0 + 1000);
    EXPECT_EQ(q[1], seg_l1_0 + 200);
    EXPECT_EQ(c.query(conn, 1)[3], seg_trace1 + 5000);
    c.send(conn, T::Free, 0, 0, kDram, 0x1000);
    c.send(conn, T::Free, 0, 0, kDram, 0xdead);  // unknown: counted, nothing changes
    EXPECT_EQ(c.query(conn, 0)[0], seg_dram0);
    // The HTTP model shows the same process with its buffers and its unknown free.
    pid_t pid = c.child().pid();
    EXPECT_EQ(
        eventually([&]() -> std::string {
          json status = get_json(d.url(), "/api/v1/status");
          if (device_figure(status, 1, "TRACE") != seg_trace1 + 5000) return "TRACE";
          for (const auto& p : status["processes"]) {
            if (p["pid"] != pid) continue;
            if (p["segment"].get<std::string>() != "legacy:" + sock + "#" + std::to_string(pid)) {
              return "segment " + p["segment"].dump();
            }
            if (p["unknown_frees"] != 1) return "unknown_frees " + p["unknown_frees"].dump();
            if (p["requested_bytes"]["L1"] != 200) return "L1";
            return "";
          }
          return "process missing";
        }),
        "");
    json buffers =
        get_json(d.url(), "/api/v1/buffers?device=1&kind=TRACE&pid=" + std::to_string(pid));
    EXPECT_EQ(buffers["total"], 1);
    EXPECT_EQ(c.say("exit"), "(no answer)");
  }
}

TEST_F(LegacyIngest, GarbageIsRejectedAndNeverCrashes) {
  // Not a message: wrong type byte.
  {
    LegacyClient g(sock, 72);
    g.send_raw(std::vector<uint8_t>(200, 0xff));
    EXPECT_TRUE(g.closed_by_peer());
  }
  // A valid first message, then bytes out of step.
  {
    LegacyClient g(sock, 72);
    auto b = g.bytes(LegacyClient::message(T::Alloc, 0, 10, 0, 0x10));
    b.resize(72 * 3, 0x42);
    g.send_raw(b);
    EXPECT_TRUE(g.closed_by_peer());
  }
  // Random streams of every length, some starting with a plausible head.
  std::mt19937 rng(1);
  for (int i = 0; i < 40; ++i) {
    LegacyClient g(sock, 72);
    std::vector<uint8_t> b(rng() % 600);
    for (auto& x : b) x = uint8_t(rng());
    if (b.size() >= 4 && i % 2 == 0) b[0] = uint8_t(1 + rng() % 12), b[1] = b[2] = b[3] = 0;
    if (!b.empty()) g.send_raw(b);
  }
  sleep_ms(300);  // one publication
  HttpReply m = http_get(d.url(), "/metrics");
  EXPECT_NE(m.body.find("ttmem_legacy_rejected_bytes_total "), std::string::npos);
  EXPECT_EQ(m.body.find("ttmem_legacy_rejected_bytes_total 0\n"), std::string::npos);
  // Still serving both protocols.
  LegacyClient ok(sock, 144);
  EXPECT_EQ(ok.query(0).head.type, uint8_t(T::Response));
  EXPECT_EQ(http_get(d.url(), "/api/v1/status").status, 200);

  // A daemon fixed to one form takes its messages without detection.
  TempDir dir2;
  std::string sock2 = dir2.path() + "/fixed.sock";
  Ttmemd fixed(dir2.path(), {"--legacy-socket", sock2, "--legacy-message-size", "144"});
  LegacyClient c(sock2, 144);
  c.send(LegacyClient::message(T::Alloc, 3, 4096, kL1, 0x40));
  EXPECT_EQ(c.query(3).l1, 4096u);
}

// Bug 1: every process's leak records survive, however many connections it had and however many
// processes die at once.
TEST_F(LegacyIngest, LeakRecordsAreKeptPerProcessAndNeverReplaced) {
  {
    // One process, three connections (one per form), two of them closed before it dies.
    ScriptClient c(sock);
    int conns[3];
    for (int i = 0; i < 3; ++i) {
      conns[i] = c.connect(kForms[i]);
      c.send(conns[i], T::Alloc, 0, 4096 * (i + 1), kDram, 0x10000 * (i + 1));
    }
    c.query(conns[2], 0);  // every earlier message has been read
    EXPECT_EQ(c.say("close 0"), "ok");
    EXPECT_EQ(c.say("close 1"), "ok");
    sleep_ms(200);
    pid_t pid = c.child().pid();
    c.child().kill(SIGKILL);
    c.child().wait();
    EXPECT_EQ(eventually([&]() -> std::string {
                auto leaks = leaks_per_pid(d.url());
                return leaks[pid] == 3 ? "" : "leaks of the process: " + std::to_string(leaks[pid]);
              }),
              "");
  }
  // Ten processes killed at once: ten files, each with its own records.
  std::vector<std::unique_ptr<ScriptClient>> clients;
  std::set<pid_t> pids;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(std::make_unique<ScriptClient>(sock));
    ScriptClient& c = *clients.back();
    int conn = c.connect(kForms[i % 3]);
    for (int b = 0; b <= i % 3; ++b) c.send(conn, T::Alloc, i % 4, 256, kL1, 0x100 * (b + 1));
    c.query(conn, 0);
    pids.insert(c.child().pid());
  }
  for (auto& c : clients) c->child().kill(SIGKILL);
  for (auto& c : clients) c->child().wait();
  EXPECT_EQ(eventually([&]() -> std::string {
              auto leaks = leaks_per_pid(d.url());
              int i = 0;
              for (auto& c : clients) {
                size_t want = size_t(i++ % 3) + 1;
                if (leaks[c->child().pid()] != want) {
                  return "pid " + std::to_string(c->child().pid()) + " has " +
                         std::to_string(leaks[c->child().pid()]) + " records, not " +
                         std::to_string(want);
                }
              }
              return "";
            }),
            "");
  EXPECT_EQ(legacy_leak_files(dir.path()).size(), 11u);
}

// Bug 2: sizes that cannot be true are refused, and one connection's bad message never changes
// another's totals.
TEST_P(LegacyIngestForm, ImpossibleSizesAreRefusedAndMoveNoOtherClientsTotals) {
  ScriptClient good(sock), bad(sock);
  int g = good.connect(72);
  good.send(g, T::Alloc, 0, 4096, kDram, 0x1000);
  EXPECT_EQ(good.query(g, 0)[0], 4096u);
  int b = bad.connect(GetParam());
  bad.send(b, T::Alloc, 0, ~0ull, kDram, 0x2000);       // 2^64 - 1
  bad.send(b, T::Alloc, 0, 1ull << 63, kDram, 0x3000);  // two of 2^63 would wrap to 0
  bad.send(b, T::Alloc, 0, 1ull << 63, kDram, 0x4000);
  bad.send(b, T::Alloc, 0, uint64_t(-4096), kDram, 0x5000);     // -4096
  bad.send(b, T::Alloc, 0, 0, kDram, 0x6000);                   // 0
  bad.send(b, T::Alloc, 0, (100ull << 30) + 1, kDram, 0x7000);  // beyond 100 GiB
  bad.send(b, T::CbFree, 0, 1ull << 40);                        // a CB_FREE of nothing
  EXPECT_EQ(bad.query(b, 0)[0], 4096u);
  EXPECT_EQ(good.query(g, 0)[0], 4096u);
  EXPECT_EQ(
      eventually([&]() -> std::string {
        json status = get_json(d.url(), "/api/v1/status");
        if (device_figure(status, 0, "DRAM") != 4096) return "DRAM requested";
        if (device_figure(status, 0, "DRAM", "buffers") != 1) return "DRAM buffers";
        std::string metrics = http_get(d.url(), "/metrics").body;
        if (metrics.find("ttmem_device_allocated_bytes{device=\"0\",chip_id=\"0xee00000000000000\","
                         "kind=\"DRAM\",source=\"ttmem\"} 4096\n") == std::string::npos) {
          return "metrics: " + metrics.substr(0, 2000);
        }
        return "";
      }),
      "");
  pid_t bad_pid = bad.child().pid();
  EXPECT_EQ(eventually([&] { return legacy_counter_is(d.url(), bad_pid, "invalid_calls", 6); }),
            "");
  EXPECT_EQ(legacy_counter_is(d.url(), bad_pid, "unknown_frees", 1), "");
}

// Bug 4: many connections are served; none is closed unread, so no client dies of SIGPIPE.
TEST_F(LegacyIngest, HundredsOfConnectionsAreServedNotClosed) {
  std::vector<std::unique_ptr<LegacyClient>> open;
  for (int i = 0; i < 300; ++i) {
    open.push_back(std::make_unique<LegacyClient>(sock, 72));
    ASSERT_TRUE(open.back()->connected());
  }
  EXPECT_EQ(open.back()->query(0).head.type, uint8_t(T::Response));  // the 300th is served
  for (size_t form : kForms) {
    ScriptClient late(sock);  // writes without MSG_NOSIGNAL, as the prototype's clients
    int c = late.connect(form);
    late.send(c, T::Alloc, 2, 3u << 20, kDram, 0x1000);
    EXPECT_EQ(late.query(c, 2)[0], 3u << 20);
    EXPECT_EQ(late.say("exit"), "(no answer)");
    EXPECT_EQ(late.child().wait(), 0);  // not 128 + SIGPIPE
  }
  sleep_ms(300);
  EXPECT_NE(http_get(d.url(), "/metrics").body.find("ttmem_legacy_connections 30"),
            std::string::npos);
}

// Bug 5: a large live set costs little memory, QUERY stays O(1), and a daemon-wide bound
// refuses with a clear count instead of growing.
TEST_F(LegacyIngest, ALargeLiveSetIsCheapAndQueriesStayFast) {
  sleep_ms(300);
  const uint64_t rss_before = rss_bytes(d.child().pid());
  constexpr uint64_t kBuffers = 300'000;
  ScriptClient big(sock);
  int c = big.connect(72);
  EXPECT_EQ(
      big.say("many " + std::to_string(c) + " 0 " + std::to_string(kBuffers) + " 4096 0 4096"),
      "ok");
  EXPECT_EQ(big.query(c, 0)[0], kBuffers * 4096);  // every ALLOC read before the reply
  // QUERY from another client while the live set is large: answered from running totals.
  ScriptClient asker(sock);
  int a = asker.connect(144);
  std::vector<double> ms;
  for (int i = 0; i < 100; ++i) {
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(asker.query(a, 0)[0], kBuffers * 4096);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("QUERY round trip with %llu live buffers: median %.3f ms, max %.3f ms\n",
              static_cast<unsigned long long>(kBuffers), ms[ms.size() / 2], ms.back());
  EXPECT_LT(ms[ms.size() / 2], 5.0);
  EXPECT_EQ(eventually([&]() -> std::string {
              json status = get_json(d.url(), "/api/v1/status");
              return device_figure(status, 0, "DRAM", "buffers") == kBuffers ? "" : "buffers";
            }),
            "");
  json report = get_json(d.url(), "/api/v1/legacy");
  EXPECT_EQ(report["records"], kBuffers);
  EXPECT_EQ(report["buffers_listed"], false);
  if (kResidentMemoryIsMeaningful) {
    const uint64_t per_buffer = (rss_bytes(d.child().pid()) - rss_before) / kBuffers;
    std::printf("ttmemd resident memory per legacy buffer: %llu B\n",
                static_cast<unsigned long long>(per_buffer));
    EXPECT_LE(per_buffer, 128u);
  }

  // The bound: allocations beyond it are refused and counted, the live set stays at it.
  TempDir dir2;
  std::string sock2 = dir2.path() + "/bounded.sock";
  Ttmemd bounded(dir2.path(), {"--legacy-socket", sock2, "--legacy-max-buffers", "1000"});
  ScriptClient over(sock2);
  int o = over.connect(112);
  EXPECT_EQ(over.say("many " + std::to_string(o) + " 1 1500 64 1 65536"), "ok");
  EXPECT_EQ(over.query(o, 1)[1], 1000u * 64);
  pid_t over_pid = over.child().pid();
  EXPECT_EQ(
      eventually([&] { return legacy_counter_is(bounded.url(), over_pid, "slab_overflow", 500); }),
      "");
}

// Bug 6: a file squatting on the socket path stops only the legacy listener, with a clear reason.
TEST_F(LegacyIngest, AFileAtTheSocketPathStopsOnlyThatListener) {
  const std::string squatted = dir.path() + "/squatted.sock";
  std::ofstream(squatted) << "not a socket";
  Ttmemd other(dir.path(), {"--legacy-socket", squatted});
  ASSERT_FALSE(other.url().empty());
  auto line = other.child().read_line(5000);
  ASSERT_TRUE(line);
  EXPECT_NE(line->find("legacy ingest off: " + squatted + " exists and is not a socket"),
            std::string::npos)
      << *line;
  EXPECT_EQ(http_get(other.url(), "/api/v1/status").status, 200);
  EXPECT_EQ(http_get(other.url(), "/api/v1/legacy").status, 404);
  struct stat st;
  ASSERT_EQ(::stat(squatted.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));  // never removed
}

// Item 7: ownership is per process: a FREE on another connection applies, and buffers stay
// while the process lives, whatever its connections do.
TEST_P(LegacyIngestForm, BuffersBelongToTheProcessNotTheConnection) {
  ScriptClient c(sock);
  int first = c.connect(GetParam()), second = c.connect(GetParam() == 72 ? 144 : 72);
  c.send(first, T::Alloc, 0, 1u << 20, kDram, 0x100000);
  c.send(first, T::Alloc, 0, 2u << 20, kDram, 0x200000);
  c.query(first, 0);
  c.send(second, T::Free, 0, 0, kDram, 0x100000);  // freed on another connection
  EXPECT_EQ(c.query(second, 0)[0], 2u << 20);
  EXPECT_EQ(c.say("close 0"), "ok");
  EXPECT_EQ(c.say("close 1"), "ok");
  sleep_ms(400);
  // No connection left, the process lives: its buffer stays, no leak yet.
  ScriptClient other(sock);
  int o = other.connect(112);
  EXPECT_EQ(other.query(o, 0)[0], 2u << 20);
  EXPECT_EQ(leaks_per_pid(d.url())[c.child().pid()], 0u);
  pid_t pid = c.child().pid();
  EXPECT_EQ(c.say("exit"), "(no answer)");
  c.child().wait();
  EXPECT_EQ(eventually([&]() -> std::string {
              return leaks_per_pid(d.url())[pid] == 1 ? "" : "no leak record";
            }),
            "");
  EXPECT_EQ(other.query(o, 0)[0], 0u);
}

// Item 8: the prototype server's counting rules.
TEST_P(LegacyIngestForm, CountsAsThePrototypeServerDid) {
  ScriptClient c(sock);
  // x speaks the 144-byte form, whose replies carry cb_allocated and kernel_allocated.
  int x = c.connect(144), y = c.connect(GetParam());
  // Duplicate ALLOC: reference-counted, the first size kept.
  // Each connection is queried after its reports: messages on different connections have no
  // order between them, and a connection's first message waits until its form is known.
  c.send(x, T::Alloc, 0, 1000, kDram, 0x40);
  EXPECT_EQ(c.query(x, 0)[0], 1000u);
  c.send(y, T::Alloc, 0, 9000, kDram, 0x40);
  EXPECT_EQ(c.query(y, 0)[0], 1000u);
  c.send(x, T::Free, 0, 0, kDram, 0x40);
  EXPECT_EQ(c.query(x, 0)[0], 1000u);  // one reference left
  c.send(x, T::Free, 0, 0, kDram, 0x40);
  EXPECT_EQ(c.query(x, 0)[0], 0u);
  // CB_ALLOC adds its size; CB_FREE subtracts the size it carries.
  c.send(x, T::CbAlloc, 0, 300, 0, 0x10);
  c.send(y, T::CbAlloc, 0, 200, 0, 0x20);
  c.query(y, 0);
  c.send(x, T::CbFree, 0, 100, 0, 0x30);
  EXPECT_EQ(c.query(x, 0)[4], 400u);
  // KERNEL_LOAD / UNLOAD: counted and returned in kernel_allocated.
  c.send(x, T::KernelLoad, 0, 4096, 0, 7);
  c.send(x, T::KernelLoad, 0, 8192, 0, 8);
  c.send(y, T::KernelUnload, 0, 4096, 0, 7);
  c.query(y, 0);
  EXPECT_EQ(c.query(x, 0)[5], 8192u);  // only the 144-byte form carries kernel_allocated
  // SYSTEM_MEMORY is answered in l1_small, as the prototype did.
  c.send(y, T::Alloc, 0, 64, kSystemMemory, 0x80);
  c.send(y, T::Alloc, 0, 32, 3, 0x90);  // L1_SMALL
  EXPECT_EQ(c.query(y, 0)[2], 96u);
  EXPECT_EQ(c.query(x, 0)[2], 96u);
  // The model keeps the kinds apart, and shows CB and kernel bytes for the legacy process.
  EXPECT_EQ(eventually([&]() -> std::string {
              json status = get_json(d.url(), "/api/v1/status");
              if (device_figure(status, 0, "CB") != 400) return "CB";
              if (device_figure(status, 0, "SYSTEM_MEMORY") != 64) return "SYSTEM_MEMORY";
              if (device_figure(status, 0, "L1_SMALL") != 32) return "L1_SMALL";
              return "";
            }),
            "");
  json p;
  EXPECT_EQ(eventually([&]() -> std::string {
              p = legacy_process(d.url(), c.child().pid());
              if (p.is_null()) return "process missing";
              if (p["devices"][0]["kernel_bytes"] != 8192) return "kernel_bytes";
              return "";
            }),
            "")
      << p.dump();
  EXPECT_EQ(p["devices"][0]["kernels"], 1);
  EXPECT_EQ(p["duplicate_allocs"], 1);
  const std::string metrics = http_get(d.url(), "/metrics").body;
  EXPECT_NE(metrics.find("ttmem_legacy_kernel_bytes{device=\"0\"} 8192\n"), std::string::npos);
}

// Item 9: dumps in the log and the API; DEVICE_INFO as the prototype's monitor expects it.
// Only the 112- and 144-byte forms carry device information.
class LegacyIngestInfoForm : public LegacyIngestForm {};

TEST_P(LegacyIngestInfoForm, DumpsAndDeviceInfo) {
  Child load({TTMEM_TESTLOAD, "--devices", "1", "--threads", "1", "--ops", "50", "--truth",
              dir.path() + "/truth"},
             {{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(load.expect_line("done"));
  sleep_ms(300);
  ScriptClient c(sock);
  int conn = c.connect(GetParam());
  c.send(conn, T::Alloc, 5, 3u << 20, kDram, 0xabc000);
  c.send(conn, T::KernelLoad, 5, 2048, 0, 42);
  c.send(conn, T::DumpRemaining, 0, 0);
  c.send(conn, T::DumpKernels, 0, 0);
  c.query(conn, 5);
  EXPECT_EQ(eventually([&]() -> std::string {
              json r = get_json(d.url(), "/api/v1/legacy");
              std::string remaining = r["remaining_dump"]["text"];
              std::string kernels = r["kernels_dump"]["text"];
              if (remaining.find("Device 5:") == std::string::npos ||
                  remaining.find("buffer 0xabc000: 3.00 MiB") == std::string::npos) {
                return "remaining: " + remaining;
              }
              if (kernels.find("kernel 42: 2.00 KiB") == std::string::npos) {
                return "kernels: " + kernels;
              }
              return "";
            }),
            "");
  // Device 5 is known only from legacy reports: "not available", so the monitor uses defaults.
  std::istringstream info5(c.say("info " + std::to_string(conn) + " 5"));
  std::string word;
  uint64_t f[8] = {};
  info5 >> word;
  for (auto& x : f) info5 >> x;
  EXPECT_EQ(word, "info");
  EXPECT_EQ(f[1], 0u);  // is_available
  EXPECT_EQ(f[6], 0u);  // total_dram
  // Device 0 was registered by a segment process: the prototype's figures, consistent.
  std::istringstream info0(c.say("info " + std::to_string(conn) + " 0"));
  info0 >> word;
  for (auto& x : f) info0 >> x;
  EXPECT_EQ(f[1], 1u);
  EXPECT_EQ(f[3], 12u);          // DRAM channels
  EXPECT_EQ(f[6], f[3] * f[4]);  // total_dram = channels × size per channel
  EXPECT_EQ(f[5], 1499136u);     // l1_size_per_core
  EXPECT_EQ(f[7] % f[5], 0u);    // total_l1 = l1 per core × cores
  EXPECT_EQ(f[7] / f[5], 64u);
  std::istringstream all(c.say("info " + std::to_string(conn) + " -1"));
  all >> word;
  for (auto& x : f) all >> x;
  EXPECT_EQ(f[0], 2u);  // device 0 (segment) and 5 (legacy)
}

// Item 10: the monitor under its old name, and `ttmem top`, show what ttmemd holds.
TEST_F(LegacyIngest, TheMonitorFindsTtmemdThroughTheSocket) {
  ScriptClient c(sock);
  int conn = c.connect(72);
  c.send(conn, T::Alloc, 0, 3u << 20, kDram, 0x1000);
  EXPECT_EQ(c.say("url " + std::to_string(conn)), "url " + d.url());
  c.query(conn, 0);
  sleep_ms(300);
  auto dram_shown = [&](const std::vector<std::string>& argv) -> std::string {
    RunResult r = run(argv, {{"TTMEM_DIR", ""}});
    if (r.exit_code != 0) return "exit " + std::to_string(r.exit_code) + ": " + r.err;
    json j = json::parse(r.out, nullptr, false);
    if (j.is_discarded()) return "not JSON: " + r.out.substr(0, 200);
    uint64_t dram = device_figure(j, 0, "DRAM");
    return dram == (3u << 20) ? "" : "DRAM shown: " + std::to_string(dram);
  };
  // Found through the socket, as the prototype's monitor found its server.
  EXPECT_EQ(dram_shown({TTMEM_MONITOR, "--legacy-socket", sock, "--once", "--json"}), "");
  EXPECT_EQ(dram_shown({TTMEM_CLI, "top", "--legacy-socket", sock, "--once", "--json"}), "");
  // Named with --server.
  EXPECT_EQ(dram_shown({TTMEM_MONITOR, "--server", d.url(), "--once", "--json"}), "");
  EXPECT_EQ(dram_shown({TTMEM_CLI, "--server", d.url(), "top", "--once", "--json"}), "");
  // With --dir the local directory is shown, not the daemon.
  RunResult local =
      run({TTMEM_MONITOR, "--dir", dir.path(), "--legacy-socket", sock, "--once", "--json"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  EXPECT_EQ(device_figure(json::parse(local.out), 0, "DRAM"), 0u);
  // Text output shows the buffer too.
  RunResult text =
      run({TTMEM_MONITOR, "-d", "0", "--legacy-socket", sock, "--once"}, {{"TTMEM_DIR", ""}});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("3.00 MiB"), std::string::npos) << text.out;
}

INSTANTIATE_TEST_SUITE_P(Forms, LegacyIngestForm, ::testing::Values(72u, 112u, 144u));
INSTANTIATE_TEST_SUITE_P(Forms, LegacyIngestInfoForm, ::testing::Values(112u, 144u));

}  // namespace
}  // namespace ttmem::test
