// The sustained recording rate: `ttmem record -- ttmem_record_load --events N` end to end (a real
// program reporting as fast as it can, the recorder draining its rings on its own thread and
// writing the file to disk), with the recording read back to check that nothing was lost.
//
// TTMEM_BENCH_RECORD_EVENTS sets N (default 10,000,000); TTMEM_BENCH_RECORD_DIR the directory of
// the file (default /tmp: on disk, not tmpfs, on the machine behind bench/README.md).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "collector/recording.h"

namespace {

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::strtoull(v, nullptr, 10) : fallback;
}

int run_quietly(const std::vector<std::string>& argv) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);  // the recorder's summary line
    if (null >= 0) ::dup2(null, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

void BM_RecordRate(benchmark::State& state) {
  const uint64_t events = env_or("TTMEM_BENCH_RECORD_EVENTS", 10'000'000);
  const char* where = std::getenv("TTMEM_BENCH_RECORD_DIR");
  const std::filesystem::path dir =
      std::filesystem::path(where != nullptr ? where : "/tmp") /
      ("ttmem-record-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "bench.ttmem").string();
  double seconds = 0;
  uint64_t recorded = 0, dropped = 0, bytes = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    int rc = run_quietly({TTMEM_BENCH_CLI, "--dir", (dir / "seg").string(), "record", "-o", file,
                          "--", TTMEM_BENCH_RECORD_LOAD, "--events", std::to_string(events),
                          "--devices", "2"});
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(s);
    if (rc != 0) {
      state.SkipWithError("ttmem record failed");
      break;
    }
    state.PauseTiming();
    std::string error;
    auto r = ttmem::collector::read_recording(file, &error);
    if (!r) {
      state.SkipWithError(error.c_str());
      break;
    }
    seconds += s;
    recorded += r->events.size();
    dropped += r->dropped_events;
    bytes += std::filesystem::file_size(file);
    state.ResumeTiming();
  }
  state.counters["events_per_s"] = seconds > 0 ? double(recorded) / seconds : 0;
  state.counters["MB_per_s"] = seconds > 0 ? double(bytes) / 1e6 / seconds : 0;
  state.counters["events"] = double(recorded) / double(std::max<int64_t>(state.iterations(), 1));
  state.counters["dropped"] = double(dropped);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_RecordRate)->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
