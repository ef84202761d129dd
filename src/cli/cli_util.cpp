#include "cli/cli_util.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include <fmt/format.h>

#include "common/kinds.h"

namespace ttmem::cli {

CollectorOptions collector_options(const GlobalOptions& global) {
  CollectorOptions o;
  o.dir = global.dir;
  return o;
}

Snapshot take_snapshot(const GlobalOptions& global, bool list_buffers) {
  try {
    CollectorOptions o = collector_options(global);
    o.list_buffers = list_buffers;
    Collector c(o);
    c.refresh();
    return c.snapshot();
  } catch (const std::runtime_error& e) {
    throw CliError(e.what());
  }
}

uint64_t resolve_device(const Snapshot& s, uint32_t logical_id) {
  std::string known;
  for (const auto& d : s.devices) {
    for (uint32_t id : d.logical_ids) {
      if (id == logical_id) return d.chip_id;
      known += (known.empty() ? "" : ", ") + std::to_string(id);
    }
  }
  if (known.empty()) {
    throw CliError(fmt::format("no device {}: no tracked process has registered any device "
                               "(is the program running with the same TTMEM_DIR?)",
                               logical_id));
  }
  throw CliError(fmt::format("no device {}; tracked devices are: {}", logical_id, known));
}

uint32_t resolve_kind(const std::string& name) {
  if (auto k = parse_kind(name)) return *k;
  std::string names;
  for (auto n : kKindNames) names += (names.empty() ? "" : ", ") + std::string(n);
  throw CliError(fmt::format("unknown memory kind '{}'; use one of: {}", name, names));
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
