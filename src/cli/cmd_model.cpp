// ttmem model: a capacity calculator on the tt-metal model. Runs allocations (from the command
// line or a JSON plan) through the allocator tt-metal would use and prints where each buffer
// lands and what is left per bank; where tt-metal would fail, prints its error and exits 3.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/table.h"
#include "model/plan.h"

namespace ttmem::cli {
namespace {

using model::BufferType;
using model::PlanStep;

struct ModelOptions {
  std::string steps_file;
  std::vector<std::string> allocs;
  std::vector<std::string> cbs;
  std::vector<std::string> traces;
  DeviceOptions device_options;
  std::string mesh;
  bool json = false;
  bool list_devices = false;
};

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == sep) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

// --alloc [NAME=]TYPE:SIZE[:PAGE_SIZE[:SHARDS]]
PlanStep alloc_step(const std::string& spec) {
  const std::string usage = fmt::format(
      "--alloc '{}': write [NAME=]TYPE:SIZE[:PAGE_SIZE[:SHARDS]], e.g. "
      "weights=DRAM:112MiB:2048 or act=L1:1MiB:2048:64",
      spec);
  PlanStep s;
  std::string body = spec;
  if (auto eq = spec.find('='); eq != std::string::npos) {
    s.name = spec.substr(0, eq);
    body = spec.substr(eq + 1);
  }
  const auto parts = split(body, ':');
  if (parts.size() < 2 || parts.size() > 4) throw CliError(usage, 2);
  auto type = model::parse_buffer_type(parts[0]);
  auto size = model::parse_size(parts[1]);
  auto page = parts.size() > 2 ? model::parse_size(parts[2]) : std::optional<uint64_t>(2048);
  if (!type || !size || !page) throw CliError(usage, 2);
  s.buffer = {.type = *type, .size = *size, .page_size = *page};
  if (parts.size() == 4) {
    auto shards = model::parse_size(parts[3]);
    if (!shards || *shards == 0 || *shards > UINT32_MAX) throw CliError(usage, 2);
    s.buffer.layout = model::Layout::HeightSharded;
    s.buffer.num_shards = static_cast<uint32_t>(*shards);
  }
  return s;
}

// --cb [CORES:]SIZE; all CBs given on the command line form one program.
model::CircularBufferConfig cb_config(const std::string& spec) {
  const std::string usage =
      fmt::format("--cb '{}': write [CORES:]SIZE, e.g. 0,0-7,7:256KiB or 512KiB (all cores)", spec);
  const size_t colon = spec.rfind(':');
  model::CircularBufferConfig cb;
  auto size = model::parse_size(colon == std::string::npos ? spec : spec.substr(colon + 1));
  if (!size) throw CliError(usage, 2);
  cb.size = *size;
  if (colon != std::string::npos) {
    auto cores = model::parse_core_ranges(spec.substr(0, colon));
    if (!cores) throw CliError(usage, 2);
    cb.cores = *cores;
  }
  return cb;
}

model::Plan build_plan(const ModelOptions& o) {
  model::Plan plan;
  if (!o.steps_file.empty()) {
    std::ifstream in(o.steps_file);
    if (!in)
      throw CliError(fmt::format("cannot read '{}': give a readable JSON plan", o.steps_file));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
      throw CliError(fmt::format("{} is not valid JSON ({}); see docs/model.md for the format",
                                 o.steps_file, e.what()));
    }
    plan = model::parse_plan(j, plan);
  }
  // Command-line settings override the file's.
  model::DeviceParams& p = plan.params;
  if (!o.device_options.device.empty()) plan.device = o.device_options.device;
  apply_device_options(o.device_options, p);
  if (!o.mesh.empty()) {
    p.mesh = model::parse_mesh(o.mesh);
    if (!p.mesh) {
      throw CliError(fmt::format("--mesh '{}': give ROWSxCOLS, e.g. 2x4", o.mesh), 2);
    }
  }

