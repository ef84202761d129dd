// Strict command lines and read-only readers: a reader never creates the directory it is pointed
// at (a mistyped --dir is said, not silently made and reported empty), ttmemd waits for a
// missing directory and serves it once a tracked program creates it, and out-of-range numbers
// are usage errors (exit 2) rather than wrapped around or silently clamped. One vocabulary: the
// sort keys of `ttmem buffers`, the API and top, and per core said where it applies.
#include <filesystem>

#include <gtest/gtest.h>

#include "daemon_harness.h"

namespace ttmem::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

RunResult ttmem(std::vector<std::string> args, const std::map<std::string, std::string>& env = {}) {
  args.insert(args.begin(), TTMEM_CLI);
  return run(args, env);
}

TEST(ReadOnlyCommands, NeverCreateTheDirectoryTheyAreGiven) {
  TempDir dir;
  const std::string typo = dir.path() + "/typo/deeper";
  // Named with --dir: one line saying it does not exist, exit 1.
  for (const char* command : {"status", "buffers", "leaks", "query"}) {
    RunResult r = ttmem({"--dir", typo, command});
    EXPECT_EQ(r.exit_code, 1) << command << ": " << r.err;
    EXPECT_EQ(r.out, "") << command;
    EXPECT_NE(r.err.find("segment directory " + typo + " does not exist"), std::string::npos)
        << command << ": " << r.err;
    EXPECT_NE(r.err.find("check --dir"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  RunResult top = ttmem({"--dir", typo, "top", "--once"});
  EXPECT_EQ(top.exit_code, 1) << top.err;
  EXPECT_NE(top.err.find("does not exist"), std::string::npos) << top.err;
  // Given by TTMEM_DIR, `top` says why it shows nothing (the live screen waits for it).
  top = ttmem({"top", "--once"}, {{"TTMEM_DIR", typo}});
  EXPECT_EQ(top.exit_code, 0) << top.err;
  EXPECT_NE(top.out.find("No devices: segment directory " + typo + " does not exist"),
            std::string::npos)
      << top.out;
  EXPECT_FALSE(fs::exists(dir.path() + "/typo"));

  // Given by TTMEM_DIR (the clients' own setting), it is simply not made yet: an empty status
  // that says so, in text and in JSON.
  RunResult text = ttmem({"status"}, {{"TTMEM_DIR", typo}});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("No devices: segment directory " + typo +
                          " does not exist: no program has been tracked with it yet"),
            std::string::npos)
      << text.out;
  RunResult j = ttmem({"status", "--json"}, {{"TTMEM_DIR", typo}});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json status = json::parse(j.out);
  EXPECT_EQ(status.at("segment_dir_missing"), true);
  EXPECT_TRUE(status.at("devices").empty());
  EXPECT_FALSE(fs::exists(dir.path() + "/typo"));
}

TEST(ReadOnlyCommands, DaemonWaitsForAMissingDirectoryAndServesItOnceCreated) {
  TempDir dir;
  const std::string later = dir.path() + "/later";
  Ttmemd d(later);
  ASSERT_FALSE(d.url().empty());
  json before = get_json(d.url(), "/api/v1/status");
  EXPECT_EQ(before.at("segment_dir_missing"), true);
  EXPECT_FALSE(fs::exists(later));

  // The first tracked program creates it; the daemon picks it up without a restart.
  Child load({TTMEM_TESTLOAD, "--devices", "2", "--threads", "1", "--ops", "200", "--phases",
              "1", "--seed", "3", "--truth", dir.path() + "/truth"},
             {{"TTMEM_DIR", later}});
  ASSERT_TRUE(load.expect_line("done"));
  json truth = read_json_file(dir.path() + "/truth.1.json");
  EXPECT_EQ(eventually([&] { return status_differs(get_json(d.url(), "/api/v1/status"), truth); }),
            "");
  EXPECT_EQ(get_json(d.url(), "/api/v1/status").at("segment_dir_missing"), false);
}

TEST(StrictArguments, OutOfRangeNumbersAreUsageErrors) {
  TempDir dir;
  const std::string recording = dir.path() + "/r.ttmem";
  // A real (empty) recording, so `export` fails on its argument and nothing else.
  ASSERT_EQ(ttmem({"--dir", dir.path(), "record", "-o", recording, "--duration", "0.2"}).exit_code,
            0);
  const std::vector<std::vector<std::string>> bad = {
      {"buffers", "--limit", "-5"},
      {"buffers", "--limit", "1e30"},
      {"export", recording, "--format", "json", "--at", "-1"},
      {"export", recording, "--format", "json", "--at", "1e30"},
      {"export", recording, "--format", "json", "--at", "nan"},
      {"record", "-o", recording + ".2", "--duration", "-1"},
      {"sim", "leak", "--seed", "-1"},
      {"sim", "leak", "--speed", "-2"},
      {"sim"},
      {"query", "--loop", "-1"},
      {"report", recording, "--points", "-1"},
      {"top", "--once", "--limit", "-1"},
      {"diff", recording, recording, "--fail-over", "-5"},
      {"model", "--alloc", "DRAM:nonsense"},
      {"model", "--mesh", "3"},
      {"model"},
  };
  for (const auto& args : bad) {
    std::vector<std::string> full = {"--dir", dir.path()};
    full.insert(full.end(), args.begin(), args.end());
    RunResult r = ttmem(full);
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    EXPECT_EQ(r.exit_code, 2) << shown << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << shown;
  }
  EXPECT_FALSE(fs::exists(recording + ".2"));
  // In range, the same options are accepted.
  EXPECT_EQ(ttmem({"--dir", dir.path(), "buffers", "--limit", "5"}).exit_code, 0);
  RunResult at = ttmem({"export", recording, "--format", "json", "--at", "0"});
  EXPECT_EQ(at.exit_code, 0) << at.err;
}

// An option a command does not take, or a word too many, is named in the order it was typed,
// with the command and where its options are listed: one line, exit 2.
TEST(StrictArguments, UnexpectedWordsAreNamedWithTheirCommand) {
  TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"top", "--interval", "1"}, "ttmem top: unexpected: --interval 1; `ttmem top --help`"},
      {{"status", "extra", "words"}, "ttmem status: unexpected: extra words; `ttmem status --help`"},
      {{"sim", "leak", "--nope"}, "ttmem sim: unexpected: --nope; `ttmem sim --help`"},
  };
  for (const auto& [args, said] : cases) {
    std::vector<std::string> full = {"--dir", dir.path()};
    full.insert(full.end(), args.begin(), args.end());
    RunResult r = ttmem(full);
    EXPECT_EQ(r.exit_code, 2) << said;
    EXPECT_EQ(r.err.rfind(said, 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

std::vector<uint64_t> ids_of(const json& list) {
  std::vector<uint64_t> ids;
  for (const json& b : list.at("buffers")) ids.push_back(b.at("buffer_id").get<uint64_t>());
  return ids;
}

// `ttmem buffers --sort` and /api/v1/buffers?sort= take top's eight keys by the same names and
// give the same order; another word is a usage error (exit 2, HTTP 400) naming the eight. A CB
// row says its size is per core: `/core` in the table, size_per_core_bytes in JSON.
TEST(OneVocabulary, SortKeysAreTopsInTheCliAndTheApi) {
  TempDir dir;
  Child load({TTMEM_TESTLOAD, "--devices", "2", "--threads", "1", "--ops", "300", "--phases", "1",
              "--cb-every", "20", "--seed", "5"},
             {{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(load.expect_line("done"));
  Ttmemd d(dir.path());
  ASSERT_FALSE(d.url().empty());
  const std::string keys = "reserved, size, age, address, device, kind, pid, tag";
  for (const char* key : {"reserved", "size", "age", "address", "device", "kind", "pid", "tag"}) {
    RunResult cli = ttmem({"--dir", dir.path(), "buffers", "--sort", key, "--json"});
    ASSERT_EQ(cli.exit_code, 0) << key << ": " << cli.err;
    json ours = json::parse(cli.out);
    ASSERT_GT(ours.at("buffers").size(), 10u) << key;
    EXPECT_EQ(ids_of(ours), ids_of(get_json(d.url(), std::string("/api/v1/buffers?sort=") + key)))
        << key;
    EXPECT_EQ(http_get(d.url(), std::string("/api/v1/programs?sort=") + key).status, 200) << key;
    // Each key's natural order: largest first for the byte counts, lowest first otherwise.
    const json& rows = ours.at("buffers");
    for (size_t i = 1; i < rows.size(); ++i) {
      const json &a = rows[i - 1], &b = rows[i];
      if (key == std::string("reserved")) EXPECT_GE(a["reserved_bytes"], b["reserved_bytes"]);
      if (key == std::string("size")) EXPECT_GE(a["size_bytes"], b["size_bytes"]);
      if (key == std::string("age")) EXPECT_LE(a["time_ns"], b["time_ns"]);
      if (key == std::string("address")) EXPECT_LE(a["address"], b["address"]);
    }
  }
  RunResult bad = ttmem({"--dir", dir.path(), "buffers", "--sort", "bytes"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find(keys), std::string::npos) << bad.err;
  bad = ttmem({"--dir", dir.path(), "top", "--once", "--sort", "bytes"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find(keys), std::string::npos) << bad.err;
  HttpReply refused = http_get(d.url(), "/api/v1/buffers?sort=bytes");
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(json::parse(refused.body).at("error").get<std::string>().find(keys), std::string::npos)
      << refused.body;

  RunResult cbs = ttmem({"--dir", dir.path(), "buffers", "--kind", "CB", "--limit", "3"});
  ASSERT_EQ(cbs.exit_code, 0) << cbs.err;
  EXPECT_NE(cbs.out.find("/core"), std::string::npos) << cbs.out;
  json cb = json::parse(ttmem({"--dir", dir.path(), "buffers", "--kind", "CB", "--json"}).out);
  ASSERT_FALSE(cb.at("buffers").empty());
  for (const json& b : cb.at("buffers")) {
    EXPECT_EQ(b.at("size_per_core_bytes"), b.at("size_bytes"));
    EXPECT_EQ(b.at("reserved_bytes").get<uint64_t>(),
              b.at("size_bytes").get<uint64_t>() * b.at("cores").get<uint64_t>());
  }
  RunResult status = ttmem({"--dir", dir.path(), "status"});
  EXPECT_NE(status.out.find("LARGEST FREE/BANK: one bank's"), std::string::npos) << status.out;
  load.close_stdin();
}

}  // namespace
}  // namespace ttmem::test
