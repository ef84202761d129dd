#include "daemon/metrics.h"

#include <algorithm>

#include <fmt/format.h>

#include "collector/query.h"

#include "common/kinds.h"

namespace ttmem::daemon {

using collector::DeviceView;
using collector::join_ids;
using collector::kDetailCounters;
using collector::KindUsage;
using collector::kNumKinds;
using collector::kRejectionReasons;
using collector::kSourceTtmem;
using collector::kSourceTtMetalShm;
using collector::ProcessDeviceTotals;
using collector::SegmentProblem;
using collector::Snapshot;
using common::arch_name;
using common::kind_name;

void CounterLedger::update(const Snapshot& s) {
  std::map<Key, std::vector<ProcessDeviceTotals>> now;
  for (const auto& p : s.processes) now[{p.pid, p.segment}] = p.device_totals;
  // A process that left: its last seen counters become part of the retired sums.
  for (const auto& [key, devices] : live_) {
    if (now.count(key)) continue;
    for (const auto& d : devices) {
      ChipTotals& r = retired_[d.chip_id];
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        r.allocs[k] += d.allocs[k];
        r.frees[k] += d.frees[k];
      }
      r.dropped_events += d.dropped_events;
    }
  }
  live_ = std::move(now);
  std::map<uint64_t, ChipTotals> totals = retired_;
  for (const auto& [key, devices] : live_) {
    for (const auto& d : devices) {
      ChipTotals& t = totals[d.chip_id];
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        t.allocs[k] += d.allocs[k];
        t.frees[k] += d.frees[k];
      }
      t.dropped_events += d.dropped_events;
    }
  }
  std::map<uint64_t, std::string> device_of;
  for (const auto& d : s.devices) device_of[d.chip_id] = join_ids(d.logical_ids);
  // A live process's counter can only grow, and retiring moves its value from the live to the
  // retired sum, so each total is monotonic; max() guards against a process's final counts
  // never having been seen by an earlier snapshot.
  for (auto& [chip, t] : totals) {
    const ChipTotals& prev = totals_[chip];
    t.device = !prev.device.empty() ? prev.device : device_of[chip];
    for (uint32_t k = 0; k < kNumKinds; ++k) {
      t.allocs[k] = std::max(t.allocs[k], prev.allocs[k]);
      t.frees[k] = std::max(t.frees[k], prev.frees[k]);
    }
    t.dropped_events = std::max(t.dropped_events, prev.dropped_events);
  }
  totals_ = std::move(totals);
}

