// The cost of `ttmem top` per refresh with 8 devices and 10,000 live buffers: the collector
// reads a real segment (written by a child process through the client library), the collect
// step builds the view model, the layout step lays out 160x50, and ncurses paints it (to
// /dev/null through xterm-256color's terminfo). CPU time of this process per refresh is
// reported as a median and p99, and as % of one core at 10 Hz (1 ms per refresh = 1 %).
//
//   build/bench/ttmem_top_bench --benchmark_min_time=3
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "cli/top/collect.h"
#include "cli/top/draw.h"
#include "cli/top/layout.h"
#include "cli/top/source.h"
#include "collector/collector.h"
#include "collector/daemon_file.h"
#include "collector/json.h"
#include "galaxy_load.h"
#include "processes.h"
#include "ttmem/ttmem.hpp"

namespace {

constexpr uint32_t kDevices = 8;
constexpr uint32_t kBuffers = 10'000;
constexpr uint64_t kL1PerCore = 1499136, kBase = 102400;

// The tracked program: registers 8 devices, allocates kBuffers buffers plus a few CBs, says
// "ready" on `ready_fd`, then holds them until `hold_fd` reaches end of file.
[[noreturn]] void workload(int ready_fd, int hold_fd) {
  for (uint32_t d = 0; d < kDevices; ++d) {
    ttmem_device_desc desc = ttmem::make_device_desc();
    desc.logical_id = d;
    desc.chip_id = 0xB000 + d;
    desc.arch = TTMEM_ARCH_WORMHOLE_B0;
    desc.grid_x = desc.grid_y = 8;
    desc.l1_per_core = kL1PerCore;
    desc.unreserved_base = kBase;
    desc.l1_small_size = 65536;
    const uint64_t l1_bank = kL1PerCore - kBase - 65536;
    desc.kinds[TTMEM_KIND_DRAM] = {12ull << 30, 1ull << 30, 0, 12, 32};
    desc.kinds[TTMEM_KIND_L1] = {64 * l1_bank, l1_bank, kBase, 64, 16};
    desc.kinds[TTMEM_KIND_L1_SMALL] = {64 * 65536ull, 65536, kL1PerCore - 65536, 64, 16};
    desc.kinds[TTMEM_KIND_TRACE] = {12ull * 50'000'000, 50'000'000, 1ull << 30, 12, 32};
    desc.kinds[TTMEM_KIND_CB] = {64 * l1_bank, l1_bank, kBase, 64, 32};
    ttmem::register_device(desc);
    ttmem::cb_alloc(d, {{0, 0, 7, 7}}, kBase, 64 * 1024, 1);
  }
  static const char* kOps[] = {"ttnn::matmul", "ttnn::linear", "ttnn::all_gather", "ttnn::rms_norm"};
  static const ttmem::Kind kKinds[] = {ttmem::Kind(TTMEM_KIND_DRAM), ttmem::Kind(TTMEM_KIND_L1),
                                       ttmem::Kind(TTMEM_KIND_L1_SMALL),
                                       ttmem::Kind(TTMEM_KIND_TRACE)};
  for (uint32_t i = 0; i < kBuffers; ++i) {
    uint32_t d = i % kDevices;
    ttmem::Kind kind = kKinds[(i / kDevices) % 4];
    ttmem::OpScope op(kOps[i % 4]);
    uint64_t size = 2048 * (1 + i % 64);
    ttmem_buffer_desc b = ttmem::make_buffer_desc(d, i + 1, kind, 0, size);
    b.page_size = 2048;
    b.num_banks = kind == ttmem::Kind(TTMEM_KIND_DRAM) || kind == ttmem::Kind(TTMEM_KIND_TRACE)
                      ? 12 : 64;
    uint64_t slot = i / kDevices;
    if (kind == ttmem::Kind(TTMEM_KIND_L1)) {
      b.address = kL1PerCore - 65536 - 1024 * (1 + slot % 1000);
    } else if (kind == ttmem::Kind(TTMEM_KIND_L1_SMALL)) {
      b.address = kL1PerCore - 65536 + 64 * (slot % 1000);
    } else {
      b.address = (1 << 20) * (slot % 1000);
    }
    ttmem::buffer_alloc(b);
  }
  (void)!::write(ready_fd, "r", 1);
  char c;
  while (::read(hold_fd, &c, 1) > 0) {
  }
  ::_exit(0);
}

struct Fixture {
  std::string dir;
  pid_t child = -1;
  int hold_fd = -1;

