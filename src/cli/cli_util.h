// Helpers shared by the CLI subcommands.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "collector/collector.h"

namespace ttmem::cli {

// Collector options for the chosen directory.
collector::CollectorOptions collector_options(const GlobalOptions& global);

// One snapshot of the chosen directory, or of the ttmemd at --server. Throws CliError if the
// collector cannot start or the daemon cannot be read. Without list_buffers only the aggregates
// are built (faster with many live buffers); without leak_records only the leaks are counted
// (faster with large leak files).
collector::Snapshot take_snapshot(const GlobalOptions& global, bool list_buffers = true,
                                  bool leak_records = true);

// Throws a usage error (exit 2) naming `what` when --server is set: for commands that work on
// the local segment directory itself.
void require_local(const GlobalOptions& global, const std::string& what);

// Device logical id -> chip id in the snapshot; throws CliError listing the known ids.
uint64_t resolve_device(const collector::Snapshot& s, uint32_t logical_id);

// Kind name -> kind; throws CliError listing the names.
uint32_t resolve_kind(const std::string& name);

void print_json(const nlohmann::json& j);

// A number from 0 to `max`, with a message that says what to give (CLI11's own NonNegativeNumber
// prints the whole double range). Unsigned options need it too: CLI11 reads "-5" for a size_t as
// 2^64 - 5, and a seconds option given 1e30 would overflow its nanoseconds.
CLI::Validator number_up_to(double max);

// A buffer sort key (collector/query.h), the same for `ttmem buffers` and `ttmem top`; the
// message names the valid ones.
CLI::Validator sort_key();

// Parses and runs `app`: --help and --version exit 0, usage errors 2 (CLI11's message), a
// CliError prints "<program>: <message>" and its exit code, any other exception exits 1.
int run_app(CLI::App& app, int argc, char** argv, const char* program);

}  // namespace ttmem::cli
