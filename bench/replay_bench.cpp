// `ttmem replay` throughput: recorded events per second through the model (target >= 5 M/s).
//
// The stream has the shape of a decode run on one Wormhole chip: 300 long-lived DRAM weights,
// then op after op: two DRAM activations and one sharded L1 activation allocated, every tenth op
// a program's CB set reported (64 programs, as a program cache reuses them), the activations
// freed. About 2 % of the events are CB reports.
#include <benchmark/benchmark.h>

#include "model/replay.h"

namespace {

using ttmem::model::BufferType;
using ttmem::model::Layout;
using ttmem::model::ReplayEvent;

ttmem::model::ReplayInput decode_stream(size_t ops) {
  ttmem::model::ReplayInput in;
  in.chips.push_back({.board = "n150",
                      .grid_x = 8,
                      .grid_y = 8,
                      .l1_unreserved_base = 102'400,
                      .l1_small_size = 32'768,
                      .trace_region_size = 0,
                      .dram_bank_base = 32});
  uint64_t next_id = 1;
  auto alloc = [&](BufferType type, uint64_t size, uint32_t page, uint16_t shards) {
    in.events.push_back({.type = ReplayEvent::Type::Alloc,
                         .kind = uint8_t(type),
                         .layout = uint8_t(shards ? Layout::WidthSharded : Layout::Interleaved),
                         .num_banks = shards,
                         .page_size = page,
                         .buffer_id = next_id,
                         .size = size,
                         .size_per_bank = size / (shards ? shards : 12)});
    return next_id++;
  };
  auto free = [&](uint64_t id) {
    in.events.push_back({.type = ReplayEvent::Type::Free, .buffer_id = id});
  };
  for (int i = 0; i < 300; ++i) alloc(BufferType::Dram, 12 * 1088 * (64 + i % 32), 1088, 0);
  for (size_t op = 0; op < ops; ++op) {
    const uint64_t a = alloc(BufferType::Dram, 12 * 2048 * (1 + op % 8), 2048, 0);
    const uint64_t b = alloc(BufferType::Dram, 12 * 2048 * (2 + op % 5), 2048, 0);
    const uint64_t c = alloc(BufferType::L1, 64 * 2048 * (1 + op % 4), 2048, 64);
    if (op % 10 == 0) {
      in.events.push_back({.type = ReplayEvent::Type::CbAlloc,
                           .kind = uint8_t(ttmem::model::kCbKind),
                           .buffer_id = op % 64,
                           .address = 102'400,
                           .size = 32 * 1024 * (1 + op % 3)});
    }
    free(a);
    free(b);
    free(c);
  }
  return in;
}

void BM_Replay(benchmark::State& state) {
  const ttmem::model::ReplayInput in = decode_stream(size_t(state.range(0)));
  const ttmem::model::ReplayConfig config = ttmem::model::recorded_config(in);
  for (auto _ : state) {
    const ttmem::model::ReplayResult r = ttmem::model::replay(in, config);
    if (r.failure) state.SkipWithError(r.failure->error.what());
    benchmark::DoNotOptimize(r.events);
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(in.events.size()));
}
BENCHMARK(BM_Replay)->Arg(100'000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
