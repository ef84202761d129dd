// ttmem buffers: the live buffer list, filtered and sorted.
#include <CLI/CLI.hpp>

#include <optional>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "cli/table.h"
#include "collector/json.h"
#include "collector/query.h"
#include "common/clock.h"
#include "common/format.h"
#include "common/kinds.h"

namespace ttmem::cli {

using collector::BufferFilter;
using collector::buffers_json;
using collector::BufferSelection;
using collector::BufferSort;
using collector::has_process;
using collector::parse_sort;
using collector::ProgramCbSet;
using collector::programs_json;
using collector::select_buffers;
using collector::select_programs;
using collector::Snapshot;
using collector::sort_names;
using common::format_bytes;
using common::kind_name;
using common::monotonic_ns;

namespace {

struct BuffersArgs {
  std::optional<uint32_t> device;
  std::string kind;
  std::optional<int> pid;
  std::string sort = "reserved";
  size_t limit = 0;
  bool json = false;
  bool programs = false;
};

std::string format_age(uint64_t now_ns, uint64_t then_ns) {
  double s = then_ns > now_ns ? 0.0 : double(now_ns - then_ns) / 1e9;
  if (s < 60) return fmt::format("{:.1f}s", s);
  if (s < 3600) return fmt::format("{:.1f}m", s / 60);
  return fmt::format("{:.1f}h", s / 3600);
}

// One row per program CB set. The sets of different programs overlap in L1 (each starts at the
// unreserved base), so the BYTES column is never summed: `ttmem status` shows what they cover.
void print_programs(const Snapshot& s, BufferFilter filter, bool json) {
  if (filter.kind && *filter.kind != uint32_t(Kind::Cb)) {
    throw CliError("--programs lists CB sets; drop --kind or use --kind CB");
  }
  std::vector<ProgramCbSet> programs = select_programs(s, filter);
  if (json) {
    print_json(programs_json(programs));
    return;
  }
  if (programs.empty()) {
    std::printf("No program holds circular buffers.\n");
    return;
  }
  Table t({"PID", "DEV", "PROGRAM", "CBS", "CB BYTES", "REGION END", "TAG"},
          {true, true, true, true, true, true, false});
  for (const ProgramCbSet& p : programs) {
    t.add({std::to_string(p.pid), std::to_string(p.device), std::to_string(p.program_id),
           std::to_string(p.records), format_bytes(p.bytes), fmt::format("{:#x}", p.region_end),
           p.tag});
  }
  t.print();
  std::printf("CB BYTES: the program's own CBs over all their cores. Programs overlap from the "
              "same base,\nso these do not add up: `ttmem status` shows the L1 they cover.\n");
}

void run(const GlobalOptions& global, const BuffersArgs& a) {
  Snapshot s = take_snapshot(global, /*list_buffers=*/true, /*leak_records=*/false);
  std::optional<uint64_t> chip;
  if (a.device) chip = resolve_device(s, *a.device);
  std::optional<uint32_t> kind;
  if (!a.kind.empty()) kind = resolve_kind(a.kind);
  std::string error;
  if (a.pid && !has_process(s, *a.pid, &error)) throw CliError(error);
  BufferFilter filter{chip, kind, a.pid, parse_sort(a.sort, &error).value(), a.limit};
  if (a.programs) return print_programs(s, filter, a.json);
  BufferSelection selection = select_buffers(s, filter);
  const auto& rows = selection.rows;
  size_t total = selection.total;

  if (a.json) {
    print_json(buffers_json(selection));
    return;
  }
  // Ages as of the snapshot, on the clock of the host that took it (--server: the daemon's).
  uint64_t now = s.taken_monotonic_ns != 0 ? s.taken_monotonic_ns : monotonic_ns();
  Table t({"PID", "DEV", "KIND", "ID", "ADDRESS", "SIZE", "RESERVED", "BANKS", "AGE", "TAG"},
          {true, true, false, true, true, true, true, true, true, false});
  for (auto* b : rows) {
    // A CB's size is per core, every other buffer's over its banks: said in the cell itself.
    const bool cb = b->kind == uint32_t(Kind::Cb);
    t.add({std::to_string(b->pid), std::to_string(b->device), std::string(kind_name(b->kind)),
           std::to_string(b->buffer_id), fmt::format("{:#x}", b->address),
           format_bytes(b->size) + (cb ? "/core" : ""), format_bytes(b->reserved),
           std::to_string(b->num_banks), format_age(now, b->time_ns), b->tag});
  }
  if (rows.empty()) {
    std::printf("No live buffers match.\n");
    return;
  }
  t.print();
  if (rows.size() < total) std::printf("(%zu of %zu buffers; --limit 0 shows all)\n", rows.size(), total);
}

}  // namespace

void add_buffers_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("buffers", "Live buffers and CBs, filtered and sorted");
  cmd->footer(
      "SIZE is the buffer's bytes over all its banks; RESERVED what it takes there (pages\n"
      "rounded up to whole pages per bank). CB rows: one per CB and core range (ID is the\n"
      "program id; SIZE is per core, shown as /core; RESERVED is per core x cores). --programs\n"
      "adds them up per program: the program's own CB bytes. Programs' sets overlap from the\n"
      "same base, so these never add up to a device figure: ttmem status shows the L1 they\n"
      "cover. Sort keys are top's: " +
      sort_names() + ".");
  auto a = std::make_shared<BuffersArgs>();
  cmd->add_option("--device,-d", a->device, "Only this device (logical id)");
  cmd->add_option("--kind,-k", a->kind, "Only this kind: DRAM, L1, SYSTEM_MEMORY, L1_SMALL, TRACE, CB");
  cmd->add_option("--pid,-p", a->pid, "Only this process");
  cmd->add_option("--sort,-s", a->sort,
                  "Order, as in ttmem top: " + sort_names() +
                      " (reserved, size: largest first; age: oldest first; others: lowest first)")
      ->check(sort_key())
      ->capture_default_str();
  cmd->add_option("--limit,-n", a->limit, "Show at most N buffers (0: all)")
      ->check(number_up_to(1e12));
  cmd->add_flag("--programs", a->programs,
                "One row per program's CB set: its CB bytes and where its region ends");
  cmd->add_flag("--json", a->json, "Print JSON");
  cmd->callback([&global, a] { run(global, *a); });
}

}  // namespace ttmem::cli
