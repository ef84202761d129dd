// Capacity plans: a device, its parameters and a list of allocate/free/program/trace steps run
// through the model (`ttmem model`). Plans come from JSON (format in docs/model.md) or are built
// in code; running one records every step's outcome and stops at the first tt-metal failure.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "model/device.h"
#include "model/errors.h"

namespace ttmem::model {

// Bad plan input (JSON or sizes): the message says where and what to write instead.
class PlanError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "117440512", "112MiB", "1.5GiB", "64KB" (binary suffixes K/KiB/M/MiB/G/GiB, decimal KB/MB/GB).
std::optional<uint64_t> parse_size(std::string_view text);

struct PlanStep {
  enum class Op { Allocate, Free, Program, Trace, ReleaseTrace };
  Op op = Op::Allocate;
  std::string name;  // names a buffer, program or trace for later steps
  BufferConfig buffer;
  std::optional<uint32_t> chip;  // a device-local allocation or program
  std::vector<CircularBufferConfig> cbs;
  std::optional<uint64_t> program_id;  // program: the id to use (default: the next one)
  uint64_t trace_bytes = 0;
};
std::string_view op_name(PlanStep::Op op);

struct Plan {
  std::string device = "n150";
  DeviceParams params;
  std::vector<PlanStep> steps;
};

// Reads {"device": ..., "params": {...}, "steps": [...]} (or a bare array of steps) onto `base`.
Plan parse_plan(const nlohmann::json& json, Plan base = {});

struct StepResult {
  const PlanStep* step = nullptr;
  std::optional<Buffer> buffer;  // allocate / trace
  uint64_t program_id = 0;       // program
  uint64_t cb_region_end = 0;    // program
};

struct PlanResult {
  const BoardSpec* board = nullptr;
  ChipGeometry geometry;
  MeshShape mesh;
  std::vector<StepResult> steps;                   // the steps that ran, the failed one last
  std::optional<ModelError> error;                 // the tt-metal failure that stopped the plan
  std::vector<std::array<MemoryView, 4>> views;    // per chip: DRAM, L1, L1_SMALL, TRACE at the end
  std::vector<uint64_t> cb_region_end;             // per chip at the end
  std::vector<std::optional<uint64_t>> lowest_l1;  // per chip at the end
  uint64_t peak_trace_bytes = 0;                   // highest total of captured traces
  uint64_t peak_l1_small_per_bank = 0;             // highest L1_SMALL span from the top of L1
};

inline constexpr std::array<BufferType, 4> kViewTypes = {BufferType::Dram, BufferType::L1,
                                                         BufferType::L1Small, BufferType::Trace};

// Runs the plan. Throws PlanError for input that cannot describe a run (unknown device, a free
// of a name never allocated, parameters that leave no memory).
PlanResult run_plan(const Plan& plan);

}  // namespace ttmem::model
