#include "cli/device_options.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "model/plan.h"

namespace ttmem::cli {

uint64_t size_arg(const std::string& text, std::string_view option) {
  auto size = model::parse_size(text);
  if (!size) {
    throw CliError(fmt::format("{} '{}': give bytes, e.g. 50000000 or 48MiB", option, text), 2);
  }
  return *size;
}

void add_device_options(CLI::App& cmd, DeviceOptions& o) {
  cmd.add_option("--device-type", o.device, "n150, n300, t3k, galaxy, p100a, p150");
  cmd.add_option("--trace-region-size", o.trace_region_size, "Device-open trace_region_size");
  cmd.add_option("--l1-small-size", o.l1_small_size, "Device-open l1_small_size");
  cmd.add_option("--trace-mode", o.trace_mode,
                 "per-device (default: the budget over all banks) or per-bank");
  cmd.add_option("--policy", o.policy, "first-fit (default, as tt-metal) or best-fit");
  cmd.add_option("--unreserved-base", o.unreserved_base, "L1 unreserved base (firmware)");
  cmd.add_option("--dispatch", o.dispatch,
                 "n300/t3k: ethernet (default, 8x8) or tensix (8x7); galaxy: column (default, "
                 "7x10) or row (8x9)");
  cmd.add_flag("--eth-dispatch", o.eth_dispatch, "Same as --dispatch ethernet");
  cmd.add_flag("--profiler", o.profiler,
               "A Tracy profiler build: the DRAM reserved base grows (1,920,032 B per Wormhole "
               "bank instead of 32 B)");
  cmd.add_option("--messages", o.messages,
                 "tt-metal's error texts of 2024, 2025, 2026 or current (default)");
  cmd.add_flag("--sub-devices", o.sub_devices,
               "A sub-device manager is loaded: out-of-memory uses the dependencies text");
}

void apply_device_options(const DeviceOptions& o, model::DeviceParams& p) {
  if (!o.trace_region_size.empty()) {
    p.trace_region_size = size_arg(o.trace_region_size, "--trace-region-size");
  }
  if (!o.l1_small_size.empty()) p.l1_small_size = size_arg(o.l1_small_size, "--l1-small-size");
  if (!o.unreserved_base.empty()) {
    p.l1_unreserved_base = size_arg(o.unreserved_base, "--unreserved-base");
  }
  if (!o.trace_mode.empty()) {
    auto mode = model::parse_trace_mode(o.trace_mode);
    if (!mode) throw CliError("--trace-mode: choose per-bank or per-device", 2);
    p.trace_mode = *mode;
  }
  if (!o.policy.empty()) {
    auto policy = model::parse_policy(o.policy);
    if (!policy) throw CliError("--policy: choose first-fit or best-fit", 2);
    p.policy = *policy;
  }
  if (o.eth_dispatch) p.dispatch = model::Dispatch::Ethernet;
  if (!o.dispatch.empty()) {
    p.dispatch = model::parse_dispatch(o.dispatch);
    if (!p.dispatch) throw CliError("--dispatch: choose tensix, ethernet, row or column", 2);
  }
  if (o.profiler) p.profiler = true;
  if (o.sub_devices) p.sub_devices = true;
  if (!o.messages.empty()) {
    auto vintage = model::parse_vintage(o.messages);
    if (!vintage) throw CliError("--messages: choose 2024, 2025, 2026 or current", 2);
    p.messages = *vintage;
  }
}

}  // namespace ttmem::cli
