#include "cli/cli_util.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include <fmt/format.h>

#include "cli/remote.h"
#include "collector/query.h"

namespace ttmem::cli {

CollectorOptions collector_options(const GlobalOptions& global) {
  CollectorOptions o;
  o.dir = global.dir;
  o.tt_metal_shm = !global.no_tt_metal_shm;
  return o;
}

Snapshot take_snapshot(const GlobalOptions& global, bool list_buffers, bool leak_records) {
  if (!global.server.empty()) return fetch_snapshot(global, list_buffers, leak_records);
  try {
    CollectorOptions o = collector_options(global);
    o.list_buffers = list_buffers;
    o.leak_records = leak_records;
    o.watch = false;  // one refresh, then exit
    Collector c(o);
    c.refresh();
    return c.snapshot();
  } catch (const std::runtime_error& e) {
    throw CliError(e.what());
  }
}

void require_local(const GlobalOptions& global, const std::string& what) {
  if (global.server.empty()) return;
  throw CliError(fmt::format("{} works on the local segment directory and cannot use --server; "
                             "run it on the ttmemd's host (with --dir)",
                             what),
                 2);
}

uint64_t resolve_device(const Snapshot& s, uint32_t logical_id) {
  std::string error;
  auto chip = find_device(s, logical_id, &error);
  if (!chip) throw CliError(error);
  return *chip;
}

uint32_t resolve_kind(const std::string& name) {
  std::string error;
  auto kind = find_kind(name, &error);
  if (!kind) throw CliError(error);
  return *kind;
}

void print_json(const nlohmann::json& j) { std::printf("%s\n", j.dump(2).c_str()); }

int run_app(CLI::App& app, int argc, char** argv, const char* program) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const CliError& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
  return 0;
}

}  // namespace ttmem::cli
