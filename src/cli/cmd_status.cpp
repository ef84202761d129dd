// ttmem status: per-device, per-kind usage; processes; dropped events; unreadable segments.
#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "cli/remote.h"
#include "cli/table.h"
#include "collector/daemon_file.h"
#include "collector/json.h"
#include "collector/query.h"
#include "common/format.h"
#include "common/kinds.h"
#include "common/proc.h"

namespace ttmem::cli {

using collector::join_ids;
using collector::kCheckOtherNamespace;
using collector::kDetailCounters;
using collector::KindUsage;
using collector::kNumKinds;
using collector::kSourceTtMetalShm;
using collector::missing_segment_dir_text;
using collector::ProcessView;
using collector::Snapshot;
using collector::status_json;
using collector::TtMetalChipCounters;
using common::arch_name;
using common::format_bytes;
using common::format_percent;
using common::kind_name;

namespace {

void print_devices(const Snapshot& s) {
  Table t({"DEV", "CHIP", "ARCH", "KIND", "USED", "REQUESTED", "CAPACITY", "USE%", "PEAK",
           "LARGEST FREE/BANK", "BUFS"},
          {true, false, false, false, true, true, true, true, true, true, true});
  for (const auto& d : s.devices) {
    bool first = true;
    // tt-metal's counters give bytes only: capacity, free space and buffers are unknown ("-"),
    // not zero.
    const bool counters_only = d.detail == kDetailCounters;
    for (uint32_t k = 0; k < kNumKinds; ++k) {
      const KindUsage& u = d.kinds[k];
      if (u.capacity == 0 && u.reserved == 0 && u.count == 0) continue;
      const bool no_free_block = counters_only || k == uint32_t(Kind::SystemMemory);
      t.add({first ? join_ids(d.logical_ids) : "", first ? fmt::format("{:#x}", d.chip_id) : "",
             first ? std::string(arch_name(d.arch)) : "", std::string(kind_name(k)),
             format_bytes(u.reserved), format_bytes(u.requested),
             counters_only ? "-" : format_bytes(u.capacity),
             format_percent(u.reserved, u.capacity), format_bytes(u.peak),
             no_free_block ? "-" : format_bytes(u.largest_free_block),
             counters_only ? "-" : std::to_string(u.count)});
      first = false;
    }
  }
  if (t.rows() == 0) {
    std::printf("No devices: %s.\n",
                s.segment_dir_missing
                    ? missing_segment_dir_text(s.segment_dir).c_str()
                    : ("no tracked process has registered a device in " + s.segment_dir).c_str());
    return;
  }
  t.print();
  std::printf(
      "USED, REQUESTED, CAPACITY, PEAK: totals over all banks (CB: the L1 the CB sets "
      "cover, over all cores); LARGEST FREE/BANK: one bank's.\n");
  // CB: the USED row above is the L1 every live program's CB set covers (sets overlap, so they
  // are not added); here the region per core, which binds L1 and sets the clash margin.
  Table c({"DEV", "CB PROGRAMS", "CB REGION/CORE", "CB REGION END", "LOWEST L1 BUFFER",
           "CLASH MARGIN", "DROPPED EVENTS"},
          {true, true, true, true, true, true, true});
  for (const auto& d : s.devices) {
    if (d.detail == kDetailCounters) continue;  // no CBs or addresses in tt-metal's counters
    std::string margin = d.clash_margin < 0
                             ? fmt::format("-{} (CLASH)", format_bytes(uint64_t(-d.clash_margin)))
                             : format_bytes(uint64_t(d.clash_margin));
    c.add({join_ids(d.logical_ids), std::to_string(d.cb_programs),
           format_bytes(d.cb_region_in_use()),
           fmt::format("{:#x}", d.cb_region_end),
           d.has_l1_buffers ? fmt::format("{:#x}", d.lowest_l1_address) : "-", margin,
           std::to_string(d.dropped_events)});
  }
  if (c.rows() == 0) return;
  std::printf("\n");
  c.print();
}

// Which chips have ttmem's detail and which tt-metal's counters only, and what those counters
// say that the table above cannot: the file's totals, and whether anything alive still backs
// them. Printed only where tt-metal's files were read.
void print_tt_metal_counters(const Snapshot& s) {
  bool any = false;
  for (const auto& d : s.devices) {
    if (!d.tt_metal) continue;
    if (!any) {
      std::printf(
          "\ntt-metal's own counters (per chip, per process; no buffers, banks or free "
          "space):\n");
      any = true;
    }
    const TtMetalChipCounters& c = *d.tt_metal;
    std::string totals;
    for (uint32_t k = 0; k < kNumKinds; ++k) {
      if (c.totals[k] == 0) continue;
      totals += fmt::format(" {} {}", kind_name(k), format_bytes(c.totals[k]));
    }
    std::printf("  chip %s: %s; version %u, %llu live and %llu ended processes; file totals%s%s\n",
                fmt::format("{:#x}", d.chip_id).c_str(),
                d.detail == kDetailCounters ? "counters only, capacity unknown"
                                            : "buffers (ttmem) and tt-metal counters",
                c.version, (unsigned long long)c.live_processes,
                (unsigned long long)c.stale_processes, totals.empty() ? " none" : totals.c_str(),
                c.totals_stale ? " (STALE: no live process; left by processes that ended)" : "");
    for (const auto& r : c.remote_chips) {
      std::string bytes;
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        if (r.bytes[k] != 0) bytes += fmt::format(" {} {}", kind_name(k), format_bytes(r.bytes[k]));
      }
      std::printf("    remote chip (logical id %u) through it:%s\n", r.logical_id,
                  bytes.empty() ? " none" : bytes.c_str());
    }
  }
}

// Before the command: what the PID column cannot say.
std::string process_note(const ProcessView& p) {
  // Its pid is the one its own namespace gave it; here it may name another process, or none.
  if (p.segment_check == kCheckOtherNamespace) return "[other pid namespace] ";
  if (p.source == kSourceTtMetalShm) {
    return p.stale ? "[tt-metal counters, STALE: process ended, not counted] "
                   : "[tt-metal counters] ";
  }
  return p.exited ? "[exited] " : "";
}

void print_processes(const Snapshot& s) {
  std::printf("\n");
  if (s.processes.empty()) {
    std::printf("No tracked processes.\n");
    return;
  }
  Table t({"PID", "DRAM", "L1", "L1_SMALL", "TRACE", "CB", "BUFFERS", "DROPPED", "COMMAND"},
          {true, true, true, true, true, true, true, true, false});
  for (const auto& p : s.processes) {
    // The same process through ttmem's client: its row above has the detail (--json has both).
    const bool tt_metal = p.source == kSourceTtMetalShm;
    if (tt_metal && !p.counted && !p.stale) continue;
    // A tt-metal slot shows what it reports (for a stale one: what it left, marked as such).
    const auto& bytes = tt_metal ? p.reported : p.reserved;
    t.add({std::to_string(p.pid), format_bytes(bytes[uint32_t(Kind::Dram)]),
           format_bytes(bytes[uint32_t(Kind::L1)]), format_bytes(bytes[uint32_t(Kind::L1Small)]),
           format_bytes(bytes[uint32_t(Kind::Trace)]), format_bytes(bytes[uint32_t(Kind::Cb)]),
           tt_metal ? "-" : std::to_string(p.buffers), std::to_string(p.dropped_events),
           process_note(p) + p.command});
  }
  t.print();
  for (const auto& p : s.processes) {
    const auto& c = p.counters;
    if (c.slab_overflow || c.unknown_frees || c.duplicate_allocs || c.invalid_calls ||
        c.cb_overflow || p.torn_records || p.corrupt_records) {
      std::printf(
          "warning: pid %d: %llu untracked (table full), %llu unknown frees, %llu duplicate "
          "allocs, %llu invalid calls, %llu CBs over limit, %llu torn, %llu corrupt records\n",
          p.pid, (unsigned long long)c.slab_overflow, (unsigned long long)c.unknown_frees,
          (unsigned long long)c.duplicate_allocs, (unsigned long long)c.invalid_calls,
          (unsigned long long)c.cb_overflow, (unsigned long long)p.torn_records,
          (unsigned long long)p.corrupt_records);
    }
    if (c.tag_overflow) {
      std::printf("warning: pid %d: %llu reports left untagged: the tag table (%u names) is full\n",
                  p.pid, (unsigned long long)c.tag_overflow, protocol::kStringCapacity - 1);
    }
  }
}

void print_footer(const Snapshot& s) {
  if (s.dropped_events > 0) {
    std::printf("\n%llu history events missed by a reader that records them; totals are exact. "
                "Record under `ttmem record -- CMD` (lossless), or raise TTMEM_RING_EVENTS.\n",
                (unsigned long long)s.dropped_events);
  }
  if (!s.leaks.empty()) {
    std::printf("\n%zu leaked buffers from exited processes: see `ttmem leaks`.\n",
                size_t(s.leaks.count()));
  }
  for (const auto& p : s.problems) {
    std::fprintf(stderr, "skipped %s: %s\n", p.path.c_str(), p.error.c_str());
  }
}

// The status from the ttmemd serving the segment directory when there is one (and no --server,
// --direct or --no-tt-metal-shm): its incremental state, refreshed for this request, costs it a few milliseconds
// where reading a million records costs this process tens. Read directly otherwise, and when
// that ttmemd does not answer.
Snapshot status_snapshot(const GlobalOptions& global, bool direct) {
  // --no-tt-metal-shm asks for a view the daemon's may not be.
  if (global.server.empty() && !direct && !global.no_tt_metal_shm) {
    const std::string dir = global.dir.empty() ? common::default_segment_dir() : global.dir;
    if (auto url = collector::find_daemon_url(dir)) {
      if (auto s = fetch_daemon_status(*url, /*fresh=*/true)) return std::move(*s);
    }
  }
  return take_snapshot(global, /*list_buffers=*/false, /*leak_records=*/false);
}

}  // namespace

void add_status_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("status", "Devices with per-kind usage, processes, drops");
  cmd->footer(
      "CB figures: the CB row's USED and REQUESTED are the L1 the CB sets of every live program\n"
      "cover (per core, highest CB end minus the unreserved base, summed over cores; sets overlap\n"
      "and are never added). CB REGION/CORE is that per-core figure on the fullest core: what\n"
      "binds L1 and sets the clash margin. Each program's own CB bytes: ttmem buffers --programs.");
  auto json = std::make_shared<bool>(false);
  auto direct = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->add_flag("--direct", *direct,
                "Read the segments even when a ttmemd serves the directory (by default that "
                "ttmemd answers, refreshed for the request: faster with many live buffers)");
  cmd->callback([&global, json, direct] {
    Snapshot s = status_snapshot(global, *direct);
    if (*json) {
      print_json(status_json(s));
      return;
    }
    print_devices(s);
    print_tt_metal_counters(s);
    print_processes(s);
    print_footer(s);
  });
}

}  // namespace ttmem::cli
