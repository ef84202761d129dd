// Llama-3.1-8B decode, tensor parallel over the chips of a mesh (as tt-metal's Llama demo runs
// it on a T3K).
#pragma once

#include <cstdint>
#include <iosfwd>

#include "sim/rng.h"
#include "sim/workload.h"

namespace ttmem::sim {

struct LlamaRun {
  uint64_t trace_region_size = 50'000'000;
  bool prefill = true;  // run the prefill pass (compile churn) before decode
  uint32_t replay_iterations = 64;
  double replay_seconds = 10.0;  // the plateau, in scaled time
  double hold_seconds = 0.0;     // real time, at the end of replay
};

// The device parameters llama-decode opens the mesh with.
model::DeviceParams llama_device_params(const LlamaRun& run);

// Runs the workload on an open mesh: weights, KV cache, prefill, decode compile, trace capture,
// replay, then frees everything. Throws model::ModelError where tt-metal would fail, and
// std::invalid_argument when the mesh cannot split the model (chip count not dividing 32).
void run_llama_decode(Workload& workload, Rng& rng, const LlamaRun& run, std::ostream& out);

}  // namespace ttmem::sim
