#include "cli/cli_util.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/remote.h"
#include "collector/query.h"

namespace ttmem::cli {

using collector::Collector;
using collector::CollectorOptions;
using collector::find_device;
using collector::find_kind;
using collector::leak_records;
using collector::missing_segment_dir_text;
using collector::parse_sort;
using collector::Snapshot;

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
    // A directory named with --dir that does not exist is most likely a typo: say so and fail.
    // The default one is simply not made yet; the front-ends say that where they say "no
    // devices".
    if (c.segment_dir_missing() && !global.dir.empty()) {
      throw CliError(missing_segment_dir_text(c.dir()) + "; check --dir");
    }
    return c.snapshot();
  } catch (const CliError&) {
    throw;
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

CLI::Validator sort_key() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::string error;
        return parse_sort(text, &error) ? std::string() : error;
      },
      "KEY");
}

CLI::Validator number_up_to(double max) {
  return CLI::Validator(
      [max](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0' || value != value) {
          return "expected a number, got '" + text + "'";
        }
        if (value < 0 || value > max) return fmt::format("must be 0 to {:g}, got {}", max, text);
        return std::string();
      },
      fmt::format("0..{:g}", max));
}

int run_app(CLI::App& app, int argc, char** argv, const char* program) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ExtrasError& e) {
    // CLI11's message names no command and lists the unexpected words last first: name the
    // command, and list them in the order they were typed (as CLI11 keeps them).
    const CLI::App* command = &app;
    while (!command->get_subcommands().empty()) command = command->get_subcommands().front();
    const std::vector<std::string> listed = app.remaining(/*recurse=*/true);
    if (listed.empty()) return app.exit(e) == 0 ? 0 : 2;
    const std::string typed = fmt::format("{}", fmt::join(listed, " "));
    const std::string name = command == &app ? std::string(program)
                                             : std::string(program) + " " + command->get_name();
    std::fprintf(stderr, "%s: unexpected: %s; `%s --help` lists what it takes\n", name.c_str(),
                 typed.c_str(), name.c_str());
    return 2;
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
