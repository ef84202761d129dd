// The building blocks of the simulated workloads: tensors placed the way ttnn places them, and
// ops that allocate their outputs, run a program with its CB set, and free what they consumed,
// all under the op's name so the tracker tags every allocation with it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/device.h"
#include "sim/pacer.h"

namespace ttmem::sim {

struct MemoryConfig {
  model::BufferType type = model::BufferType::Dram;
  model::Layout layout = model::Layout::Interleaved;
  uint32_t shards = 0;  // sharded layouts: cores (L1) or banks (DRAM)
};

inline MemoryConfig dram_interleaved() {
  return {};
}
inline MemoryConfig dram_width_sharded(uint32_t banks) {
  return {model::BufferType::Dram, model::Layout::WidthSharded, banks};
}
inline MemoryConfig l1_interleaved() {
  return {model::BufferType::L1, model::Layout::Interleaved, 0};
}
inline MemoryConfig l1_sharded(model::Layout layout, uint32_t cores) {
  return {model::BufferType::L1, layout, cores};
}

// A 2-D tensor (higher dimensions folded into rows). Tiled tensors pad both dimensions to 32 and
// use one tile per page; row-major tensors use one row per page.
struct TensorSpec {
  uint64_t rows = 0;
  uint64_t cols = 0;
  model::DataType dtype = model::DataType::BFloat16;
  MemoryConfig memory;
  bool row_major = false;
  std::string tag;  // empty: tagged with the running op
};

// The buffer a tensor needs: size, page size and shard count.
model::BufferConfig buffer_config(const TensorSpec& tensor);

struct OpCall {
  std::string_view name;  // "ttnn::linear"
  std::vector<TensorSpec> outputs;
  std::vector<uint64_t> consumes;  // buffers freed once the program has run
  uint32_t cores = 0;              // program grid, row-major from core (0,0); 0: no program
  std::vector<uint64_t> cbs;       // bytes per core of each locally allocated CB
  std::optional<uint32_t> chip;    // a device-local op; otherwise it runs on every chip
};

class Workload {
 public:
  Workload(model::MeshDevice& mesh, const Pacer& pacer) : mesh_(mesh), pacer_(pacer) {}

  model::MeshDevice& mesh() { return mesh_; }
  const Pacer& pacer() const { return pacer_; }

  // A tensor placed on the device outside any op's program (an upload: ttnn::as_tensor).
  uint64_t create(std::string_view op, const TensorSpec& tensor,
                  std::optional<uint32_t> chip = std::nullopt);
  // Runs one op; returns its outputs' buffer ids.
  std::vector<uint64_t> run(const OpCall& call);
  void free(uint64_t buffer_id);  // ttnn::deallocate
  // Destroys every cached program, freeing its CB set on every chip (ttnn's
  // clear_program_cache, or closing the device).
  void clear_program_cache();
  size_t cached_programs() const { return programs_.size(); }

  // Ops run between the two become the trace; end_capture() allocates the trace buffer.
  void begin_capture();
  uint64_t end_capture();
  uint64_t captured_bytes() const { return captured_bytes_; }

 private:
  model::MeshDevice& mesh_;
  const Pacer& pacer_;
  // ttnn's program cache: an op with the same name, grid and CBs reuses its program, so its CB
  // set is allocated (and reported) once and stays until the cache is cleared.
  std::map<std::string, model::Program> programs_;
  bool capturing_ = false;
  uint64_t captured_bytes_ = 0;
};

}  // namespace ttmem::sim
