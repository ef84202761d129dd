// Prometheus counters keep their labels for their whole life.
#include "daemon/metrics.h"

#include <gtest/gtest.h>

#include <regex>

namespace ttmem::daemon {

using collector::DeviceView;
using collector::ProcessDeviceTotals;
using collector::ProcessView;
using collector::Snapshot;

namespace {

// The ttmem_allocations_total lines of the metrics for `s`, after the ledger has seen it.
std::vector<std::string> allocation_lines(CounterLedger& ledger, const Snapshot& s) {
  ledger.update(s);
  MetricsInput in{&s, &ledger.totals(), 0, 0};
  std::string text = render_metrics(in, MetricsOptions{});
  std::vector<std::string> lines;
  std::regex line("^ttmem_allocations_total\\{.*$", std::regex::multiline);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), line);
       it != std::sregex_iterator(); ++it) {
    lines.push_back(it->str());
  }
  return lines;
}

// Before, a chip whose device had gone (its last process ended) was relabelled from
// device="0" to device="-": a new series to Prometheus, which breaks rate() across it.
TEST(Metrics, CountersKeepTheirLabelsAfterTheirDeviceIsGone) {
  Snapshot live;
  DeviceView d;
  d.chip_id = 0x10;
  d.logical_ids = {0};
  live.devices.push_back(d);
  ProcessView p;
  p.pid = 42;
  p.segment = "/dev/shm/ttmem-0/ttmem-42-1.seg";
  ProcessDeviceTotals totals;
  totals.chip_id = 0x10;
  totals.allocs[0] = 5;
  p.device_totals.push_back(totals);
  live.processes.push_back(p);

  CounterLedger ledger;
  const std::vector<std::string> before = allocation_lines(ledger, live);
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0], R"(ttmem_allocations_total{device="0",chip_id="0x10",kind="DRAM"} 5)");
  EXPECT_EQ(allocation_lines(ledger, Snapshot{}), before);  // process and device gone
  // The chip comes back as another logical device: still the same series.
  live.devices[0].logical_ids = {3};
  EXPECT_EQ(allocation_lines(ledger, live)[0],
            R"(ttmem_allocations_total{device="0",chip_id="0x10",kind="DRAM"} 10)");
}

}  // namespace
}  // namespace ttmem::daemon
