// Benchmarks of the client hot path, against a socket-server design measured in the same run, and
// of the collector's ingest and status query. `make bench` runs them and writes
// bench/results.json; bench/README.md records the figures.
//
// The client library initialises once per process and reads TTMEM_DIR then, so main() points it
// at a private directory before any benchmark runs.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>
#include <malloc.h>
#include <sys/mman.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <spawn.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <atomic>
#include <cstdlib>
#include <string_view>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "collector/collector.h"
#include "collector/json.h"
#include "collector/segment_reader.h"
#include "common/format.h"
#include "galaxy_load.h"
#include "processes.h"
#include "protocol/tt_metal_shm.h"
#include "ttmem/ttmem.hpp"

namespace {

using ttmem::bench::Daemon;
using ttmem::bench::spawn;

std::string g_dir;

ttmem_device_desc wormhole(uint32_t id) {
  ttmem_device_desc d = ttmem::make_device_desc();
  d.logical_id = id;
  d.chip_id = 0xB000 + id;
  d.arch = TTMEM_ARCH_WORMHOLE_B0;
  d.grid_x = d.grid_y = 8;
  d.l1_per_core = 1499136;
  d.unreserved_base = 102400;
  d.kinds[TTMEM_KIND_DRAM] = {12ull << 30, 1ull << 30, 0, 12, 32};
  d.kinds[TTMEM_KIND_L1] = {64ull * 1396736, 1396736, 102400, 64, 16};
  d.kinds[TTMEM_KIND_CB] = {64ull * 1396736, 1396736, 102400, 64, 32};
  return d;
}

void register_devices(uint32_t n) {
  static std::once_flag once;
  std::call_once(once, [] {
    for (uint32_t d = 0; d < 8; ++d) {
      ttmem_device_desc desc = wormhole(d);
      ttmem::register_device(desc);
    }
  });
  (void)n;
}

// ---------------------------------------------------------------------------------------------
// Client hot path: one alloc and one free per iteration; each thread on its own device.

void BM_ClientAllocFree(benchmark::State& state) {
  register_devices(8);
  const uint32_t device = uint32_t(state.thread_index());
  ttmem_buffer_desc b = ttmem::make_buffer_desc(device, 0, ttmem::Kind::Dram, 4096, 1 << 20);
  b.page_size = 2048;
  b.num_banks = 12;
  b.size_per_bank = 88064;
  uint64_t id = uint64_t(state.thread_index()) << 48;
  for (auto _ : state) {
    b.buffer_id = ++id;
    ttmem_buffer_alloc(&b);
    ttmem_buffer_free(device, id);
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * 2);
}

// Steady state with a realistic live set: 10,000 buffers stay allocated while one is churned.
void BM_ClientAllocFreeWithLiveSet(benchmark::State& state) {
  register_devices(8);
  const uint32_t device = uint32_t(state.thread_index());
  ttmem_buffer_desc b = ttmem::make_buffer_desc(device, 0, ttmem::Kind::L1, 4096, 32768);
  b.page_size = 2048;
  b.num_banks = 64;
  uint64_t base = (uint64_t(state.thread_index()) << 48) | (1ull << 40);
  for (uint64_t i = 0; i < 10000; ++i) {
    b.buffer_id = base + i;
    ttmem_buffer_alloc(&b);
  }
  uint64_t id = base + 10000;
  for (auto _ : state) {
    b.buffer_id = ++id;
    ttmem_buffer_alloc(&b);
    ttmem_buffer_free(device, id);
  }
  for (uint64_t i = 0; i < 10000; ++i) ttmem_buffer_free(device, base + i);
  state.SetItemsProcessed(int64_t(state.iterations()) * 2);
}

// ---------------------------------------------------------------------------------------------
// Baseline: the design of tt-metal's allocation-server prototype (memory_utilization_monitor). A
// mutex-protected unordered_map insert/erase plus a blocking send() of a 72-byte message on a
// Unix stream socket per event, drained by a server thread.

struct LegacyMessage {  // the 72-byte AllocMessage
  uint8_t type;
  uint8_t pad1[3];
  int32_t device_id;
  uint64_t size;
  uint8_t buffer_type;
  uint8_t pad2[3];
  int32_t process_id;
  uint64_t buffer_id;
  uint64_t timestamp;
  uint64_t dram, l1, l1_small, trace;
};
static_assert(sizeof(LegacyMessage) == 72);

class LegacyBaseline {
 public:
  LegacyBaseline() {
    ::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_);
    drain_ = std::thread([this] {
      char buf[1 << 16];
      while (::read(fds_[1], buf, sizeof buf) > 0) {
      }
    });
  }
  ~LegacyBaseline() {
    ::shutdown(fds_[0], SHUT_RDWR);
    ::close(fds_[0]);
    drain_.join();
    ::close(fds_[1]);
  }
  void report(uint8_t type, int device, uint64_t id, uint64_t size) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (type == 1) {
        live_[id] = size;
      } else {
        live_.erase(id);
      }
    }
    LegacyMessage m{};
    m.type = type;
    m.device_id = device;
    m.size = size;
    m.buffer_id = id;
    m.process_id = int32_t(::getpid());
    ::send(fds_[0], &m, sizeof m, 0);
  }

 private:
  int fds_[2];
  std::thread drain_;
  std::mutex mu_;
  std::unordered_map<uint64_t, uint64_t> live_;
};

