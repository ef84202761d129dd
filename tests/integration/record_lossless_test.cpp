// Recording at full speed and under overload, with real processes: a program `ttmem record`
// launches is recorded without a gap (10 million events); attaching to a program that
// overruns its rings marks every gap and keeps totals exact at every checkpoint; a damaged
// recording is refused in one line.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "collector/recording.h"
#include "harness.h"

namespace ttmem::test {

using collector::read_recording;
using collector::replay;
using collector::ReplayVisitor;
using collector::states_at;

namespace {

namespace pr = protocol;
using nlohmann::json;

// The chip figures the replay ends with, per (chip, kind).
struct FinalFigures : ReplayVisitor {
  std::map<std::pair<uint64_t, uint32_t>, uint64_t> bytes;
  void usage(uint64_t, uint64_t chip, uint32_t kind, uint64_t b) override {
    bytes[{chip, kind}] = b;
  }
};

TEST(RecordLossless, TenMillionEventsAtFullSpeedWithoutAGap) {
  TempDir dir;
  const std::string file = dir.path() + "/run.ttmem";
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // Sanitized builds run the program and the recorder several times slower and hold the read-back
  // recording in shadowed memory: a million events prove the same, in CI's time.
  constexpr uint64_t kEvents = 1'000'000;
#else
  constexpr uint64_t kEvents = 10'000'000;
#endif
  const auto started = std::chrono::steady_clock::now();
  RunResult rec = run({TTMEM_CLI, "--dir", dir.path() + "/seg", "record", "-o", file, "--",
                       TTMEM_RECORD_LOAD, "--events", std::to_string(kEvents), "--devices", "2"});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  EXPECT_EQ(rec.err.find("overwritten"), std::string::npos) << rec.err;

  std::string error;
  auto r = read_recording(file, &error);
  ASSERT_TRUE(r) << error;
  EXPECT_FALSE(r->truncated);
  EXPECT_EQ(r->dropped_events, 0u);
  ASSERT_GE(r->events.size(), kEvents);
  std::printf("recorded %zu events in %.2f s (%.1f M events/s, program and recorder together), "
              "%.0f MB\n",
              r->events.size(), seconds, double(r->events.size()) / seconds / 1e6,
              double(std::filesystem::file_size(file)) / 1e6);

  // Every alloc is matched by exactly one free, in order; CB sets come and go whole.
  std::vector<uint8_t> state(r->events.size() + 1, 0);  // by buffer id: 1 live, 2 freed
  uint64_t allocs = 0, frees = 0, cb_allocs = 0, cb_programs_freed = 0;
  for (const auto& e : r->events) {
    const auto& ev = e.event;
    switch (pr::EventType(ev.type)) {
      case pr::EventType::Alloc:
        ASSERT_LT(ev.buffer_id, state.size());
        ASSERT_EQ(state[ev.buffer_id], 0) << "alloc of buffer " << ev.buffer_id << " twice";
        state[ev.buffer_id] = 1;
        ++allocs;
        break;
      case pr::EventType::Free:
        ASSERT_LT(ev.buffer_id, state.size());
        ASSERT_EQ(state[ev.buffer_id], 1) << "free of buffer " << ev.buffer_id << " not live";
        state[ev.buffer_id] = 2;
        ++frees;
        break;
      case pr::EventType::CbAlloc: ++cb_allocs; break;
      case pr::EventType::CbFreeProgram: ++cb_programs_freed; break;
      case pr::EventType::CbFreeAll: break;
    }
  }
  EXPECT_EQ(allocs, frees);
  EXPECT_GT(cb_programs_freed, 0u);
  EXPECT_EQ(cb_allocs, 2 * cb_programs_freed);

  // The replay ends with every chip's every figure at 0 and nothing live.
  FinalFigures figures;
  EXPECT_TRUE(replay(*r, figures).empty());
  ASSERT_FALSE(figures.bytes.empty());
  for (const auto& [key, bytes] : figures.bytes) {
    EXPECT_EQ(bytes, 0u) << "chip " << key.first << " kind " << key.second;
  }
  r.reset();  // the report reads the file again

  // The report of 10 million events stays small enough to open: at most 5 MB.
  const std::string html = dir.path() + "/run.html";
  RunResult rep = run({TTMEM_CLI, "report", file, "-o", html});
  ASSERT_EQ(rep.exit_code, 0) << rep.err;
  const uint64_t html_bytes = std::filesystem::file_size(html);
  std::printf("report: %.2f MB\n", double(html_bytes) / 1e6);
  EXPECT_LE(html_bytes, 5'000'000u);
}

TEST(RecordLossless, OverloadedAttachMarksGapsAndKeepsTotalsExact) {
  TempDir dir;
  const std::string seg = dir.path() + "/seg";
  const std::string file = dir.path() + "/attach.ttmem";
  // Rings of 16 events: the program laps any reader at once.
  Child load({TTMEM_RECORD_LOAD, "--churn"}, {{"TTMEM_DIR", seg}, {"TTMEM_RING_EVENTS", "16"}});
  auto ready = load.read_line();
  ASSERT_TRUE(ready && ready->starts_with("ready ")) << ready.value_or("EOF");
  RunResult rec = run({TTMEM_CLI, "--dir", seg, "record", "-o", file, "--duration", "1",
                       "--checkpoint", "0.2"});
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  // The warning says what was missed and what to do.
  EXPECT_NE(rec.err.find("overwritten before they could be recorded"), std::string::npos)
      << rec.err;
  EXPECT_NE(rec.err.find("ttmem record -- CMD"), std::string::npos) << rec.err;
  load.write_line("stop");
  ASSERT_TRUE(load.expect_line("stopped"));

  std::string error;
  auto r = read_recording(file, &error);
  ASSERT_TRUE(r) << error;
  EXPECT_GT(r->dropped_events, 0u);
  // Every gap is followed by a checkpoint (the exact state again) within 100 ms.
  size_t gaps = 0;
  for (const auto& i : r->instants) {
    if (i.what != "dropped events") continue;
    ++gaps;
    auto next = std::find_if(r->checkpoints.begin(), r->checkpoints.end(),
                             [&](const auto& c) { return c.time_ns >= i.time_ns; });
    ASSERT_NE(next, r->checkpoints.end());
    EXPECT_LT(next->time_ns - i.time_ns, 100'000'000u);
  }
  EXPECT_GT(gaps, 0u);

  // DRAM held at every checkpoint is the base set, plus the one churn buffer when the
  // checkpoint caught it live: the replayed totals are exact there, gaps or not.
  uint64_t base = 0, churn = 0;
  for (const auto& b : r->checkpoints.front().buffers) {
    if (b.record.buffer_id >= (1ull << 40)) base += b.reserved;  // the load's base set
  }
  for (const auto& e : r->events) {
    if (e.event.type == uint8_t(pr::EventType::Alloc)) {
      churn = r->reserved_of(e.process, e.device, e.event.kind, e.event.size,
                             e.event.size_per_bank, e.event.num_cores);
      break;
    }
  }
  ASSERT_GT(base, 0u);
  ASSERT_GT(churn, 0u);
  ASSERT_GE(r->checkpoints.size(), 3u);
  // The replayed DRAM figure at every checkpoint, in one pass.
  struct DramAt : ReplayVisitor {
    uint64_t bytes = 0;
    void usage(uint64_t, uint64_t, uint32_t kind, uint64_t b) override {
      if (kind == uint32_t(Kind::Dram)) bytes = b;
    }
  };
  std::vector<uint64_t> times;
  for (const auto& cp : r->checkpoints) times.push_back(cp.time_ns);
  size_t checked = 0;
  for (const auto& live : states_at(*r, times)) {
    uint64_t dram = 0;
    for (const auto& b : live) dram += b.record.kind == uint8_t(Kind::Dram) ? b.reserved : 0;
    EXPECT_TRUE(dram == base || dram == base + churn)
        << dram << " at checkpoint " << checked << " of " << times.size();
    ++checked;
  }
  // And the figure the exports draw ends where the last checkpoint says.
  DramAt end;
  replay(*r, end);
  EXPECT_TRUE(end.bytes == base || end.bytes == base + churn) << end.bytes;

  // Perfetto: valid trace JSON with one instant per gap on the chip's track.
  RunResult p = run({TTMEM_CLI, "export", file, "--format", "perfetto"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  json trace = json::parse(p.out);
  size_t gap_instants = 0;
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] == "i" && e["name"].get<std::string>().starts_with("gap: ")) ++gap_instants;
  }
  EXPECT_EQ(gap_instants, gaps);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The report in a real browser: headless Chromium loads the file (no network), every chart
// draws, nothing is logged to the console, and a screenshot is saved for the docs.
TEST(RecordReport, OpensInChromiumWithEveryChartDrawn) {
  const std::string chromium = "/usr/bin/chromium";
  ASSERT_TRUE(std::filesystem::exists(chromium))
      << "Chromium is missing: run scripts/install-deps.sh (Debian package `chromium`)";
  TempDir dir;
  const std::string file = dir.path() + "/run.ttmem";
  // Llama-3.1-8B decode on a simulated T3K: 8 devices, weights, KV cache, CBs and a trace.
  RunResult rec = run({TTMEM_CLI, "--dir", dir.path() + "/seg", "record", "-o", file, "--",
                       TTMEM_CLI, "sim", "llama-decode", "--speed", "0"});
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  const std::string html = dir.path() + "/report.html";
  RunResult rep = run({TTMEM_CLI, "report", file, "-o", html});
  ASSERT_EQ(rep.exit_code, 0) << rep.err;
  const std::string page = slurp(html);
  // Self-contained: nothing to fetch (the SVG namespace is a name, not a request).
  EXPECT_EQ(page.find("<script src"), std::string::npos);
  EXPECT_EQ(page.find("<link"), std::string::npos);
  EXPECT_EQ(count_of(page, "https:"), 0u);
  EXPECT_EQ(count_of(page, "http:"), count_of(page, "http://www.w3.org/2000/svg"));

  const std::vector<std::string> browser = {
      chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
      "--user-data-dir=" + dir.path() + "/chromium", "--enable-logging=stderr", "--v=0",
      "--virtual-time-budget=10000", "--window-size=1200,2600"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = browser;
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("file://" + html);
    return argv;
  };
  RunResult dom = run(with({"--dump-dom"}));
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  // Eight devices: a timeline by kind, one by op and an L1 map each.
  EXPECT_NE(dom.out.find("data-charts-drawn=\"24\""), std::string::npos)
      << dom.out.substr(0, 400);
  EXPECT_EQ(count_of(dom.out, "data-drawn=\"yes\""), 24u);
  EXPECT_EQ(count_of(dom.out, "data-drawn=\"no\""), 0u);
  // Chromium logs every console message and uncaught error as a CONSOLE line.
  EXPECT_EQ(dom.err.find(":CONSOLE("), std::string::npos) << dom.err;

  const std::string screenshot = std::string(TTMEM_TEST_OUTPUT_DIR) + "/report-screenshot.png";
  std::filesystem::remove(screenshot);
  RunResult shot = run(with({"--screenshot=" + screenshot}));
  ASSERT_EQ(shot.exit_code, 0) << shot.err;
  ASSERT_TRUE(std::filesystem::exists(screenshot));
  EXPECT_GT(std::filesystem::file_size(screenshot), 20'000u);
}

TEST(RecordLossless, DamagedBlockIsRefusedInOneLine) {
  TempDir dir;
  const std::string file = dir.path() + "/small.ttmem";
  RunResult rec = run({TTMEM_CLI, "--dir", dir.path() + "/seg", "record", "-o", file, "--",
                       TTMEM_RECORD_LOAD, "--events", "200000"});
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  std::string good;
  {
    std::ifstream in(file, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    good = s.str();
  }
  ASSERT_GT(good.size(), 1'000'000u);
  // One flipped bit in an event's size, deep inside a block.
  std::string bad = good;
  bad[good.size() / 2] ^= 0x10;
  const std::string damaged = dir.path() + "/damaged.ttmem";
  std::ofstream(damaged, std::ios::binary) << bad;
  std::string error;
  EXPECT_FALSE(read_recording(damaged, &error));
  EXPECT_NE(error.find("checksum does not match"), std::string::npos) << error;
  RunResult ex = run({TTMEM_CLI, "export", damaged});
  EXPECT_EQ(ex.exit_code, 1);
  EXPECT_EQ(std::count(ex.err.begin(), ex.err.end(), '\n'), 1) << ex.err;
  EXPECT_NE(ex.err.find("damaged"), std::string::npos) << ex.err;
  // Cut inside the last block (a recorder killed mid-write): what precedes it is read.
  const std::string cut = dir.path() + "/cut.ttmem";
  std::ofstream(cut, std::ios::binary) << good.substr(0, good.size() - 100);
  auto r = read_recording(cut, &error);
  ASSERT_TRUE(r) << error;
  EXPECT_TRUE(r->truncated);
  EXPECT_GT(r->events.size(), 0u);
}

}  // namespace
}  // namespace ttmem::test