  for (const std::string& spec : o.allocs) plan.steps.push_back(alloc_step(spec));
  for (const std::string& spec : o.traces) {
    PlanStep s{.op = PlanStep::Op::Trace, .trace_bytes = size_arg(spec, "--trace")};
    plan.steps.push_back(s);
  }
  if (!o.cbs.empty()) {
    PlanStep s{.op = PlanStep::Op::Program, .name = "program"};
    for (const std::string& spec : o.cbs) s.cbs.push_back(cb_config(spec));
    plan.steps.push_back(s);
  }
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    if (plan.steps[i].name.empty()) {
      plan.steps[i].name = fmt::format("{}{}", model::op_name(plan.steps[i].op), i + 1);
    }
  }
  if (plan.steps.empty()) {
    throw CliError(
        "nothing to model: give --alloc, --trace, --cb or --steps FILE "
        "(e.g. ttmem model --device-type n150 --alloc DRAM:112MiB:2048)",
        2);
  }
  return plan;
}

// Chips with identical statistics print as one group ("chips 0-7").
std::vector<std::pair<size_t, size_t>> chip_groups(const model::PlanResult& r) {
  std::vector<std::pair<size_t, size_t>> groups;
  for (size_t c = 0; c < r.views.size(); ++c) {
    const bool same = !groups.empty() && r.views[c] == r.views[groups.back().first] &&
                      r.cb_region_end[c] == r.cb_region_end[groups.back().first];
    if (same) {
      groups.back().second = c;
    } else {
      groups.emplace_back(c, c);
    }
  }
  return groups;
}

void print_text(const model::PlanResult& r) {
  const model::ChipGeometry& g = r.geometry;
  std::printf("%s: %u chip(s) as a %s mesh, %s, %ux%u cores, %llu B L1 per core\n",
              std::string(r.board->name).c_str(), r.mesh.num_chips(),
              model::mesh_name(r.mesh).c_str(), std::string(model::arch_name(g.arch)).c_str(),
              g.grid_x, g.grid_y, static_cast<unsigned long long>(g.l1_per_core));
  std::printf(
      "trace_region_size %llu B (%s), l1_small_size %llu B, L1 unreserved base %llu B, "
      "%s\n\n",
      static_cast<unsigned long long>(g.trace_region_size),
      std::string(model::trace_mode_name(g.trace_mode)).c_str(),
      static_cast<unsigned long long>(g.l1_small_size),
      static_cast<unsigned long long>(g.l1_unreserved_base),
      std::string(model::policy_name(g.policy)).c_str());

  Table steps(
      {"STEP", "OP", "NAME", "TYPE", "LAYOUT", "SIZE", "ADDRESS", "PER BANK", "BANKS", "CHIPS"},
      {true, false, false, false, false, true, true, true, true, false});
  for (size_t i = 0; i < r.steps.size(); ++i) {
    const model::StepResult& s = r.steps[i];
    const PlanStep& step = *s.step;
    const std::string chips = step.chip ? std::to_string(*step.chip) : "all";
    if (s.buffer) {
      const model::Buffer& b = *s.buffer;
      steps.add({std::to_string(i + 1), std::string(model::op_name(step.op)), step.name,
                 std::string(model::buffer_type_name(b.type)),
                 std::string(model::layout_name(b.layout)), std::to_string(b.size),
                 fmt::format("{:#x}", b.address), std::to_string(b.size_per_bank),
                 std::to_string(b.num_banks), chips});
    } else if (step.op == PlanStep::Op::Program) {
      steps.add({std::to_string(i + 1), "program", step.name, "CB", "-",
                 std::to_string(step.cbs.size()) + " CBs", "-",
                 s.cb_region_end ? fmt::format("ends {}", s.cb_region_end) : "-", "-", chips});
    } else {
      const bool failed = r.error && i + 1 == r.steps.size();
      steps.add({std::to_string(i + 1), std::string(model::op_name(step.op)), step.name, "-", "-",
                 "-", failed ? "FAILED" : "-", "-", "-", chips});
    }
  }
  steps.print();

  for (const auto& [first, last] : chip_groups(r)) {
    std::printf(
        "\nper-bank statistics, chip%s %s:\n", first == last ? "" : "s",
        first == last ? std::to_string(first).c_str() : fmt::format("{}-{}", first, last).c_str());
    Table t({"KIND", "BANKS", "BANK BASE", "ALLOCATABLE", "ALLOCATED", "FREE", "LARGEST FREE"},
            {false, true, true, true, true, true, true});
    for (const model::MemoryView& v : r.views[first]) {
      t.add({std::string(model::buffer_type_name(v.type)), std::to_string(v.num_banks),
             std::to_string(v.bank_base), std::to_string(v.total_bytes_per_bank),
             std::to_string(v.total_bytes_allocated_per_bank),
             std::to_string(v.total_bytes_free_per_bank),
             std::to_string(v.largest_contiguous_bytes_free_per_bank)});
    }
    t.print();
    const auto& lowest = r.lowest_l1[first];
    std::printf("CB region ends at %llu B; lowest L1 buffer at %s\n",
                static_cast<unsigned long long>(r.cb_region_end[first]),
                lowest ? fmt::format("{} B", *lowest).c_str() : "none");
  }
  // A bound of 0 B says nothing: say what the plan does not use instead.
  const std::string trace =
      r.peak_trace_bytes > 0
          ? fmt::format("trace_region_size >= {} B", r.peak_trace_bytes)
          : std::string("no trace captured (trace_region_size can stay 0)");
  const std::string small =
      r.peak_l1_small_per_bank > 0
          ? fmt::format("l1_small_size >= {} B", r.peak_l1_small_per_bank)
          : std::string("no L1_SMALL buffer (l1_small_size can stay 0)");
  std::printf("\nneeds: %s; %s\n", trace.c_str(), small.c_str());
}

