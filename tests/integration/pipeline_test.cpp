// The core pipeline across real processes: a tracked program (ttmem_testload) in another
// process, its real shared-memory segment, and the real `ttmem` CLI or the collector library.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <fstream>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>

#include "collector/collector.h"
#include "common/format.h"
#include "common/kinds.h"
#include "harness.h"
#include "test_device.h"
#include "protocol/segment.h"
#include "ttmem/ttmem.hpp"

namespace ttmem::test {

using collector::Collector;
using collector::CollectorOptions;
using collector::DeviceView;
using collector::KindUsage;
using collector::kNumKinds;
using collector::Snapshot;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kKinds[] = {"DRAM", "L1", "SYSTEM_MEMORY", "L1_SMALL", "TRACE", "CB"};

std::vector<std::string> testload_args(const std::string& truth, uint32_t phases,
                                       uint32_t ops = 1500, uint32_t threads = 4) {
  return {TTMEM_TESTLOAD, "--devices", "8",   "--threads", std::to_string(threads),
          "--ops",        std::to_string(ops), "--phases", std::to_string(phases),
          "--truth",      truth};
}

// The status JSON's device for a truth device (matched by chip id).
const json* find_device(const json& status, uint64_t chip_id) {
  for (const auto& d : status.at("devices")) {
    if (d.at("chip_id") == common::format_chip_id(chip_id)) return &d;
  }
  return nullptr;
}

// Every (device, kind) figure in `status` equals the truth, exactly.
void expect_status_matches_truth(const json& status, const json& truth) {
  for (auto& [dev, kinds] : truth.at("devices").items()) {
    uint64_t chip = truth.at("chip_id").at(dev).get<uint64_t>();
    const json* d = find_device(status, chip);
    ASSERT_NE(d, nullptr) << "device " << dev << " missing from status";
    for (const char* kind : kKinds) {
      const json& want = kinds.at(kind);
      const json& got = d->at("kinds").at(kind);
      SCOPED_TRACE(std::string("device ") + dev + " kind " + kind);
      EXPECT_EQ(got.at("requested_bytes"), want.at("requested"));
      EXPECT_EQ(got.at("reserved_bytes"), want.at("reserved"));
      EXPECT_EQ(got.at("buffers"), want.at("count"));
      EXPECT_EQ(got.at("total_allocs"), want.at("allocs"));
      EXPECT_EQ(got.at("total_frees"), want.at("frees"));
      EXPECT_GE(got.at("peak_bytes").get<uint64_t>(), want.at("reserved").get<uint64_t>());
    }
    // CB sets of live programs overlap: the region ends at the highest CB end among them.
    SCOPED_TRACE(std::string("device ") + dev);
    const uint64_t region_end = truth.at("cb_region_end").at(dev).get<uint64_t>();
    EXPECT_EQ(d->at("cb_region_end").get<uint64_t>(), region_end);
    EXPECT_EQ(d->at("cb_region_in_use_bytes").get<uint64_t>(), region_end - kUnreservedBase);
    EXPECT_EQ(d->at("cb_programs"), truth.at("cb_programs").at(dev));
  }
}

// The same comparison against the collector library's Snapshot.
void expect_snapshot_matches_truth(const Snapshot& s, const json& truth) {
  for (auto& [dev, kinds] : truth.at("devices").items()) {
    uint64_t chip = truth.at("chip_id").at(dev).get<uint64_t>();
    auto it = std::find_if(s.devices.begin(), s.devices.end(),
                           [&](const DeviceView& d) { return d.chip_id == chip; });
    ASSERT_NE(it, s.devices.end());
    for (uint32_t k = 0; k < kNumKinds; ++k) {
      const json& want = kinds.at(kKinds[k]);
      SCOPED_TRACE(std::string("device ") + dev + " kind " + kKinds[k]);
      EXPECT_EQ(it->kinds[k].requested, want.at("requested").get<uint64_t>());
      EXPECT_EQ(it->kinds[k].reserved, want.at("reserved").get<uint64_t>());
      EXPECT_EQ(it->kinds[k].count, want.at("count").get<uint64_t>());
    }
    EXPECT_EQ(it->cb_region_end, truth.at("cb_region_end").at(dev).get<uint64_t>());
    EXPECT_EQ(it->cb_programs, truth.at("cb_programs").at(dev).get<uint64_t>());
  }
}

std::set<std::tuple<uint32_t, std::string, uint64_t>> live_set(const json& truth) {
  std::set<std::tuple<uint32_t, std::string, uint64_t>> out;
  for (const auto& l : truth.at("live")) {
    out.emplace(l[0].get<uint32_t>(), l[1].get<std::string>(), l[2].get<uint64_t>());
  }
  return out;
}

TEST(Pipeline, StatusTotalsEqualGroundTruthAcrossProcessesAndThreads) {
  TempDir dir;
  std::string truth = dir.path() + "/truth";
  Child load(testload_args(truth, 3), {{"TTMEM_DIR", dir.path()}});
  for (int phase = 1; phase <= 3; ++phase) {
    ASSERT_TRUE(load.expect_line("phase " + std::to_string(phase)));
    json t = read_json_file(truth + "." + std::to_string(phase) + ".json");
    json status = ttmem_json(dir.path(), {"status", "--json"});
    expect_status_matches_truth(status, t);
    ASSERT_EQ(status.at("processes").size(), 1u);
    const json& process = status.at("processes")[0];
    EXPECT_EQ(process.at("pid").get<pid_t>(), load.pid());
    // The only process: its CB bytes are what its sets cover on every device, and it holds every
    // program's set.
    uint64_t covered = 0, programs = 0;
    for (auto& [dev, kinds] : t.at("devices").items()) {
      covered += kinds.at("CB").at("reserved").get<uint64_t>();
      programs += t.at("cb_programs").at(dev).get<uint64_t>();
    }
    ASSERT_GT(programs, 0u);
    EXPECT_EQ(process.at("reserved_bytes").at("CB").get<uint64_t>(), covered);
    EXPECT_EQ(process.at("cb_programs").get<uint64_t>(), programs);
    EXPECT_TRUE(status.at("problems").empty()) << status.at("problems").dump();
    // The buffer list agrees with the totals: every live buffer of the truth is listed once.
    json buffers = ttmem_json(dir.path(), {"buffers", "--json"});
    std::set<std::tuple<uint32_t, std::string, uint64_t>> listed;
    for (const auto& b : buffers.at("buffers")) {
      if (b.at("kind") == "CB") continue;
      listed.emplace(b.at("device").get<uint32_t>(), b.at("kind").get<std::string>(),
                     b.at("buffer_id").get<uint64_t>());
    }
    EXPECT_EQ(listed, live_set(t));
    if (phase < 3) load.write_line("next");
  }
  ASSERT_TRUE(load.expect_line("done"));
  load.write_line("free");
  EXPECT_EQ(load.wait(), 0);
  // A clean exit with nothing outstanding leaves no segment and no leak.
  json status = ttmem_json(dir.path(), {"status", "--json"});
  EXPECT_TRUE(status.at("processes").empty());
  EXPECT_TRUE(status.at("devices").empty());
  json leaks = ttmem_json(dir.path(), {"leaks", "--json"});
  EXPECT_TRUE(leaks.at("leaks").empty()) << leaks.dump();
}

TEST(Pipeline, CollectorStartedLateAndRestartedMidRunStaysExact) {
  TempDir dir;
  std::string truth = dir.path() + "/truth";
  Child load(testload_args(truth, 3, 4000), {{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(load.expect_line("phase 1"));
  {
    // Started after the program has already done a phase of work.
    Collector late(CollectorOptions{dir.path()});
    late.refresh();
    expect_snapshot_matches_truth(late.snapshot(), read_json_file(truth + ".1.json"));
  }
  // Phase 2 runs while a collector polls; the collector is dropped and a new one started while
  // the program is still mid-phase.
  load.write_line("next");
  {
    Collector first(CollectorOptions{dir.path()});
    for (int i = 0; i < 5; ++i) first.wait(1);
  }
  Collector restarted(CollectorOptions{dir.path()});
  for (int i = 0; i < 5; ++i) restarted.wait(1);
  ASSERT_TRUE(load.expect_line("phase 2"));
  restarted.refresh();
  expect_snapshot_matches_truth(restarted.snapshot(), read_json_file(truth + ".2.json"));
  load.write_line("next");
  ASSERT_TRUE(load.expect_line("phase 3"));
  restarted.refresh();
  expect_snapshot_matches_truth(restarted.snapshot(), read_json_file(truth + ".3.json"));
  ASSERT_TRUE(load.expect_line("done"));
  load.write_line("free");
  EXPECT_EQ(load.wait(), 0);
}

TEST(Pipeline, KilledProcessBecomesExactLeakRecordsWithinOneSecond) {
  TempDir dir;
  std::string truth = dir.path() + "/truth";
  Child load(testload_args(truth, 1), {{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(load.expect_line("phase 1"));
  ASSERT_TRUE(load.expect_line("done"));
  json t = read_json_file(truth + ".1.json");
  ASSERT_FALSE(t.at("live").empty());
  pid_t pid = load.pid();
  load.kill(SIGKILL);  // not reaped yet: a zombie must count as dead too

  auto start = Clock::now();
  json leaks;
  do {
    leaks = ttmem_json(dir.path(), {"leaks", "--json"});
    if (!leaks.at("leaks").empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (Clock::now() - start < std::chrono::seconds(1));
  ASSERT_FALSE(leaks.at("leaks").empty()) << "no leak records within 1 s";

  std::set<std::tuple<uint32_t, std::string, uint64_t>> reported;
  for (const auto& l : leaks.at("leaks")) {
    EXPECT_EQ(l.at("pid").get<pid_t>(), pid);
    reported.emplace(l.at("device").get<uint32_t>(), l.at("kind").get<std::string>(),
                     l.at("buffer_id").get<uint64_t>());
  }
  EXPECT_EQ(reported, live_set(t));
  EXPECT_EQ(reported.size(), leaks.at("leaks").size()) << "a buffer was reported twice";

  // Its totals dropped out of the device figures, its segment is gone, and the leaks stay.
  json status = ttmem_json(dir.path(), {"status", "--json"});
  EXPECT_TRUE(status.at("processes").empty());
  EXPECT_TRUE(status.at("devices").empty());
  EXPECT_EQ(status.at("leaked_buffers").get<size_t>(), reported.size());
  EXPECT_EQ(ttmem_json(dir.path(), {"leaks", "--json"}).at("leaks").size(), reported.size());
  load.wait();

  RunResult cleared = run({TTMEM_CLI, "--dir", dir.path(), "leaks", "--clear"});
  EXPECT_EQ(cleared.exit_code, 0);
  EXPECT_TRUE(ttmem_json(dir.path(), {"leaks", "--json"}).at("leaks").empty());
}

TEST(Pipeline, RingOverflowKeepsTotalsExactAndRaisesNoAlarm) {
  TempDir dir;
  std::string truth = dir.path() + "/truth";
  constexpr uint64_t kRing = 16;
  Child load(testload_args(truth, 1, 800),
             {{"TTMEM_DIR", dir.path()}, {"TTMEM_RING_EVENTS", std::to_string(kRing)}});
  ASSERT_TRUE(load.expect_line("phase 1"));
  json t = read_json_file(truth + ".1.json");
  json status = ttmem_json(dir.path(), {"status", "--json"});
  expect_status_matches_truth(status, t);
  uint64_t overwritten = 0;
  for (auto& [dev, events] : t.at("events").items()) {
    uint64_t n = events.get<uint64_t>();
    overwritten += n > kRing ? n - kRing : 0;
    const json* d = find_device(status, t.at("chip_id").at(dev).get<uint64_t>());
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->at("dropped_events").get<uint64_t>(), 0u) << "device " << dev;
  }
  // The rings overwrote, but status reads no history: nothing was lost to it, nothing warns.
  ASSERT_GT(overwritten, 0u);
  EXPECT_EQ(status.at("dropped_events").get<uint64_t>(), 0u);
  RunResult text = run({TTMEM_CLI, "--dir", dir.path(), "status"});
  EXPECT_EQ(text.out.find("events dropped"), std::string::npos) << text.out;
}

// Writes `bytes` to dir/name.
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(Pipeline, TruncatedGarbageAndHostileSegmentsAreReportedAndSkipped) {
  TempDir dir;
  std::string truth = dir.path() + "/truth";
  Child load(testload_args(truth, 1, 500), {{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(load.expect_line("phase 1"));
  std::string real;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    if (e.path().extension() == ".seg") real = e.path().string();
  }
  ASSERT_FALSE(real.empty());
  std::string header(sizeof(protocol::SegmentHeader), '\0');
  {
    std::ifstream in(real, std::ios::binary);
    in.read(header.data(), std::streamsize(header.size()));
  }
  std::mt19937_64 rng(7);
  std::string garbage(1 << 20, '\0');
  for (char& c : garbage) c = char(rng());
  auto patched = [&](size_t offset, uint64_t value) {
    std::string h = header;
    std::memcpy(h.data() + offset, &value, sizeof value);
    return h;
  };
  const std::string d = dir.path() + "/";
  write_file(d + "ttmem-4000001-1.seg", header.substr(0, 100));                  // truncated
  write_file(d + "ttmem-4000002-1.seg", garbage);                                // garbage
  write_file(d + "ttmem-4000003-1.seg", patched(8, 99));                         // version
  write_file(d + "ttmem-4000004-1.seg", patched(68, 0xFFFFFFFF));                // capacity
  write_file(d + "ttmem-4000005-1.seg", header);  // header only: segment size mismatch
  write_file(d + "not-a-segment.seg", "x");
  write_file(d + "ignored.txt", "not claiming to be a segment");

  RunResult r = run({TTMEM_CLI, "--dir", dir.path(), "status", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json status = json::parse(r.out);
  std::set<std::string> reported;
  for (const auto& p : status.at("problems")) {
    reported.insert(fs::path(p.at("path").get<std::string>()).filename().string());
    EXPECT_FALSE(p.at("error").get<std::string>().empty());
  }
  EXPECT_EQ(reported, (std::set<std::string>{"ttmem-4000001-1.seg", "ttmem-4000002-1.seg",
                                             "ttmem-4000003-1.seg", "ttmem-4000004-1.seg",
                                             "ttmem-4000005-1.seg", "not-a-segment.seg"}));
  // The real process is still reported, exactly.
  expect_status_matches_truth(status, read_json_file(truth + ".1.json"));
  EXPECT_EQ(status.at("processes").size(), 1u);
  // Text mode names each skipped file on stderr.
  RunResult text = run({TTMEM_CLI, "--dir", dir.path(), "status"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.err.find("ttmem-4000001-1.seg: truncated"), std::string::npos) << text.err;
}

TEST(Pipeline, DisableVariableTurnsTrackingOff) {
  TempDir dir;
  std::string truth = dir.path() + "/truth";
  Child load(testload_args(truth, 1, 200),
             {{"TTMEM_DIR", dir.path()}, {"TTMEM_DISABLE", "1"}});
  ASSERT_TRUE(load.expect_line("phase 1"));
  json status = ttmem_json(dir.path(), {"status", "--json"});
  EXPECT_TRUE(status.at("processes").empty());
  EXPECT_TRUE(status.at("devices").empty());
}

TEST(Pipeline, NewSegmentIsDiscoveredByWaitWithoutPolling) {
  TempDir dir;
  Collector c(CollectorOptions{dir.path()});
  c.refresh();
  ASSERT_TRUE(c.snapshot().processes.empty());
  std::string truth = dir.path() + "/truth";
  Child load(testload_args(truth, 1, 100, 1), {{"TTMEM_DIR", dir.path()}});
  // wait() is woken by inotify; a generous bound keeps this a behaviour test, not a timing one.
  auto start = Clock::now();
  while (c.snapshot().processes.empty() && Clock::now() - start < std::chrono::seconds(5)) {
    c.wait(1000);
  }
  ASSERT_EQ(c.snapshot().processes.size(), 1u);
  EXPECT_EQ(c.snapshot().processes[0].pid, load.pid());
}

void alloc_dram(uint64_t id) {
  ttmem_buffer_desc b = ttmem::make_buffer_desc(0, id, ttmem::Kind::Dram, id * 4096, 1024);
  b.page_size = 1024;
  ttmem::buffer_alloc(b);
}

// A child process that reports through the client library, with `env` set before its first
// call: runs `report`, hands the test the line it returns, and stays alive (its segment live)
// until finish().
class ForkedClient {
 public:
  ForkedClient(const std::map<std::string, std::string>& env,
               const std::function<std::string()>& report) {
    int result[2];
    EXPECT_EQ(::pipe(result), 0);
    EXPECT_EQ(::pipe(go_), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
      std::string line = report() + "\n";
      (void)!::write(result[1], line.data(), line.size());
      ::close(result[1]);  // the test reads until end of file
      char byte;
      (void)!::read(go_[0], &byte, 1);
      ::_exit(0);
    }
    ::close(result[1]);
    char buf[4096];
    for (ssize_t n; (n = ::read(result[0], buf, sizeof buf)) > 0;) line_.append(buf, size_t(n));
    ::close(result[0]);
    if (!line_.empty()) line_.pop_back();
  }
  ~ForkedClient() { finish(); }
  const std::string& line() const { return line_; }
  // Lets it exit; true when it exited with 0.
  bool finish() {
    if (pid_ <= 0) return finished_ok_;
    (void)!::write(go_[1], "g", 1);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    finished_ok_ = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    return finished_ok_;
  }

 private:
  pid_t pid_ = -1;
  int go_[2] = {-1, -1};
  std::string line_;
  bool finished_ok_ = false;
};

void register_dram_device() {
  ttmem_device_desc d = ttmem::make_device_desc();
  d.kinds[TTMEM_KIND_DRAM] = {12ull << 30, 1ull << 30, 0, 12, 32};
  ttmem::register_device(d);
}

ttmem_buffer_desc dram(uint64_t id, uint64_t address, uint64_t size) {
  return ttmem::make_buffer_desc(0, id, ttmem::Kind::Dram, address, size);
}

// Reports that cannot describe a real buffer are refused at the API with TTMEM_EINVAL and
// counted; nothing they carry reaches a record or a total. Before, an address plus size past
// 2^64 returned TTMEM_OK and every reader counted the record as corrupt (never listed, never a
// leak), and a size of 2^64-1 wrapped the per-bank size: reserved 0, the requested total wrapped.
TEST(Pipeline, ImpossibleBuffersAreRefusedAtTheApiAndCorruptNoTotal) {
  TempDir dir;
  ForkedClient client({{"TTMEM_DIR", dir.path()}}, [] {
    register_dram_device();
    std::vector<ttmem_buffer_desc> impossible = {
        dram(1, UINT64_MAX - 100, 4096),  // address + size wraps
        dram(2, 4096, UINT64_MAX),        // per-bank size would wrap
        dram(3, 0, (1ull << 40) + 1),     // over 1 TiB
    };
    impossible.push_back(dram(4, 0, 4096));
    impossible.back().page_size = UINT64_MAX;  // aligned page size would wrap
    impossible.push_back(dram(5, 0, 4096));
    impossible.back().size_per_bank = 1ull << 39;  // x 12 banks reserved: over 1 TiB
    std::string codes;
    for (const auto& b : impossible) codes += std::to_string(ttmem_buffer_alloc(&b)) + " ";
    ttmem_buffer_desc good = dram(6, 1 << 20, 8192);
    return codes + std::to_string(ttmem_buffer_alloc(&good));
  });
  EXPECT_EQ(client.line(), "-1 -1 -1 -1 -1 0");

  Collector c(CollectorOptions{dir.path()});
  c.refresh();
  const Snapshot& s = c.snapshot();
  ASSERT_EQ(s.processes.size(), 1u);
  EXPECT_EQ(s.processes[0].counters.invalid_calls, 5u);
  EXPECT_EQ(s.processes[0].corrupt_records, 0u);
  EXPECT_EQ(s.processes[0].buffers, 1u);
  ASSERT_EQ(s.devices.size(), 1u);
  const KindUsage& usage = s.devices[0].kinds[TTMEM_KIND_DRAM];
  EXPECT_EQ(usage.requested, 8192u);
  EXPECT_EQ(usage.reserved, 683u * 12);  // 8 KiB over 12 banks: 683 B a bank, in every bank
  EXPECT_EQ(usage.count, 1u);
  EXPECT_TRUE(client.finish());
}

// TTMEM_MAX_BUFFERS=N holds exactly N live buffers (before, any N below 1,024 gave 1,024); a
// value that is not a whole number is said in one line, not silently ignored; and reports whose
// tag did not fit the full tag table (4,095 names) are counted and shown, not silently untagged.
TEST(Pipeline, LimitsAreExactBadSettingsAreSaidAndTagOverflowIsCounted) {
  TempDir dir;
  ForkedClient exact({{"TTMEM_DIR", dir.path()}, {"TTMEM_MAX_BUFFERS", "100"}}, [] {
    register_dram_device();
    int ok = 0;
    for (uint64_t id = 1; id <= 150; ++id) ok += ttmem::buffer_alloc(dram(id, id << 20, 64)) == 0;
    return std::to_string(ok);
  });
  EXPECT_EQ(exact.line(), "100");
  ForkedClient garbled({{"TTMEM_DIR", dir.path()}, {"TTMEM_MAX_BUFFERS", "12abc"}}, [] {
    register_dram_device();
    return std::string(ttmem_setup_message());
  });
  EXPECT_EQ(garbled.line(),
            "TTMEM_MAX_BUFFERS=12abc is not a whole number from 64 to 16777216; using 262144. "
            "Set it to a number in that range");
  ForkedClient tags({{"TTMEM_DIR", dir.path()}}, [] {
    register_dram_device();
    for (uint64_t id = 1; id <= 5000; ++id) {
      ttmem_buffer_desc b = dram(id, id << 20, 64);
      std::string tag = "op" + std::to_string(id);
      b.tag = tag.c_str();
      ttmem::buffer_alloc(b);
    }
    return std::string("done");
  });
  ASSERT_EQ(tags.line(), "done");

  json status = ttmem_json(dir.path(), {"status", "--json"});
  std::map<uint64_t, json> by_buffers;
  for (const json& p : status.at("processes")) by_buffers[p.at("buffers")] = p;
  ASSERT_TRUE(by_buffers.count(100)) << status.dump();
  EXPECT_EQ(by_buffers[100].at("slab_overflow"), 50);
  ASSERT_TRUE(by_buffers.count(5000)) << status.dump();
  EXPECT_EQ(by_buffers[5000].at("tag_overflow"), 5000 - 4095);
  RunResult text = run({TTMEM_CLI, "--dir", dir.path(), "status"});
  EXPECT_NE(text.out.find("905 reports left untagged: the tag table (4095 names) is full"),
            std::string::npos)
      << text.out;
}

TEST(Pipeline, ForkedChildGetsItsOwnSegmentAndNeverWritesTheParents) {
  TempDir dir;
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  pid_t parent = ::fork();
  if (parent == 0) {
    ::setenv("TTMEM_DIR", dir.path().c_str(), 1);
    ttmem_device_desc d = ttmem::make_device_desc();
    d.chip_id = 0xF00;
    d.kinds[TTMEM_KIND_DRAM] = {12ull << 30, 1ull << 30, 0, 12, 32};
    ttmem::register_device(d);
    for (uint64_t id = 1; id <= 5; ++id) alloc_dram(id);
    char byte;
    pid_t child = ::fork();
    if (child == 0) {
      // The parent's buffers are not the child's: freeing one is an unknown free here.
      int rc = ttmem::buffer_free(0, 1);
      for (uint64_t id = 100; id < 103; ++id) alloc_dram(id);
      byte = rc == TTMEM_ENOENT ? 'c' : 'x';
      (void)!::write(ready[1], &byte, 1);
      (void)!::read(go[0], &byte, 1);
      ::_exit(0);
    }
    byte = 'p';
    (void)!::write(ready[1], &byte, 1);
    (void)!::read(go[0], &byte, 1);
    ::waitpid(child, nullptr, 0);
    ::_exit(0);
  }
  char got[2] = {};
  ASSERT_EQ(::read(ready[0], &got[0], 1), 1);
  ASSERT_EQ(::read(ready[0], &got[1], 1), 1);
  std::string both(got, 2);
  std::sort(both.begin(), both.end());
  EXPECT_EQ(both, "cp") << "the child's free of a parent id must be ENOENT";

  Collector c(CollectorOptions{dir.path()});
  c.refresh();
  const Snapshot& s = c.snapshot();
  ASSERT_EQ(s.processes.size(), 2u);
  for (const auto& p : s.processes) {
    if (p.pid == parent) {
      EXPECT_EQ(p.buffers, 5u);
    } else {
      EXPECT_EQ(p.buffers, 3u);
      EXPECT_EQ(p.counters.unknown_frees, 1u);
    }
  }
  // Both processes report the same chip, so the device sums them.
  ASSERT_EQ(s.devices.size(), 1u);
  EXPECT_EQ(s.devices[0].kinds[0].count, 8u);
  (void)!::write(go[1], "gg", 2);
  int status = 0;
  ::waitpid(parent, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace ttmem::test
