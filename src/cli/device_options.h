// The device-open options `ttmem model`, `ttmem replay` and `ttmem advise` share: which product,
// and how tt-metal opened it. Parsed once here so every command spells and checks them alike.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/device_spec.h"

namespace CLI {
class App;
}

namespace ttmem::cli {

struct DeviceOptions {
  std::string device;
  std::string trace_region_size;
  std::string l1_small_size;
  std::string unreserved_base;
  std::string trace_mode;
  std::string policy;
  std::string dispatch;
  std::string messages;
  bool profiler = false;
  bool eth_dispatch = false;  // older spelling of --dispatch ethernet
  bool sub_devices = false;
};

// Registers --device-type, --trace-region-size, --l1-small-size, --trace-mode, --policy,
// --unreserved-base, --dispatch, --eth-dispatch, --profiler, --messages and --sub-devices.
void add_device_options(CLI::App& cmd, DeviceOptions& options);

// Overrides `params` with the options given; throws CliError (exit 2) for a malformed value.
void apply_device_options(const DeviceOptions& options, model::DeviceParams& params);

// "50000000" or "48MiB"; throws CliError (exit 2) naming the option otherwise.
uint64_t size_arg(const std::string& text, std::string_view option);

}  // namespace ttmem::cli