nlohmann::json to_json(const model::PlanResult& r) {
  using nlohmann::json;
  const model::ChipGeometry& g = r.geometry;
  json out;
  out["device"] = {{"type", r.board->name},
                   {"chips", r.mesh.num_chips()},
                   {"mesh", model::mesh_name(r.mesh)},
                   {"arch", model::arch_name(g.arch)},
                   {"grid", {g.grid_x, g.grid_y}},
                   {"l1_per_core", g.l1_per_core},
                   {"l1_unreserved_base", g.l1_unreserved_base},
                   {"trace_region_size", g.trace_region_size},
                   {"trace_mode", model::trace_mode_name(g.trace_mode)},
                   {"l1_small_size", g.l1_small_size},
                   {"policy", model::policy_name(g.policy)}};
  json steps = json::array();
  for (const model::StepResult& s : r.steps) {
    json step = {{"op", model::op_name(s.step->op)}, {"name", s.step->name}};
    if (s.step->chip) step["chip"] = *s.step->chip;
    if (s.buffer) {
      const model::Buffer& b = *s.buffer;
      step["buffer"] = {{"id", b.id},
                        {"type", model::buffer_type_name(b.type)},
                        {"layout", model::layout_name(b.layout)},
                        {"address", b.address},
                        {"size", b.size},
                        {"page_size", b.page_size},
                        {"size_per_bank", b.size_per_bank},
                        {"num_banks", b.num_banks},
                        {"num_cores", b.num_cores}};
    }
    if (s.step->op == PlanStep::Op::Program) {
      step["program_id"] = s.program_id;
      step["cb_region_end"] = s.cb_region_end;
    }
    steps.push_back(step);
  }
  out["steps"] = steps;
  json chips = json::array();
  for (size_t c = 0; c < r.views.size(); ++c) {
    json kinds = json::object();
    for (const model::MemoryView& v : r.views[c]) {
      kinds[std::string(model::buffer_type_name(v.type))] = {
          {"num_banks", v.num_banks},
          {"bank_base", v.bank_base},
          {"total_bytes_per_bank", v.total_bytes_per_bank},
          {"total_bytes_allocated_per_bank", v.total_bytes_allocated_per_bank},
          {"total_bytes_free_per_bank", v.total_bytes_free_per_bank},
          {"largest_contiguous_bytes_free_per_bank", v.largest_contiguous_bytes_free_per_bank}};
    }
    json chip = {{"chip", c}, {"kinds", kinds}, {"cb_region_end", r.cb_region_end[c]}};
    chip["lowest_l1_address"] = r.lowest_l1[c] ? json(*r.lowest_l1[c]) : json(nullptr);
    chips.push_back(chip);
  }
  out["chips"] = chips;
  out["needs"] = {{"trace_region_size", r.peak_trace_bytes},
                  {"l1_small_size", r.peak_l1_small_per_bank}};
  out["error"] = r.error ? json{{"kind", r.error->kind_name()},
                                {"message", r.error->what()},
                                {"answer", r.error->answer()},
                                {"step", r.steps.size()}}
                         : json(nullptr);
  return out;
}

