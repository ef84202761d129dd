#include "cli/report/report.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/report/report_page.h"
#include "collector/cb_coverage.h"
#include "cli/top/collect.h"
#include "common/format.h"
#include "common/kinds.h"

namespace ttmem::report {

using collector::BufferView;
using collector::CbCoverage;
using collector::core_rect_of;
using collector::DeviceView;
using collector::RecordedBuffer;
using collector::RecordedProcess;
using collector::Recording;
using collector::recording_start_ns;
using collector::replay;
using collector::ReplayVisitor;
using collector::Snapshot;
using collector::states_at;
using common::arch_name;
using common::format_bytes;
using common::kind_name;

namespace {

namespace pr = protocol;
using nlohmann::json;

constexpr uint32_t kCb = uint32_t(Kind::Cb);

// One point of a device's timeline: every kind's figure and every op tag's bytes.
struct Sample {
  uint64_t time_ns = 0;
  std::array<uint64_t, pr::kNumKinds> kinds{};
  std::vector<uint64_t> tags;  // by recording string id; non-CB reserved bytes
  uint64_t total() const {
    uint64_t t = 0;
    for (uint64_t k : kinds) t += k;
    return t;
  }
};

struct DeviceTimeline {
  uint64_t chip_id = 0;
  uint32_t logical_id = 0;
  const pr::DeviceSlot* slot = nullptr;
  Sample now;
  std::vector<Sample> samples;
  // The bucket being filled: its highest-total moment and its last moment.
  int64_t bucket = -1;
  std::optional<Sample> bucket_max, bucket_last;
  uint64_t peak_total = 0, peak_ns = 0;
  std::array<uint64_t, pr::kNumKinds> kind_peak{};
  std::vector<uint64_t> tag_peak;
};

// Folds the replay into downsampled timelines with exact peaks.
class TimelineBuilder : public ReplayVisitor {
 public:
  TimelineBuilder(const Recording& r, size_t buckets) : r_(r), buckets_(buckets) {
    start_ = recording_start_ns(r);
    span_ = std::max<uint64_t>(r.end_ns > start_ ? r.end_ns - start_ : 0, 1);
    for (const auto& [key, slot] : r.devices) {
      auto [it, added] = devices_.try_emplace(slot.chip_id);
      if (added) {
        it->second.chip_id = slot.chip_id;
        it->second.logical_id = key.second;
        it->second.slot = &slot;
      }
    }
    const size_t tags = r.strings.size();
    for (auto& [chip, d] : devices_) {
      d.now.tags.assign(tags, 0);
      d.tag_peak.assign(tags, 0);
    }
    op_bytes_.assign(tags, 0);
    op_peak_.assign(tags, 0);
  }

  void begin(const RecordedBuffer& b, uint64_t) override { count(b, true); }
  void end(const RecordedBuffer& b, uint64_t) override { count(b, false); }
  void usage(uint64_t t, uint64_t chip, uint32_t kind, uint64_t bytes) override {
    auto it = devices_.find(chip);
    if (it == devices_.end()) return;
    DeviceTimeline& d = it->second;
    d.now.kinds[kind] = bytes;
    d.now.time_ns = t;
    sample(d);
  }

  // Ends every timeline at the recording's end.
  std::map<uint64_t, DeviceTimeline>& finish() {
    for (auto& [chip, d] : devices_) {
      d.now.time_ns = std::max(d.now.time_ns, r_.end_ns);
      sample(d);
      flush(d);
    }
    return devices_;
  }
  const std::vector<uint64_t>& op_peaks() const { return op_peak_; }
  uint64_t start_ns() const { return start_; }

 private:
  void count(const RecordedBuffer& b, bool added) {
    if (b.record.kind == kCb) return;  // CB sets overlap: shown as the L1 covered, not by op
    auto it = devices_.find(r_.chip_id(b.process, b.device));
    if (it == devices_.end()) return;
    uint64_t& bytes = it->second.now.tags[b.record.tag];
    uint64_t& all = op_bytes_[b.record.tag];
    if (added) {
      bytes += b.reserved;
      all += b.reserved;
      op_peak_[b.record.tag] = std::max(op_peak_[b.record.tag], all);
    } else {
      bytes -= std::min(bytes, b.reserved);
      all -= std::min(all, b.reserved);
    }
  }

