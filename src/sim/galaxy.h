// Llama-3.1-70B served on a Galaxy (32 chips) by many processes at once: the live set and the
// constant churn the collector must keep up with at a million live buffers.
#pragma once

#include <cstdint>
#include <iosfwd>

#include "model/device_spec.h"
#include "sim/sim.h"

namespace ttmem::sim {

// Live buffers one process of the scenario holds on each chip once loaded: per layer wqkv, wo,
// w1, w2, w3 and the paged K and V caches, plus the model-wide tensors and the activation of
// the running op.
uint64_t llama_70b_buffers_per_chip();

// Runs `options.processes` processes (this one and forked copies, seeds options.seed + i), each
// opening every chip of the mesh, loading the model's share and then, for options.hold_seconds
// of real time, running decode ops that allocate one activation per chip and free the previous
// one. Prints progress for all of them; "holding for S s" once every process is loaded.
// Returns the exit status (a process that failed makes it kTtMetalErrorExit).
int run_llama_70b_galaxy(const model::BoardSpec& board,
                         const std::optional<model::MeshShape>& mesh, const SimOptions& options,
                         std::ostream& out, std::ostream& err);

}  // namespace ttmem::sim