  Fixture() {
    char tmpl[] = "/tmp/ttmem-bench-XXXXXX";
    dir = ::mkdtemp(tmpl);
    ::setenv("TTMEM_DIR", dir.c_str(), 1);
    int ready[2], hold[2];
    if (::pipe(ready) != 0 || ::pipe(hold) != 0) std::abort();
    child = ::fork();
    if (child == 0) {
      ::close(ready[0]);
      ::close(hold[1]);
      workload(ready[1], hold[0]);
    }
    ::close(ready[1]);
    ::close(hold[0]);
    hold_fd = hold[1];
    char c;
    if (::read(ready[0], &c, 1) != 1) std::abort();
    ::close(ready[0]);
  }
  ~Fixture() {
    ::close(hold_fd);
    ::waitpid(child, nullptr, 0);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

double cpu_ms() {
  timespec ts;
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))];
}

// One refresh of the live UI, as run_live() does it: source refresh, history, collect for the
// visible rows, layout, paint; `refresh` refreshes the source and returns its snapshot, showing
// `view`. With `period_ms` the refreshes come that far apart (CPU time is still what is
// measured), so that what a refresh applies is what the tracked processes did over one period,
// as in `ttmem top -r period_ms`; the first refresh (a full read of every segment) is then
// reported apart (first_refresh_cpu_ms).
template <class Refresh>
void top_refreshes_of(benchmark::State& state, Refresh&& refresh, int view, int period_ms) {
  using namespace ttmem::top;
  ::setenv("LINES", "50", 1);
  ::setenv("COLUMNS", "160", 1);
  std::FILE* null_out = std::fopen("/dev/null", "w");
  std::FILE* null_in = std::fopen("/dev/null", "r");
  {
    Screen screen(null_out, null_in, "xterm-256color");
    History history;
    UiState ui;
    ui.view = View(view);
    LayoutOptions lo{screen.width(), screen.height(), true, false, 100};
    std::vector<double> samples;
    uint64_t buffers = 0;
    if (period_ms > 0) {
      const double t0 = cpu_ms();
      history.push(refresh());
      state.counters["first_refresh_cpu_ms"] = cpu_ms() - t0;
    }
    auto next = std::chrono::steady_clock::now();
    for (auto _ : state) {
      if (period_ms > 0) {
        next += std::chrono::milliseconds(period_ms);
        std::this_thread::sleep_until(next);
      }
      double t0 = cpu_ms();
      const ttmem::collector::Snapshot& s = refresh();
      history.push(s);
      CollectRequest r;
      r.sort = ui.sort;
      r.buffer_limit = table_rows(ui, lo) + 1;
      r.map_device = ui.view == View::kL1Map ? 0 : -1;
      ViewModel vm = collect(s, history, r);
      screen.paint(layout(vm, ui, lo));
      samples.push_back(cpu_ms() - t0);
      buffers = 0;
      for (const auto& p : s.processes) buffers += p.buffers + p.cbs;
    }
    double median = percentile(samples, 0.5), p99 = percentile(samples, 0.99);
    state.counters["buffers"] = double(buffers);
    state.counters["cpu_ms_median"] = median;
    state.counters["cpu_ms_p99"] = p99;
    state.counters["core_pct_at_10Hz"] = median;  // ms per refresh x 10/s / 1000 ms x 100 %
    state.counters["core_pct_at_10Hz_p99"] = p99;
  }
  std::fclose(null_out);
  std::fclose(null_in);
}