// "8x8 (ethernet dispatch), 8x7 (tensix)" or "8x8".
std::string grid_text(const model::BoardSpec& b) {
  const model::DispatchGrid& first = b.grids[0];
  const model::DispatchGrid& second = b.grids[1];
  if (first.dispatch == second.dispatch) return fmt::format("{}x{}", first.grid_x, first.grid_y);
  return fmt::format("{}x{} ({}), {}x{} ({})", first.grid_x, first.grid_y,
                     model::dispatch_name(first.dispatch), second.grid_x, second.grid_y,
                     model::dispatch_name(second.dispatch));
}

void print_devices() {
  Table t({"DEVICE", "CHIPS", "MESH", "ARCH", "GRID", "L1/CORE", "DRAM BANKS", "BANK SIZE",
           "DESCRIPTION"},
          {false, true, false, false, false, true, true, true, false});
  for (const model::BoardSpec& b : model::boards()) {
    std::string meshes = model::mesh_name(b.meshes[0]);
    if (!(b.meshes[1] == b.meshes[0])) meshes += "," + model::mesh_name(b.meshes[1]);
    t.add({std::string(b.name), std::to_string(b.num_chips), meshes,
           std::string(model::arch_name(b.chip.arch)),
           grid_text(b), std::to_string(b.chip.l1_per_core),
           std::to_string(b.chip.dram_banks), std::to_string(b.chip.dram_bank_size),
           std::string(b.description)});
  }
  t.print();
}

}  // namespace

void add_model_command(CLI::App& app, GlobalOptions& /*global*/) {
  auto* cmd = app.add_subcommand(
      "model", "Capacity calculator: run allocations through tt-metal's allocator model");
  auto o = std::make_shared<ModelOptions>();
  add_device_options(*cmd, o->device_options);
  cmd->add_option("--steps", o->steps_file, "JSON plan of allocate/free/program/trace steps");
  cmd->add_option("--alloc", o->allocs,
                  "[NAME=]TYPE:SIZE[:PAGE_SIZE[:SHARDS]], repeatable; page size default 2048");
  cmd->add_option("--trace", o->traces, "Capture a trace of BYTES of commands, repeatable");
  cmd->add_option("--cb", o->cbs, "[CORES:]SIZE, repeatable: one program with these CBs");
  cmd->add_option("--mesh", o->mesh, "Mesh shape ROWSxCOLS (t3k: 1x8 or 2x4)");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->add_flag("--list-devices", o->list_devices, "List the device types and exit");
  cmd->callback([o] {
    if (o->list_devices) {
      print_devices();
      return;
    }
    model::Plan plan;
    model::PlanResult result;
    try {
      plan = build_plan(*o);
      result = model::run_plan(plan);
    } catch (const model::PlanError& e) {
      throw CliError(e.what(), 2);
    }
    if (o->json) {
      std::printf("%s\n", to_json(result).dump(2).c_str());
    } else {
      print_text(result);
    }
    if (result.error) {
      std::fflush(stdout);
      if (!result.error->answer().empty()) {
        std::fprintf(stderr, "answer: %s\n", result.error->answer().c_str());
      }
      throw CliError(result.error->what(), 3);
    }
  });
}

}  // namespace ttmem::cli
