// ttmem sim: runs a simulated tt-metal workload in this process, reporting through the client
// library like a real runtime, so `ttmem status` in another terminal watches it live.
#include <fmt/format.h>
#include <stdlib.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "sim/sim.h"

namespace ttmem::cli {
namespace {

void print_scenarios() {
  for (const sim::ScenarioInfo& s : sim::scenarios()) {
    std::printf("%-16s (default device %s)\n    %s\n", std::string(s.name).c_str(),
                std::string(s.default_device).c_str(), std::string(s.description).c_str());
  }
}


}  // namespace

void add_sim_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "sim", "Run a simulated tt-metal workload that reports its allocations to ttmem");
  auto options = std::make_shared<sim::SimOptions>();
  auto scenario = std::make_shared<std::string>();
  auto list = std::make_shared<bool>(false);
  cmd->add_option("scenario", *scenario,
                  "llama-decode, cb-clash, l1-small-clash, oom, leak, trace-too-small or "
                  "llama-70b-galaxy (--list describes them)");
  cmd->add_flag("--list", *list, "List the scenarios and exit");
  cmd->add_option("--seed", options->seed, "Seed: each seed gives the same run every time")
      ->capture_default_str()
      ->check(number_up_to(1.8e19));
  cmd->add_option("--speed", options->speed,
                  "Time multiplier: 2 runs twice as fast, 0 as fast as possible")
      ->capture_default_str()
      ->check(number_up_to(1e6));
  cmd->add_option("--device-type", options->device_type,
                  "n150, n300, t3k, galaxy, p100a or p150 (default: the scenario's)");
  cmd->add_option("--mesh", options->mesh, "Mesh shape ROWSxCOLS, e.g. 2x4 on a t3k");
  cmd->add_option("--hold", options->hold_seconds,
                  "Keep the final state up for SECONDS (real time) before cleaning up or exiting")
      ->check(number_up_to(1e7));
  cmd->add_option("--processes", options->processes,
                  "llama-70b-galaxy: run N processes serving the model at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->callback([&global, options, scenario, list] {
    if (*list) {
      print_scenarios();
      return;
    }
    if (scenario->empty()) {
      throw CliError("name a scenario: ttmem sim llama-decode (ttmem sim --list shows them all)",
                     2);
    }
    require_local(global, "ttmem sim");
    // Progress shows line by line through a pipe too (`ttmem sim ... | tee log`); std::cout
    // writes through stdout, as it is synchronised with stdio.
    std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
    // The client reads TTMEM_DIR on its first call, so --dir must be in place before the run.
    if (!global.dir.empty()) setenv("TTMEM_DIR", global.dir.c_str(), 1);
    int status = 0;
    try {
      status = sim::run_scenario(*scenario, *options, std::cout, std::cerr);
    } catch (const std::invalid_argument& e) {
      throw CliError(e.what(), 2);
    }
    if (status != 0) {
      // The scenario already printed tt-metal's error text; exit with its status as the failed
      // runtime would, leaving the reported state as it was.
      std::cout.flush();
      std::exit(status);
    }
  });
}

}  // namespace ttmem::cli
