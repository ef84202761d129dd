// Soak: ttmemd, a long-lived tracked client and a long-lived collector run together while
// `ttmem sim` scenarios run one after another against the same segment directory, for
// TTMEM_SOAK_SECONDS (default 600; CTest runs a short version). Asserts that the resident memory
// of the client, the collector and the daemon stays flat after a warm-up, and that at the end the
// daemon's totals are exactly what the driver knows is live and leaked.
//
// A second test drives an hour's worth of allocation churn through the client as fast as it
// goes, with a collector refreshing, and asserts that neither grows.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "collector/leak_store.h"
#include "daemon_harness.h"

namespace ttmem::test {

using collector::LeakStore;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMiB = 1ull << 20;

double env_number(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atof(v) : fallback;
}

// Calls `tick` every `period` on its own thread until destroyed, so that sampling and scraping
// go on while the driver blocks on a sim.
class Periodic {
 public:
  Periodic(std::chrono::milliseconds period, std::function<void()> tick)
      : thread_([this, period, tick = std::move(tick)] {
          while (!stop_) {
            tick();
            std::this_thread::sleep_for(period);
          }
        }) {}
  ~Periodic() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_ = false;  // declared before thread_: the thread reads it at once
  std::thread thread_;
};

// The RSS of a set of processes over time.
class RssSampler {
 public:
  struct Sample {
    double seconds;
    uint64_t rss;
  };

  explicit RssSampler(std::map<std::string, pid_t> processes)
      : processes_(std::move(processes)), start_(Clock::now()) {}

  void take() {
    const double now = std::chrono::duration<double>(Clock::now() - start_).count();
    std::lock_guard lock(mu_);
    for (const auto& [name, pid] : processes_) series_[name].push_back({now, rss_bytes(pid)});
  }

  std::map<std::string, std::vector<Sample>> series() const {
    std::lock_guard lock(mu_);
    return series_;
  }

 private:
  const std::map<std::string, pid_t> processes_;
  const Clock::time_point start_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<Sample>> series_;
};

// Flatness: a leak is a trend, so the time after the warm-up is cut into quarters and the
// high-water mark of the last quarter may exceed that of the first by at most max(4 MiB, 5%).
// High-water marks, because RSS swings with the workload and the allocator keeps pages it has
// used: a collector parses each new leak file (a failed T3K run leaves 2,400 records) and ttmemd
// builds a snapshot of every sim's buffers every 100 ms, so single samples differ by 6 to 9 MiB
// while each quarter sees many such peaks. 4 MiB is less than one extra copy of the leak list
// (LeakStore::kMaxRecords records, ~5 MiB), or a byte leaked per report over the 10-minute run;
// 5% scales the bound for a larger working set.
struct Flatness {
  std::string name;
  uint64_t warm_up_high = 0, first_quarter_high = 0, last_quarter_high = 0, last = 0;

  uint64_t allowed() const { return std::max<uint64_t>(4 * kMiB, first_quarter_high / 20); }
  bool flat() const {
    return last_quarter_high > 0 && last_quarter_high <= first_quarter_high + allowed();
  }
  std::string row() const {
    const auto mib = [](uint64_t bytes) { return bytes / double(kMiB); };
    return fmt::format(
        "{:<10} warm-up {:6.1f} MiB  first quarter {:6.1f} MiB  last quarter {:6.1f} MiB  "
        "last {:6.1f} MiB  growth {:+6.2f} MiB (allowed {:.2f})",
        name, mib(warm_up_high), mib(first_quarter_high), mib(last_quarter_high), mib(last),
        mib(last_quarter_high) - mib(first_quarter_high), mib(allowed()));
  }
};

Flatness flatness(const std::string& name, const std::vector<RssSampler::Sample>& samples,
                  double warm_up_seconds) {
  Flatness f{name};
  const double end = samples.empty() ? 0 : samples.back().seconds;
  const double quarter = (end - warm_up_seconds) / 4;
  for (const auto& s : samples) {
    if (s.rss == 0) continue;  // the process had already gone
    if (s.seconds < warm_up_seconds) {
      f.warm_up_high = std::max(f.warm_up_high, s.rss);
    } else if (s.seconds < warm_up_seconds + quarter) {
      f.first_quarter_high = std::max(f.first_quarter_high, s.rss);
    } else if (s.seconds >= end - quarter) {
      f.last_quarter_high = std::max(f.last_quarter_high, s.rss);
    }
    f.last = s.rss;
  }
  return f;
}

// Every sample, as CSV (test, seconds, process, bytes), appended to the file named by
// TTMEM_SOAK_RSS_CSV if set: for plotting a run or finding where growth started.
void write_csv(const RssSampler& sampler) {
  const char* path = std::getenv("TTMEM_SOAK_RSS_CSV");
  if (path == nullptr || *path == '\0') return;
  const bool fresh = !fs::exists(path) || fs::file_size(path) == 0;
  std::ofstream out(path, std::ios::app);
  if (fresh) out << "test,seconds,process,rss_bytes\n";
  const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  for (const auto& [name, samples] : sampler.series()) {
    for (const auto& s : samples) {
      out << fmt::format("{},{:.2f},{},{}\n", test, s.seconds, name, s.rss);
    }
  }
}

void expect_flat(const RssSampler& sampler, double warm_up_seconds) {
  write_csv(sampler);
  for (const auto& [name, samples] : sampler.series()) {
    Flatness f = flatness(name, samples, warm_up_seconds);
    std::printf("rss %s\n", f.row().c_str());
    if (kResidentMemoryIsMeaningful) EXPECT_TRUE(f.flat()) << f.row();
  }
}

// A prometheus sample value: `name{labels} value` for the line that starts with `prefix`; -1 if
// absent.
double metric(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

std::vector<std::string> segment_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".seg") files.push_back(e.path().filename());
  }
  return files;
}