LegacyBaseline* g_legacy = nullptr;

void BM_LegacyMutexMapSocket(benchmark::State& state) {
  if (state.thread_index() == 0 && g_legacy == nullptr) g_legacy = new LegacyBaseline();
  // Threads start together only after thread 0's set-up has been published by the framework.
  uint64_t id = uint64_t(state.thread_index()) << 48;
  for (auto _ : state) {
    ++id;
    g_legacy->report(1, state.thread_index(), id, 1 << 20);
    g_legacy->report(2, state.thread_index(), id, 1 << 20);
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * 2);
}

// ---------------------------------------------------------------------------------------------
// Second baseline: a model of tt-metal's own default-on per-chip counters (PR #37218, the
// DeviceMemoryRegion of protocol/tt_metal_shm.h), written from its public behaviour.
// Per event: getpid() (a system call), a relaxed fetch_add on the chip total, a
// scan of the chip slots for the chip, system_clock::now() twice, a scan of the 64 process slots
// for this process, and on free compare-and-swap loops that keep the counters from going below
// zero. The region is shared memory, as tt-metal's file is; this process's slot is the last of
// the 64, so each scan visits them all (a host serving with 64 processes).

namespace tm = ttmem::protocol::tt_metal_shm;

class TtMetalCounterModel {
 public:
  TtMetalCounterModel() {
    void* p = ::mmap(nullptr, sizeof(tm::DeviceMemoryRegion), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    region_ = static_cast<tm::DeviceMemoryRegion*>(p);
    for (size_t c = 0; c < tm::kMaxChips; ++c) region_->chip_stats[c].chip_id = uint32_t(c);
    for (size_t i = 0; i + 1 < tm::kMaxProcesses; ++i) {
      region_->processes[i].pid = 1'000'000 + int(i);
    }
    region_->processes[tm::kMaxProcesses - 1].pid = ::getpid();
  }
  ~TtMetalCounterModel() { ::munmap(region_, sizeof(tm::DeviceMemoryRegion)); }

  void allocate(uint32_t chip, size_t kind, uint64_t bytes) { report(chip, kind, bytes, true); }
  void deallocate(uint32_t chip, size_t kind, uint64_t bytes) { report(chip, kind, bytes, false); }

 private:
  static void add(uint64_t& counter, uint64_t bytes) {
    std::atomic_ref<uint64_t>(counter).fetch_add(bytes, std::memory_order_relaxed);
  }
  // A free never takes a counter below zero.
  static void subtract(uint64_t& counter, uint64_t bytes) {
    std::atomic_ref<uint64_t> c(counter);
    uint64_t old = c.load(std::memory_order_relaxed);
    while (!c.compare_exchange_weak(old, old >= bytes ? old - bytes : 0,
                                    std::memory_order_relaxed)) {
    }
  }
  static uint64_t now_ns() {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
  }
  void report(uint32_t chip, size_t kind, uint64_t bytes, bool allocated) {
    const int32_t pid = ::getpid();
    auto change = [&](uint64_t& counter) {
      allocated ? add(counter, bytes) : subtract(counter, bytes);
    };
    change(region_->total_allocated[kind]);
    for (tm::ChipStats& c : region_->chip_stats) {
      if (std::atomic_ref<uint32_t>(c.chip_id).load(std::memory_order_relaxed) == chip) {
        change(c.allocated[kind]);
        break;
      }
    }
    std::atomic_ref<uint64_t>(region_->last_update_timestamp)
        .store(now_ns(), std::memory_order_relaxed);
    for (tm::ProcessStats& p : region_->processes) {
      if (std::atomic_ref<int32_t>(p.pid).load(std::memory_order_relaxed) == pid) {
        change(p.allocated[kind]);
        std::atomic_ref<uint64_t>(p.last_update_timestamp)
            .store(now_ns(), std::memory_order_relaxed);
        break;
      }
    }
  }

  tm::DeviceMemoryRegion* region_ = nullptr;
};

void BM_TtMetalCounterModel(benchmark::State& state) {
  static TtMetalCounterModel* model = nullptr;
  if (state.thread_index() == 0 && model == nullptr) model = new TtMetalCounterModel();
  const uint32_t chip = uint32_t(state.thread_index());
  for (auto _ : state) {
    model->allocate(chip, 0, 1 << 20);
    model->deallocate(chip, 0, 1 << 20);
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * 2);
}

// ---------------------------------------------------------------------------------------------
// Collector ingest: drain ring events and fold them into per-device, per-kind figures.

struct Fold {
  uint64_t bytes[ttmem::protocol::kMaxDevices][ttmem::protocol::kNumKinds] = {};
  uint64_t events = 0;
  void operator()(uint32_t device, const ttmem::protocol::EventRecord& e) {
    uint64_t delta = e.size_per_bank * e.num_banks;
    if (e.type == uint8_t(ttmem::protocol::EventType::Alloc)) {
      bytes[device][e.kind] += delta;
    } else if (e.type == uint8_t(ttmem::protocol::EventType::Free)) {
      bytes[device][e.kind] -= delta;
    }
    ++events;
  }
};

void BM_CollectorIngest(benchmark::State& state) {
  register_devices(8);
  std::string error;
  auto reader = ttmem::collector::SegmentReader::open(ttmem_segment_path(), &error);
  if (!reader) {
    state.SkipWithError(error.c_str());
    return;
  }
  const uint64_t per_round = reader->ring_capacity() / 2;  // alloc + free pairs fill the ring
  ttmem_buffer_desc b = ttmem::make_buffer_desc(0, 0, ttmem::Kind::Dram, 0, 4096);
  b.num_banks = 12;
  reader->drain({});  // start from the present (what earlier benchmarks wrote counts as dropped)
  const uint64_t dropped_before = reader->dropped_total();
  Fold fold;
  uint64_t id = 1ull << 50;
  for (auto _ : state) {
    state.PauseTiming();
    for (uint64_t i = 0; i < per_round; ++i) {
      b.buffer_id = ++id;
      ttmem_buffer_alloc(&b);
      ttmem_buffer_free(0, id);
    }
    state.ResumeTiming();
    reader->drain(std::ref(fold));
  }
  benchmark::DoNotOptimize(fold.bytes);
  state.SetItemsProcessed(int64_t(state.iterations() * per_round * 2));
  state.counters["dropped"] = double(reader->dropped_total() - dropped_before);
}

// ---------------------------------------------------------------------------------------------
// Status query with 100,000 live buffers over 8 devices: what `ttmem status --json` does.


// Tops the live set up to `count` buffers (benchmarks run in one process and share it).
void populate_live_buffers(uint64_t count) {
  static uint64_t populated = 0;
  register_devices(8);
  for (uint64_t i = populated; i < count; ++i) {
    uint32_t device = uint32_t(i % 8);
    bool dram = i % 3 != 0;
    ttmem_buffer_desc b = ttmem::make_buffer_desc(
        device, (1ull << 52) + i, dram ? ttmem::Kind::Dram : ttmem::Kind::L1,
        dram ? (i / 8) * 8192 : 1396736 - (i / 8 % 64) * 2048, dram ? 65536 : 2048);
    b.page_size = 2048;
    b.num_banks = dram ? 12 : 64;
    b.tag = (i % 5 == 0) ? "ttnn::linear" : "ttnn::matmul";
    ttmem_buffer_alloc(&b);
  }
  populated = std::max(populated, count);
}

void BM_StatusSnapshotInProcess(benchmark::State& state) {
  populate_live_buffers(100000);
  size_t bytes = 0, buffers = 0;
  for (auto _ : state) {
    // As `ttmem status` does it.
    ttmem::collector::Collector c(ttmem::collector::CollectorOptions{
        .dir = g_dir, .reap = false, .list_buffers = false, .watch = false});
    c.refresh();
    std::string out = ttmem::collector::status_json(c.snapshot()).dump(2);
    bytes = out.size();
    buffers = 0;
    for (const auto& d : c.snapshot().devices) {
      for (const auto& k : d.kinds) buffers += k.count;
    }
  }
  state.counters["live_buffers"] = double(buffers);
  state.counters["json_bytes"] = double(bytes);
}

// `ttmem status --json` as a process, as a shell starts it: wall time per run, the child's CPU as
// a counter.
void run_status_cli(benchmark::State& state, const char* cli) {
  double child_cpu_s = 0;
  int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  for (auto _ : state) {
    pid_t pid = spawn({cli, "--dir", g_dir, "status", "--json"}, null);
    int status = 0;
    rusage ru{};
    ::wait4(pid, &status, 0, &ru);
    if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      state.SkipWithError("ttmem failed");
    }
    child_cpu_s += double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                   double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }
  ::close(null);
  state.counters["child_cpu_ms"] = 1000.0 * child_cpu_s / double(state.iterations());
}