// The same over a collector of the segments in `dir`: incremental as `ttmem top` runs it, or
// reading everything at each refresh (the baseline, which listed buffers for every view).
void top_refreshes(benchmark::State& state, const std::string& dir, int view,
                   bool incremental = false, int period_ms = 0) {
  ttmem::collector::CollectorOptions co;
  co.dir = dir;
  co.incremental = incremental;
  co.list_buffers = !incremental || view != 0;
  ttmem::collector::Collector c(co);
  top_refreshes_of(
      state,
      [&c]() -> const ttmem::collector::Snapshot& {
        c.refresh();
        return c.snapshot();
      },
      view, period_ms);
}

void BM_TopRefresh(benchmark::State& state) {
  top_refreshes(state, fixture().dir, int(state.range(0)));
}
BENCHMARK(BM_TopRefresh)->Arg(0)->Arg(1)->Arg(2)->ArgName("view")->Unit(benchmark::kMillisecond);

// The collector's share of a refresh: reading the segment and building the Snapshot.
void BM_CollectorRefresh(benchmark::State& state) {
  ttmem::collector::CollectorOptions co;
  co.dir = fixture().dir;
  ttmem::collector::Collector c(co);
  for (auto _ : state) {
    c.refresh();
    benchmark::DoNotOptimize(c.snapshot().buffers.size());
  }
}
BENCHMARK(BM_CollectorRefresh)->Unit(benchmark::kMillisecond);

// What `ttmem top` does with a ttmemd's overview at each refresh, apart from fetching it: the
// status of a Galaxy host (32 chips, 64 processes; about 118 KB, the shape ttmemd serves for
// `ttmem sim llama-70b-galaxy --processes 64`) read into a Snapshot. reader:0 parses it with
// nlohmann::json, as `ttmem --server` and `top` did; reader:1 with JsonDocument, as they do now.
std::string galaxy_status_text() {
  ttmem::collector::Snapshot s;
  s.segment_dir = "/dev/shm/ttmem-0";
  s.taken_realtime_ns = 1'800'000'000'000'000'000;
  s.taken_monotonic_ns = 123'456'789'000;
  for (uint32_t d = 0; d < 32; ++d) {
    ttmem::collector::DeviceView v;
    v.chip_id = 0x2e92fe6737b30000 + d;
    v.logical_ids = {d};
    v.board = "galaxy";
    v.grid_x = 7;
    v.grid_y = 10;
    v.l1_per_core = kL1PerCore;
    v.unreserved_base = kBase;
    v.cb_region_end = kBase + 25088;
    v.cb_programs = 128;
    v.lowest_l1_address = 1495040;
    v.has_l1_buffers = true;
    v.clash_margin = 1367552;
    for (uint32_t k = 0; k < ttmem::collector::kNumKinds; ++k) {
      ttmem::collector::KindUsage& u = v.kinds[k];
      u = {168652046336ull + k, 168902295552ull + d, 168902295552ull, 36224, 36224ull + d, 13263,
           12884901504ull, 70, 1396736, 102400, 853816928, 853816928, 0.25};
    }
    s.devices.push_back(std::move(v));
  }
  for (int p = 0; p < 64; ++p) {
    ttmem::collector::ProcessView v;
    v.pid = 21212 + p;
    v.start_time = 2426645 + uint64_t(p);
    v.command = "python3 -m serve --model llama-70b --mesh 8x4 --replica " + std::to_string(p);
    v.segment = "/dev/shm/ttmem-0/ttmem-" + std::to_string(v.pid) + "-2426645.seg";
    v.segment_check = "held";
    for (uint32_t k = 0; k < ttmem::collector::kNumKinds; ++k) {
      v.reserved[k] = 84451147776 + k;
      v.requested[k] = 84326023168 + k;
    }
    v.buffers = 18144;
    v.cbs = 192;
    v.cb_programs = 64;
    s.processes.push_back(std::move(v));
  }
  return ttmem::collector::status_json(s).dump();
}

void BM_DaemonStatusRead(benchmark::State& state) {
  const std::string text = galaxy_status_text();
  const bool reader = state.range(0) == 1;
  for (auto _ : state) {
    ttmem::collector::Snapshot s;
    if (reader) {
      const auto doc = ttmem::collector::JsonDocument::parse(text);
      s = ttmem::collector::snapshot_from_json(doc.root(), {}, {});
    } else {
      s = ttmem::collector::snapshot_from_json(nlohmann::json::parse(text), nullptr, nullptr);
    }
    benchmark::DoNotOptimize(s.devices.data());
  }
  state.counters["bytes"] = double(text.size());
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
}
BENCHMARK(BM_DaemonStatusRead)->Arg(0)->Arg(1)->ArgName("reader")->Unit(benchmark::kMillisecond);

