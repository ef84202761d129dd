// `ttmem replay RECORDING` and `ttmem advise RECORDING`: a recorded run through the model under
// another configuration, and the configuration it needs (docs/model.md, "Replay and advise").
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/table.h"
#include "collector/recording.h"
#include "model/replay.h"

namespace ttmem::cli {

using collector::read_recording;
using collector::RecordedBuffer;
using collector::Recording;

namespace {

namespace pr = protocol;
using model::BufferType;
using model::ReplayEvent;

std::string board_of(const pr::DeviceSlot& slot) {
  return std::string(slot.board, strnlen(slot.board, sizeof slot.board));
}

// The fields a checkpoint's BufferRecord and an EventRecord share, as a replay event.
template <class Record>
ReplayEvent replay_event(ReplayEvent::Type type, const Record& r, uint32_t chip) {
  return {.type = type,
          .kind = r.kind,
          .layout = r.layout,
          .num_banks = r.num_banks,
          .chip = chip,
          .tag = r.tag,
          .page_size = r.page_size,
          .buffer_id = r.buffer_id,
          .address = r.address,
          .size = r.size,
          .size_per_bank = r.size_per_bank};
}

ReplayEvent::Type alloc_type(uint8_t kind) {
  return kind == uint8_t(Kind::Cb) ? ReplayEvent::Type::CbAlloc : ReplayEvent::Type::Alloc;
}

// The recording's devices and events in the replay's neutral form. Buffers live at the first
// checkpoint become allocations at the start (the recorder may have started late); events up
// to that checkpoint are already in it.
model::ReplayInput replay_input(const Recording& r) {
  model::ReplayInput in;
  in.tags = r.strings;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> chip_of;
  for (const auto& [key, slot] : r.devices) {
    chip_of[key] = uint32_t(in.chips.size());
    in.chips.push_back({.board = board_of(slot),
                        .process = key.first,
                        .device = key.second,
                        .grid_x = slot.grid_x,
                        .grid_y = slot.grid_y,
                        .l1_unreserved_base = slot.unreserved_base,
                        .l1_small_size = slot.l1_small_size,
                        .trace_region_size = slot.trace_region_size,
                        .dram_bank_base = slot.kinds[uint32_t(Kind::Dram)].bank_base});
  }
  auto chip = [&](uint32_t process, uint32_t device) -> std::optional<uint32_t> {
    auto it = chip_of.find({process, device});
    if (it == chip_of.end()) return std::nullopt;
    return it->second;
  };
  uint64_t from = 0;
  if (!r.checkpoints.empty()) {
    const Recording::Checkpoint& first = r.checkpoints.front();
    from = first.time_ns;
    for (const RecordedBuffer& b : first.buffers) {
      const auto c = chip(b.process, b.device);
      if (!c) continue;
      in.events.push_back(replay_event(alloc_type(b.record.kind), b.record, *c));
    }
  }
  in.events.reserve(in.events.size() + r.events.size());
  for (const Recording::Event& e : r.events) {
    if (e.time_ns <= from && !r.checkpoints.empty()) continue;
    const auto c = chip(e.process, e.device);
    if (!c) continue;
    const pr::EventRecord& ev = e.event;
    ReplayEvent::Type type;
    switch (pr::EventType(ev.type)) {
      case pr::EventType::Alloc:
        type = alloc_type(ev.kind);
        break;
      case pr::EventType::Free:
        type = ReplayEvent::Type::Free;
        break;
      case pr::EventType::CbAlloc:
        type = ReplayEvent::Type::CbAlloc;
        break;
      case pr::EventType::CbFreeProgram:
        type = ReplayEvent::Type::CbFreeProgram;
        break;
      case pr::EventType::CbFreeAll:
        type = ReplayEvent::Type::CbFreeAll;
        break;
      default:
        continue;  // a type a newer writer added: nothing the model knows to replay
    }
    in.events.push_back(replay_event(type, ev, *c));
  }
  return in;
}

model::ReplayInput load(const std::string& path) {
  std::string error;
  auto recording = read_recording(path, &error);
  if (!recording) throw CliError(error, 2);
  return replay_input(*recording);
}

// The configuration: the recording's own, with the options given on top.
model::ReplayConfig configure(const model::ReplayInput& in, const DeviceOptions& o) {
  model::ReplayConfig config;
  try {
    if (o.device.empty()) {
      config = model::recorded_config(in);
    } else {
      config.board = model::find_board(o.device);
      if (config.board == nullptr) {
        throw CliError(fmt::format("--device-type '{}': choose one of {}", o.device,
                                   model::board_names()),
                       2);
      }
      // Another product: keep the recording's device-open sizes, not its dispatch or base.
      try {
        const model::ReplayConfig recorded = model::recorded_config(in);
        config.params.trace_region_size = recorded.params.trace_region_size;
        config.params.l1_small_size = recorded.params.l1_small_size;
      } catch (const model::ModelError&) {
      }
    }
  } catch (const model::ModelError& e) {
    throw CliError(e.what(), 2);
  }
  apply_device_options(o, config.params);
  return config;
}

std::string describe(const model::ReplayConfig& c, const model::ChipGeometry& g) {
  return fmt::format(
      "{} ({}x{} cores, {} dispatch), trace_region_size {} B, l1_small_size {} B, {}, {} build, "
      "{} messages",
      c.board->name, g.grid_x, g.grid_y, model::dispatch_name(g.dispatch), g.trace_region_size,
      g.l1_small_size, model::policy_name(g.policy), g.profiler ? "profiler" : "plain",
      model::vintage_name(g.messages));
}

constexpr std::array<uint32_t, 5> kReportKinds = {
    uint32_t(BufferType::Dram), uint32_t(BufferType::L1), uint32_t(BufferType::L1Small),
    uint32_t(BufferType::Trace), model::kCbKind};

std::string kind_name(uint32_t kind) {
  return kind == model::kCbKind ? "CB" : std::string(model::buffer_type_name(BufferType(kind)));
}

nlohmann::json failure_json(const std::optional<model::ReplayFailure>& f) {
  if (!f) return nullptr;
  return {{"kind", f->error.kind_name()},
          {"message", f->error.what()},
          {"answer", f->error.answer()},
          {"event", f->event_index},
          {"chip", f->chip}};
}

nlohmann::json replay_json(const model::ReplayInput& in, const model::ReplayConfig& c,
                           const model::ReplayResult& r) {
  const model::ChipGeometry& g = r.geometry;
  nlohmann::json kinds = nlohmann::json::object();
  for (uint32_t k : kReportKinds) {
    const model::KindPeak& p = r.peaks[k];
    kinds[kind_name(k)] = {{"capacity_per_bank", p.capacity_per_bank},
                           {"recorded_peak_per_bank", p.recorded_peak_per_bank},
                           {"peak_per_bank", p.peak_per_bank},
                           {"free_at_peak", p.free_at_peak},
                           {"largest_free_at_peak", p.largest_free_at_peak},
                           {"fragmentation_at_peak", p.fragmentation_at_peak()}};
  }
  return {{"config",
           {{"device_type", c.board->name},
            {"grid", {g.grid_x, g.grid_y}},
            {"dispatch", model::dispatch_name(g.dispatch)},
            {"trace_region_size", g.trace_region_size},
            {"l1_small_size", g.l1_small_size},
            {"policy", model::policy_name(g.policy)},
            {"profiler", g.profiler},
            {"messages", model::vintage_name(g.messages)}}},
          {"chips", in.chips.size()},
          {"events", in.events.size()},
          {"events_replayed", r.events},
          {"passes", !r.failure.has_value()},
          {"failure", failure_json(r.failure)},
          {"kinds", kinds}};
}

void print_replay(const std::string& path, const model::ReplayInput& in,
                  const model::ReplayConfig& c, const model::ReplayResult& r) {
  std::printf("replay of %s: %zu events on %zu chip%s\nunder: %s\n\n", path.c_str(),
              in.events.size(), in.chips.size(), in.chips.size() == 1 ? "" : "s",
              describe(c, r.geometry).c_str());
  Table t({"KIND", "CAPACITY/BANK", "RECORDED PEAK", "REPLAYED PEAK", "FREE AT PEAK",
           "LARGEST FREE", "FRAG"},
          {false, true, true, true, true, true, true});
  for (uint32_t k : kReportKinds) {
    const model::KindPeak& p = r.peaks[k];
    t.add({kind_name(k), std::to_string(p.capacity_per_bank),
           std::to_string(p.recorded_peak_per_bank), std::to_string(p.peak_per_bank),
           k == model::kCbKind ? "-" : std::to_string(p.free_at_peak),
           k == model::kCbKind ? "-" : std::to_string(p.largest_free_at_peak),
           k == model::kCbKind ? "-" : fmt::format("{:.2f}", p.fragmentation_at_peak())});
  }
  t.print();
  if (!r.failure) {
    std::printf("\nresult: passes (%llu events)\n", static_cast<unsigned long long>(r.events));
    return;
  }
  std::printf("\nresult: fails at event %llu on chip %u (%s)\n",
              static_cast<unsigned long long>(r.failure->event_index), r.failure->chip,
              std::string(r.failure->error.kind_name()).c_str());
}

struct ReplayOptionsCli {
  std::string recording;
  DeviceOptions device;
  bool json = false;
};

void run_replay(const ReplayOptionsCli& o) {
  const model::ReplayInput in = load(o.recording);
  const model::ReplayConfig config = configure(in, o.device);
  model::ReplayResult result;
  try {
    result = model::replay(in, config);
  } catch (const model::ModelError& e) {
    throw CliError(e.what(), 2);  // a configuration that cannot describe the run
  }
  if (o.json) {
    std::printf("%s\n", replay_json(in, config, result).dump(2).c_str());
  } else {
    print_replay(o.recording, in, config, result);
  }
  if (result.failure) {
    std::fflush(stdout);
    if (!result.failure->error.answer().empty()) {
      std::fprintf(stderr, "answer: %s\n", result.failure->error.answer().c_str());
    }
    throw CliError(result.failure->error.what(), 3);
  }
}

// The replay flags that reproduce the proposal.
std::vector<std::string> proposal_args(const model::Advice& a) {
  std::vector<std::string> args = {"--device-type", std::string(a.recorded.board->name),
                                   "--trace-region-size",
                                   std::to_string(a.proposal.trace_region_size),
                                   "--l1-small-size", std::to_string(a.proposal.l1_small_size)};
  if (a.proposal.dispatch) {
    args.push_back("--dispatch");
    args.push_back(std::string(model::dispatch_name(*a.proposal.dispatch)));
  }
  if (a.proposal.profiler) args.push_back("--profiler");
  return args;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : " ") + p;
  return out;
}

void run_advise(const std::string& path, bool json) {
  const model::ReplayInput in = load(path);
  model::Advice a;
  try {
    a = model::advise(in);
  } catch (const model::ModelError& e) {
    throw CliError(e.what(), 2);
  }
  const model::ReplayResult& p = a.proposal_result;
  const model::KindPeak& dram = p.peaks[uint32_t(BufferType::Dram)];
  const model::KindPeak& l1 = p.peaks[uint32_t(BufferType::L1)];
  if (json) {
    nlohmann::json verdicts = nlohmann::json::array();
    for (const model::Verdict& v : a.verdicts) {
      verdicts.push_back({{"device_type", v.board},
                          {"fits", v.fits},
                          {"reason", v.reason},
                          {"dram_headroom_per_bank", v.dram_headroom_per_bank},
                          {"l1_headroom_per_bank", v.l1_headroom_per_bank}});
    }
    nlohmann::json out = {
        {"recorded",
         {{"device_type", a.recorded.board->name},
          {"trace_region_size", a.recorded.params.trace_region_size},
          {"l1_small_size", a.recorded.params.l1_small_size}}},
        {"trace_region_size", {{"min", a.min_trace_region_size}}},
        {"l1_small_size",
         {{"min", a.l1_small_min},
          {"max", a.l1_small_max ? nlohmann::json(*a.l1_small_max) : nlohmann::json(nullptr)},
          {"range_empty", a.l1_small_range_empty}}},
        {"clash",
         a.clash_bytes_over ? nlohmann::json{{"bytes_over", a.clash_bytes_over},
                                             {"program", a.clash_program}}
                            : nlohmann::json(nullptr)},
        {"proposal",
         {{"args", proposal_args(a)},
          {"passes", !p.failure.has_value()},
          {"failure", failure_json(p.failure)}}},
        {"headroom",
         {{"dram_per_bank", dram.capacity_per_bank - dram.peak_per_bank},
          {"l1_per_bank", l1.capacity_per_bank - l1.peak_per_bank}}},
        {"verdicts", verdicts}};
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  std::printf("advice for %s (recorded on %s, trace_region_size %llu B, l1_small_size %llu B)\n\n",
              path.c_str(), std::string(a.recorded.board->name).c_str(),
              static_cast<unsigned long long>(a.recorded.params.trace_region_size),
              static_cast<unsigned long long>(a.recorded.params.l1_small_size));
  if (a.min_trace_region_size > 0) {
    std::printf("trace_region_size: at least %llu B (the most trace buffers live at once)\n",
                static_cast<unsigned long long>(a.min_trace_region_size));
  } else {
    std::printf("trace_region_size: no trace captured; 0 B is enough\n");
  }
  const std::string small_min = a.l1_small_min > 0
                                    ? fmt::format("L1_SMALL holds {} B per core", a.l1_small_min)
                                    : std::string("no L1_SMALL buffer");
  if (a.l1_small_range_empty) {
    std::printf(
        "l1_small_size: none avoids the clash (%s); shave %llu B per core off program %llu's "
        "circular buffers\n",
        small_min.c_str(), static_cast<unsigned long long>(a.clash_bytes_over),
        static_cast<unsigned long long>(a.clash_program));
  } else if (a.l1_small_max) {
    std::printf("l1_small_size: %llu B to %llu B avoids every CB clash (%s)\n",
                static_cast<unsigned long long>(a.l1_small_min),
                static_cast<unsigned long long>(*a.l1_small_max), small_min.c_str());
  } else if (a.l1_small_min > 0) {
    std::printf("l1_small_size: at least %llu B (%s; no CB launch met an L1 buffer)\n",
                static_cast<unsigned long long>(a.l1_small_min), small_min.c_str());
  } else {
    std::printf("l1_small_size: no L1_SMALL buffer and no CB launch met an L1 buffer: any size "
                "that leaves the L1 the run needs\n");
  }
  std::printf("proposal: ttmem replay %s %s -> %s\n", path.c_str(), join(proposal_args(a)).c_str(),
              p.failure ? fmt::format("fails: {}", p.failure->error.what()).c_str() : "passes");
  std::printf("headroom under it: DRAM %llu B per bank, L1 %llu B per bank\n\n",
              static_cast<unsigned long long>(dram.capacity_per_bank - dram.peak_per_bank),
              static_cast<unsigned long long>(l1.capacity_per_bank - l1.peak_per_bank));
  Table t({"DEVICE", "FITS", "DRAM HEADROOM/BANK", "L1 HEADROOM/BANK", "WHY NOT"},
          {false, false, true, true, false});
  for (const model::Verdict& v : a.verdicts) {
    t.add({v.board, v.fits ? "yes" : "no", v.fits ? std::to_string(v.dram_headroom_per_bank) : "-",
           v.fits ? std::to_string(v.l1_headroom_per_bank) : "-", v.reason});
  }
  t.print();
}

}  // namespace

void add_replay_command(CLI::App& app, GlobalOptions& /*global*/) {
  auto* cmd = app.add_subcommand(
      "replay", "Run a recording through the model under another device configuration");
  auto o = std::make_shared<ReplayOptionsCli>();
  cmd->add_option("recording", o->recording, "A file written by `ttmem record`")->required();
  add_device_options(*cmd, o->device);
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o] { run_replay(*o); });
}

void add_advise_command(CLI::App& app, GlobalOptions& /*global*/) {
  auto* cmd = app.add_subcommand(
      "advise", "The trace_region_size and l1_small_size a recording needs, and where it fits");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("recording", *path, "A file written by `ttmem record`")->required();
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->callback([path, json] { run_advise(*path, *json); });
}

}  // namespace ttmem::cli