void BM_StatusCliProcess(benchmark::State& state) {
  populate_live_buffers(100000);
  const char* cli = std::getenv("TTMEM_BENCH_CLI");
  if (cli == nullptr) {
    state.SkipWithError("TTMEM_BENCH_CLI not set");
    return;
  }
  run_status_cli(state, cli);
}

// Shared memory per live buffer: what the segment occupies (fallocated blocks) once 100,000
// buffers are live, divided by the buffers (fixed overhead included), and the marginal cost of
// one more live buffer, measured between 50,000 and 100,000.
void BM_SegmentBytesPerLiveBuffer(benchmark::State& state) {
  // Measured once: the live set only grows, so a repetition would find it already full.
  static struct stat half, full;
  static bool measured = false;
  for (auto _ : state) {
    if (measured) continue;
    populate_live_buffers(50000);
    ::stat(ttmem_segment_path(), &half);
    populate_live_buffers(100000);
    ::stat(ttmem_segment_path(), &full);
    measured = true;
  }
  state.counters["shm_bytes_per_buffer"] = double(full.st_blocks) * 512.0 / 100000.0;
  state.counters["shm_bytes_per_extra_buffer"] =
      double(full.st_blocks - half.st_blocks) * 512.0 / 50000.0;
}

// Collector memory per live buffer: heap the collector holds after one refresh over 100,000
// live buffers (records, snapshot, per-buffer views as ttmemd keeps them), divided by them.
void BM_CollectorBytesPerLiveBuffer(benchmark::State& state) {
  populate_live_buffers(100000);
  const bool list_buffers = state.range(0) != 0;
  double bytes = 0;
  for (auto _ : state) {
    ::malloc_trim(0);
    struct mallinfo2 before = ::mallinfo2();
    {
      ttmem::collector::Collector c(
          ttmem::collector::CollectorOptions{g_dir, false, false, list_buffers});
      c.refresh();
      struct mallinfo2 after = ::mallinfo2();
      bytes = double((after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd));
      benchmark::DoNotOptimize(c.snapshot().buffers.size());
    }
  }
  state.counters["collector_bytes_per_buffer"] = bytes / 100000.0;
}

