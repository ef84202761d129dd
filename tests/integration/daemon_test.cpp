// ttmemd across real processes: tracked programs (ttmem_testload) with exact ground truth, the
// real daemon on a loopback port, and the real Prometheus server scraping two daemons.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "daemon_harness.h"

namespace ttmem::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::unique_ptr<Child> start_testload(const std::string& dir, const std::string& truth,
                                      uint64_t seed, uint32_t devices = 8) {
  auto c = std::make_unique<Child>(
      std::vector<std::string>{TTMEM_TESTLOAD, "--devices", std::to_string(devices), "--threads",
                               "3", "--ops", "1200", "--phases", "1", "--seed",
                               std::to_string(seed), "--truth", truth},
      std::map<std::string, std::string>{{"TTMEM_DIR", dir}});
  EXPECT_TRUE(c->expect_line("done"));
  return c;
}

TEST(DaemonApi, ServesTheModelExactly) {
  TempDir dir;
  Ttmemd d(dir.path());
  ASSERT_FALSE(d.url().empty());
  std::string truth_prefix = dir.path() + "/truth";
  auto load = start_testload(dir.path(), truth_prefix, 7);
  json truth = read_json_file(truth_prefix + ".1.json");
  EXPECT_EQ(eventually([&] { return status_differs(get_json(d.url(), "/api/v1/status"), truth); }),
            "");

  json procs = get_json(d.url(), "/api/v1/processes");
  ASSERT_EQ(procs.at("processes").size(), 1u);
  EXPECT_EQ(procs["processes"][0]["pid"].get<pid_t>(), load->pid());
  EXPECT_EQ(get_json(d.url(), "/api/v1/devices").at("devices").size(), 8u);

  // Filters select exactly the truth's live buffers of one device and kind.
  uint64_t want = truth["devices"]["3"]["L1"]["count"].get<uint64_t>();
  json b = get_json(d.url(), "/api/v1/buffers?device=3&kind=l1&sort=age");
  EXPECT_EQ(b.at("total").get<uint64_t>(), want);
  for (const auto& x : b.at("buffers")) {
    EXPECT_EQ(x.at("kind"), "L1");
    EXPECT_EQ(x.at("device"), 3);
  }
  json limited = get_json(d.url(), "/api/v1/buffers?limit=5&sort=size");
  ASSERT_EQ(limited.at("buffers").size(), 5u);
  for (size_t i = 1; i < 5; ++i) {
    EXPECT_GE(limited["buffers"][i - 1]["reserved_bytes"].get<uint64_t>(),
              limited["buffers"][i]["reserved_bytes"].get<uint64_t>());
  }

  // A process that exits holding buffers becomes leak records, served at /leaks.
  load->write_line("exit");
  load->wait();
  size_t live = truth.at("live").size();
  EXPECT_EQ(eventually([&] {
              size_t n = get_json(d.url(), "/api/v1/leaks").at("leaks").size();
              return n == live ? "" : std::to_string(n) + " leaks, want " + std::to_string(live);
            }),
            "");
}

