#include "model/plan.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

namespace ttmem::model {
namespace {

using nlohmann::json;

constexpr uint64_t kDefaultPageSize = 2048;  // one bfloat16 tile

std::string where(size_t index) {
  return fmt::format("step {}", index + 1);
}

void check_keys(const json& j, std::initializer_list<std::string_view> allowed,
                const std::string& context) {
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) {
      std::string list;
      for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      throw PlanError(fmt::format("{}: unknown key '{}'; expected one of {}", context, key, list));
    }
  }
}

// JSON integers parsed from text are unsigned when non-negative, but ones built in code are
// signed; both count.
bool is_count(const json& j) {
  return j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0);
}

uint64_t size_of(const json& j, const std::string& context) {
  if (is_count(j)) return j.get<uint64_t>();
  if (j.is_string()) {
    if (auto size = parse_size(j.get<std::string>())) return *size;
  }
  throw PlanError(
      fmt::format("{}: give a size in bytes, as a number or a string such as "
                  "\"112MiB\" (got {})",
                  context, j.dump()));
}

std::string string_of(const json& j, const std::string& context) {
  if (!j.is_string())
    throw PlanError(fmt::format("{}: expected a string, got {}", context, j.dump()));
  return j.get<std::string>();
}

uint32_t u32_of(const json& j, const std::string& context) {
  if (!is_count(j) || j.get<uint64_t>() > UINT32_MAX) {
    throw PlanError(
        fmt::format("{}: expected a small non-negative integer, got {}", context, j.dump()));
  }
  return j.get<uint32_t>();
}

bool bool_of(const json& j, const std::string& context) {
  if (!j.is_boolean()) throw PlanError(context + ": expected true or false");
  return j.get<bool>();
}

template <class T>
T parsed(std::optional<T> value, const json& j, const std::string& context,
         std::string_view choices) {
  if (!value) throw PlanError(fmt::format("{}: {} is not one of {}", context, j.dump(), choices));
  return *value;
}

void read_params(const json& j, DeviceParams& p) {
  if (!j.is_object()) throw PlanError("params: expected an object of device parameters");
  check_keys(j,
             {"trace_region_size", "l1_small_size", "trace_mode", "policy", "unreserved_base",
              "mesh", "dispatch", "ethernet_dispatch", "profiler", "messages", "sub_devices"},
             "params");
  if (j.contains("trace_region_size")) {
    p.trace_region_size = size_of(j["trace_region_size"], "params.trace_region_size");
  }
  if (j.contains("l1_small_size"))
    p.l1_small_size = size_of(j["l1_small_size"], "params.l1_small_size");
  if (j.contains("unreserved_base")) {
    p.l1_unreserved_base = size_of(j["unreserved_base"], "params.unreserved_base");
  }
  if (j.contains("trace_mode")) {
    const std::string text = string_of(j["trace_mode"], "params.trace_mode");
    p.trace_mode = parsed(parse_trace_mode(text), j["trace_mode"], "params.trace_mode",
                          "per-bank, per-device");
  }
  if (j.contains("policy")) {
    const std::string text = string_of(j["policy"], "params.policy");
    p.policy = parsed(parse_policy(text), j["policy"], "params.policy", "first-fit, best-fit");
  }
  if (j.contains("mesh")) {
    const std::string text = string_of(j["mesh"], "params.mesh");
    p.mesh = parsed(parse_mesh(text), j["mesh"], "params.mesh", "ROWSxCOLS shapes such as 2x4");
  }
  if (j.contains("dispatch")) {
    const std::string text = string_of(j["dispatch"], "params.dispatch");
    p.dispatch = parsed(parse_dispatch(text), j["dispatch"], "params.dispatch",
                        "tensix, ethernet, row, column");
  }
  // Older plans: true is ethernet dispatch, false the Tensix dispatch that was the default.
  if (j.contains("ethernet_dispatch")) {
    p.dispatch = bool_of(j["ethernet_dispatch"], "params.ethernet_dispatch") ? Dispatch::Ethernet
                                                                             : Dispatch::Tensix;
  }
  if (j.contains("profiler")) p.profiler = bool_of(j["profiler"], "params.profiler");
  if (j.contains("messages")) {
    const std::string text = string_of(j["messages"], "params.messages");
    p.messages = parsed(parse_vintage(text), j["messages"], "params.messages",
                        "2024, 2025, 2026, current");
  }
  if (j.contains("sub_devices")) p.sub_devices = bool_of(j["sub_devices"], "params.sub_devices");
}