std::string escape_label(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

class Writer {
 public:
  // Starts a metric family with its HELP and TYPE lines.
  void family(const char* name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(const char* name, const std::string& labels, uint64_t value) {
    out_ += labels.empty() ? fmt::format("{} {}\n", name, value)
                           : fmt::format("{}{{{}}} {}\n", name, labels, value);
  }
  void sample(const char* name, const std::string& labels, int64_t value) {
    out_ += fmt::format("{}{{{}}} {}\n", name, labels, value);
  }
  void sample(const char* name, const std::string& labels, double value) {
    out_ += labels.empty() ? fmt::format("{} {}\n", name, value)
                           : fmt::format("{}{{{}}} {}\n", name, labels, value);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// `device` is the logical ids, "0" or "0,4"; "-" when there are none.
std::string chip_labels(const std::string& device, uint64_t chip_id) {
  return fmt::format("device=\"{}\",chip_id=\"{:#x}\"", device.empty() ? "-" : device, chip_id);
}

std::string device_labels(const DeviceView& d) {
  return chip_labels(join_ids(d.logical_ids), d.chip_id);
}

// Where a chip's figures come from: ttmem's client (every buffer) or tt-metal's own counters.
std::string_view device_source(const DeviceView& d) {
  return d.detail == kDetailCounters ? kSourceTtMetalShm : kSourceTtmem;
}

constexpr size_t kMaxCommandLabel = 64;

}  // namespace

std::string render_metrics(const MetricsInput& in, const MetricsOptions& options) {
  const Snapshot& s = *in.snapshot;
  Writer w;
  w.family("ttmem_build_info", "gauge", "Build of the ttmemd serving these metrics.");
  w.sample("ttmem_build_info", fmt::format("version=\"{}\"", escape_label(options.version)),
           uint64_t{1});

  w.family("ttmem_device_info", "gauge", "Tracked devices (value 1) with their architecture.");
  for (const auto& d : s.devices) {
    w.sample("ttmem_device_info",
             fmt::format("{},arch=\"{}\",board=\"{}\"", device_labels(d), arch_name(d.arch),
                         escape_label(d.board)),
             uint64_t{1});
  }

  struct KindGauge {
    const char* name;
    const char* help;
    uint64_t KindUsage::*field;
  };
  static const KindGauge kGauges[] = {
      {"ttmem_device_allocated_bytes",
       "Bytes held by live buffers (requested sizes); CB kind: the L1 that every live program's "
       "CB set covers, overlapping sets counted once.",
       &KindUsage::requested},
      {"ttmem_device_reserved_bytes",
       "Bytes of address range the lock-step allocator reserved over all banks; CB kind: the L1 "
       "that every live program's CB set covers, overlapping sets counted once.",
       &KindUsage::reserved},
      {"ttmem_device_capacity_bytes", "Allocatable bytes over all banks.", &KindUsage::capacity},
      {"ttmem_device_peak_reserved_bytes", "Highest reserved bytes seen.", &KindUsage::peak},
      {"ttmem_device_largest_free_block_bytes",
       "Largest contiguous free range in one bank: the biggest per-bank buffer that still fits.",
       &KindUsage::largest_free_block},
      {"ttmem_device_buffers", "Live buffers (CB kind: CB records, one per CB and core range).",
       &KindUsage::count},
  };
  for (const auto& g : kGauges) {
    w.family(g.name, "gauge", g.help);
    for (const auto& d : s.devices) {
      std::string base = device_labels(d);
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        const KindUsage& u = d.kinds[k];
        if (u.capacity == 0 && u.reserved == 0 && u.count == 0 && u.total_allocs == 0) continue;
        if (g.field == &KindUsage::largest_free_block && k == uint32_t(Kind::SystemMemory)) {
          continue;  // no banks, no address map
        }
        w.sample(g.name,
                 fmt::format("{},kind=\"{}\",source=\"{}\"", base, kind_name(k), device_source(d)),
                 u.*(g.field));
      }
    }
  }

  // The totals of tt-metal's files as they stand, live or stale: a file outlives its processes,
  // so what ended processes left is labelled stale="true", never counted as memory in use.
  w.family("ttmem_tt_metal_total_bytes", "gauge",
           "Totals in tt-metal's per-chip counter file; stale=\"true\" when no live process "
           "backs them.");
  for (const auto& d : s.devices) {
    if (!d.tt_metal) continue;
    for (uint32_t k = 0; k < kNumKinds; ++k) {
      if (k == uint32_t(Kind::SystemMemory)) continue;  // tt-metal has no such counter
      w.sample("ttmem_tt_metal_total_bytes",
               fmt::format("{},kind=\"{}\",stale=\"{}\"", device_labels(d), kind_name(k),
                           d.tt_metal->totals_stale ? "true" : "false"),
               d.tt_metal->totals[k]);
    }
  }
  w.family("ttmem_device_cb_region_bytes", "gauge",
           "CB region in use per core: the highest CB end among live programs minus the L1 "
           "unreserved base. What binds L1.");
  for (const auto& d : s.devices) {
    w.sample("ttmem_device_cb_region_bytes", device_labels(d),
             d.cb_region_in_use());
  }
  w.family("ttmem_device_cb_programs", "gauge", "Programs holding a CB set on the chip.");
  for (const auto& d : s.devices) {
    w.sample("ttmem_device_cb_programs", device_labels(d), d.cb_programs);
  }

  w.family("ttmem_device_clash_margin_bytes", "gauge",
           "Lowest L1 buffer address minus CB region end; negative means CBs clash with L1.");
  for (const auto& d : s.devices) {
    w.sample("ttmem_device_clash_margin_bytes", device_labels(d), d.clash_margin);
  }

  // Counters: every chip ever seen, with the labels it was first seen with, for life (before,
  // a chip whose device had gone changed from device="0" to device="-", a new series).
  if (in.totals != nullptr) {
    w.family("ttmem_allocations_total", "counter", "Buffer and CB allocations reported.");
    for (const auto& [chip, t] : *in.totals) {
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        if (t.allocs[k] == 0) continue;
        w.sample("ttmem_allocations_total",
                 fmt::format("{},kind=\"{}\"", chip_labels(t.device, chip), kind_name(k)),
                 t.allocs[k]);
      }
    }
    w.family("ttmem_frees_total", "counter", "Buffer and CB frees reported.");
    for (const auto& [chip, t] : *in.totals) {
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        if (t.allocs[k] == 0 && t.frees[k] == 0) continue;
        w.sample("ttmem_frees_total",
                 fmt::format("{},kind=\"{}\"", chip_labels(t.device, chip), kind_name(k)),
                 t.frees[k]);
      }
    }
    w.family("ttmem_dropped_events_total", "counter",
             "History events lost because a ring filled before it was read (totals stay exact).");
    for (const auto& [chip, t] : *in.totals) {
      w.sample("ttmem_dropped_events_total", chip_labels(t.device, chip), t.dropped_events);
    }
  }

  w.family("ttmem_tracked_processes", "gauge", "Processes in the model (segments and legacy).");
  w.sample("ttmem_tracked_processes", "", uint64_t(s.processes.size()));
  w.family("ttmem_leaked_buffers", "gauge", "Leak records of processes that ended.");
  w.sample("ttmem_leaked_buffers", "", s.leaks.count());
  w.family("ttmem_leak_reports_unshown", "gauge",
           "Leak reports whose records are not in ttmem_leaked_buffers: unreadable leak files, "
           "or reports of ended processes that cannot be saved yet (file system full).");
  w.sample("ttmem_leak_reports_unshown", "",
           uint64_t(std::count_if(s.problems.begin(), s.problems.end(),
                                  [](const SegmentProblem& p) { return p.leaks; })));
  w.family(
      "ttmem_segment_problems", "gauge",
      "Segment files, and tt-metal counter files, skipped (wholly or in part) because they failed "
      "checks.");
  w.sample("ttmem_segment_problems", "", uint64_t(s.problems.size()));
  w.family("ttmem_segments_rejected", "gauge",
           "Well-formed segment files not believed: their owner or holder is not the process "
           "they name.");
  for (const char* reason : kRejectionReasons) {
    uint64_t n =
        uint64_t(std::count_if(s.problems.begin(), s.problems.end(),
                               [&](const SegmentProblem& p) { return p.rejected == reason; }));
    w.sample("ttmem_segments_rejected", fmt::format("reason=\"{}\"", reason), n);
  }
  w.family("ttmem_daemon_refreshes_total", "counter",
           "Collector refreshes ttmemd made (each reads what the tracked processes reported).");
  w.sample("ttmem_daemon_refreshes_total", "", in.refreshes);
  w.family("ttmem_daemon_refresh_cpu_seconds_total", "counter",
           "Thread CPU time ttmemd's collector refreshes took.");
  w.sample("ttmem_daemon_refresh_cpu_seconds_total", "",
           double(in.refresh_cpu_ns) / 1e9);
  w.family("ttmem_legacy_connections", "gauge", "Open legacy AllocMessage connections.");
  w.sample("ttmem_legacy_connections", "", in.legacy_connections);
  w.family("ttmem_legacy_rejected_bytes_total", "counter",
           "Bytes of legacy input that were not valid messages.");
  w.sample("ttmem_legacy_rejected_bytes_total", "", in.legacy_rejected_bytes);
  if (in.legacy_kernel_bytes != nullptr) {
    // Not a kind of the model (kernel binaries are not buffers): the prototype's clients report
    // them apart, and here they stay apart.
    w.family("ttmem_legacy_kernel_bytes", "gauge",
             "Kernel binary bytes legacy clients hold loaded (KERNEL_LOAD less KERNEL_UNLOAD).");
    for (const auto& [device, bytes] : *in.legacy_kernel_bytes) {
      w.sample("ttmem_legacy_kernel_bytes", fmt::format("device=\"{}\"", device), bytes);
    }
  }

  if (options.per_process) {
    w.family("ttmem_process_reserved_bytes", "gauge", "Reserved bytes per process and kind.");
    for (const auto& p : s.processes) {
      std::string cmd = p.command.substr(0, kMaxCommandLabel);
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        if (p.reserved[k] == 0) continue;
        w.sample("ttmem_process_reserved_bytes",
                 fmt::format("pid=\"{}\",command=\"{}\",kind=\"{}\",source=\"{}\"", p.pid,
                             escape_label(cmd), kind_name(k), p.source),
                 p.reserved[k]);
      }
    }
    w.family("ttmem_process_buffers", "gauge", "Live buffers per process (CBs excluded).");
    for (const auto& p : s.processes) {
      if (p.source == kSourceTtMetalShm) continue;  // counters only: no buffers to count
      w.sample("ttmem_process_buffers",
               fmt::format("pid=\"{}\",command=\"{}\"", p.pid,
                           escape_label(p.command.substr(0, kMaxCommandLabel))),
               p.buffers);
    }
  }
  return w.take();
}

}  // namespace ttmem::daemon