// The scenarios the soak cycles through: clean runs, the three that end in a tt-metal error
// (their state at the error becomes leak records), and the one that leaks on purpose.
struct Scenario {
  const char* name;
  int exit_code;
};
constexpr Scenario kCycle[] = {{"llama-decode", 0}, {"leak", 0},     {"oom", 3},
                               {"llama-decode", 0}, {"cb-clash", 3}, {"trace-too-small", 3}};

// The summary a `leak` sim prints. Compiled before main(), never while the test's threads run:
// compiling a std::regex narrows characters through the global locale's ctype<char> facet,
// whose cache libstdc++ fills without synchronisation, and cpp-httplib compiles its own regex
// in the first request (ThreadSanitizer reported two such compiles at once as a data race).
const std::regex kLeakSummary(R"((\d+) buffers \((\d+) B\) were never freed)");

// What the driver knows each sim leaves behind, in the order the sims ran.
class LeakLedger {
 public:
  static constexpr uint64_t kAnyBytes = ~uint64_t{0};

  // Records a finished sim; returns "" or why its output is not what the scenario promises.
  // A failing scenario's count must have been calibrated first (see needs_calibration).
  std::string add(const Scenario& s, pid_t pid, const RunResult& r) {
    if (r.exit_code != s.exit_code) {
      return fmt::format("{} exited {} (want {}): {}", s.name, r.exit_code, s.exit_code, r.err);
    }
    if (std::string(s.name) == "leak") {
      // "N tests passed; K buffers (B B) were never freed": the sim's own count.
      std::smatch m;
      if (!std::regex_search(r.out, m, kLeakSummary)) return "leak printed no summary: " + r.out;
      sims_.push_back({pid, std::stoull(m[1]), std::stoull(m[2])});
    } else if (s.exit_code != 0) {
      sims_.push_back({pid, calibrated_.at(s.name), kAnyBytes});
    }
    return "";
  }

  // A scenario that fails keeps what it held when tt-metal raised the error; with a fixed seed
  // that is the same every run, so its count is learnt once, from the first run's records.
  bool needs_calibration(const Scenario& s) const {
    return s.exit_code != 0 && !calibrated_.count(s.name);
  }
  void calibrate(const Scenario& s, uint64_t records) { calibrated_[s.name] = records; }

  uint64_t expected_records() const {
    uint64_t n = 0;
    for (const Sim& sim : sims_) n += sim.records;
    return n;
  }
  size_t sims_that_leak() const { return sims_.size(); }

