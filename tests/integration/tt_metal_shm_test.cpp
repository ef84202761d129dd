// tt-metal's own per-chip counters end to end: region files of both versions written from the
// documented layout, next to a real ttmem client, read by `ttmem status`, `ttmem top --once
// --json`, ttmemd's /api/v1/status and /metrics, which must all show the same exact figures.
#include <fmt/format.h>
#include <sstream>

#include <gtest/gtest.h>

#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>

#include "common/clock.h"
#include "common/format.h"
#include "daemon_harness.h"
#include "tt_metal_region_writer.h"

namespace ttmem::test {

using common::realtime_ns;

namespace {

using nlohmann::json;

constexpr uint64_t kCountersOnlyChip = 12345;  // 0x3039: no ttmem client registers it
constexpr uint64_t kStaleChip = 777;           // 0x309: only an ended process's slot

// Points this process and the programs it starts at `dir` for tt-metal's files, for one test.
class TtMetalShmDir {
 public:
  explicit TtMetalShmDir(const std::string& dir) {
    if (const char* old = std::getenv("TTMEM_TT_METAL_SHM_DIR")) old_ = old;
    ::setenv("TTMEM_TT_METAL_SHM_DIR", dir.c_str(), 1);
  }
  ~TtMetalShmDir() {
    if (old_) {
      ::setenv("TTMEM_TT_METAL_SHM_DIR", old_->c_str(), 1);
    } else {
      ::unsetenv("TTMEM_TT_METAL_SHM_DIR");
    }
  }