  void sample(DeviceTimeline& d) {
    const uint64_t total = d.now.total();
    if (total > d.peak_total) {
      d.peak_total = total;
      d.peak_ns = d.now.time_ns;
    }
    for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
      d.kind_peak[k] = std::max(d.kind_peak[k], d.now.kinds[k]);
    }
    for (size_t i = 0; i < d.now.tags.size(); ++i) {
      d.tag_peak[i] = std::max(d.tag_peak[i], d.now.tags[i]);
    }
    const uint64_t t = d.now.time_ns > start_ ? d.now.time_ns - start_ : 0;
    const int64_t bucket = int64_t(std::min<uint64_t>(t * buckets_ / span_, buckets_ - 1));
    if (bucket != d.bucket) {
      flush(d);
      d.bucket = bucket;
    }
    if (!d.bucket_max || total > d.bucket_max->total()) d.bucket_max = d.now;
    d.bucket_last = d.now;
  }

  void flush(DeviceTimeline& d) {
    if (d.bucket_max) d.samples.push_back(*d.bucket_max);
    if (d.bucket_last && (!d.bucket_max || d.bucket_last->time_ns != d.bucket_max->time_ns)) {
      d.samples.push_back(*d.bucket_last);
    }
    d.bucket_max.reset();
    d.bucket_last.reset();
  }

  const Recording& r_;
  size_t buckets_;
  uint64_t start_ = 0, span_ = 1;
  std::map<uint64_t, DeviceTimeline> devices_;
  std::vector<uint64_t> op_bytes_, op_peak_;  // over all devices, by tag
};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string op_name(const Recording& r, uint32_t tag) {
  return tag == 0 ? std::string("(no op)") : r.strings[tag];
}

std::string percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? std::string("-") : fmt::format("{:.1f}%", 100.0 * double(part) / double(whole));
}

double seconds(uint64_t t, uint64_t start) { return double(t > start ? t - start : 0) / 1e9; }

// The device's L1 at its peak, painted as `ttmem top`'s L1 map paints a live device.
json l1_map_json(const Recording& r, const DeviceTimeline& d,
                 const std::vector<RecordedBuffer>& live) {
  if (d.slot == nullptr) return nullptr;
  Snapshot s;
  DeviceView v;
  v.chip_id = d.chip_id;
  v.logical_ids = {d.logical_id};
  v.l1_per_core = d.slot->l1_per_core;
  v.unreserved_base = d.slot->unreserved_base;
  for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
    v.kinds[k].bank_base = d.slot->kinds[k].bank_base;
    v.kinds[k].bank_size = d.slot->kinds[k].bank_size;
    v.kinds[k].num_banks = d.slot->kinds[k].num_banks;
  }
  CbCoverage cbs;
  uint64_t lowest_l1 = v.l1_per_core != 0 ? v.l1_per_core
                                          : v.kinds[uint32_t(Kind::L1)].bank_base +
                                                v.kinds[uint32_t(Kind::L1)].bank_size;
  for (const RecordedBuffer& b : live) {
    if (r.chip_id(b.process, b.device) != d.chip_id) continue;
    const uint32_t kind = b.record.kind;
    if (kind == kCb) {
      cbs.add(core_rect_of(b.record.aux), b.record.address + b.record.size);
    } else if (kind == uint32_t(Kind::L1) || kind == uint32_t(Kind::L1Small)) {
      BufferView bv;
      bv.pid = pid_t(r.processes[b.process].pid);
      bv.chip_id = d.chip_id;
      bv.device = b.device;
      bv.kind = kind;
      bv.buffer_id = b.record.buffer_id;
      bv.address = b.record.address;
      bv.size = b.record.size;
      bv.size_per_bank = b.record.size_per_bank;
      bv.reserved = b.reserved;
      bv.num_banks = b.record.num_banks;
      bv.tag = r.strings[b.record.tag];
      s.buffers.push_back(bv);
      if (kind == uint32_t(Kind::L1)) {
        v.has_l1_buffers = true;
        lowest_l1 = std::min(lowest_l1, b.record.address);
      }
    }
  }
  v.cb_region_end = cbs.region_end(v.unreserved_base);
  v.lowest_l1_address = lowest_l1;
  v.clash_margin = int64_t(lowest_l1) - int64_t(v.cb_region_end);
  const top::L1Map m = top::build_l1_map(s, v);
  if (!m.valid) return nullptr;
  json spans = json::array();
  for (const auto& sp : m.spans) spans.push_back({sp.begin, sp.end, int(sp.region)});
  return {{"l1_per_core", m.l1_per_core}, {"unreserved_base", m.unreserved_base},
          {"cb_region_end", m.cb_region_end}, {"lowest_l1_address", m.lowest_l1_address},
          {"has_l1_buffers", m.has_l1_buffers}, {"clash_margin", m.clash_margin},
          {"spans", spans}};
}

}  // namespace