// The overview at Galaxy scale: 32 chips, `ttmem sim llama-70b-galaxy --processes N`
// holding the live set under churn (galaxy_load.h), in a directory of its own. Second argument:
// 0, a collector reading everything at each refresh (the baseline); 1, the incremental collector
// `ttmem top --direct` runs; 2, what `ttmem top` shows when a ttmemd serves the directory (that
// daemon's overview, the daemon's own CPU reported apart as daemon_core_pct). Needs
// TTMEM_BENCH_CLI (the ttmem binary), and TTMEM_BENCH_DAEMON (ttmemd) for 2.
void BM_TopRefreshGalaxy(benchmark::State& state) {
  const char* cli = std::getenv("TTMEM_BENCH_CLI");
  if (cli == nullptr) return state.SkipWithError("TTMEM_BENCH_CLI not set");
  const char* daemon_binary = std::getenv("TTMEM_BENCH_DAEMON");
  const int mode = int(state.range(1));
  if (mode == 2 && daemon_binary == nullptr) {
    return state.SkipWithError("TTMEM_BENCH_DAEMON not set");
  }
  char tmpl[] = "/dev/shm/ttmem-bench-galaxy-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return state.SkipWithError("mkdtemp failed");
  const std::string dir = tmpl;
  {
    ttmem::bench::GalaxyLoad load(cli, dir, int(state.range(0)));
    if (!load.ok()) {
      state.SkipWithError("ttmem sim llama-70b-galaxy did not load");
    } else if (mode < 2) {
      top_refreshes(state, dir, 0, mode == 1, /*period_ms=*/100);
    } else {
      ttmem::bench::Daemon daemon(daemon_binary, dir);
      ttmem::cli::GlobalOptions global;
      global.dir = dir;
      // The daemon says where it listens in its directory once it serves it.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!ttmem::collector::find_daemon_url(dir) &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      auto source = ttmem::top::open_source(global, "", /*ask_daemon=*/true);
      source->refresh();
      if (source->label().empty()) {
        state.SkipWithError("ttmem top did not find the ttmemd serving the directory");
      } else {
        const double daemon_cpu0 = daemon.cpu_seconds();
        const auto t0 = std::chrono::steady_clock::now();
        top_refreshes_of(
            state,
            [&source]() -> const ttmem::collector::Snapshot& {
              source->refresh();
              return source->snapshot();
            },
            0, /*period_ms=*/100);
        const double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        state.counters["daemon_core_pct"] = 100.0 * (daemon.cpu_seconds() - daemon_cpu0) / wall;
        if (source->label().empty()) state.SkipWithError("the ttmemd stopped answering");
      }
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // Refreshes 100 ms apart: $TTMEM_BENCH_TOP_REFRESHES of them (default 100; reading
  // everything, the baseline, a tenth of that). Sources: 0 reads everything, 1 incremental,
  // 2 via the ttmemd serving the directory.
  const char* refreshes_env = std::getenv("TTMEM_BENCH_TOP_REFRESHES");
  const int refreshes = refreshes_env != nullptr ? std::max(1, std::atoi(refreshes_env)) : 100;
  for (int processes : ttmem::bench::galaxy_process_counts()) {
    benchmark::RegisterBenchmark("BM_TopRefreshGalaxy", BM_TopRefreshGalaxy)
        ->Args({processes, 0})
        ->ArgNames({"processes", "source"})
        ->Iterations(std::max(1, refreshes / 10))
        ->Unit(benchmark::kMillisecond);
    for (int mode : {1, 2}) {
      benchmark::RegisterBenchmark("BM_TopRefreshGalaxy", BM_TopRefreshGalaxy)
          ->Args({processes, mode})
          ->ArgNames({"processes", "source"})
          ->Iterations(refreshes)
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