 private:
  std::optional<std::string> old_;
};

pid_t ended_pid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

const json* find_device(const json& status, uint64_t chip) {
  for (const auto& d : status.at("devices")) {
    if (d.at("chip_id") == common::format_chip_id(chip)) return &d;
  }
  return nullptr;
}

const json* find_process(const json& status, pid_t pid, const std::string& source) {
  for (const auto& p : status.at("processes")) {
    if (p.at("pid").get<pid_t>() == pid && p.at("source") == source) return &p;
  }
  return nullptr;
}

uint64_t reserved(const json& device, const char* kind) {
  return device.at("kinds").at(kind).at("reserved_bytes").get<uint64_t>();
}

struct Expected {
  pid_t client = 0;  // ttmem_testload: a ttmem client that tt-metal's file also lists
  uint64_t client_dram = 0;
  pid_t ended = 0;
};

// "" when a status document (CLI, top or API) shows the counters exactly, else what differs.
std::string status_differs(const json& s, const Expected& e) {
  const json* detailed = find_device(s, kChipIdBase);
  const json* counters = find_device(s, kCountersOnlyChip);
  const json* stale = find_device(s, kStaleChip);
  if (!detailed || !counters || !stale) return "a chip is missing: " + s.dump().substr(0, 800);
  // The client's chip: its detail, plus the one tt-metal process ttmem does not see; the
  // client's own slot is not counted again.
  if ((*detailed)["detail"] != "buffers") return "chip 0x7000 detail";
  if (reserved(*detailed, "DRAM") != e.client_dram + 2'000'000) {
    return "chip 0x7000 DRAM " + std::to_string(reserved(*detailed, "DRAM"));
  }
  if ((*detailed)["tt_metal_shm"]["live_processes"] != 2) return "chip 0x7000 live processes";
  if ((*detailed)["tt_metal_shm"]["stale_processes"] != 1) return "chip 0x7000 stale processes";
  // Counters only: bytes exact, capacity unknown.
  if ((*counters)["detail"] != "counters") return "chip 0x3039 detail";
  const std::pair<const char*, uint64_t> want[] = {
      {"DRAM", 7'000'000}, {"L1", 64'000}, {"L1_SMALL", 1024}, {"TRACE", 4096}, {"CB", 2048}};
  for (const auto& [kind, bytes] : want) {
    if (reserved(*counters, kind) != bytes) return std::string("chip 0x3039 ") + kind;
    if ((*counters)["kinds"][kind]["capacity_bytes"] != 0) return "chip 0x3039 capacity";
  }
  if (!(*counters)["logical_ids"].empty()) return "chip 0x3039 has a logical id";
  if ((*counters)["tt_metal_shm"]["creator_logical_id"] != 3) return "chip 0x3039 creator";
  const json& remote = (*counters)["tt_metal_shm"]["remote_chips"];
  if (remote.size() != 1 || remote[0]["logical_id"] != 9 ||
      remote[0]["allocated_bytes"]["DRAM"] != 111) {
    return "chip 0x3039 remote chips: " + remote.dump();
  }
  if ((*counters)["tt_metal_shm"]["version"] != 3) return "chip 0x3039 version";
  // A file whose processes all ended: stale totals, no memory in use.
  if ((*stale)["tt_metal_shm"]["totals_stale"] != true) return "chip 0x309 not stale";
  if ((*stale)["tt_metal_shm"]["total_allocated_bytes"]["DRAM"] != 9000) return "chip 0x309 total";
  if (reserved(*stale, "DRAM") != 0) return "chip 0x309 counts stale memory as live";

  const json* self = find_process(s, ::getpid(), "tt-metal-shm");
  if (!self || (*self)["counted"] != true || (*self)["reserved_bytes"]["DRAM"] != 9'000'000 ||
      (*self)["chips"].size() != 2) {
    return "this process's tt-metal row: " + (self ? self->dump() : "missing");
  }
  const json* twice = find_process(s, e.client, "tt-metal-shm");
  if (!find_process(s, e.client, "ttmem") || !twice || (*twice)["counted"] != false ||
      (*twice)["reported_bytes"]["DRAM"] != 1000 || (*twice)["reserved_bytes"]["DRAM"] != 0) {
    return "the client's rows: " + (twice ? twice->dump() : "missing");
  }
  for (pid_t pid : {e.ended, ::getppid()}) {
    const json* p = find_process(s, pid, "tt-metal-shm");
    if (!p || (*p)["stale"] != true || (*p)["counted"] != false ||
        (*p)["reserved_bytes"]["DRAM"] != 0) {
      return "stale row of pid " + std::to_string(pid) + ": " + (p ? p->dump() : "missing");
    }
  }
  std::string problems = s.at("problems").dump();
  for (const char* why : {"unknown version 9", "size 900 bytes"}) {
    if (problems.find(why) == std::string::npos) return std::string("problems lack ") + why;
  }
  return "";
}

TEST(TtMetalShm, StatusTopApiAndMetricsShowTheCountersExactly) {
  TempDir segments, shm;
  TtMetalShmDir use(shm.path());
  Child load({TTMEM_TESTLOAD, "--devices", "1", "--threads", "1", "--ops", "200", "--phases", "1",
              "--seed", "5", "--truth", segments.path() + "/truth"},
             {{"TTMEM_DIR", segments.path()}});
  ASSERT_TRUE(load.expect_line("done"));
  const json truth = read_json_file(segments.path() + "/truth.1.json");
  Expected e;
  e.client = load.pid();
  e.client_dram = truth["devices"]["0"]["DRAM"]["reserved"].get<uint64_t>();
  e.ended = ended_pid();

  const uint64_t now = realtime_ns();
  TtMetalRegionWriter(4, kChipIdBase, 0)
      .process(e.client, {1000, 0, 0, 0, 0}, now, "testload")
      .process(::getpid(), {2'000'000, 3000, 0, 0, 500}, now, "self")
      .process(e.ended, {5000, 0, 0, 0, 0}, now, "ended")
      .write(shm.path());
  TtMetalRegionWriter(3, kCountersOnlyChip, 3)
      .process(::getpid(), {7'000'000, 64'000, 1024, 4096, 2048}, now, "self")
      .process(::getppid(), {8000, 0, 0, 0, 0}, 1'000'000'000, "reused")  // before it started
      .remote_chip(9, {111, 0, 0, 0, 0})
      .write(shm.path());
  TtMetalRegionWriter(4, kStaleChip, 5)
      .process(e.ended, {9000, 0, 0, 0, 0}, now, "ended")
      .write(shm.path());
  TtMetalRegionWriter(9, 8, 0).write(shm.path());
  TtMetalRegionWriter(4, 9, 0).write(shm.path(), 900);

  EXPECT_EQ(status_differs(ttmem_json(segments.path(), {"status", "--json"}), e), "");
  EXPECT_EQ(status_differs(ttmem_json(segments.path(), {"top", "--once", "--json"}), e), "");

  RunResult text = run({TTMEM_CLI, "--dir", segments.path(), "status"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* line :
       {"chip 0x3039: counters only, capacity unknown; version 3",
        "chip 0x7000: buffers (ttmem) and tt-metal counters", "chip 0x309: counters only",
        "(STALE: no live process", "remote chip (logical id 9) through it: DRAM",
        "[tt-metal counters] self",
        "[tt-metal counters, STALE: process ended, not counted] ended"}) {
    EXPECT_NE(text.out.find(line), std::string::npos) << line << "\n" << text.out;
  }
  // A counters-only chip's row: capacity, free block and buffer count are unknown, not 0 B.
  std::istringstream rows(text.out);
  bool saw_counters_row = false;
  for (std::string row; std::getline(rows, row);) {
    if (row.find("0x3039") == std::string::npos || row.find("DRAM") == std::string::npos ||
        row.find("chip 0x3039") != std::string::npos) {
      continue;  // the table row, not the counters section's line
    }
    saw_counters_row = true;
    EXPECT_EQ(row.find(" 0 B"), std::string::npos) << row;
    EXPECT_EQ(row.back(), '-') << row;
  }
  EXPECT_TRUE(saw_counters_row) << text.out;

  // Turned off: only the client's chip, and no tt-metal rows.
  json off = ttmem_json(segments.path(), {"--no-tt-metal-shm", "status", "--json"});
  ASSERT_EQ(off.at("devices").size(), 1u);
  EXPECT_EQ(reserved(off["devices"][0], "DRAM"), e.client_dram);
  EXPECT_EQ(off.at("processes").size(), 1u);

  Ttmemd d(segments.path());
  ASSERT_FALSE(d.url().empty());
  EXPECT_EQ(eventually([&] { return status_differs(get_json(d.url(), "/api/v1/status"), e); }), "");
  const std::string metrics = http_get(d.url(), "/metrics").body;
  const std::string self = std::to_string(::getpid());
  for (const std::string& sample :
       {std::string("ttmem_device_reserved_bytes{device=\"-\",chip_id=\"0x3039\",kind=\"DRAM\","
                    "source=\"tt-metal-shm\"} 7000000\n"),
        std::string("ttmem_device_capacity_bytes{device=\"-\",chip_id=\"0x3039\",kind=\"L1\","
                    "source=\"tt-metal-shm\"} 0\n"),
        fmt::format("ttmem_device_reserved_bytes{{device=\"0\",chip_id=\"0x7000\",kind=\"DRAM\","
                    "source=\"ttmem\"}} {}\n",
                    e.client_dram + 2'000'000),
        std::string("ttmem_tt_metal_total_bytes{device=\"-\",chip_id=\"0x309\",kind=\"DRAM\","
                    "stale=\"true\"} 9000\n"),
        "ttmem_process_reserved_bytes{pid=\"" + self +
            "\",command=\"self\",kind=\"DRAM\",source=\"tt-metal-shm\"} 9000000\n"}) {
    EXPECT_NE(metrics.find(sample), std::string::npos) << sample;
  }
  // Stale slots and the client's second row are never samples of memory in use.
  EXPECT_EQ(metrics.find("pid=\"" + std::to_string(e.ended) + "\""), std::string::npos);
  EXPECT_EQ(metrics.find("pid=\"" + std::to_string(e.client) + "\",command=\"testload\""),
            std::string::npos);
}

// `ttmem status` asks the ttmemd serving its directory (the ttmemd.json it writes there), so it
// shows that daemon's view: here tt-metal counters only the daemon can read. --direct, and a
// daemon that is gone, read the segments instead.
TEST(TtMetalShm, StatusAsksTheTtmemdServingItsDirectory) {
  TempDir segments, shm, empty;
  Child load({TTMEM_TESTLOAD, "--devices", "1", "--threads", "1", "--ops", "200", "--phases", "1",
              "--seed", "3", "--truth", segments.path() + "/truth"},
             {{"TTMEM_DIR", segments.path()}});
  ASSERT_TRUE(load.expect_line("done"));
  auto daemon_view = std::make_unique<TtMetalShmDir>(shm.path());
  TtMetalRegionWriter(4, kCountersOnlyChip, 0)
      .process(::getpid(), {4096, 0, 0, 0, 0}, realtime_ns())
      .write(shm.path());
  Ttmemd d(segments.path(), {"--interval", "60000", "--change-poll", "0"});
  ASSERT_FALSE(d.url().empty());
  daemon_view.reset();
  TtMetalShmDir cli_view(empty.path());
  const std::string file = segments.path() + "/ttmemd.json";
  ASSERT_EQ(eventually([&]() -> std::string {
              return std::filesystem::exists(file) ? "" : "no " + file;
            }),
            "");
  EXPECT_EQ(read_json_file(file).at("url"), d.url());

  const json via = ttmem_json(segments.path(), {"status", "--json"});
  const json direct = ttmem_json(segments.path(), {"status", "--json", "--direct"});
  EXPECT_NE(find_device(via, kCountersOnlyChip), nullptr) << via.dump();
  EXPECT_EQ(find_device(direct, kCountersOnlyChip), nullptr) << direct.dump();
  // The tracked program's figures agree, though the daemon refreshes only every minute: it
  // refreshed for the request.
  const json truth = read_json_file(segments.path() + "/truth.1.json");
  const uint64_t dram = truth["devices"]["0"]["DRAM"]["reserved"].get<uint64_t>();
  for (const json* s : {&via, &direct}) {
    uint64_t shown = 0;
    for (const auto& dev : s->at("devices")) {
      if (dev.at("detail") == "buffers") shown += dev["kinds"]["DRAM"]["reserved_bytes"].get<uint64_t>();
    }
    EXPECT_EQ(shown, dram);
  }

  // Killed, the daemon leaves its file behind; it names a dead process, so it is not believed.
  d.child().kill(SIGKILL);
  d.child().wait();
  EXPECT_TRUE(std::filesystem::exists(file));
  const json after = ttmem_json(segments.path(), {"status", "--json"});
  EXPECT_EQ(find_device(after, kCountersOnlyChip), nullptr);
  EXPECT_EQ(after.at("processes").size(), 1u);
}

TEST(TtMetalShm, TtmemdCanBeToldNotToRead) {
  TempDir segments, shm;
  TtMetalShmDir use(shm.path());
  TtMetalRegionWriter(4, kCountersOnlyChip, 0)
      .process(::getpid(), {4096, 0, 0, 0, 0}, realtime_ns())
      .write(shm.path());
  Ttmemd on(segments.path());
  Ttmemd off(segments.path(), {"--no-tt-metal-shm"});
  ASSERT_FALSE(on.url().empty());
  ASSERT_FALSE(off.url().empty());
  EXPECT_EQ(eventually([&]() -> std::string {
              return get_json(on.url(), "/api/v1/status").at("devices").size() == 1 ? "" : "none";
            }),
            "");
  json status = get_json(off.url(), "/api/v1/status");
  EXPECT_TRUE(status.at("devices").empty());
  EXPECT_TRUE(status.at("processes").empty());
}

}  // namespace
}  // namespace ttmem::test