PlanStep read_allocate(const json& j, const std::string& ctx) {
  check_keys(
      j,
      {"op", "name", "type", "size", "page_size", "layout", "shards", "chip", "bottom_up", "tag"},
      ctx);
  PlanStep s;
  if (!j.contains("type") || !j.contains("size")) {
    throw PlanError(ctx + ": allocate needs \"type\" (DRAM, L1, L1_SMALL, TRACE) and \"size\"");
  }
  const std::string type = string_of(j["type"], ctx + ".type");
  s.buffer.type =
      parsed(parse_buffer_type(type), j["type"], ctx + ".type", "DRAM, L1, L1_SMALL, TRACE");
  s.buffer.size = size_of(j["size"], ctx + ".size");
  s.buffer.page_size =
      j.contains("page_size") ? size_of(j["page_size"], ctx + ".page_size") : kDefaultPageSize;
  if (j.contains("shards")) {
    s.buffer.num_shards = u32_of(j["shards"], ctx + ".shards");
    s.buffer.layout = Layout::HeightSharded;
  }
  if (j.contains("layout")) {
    const std::string layout = string_of(j["layout"], ctx + ".layout");
    s.buffer.layout = parsed(parse_layout(layout), j["layout"], ctx + ".layout",
                             "interleaved, height_sharded, width_sharded, block_sharded");
  }
  if (j.contains("bottom_up")) s.buffer.bottom_up = bool_of(j["bottom_up"], ctx + ".bottom_up");
  if (j.contains("tag")) s.buffer.tag = string_of(j["tag"], ctx + ".tag");
  return s;
}

PlanStep read_program(const json& j, const std::string& ctx) {
  check_keys(j, {"op", "name", "cbs", "chip", "program_id"}, ctx);
  PlanStep s;
  if (j.contains("program_id")) {
    if (!j["program_id"].is_number_unsigned()) {
      throw PlanError(ctx + ".program_id: expected a non-negative integer (the id tt-metal printed)");
    }
    s.program_id = j["program_id"].get<uint64_t>();
  }
  if (!j.contains("cbs") || !j["cbs"].is_array()) {
    throw PlanError(ctx + ": program needs \"cbs\": [{\"cores\": \"0,0-7,7\", \"size\": 65536}]");
  }
  for (size_t i = 0; i < j["cbs"].size(); ++i) {
    const json& cb = j["cbs"][i];
    const std::string cctx = fmt::format("{}.cbs[{}]", ctx, i);
    if (!cb.is_object() || !cb.contains("size")) {
      throw PlanError(cctx + ": expected {\"cores\": \"x0,y0-x1,y1\", \"size\": BYTES}");
    }
    check_keys(cb, {"cores", "size"}, cctx);
    CircularBufferConfig config;
    config.size = size_of(cb["size"], cctx + ".size");
    if (cb.contains("cores")) {
      const std::string text = string_of(cb["cores"], cctx + ".cores");
      auto ranges = parse_core_ranges(text);
      if (!ranges) {
        throw PlanError(
            fmt::format("{}.cores: '{}' is not a core range; write \"x0,y0-x1,y1\", "
                        "ranges joined by ';'",
                        cctx, text));
      }
      config.cores = *ranges;
    }
    s.cbs.push_back(std::move(config));
  }
  return s;
}