// ---------------------------------------------------------------------------------------------
// Freshness: how long after ttmem_buffer_alloc() returns a reader shows the buffer. Each sample
// allocates a buffer at a random moment (so samples fall at every phase of a reader's refresh
// cycle), then asks until device 0's DRAM total_allocs (monotonic, so a free cannot be
// mistaken for it) covers it. The buffer is freed again: the live set stays as given.

int freshness_samples() {
  const char* v = std::getenv("TTMEM_BENCH_FRESHNESS_SAMPLES");
  return v != nullptr ? std::max(1, std::atoi(v)) : 200;
}

// By chip id: under the Galaxy load every chip of every simulated process has a logical id too.
uint64_t parsed_dram_allocs_of_device0(const std::string& status_json) {
  auto j = nlohmann::json::parse(status_json, nullptr, false);
  if (!j.is_object()) return 0;
  for (const auto& d : j["devices"]) {
    if (d["chip_id"] == ttmem::common::format_chip_id(wormhole(0).chip_id)) {
      return d["kinds"]["DRAM"]["total_allocs"].get<uint64_t>();
    }
  }
  return 0;
}

// The same figure found by text. A freshness sample asks every millisecond, and parsing the
// whole status (116 KB at a million buffers, about a millisecond of CPU) each time took one of
// the two CPUs from the daemon and the load it measures. Keys come in order (nlohmann's objects
// are sorted), so the device's "kinds" follow its "chip_id" before any other device begins.
// Checked against the parse once per run (probe_agrees_with_parse).
uint64_t dram_allocs_of_device0(const std::string& status_json) {
  static const std::string chip =
      "\"chip_id\":\"" + ttmem::common::format_chip_id(wormhole(0).chip_id) + "\"";
  static constexpr std::string_view kAllocs = "\"total_allocs\":";
  size_t at = status_json.find(chip);
  if (at != std::string::npos) at = status_json.find("\"DRAM\":{", at);
  if (at != std::string::npos) at = status_json.find(kAllocs, at);
  if (at == std::string::npos) return 0;
  return std::strtoull(status_json.c_str() + at + kAllocs.size(), nullptr, 10);
}

