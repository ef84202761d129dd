// Recording and export: `ttmem record` around a real tracked process with ground truth; the
// Perfetto JSON parsed and checked; golden exports of a deterministic recording; and hostile
// recordings (truncated, corrupted) that must never crash the reader.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "collector/recording.h"
#include "common/format.h"
#include "daemon_harness.h"
#include "golden.h"

namespace ttmem::test {

using collector::export_csv;
using collector::export_json;
using collector::export_perfetto;
using collector::export_state_json;
using collector::read_recording;
using collector::RecordedBuffer;
using collector::RecordWriter;
using collector::state_at;

namespace {

namespace pr = protocol;
namespace rf = protocol::record;
using nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Record, CapturesARealWorkloadExactly) {
  TempDir dir;
  std::string file = dir.path() + "/run.ttmem";
  std::string truth_prefix = dir.path() + "/truth";
  // record runs the workload with TTMEM_DIR set; the workload's stdin and stdout are ours.
  Child rec({TTMEM_CLI, "--dir", dir.path() + "/seg", "record", "-o", file, "--checkpoint", "0.2",
             "--", TTMEM_TESTLOAD, "--devices", "4", "--threads", "2", "--ops", "800", "--truth",
             truth_prefix},
            {});
  ASSERT_TRUE(rec.expect_line("done"));
  json truth = read_json_file(truth_prefix + ".1.json");
  rec.write_line("exit");  // exits holding its buffers: they end the recording as leaks
  EXPECT_EQ(rec.wait(), 0);

  std::string error;
  auto r = read_recording(file, &error);
  ASSERT_TRUE(r) << error;
  EXPECT_FALSE(r->truncated);
  EXPECT_GE(r->checkpoints.size(), 2u);
  ASSERT_EQ(r->processes.size(), 1u);
  EXPECT_EQ(r->processes[0].leaked, truth["live"].size());

  // The state at the workload's last event equals the truth, per device and kind, and its end
  // comes after it.
  json events = json::parse(export_json(*r));
  uint64_t last_event = events["events"].back()["t_ns"].get<uint64_t>();
  EXPECT_GT(events["processes"][0]["end_ns"].get<uint64_t>(), last_event);
  json state = json::parse(export_state_json(*r, last_event));
  for (auto& [dev, kinds] : truth["devices"].items()) {
    uint64_t chip = truth["chip_id"][dev].get<uint64_t>();
    const json* d = nullptr;
    for (const auto& x : state["devices"]) {
      if (x["chip_id"] == common::format_chip_id(chip)) d = &x;
    }
    ASSERT_NE(d, nullptr) << "device " << dev;
    for (auto& [kind, v] : kinds.items()) {
      if (kind == "CB") continue;  // CBs of a process that died are not leaks; counted below
      EXPECT_EQ((*d)["kinds"][kind]["reserved_bytes"], v["reserved"]) << dev << " " << kind;
      EXPECT_EQ((*d)["kinds"][kind]["buffers"], v["count"]) << dev << " " << kind;
    }
  }
  // Every allocation the workload made is an event in the file.
  uint64_t allocs = 0, truth_allocs = 0;
  for (const auto& e : events["events"]) allocs += e["event"] == "alloc" || e["event"] == "cb_alloc";
  for (auto& [dev, kinds] : truth["devices"].items()) {
    for (auto& [kind, v] : kinds.items()) truth_allocs += v["allocs"].get<uint64_t>();
  }
  EXPECT_EQ(allocs, truth_allocs);

  // Perfetto: valid JSON; every async slice begins once and ends once; the last counter value of
  // each device and kind is the truth's reserved bytes.
  RunResult p = run({TTMEM_CLI, "export", file, "--format", "perfetto"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  json trace = json::parse(p.out);
  std::map<std::string, int> open;
  std::map<std::pair<int, std::string>, uint64_t> last_counter;
  std::map<int, uint64_t> pid_chip;
  double last_ts = 0;
  for (const auto& e : trace.at("traceEvents")) {
    std::string ph = e.at("ph");
    if (ph == "M") {
      std::string name = e["args"]["name"];
      pid_chip[e["pid"]] = std::stoull(name.substr(name.find("0x")), nullptr, 16);
      continue;
    }
    ASSERT_TRUE(e.contains("ts"));
    if (ph == "b") EXPECT_EQ(open[e.at("id")]++, 0) << e.dump();
    if (ph == "e") EXPECT_EQ(open[e.at("id")]--, 1) << e.dump();
    if (ph == "C") {
      EXPECT_GE(e["ts"].get<double>(), 0.0);
      last_counter[{e["pid"], e["name"]}] = e["args"]["bytes"];
    }
    last_ts = std::max(last_ts, e["ts"].get<double>());
  }
  for (const auto& [id, n] : open) EXPECT_EQ(n, 0) << id;
  for (auto& [dev, kinds] : truth["devices"].items()) {
    uint64_t chip = truth["chip_id"][dev].get<uint64_t>();
    int pid = 0;
    for (const auto& [p2, c] : pid_chip) {
      if (c == chip) pid = p2;
    }
    for (const char* kind : {"DRAM", "L1", "L1_SMALL", "TRACE"}) {
      uint64_t want = kinds[kind]["reserved"].get<uint64_t>();
      auto it = last_counter.find({pid, std::string(kind) + " reserved"});
      EXPECT_EQ(it == last_counter.end() ? 0 : it->second, want) << dev << " " << kind;
    }
  }
  RunResult csv = run({TTMEM_CLI, "export", file, "--format", "csv"});
  ASSERT_EQ(csv.exit_code, 0);
  EXPECT_EQ(std::count(csv.out.begin(), csv.out.end(), '\n'),
            std::ptrdiff_t(events["events"].size() + 1));
}

// The process (index 0, pid 4242) and its device 0 (chip 0x7000) that recordings here describe.
void write_process_and_device(RecordWriter& w) {
  rf::ProcessRecord p{0, 4242, 99, 1000, 0};
  std::string cmd = "python3 llama.py --decode";
  w.write(rf::RecordType::Process, 1000, &p, sizeof p, cmd.data(), cmd.size());
  rf::DeviceRecord d{};
  d.process = 0;
  d.device = 0;
  d.slot.flags = pr::kDeviceRegistered;
  d.slot.chip_id = 0x7000;
  d.slot.arch = 2;
  d.slot.kinds[0] = {12ull << 30, 1ull << 30, 0, 12, 32};
  d.slot.kinds[1] = {64ull << 20, 1ull << 20, 0, 64, 16};
  w.write(rf::RecordType::Device, 1000, &d, sizeof d);
}

// An event of process 0 on device 0.
void write_event(RecordWriter& w, uint64_t t, pr::EventType type, uint8_t kind, uint64_t id,
                 uint64_t size, uint64_t per_bank, uint16_t cores, uint32_t tag) {
  rf::EventEntry e{};
  e.event.type = uint8_t(type);
  e.event.kind = kind;
  e.event.buffer_id = id;
  e.event.address = 0x2000 + id * 0x100;
  e.event.size = size;
  e.event.size_per_bank = per_bank;
  e.event.num_banks = 12;
  e.event.num_cores = cores;
  e.event.tag = tag;
  e.event.time_ns = t;
  w.write(rf::RecordType::Event, t, &e, sizeof e);
}

struct CoreRect {
  uint8_t x0, y0, x1, y1;
};

// A CB_ALLOC event of `program`, as the client writes one per CB and core range.
void write_cb(RecordWriter& w, uint64_t t, uint64_t program, uint64_t address, uint64_t size,
              CoreRect r) {
  rf::EventEntry e{};
  e.event.type = uint8_t(pr::EventType::CbAlloc);
  e.event.kind = uint8_t(Kind::Cb);
  e.event.buffer_id = program;
  e.event.address = address;
  e.event.size = size;
  e.event.size_per_bank = size;
  e.event.num_cores = uint16_t((r.x1 - r.x0 + 1) * (r.y1 - r.y0 + 1));
  e.event.num_banks = e.event.num_cores;
  e.event.page_size = uint32_t(r.x0) | uint32_t(r.y0) << 8 | uint32_t(r.x1) << 16 |
                      uint32_t(r.y1) << 24;
  e.event.time_ns = t;
  w.write(rf::RecordType::Event, t, &e, sizeof e);
}

// A deterministic recording written through the file format's own writer.
void write_fixture(const std::string& path) {
  RecordWriter w(path, 1000);
  write_process_and_device(w);
  for (const char* tag : {"ttnn::linear", "kv, \"cache\""}) {
    rf::StringRecord s{tag[0] == 't' ? 1u : 2u};
    w.write(rf::RecordType::String, 1000, &s, sizeof s, tag, std::strlen(tag));
  }
  rf::CheckpointHead head{1, 0};
  rf::CheckpointEntry c{};
  c.buffer = {0, 0, 0, 0, pr::kRecordLive, 7, 0x1000, 4096, 352, 2048, 2, 12, 0, 0, 500};
  w.write(rf::RecordType::Checkpoint, 2000, &head, sizeof head, &c, sizeof c);
  auto event = [&](uint64_t t, pr::EventType type, uint8_t kind, uint64_t id, uint64_t size,
                   uint64_t per_bank, uint16_t cores, uint32_t tag) {
    write_event(w, t, type, kind, id, size, per_bank, cores, tag);
  };
  event(1500, pr::EventType::Alloc, 0, 7, 4096, 352, 0, 2);  // before the checkpoint: in it
  event(3000, pr::EventType::Alloc, 1, 8, 65536, 1024, 0, 1);
  event(4000, pr::EventType::CbAlloc, 5, 1, 8192, 8192, 4, 1);
  event(5500, pr::EventType::Free, 0, 7, 4096, 352, 0, 2);
  event(6000, pr::EventType::CbFreeAll, 5, 1, 32768, 0, 0, 0);
  event(7000, pr::EventType::Free, 0, 99, 1, 1, 0, 0);  // unknown: ignored
  rf::DroppedRecord dr{0, 0, 3};
  w.write(rf::RecordType::Dropped, 6500, &dr, sizeof dr);
  rf::ProblemRecord pb{0, uint32_t(rf::ProblemCode::UnknownFrees), 1};
  w.write(rf::RecordType::Problem, 7000, &pb, sizeof pb);
  rf::CheckpointHead head2{0, 0};
  w.write(rf::RecordType::Checkpoint, 8000, &head2, sizeof head2);
  rf::ProcessEndRecord end{0, 1};
  w.write(rf::RecordType::ProcessEnd, 9000, &end, sizeof end);
  w.close();
}

TEST(Record, ExportsMatchGoldenFiles) {
  TempDir dir;
  std::string file = dir.path() + "/fixture.ttmem";
  write_fixture(file);
  std::string error;
  auto r = read_recording(file, &error);
  ASSERT_TRUE(r) << error;
  expect_golden("record_fixture.perfetto.json", export_perfetto(*r));
  expect_golden("record_fixture.csv", export_csv(*r));
  json j = json::parse(export_json(*r));
  j["created_realtime_ns"] = 0;  // volatile: the wall clock when the fixture was written
  expect_golden("record_fixture.json", j.dump(1) + "\n");
  // Seeking: the state between events, from the nearest checkpoint.
  EXPECT_EQ(state_at(*r, 3500).size(), 2u);  // buffer 7 (checkpoint) + buffer 8
  EXPECT_EQ(state_at(*r, 4500).size(), 3u);  // + the CB
  EXPECT_EQ(state_at(*r, 6500).size(), 1u);  // buffer 8
  // The last checkpoint is empty, but the process ended with one buffer outstanding: buffer 8
  // is its leak, and stays.
  EXPECT_EQ(state_at(*r, 8500).size(), 1u);
}

// CB_FREE_PROGRAM ends the CB records of one program on the device, and only those: the other
// program's set stays live, in the state, the JSON and the Perfetto slices.
TEST(Record, ReplaysCbFreeProgramOneProgramAtATime) {
  TempDir dir;
  std::string file = dir.path() + "/programs.ttmem";
  {
    RecordWriter w(file, 1000);
    write_process_and_device(w);
    // Program 1: one CB on two core ranges (two records of one call: the same time, address
    // and size, each with its own rectangle), then a CB above it on the first range; program 2:
    // one CB on every core of the 8x8 grid. The fixture device's L1 base is 0.
    const CoreRect r1{0, 0, 3, 3}, r2{4, 0, 4, 3}, all{0, 0, 7, 7};
    write_cb(w, 2000, 1, 0, 4096, r1);
    write_cb(w, 2000, 1, 0, 4096, r2);
    write_cb(w, 2100, 1, 4096, 2048, r1);
    write_cb(w, 3000, 2, 0, 1024, all);
    write_event(w, 4000, pr::EventType::CbFreeProgram, 5, 1, 20 * 4096 + 16 * 2048, 3, 0, 0);
    rf::ProcessEndRecord end{0, 0};
    w.write(rf::RecordType::ProcessEnd, 5000, &end, sizeof end);
    w.close();
  }
  std::string error;
  auto r = read_recording(file, &error);
  ASSERT_TRUE(r) << error;
  auto programs_at = [&](uint64_t t) {
    std::multiset<uint64_t> programs;
    for (const RecordedBuffer& b : state_at(*r, t)) programs.insert(b.record.buffer_id);
    return programs;
  };
  EXPECT_EQ(programs_at(3500), (std::multiset<uint64_t>{1, 1, 1, 2}));
  EXPECT_EQ(programs_at(4500), (std::multiset<uint64_t>{2}));

  json events = json::parse(export_json(*r));
  std::vector<std::string> names;
  for (const json& e : events.at("events")) names.push_back(e.at("event"));
  EXPECT_EQ(names, (std::vector<std::string>{"cb_alloc", "cb_alloc", "cb_alloc", "cb_alloc",
                                             "cb_free_program"}));
  EXPECT_EQ(events.at("events").back().at("buffer_id"), 1);

  // Perfetto: each of the four slices begins and ends once; program 1's three end together,
  // before program 2's (which lasts to the process end), leaving program 2's bytes counted.
  json trace = json::parse(export_perfetto(*r));
  std::map<std::string, int> open;
  std::vector<std::string> ended;
  std::vector<uint64_t> cb_bytes;
  for (const json& e : trace.at("traceEvents")) {
    if (e.at("ph") == "b") EXPECT_EQ(open[e.at("id")]++, 0) << e.dump();
    if (e.at("ph") == "e") {
      EXPECT_EQ(open[e.at("id")]--, 1) << e.dump();
      ended.push_back(e.at("id").get<std::string>().substr(0, 9));
    }
    if (e.at("ph") == "C") cb_bytes.push_back(e.at("args").at("bytes").get<uint64_t>());
  }
  EXPECT_EQ(open.size(), 4u) << trace.dump();
  for (const auto& [id, n] : open) EXPECT_EQ(n, 0) << id;
  EXPECT_EQ(ended, (std::vector<std::string>{"p0.d0.cb1", "p0.d0.cb1", "p0.d0.cb1", "p0.d0.cb2"}));
  ASSERT_GE(cb_bytes.size(), 2u);
  // The CB counter is the L1 the sets cover, never their sum: with both programs, the 16 cores
  // of r1 up to 6,144, the 4 of r2 up to 4,096 and the other 44 up to program 2's 1,024.
  EXPECT_NE(std::find(cb_bytes.begin(), cb_bytes.end(), 16 * 6144u + 4 * 4096u + 44 * 1024u),
            cb_bytes.end());
  EXPECT_EQ(cb_bytes.back(), 64 * 1024u) << "after program 1 was freed";
}

TEST(Record, HostileFilesNeverCrashTheReader) {
  TempDir dir;
  std::string file = dir.path() + "/fixture.ttmem";
  write_fixture(file);
  std::string good = slurp(file);
  std::string path = dir.path() + "/bad.ttmem";
  size_t accepted = 0;
  for (size_t n = 0; n < good.size(); ++n) {  // every truncation
    std::ofstream(path, std::ios::binary | std::ios::trunc) << good.substr(0, n);
    std::string error;
    auto r = read_recording(path, &error);
    if (r) {
      ++accepted;
      export_perfetto(*r);
    } else {
      EXPECT_NE(error.find("ttmem"), std::string::npos) << error;
    }
  }
  EXPECT_GT(accepted, 0u);
  std::mt19937 rng(7);
  for (int i = 0; i < 400; ++i) {  // random corruption
    std::string bad = good;
    for (int k = 0; k < 1 + int(rng() % 4); ++k) bad[rng() % bad.size()] = char(rng());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
    std::string error;
    if (auto r = read_recording(path, &error)) {
      export_perfetto(*r);
      export_csv(*r);
      export_json(*r);
    }
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "TTMEMREC";
  RunResult res = run({TTMEM_CLI, "export", path});
  EXPECT_EQ(res.exit_code, 1);
  EXPECT_NE(res.err.find("not a usable recording"), std::string::npos) << res.err;
}

}  // namespace
}  // namespace ttmem::test
