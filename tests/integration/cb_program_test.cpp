// CB sets per program across real processes: programs report CBs through the client library,
// and the collector, `ttmem buffers --programs` and ttmemd's /api/v1/programs show them. Each
// live program keeps its set; the sets overlap from the unreserved base, so a device's CB figure
// is the L1 they cover (cb_oracle.h), never their sum.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <set>
#include <tuple>

#include "cb_oracle.h"
#include "collector/collector.h"
#include "collector/segment_reader.h"
#include "daemon_harness.h"
#include "protocol/segment.h"
#include "ttmem/ttmem.hpp"

namespace ttmem::test {

using collector::Collector;
using collector::CollectorOptions;
using collector::DeviceView;
using collector::SegmentReader;
using collector::Snapshot;

namespace {

using nlohmann::json;

constexpr uint64_t kBase = kUnreservedBase;
constexpr CbGrid kGrid{8, 8, kBase};
constexpr uint32_t kCbKind = uint32_t(Kind::Cb);

// A reporting process forked from the test: it runs its steps one at a time, when told, and
// stays alive (its segment readable) until destroyed. Each step returns a line of text for the
// test to check, e.g. the status codes the client library returned.
class ForkedReporter {
 public:
  using Step = std::function<std::string()>;

  ForkedReporter(const std::string& dir, std::vector<Step> steps) {
    int to_child[2], from_child[2];
    EXPECT_EQ(::pipe(to_child), 0);
    EXPECT_EQ(::pipe(from_child), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(to_child[1]);
      ::close(from_child[0]);
      ::setenv("TTMEM_DIR", dir.c_str(), 1);
      char go;
      for (const Step& step : steps) {
        if (::read(to_child[0], &go, 1) != 1) ::_exit(1);
        const std::string said = step() + "\n";
        if (::write(from_child[1], said.data(), said.size()) != ssize_t(said.size())) ::_exit(1);
      }
      (void)!::read(to_child[0], &go, 1);  // until the test closes the pipe
      ::_exit(0);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    to_ = to_child[1];
    from_ = from_child[0];
  }

  ~ForkedReporter() {
    ::close(to_);
    ::close(from_);
    ::waitpid(pid_, nullptr, 0);
  }

  pid_t pid() const { return pid_; }

  // Runs the next step and returns what it said.
  std::string next() {
    EXPECT_EQ(::write(to_, "g", 1), 1);
    std::string line;
    char c;
    while (::read(from_, &c, 1) == 1 && c != '\n') line += c;
    return line;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
};

std::string registered(std::initializer_list<uint32_t> devices) {
  for (uint32_t d : devices) {
    if (ttmem::register_device(test_device_desc(d)) != TTMEM_OK) return "register failed";
  }
  return "registered";
}

// Program 7 on device 0: 4096 B per core on cores (0,0)-(3,3), then 2048 B above it on
// (0,0)-(1,1). Program 8 on device 0: 1024 B on every core. Program 7 on device 1: 8192 B on
// every core (the same program id on another chip is another set).
std::string report_three_sets() {
  if (std::string r = registered({0, 1}); r != "registered") return r;
  int rc = ttmem::cb_alloc(0, {{0, 0, 3, 3}}, kBase, 4096, 7);
  rc |= ttmem::cb_alloc(0, {{0, 0, 1, 1}}, kBase + 4096, 2048, 7);
  rc |= ttmem::cb_alloc(0, {{0, 0, 7, 7}}, kBase, 1024, 8);
  rc |= ttmem::cb_alloc(1, {{0, 0, 7, 7}}, kBase, 8192, 7);
  return rc == TTMEM_OK ? "reported" : "cb_alloc failed";
}

const std::vector<CbExtent> kProgram7OnDevice0 = {{{0, 0, 3, 3}, kBase + 4096},
                                                  {{0, 0, 1, 1}, kBase + 6144}};
const std::vector<CbExtent> kProgram8OnDevice0 = {{{0, 0, 7, 7}, kBase + 1024}};
const std::vector<CbExtent> kProgram7OnDevice1 = {{{0, 0, 7, 7}, kBase + 8192}};

std::vector<CbExtent> joined(std::vector<CbExtent> a, const std::vector<CbExtent>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const DeviceView& device(const Snapshot& s, uint32_t logical_id) {
  for (const DeviceView& d : s.devices) {
    if (d.chip_id == kChipIdBase + logical_id) return d;
  }
  ADD_FAILURE() << "no device " << logical_id;
  static const DeviceView none;
  return none;
}

TEST(CbSets, FreeProgramFreesOnlyThatProgramsSetOnThatDevice) {
  TempDir dir;
  ForkedReporter reporter(
      dir.path(),
      {report_three_sets,
       [] {
         // Program 7 is destroyed on device 0 only; then it and an unknown program hold nothing.
         const int freed = ttmem::cb_free_program(0, 7);
         const int again = ttmem::cb_free_program(0, 7);
         const int unknown = ttmem::cb_free_program(1, 99);
         return std::to_string(freed) + " " + std::to_string(again) + " " +
                std::to_string(unknown);
       }});
  ASSERT_EQ(reporter.next(), "reported");
  Collector c(CollectorOptions{.dir = dir.path(), .reap = false});
  c.refresh();
  {
    const Snapshot& s = c.snapshot();
    const DeviceView& d0 = device(s, 0);
    // Two overlapping programs: their covered L1 counts each core once.
    const uint64_t covered = covered_cb_bytes(joined(kProgram7OnDevice0, kProgram8OnDevice0), kGrid);
    EXPECT_EQ(covered, 4 * 6144 + 12 * 4096 + 48 * 1024u);
    EXPECT_EQ(d0.kinds[kCbKind].reserved, covered);
    EXPECT_EQ(d0.kinds[kCbKind].requested, covered);
    EXPECT_EQ(d0.kinds[kCbKind].count, 3u);
    EXPECT_EQ(d0.kinds[kCbKind].total_allocs, 3u);
    EXPECT_EQ(d0.cb_programs, 2u);
    EXPECT_EQ(d0.cb_region_end, kBase + 6144);
    EXPECT_EQ(device(s, 1).kinds[kCbKind].reserved, 64 * 8192u);
    ASSERT_EQ(s.processes.size(), 1u);
    EXPECT_EQ(s.processes[0].cb_programs, 3u);
    EXPECT_EQ(s.processes[0].cbs, 4u);
  }

  const std::string freed = std::to_string(TTMEM_OK) + " " + std::to_string(TTMEM_ENOENT) + " " +
                            std::to_string(TTMEM_ENOENT);
  ASSERT_EQ(reporter.next(), freed);
  c.refresh();
  const Snapshot& s = c.snapshot();
  const DeviceView& d0 = device(s, 0);
  EXPECT_EQ(d0.kinds[kCbKind].reserved, covered_cb_bytes(kProgram8OnDevice0, kGrid));
  EXPECT_EQ(d0.kinds[kCbKind].count, 1u);
  EXPECT_EQ(d0.kinds[kCbKind].total_frees, 2u);
  EXPECT_EQ(d0.cb_programs, 1u);
  EXPECT_EQ(d0.cb_region_end, kBase + 1024);
  // The peak is the highest coverage this collector saw, not a sum of sets.
  EXPECT_EQ(d0.kinds[kCbKind].peak,
            covered_cb_bytes(joined(kProgram7OnDevice0, kProgram8OnDevice0), kGrid));
  // Device 1 still holds its program 7.
  const DeviceView& d1 = device(s, 1);
  EXPECT_EQ(d1.kinds[kCbKind].reserved, covered_cb_bytes(kProgram7OnDevice1, kGrid));
  EXPECT_EQ(d1.cb_programs, 1u);
  EXPECT_EQ(d1.kinds[kCbKind].total_frees, 0u);

  // The ring holds one CB_FREE_PROGRAM event for device 0: the program, its bytes and records.
  std::string error;
  auto reader = SegmentReader::open(s.processes[0].segment, &error);
  ASSERT_NE(reader, nullptr) << error;
  std::vector<std::pair<uint32_t, protocol::EventRecord>> frees;
  reader->drain([&](uint32_t dev, const protocol::EventRecord& e) {
    if (e.type == uint8_t(protocol::EventType::CbFreeProgram)) frees.emplace_back(dev, e);
  });
  ASSERT_EQ(frees.size(), 1u);
  EXPECT_EQ(frees[0].first, 0u);
  EXPECT_EQ(frees[0].second.buffer_id, 7u);
  EXPECT_EQ(frees[0].second.size, 16 * 4096 + 4 * 2048u);
  EXPECT_EQ(frees[0].second.size_per_bank, 2u);
}

TEST(CbSets, EachProcessShowsWhatItsOwnSetsCover) {
  TempDir dir;
  // Two processes on the same chip, each with a program 1 of its own.
  ForkedReporter small(dir.path(), {[] {
                         registered({0});
                         return std::to_string(ttmem::cb_alloc(0, {{0, 0, 3, 3}}, kBase, 4096, 1));
                       }});
  ForkedReporter wide(dir.path(), {[] {
                        registered({0});
                        return std::to_string(ttmem::cb_alloc(0, {{0, 0, 7, 7}}, kBase, 2048, 1));
                      }});
  ASSERT_EQ(small.next(), std::to_string(TTMEM_OK));
  ASSERT_EQ(wide.next(), std::to_string(TTMEM_OK));
  json status = ttmem_json(dir.path(), {"status", "--json"});
  ASSERT_EQ(status.at("devices").size(), 1u);
  const json& d = status.at("devices")[0];
  const std::vector<CbExtent> small_set = {{{0, 0, 3, 3}, kBase + 4096}};
  const std::vector<CbExtent> wide_set = {{{0, 0, 7, 7}, kBase + 2048}};
  EXPECT_EQ(d.at("kinds").at("CB").at("reserved_bytes").get<uint64_t>(),
            covered_cb_bytes(joined(small_set, wide_set), kGrid));
  EXPECT_EQ(d.at("cb_programs"), 2);
  EXPECT_EQ(d.at("cb_region_in_use_bytes"), 4096);
  std::map<pid_t, uint64_t> per_process;
  for (const json& p : status.at("processes")) {
    per_process[p.at("pid").get<pid_t>()] = p.at("reserved_bytes").at("CB").get<uint64_t>();
    EXPECT_EQ(p.at("cb_programs"), 1);
  }
  EXPECT_EQ(per_process, (std::map<pid_t, uint64_t>{
                             {small.pid(), covered_cb_bytes(small_set, kGrid)},
                             {wide.pid(), covered_cb_bytes(wide_set, kGrid)}}));
}

// (pid, device, program, records, CB bytes, region end) of each row of a programs document.
using ProgramRow = std::tuple<pid_t, uint32_t, uint64_t, uint32_t, uint64_t, uint64_t>;

std::vector<ProgramRow> program_rows(const json& programs) {
  std::vector<ProgramRow> rows;
  for (const json& p : programs.at("programs")) {
    rows.emplace_back(p.at("pid").get<pid_t>(), p.at("device").get<uint32_t>(),
                      p.at("program_id").get<uint64_t>(), p.at("records").get<uint32_t>(),
                      p.at("cb_bytes").get<uint64_t>(), p.at("region_end").get<uint64_t>());
  }
  return rows;
}

// The rows of report_three_sets, largest first.
std::vector<ProgramRow> three_sets(pid_t pid) {
  return {{pid, 1, 7, 1, 64 * 8192, kBase + 8192},
          {pid, 0, 7, 2, 16 * 4096 + 4 * 2048, kBase + 6144},
          {pid, 0, 8, 1, 64 * 1024, kBase + 1024}};
}

TEST(CbSets, BuffersProgramsListsEachProgramsSetOnce) {
  TempDir dir;
  ForkedReporter reporter(dir.path(), {report_three_sets});
  ASSERT_EQ(reporter.next(), "reported");
  const pid_t pid = reporter.pid();
  EXPECT_EQ(program_rows(ttmem_json(dir.path(), {"buffers", "--programs", "--json"})),
            three_sets(pid));
  EXPECT_EQ(program_rows(ttmem_json(dir.path(), {"buffers", "--programs", "--json", "--device",
                                                 "0", "--limit", "1"})),
            std::vector<ProgramRow>{three_sets(pid)[1]});

  RunResult text = run({TTMEM_CLI, "--dir", dir.path(), "buffers", "--programs"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* column : {"PROGRAM", "CBS", "CB BYTES", "REGION END"}) {
    EXPECT_NE(text.out.find(column), std::string::npos) << column << "\n" << text.out;
  }
  for (const char* cell : {"512.00 KiB", "72.00 KiB", "64.00 KiB", "0x1b000", "0x1a800", "0x19400"}) {
    EXPECT_NE(text.out.find(cell), std::string::npos) << cell << "\n" << text.out;
  }
  EXPECT_NE(text.out.find("do not add up"), std::string::npos) << text.out;

  RunResult wrong_kind =
      run({TTMEM_CLI, "--dir", dir.path(), "buffers", "--programs", "--kind", "L1"});
  EXPECT_NE(wrong_kind.exit_code, 0);
  EXPECT_NE(wrong_kind.err.find("--programs lists CB sets"), std::string::npos) << wrong_kind.err;
}

TEST(CbSets, ApiProgramsServesEachProgramsSetAndRejectsBadParameters) {
  TempDir dir;
  ForkedReporter reporter(dir.path(), {report_three_sets});
  ASSERT_EQ(reporter.next(), "reported");
  Ttmemd d(dir.path());
  ASSERT_FALSE(d.url().empty());
  const pid_t pid = reporter.pid();
  EXPECT_EQ(eventually([&] {
              return program_rows(get_json(d.url(), "/api/v1/programs")) == three_sets(pid)
                         ? ""
                         : get_json(d.url(), "/api/v1/programs").dump();
            }),
            "");
  EXPECT_EQ(program_rows(get_json(d.url(), "/api/v1/programs?device=1")),
            std::vector<ProgramRow>{three_sets(pid)[0]});
  // Oldest first: program 7 on device 0 was reported first.
  EXPECT_EQ(std::get<2>(program_rows(get_json(d.url(), "/api/v1/programs?sort=age"))[0]), 7u);
  EXPECT_EQ(std::get<1>(program_rows(get_json(d.url(), "/api/v1/programs?sort=age"))[0]), 0u);
  const std::pair<const char*, const char*> refused[] = {
      {"/api/v1/programs?kind=CB", "unknown parameter 'kind'"},
      {"/api/v1/programs?device=5", "tracked devices are: 0, 1"},
      {"/api/v1/programs?sort=random", "use one of: reserved, size, age, address"},
      {"/api/v1/programs?pid=1", "no tracked process 1"},
  };
  for (const auto& [path, says] : refused) {
    HttpReply r = http_get(d.url(), path);
    EXPECT_EQ(r.status, 400) << path;
    EXPECT_NE(r.body.find(says), std::string::npos) << path << ": " << r.body;
  }
}

}  // namespace
}  // namespace ttmem::test
