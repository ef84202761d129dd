// `ttmem diff` between real recordings and real status snapshots, as a CI gate; `ttmem query`
// against a real tracked process; and the bad input each must refuse in one line.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "harness.h"

namespace ttmem::test {
namespace {

using nlohmann::json;

std::string record_run(const TempDir& dir, const std::string& name, const std::string& scale) {
  const std::string file = dir.path() + "/" + name;
  RunResult r = run({TTMEM_CLI, "--dir", dir.path() + "/seg-" + name, "record", "-o", file, "--",
                     TTMEM_RECORD_LOAD, "--events", "60000", "--scale", scale});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return file;
}

size_t lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

const json* row(const json& diff, uint32_t device, const std::string& kind) {
  for (const auto& r : diff["rows"]) {
    if (r["device"] == device && r.value("kind", "") == kind) return &r;
  }
  return nullptr;
}

TEST(Diff, RecordingsPerDeviceKindAndOpWithAGate) {
  TempDir dir;
  const std::string a = record_run(dir, "a.ttmem", "1");
  const std::string same = record_run(dir, "same.ttmem", "1");
  const std::string twice = record_run(dir, "twice.ttmem", "2");

  // The same workload twice: no change anywhere.
  RunResult eq = run({TTMEM_CLI, "diff", a, same, "--json", "--fail-over", "0"});
  ASSERT_EQ(eq.exit_code, 0) << eq.err;
  json j = json::parse(eq.out);
  const json* dram = row(j, 0, "DRAM");
  ASSERT_NE(dram, nullptr) << eq.out;
  EXPECT_GT((*dram)["a"]["peak_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ((*dram)["delta"]["peak_bytes"], 0);
  EXPECT_EQ((*dram)["percent"]["peak"], 0.0);
  EXPECT_EQ((*dram)["a"]["end_bytes"], 0);  // everything freed
  bool op_rows = false;
  for (const auto& r : j["rows"]) op_rows |= r.contains("op") && r["op"] == "ttnn::matmul";
  EXPECT_TRUE(op_rows) << eq.out;

  // Buffers twice the size: DRAM peaks well above.
  RunResult grew = run({TTMEM_CLI, "diff", a, twice, "--json"});
  ASSERT_EQ(grew.exit_code, 0) << grew.err;
  j = json::parse(grew.out);
  dram = row(j, 0, "DRAM");
  ASSERT_NE(dram, nullptr);
  EXPECT_GT((*dram)["percent"]["peak"].get<double>(), 30.0);  // reserved rounds up per bank
  EXPECT_GT((*dram)["delta"]["peak_bytes"].get<int64_t>(), 0);
  EXPECT_EQ((*dram)["a"]["buffers"], (*dram)["b"]["buffers"]);

  // The gate: past the limit exits 1 with one line naming the device, kind and growth.
  RunResult gate = run({TTMEM_CLI, "diff", a, twice, "--fail-over", "10"});
  EXPECT_EQ(gate.exit_code, 1);
  EXPECT_EQ(lines(gate.err), 1u) << gate.err;
  EXPECT_NE(gate.err.find("memory grew past the limit: device 0 DRAM peak grew"),
            std::string::npos)
      << gate.err;
  EXPECT_NE(gate.out.find("DRAM"), std::string::npos);  // the table still printed
  EXPECT_EQ(run({TTMEM_CLI, "diff", a, twice, "--fail-over", "500"}).exit_code, 0);
  EXPECT_EQ(run({TTMEM_CLI, "diff", a, twice, "--fail-over-bytes", "1"}).exit_code, 1);
  EXPECT_EQ(run({TTMEM_CLI, "diff", twice, a, "--fail-over-bytes", "1"}).exit_code, 0);
}

TEST(Diff, StatusSnapshotsAndBadInput) {
  TempDir dir;
  const std::string seg = dir.path() + "/seg";
  Child load({TTMEM_RECORD_LOAD, "--churn"}, {{"TTMEM_DIR", seg}});
  auto ready = load.read_line();
  ASSERT_TRUE(ready && ready->starts_with("ready ")) << ready.value_or("EOF");
  RunResult st = run({TTMEM_CLI, "--dir", seg, "status", "--json"});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  const std::string a = dir.path() + "/a.json", b = dir.path() + "/b.json";
  std::ofstream(a) << st.out;
  json bigger = json::parse(st.out);
  uint64_t peak = 0;
  for (auto& d : bigger["devices"]) {
    peak = d["kinds"]["DRAM"]["peak_bytes"].get<uint64_t>();
    d["kinds"]["DRAM"]["peak_bytes"] = peak * 3;
  }
  ASSERT_GT(peak, 0u);
  std::ofstream(b) << bigger.dump();
  RunResult same = run({TTMEM_CLI, "diff", a, a, "--fail-over", "0"});
  EXPECT_EQ(same.exit_code, 0) << same.err;
  RunResult gate = run({TTMEM_CLI, "diff", a, b, "--fail-over", "50"});
  EXPECT_EQ(gate.exit_code, 1);
  EXPECT_NE(gate.err.find("device 0 DRAM peak grew"), std::string::npos) << gate.err;
  RunResult js = run({TTMEM_CLI, "diff", a, b, "--json"});
  ASSERT_EQ(js.exit_code, 0) << js.err;
  const json diffed = json::parse(js.out);
  const json* dram = row(diffed, 0, "DRAM");
  ASSERT_NE(dram, nullptr);
  EXPECT_EQ((*dram)["delta"]["peak_bytes"].get<int64_t>(), int64_t(2 * peak));
  EXPECT_DOUBLE_EQ((*dram)["percent"]["peak"].get<double>(), 200.0);

  // Bad input: one clear line, exit 1.
  const std::string rec = record_run(dir, "r.ttmem", "1");
  std::string bytes;
  {
    std::ifstream in(rec, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    bytes = s.str();
  }
  bytes[bytes.size() / 2] ^= 0x40;
  const std::string corrupt = dir.path() + "/corrupt.ttmem", junk = dir.path() + "/junk.txt";
  std::ofstream(corrupt, std::ios::binary) << bytes;
  std::ofstream(junk) << "hello";
  struct Case {
    std::string a, b, says;
  };
  for (const Case& c : {Case{rec, a, "cannot compare a recording"},
                        Case{rec, corrupt, "checksum does not match"},
                        Case{junk, a, "neither a ttmem recording nor"},
                        Case{a, dir.path() + "/missing.json", "cannot open"}}) {
    RunResult r = run({TTMEM_CLI, "diff", c.a, c.b});
    EXPECT_EQ(r.exit_code, 1) << c.says;
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  load.write_line("stop");
}

TEST(Query, FieldsFormatsLoopAndUnknownFields) {
  TempDir dir;
  const std::string seg = dir.path() + "/seg";
  Child load({TTMEM_RECORD_LOAD, "--churn"}, {{"TTMEM_DIR", seg}});
  auto ready = load.read_line();
  ASSERT_TRUE(ready && ready->starts_with("ready ")) << ready.value_or("EOF");
  const uint64_t base = std::stoull(ready->substr(6));

  RunResult q = run({TTMEM_CLI, "--dir", seg, "query", "--fields", "device,chip,kind,used,capacity",
                     "--format", "csv", "--kind", "DRAM"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  std::istringstream in(q.out);
  std::string header, line;
  std::getline(in, header);
  std::getline(in, line);
  EXPECT_EQ(header, "device, chip, kind, used [B], capacity [B]");
  EXPECT_TRUE(line.starts_with("0, 0x7000, DRAM, ")) << line;
  EXPECT_NE(line.find(" B, "), std::string::npos) << line;

  RunResult bare = run({TTMEM_CLI, "--dir", seg, "query", "--fields", "kind,used,buffers",
                        "--format", "csv,noheader,nounits", "--kind", "DRAM"});
  ASSERT_EQ(bare.exit_code, 0) << bare.err;
  ASSERT_EQ(lines(bare.out), 1u) << bare.out;
  // Used: the base set (reserved rounds each buffer up per bank) plus the churn buffer, if live.
  const std::string used = bare.out.substr(6, bare.out.find(", ", 6) - 6);
  EXPECT_GE(std::stoull(used), base) << bare.out;
  EXPECT_TRUE(bare.out.ends_with(", 16\n") || bare.out.ends_with(", 17\n")) << bare.out;

  RunResult bad = run({TTMEM_CLI, "--dir", seg, "query", "--fields", "device,memory.used"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(lines(bad.err), 1u) << bad.err;
  EXPECT_NE(bad.err.find("unknown field \"memory.used\"; valid fields: timestamp,device,chip"),
            std::string::npos)
      << bad.err;
  RunResult bad_format = run({TTMEM_CLI, "--dir", seg, "query", "--format", "json"});
  EXPECT_EQ(bad_format.exit_code, 2);
  EXPECT_EQ(lines(bad_format.err), 1u) << bad_format.err;

  // -l: a header, then the rows again every interval until interrupted.
  Child loop({TTMEM_CLI, "--dir", seg, "query", "--fields", "timestamp,kind,used", "--kind",
              "DRAM", "-l", "0.2"},
             {});
  auto h = loop.read_line();
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, "timestamp, kind, used [B]");
  for (int i = 0; i < 3; ++i) {
    auto r = loop.read_line(5000);
    ASSERT_TRUE(r) << "row " << i;
    EXPECT_NE(r->find("Z, DRAM, "), std::string::npos) << *r;
  }
  loop.kill(SIGINT);
  EXPECT_EQ(loop.wait(), 0);
  load.write_line("stop");
}

}  // namespace
}  // namespace ttmem::test
