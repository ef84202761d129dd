// The tt-metal adapter's cost per launch as ttnn's program cache grows. ttnn calls track_program
// before every launch of a cached program; the adapter must answer a cache hit in O(1), whatever
// the number of cached programs. The baseline, measured in the same run, is what summing the CBs
// of every cached program on each launch costs (tt-metal #52010: O(N) per call, 750 ms per
// kernel call at its worst). `make bench` runs both; bench/README.md records the figures.
//
// Driven through the hook as tt-metal calls it, over the test tt-metal of
// integrations/tt-metal/tests/fake_tt_metal.h (2026-04 vintage), with the real client library.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fake_tt_metal.h"
#include "ttmem_tt_metal/hooks.hpp"

namespace {

using V = fake::V2026;
using Processor =
    ttmem::tt_metal::GraphProcessor<fake::IGraphProcessor<V>, fake::Traits<V>>;

// N cached programs of two CBs each on one chip, launched once (their CB sets reported), and a
// launch order that visits them all in a scattered order, as a model's many ops would.
struct Cache {
  ttmem::model::MeshDevice model{*ttmem::model::find_board("n150"), {}};
  fake::IDevice chip{0, 0xC000, model, 0};
  ttmem::tt_metal::Mapper<fake::Traits<V>> mapper;
  std::shared_ptr<Processor> processor = std::make_shared<Processor>(mapper);
  std::vector<std::unique_ptr<fake::Program<V>>> programs;
  std::vector<uint32_t> order;

  explicit Cache(size_t n) {
    fake::GraphTracker<V>::instance().clear();
    fake::GraphTracker<V>::instance().push_processor(processor);
    const auto cores = fake::from_model(ttmem::model::row_major_cores(8, 8));
    for (size_t i = 0; i < n; ++i) {
      programs.push_back(std::make_unique<fake::Program<V>>(std::vector<fake::CbConfig>{
          {cores, 2048 * (1 + i % 16), false}, {cores, 4096, false}}));
      programs.back()->set_runtime_id(i + 1);
      processor->track_program(programs.back().get(), &chip);
      programs.back()->impl().allocate_circular_buffers(&chip);
    }
    for (size_t i = 0; i < n; ++i) order.push_back(uint32_t((i * 7919) % n));
  }
  ~Cache() {
    programs.clear();  // each ~ProgramImpl reports its CBs gone
    fake::GraphTracker<V>::instance().clear();
    ttmem_cb_free_all(0);
  }
};

// A launch of a cached program: ttnn's track_program, which the adapter answers.
void BM_AdapterLaunchCacheHit(benchmark::State& state) {
  Cache cache(size_t(state.range(0)));
  fake::IGraphProcessor<V>& hooks = *cache.processor;
  size_t i = 0;
  for (auto _ : state) {
    hooks.track_program(cache.programs[cache.order[i]].get(), &cache.chip);
    if (++i == cache.order.size()) i = 0;
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.counters["cached_programs"] = double(cache.programs.size());
}

// The baseline: a launch that adds up the CBs of every cached program.
void BM_SumOverCacheLaunch(benchmark::State& state) {
  Cache cache(size_t(state.range(0)));
  std::vector<std::vector<uint64_t>> cb_sizes;
  for (const auto& p : cache.programs) {
    std::vector<uint64_t> sizes;
    for (const auto& cb : p->circular_buffers()) sizes.push_back(cb->size());
    cb_sizes.push_back(std::move(sizes));
  }
  for (auto _ : state) {
    uint64_t total = 0;
    for (const auto& sizes : cb_sizes) {
      for (uint64_t s : sizes) total += s;
    }
    benchmark::DoNotOptimize(total);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.counters["cached_programs"] = double(cache.programs.size());
}

double p99(const std::vector<double>& v) {
  std::vector<double> s = v;
  std::sort(s.begin(), s.end());
  return s.empty() ? 0.0 : s[size_t(0.99 * double(s.size() - 1) + 0.5)];
}

}  // namespace

BENCHMARK(BM_AdapterLaunchCacheHit)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10000)
    ->ComputeStatistics("p99", p99);
BENCHMARK(BM_SumOverCacheLaunch)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10000)
    ->ComputeStatistics("p99", p99);

int main(int argc, char** argv) {
  char tmpl[] = "/dev/shm/ttmem-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) std::strcpy(tmpl, "/tmp/ttmem-bench");
  ::setenv("TTMEM_DIR", tmpl, 1);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  return 0;
}