bool probe_agrees_with_parse(const std::string& status_json) {
  return dram_allocs_of_device0(status_json) == parsed_dram_allocs_of_device0(status_json);
}

// Runs a program and returns what it printed; `ok` false when it failed.
std::string run_capture(const std::vector<std::string>& args, bool* ok) {
  int fds[2];
  *ok = false;
  if (::pipe2(fds, O_CLOEXEC) != 0) return "";
  pid_t pid = spawn(args, fds[1]);
  ::close(fds[1]);
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  ::close(fds[0]);
  int status = 0;
  if (pid > 0) ::waitpid(pid, &status, 0);
  *ok = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return out;
}

// Measures samples with `read_allocs` (returns device 0's DRAM total_allocs as the reader sees
// it) and reports the median, p99 and maximum in milliseconds.
template <class ReadAllocs>
void sample_freshness(benchmark::State& state, int samples, ReadAllocs read_allocs) {
  std::vector<double> ms;
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pause_us(0, 30000);
  ttmem_buffer_desc b = ttmem::make_buffer_desc(0, 0, ttmem::Kind::Dram, 1ull << 33, 65536);
  b.page_size = 2048;
  b.num_banks = 12;
  uint64_t id = 3ull << 52;
  for (auto _ : state) {
    for (int i = 0; i < samples; ++i) {
      ::usleep(useconds_t(pause_us(rng)));
      uint64_t seen_before = read_allocs();
      b.buffer_id = ++id;
      auto t0 = std::chrono::steady_clock::now();
      ttmem_buffer_alloc(&b);
      auto deadline = t0 + std::chrono::seconds(10);
      while (read_allocs() <= seen_before) {
        if (std::chrono::steady_clock::now() > deadline) {
          state.SkipWithError("the allocation never became visible");
          return;
        }
      }
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                       .count());
      ttmem_buffer_free(0, b.buffer_id);
    }
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[size_t(q * double(ms.size() - 1) + 0.5)]; };
  state.counters["fresh_p50_ms"] = at(0.5);
  state.counters["fresh_p99_ms"] = at(0.99);
  state.counters["fresh_max_ms"] = ms.back();
  state.counters["samples"] = double(ms.size());
}

template <class ReadAllocs>
void measure_freshness(benchmark::State& state, ReadAllocs read_allocs) {
  populate_live_buffers(uint64_t(state.range(0)));
  sample_freshness(state, freshness_samples(), read_allocs);
}

