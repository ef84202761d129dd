// allocation_monitor_client: the name the seed's users type. It is `ttmem top` with the seed's
// flags (-a, -d ID, -r MS) and the seed's one-second default refresh.
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
  app.add_option("--dir", global.dir,
                 "Segment directory (default: $TTMEM_DIR, else /dev/shm/ttmem-<uid>)");
  top::TopArgs args;
  args.refresh_ms = 1000;
  top::add_top_options(app, args);
  app.callback([&] { top::run_top(global, args); });
  return cli::run_app(app, argc, argv, "allocation_monitor_client");
}