  // Compares /api/v1/leaks with the ledger: every record of a retained sim exactly, nothing from
  // a clean run, the newest sim's records, and retention at its bound: within LeakStore's
  // record limit, and short of it by less than one sim's worth once the sims exceeded it. (Which
  // older sims are retained may differ by one from the run order: two collectors reap.)
  std::string differs(const json& leaks) const {
    std::map<pid_t, std::pair<uint64_t, uint64_t>> got;  // pid -> records, bytes
    uint64_t total = 0;
    for (const json& l : leaks.at("leaks")) {
      auto& g = got[l.at("pid").get<pid_t>()];
      g.first += 1;
      g.second += l.at("size_bytes").get<uint64_t>();
      total += 1;
    }
    uint64_t largest = 0;
    for (const Sim& sim : sims_) largest = std::max(largest, sim.records);
    for (const auto& [pid, g] : got) {
      // A ten-minute run starts more sims than there are pids (pid_max is 32768 by default), so
      // one pid can name two sims: the records must be one of theirs, or all of them.
      std::vector<const Sim*> named;
      for (const Sim& x : sims_) {
        if (x.pid == pid) named.push_back(&x);
      }
      if (named.empty()) return fmt::format("pid {} left leak records but should not have", pid);
      auto holds = [&g](uint64_t records, uint64_t bytes) {
        return g.first == records && (bytes == kAnyBytes || g.second == bytes);
      };
      uint64_t all_records = 0, all_bytes = 0;
      bool matched = false;
      for (const Sim* x : named) {
        matched = matched || holds(x->records, x->bytes);
        all_records += x->records;
        all_bytes = x->bytes == kAnyBytes || all_bytes == kAnyBytes ? kAnyBytes : all_bytes + x->bytes;
      }
      if (!matched && !(named.size() > 1 && holds(all_records, all_bytes))) {
        return fmt::format("pid {}: {} records ({} B), want {} ({} B){}", pid, g.first, g.second,
                           named.back()->records, named.back()->bytes,
                           named.size() > 1 ? fmt::format(" or another of its {} sims'", named.size())
                                            : std::string());
      }
    }
    if (!sims_.empty() && !got.count(sims_.back().pid)) {
      return fmt::format("the newest leaking sim (pid {}) is missing", sims_.back().pid);
    }
    if (expected_records() <= LeakStore::kMaxRecords) {
      std::set<pid_t> pids;
      for (const Sim& x : sims_) pids.insert(x.pid);
      return got.size() == pids.size()
                 ? ""
                 : fmt::format("{} sims' records retained, want all {}", got.size(), pids.size());
    }
    if (total > LeakStore::kMaxRecords || total + largest <= LeakStore::kMaxRecords) {
      return fmt::format("{} records retained: not at the bound of {}", total,
                         LeakStore::kMaxRecords);
    }
    return "";
  }

 private:
  struct Sim {
    pid_t pid;
    uint64_t records;
    uint64_t bytes;
  };
  std::vector<Sim> sims_;
  std::map<std::string, uint64_t> calibrated_;
};

// The number of leak records the daemon holds for `pid`, once its reaping has been published.
uint64_t leak_records_of(const std::string& url, pid_t pid) {
  uint64_t records = 0;
  EXPECT_EQ(eventually([&] {
              records = 0;
              const json leaks = get_json(url, "/api/v1/leaks");
              for (const json& l : leaks.at("leaks")) records += l.at("pid").get<pid_t>() == pid;
              return records > 0 ? "" : fmt::format("no leak records from pid {}", pid);
            }),
            "");
  return records;
}

// Runs `ttmem sim` to completion and returns its pid with its result.
std::pair<pid_t, RunResult> run_sim(const std::string& dir, const Scenario& s, uint64_t seed) {
  // run() does not give the pid; the sim's own segment name does, but it is gone when a clean
  // run ends. A child that reports its pid on stdout first is simplest: exec through sh.
  const std::string cmd = fmt::format("echo $$; exec '{}' --dir '{}' sim {} --speed 0 --seed {}",
                                      TTMEM_CLI, dir, s.name, seed);
  RunResult r = run({"/bin/sh", "-c", cmd});
  const size_t nl = r.out.find('\n');
  const pid_t pid = std::stoi(r.out.substr(0, nl));
  r.out.erase(0, nl + 1);
  return {pid, r};
}