// `ttmem status --json`, a new process per look, as a user runs it.
void BM_FreshnessStatusCli(benchmark::State& state) {
  const char* cli = std::getenv("TTMEM_BENCH_CLI");
  if (cli == nullptr) {
    state.SkipWithError("TTMEM_BENCH_CLI not set");
    return;
  }
  measure_freshness(state, [&] {
    bool ok = false;
    std::string out = run_capture({cli, "--dir", g_dir, "status", "--json"}, &ok);
    return ok ? dram_allocs_of_device0(out) : 0;
  });
}


// device 0's DRAM total_allocs as ttmemd's /api/v1/status shows it (0 when it did not answer),
// asked at most every millisecond.
uint64_t daemon_dram_allocs_of_device0(httplib::Client& http) {
  auto res = http.Get("/api/v1/status");
  uint64_t allocs = res && res->status == 200 ? dram_allocs_of_device0(res->body) : 0;
  ::usleep(1000);
  return allocs;
}

// ttmemd's /api/v1/status (what `ttmem --server URL status` shows), asked every millisecond.
void BM_FreshnessDaemon(benchmark::State& state) {
  const char* binary = std::getenv("TTMEM_BENCH_DAEMON");
  if (binary == nullptr) {
    state.SkipWithError("TTMEM_BENCH_DAEMON not set");
    return;
  }
  Daemon daemon(binary, g_dir);
  if (daemon.port() <= 0) return state.SkipWithError("ttmemd did not start");
  httplib::Client http("127.0.0.1", daemon.port());
  measure_freshness(state, [&] { return daemon_dram_allocs_of_device0(http); });
}

// ---------------------------------------------------------------------------------------------
// Galaxy scale: 32 chips, `ttmem sim llama-70b-galaxy --processes N` holding the live
// set with a decode op every 50 ms per process (galaxy_load.h). The argument is N; each
// benchmark reports the live buffers it ran over.

std::unique_ptr<ttmem::bench::GalaxyLoad> g_galaxy;
int g_galaxy_processes = 0;

// The load with `processes` processes, started (replacing another size) if needed; false, with
// the benchmark skipped, if it could not be.
bool galaxy_load(benchmark::State& state, int processes) {
  const char* cli = std::getenv("TTMEM_BENCH_CLI");
  if (cli == nullptr) {
    state.SkipWithError("TTMEM_BENCH_CLI not set");
    return false;
  }
  if (g_galaxy_processes != processes) {
    g_galaxy.reset();
    g_galaxy = std::make_unique<ttmem::bench::GalaxyLoad>(cli, g_dir, processes);
    g_galaxy_processes = processes;
  }
  if (!g_galaxy->ok()) state.SkipWithError("ttmem sim llama-70b-galaxy did not load");
  return g_galaxy->ok();
}

uint64_t live_buffers(const ttmem::collector::Snapshot& s) {
  uint64_t n = 0;
  for (const auto& d : s.devices) {
    for (const auto& k : d.kinds) n += k.count;
  }
  return n;
}

