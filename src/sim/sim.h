// Simulated tt-metal workloads (`ttmem sim`): scripted runs on the model that report every
// allocation, free, CB and op through the ttmem client library, as the tt-metal adapter would.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ttmem::sim {

struct SimOptions {
  uint64_t seed = 1;
  double speed = 1.0;         // time multiplier: 2 runs twice as fast, 0 never sleeps
  std::string device_type;    // empty: the scenario's default
  std::string mesh;           // empty: the product's default mesh shape ("2x4" on a T3K)
  double hold_seconds = 0.0;  // keep the final state (before cleanup) up this long, in real time
  uint32_t processes = 1;     // llama-70b-galaxy: processes serving the model at once
};

struct ScenarioInfo {
  std::string_view name;
  std::string_view default_device;
  std::string_view description;
};

std::span<const ScenarioInfo> scenarios();
const ScenarioInfo* find_scenario(std::string_view name);

// Exit status of a scenario that ends in a tt-metal error (out of memory, CB clash, ...).
inline constexpr int kTtMetalErrorExit = 3;

// Runs a scenario: progress goes to `out`, tt-metal's error text (if the scenario ends in one)
// to `err`. Returns the process exit status: 0, or kTtMetalErrorExit. Throws
// std::invalid_argument for options that cannot run (unknown device type, bad mesh).
int run_scenario(std::string_view name, const SimOptions& options, std::ostream& out,
                 std::ostream& err);

}  // namespace ttmem::sim
