// The simulator end to end: `ttmem sim` in its own process reports through the client library,
// and `ttmem status` / `ttmem leaks` (other processes) see what tt-metal would hold.
#include <signal.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <set>
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "cb_oracle.h"
#include "harness.h"

namespace ttmem::test {
namespace {

using nlohmann::json;

constexpr uint64_t kGiB = 1ull << 30;

uint64_t figure(const json& device, const char* kind, const char* field) {
  return device.at("kinds").at(kind).at(field).get<uint64_t>();
}

// `ttmem sim llama-decode` reporting into `dir`, to hold its final state for 30 s once it prints
// "holding for 30 s".
Child held_llama_decode(const TempDir& dir) {
  return Child({TTMEM_CLI, "sim", "llama-decode", "--speed", "0", "--hold", "30"},
               {{"TTMEM_DIR", dir.path()}});
}

// Llama-3.1-8B decode on T3K, TP 8: per chip, weights ≈ 0.69 GB, paged KV cache 32 layers × 2 ×
// 4,456,448 B ≈ 0.29 GB, embedding 128256 × 512 bf16 ≈ 0.13 GB and LM head ≈ 0.07 GB: ≈ 1.1 GiB.
TEST(Sim, LlamaDecodeOnT3kHoldsTheFactsFiguresOnAllEightChips) {
  TempDir dir;
  Child sim = held_llama_decode(dir);
  ASSERT_TRUE(sim.expect_line("holding for 30 s", 30000));
  json status = ttmem_json(dir.path(), {"status", "--json"});
  const json& devices = status.at("devices");
  ASSERT_EQ(devices.size(), 8u);
  for (const json& d : devices) {
    SCOPED_TRACE(d.at("logical_ids").dump());
    uint64_t dram = figure(d, "DRAM", "reserved_bytes");
    EXPECT_GT(dram, kGiB);
    EXPECT_LT(dram, kGiB * 13 / 10);
    // The 50,000,000 B trace region, with the captured trace in it. Each bank holds a whole
    // number of the largest trace pages, so the banks together reserve slightly more.
    EXPECT_EQ(d.at("trace_region_size_bytes").get<uint64_t>(), 50'000'000u);
    EXPECT_GE(figure(d, "TRACE", "capacity_bytes"), 50'000'000u);
    EXPECT_LT(figure(d, "TRACE", "capacity_bytes"), 50'000'000u + 12 * 65536);
    EXPECT_GT(figure(d, "TRACE", "reserved_bytes"), 0u);
    EXPECT_GT(figure(d, "L1", "buffers"), 0u) << d.dump();
    EXPECT_GT(figure(d, "CB", "reserved_bytes"), 0u);
    EXPECT_GT(d.at("clash_margin_bytes").get<int64_t>(), 0);
  }
  // Chip 0 is the coordinator (embedded inputs, gathered outputs): more L1 than the others.
  EXPECT_GT(figure(devices[0], "L1", "reserved_bytes"),
            figure(devices[1], "L1", "reserved_bytes"));
  // Ops name what they allocate.
  json buffers = ttmem_json(dir.path(), {"buffers", "--json", "--kind", "L1"});
  bool tagged = false;
  for (const json& b : buffers.at("buffers")) tagged |= b.at("tag").get<std::string>().rfind("ttnn::", 0) == 0;
  EXPECT_TRUE(tagged) << buffers.dump().substr(0, 2000);
  sim.kill(SIGTERM);
}

// ttnn's program cache: an op with the same name, grid and CBs reuses its program, whose CB set
// was reported on its first launch and stays allocated. A cache hit reports nothing, so every CB
// record of a program is there once; the device's CB figure is what the cached sets cover.
TEST(Sim, LlamaDecodeReportsEachCachedProgramsCbSetOnce) {
  TempDir dir;
  Child sim = held_llama_decode(dir);
  ASSERT_TRUE(sim.expect_line("holding for 30 s", 30000));
  json status = ttmem_json(dir.path(), {"status", "--json"});
  json cbs = ttmem_json(dir.path(), {"buffers", "--json", "--kind", "CB"});
  json programs = ttmem_json(dir.path(), {"buffers", "--json", "--programs"});

  std::map<uint32_t, std::vector<CbExtent>> extents;          // per device
  std::map<std::pair<uint32_t, uint64_t>, uint32_t> records;  // per (device, program)
  std::set<std::tuple<uint32_t, uint64_t, uint64_t, std::string>> seen;
  for (const json& b : cbs.at("buffers")) {
    const uint32_t dev = b.at("device").get<uint32_t>();
    const uint64_t program = b.at("program_id").get<uint64_t>();
    const uint64_t address = b.at("address").get<uint64_t>();
    const json& r = b.at("core_range");
    EXPECT_TRUE(seen.emplace(dev, program, address, r.dump()).second)
        << "program " << program << " reported the CB at " << address << " on " << r.dump()
        << " twice on device " << dev;
    extents[dev].push_back({{r[0].get<uint16_t>(), r[1].get<uint16_t>(), r[2].get<uint16_t>(),
                             r[3].get<uint16_t>()},
                            address + b.at("size_bytes").get<uint64_t>()});
    records[{dev, program}] += 1;
  }
  std::map<uint32_t, uint64_t> program_rows, program_bytes;
  for (const json& p : programs.at("programs")) {
    const uint32_t dev = p.at("device").get<uint32_t>();
    program_rows[dev] += 1;
    program_bytes[dev] += p.at("cb_bytes").get<uint64_t>();
    EXPECT_EQ(p.at("records").get<uint32_t>(),
              (records[{dev, p.at("program_id").get<uint64_t>()}]));
  }
  ASSERT_EQ(status.at("devices").size(), 8u);
  for (const json& d : status.at("devices")) {
    const uint32_t dev = d.at("logical_ids")[0].get<uint32_t>();
    SCOPED_TRACE("device " + std::to_string(dev));
    const uint64_t base = d.at("unreserved_base").get<uint64_t>();
    const CbGrid grid{d.at("grid")[0].get<uint16_t>(), d.at("grid")[1].get<uint16_t>(), base};
    const uint64_t covered = covered_cb_bytes(extents[dev], grid);
    EXPECT_GT(d.at("cb_programs").get<uint64_t>(), 1u);
    EXPECT_EQ(d.at("cb_programs").get<uint64_t>(), program_rows[dev]);
    EXPECT_EQ(d.at("kinds").at("CB").at("reserved_bytes").get<uint64_t>(), covered);
    EXPECT_EQ(d.at("cb_region_end").get<uint64_t>(), cb_region_end(extents[dev], base));
    // The cached programs' sets overlap from the same base: together they hold more bytes than
    // the L1 they cover.
    EXPECT_GT(program_bytes[dev], covered);
  }
  sim.kill(SIGTERM);
}

TEST(Sim, LlamaDecodeFreesEverythingWhenItEnds) {
  TempDir dir;
  RunResult r = run({TTMEM_CLI, "sim", "llama-decode", "--speed", "0"}, {{"TTMEM_DIR", dir.path()}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json status = ttmem_json(dir.path(), {"status", "--json"});
  EXPECT_TRUE(status.at("processes").empty());
  EXPECT_TRUE(ttmem_json(dir.path(), {"leaks", "--json"}).at("leaks").empty());
}

uint64_t number(const std::smatch& m, size_t i) { return std::stoull(m[i].str()); }

TEST(Sim, OutOfMemoryFromFragmentationPrintsTtMetalText) {
  TempDir dir;
  RunResult r = run({TTMEM_CLI, "sim", "oom", "--speed", "0"}, {{"TTMEM_DIR", dir.path()}});
  EXPECT_EQ(r.exit_code, 3);
  std::smatch m;
  std::regex re(
      "Out of Memory: Not enough space to allocate (\\d+) B DRAM buffer across (\\d+) banks, where "
      "each bank needs to store (\\d+) B, but bank size is (\\d+) B \\(allocated: (\\d+) B, free: "
      "(\\d+) B, largest free block: (\\d+) B\\)");
  ASSERT_TRUE(std::regex_search(r.err, m, re)) << r.err;
  uint64_t need = number(m, 3), bank = number(m, 4), allocated = number(m, 5), free = number(m, 6),
           largest = number(m, 7);
  EXPECT_EQ(allocated + free, bank);
  EXPECT_LT(largest, need) << "no block is large enough";
  EXPECT_GE(free, need) << "yet enough bytes are free in total: fragmentation";
}

TEST(Sim, CbClashPrintsTtMetalTextAtTheExactByte) {
  TempDir dir;
  RunResult r = run({TTMEM_CLI, "sim", "cb-clash", "--speed", "0"}, {{"TTMEM_DIR", dir.path()}});
  EXPECT_EQ(r.exit_code, 3);
  std::smatch m;
  std::regex re(
      "Statically allocated circular buffers in program (\\d+) clash with L1 buffers on core "
      "range \\[.*\\]\\. L1 buffer allocated at (\\d+) and static circular buffer region ends at "
      "(\\d+)");
  ASSERT_TRUE(std::regex_search(r.err, m, re)) << r.err;
  EXPECT_LT(number(m, 2), number(m, 3));
  // The state at the failure is what ttmem shows: the lowest L1 buffer is the one named.
  json leaks = ttmem_json(dir.path(), {"leaks", "--json"});
  bool found = false;
  for (const json& l : leaks.at("leaks")) {
    found |= l.at("kind") == "L1" && l.at("address").get<uint64_t>() == number(m, 2);
  }
  EXPECT_TRUE(found) << "the clashing L1 buffer at " << number(m, 2) << " is not in the record";
}

TEST(Sim, TraceTooSmallPrintsTtMetalText) {
  TempDir dir;
  RunResult r =
      run({TTMEM_CLI, "sim", "trace-too-small", "--speed", "0"}, {{"TTMEM_DIR", dir.path()}});
  EXPECT_EQ(r.exit_code, 3);
  std::smatch m;
  std::regex re(
      "Creating trace buffers of size (\\d+)B on MeshDevice (\\d+), but only (\\d+)B is allocated "
      "for trace region\\.");
  ASSERT_TRUE(std::regex_search(r.err, m, re)) << r.err;
  EXPECT_GT(number(m, 1), number(m, 3));
}

TEST(Sim, LeakScenarioExitsWithBuffersThatBecomeLeakRecords) {
  TempDir dir;
  RunResult r = run({TTMEM_CLI, "sim", "leak", "--speed", "0"}, {{"TTMEM_DIR", dir.path()}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  json leaks = ttmem_json(dir.path(), {"leaks", "--json"});
  ASSERT_FALSE(leaks.at("leaks").empty());
  for (const json& l : leaks.at("leaks")) EXPECT_NE(l.at("kind"), "CB");
  EXPECT_TRUE(ttmem_json(dir.path(), {"status", "--json"}).at("processes").empty());
}

// Llama-3.1-70B on a Galaxy, served by three processes at once: every chip holds each process's
// share (7 buffers a layer over 80 layers and 6 model-wide, in DRAM, and the running op's
// activation in L1), decode ops keep allocating and freeing activations while the state is held,
// and stopping the first process stops the copies it started.
TEST(Sim, Llama70bGalaxyHoldsEachProcesssShareOnAll32ChipsUnderChurn) {
  TempDir dir;
  Child sim({TTMEM_CLI, "sim", "llama-70b-galaxy", "--processes", "3", "--speed", "0", "--hold",
             "60"},
            {{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(sim.expect_line("3 of 3 processes loaded", 60000));
  ASSERT_TRUE(sim.expect_line("holding for 60 s", 5000));
  json status = ttmem_json(dir.path(), {"status", "--json"});
  EXPECT_EQ(status.at("processes").size(), 3u);
  const json& devices = status.at("devices");
  ASSERT_EQ(devices.size(), 32u);
  std::map<std::string, uint64_t> l1_allocs;
  for (const json& d : devices) {
    SCOPED_TRACE(d.at("logical_ids").dump());
    EXPECT_EQ(figure(d, "DRAM", "buffers"), 3u * (80 * 7 + 6));
    // One activation a process, two for the moment an op has allocated its output and not yet
    // freed its input.
    EXPECT_GE(figure(d, "L1", "buffers"), 3u);
    EXPECT_LE(figure(d, "L1", "buffers"), 6u);
    // Per chip, a 32nd of 70B parameters at 4 to 8 bits, and the paged KV cache: 2 to 3 GB
    // for each process.
    EXPECT_GT(figure(d, "DRAM", "reserved_bytes"), 3 * 2 * kGiB);
    EXPECT_LT(figure(d, "DRAM", "reserved_bytes"), 3 * 3 * kGiB);
    l1_allocs[d.at("logical_ids").dump()] = figure(d, "L1", "total_allocs");
  }
  ::usleep(300'000);  // six decode ops a process
  json later = ttmem_json(dir.path(), {"status", "--json"});
  for (const json& d : later.at("devices")) {
    EXPECT_GT(figure(d, "L1", "total_allocs"), l1_allocs[d.at("logical_ids").dump()] + 6);
    EXPECT_EQ(figure(d, "DRAM", "buffers"), 3u * (80 * 7 + 6));
  }
  sim.kill(SIGTERM);
  sim.wait();
  // The copies end with the first process (their buffers become leak records).
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = ttmem_json(dir.path(), {"status", "--json"}).at("processes").empty();
    if (!gone) ::usleep(50'000);
  }
  EXPECT_TRUE(gone);
}

TEST(Sim, ProcessesIsForTheGalaxyScenarioOnly) {
  TempDir dir;
  RunResult r = run({TTMEM_CLI, "sim", "leak", "--speed", "0", "--processes", "2"},
                    {{"TTMEM_DIR", dir.path()}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--processes is for llama-70b-galaxy only"), std::string::npos) << r.err;
}

TEST(Sim, SameSeedSameRun) {
  auto run_once = [](uint64_t seed) {
    TempDir dir;
    RunResult r = run({TTMEM_CLI, "sim", "leak", "--speed", "0", "--seed", std::to_string(seed)},
                      {{"TTMEM_DIR", dir.path()}});
    json leaks = ttmem_json(dir.path(), {"leaks", "--json"}).at("leaks");
    std::string out;
    for (json& l : leaks) {
      for (const char* volatile_field : {"pid", "process_start_time", "detected_realtime_ns",
                                         "time_ns", "command"}) {
        l.erase(volatile_field);
      }
    }
    return leaks.dump();
  };
  EXPECT_EQ(run_once(7), run_once(7));
}

}  // namespace
}  // namespace ttmem::test