// /api/v1/status?fresh=1 has the daemon refresh before it answers, so a status shows what was
// allocated before the request however seldom the daemon refreshes by itself.
TEST(DaemonApi, FreshStatusShowsWhatWasAllocatedBeforeTheRequest) {
  // The truth files apart: a file written into the segment directory wakes the daemon.
  TempDir dir, truth_dir;
  const std::string truth_prefix = truth_dir.path() + "/truth";
  auto load = std::make_unique<Child>(
      std::vector<std::string>{TTMEM_TESTLOAD, "--devices", "2", "--threads", "2", "--ops",
                               "600", "--phases", "2", "--seed", "11", "--truth", truth_prefix},
      std::map<std::string, std::string>{{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(load->expect_line("phase 1"));
  // No timer and no polling within the test: only the segment appearing wakes it by itself.
  Ttmemd d(dir.path(), {"--interval", "60000", "--change-poll", "0"});
  ASSERT_FALSE(d.url().empty());
  const json phase1 = read_json_file(truth_prefix + ".1.json");
  EXPECT_EQ(status_differs(get_json(d.url(), "/api/v1/status?fresh=1"), phase1), "");
  load->write_line("next");
  ASSERT_TRUE(load->expect_line("done"));
  const json phase2 = read_json_file(truth_prefix + ".2.json");
  // Writes to a mapped segment wake nothing: the published status is still phase 1's ...
  EXPECT_NE(status_differs(get_json(d.url(), "/api/v1/status"), phase2), "");
  // ... and a fresh one is phase 2's.
  EXPECT_EQ(status_differs(get_json(d.url(), "/api/v1/status?fresh=1"), phase2), "");
  // Buffers are listed from the same refreshed state.
  const json buffers = get_json(d.url(), "/api/v1/buffers?limit=0");
  uint64_t live = 0;
  for (const auto& [device, kinds] : phase2.at("devices").items()) {
    for (const auto& [kind, k] : kinds.items()) live += k.at("count").get<uint64_t>();
  }
  EXPECT_EQ(buffers.at("total").get<uint64_t>(), live);
  EXPECT_EQ(http_get(d.url(), "/api/v1/status?fresh=2").status, 400);
  EXPECT_EQ(http_get(d.url(), "/api/v1/status?fresh=yes").status, 400);
}

TEST(DaemonApi, RejectsHostileParametersWithAdvice) {
  TempDir dir;
  Ttmemd d(dir.path());
  auto load = start_testload(dir.path(), dir.path() + "/truth", 3, 2);
  // The answers name the tracked devices: wait until the daemon has read them.
  ASSERT_EQ(eventually([&]() -> std::string {
              return get_json(d.url(), "/api/v1/devices").at("devices").size() == 2 ? ""
                                                                                   : "not yet";
            }),
            "");
  struct Case {
    const char* path;
    int status;
    const char* says;
  };
  const Case cases[] = {
      {"/api/v1/buffers?kind=HBM", 400, "use one of: DRAM, L1"},
      {"/api/v1/buffers?device=7", 400, "tracked devices are: 0, 1"},
      {"/api/v1/buffers?device=-1", 400, "whole number"},
      {"/api/v1/buffers?device=99999999999999999999999", 400, "whole number"},
      {"/api/v1/buffers?limit=1e3", 400, "whole number"},
      {"/api/v1/buffers?pid=1", 400, "no tracked process 1"},
      {"/api/v1/buffers?sort=random", 400, "use one of: reserved, size, age, address"},
      {"/api/v1/buffers?kind=DRAM&kind=L1", 400, "more than once"},
      {"/api/v1/buffers?devcie=0", 400, "unknown parameter 'devcie'"},
      {"/api/v1/status?x=%00%ff", 400, "unknown parameter"},
      {"/api/v1/history?kind=%22%3Cscript%3E", 400, "unknown memory kind"},
      {"/api/v1/history?seconds=abc", 400, "whole number"},
      {"/api/v2/status", 404, "try /api/v1/status"},
  };
  for (const auto& c : cases) {
    HttpReply r = http_get(d.url(), c.path);
    EXPECT_EQ(r.status, c.status) << c.path;
    json j = json::parse(r.body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << c.path << " did not answer JSON: " << r.body;
    EXPECT_NE(j.value("error", "").find(c.says), std::string::npos) << c.path << ": " << r.body;
  }
  // Read-only: every method that could change something is refused, on every path.
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE"}) {
    for (const char* path : {"/api/v1/status", "/api/v1/leaks", "/metrics", "/anything"}) {
      HttpReply r = http_request(method, d.url(), path);
      EXPECT_EQ(r.status, 405) << method << " " << path;
      EXPECT_NE(r.body.find("read-only"), std::string::npos) << method << " " << path;
    }
  }
  // The daemon survived all of it.
  EXPECT_EQ(http_get(d.url(), "/api/v1/status").status, 200);
}

TEST(DaemonApi, NonLoopbackNeedsAToken) {
  TempDir dir;
  RunResult refused = run({TTMEMD, "--dir", dir.path(), "--listen", "0.0.0.0:0"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("--token-file"), std::string::npos) << refused.err;

  std::string token_file = dir.path() + "/token";
  std::ofstream(token_file) << "s3cret-token\n";
  Ttmemd d(dir.path(), {"--listen", "0.0.0.0:0", "--token-file", token_file});
  ASSERT_FALSE(d.url().empty());
  std::string local = "http://127.0.0.1:" + std::to_string(d.port());
  EXPECT_EQ(http_get(local, "/api/v1/status").status, 401);
  EXPECT_EQ(http_get(local, "/api/v1/status", "s3cret-tokeX").status, 401);
  EXPECT_EQ(http_get(local, "/metrics", "s3cret").status, 401);
  EXPECT_EQ(http_get(local, "/api/v1/status", "s3cret-token").status, 200);
  EXPECT_EQ(http_get(local, "/metrics", "s3cret-token").status, 200);

  std::ofstream(token_file, std::ios::trunc) << "  \n";
  RunResult empty = run({TTMEMD, "--dir", dir.path(), "--token-file", token_file});
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_NE(empty.err.find("empty"), std::string::npos) << empty.err;
}

TEST(DaemonApi, HistoryIsBoundedByRetention) {
  TempDir dir;
  Ttmemd d(dir.path(), {"--history-resolution", "50", "--history-retention", "1"});
  auto load = start_testload(dir.path(), dir.path() + "/truth", 5, 2);
  json truth = read_json_file(dir.path() + "/truth.1.json");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  json h = get_json(d.url(), "/api/v1/history?device=1&kind=DRAM");
  EXPECT_EQ(h.at("resolution_ms"), 50);
  ASSERT_EQ(h.at("series").size(), 1u);
  const json& points = h["series"][0]["points"];
  // 1 s at 50 ms is at most 20 points, however long the daemon has run.
  EXPECT_LE(points.size(), 20u);
  EXPECT_GE(points.size(), 5u);
  EXPECT_EQ(points.back()[2], truth["devices"]["1"]["DRAM"]["reserved"]);
  for (size_t i = 1; i < points.size(); ++i) {
    EXPECT_LT(points[i - 1][0].get<uint64_t>(), points[i][0].get<uint64_t>());
  }
  json all = get_json(d.url(), "/api/v1/history?seconds=0");
  EXPECT_TRUE(all.at("series").empty() || all["series"][0]["points"].size() <= 1);
  EXPECT_EQ(http_get(d.url(), "/api/v1/history?resolution=1").status, 400);
}

// ---------------------------------------------------------------------------------------------
// /metrics

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value;
};

// Parses the exposition text, failing the test on any line that is not valid.
std::vector<Sample> parse_exposition(const std::string& text,
                                     std::map<std::string, std::string>* types) {
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+]+)$)");
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)")re");
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      (*types)[name] = type;
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    std::smatch m;
    if (!std::regex_match(line, m, kSample)) {
      ADD_FAILURE() << "not an exposition line: " << line;
      continue;
    }
    Sample s{m[1], {}, std::stod(m[4])};
    std::string labels = m[3];
    for (std::sregex_iterator it(labels.begin(), labels.end(), kLabel), end; it != end; ++it) {
      s.labels[(*it)[1]] = (*it)[2];
    }
    EXPECT_TRUE(types->count(s.name)) << s.name << " has no TYPE line before it";
    out.push_back(std::move(s));
  }
  return out;
}

