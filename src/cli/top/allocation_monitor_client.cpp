// allocation_monitor_client: the name the users of tt-metal's allocation-server prototype type.
// It is `ttmem top` with the prototype monitor's flags (-a, -d ID, -r MS) and its one-second
// default refresh. Like that monitor it finds its server through the legacy socket: when a ttmemd
// listens there, it shows what that ttmemd holds (legacy clients included); --server names one.
#include <CLI/CLI.hpp>

#include "cli/cli_util.h"
#include "cli/top/top.h"

int main(int argc, char** argv) {
  using namespace ttmem;
  CLI::App app{"allocation_monitor_client: live device-memory monitor (the same view as "
               "`ttmem top`)"};
  app.set_version_flag("--version", std::string("allocation_monitor_client (ttmem) ") +
                                        TTMEM_VERSION);
  cli::GlobalOptions global;
  auto* dir = app.add_option("--dir", global.dir,
                             "Segment directory (default: $TTMEM_DIR, else /dev/shm/ttmem-<uid>)");
  auto* server = app.add_option("--server", global.server,
                                "Read from the ttmemd at http://HOST:PORT instead")
                     ->excludes(dir);
  app.add_option("--token-file", global.token_file,
                 "Bearer token for --server: the file's first line (default: $TTMEM_TOKEN)")
      ->needs(server);
  top::TopArgs args;
  args.refresh_ms = 1000;
  top::add_top_options(app, args);
  app.callback([&] { top::run_top(global, args); });
  return cli::run_app(app, argc, argv, "allocation_monitor_client");
}
