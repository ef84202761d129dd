#include "sim/workload.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ttmem/ttmem.hpp"

namespace ttmem::sim {
namespace {

// Dispatch commands a traced program adds to the trace: launch message, kernel config and CB
// config, plus runtime arguments for every core it runs on.
constexpr uint64_t kTraceBytesPerProgram = 4096;
constexpr uint64_t kTraceBytesPerCore = 640;

uint64_t element_bytes(model::DataType dtype) {
  return dtype == model::DataType::Float32 ? 4 : 2;
}

}  // namespace

model::BufferConfig buffer_config(const TensorSpec& t) {
  model::BufferConfig c;
  c.type = t.memory.type;
  c.layout = t.memory.layout;
  c.tag = t.tag;
  uint64_t pages = 0;
  if (t.row_major) {
    c.page_size = t.cols * element_bytes(t.dtype);
    pages = t.rows;
  } else {
    c.page_size = model::tile_bytes(t.dtype);
    pages = model::tile_count(t.rows, t.cols);
  }
  c.size = pages * c.page_size;
  if (model::is_sharded(c.layout)) {
    c.num_shards = static_cast<uint32_t>(std::min<uint64_t>(t.memory.shards, pages));
  }
  return c;
}

uint64_t Workload::create(std::string_view op, const TensorSpec& tensor,
                          std::optional<uint32_t> chip) {
  OpScope scope(op);
  const model::BufferConfig config = buffer_config(tensor);
  return chip ? mesh_.allocate_on(*chip, config).id : mesh_.allocate(config).id;
}

std::vector<uint64_t> Workload::run(const OpCall& call) {
  OpScope scope(call.name);
  std::vector<uint64_t> outputs;
  outputs.reserve(call.outputs.size());
  for (const TensorSpec& t : call.outputs) {
    const model::BufferConfig config = buffer_config(t);
    outputs.push_back(call.chip ? mesh_.allocate_on(*call.chip, config).id
                                : mesh_.allocate(config).id);
  }
  if (call.cores > 0) {
    const model::ChipGeometry& g = mesh_.geometry();
    const uint32_t cores_used = std::min(call.cores, g.num_cores());
    std::string key = fmt::format("{}/{}/{}/{}", call.name, cores_used,
                                  call.chip ? int64_t(*call.chip) : -1, fmt::join(call.cbs, ","));
    auto [it, fresh] = programs_.try_emplace(std::move(key), std::string(call.name));
    model::Program& program = it->second;
    if (fresh) {
      const model::CoreRangeSet cores = model::row_major_cores(cores_used, g.grid_x);
      for (uint64_t bytes : call.cbs) program.add_circular_buffer(cores, bytes);
    }
    if (call.chip) {
      mesh_.launch_on(*call.chip, program);
    } else {
      mesh_.launch(program);
    }
    if (capturing_) captured_bytes_ += kTraceBytesPerProgram + kTraceBytesPerCore * call.cores;
  }
  for (uint64_t id : call.consumes) mesh_.deallocate(id);
  return outputs;
}

void Workload::free(uint64_t buffer_id) {
  OpScope scope("ttnn::deallocate");
  mesh_.deallocate(buffer_id);
}

void Workload::clear_program_cache() {
  for (const auto& [key, program] : programs_) mesh_.release_program(program.id());
  programs_.clear();
}

void Workload::begin_capture() {
  capturing_ = true;
  captured_bytes_ = 0;
}

uint64_t Workload::end_capture() {
  OpScope scope("ttnn::end_trace_capture");
  capturing_ = false;
  return mesh_.capture_trace(captured_bytes_).id;
}

}  // namespace ttmem::sim