TEST(DaemonMetrics, FollowPrometheusNamingAndStayMonotonic) {
  TempDir dir;
  Ttmemd d(dir.path());
  std::string truth_prefix = dir.path() + "/truth";
  auto load = start_testload(dir.path(), truth_prefix, 11, 4);
  json truth = read_json_file(truth_prefix + ".1.json");
  EXPECT_EQ(eventually([&] { return status_differs(get_json(d.url(), "/api/v1/status"), truth); }),
            "");
  std::map<std::string, std::string> types;
  auto samples = parse_exposition(http_get(d.url(), "/metrics").body, &types);
  std::set<std::string> names;
  double allocs_before = 0;
  for (const auto& s : samples) {
    names.insert(s.name);
    const std::string& type = types[s.name];
    if (type == "counter") {
      EXPECT_TRUE(s.name.ends_with("_total")) << s.name;
    } else {
      EXPECT_EQ(type, "gauge") << s.name;
      EXPECT_FALSE(s.name.ends_with("_total")) << s.name;
    }
    if (s.name.find("bytes") != std::string::npos) {
      EXPECT_TRUE(s.name.ends_with("_bytes") || s.name.ends_with("_bytes_total")) << s.name;
    }
    // Bounded label sets: device metrics never carry a pid or buffer identity; `source` takes
    // two values (ttmem, tt-metal-shm).
    if (s.name.rfind("ttmem_device_", 0) == 0) {
      for (const auto& [k, v] : s.labels) {
        EXPECT_TRUE(k == "device" || k == "chip_id" || k == "kind" || k == "arch" ||
                    k == "board" || k == "source")
            << s.name << " label " << k;
        if (k == "source") EXPECT_TRUE(v == "ttmem" || v == "tt-metal-shm") << v;
      }
    }
    if (s.name == "ttmem_device_reserved_bytes" && s.labels.at("device") == "2") {
      EXPECT_EQ(uint64_t(s.value),
                truth["devices"]["2"][s.labels.at("kind")]["reserved"].get<uint64_t>());
    }
    if (s.name == "ttmem_allocations_total") allocs_before += s.value;
  }
  for (const char* want :
       {"ttmem_build_info", "ttmem_device_allocated_bytes", "ttmem_device_reserved_bytes",
        "ttmem_device_capacity_bytes", "ttmem_device_peak_reserved_bytes",
        "ttmem_device_largest_free_block_bytes", "ttmem_allocations_total", "ttmem_frees_total",
        "ttmem_dropped_events_total", "ttmem_tracked_processes", "ttmem_process_reserved_bytes"}) {
    EXPECT_TRUE(names.count(want)) << want << " missing";
  }
  uint64_t truth_allocs = 0;
  for (auto& [dev, kinds] : truth["devices"].items()) {
    for (auto& [k, v] : kinds.items()) truth_allocs += v["allocs"].get<uint64_t>();
  }
  EXPECT_EQ(uint64_t(allocs_before), truth_allocs);

  // The process frees everything and exits: the device gauges fall to zero, the counters keep
  // their totals (a Prometheus counter must never go down).
  load->write_line("free");
  EXPECT_EQ(load->wait(), 0);
  EXPECT_EQ(eventually([&] {
              auto after = parse_exposition(http_get(d.url(), "/metrics").body, &types);
              double allocs = 0;
              bool processes_gone = false;
              for (const auto& s : after) {
                if (s.name == "ttmem_allocations_total") allocs += s.value;
                if (s.name == "ttmem_tracked_processes") processes_gone = s.value == 0;
              }
              if (!processes_gone) return std::string("process still tracked");
              return allocs >= allocs_before
                         ? std::string()
                         : "allocations_total went down to " + std::to_string(allocs);
            }),
            "");

  Ttmemd quiet(dir.path(), {"--no-process-metrics"});
  EXPECT_EQ(http_get(quiet.url(), "/metrics").body.find("ttmem_process_"), std::string::npos);
}