TEST(Soak, SimsAgainstTheDaemonKeepRssFlatAndTotalsExact) {
  const double seconds = env_number("TTMEM_SOAK_SECONDS", 600);
  const double warm_up_fraction = 0.2;
  TempDir dir;
  // The history is kept for the warm-up, so its rings are full before the baseline is taken:
  // its memory is bounded by construction (series x retention / resolution), not by this test.
  const int history_s = std::max(1, int(seconds * warm_up_fraction));
  Ttmemd daemon(dir.path(),
                {"--history-resolution", "100", "--history-retention", std::to_string(history_s)});
  ASSERT_FALSE(daemon.url().empty());
  Child collector(
      {TTMEM_SOAK_COLLECTOR, "--dir", dir.path(), "--history-retention", std::to_string(history_s)},
      {});
  ASSERT_TRUE(collector.expect_line("collecting"));
  const std::string truth_path = dir.path() + "/client-truth.json";
  Child client({TTMEM_SOAK_CLIENT, "--devices", "8", "--rate", "20000", "--truth", truth_path},
               {{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(client.expect_line("churning"));
  // The first request is made here, before the scraping thread starts. cpp-httplib's first
  // Client compiles a function-local static std::regex, published by a guard in cpp-httplib's
  // own code, which is built without ThreadSanitizer: had the scraping thread built it, this
  // thread's use of it would look unordered to ThreadSanitizer, a data race report.
  ASSERT_EQ(http_get(daemon.url(), "/metrics").status, 200);

  RssSampler sampler(
      {{"client", client.pid()}, {"collector", collector.pid()}, {"ttmemd", daemon.child().pid()}});
  std::optional<Periodic> sampling(std::in_place, std::chrono::milliseconds(250),
                                   [&] { sampler.take(); });
  // A dashboard on the daemon meanwhile: Prometheus scrapes every second, a viewer polls the
  // status and, less often, the leak list. Every request must succeed.
  std::atomic<uint64_t> scrapes = 0, failed_scrapes = 0;
  std::optional<Periodic> scraping(std::in_place, std::chrono::milliseconds(1000), [&] {
    std::vector<std::string> paths = {"/metrics", "/api/v1/status"};
    if (scrapes % 10 == 0) paths.push_back("/api/v1/leaks");
    for (const std::string& path : paths) {
      failed_scrapes += http_get(daemon.url(), path).status != 200;
      scrapes += 1;
    }
  });
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  LeakLedger ledger;
  uint64_t runs = 0;
  // The warm-up lasts at least its fraction of the run and 20 s (the allocators of the daemon and
  // the collector take that long to settle under the leak store's copies), and until the bounded
  // stores are full and every scenario has run since: the history (retention = the fraction)
  // and the leak store (LeakStore::kMaxRecords).
  double warm_up_s = std::max(20.0, seconds * warm_up_fraction);
  std::optional<uint64_t> runs_when_leak_store_full;
  while (Clock::now() < deadline) {
    const Scenario& s = kCycle[runs % std::size(kCycle)];
    // Clean runs vary their seed; failing ones keep seed 1 so their leaks repeat exactly.
    const uint64_t seed = s.exit_code == 0 ? 1 + runs : 1;
    auto [pid, result] = run_sim(dir.path(), s, seed);
    SCOPED_TRACE(fmt::format("{} seed {} pid {}", s.name, seed, pid));
    if (ledger.needs_calibration(s)) ledger.calibrate(s, leak_records_of(daemon.url(), pid));
    ASSERT_EQ(ledger.add(s, pid, result), "");
    ++runs;
    if (!runs_when_leak_store_full && ledger.expected_records() > LeakStore::kMaxRecords) {
      runs_when_leak_store_full = runs;
    }
    if (runs_when_leak_store_full && runs == *runs_when_leak_store_full + std::size(kCycle)) {
      warm_up_s = std::max(warm_up_s, std::chrono::duration<double>(Clock::now() - start).count());
    }
  }
  // RSS is judged only after the leak store has filled and a whole cycle has run since; in a
  // sanitized build (slower sims, RSS not judged) a short run need not get that far.
  if (kResidentMemoryIsMeaningful) {
    ASSERT_TRUE(runs_when_leak_store_full && runs > *runs_when_leak_store_full + std::size(kCycle))
        << "the run is too short to fill the leak store and measure after it: give it more "
           "seconds";
  }
  scraping.reset();
  sampling.reset();
  sampler.take();
  std::printf(
      "%llu sims in %.0f s, %llu of them leaving leak records; warm-up %.1f s; %llu "
      "requests to the daemon\n",
      static_cast<unsigned long long>(runs), seconds,
      static_cast<unsigned long long>(ledger.sims_that_leak()), warm_up_s,
      static_cast<unsigned long long>(scrapes.load()));
  EXPECT_EQ(failed_scrapes, 0u);
  expect_flat(sampler, warm_up_s);

  // Exact totals: the client, stopped between steps, holds exactly its resident set; every sim
  // has ended, leaving only the leak records the ledger expects.
  client.write_line("stop");
  ASSERT_TRUE(client.read_line().value_or("").rfind("stopped ", 0) == 0);
  const json truth = read_json_file(truth_path);
  EXPECT_EQ(eventually([&] {
              const json status = get_json(daemon.url(), "/api/v1/status");
              if (std::string why = status_differs(status, truth); !why.empty()) return why;
              if (status.at("devices").size() != truth.at("devices").size()) {
                return "devices besides the client's: " + status.at("devices").dump();
              }
              return ledger.differs(get_json(daemon.url(), "/api/v1/leaks"));
            }),
            "");

  // /metrics agrees with the status document and counts the leak records.
  const std::string metrics = http_get(daemon.url(), "/metrics").body;
  const json leaks = get_json(daemon.url(), "/api/v1/leaks");
  EXPECT_EQ(metric(metrics, "ttmem_leaked_buffers "), double(leaks.at("leaks").size()));
  EXPECT_EQ(metric(metrics, "ttmem_tracked_processes "), 1.0);
  for (uint32_t d = 0; d < truth.at("devices").size(); ++d) {
    const json& dram = truth["devices"][std::to_string(d)]["DRAM"];
    const std::string labels = fmt::format(
        "{{device=\"{}\",chip_id=\"0x{:x}\",kind=\"DRAM\",source=\"ttmem\"}} ", d, kChipIdBase + d);
    EXPECT_EQ(metric(metrics, "ttmem_device_reserved_bytes" + labels),
              dram.at("reserved").get<double>())
        << labels;
    EXPECT_EQ(metric(metrics, "ttmem_device_buffers" + labels), dram.at("count").get<double>());
  }

  // The client frees its resident set and exits: nothing is live and no segment is left.
  client.write_line("free");
  EXPECT_EQ(client.wait(), 0);
  EXPECT_EQ(eventually([&] {
              const json status = get_json(daemon.url(), "/api/v1/status");
              if (!status.at("devices").empty() || !status.at("processes").empty()) {
                return "still tracked: " + status.dump().substr(0, 500);
              }
              const auto stray = segment_files(dir.path());
              return stray.empty() ? std::string() : "stray segment " + stray.front();
            }),
            "");
  collector.write_line("stop");
  EXPECT_EQ(collector.wait(), 0);
}

// An hour of churn, compressed: the reports a runtime makes in an hour of an eager decode loop,
// driven through the client as fast as it goes while a collector refreshes and drains its rings.
// The rate: the simulator's Llama decoder layer runs 21 ops; each allocates its output(s), frees
// an input, and allocates and releases its program's 2 to 6 CBs, ~6 reports an op. 32 layers on
// 8 chips make ~32,000 reports a decode step, and an eager (untraced) decode loop that is bound
// by host dispatch runs ~3 steps a second: ~100,000 reports a second from one process.
// TTMEM_SOAK_CHURN_EVENTS overrides the count (CTest runs a fraction).
constexpr double kDecodeReportsPerSecond = 100'000;

TEST(Soak, AnHourOfChurnKeepsClientAndCollectorRssBounded) {
  const uint64_t events =
      uint64_t(env_number("TTMEM_SOAK_CHURN_EVENTS", kDecodeReportsPerSecond * 3600));
  TempDir dir;
  Child collector({TTMEM_SOAK_COLLECTOR, "--dir", dir.path()}, {});
  ASSERT_TRUE(collector.expect_line("collecting"));
  const std::string truth_path = dir.path() + "/client-truth.json";
  Child client({TTMEM_SOAK_CLIENT, "--devices", "8", "--rate", "0", "--events",
                std::to_string(events), "--truth", truth_path},
               {{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(client.expect_line("churning"));
  RssSampler sampler({{"client", client.pid()}, {"collector", collector.pid()}});
  std::optional<Periodic> sampling(std::in_place, std::chrono::milliseconds(100),
                                   [&] { sampler.take(); });
  const auto stopped = client.read_line(3600 * 1000);
  sampling.reset();
  ASSERT_TRUE(stopped && stopped->rfind("stopped ", 0) == 0) << stopped.value_or("(no output)");
  sampler.take();
  unsigned long long reports = 0;
  double seconds = 0;
  ASSERT_EQ(std::sscanf(stopped->c_str(), "stopped %llu %lf", &reports, &seconds), 2);
  std::printf("%llu reports in %.1f s (%.1f M/s), an hour at %.0f reports/s\n", reports, seconds,
              reports / seconds / 1e6, reports / 3600.0);
  expect_flat(sampler, seconds * 0.2);

  // After all that churn the totals are still exact: the resident set, every report counted.
  const json truth = read_json_file(truth_path);
  EXPECT_EQ(status_differs(ttmem_json(dir.path(), {"status", "--json"}), truth), "");
  client.write_line("free");
  EXPECT_EQ(client.wait(), 0);
  collector.write_line("stop");
  EXPECT_EQ(collector.wait(), 0);
}

}  // namespace
}  // namespace ttmem::test
