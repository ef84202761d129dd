// ttmem leaks: buffers that processes still held when they died or exited.
#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "cli/table.h"
#include "collector/json.h"
#include "common/format.h"
#include "common/kinds.h"

namespace ttmem::cli {

using collector::Collector;
using collector::leaks_json;
using collector::missing_segment_dir_text;
using collector::Snapshot;
using common::format_bytes;
using common::kind_name;

namespace {

// Leak reports that exist but cannot be shown (unreadable files, reports a full disk keeps from
// being saved): one line each on stderr, so the table, or "no leaks", is never the whole story.
size_t report_leak_problems(const Snapshot& s) {
  size_t n = 0;
  for (const auto& p : s.problems) {
    if (!p.leaks) continue;
    std::fprintf(stderr, "leak report %s not shown: %s\n", p.path.c_str(), p.error.c_str());
    ++n;
  }
  return n;
}

void print_text(const Snapshot& s) {
  const size_t unshown = report_leak_problems(s);
  if (s.leaks.empty() && unshown > 0) {
    std::printf("No leak records could be read in %s, but %zu leak reports could not be read or "
                "saved (listed on stderr).\n",
                s.segment_dir.c_str(), unshown);
    return;
  }
  if (s.leaks.empty()) {
    if (s.segment_dir_missing) {
      std::printf("No leaked buffers: %s.\n", missing_segment_dir_text(s.segment_dir).c_str());
    } else {
      std::printf("No leaked buffers recorded in %s.\n", s.segment_dir.c_str());
    }
    return;
  }
  Table t({"PID", "DEV", "KIND", "ID", "ADDRESS", "SIZE", "RESERVED", "TAG", "COMMAND"},
          {true, true, false, true, true, true, true, false, false});
  uint64_t total = 0;
  for (const auto& l : s.leaks) {
    t.add({std::to_string(l.pid), std::to_string(l.device), std::string(kind_name(l.kind)),
           std::to_string(l.buffer_id), fmt::format("{:#x}", l.address), format_bytes(l.size),
           format_bytes(l.reserved), l.tag.empty() ? "-" : l.tag, l.command});
    total += l.reserved;
  }
  t.print();
  std::printf("\n%zu leaked buffers, %s reserved. `ttmem leaks --clear` forgets them.\n",
              size_t(s.leaks.count()), format_bytes(total).c_str());
}

}  // namespace

void add_leaks_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("leaks", "Buffers left allocated by processes that have ended");
  auto json = std::make_shared<bool>(false);
  auto clear = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->add_flag("--clear", *clear, "Forget every recorded leak");
  cmd->callback([&global, json, clear] {
    if (*clear) {
      require_local(global, "ttmem leaks --clear");
      try {
        Collector c(collector_options(global));
        c.refresh();  // reap first, so leaks of processes that just died are cleared too
        std::printf("Forgot %zu leak reports.\n", c.leak_store().clear());
      } catch (const std::runtime_error& e) {
        throw CliError(e.what());
      }
      return;
    }
    Snapshot s = take_snapshot(global);
    if (*json) {
      report_leak_problems(s);
      print_json(leaks_json(s.leaks));
      return;
    }
    print_text(s);
  });
}

}  // namespace ttmem::cli