PlanStep read_step(const json& j, size_t index) {
  const std::string ctx = where(index);
  if (!j.is_object() || !j.contains("op")) {
    throw PlanError(ctx +
                    ": expected an object with \"op\": allocate, free, program, trace or "
                    "release_trace");
  }
  const std::string op = string_of(j["op"], ctx + ".op");
  PlanStep s;
  if (op == "allocate") {
    s = read_allocate(j, ctx);
  } else if (op == "program") {
    s = read_program(j, ctx);
    s.op = PlanStep::Op::Program;
  } else if (op == "trace") {
    check_keys(j, {"op", "name", "size"}, ctx);
    if (!j.contains("size")) throw PlanError(ctx + ": trace needs \"size\", its command bytes");
    s.op = PlanStep::Op::Trace;
    s.trace_bytes = size_of(j["size"], ctx + ".size");
  } else if (op == "free" || op == "release_trace") {
    check_keys(j, {"op", "name"}, ctx);
    if (!j.contains("name")) throw PlanError(ctx + ": " + op + " needs the \"name\" to release");
    s.op = op == "free" ? PlanStep::Op::Free : PlanStep::Op::ReleaseTrace;
  } else {
    throw PlanError(
        fmt::format("{}: unknown op '{}'; use allocate, free, program, trace or "
                    "release_trace",
                    ctx, op));
  }
  if (j.contains("name")) s.name = string_of(j["name"], ctx + ".name");
  if (j.contains("chip")) s.chip = u32_of(j["chip"], ctx + ".chip");
  if (s.name.empty()) s.name = fmt::format("{}{}", op_name(s.op), index + 1);
  return s;
}

}  // namespace

std::optional<uint64_t> parse_size(std::string_view text) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  double number = 0;
  auto [ptr, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || number < 0) return std::nullopt;
  std::string_view suffix(ptr, static_cast<size_t>(end - ptr));
  while (!suffix.empty() && suffix.front() == ' ') suffix.remove_prefix(1);
  static const std::pair<std::string_view, uint64_t> kSuffixes[] = {{"", 1},
                                                                    {"B", 1},
                                                                    {"K", 1ull << 10},
                                                                    {"KiB", 1ull << 10},
                                                                    {"M", 1ull << 20},
                                                                    {"MiB", 1ull << 20},
                                                                    {"G", 1ull << 30},
                                                                    {"GiB", 1ull << 30},
                                                                    {"KB", 1000},
                                                                    {"MB", 1000'000},
                                                                    {"GB", 1000'000'000}};
  for (const auto& [name, scale] : kSuffixes) {
    if (suffix == name) {
      const double bytes = number * static_cast<double>(scale);
      if (bytes > 1.8e19 || bytes != std::floor(bytes)) return std::nullopt;
      return static_cast<uint64_t>(bytes);
    }
  }
  return std::nullopt;
}

std::string_view op_name(PlanStep::Op op) {
  switch (op) {
    case PlanStep::Op::Allocate:
      return "allocate";
    case PlanStep::Op::Free:
      return "free";
    case PlanStep::Op::Program:
      return "program";
    case PlanStep::Op::Trace:
      return "trace";
    case PlanStep::Op::ReleaseTrace:
      return "release_trace";
  }
  return "?";
}

Plan parse_plan(const json& j, Plan plan) {
  const json* steps = &j;
  if (j.is_object()) {
    check_keys(j, {"device", "params", "steps"}, "plan");
    if (j.contains("device")) plan.device = string_of(j["device"], "device");
    if (j.contains("params")) read_params(j["params"], plan.params);
    if (!j.contains("steps")) throw PlanError("plan: needs \"steps\": [ ... ]");
    steps = &j["steps"];
  }
  if (!steps->is_array()) {
    throw PlanError(
        "plan: expected {\"device\": ..., \"params\": {...}, \"steps\": [...]} or an "
        "array of steps");
  }
  for (size_t i = 0; i < steps->size(); ++i) plan.steps.push_back(read_step((*steps)[i], i));
  return plan;
}