// The real Prometheus server on a free loopback port, scraping ttmemd instances every second.
class Prometheus {
 public:
  static constexpr const char* kPath = "/usr/bin/prometheus";

  Prometheus(const std::string& work_dir, const std::vector<const Ttmemd*>& targets) {
    std::string config = work_dir + "/prometheus.yml";
    std::ofstream out(config);
    out << "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
        << "scrape_configs:\n  - job_name: ttmem\n    static_configs:\n      - targets: [";
    for (size_t i = 0; i < targets.size(); ++i) {
      out << (i ? ", " : "") << "'127.0.0.1:" << targets[i]->port() << "'";
    }
    out << "]\n";
    out.close();
    int port = free_port();
    url_ = "http://127.0.0.1:" + std::to_string(port);
    targets_ = targets.size();
    child_ = std::make_unique<Child>(
        std::vector<std::string>{
            kPath, "--config.file=" + config, "--storage.tsdb.path=" + work_dir + "/tsdb",
            "--web.listen-address=127.0.0.1:" + std::to_string(port), "--log.level=warn"},
        std::map<std::string, std::string>{});
  }
  ~Prometheus() {
    child_->kill(SIGTERM);
    child_->wait();
  }

  // "" once every target is up.
  std::string targets_down() const {
    HttpReply r = http_get(url_, "/api/v1/targets");
    if (r.status != 200) return "prometheus not answering yet";
    json t = json::parse(r.body);
    size_t up = 0;
    for (const auto& x : t["data"]["activeTargets"]) up += x["health"] == "up";
    return up == targets_ ? "" : fmt(up) + " of " + fmt(targets_) + " targets up";
  }

  // "" when PromQL `sum by (kind) (metric)` equals `want` for every kind (a kind with 0 bytes
  // may be absent).
  std::string sum_by_kind_differs(const std::string& metric,
                                  const std::map<std::string, uint64_t>& want) const {
    HttpReply r = http_get(url_, "/api/v1/query?query=sum%20by%20(kind)%20(" + metric + ")");
    if (r.status != 200) return "query failed: " + r.body;
    json j = json::parse(r.body);
    std::map<std::string, uint64_t> got;
    for (const auto& x : j["data"]["result"]) {
      got[x["metric"]["kind"].get<std::string>()] =
          uint64_t(std::stod(x["value"][1].get<std::string>()));
    }
    for (const auto& [kind, bytes] : want) {
      if (bytes == 0 && !got.count(kind)) continue;
      if (got[kind] != bytes) {
        return metric + " " + kind + ": prometheus says " + fmt(got[kind]) + ", truth " +
               fmt(bytes);
      }
    }
    return "";
  }