std::string render_html(const Recording& r, const ReportOptions& o) {
  TimelineBuilder builder(r, std::max<size_t>(o.timeline_points, 2));
  const std::vector<RecordedBuffer> at_end = replay(r, builder);
  std::map<uint64_t, DeviceTimeline>& devices = builder.finish();
  const uint64_t start = builder.start_ns();

  // The live set at each device's peak, in one more pass.
  std::vector<uint64_t> peak_times;
  for (const auto& [chip, d] : devices) peak_times.push_back(d.peak_ns);
  std::sort(peak_times.begin(), peak_times.end());
  peak_times.erase(std::unique(peak_times.begin(), peak_times.end()), peak_times.end());
  const auto peak_states = states_at(r, peak_times);
  auto live_at = [&](uint64_t t) -> const std::vector<RecordedBuffer>& {
    return peak_states[size_t(std::lower_bound(peak_times.begin(), peak_times.end(), t) -
                              peak_times.begin())];
  };

  std::string body;
  // ---- Summary: what a reader takes in within ten seconds.
  body += "<section id=\"summary\"><h2>Summary</h2><table class=\"peaks\"><tr><th>device</th>"
          "<th>chip</th>";
  std::array<bool, pr::kNumKinds> kind_seen{};
  for (const auto& [chip, d] : devices) {
    for (uint32_t k = 0; k < pr::kNumKinds; ++k) kind_seen[k] |= d.kind_peak[k] > 0;
  }
  for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
    if (kind_seen[k]) {
      body += fmt::format("<th>peak {}{}</th>", kind_name(k), k == kCb ? " (covered)" : "");
    }
  }
  body += "<th>peak total</th><th>at</th></tr>";
  for (const auto& [chip, d] : devices) {
    body += fmt::format("<tr><td>{}</td><td>{:#x}</td>", d.logical_id, chip);
    for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
      if (!kind_seen[k]) continue;
      const uint64_t cap = d.slot ? d.slot->kinds[k].capacity : 0;
      body += fmt::format("<td>{} <span class=\"dim\">{}</span></td>",
                          format_bytes(d.kind_peak[k]), percent(d.kind_peak[k], cap));
    }
    body += fmt::format("<td><b>{}</b></td><td>{:.3f} s</td></tr>", format_bytes(d.peak_total),
                        seconds(d.peak_ns, start));
  }
  body += "</table>";
  std::vector<uint32_t> ops;
  for (uint32_t t = 0; t < builder.op_peaks().size(); ++t) {
    if (builder.op_peaks()[t] > 0) ops.push_back(t);
  }
  std::sort(ops.begin(), ops.end(), [&](uint32_t a, uint32_t b) {
    return builder.op_peaks()[a] > builder.op_peaks()[b];
  });
  body += "<h3>Top ops by peak bytes</h3><table class=\"ops\"><tr><th>op</th><th>peak "
          "(all devices, CBs excepted)</th></tr>";
  for (size_t i = 0; i < std::min<size_t>(5, ops.size()); ++i) {
    body += fmt::format("<tr><td>{}</td><td>{}</td></tr>", escape(op_name(r, ops[i])),
                        format_bytes(builder.op_peaks()[ops[i]]));
  }
  body += "</table><h3>Failures</h3><ul class=\"failures\">";
  size_t failures = 0;
  auto failure = [&](const std::string& html) {
    body += "<li>" + html + "</li>";
    ++failures;
  };
  std::map<std::string, uint64_t> problems;
  for (const auto& i : r.instants) problems[i.what] += i.count;
  for (const auto& [what, n] : problems) {
    failure(what == "dropped events"
                ? fmt::format("{} events missed by the recorder: gaps, marked on the timelines; "
                              "totals are exact again at the checkpoint after each gap",
                              n)
                : fmt::format("{}: {} reports the client could not record", escape(what), n));
  }
  for (const auto& p : r.processes) {
    if (p.leaked > 0) {
      failure(fmt::format("process {} ({}) ended with {} buffers allocated: leaks, listed below",
                          p.pid, escape(p.command), p.leaked));
    }
  }
  if (r.truncated) failure("the recording ends in a block cut short (the recorder was stopped)");
  if (failures == 0) body += "<li class=\"ok\">none</li>";
  body += "</ul></section>";

  // ---- Per device: timelines, the buffers at the peak, the L1 map at the peak.
  json charts = json::array();
  for (const auto& [chip, d] : devices) {
    const std::string id = fmt::format("dev{}", charts.size());
    body += fmt::format("<section class=\"device\"><h2>Device {} <span class=\"dim\">chip {:#x}, "
                        "{}</span></h2>",
                        d.logical_id, chip, d.slot ? arch_name(d.slot->arch) : "unknown");
    body += fmt::format("<h3>Used bytes by kind</h3><div class=\"chart\" id=\"{}-kinds\"></div>"
                        "<h3>Used bytes by op</h3><div class=\"chart\" id=\"{}-ops\"></div>",
                        id, id);
    json times = json::array();
    for (const auto& s : d.samples) times.push_back(std::round(seconds(s.time_ns, start) * 1e6) / 1e6);
    json kinds = json::array();
    for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
      if (d.kind_peak[k] == 0) continue;
      json values = json::array();
      for (const auto& s : d.samples) values.push_back(s.kinds[k]);
      kinds.push_back({{"name", std::string(kind_name(k)) + (k == kCb ? " (covered)" : "")},
                       {"values", values}});
    }
    // The ops with the highest peaks on this device by name; the rest together; then CBs.
    std::vector<uint32_t> dev_ops;
    for (uint32_t t = 0; t < d.tag_peak.size(); ++t) {
      if (d.tag_peak[t] > 0) dev_ops.push_back(t);
    }
    std::sort(dev_ops.begin(), dev_ops.end(),
              [&tag_peak = d.tag_peak](uint32_t a, uint32_t b) { return tag_peak[a] > tag_peak[b]; });
    if (dev_ops.size() > o.ops_per_chart) dev_ops.resize(o.ops_per_chart);
    json op_series = json::array();
    for (uint32_t t : dev_ops) {
      json values = json::array();
      for (const auto& s : d.samples) values.push_back(s.tags[t]);
      op_series.push_back({{"name", op_name(r, t)}, {"values", values}});
    }
    json other = json::array(), cb = json::array();
    bool any_other = false;
    for (const auto& s : d.samples) {
      uint64_t named = 0;
      for (uint32_t t : dev_ops) named += s.tags[t];
      const uint64_t rest = s.total() - s.kinds[kCb] - std::min(s.total() - s.kinds[kCb], named);
      any_other |= rest > 0;
      other.push_back(rest);
      cb.push_back(s.kinds[kCb]);
    }
    if (any_other) op_series.push_back({{"name", "other ops"}, {"values", other}});
    if (d.kind_peak[kCb] > 0) op_series.push_back({{"name", "CB (covered)"}, {"values", cb}});

    const auto& live = live_at(d.peak_ns);
    std::vector<const RecordedBuffer*> here;
    for (const auto& b : live) {
      if (r.chip_id(b.process, b.device) == chip) here.push_back(&b);
    }
    std::sort(here.begin(), here.end(),
              [](const auto* a, const auto* b) { return a->reserved > b->reserved; });
    body += fmt::format("<h3>Live at the peak ({:.3f} s, {} buffers)</h3><table class=\"peak-"
                        "buffers\"><tr><th>op</th><th>kind</th><th>size</th><th>reserved</th>"
                        "<th>banks / cores</th><th>process</th></tr>",
                        seconds(d.peak_ns, start), here.size());
    for (size_t i = 0; i < std::min(here.size(), o.peak_buffer_rows); ++i) {
      const RecordedBuffer& b = *here[i];
      body += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                          "<td>{}</td></tr>",
                          escape(op_name(r, b.record.tag)), kind_name(b.record.kind),
                          format_bytes(b.record.size), format_bytes(b.reserved),
                          b.record.num_banks, r.processes[b.process].pid);
    }
    if (here.size() > o.peak_buffer_rows) {
      body += fmt::format("<tr><td colspan=\"6\" class=\"dim\">and {} smaller</td></tr>",
                          here.size() - o.peak_buffer_rows);
    }
    body += "</table>";
    json l1 = l1_map_json(r, d, live);
    if (!l1.is_null()) {
      body += fmt::format("<h3>L1 of one core at the peak, to scale</h3><div class=\"l1map\" "
                          "id=\"{}-l1\"></div>",
                          id);
    }
    body += "</section>";
    charts.push_back({{"id", id}, {"times", times}, {"kinds", kinds}, {"ops", op_series},
                      {"peak", {{"t", seconds(d.peak_ns, start)}, {"bytes", d.peak_total}}},
                      {"l1map", l1}});
  }

  // ---- Leaks: what processes that ended still held.
  body += "<section id=\"leaks\"><h2>Leaks</h2>";
  size_t leaks = 0;
  std::string rows;
  for (const auto& b : at_end) {
    const RecordedProcess& p = r.processes[b.process];
    if (!p.end_ns || b.record.kind == kCb) continue;  // CBs end with their program
    ++leaks;
    rows += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                        "<td>{}</td><td>{}</td></tr>",
                        p.pid, b.device, kind_name(b.record.kind), b.record.buffer_id,
                        format_bytes(b.record.size), format_bytes(b.reserved),
                        escape(op_name(r, b.record.tag)));
  }
  body += leaks == 0 ? std::string("<p class=\"ok\">No process ended holding buffers.</p>")
                     : "<table class=\"leaks\"><tr><th>pid</th><th>device</th><th>kind</th>"
                       "<th>id</th><th>size</th><th>reserved</th><th>op</th></tr>" +
                           rows + "</table>";
  body += "</section>";

  uint64_t events = r.events.size();
  const std::string header = fmt::format(
      "<header><h1>ttmem report: {}</h1><p class=\"dim\">{:.3f} s recorded, {} events, {} "
      "processes, {} devices, {} checkpoints{}</p></header>",
      escape(o.title), seconds(r.end_ns, start), events, r.processes.size(), devices.size(),
      r.checkpoints.size(),
      r.dropped_events > 0 ? fmt::format(", {} events missed (gaps marked)", r.dropped_events)
                           : std::string(", no gaps"));
  json gaps = json::array();
  for (const auto& i : r.instants) {
    if (i.what == "dropped events") gaps.push_back(seconds(i.time_ns, start));
  }
  json data = {{"charts", charts}, {"gaps", gaps}};
  // "</" would end the script element early: JSON allows "<\/".
  std::string data_text = data.dump(-1, ' ', false, json::error_handler_t::replace);
  for (size_t at = 0; (at = data_text.find("</", at)) != std::string::npos; at += 3) {
    data_text.replace(at, 2, "<\\/");
  }
  return page(escape(o.title), header + body, data_text);
}

}  // namespace ttmem::report