PlanResult run_plan(const Plan& plan) {
  PlanResult r;
  r.board = find_board(plan.device);
  if (r.board == nullptr) {
    throw PlanError(
        fmt::format("unknown device type '{}': choose one of {}", plan.device, board_names()));
  }
  std::optional<MeshDevice> mesh;
  try {
    mesh.emplace(*r.board, plan.params);
  } catch (const ModelError& e) {
    throw PlanError(e.what());
  }
  r.geometry = mesh->geometry();
  r.mesh = mesh->shape();
  const CoreRangeSet all_cores = {{{0, 0}, {r.geometry.grid_x - 1, r.geometry.grid_y - 1}}};

  std::map<std::string, uint64_t> named;  // live buffer and trace names -> buffer id
  auto take = [&](const PlanStep& s, size_t i) {
    auto it = named.find(s.name);
    if (it == named.end()) {
      throw PlanError(fmt::format("{}: {} of '{}', which no earlier step allocated", where(i),
                                  op_name(s.op), s.name));
    }
    const uint64_t id = it->second;
    named.erase(it);
    return id;
  };
  auto remember = [&](const PlanStep& s, size_t i, const Buffer& b) {
    if (!named.emplace(s.name, b.id).second) {
      throw PlanError(
          fmt::format("{}: the name '{}' is already live; free it first or pick "
                      "another name",
                      where(i), s.name));
    }
  };
  std::optional<uint64_t> last_program;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep& s = plan.steps[i];
    StepResult result{.step = &s};
    try {
      switch (s.op) {
        case PlanStep::Op::Allocate: {
          const Buffer& b =
              s.chip ? mesh->allocate_on(*s.chip, s.buffer) : mesh->allocate(s.buffer);
          remember(s, i, b);
          result.buffer = b;
          break;
        }
        case PlanStep::Op::Free:
          mesh->deallocate(take(s, i));
          break;
        case PlanStep::Op::Program: {
          Program program(s.name, s.program_id);
          for (const CircularBufferConfig& cb : s.cbs) {
            program.add_circular_buffer(cb.cores.empty() ? all_cores : cb.cores, cb.size);
          }
          result.program_id = program.id();
          r.steps.push_back(result);  // recorded before launch: a failed check names it
          // A plan's program is destroyed when the next one is built, as a plain tt-metal
          // program that runs once: only the last program's CBs stay allocated.
          if (last_program) mesh->release_program(*last_program);
          last_program = program.id();
          if (s.chip) {
            mesh->launch_on(*s.chip, program);
          } else {
            mesh->launch(program);
          }
          r.steps.back().cb_region_end = mesh->chip(s.chip.value_or(0)).cb_region_end();
          break;
        }
        case PlanStep::Op::Trace: {
          const Buffer& b = mesh->capture_trace(s.trace_bytes);
          remember(s, i, b);
          result.buffer = b;
          break;
        }
        case PlanStep::Op::ReleaseTrace:
          mesh->release_trace(take(s, i));
          break;
      }
      if (s.op != PlanStep::Op::Program) r.steps.push_back(result);
    } catch (const ModelError& e) {
      if (s.op != PlanStep::Op::Program) r.steps.push_back(result);
      r.error = e;
      // The failing trace is what the region must hold.
      if (e.kind() == ErrorKind::TraceTooSmall) {
        r.peak_trace_bytes = std::max(r.peak_trace_bytes, e.needed());
      }
      break;
    }
    r.peak_trace_bytes = std::max(r.peak_trace_bytes, mesh->trace_buffers_size());
    for (size_t c = 0; c < mesh->num_chips(); ++c) {
      const KindGeometry& small = r.geometry.kind(BufferType::L1Small);
      if (auto low = mesh->chip(c).allocator().bank(BufferType::L1Small).lowest_allocated()) {
        r.peak_l1_small_per_bank =
            std::max(r.peak_l1_small_per_bank, small.bank_base + small.bank_size - *low);
      }
    }
  }
  for (size_t c = 0; c < mesh->num_chips(); ++c) {
    const Chip& chip = mesh->chip(c);
    std::array<MemoryView, 4> views;
    for (size_t k = 0; k < kViewTypes.size(); ++k) views[k] = chip.memory_view(kViewTypes[k]);
    r.views.push_back(views);
    r.cb_region_end.push_back(chip.cb_region_end());
    r.lowest_l1.push_back(chip.allocator().lowest_l1_address());
  }
  return r;
}

}  // namespace ttmem::model
