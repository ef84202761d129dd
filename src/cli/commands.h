// Subcommands of the `ttmem` CLI. Each add_*_command() registers one subcommand (options and
// callback) on the app; main() only wires them up. A callback reports failure by throwing
// CliError, which main() prints (one line, saying what to do) and turns into the exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace CLI {
class App;
}

namespace ttmem::cli {

struct GlobalOptions {
  std::string dir;         // segment directory; empty: $TTMEM_DIR or /dev/shm/ttmem-<uid>
  std::string server;      // ttmemd URL (http://host:port) to read from instead of `dir`
  std::string token_file;  // bearer token for `server`; empty: $TTMEM_TOKEN, if set
  bool no_tt_metal_shm = false;  // leave tt-metal's own per-chip counters unread
};

class CliError : public std::runtime_error {
 public:
  explicit CliError(const std::string& message, int exit_code = 1)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

void add_status_command(CLI::App& app, GlobalOptions& global);
void add_buffers_command(CLI::App& app, GlobalOptions& global);
void add_leaks_command(CLI::App& app, GlobalOptions& global);
void add_sim_command(CLI::App& app, GlobalOptions& global);
void add_model_command(CLI::App& app, GlobalOptions& global);
void add_record_command(CLI::App& app, GlobalOptions& global);  // record and export
void add_report_command(CLI::App& app, GlobalOptions& global);
void add_diff_command(CLI::App& app, GlobalOptions& global);
void add_query_command(CLI::App& app, GlobalOptions& global);
void add_top_command(CLI::App& app, GlobalOptions& global);
void add_replay_command(CLI::App& app, GlobalOptions& global);
void add_advise_command(CLI::App& app, GlobalOptions& global);

}  // namespace ttmem::cli