 private:
  static std::string fmt(uint64_t v) { return std::to_string(v); }

  std::unique_ptr<Child> child_;
  std::string url_;
  size_t targets_ = 0;
};

#define ASSERT_PROMETHEUS_INSTALLED()                                    \
  ASSERT_EQ(::access(Prometheus::kPath, X_OK), 0)                        \
      << "the Prometheus server is not installed (" << Prometheus::kPath \
      << "): run scripts/install-deps.sh (Debian package 'prometheus')"

// Both targets up, then Prometheus's sums per kind equal the truth (once a scrape after the
// workloads settled has landed).
void expect_prometheus_sums(const Prometheus& prom, const std::map<std::string, uint64_t>& reserved,
                            const std::map<std::string, uint64_t>& requested) {
  EXPECT_EQ(eventually([&] { return prom.targets_down(); }, 30), "");
  EXPECT_EQ(
      eventually([&] { return prom.sum_by_kind_differs("ttmem_device_reserved_bytes", reserved); },
                 20),
      "");
  EXPECT_EQ(prom.sum_by_kind_differs("ttmem_device_allocated_bytes", requested), "");
}

// Two ttmemd instances (two segment directories standing in for two hosts) and the real
// Prometheus scraping both.
struct TwoHosts {
  TempDir a, b, work;
  Ttmemd da{a.path()}, db{b.path()};
  Prometheus prom{work.path(), {&da, &db}};
  bool up() const { return !da.url().empty() && !db.url().empty(); }
};

// The acceptance test: the real Prometheus server scrapes two ttmemd instances (two segment
// directories standing in for two hosts), each with a tracked workload behind it; a PromQL
// `sum by (kind)` across both must equal the two workloads' ground truth.
TEST(DaemonMetrics, RealPrometheusSumsTwoHostsExactly) {
  ASSERT_PROMETHEUS_INSTALLED();
  TwoHosts h;
  ASSERT_TRUE(h.up());

  // Workloads behind both "hosts", with different seeds so their figures differ.
  auto load_a = start_testload(h.a.path(), h.work.path() + "/a", 21);
  auto load_b = start_testload(h.b.path(), h.work.path() + "/b", 22, 5);
  std::map<std::string, uint64_t> want_reserved, want_requested;
  for (const char* prefix : {"/a", "/b"}) {
    json t = read_json_file(h.work.path() + prefix + ".1.json");
    for (auto& [dev, kinds] : t["devices"].items()) {
      for (auto& [kind, v] : kinds.items()) {
        want_reserved[kind] += v["reserved"].get<uint64_t>();
        want_requested[kind] += v["requested"].get<uint64_t>();
      }
    }
  }
  expect_prometheus_sums(h.prom, want_reserved, want_requested);
}

// The same with the simulated tt-metal workload the issue names: llama-decode held behind each
// ttmemd, ground truth from `ttmem --dir DIR status --json` of each directory.
TEST(DaemonMetrics, RealPrometheusSumsTwoSimulatedHostsExactly) {
  ASSERT_PROMETHEUS_INSTALLED();
  TwoHosts h;
  ASSERT_TRUE(h.up());

  auto sim_a = start_held_llama(h.a.path());
  auto sim_b = start_held_llama(h.b.path());
  std::map<std::string, uint64_t> want_reserved, want_requested;
  for (const TempDir* host : {&h.a, &h.b}) {
    json status = ttmem_json(host->path(), {"status", "--json"});
    ASSERT_EQ(status.at("devices").size(), 8u);
    for (const json& d : status.at("devices")) {
      for (auto& [kind, usage] : d.at("kinds").items()) {
        want_reserved[kind] += usage.at("reserved_bytes").get<uint64_t>();
        want_requested[kind] += usage.at("requested_bytes").get<uint64_t>();
      }
    }
  }
  ASSERT_GT(want_reserved["DRAM"], 0u);
  expect_prometheus_sums(h.prom, want_reserved, want_requested);
}

}  // namespace
}  // namespace ttmem::test
