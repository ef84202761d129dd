// ttmem: the command-line face of ttmem. Subcommands live in cmd_*.cpp.
#include <CLI/CLI.hpp>

#include "cli/cli_util.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  using namespace ttmem::cli;
  CLI::App app{"ttmem: device-memory allocation tracker for Tenstorrent accelerators"};
  app.set_version_flag("--version", std::string("ttmem ") + TTMEM_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  GlobalOptions global;
  auto* dir = app.add_option("--dir", global.dir,
                             "Segment directory (default: $TTMEM_DIR, else /dev/shm/ttmem-<uid>)");
  auto* server = app.add_option("--server", global.server,
                                "Read from the ttmemd at http://HOST:PORT instead (status, "
                                "buffers, leaks)")
                     ->excludes(dir);
  app.add_option("--token-file", global.token_file,
                 "Bearer token for --server: the file's first line (default: $TTMEM_TOKEN)")
      ->needs(server);

  app.add_flag("--no-tt-metal-shm", global.no_tt_metal_shm,
               "Do not read tt-metal's own per-chip counters (tt_device_<chip>_memory in "
               "$TTMEM_TT_METAL_SHM_DIR, else /dev/shm)");

  add_status_command(app, global);
  add_buffers_command(app, global);
  add_leaks_command(app, global);
  add_sim_command(app, global);
  add_model_command(app, global);
  add_record_command(app, global);
  add_report_command(app, global);
  add_diff_command(app, global);
  add_query_command(app, global);
  add_top_command(app, global);
  add_replay_command(app, global);
  add_advise_command(app, global);

  return run_app(app, argc, argv, "ttmem");
}