// Freshness of ttmemd under the Galaxy load's churn, and the daemon's CPU over the samples (% of
// one core). The million-buffer run takes 40 samples: each can take a refresh of seconds.
// Second argument: 1 incremental (the default), 0 `--full-reads` (the baseline).
void BM_GalaxyFreshnessDaemon(benchmark::State& state) {
  const char* binary = std::getenv("TTMEM_BENCH_DAEMON");
  if (binary == nullptr) return state.SkipWithError("TTMEM_BENCH_DAEMON not set");
  if (!galaxy_load(state, int(state.range(0)))) return;
  register_devices(8);
  Daemon daemon(binary, g_dir, state.range(1) == 0);
  if (daemon.port() <= 0) return state.SkipWithError("ttmemd did not start");
  httplib::Client http("127.0.0.1", daemon.port());
  http.set_read_timeout(60);
  // Until ttmemd shows this process's device 0 at all, no sample can tell a fresh view.
  ttmem_buffer_desc b = ttmem::make_buffer_desc(0, 5ull << 52, ttmem::Kind::Dram, 1ull << 34, 4096);
  b.num_banks = 12;
  ttmem_buffer_alloc(&b);
  ttmem_buffer_free(0, b.buffer_id);
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
       daemon_dram_allocs_of_device0(http) == 0;) {
    if (std::chrono::steady_clock::now() > deadline) return state.SkipWithError("ttmemd silent");
  }
  if (auto res = http.Get("/api/v1/status"); !res || !probe_agrees_with_parse(res->body)) {
    return state.SkipWithError("the freshness probe disagrees with the parsed status");
  }
  // ttmemd's CPU keeping up with the churn, over a window in which nobody asks it anything
  // (a request costs it too: the samples below ask every millisecond).
  auto cpu_pct_over = [&](auto&& during) {
    const double cpu0 = daemon.cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    during();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return 100.0 * (daemon.cpu_seconds() - cpu0) / wall;
  };
  const int quiet_seconds = freshness_samples() < 10 ? 1 : 10;
  state.counters["daemon_cpu_pct"] = cpu_pct_over([&] { ::sleep(unsigned(quiet_seconds)); });
  const int samples = state.range(0) >= ttmem::bench::kGalaxyProcesses1M
                          ? std::min(freshness_samples(), 100)
                          : freshness_samples();
  state.counters["daemon_cpu_pct_sampled"] = cpu_pct_over(
      [&] { sample_freshness(state, samples, [&] { return daemon_dram_allocs_of_device0(http); }); });
  auto res = http.Get("/api/v1/status");
  if (res && res->status == 200) {
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    uint64_t n = 0;
    if (j.is_object()) {
      for (const auto& d : j["devices"]) {
        for (const auto& [kind, k] : d["kinds"].items()) n += k["buffers"].get<uint64_t>();
      }
    }
    state.counters["live_buffers"] = double(n);
  }
}

// `ttmem status --json` as a process (wall time; the child's CPU as a counter). Second argument
// 1: a ttmemd serves the directory, so the command asks it (refreshed for the request); 0: the
// command reads every record itself.
void BM_GalaxyStatusCli(benchmark::State& state) {
  if (!galaxy_load(state, int(state.range(0)))) return;
  std::unique_ptr<Daemon> daemon;
  if (state.range(1) != 0) {
    const char* binary = std::getenv("TTMEM_BENCH_DAEMON");
    if (binary == nullptr) return state.SkipWithError("TTMEM_BENCH_DAEMON not set");
    daemon = std::make_unique<Daemon>(binary, g_dir);
    if (daemon->port() <= 0) return state.SkipWithError("ttmemd did not start");
    const std::string file = g_dir + "/ttmemd.json";
    for (int i = 0; i < 10000 && ::access(file.c_str(), F_OK) != 0; ++i) ::usleep(1000);
    if (::access(file.c_str(), F_OK) != 0) return state.SkipWithError("no ttmemd.json");
  }
  run_status_cli(state, std::getenv("TTMEM_BENCH_CLI"));
}

// One refresh of a long-lived collector that lists buffers, as ttmemd and `ttmem top` keep one:
// CPU time per refresh under the churn. Second argument: incremental (1) or full reads (0).
// Third argument: 1 lists buffers (ttmemd, top), 0 aggregates only.
ttmem::collector::CollectorOptions galaxy_collector_options(bool incremental,
                                                            bool list_buffers = true) {
  ttmem::collector::CollectorOptions o{.dir = g_dir, .reap = false};
  o.incremental = incremental;
  o.list_buffers = list_buffers;
  return o;
}

void BM_GalaxyCollectorRefresh(benchmark::State& state) {
  if (!galaxy_load(state, int(state.range(0)))) return;
  ttmem::collector::Collector c(
      galaxy_collector_options(state.range(1) != 0, state.range(2) != 0));
  c.refresh();
  for (auto _ : state) {
    c.refresh();
    benchmark::DoNotOptimize(c.snapshot().buffers.size());
  }
  state.counters["live_buffers"] = double(live_buffers(c.snapshot()));
}

