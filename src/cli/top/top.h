// `ttmem top` and its compatibility name `allocation_monitor_client`: one set of options, one
// run function, registered on either program's CLI11 app.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "protocol/legacy.h"

namespace ttmem::top {

struct TopArgs {
  int refresh_ms = 500;
  bool all = false;
  std::vector<uint32_t> devices;  // logical ids; empty: all
  bool once = false;
  bool json = false;
  int count = 0;  // snapshots to print; 0: live UI on a terminal, else one
  std::string view = "overview";
  std::string sort = "reserved";
  size_t limit = 0;  // rows of the text buffers view; 0: all
  int width = 0;     // text width; 0: the terminal's, else 120
  bool ascii = false;
  bool stable = false;
  std::optional<pid_t> pid;  // -p: that process only
  std::string filter;        // --filter: as `/` sets it
  bool peak = false;         // --peak: as `P` shows it
  bool direct = false;       // --direct: read the segments even when a ttmemd serves them
  // Where to look for a running ttmemd when no source was named (see top/source.h).
  std::string legacy_socket = protocol::legacy::kDefaultSocketPath;
};

// Adds the monitor's options to `app` (a subcommand or a program's own app).
void add_top_options(CLI::App& app, TopArgs& args);

// Runs the monitor: the terminal UI when stdin and stdout are terminals and no text output was
// asked for; snapshots as text or JSON otherwise. Throws cli::CliError.
void run_top(const cli::GlobalOptions& global, const TopArgs& args);

}  // namespace ttmem::top