// Heap a collector holds after one refresh, per live buffer, as ttmemd keeps one: incremental
// (second argument 1: the live sets and per-bank free space, buffers listed only on request),
// or reading everything with the per-buffer views (0: ttmemd --full-reads).
void BM_GalaxyCollectorBytesPerLiveBuffer(benchmark::State& state) {
  if (!galaxy_load(state, int(state.range(0)))) return;
  double bytes = 0, buffers = 1;
  for (auto _ : state) {
    ::malloc_trim(0);
    struct mallinfo2 before = ::mallinfo2();
    {
      const bool incremental = state.range(1) != 0;
      ttmem::collector::Collector c(galaxy_collector_options(incremental, !incremental));
      c.refresh();
      struct mallinfo2 after = ::mallinfo2();
      bytes = double((after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd));
      buffers = double(std::max<uint64_t>(1, live_buffers(c.snapshot())));
    }
  }
  state.counters["collector_bytes_per_buffer"] = bytes / buffers;
  state.counters["live_buffers"] = buffers;
}

// p99 over repetitions (with --benchmark_repetitions=N), beside the framework's median.
double p99(const std::vector<double>& v) {
  std::vector<double> s = v;
  std::sort(s.begin(), s.end());
  return s.empty() ? 0.0 : s[size_t(0.99 * double(s.size() - 1) + 0.5)];
}

}  // namespace

BENCHMARK(BM_ClientAllocFree)->Threads(1)->Threads(2)->UseRealTime()->ComputeStatistics("p99", p99);
BENCHMARK(BM_ClientAllocFreeWithLiveSet)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime()
    ->ComputeStatistics("p99", p99);
BENCHMARK(BM_LegacyMutexMapSocket)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime()
    ->ComputeStatistics("p99", p99);
BENCHMARK(BM_TtMetalCounterModel)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime()
    ->ComputeStatistics("p99", p99);
BENCHMARK(BM_CollectorIngest)->Unit(benchmark::kMicrosecond)->ComputeStatistics("p99", p99);
BENCHMARK(BM_FreshnessStatusCli)->Arg(10000)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FreshnessDaemon)->Arg(10000)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SegmentBytesPerLiveBuffer)->Iterations(1);
BENCHMARK(BM_CollectorBytesPerLiveBuffer)->Arg(0)->Arg(1)->Iterations(1);
BENCHMARK(BM_StatusSnapshotInProcess)->Unit(benchmark::kMillisecond)->ComputeStatistics("p99", p99);
BENCHMARK(BM_StatusCliProcess)->Unit(benchmark::kMillisecond)->ComputeStatistics("p99", p99);
BENCHMARK(BM_FreshnessStatusCli)->Arg(100000)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FreshnessDaemon)->Arg(100000)->Iterations(1)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  char tmpl[] = "/dev/shm/ttmem-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) std::strcpy(tmpl, "/tmp/ttmem-bench");
  g_dir = tmpl;
  ::setenv("TTMEM_DIR", g_dir.c_str(), 1);
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("ttmem_segment_dir", g_dir);
  // Galaxy scale, one load size after another (a size is started once for all of them).
  for (int processes : ttmem::bench::galaxy_process_counts()) {
    benchmark::RegisterBenchmark("BM_GalaxyStatusCli", BM_GalaxyStatusCli)
        ->Args({processes, 0})
        ->Args({processes, 1})
        ->ArgNames({"processes", "daemon"})
        ->Unit(benchmark::kMillisecond)
        ->ComputeStatistics("p99", p99);
    benchmark::RegisterBenchmark("BM_GalaxyCollectorRefresh", BM_GalaxyCollectorRefresh)
        ->Args({processes, 0, 1})
        ->Args({processes, 1, 1})
        ->Args({processes, 0, 0})
        ->Args({processes, 1, 0})
        ->ArgNames({"processes", "incremental", "list"})
        ->Unit(benchmark::kMillisecond)
        ->MeasureProcessCPUTime()
        ->ComputeStatistics("p99", p99);
    benchmark::RegisterBenchmark("BM_GalaxyCollectorBytesPerLiveBuffer",
                                 BM_GalaxyCollectorBytesPerLiveBuffer)
        ->Args({processes, 0})
        ->Args({processes, 1})
        ->ArgNames({"processes", "incremental"})
        ->Iterations(1);
    benchmark::RegisterBenchmark("BM_GalaxyFreshnessDaemon", BM_GalaxyFreshnessDaemon)
        ->Args({processes, 0})
        ->Args({processes, 1})
        ->ArgNames({"processes", "incremental"})
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_galaxy.reset();
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
  return 0;
}
