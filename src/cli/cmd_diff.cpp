// ttmem diff A B: what changed in device memory between two runs, per device, kind and op tag:
// peak bytes, end bytes and buffer counts, with deltas and percentages. A and B are both
// recordings (`ttmem record`) or both `ttmem status --json` snapshots. --fail-over PCT and
// --fail-over-bytes N make it a CI gate: exit 1 when a device's kind grew past the limit.
#include <CLI/CLI.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "collector/json.h"
#include "collector/recording.h"
#include "common/format.h"
#include "common/kinds.h"

namespace ttmem::cli {

using collector::DeviceView;
using collector::KindUsage;
using collector::read_recording;
using collector::RecordedBuffer;
using collector::Recording;
using collector::replay;
using collector::ReplayVisitor;
using collector::Snapshot;
using collector::snapshot_from_json;
using common::format_bytes;
using common::kind_name;

namespace {

namespace pr = protocol;
using nlohmann::json;

struct Figures {
  uint64_t peak = 0;
  uint64_t end = 0;
  uint64_t buffers = 0;  // recording: buffers allocated; snapshot: buffers live
};

// (logical device, "DRAM" / "op ttnn::matmul") -> figures.
using RowKey = std::pair<uint32_t, std::string>;
struct Profile {
  std::string source;  // "recording" or "status snapshot"
  std::map<RowKey, Figures> rows;
};

bool is_kind_row(const RowKey& k) { return !k.second.starts_with("op "); }

Profile recording_profile(const std::string& path) {
  std::string error;
  auto r = read_recording(path, &error);
  if (!r) throw CliError(error);
  std::map<uint64_t, uint32_t> logical;  // chip -> logical id
  for (const auto& [key, slot] : r->devices) logical.emplace(slot.chip_id, key.second);
  struct Fold : ReplayVisitor {
    const Recording& rec;
    std::map<uint64_t, uint32_t>& logical;
    Profile p;
    Fold(const Recording& r2, std::map<uint64_t, uint32_t>& l) : rec(r2), logical(l) {}
    Figures& row(uint64_t chip, const std::string& what) { return p.rows[{logical[chip], what}]; }
    void begin(const RecordedBuffer& b, uint64_t) override {
      const uint64_t chip = rec.chip_id(b.process, b.device);
      ++row(chip, std::string(kind_name(b.record.kind))).buffers;
      if (b.record.kind == uint8_t(Kind::Cb)) return;  // CB sets overlap: not split by op
      Figures& f = row(chip, op_of(b));
      ++f.buffers;
      f.end += b.reserved;
      f.peak = std::max(f.peak, f.end);
    }
    void end(const RecordedBuffer& b, uint64_t) override {
      if (b.record.kind == uint8_t(Kind::Cb)) return;
      Figures& f = row(rec.chip_id(b.process, b.device), op_of(b));
      f.end -= std::min(f.end, b.reserved);
    }
    void usage(uint64_t, uint64_t chip, uint32_t kind, uint64_t bytes) override {
      Figures& f = row(chip, std::string(kind_name(kind)));
      f.end = bytes;
      f.peak = std::max(f.peak, bytes);
    }
    std::string op_of(const RecordedBuffer& b) const {
      const std::string& tag = rec.strings[b.record.tag];
      return "op " + (tag.empty() ? std::string("(no op)") : tag);
    }
  } fold(*r, logical);
  replay(*r, fold);
  fold.p.source = "recording";
  return fold.p;
}

Profile snapshot_profile(const std::string& path, const std::string& text) {
  Snapshot s;
  try {
    s = snapshot_from_json(json::parse(text), nullptr, nullptr);
  } catch (const json::exception& e) {
    throw CliError(fmt::format("{} is not a `ttmem status --json` snapshot: {}", path,
                               e.what()));
  }
  Profile p;
  p.source = "status snapshot";
  for (const DeviceView& d : s.devices) {
    const uint32_t device = d.logical_ids.empty() ? 0 : d.logical_ids[0];
    for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
      const KindUsage& u = d.kinds[k];
      if (u.peak == 0 && u.reserved == 0 && u.count == 0) continue;
      p.rows[RowKey{device, std::string(kind_name(k))}] = {u.peak, u.reserved, u.count};
    }
  }
  return p;
}

Profile load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CliError(fmt::format("cannot open {}; give a recording or a status snapshot", path));
  char magic[8] = {};
  in.read(magic, sizeof magic);
  if (in.gcount() == sizeof magic && std::string(magic, 8) == "TTMEMREC") {
    return recording_profile(path);
  }
  in.clear();
  in.seekg(0);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.find_first_not_of(" \t\r\n") == std::string::npos || text[text.find_first_not_of(" \t\r\n")] != '{') {
    throw CliError(fmt::format("{} is neither a ttmem recording nor a `ttmem status --json` "
                               "snapshot", path));
  }
  return snapshot_profile(path, text);
}

double percent(uint64_t a, uint64_t b) {
  if (a == 0) return b == 0 ? 0.0 : INFINITY;
  return (double(b) - double(a)) * 100.0 / double(a);
}

std::string percent_text(double pct) {
  if (std::isinf(pct)) return "new";
  return fmt::format("{:+.1f}%", pct);
}

std::string delta_text(uint64_t a, uint64_t b) {
  return b >= a ? "+" + format_bytes(b - a) : "-" + format_bytes(a - b);
}

struct DiffArgs {
  std::string a, b;
  std::optional<double> fail_over_pct;
  std::optional<uint64_t> fail_over_bytes;
  bool json_out = false;
};

void diff(const DiffArgs& args) {
  const Profile a = load(args.a), b = load(args.b);
  if (a.source != b.source) {
    throw CliError(fmt::format("cannot compare a {} ({}) with a {} ({}): give two recordings or "
                               "two status snapshots",
                               a.source, args.a, b.source, args.b));
  }
  std::map<RowKey, std::pair<Figures, Figures>> rows;
  for (const auto& [k, f] : a.rows) rows[k].first = f;
  for (const auto& [k, f] : b.rows) rows[k].second = f;

  // The gate: a kind's peak or end grew past a limit on some device.
  std::vector<std::string> over;
  for (const auto& [k, ab] : rows) {
    if (!is_kind_row(k)) continue;
    for (const auto& [what, va, vb] : {std::tuple{"peak", ab.first.peak, ab.second.peak},
                                       std::tuple{"end", ab.first.end, ab.second.end}}) {
      if (vb <= va) continue;
      const double pct = percent(va, vb);
      const bool by_pct = args.fail_over_pct && pct > *args.fail_over_pct;
      const bool by_bytes = args.fail_over_bytes && vb - va > *args.fail_over_bytes;
      if (by_pct || by_bytes) {
        over.push_back(fmt::format("device {} {} {} grew {} ({})", k.first, k.second, what,
                                   delta_text(va, vb), percent_text(pct)));
      }
    }
  }

  if (args.json_out) {
    json out = json::array();
    for (const auto& [k, ab] : rows) {
      auto side = [](const Figures& f) {
        return json{{"peak_bytes", f.peak}, {"end_bytes", f.end}, {"buffers", f.buffers}};
      };
      auto pct = [](uint64_t x, uint64_t y) {
        const double p = percent(x, y);
        return std::isinf(p) ? json(nullptr) : json(p);
      };
      json row = {{"device", k.first},
                  {"a", side(ab.first)},
                  {"b", side(ab.second)},
                  {"delta", {{"peak_bytes", int64_t(ab.second.peak) - int64_t(ab.first.peak)},
                             {"end_bytes", int64_t(ab.second.end) - int64_t(ab.first.end)},
                             {"buffers", int64_t(ab.second.buffers) - int64_t(ab.first.buffers)}}},
                  {"percent", {{"peak", pct(ab.first.peak, ab.second.peak)},
                               {"end", pct(ab.first.end, ab.second.end)}}}};
      if (is_kind_row(k)) {
        row["kind"] = k.second;
      } else {
        row["op"] = k.second.substr(3);
      }
      out.push_back(row);
    }
    std::printf("%s\n", json{{"a", args.a}, {"b", args.b}, {"source", a.source}, {"rows", out},
                             {"over_limit", over}}
                            .dump(1)
                            .c_str());
  } else {
    Table t({"DEV", "KIND / OP", "PEAK A", "PEAK B", "Δ PEAK", "%", "END A", "END B", "Δ END",
             "BUFS A", "BUFS B"},
            {true, false, true, true, true, true, true, true, true, true, true});
    for (const auto& [k, ab] : rows) {
      const Figures& fa = ab.first;
      const Figures& fb = ab.second;
      t.add({std::to_string(k.first), k.second, format_bytes(fa.peak), format_bytes(fb.peak),
             delta_text(fa.peak, fb.peak), percent_text(percent(fa.peak, fb.peak)),
             format_bytes(fa.end), format_bytes(fb.end), delta_text(fa.end, fb.end),
             std::to_string(fa.buffers), std::to_string(fb.buffers)});
    }
    t.print();
  }
  if (!over.empty()) {
    throw CliError(fmt::format("memory grew past the limit: {}{}", over.front(),
                               over.size() > 1 ? fmt::format(" (and {} more)", over.size() - 1)
                                               : std::string()));
  }
}

}  // namespace

void add_diff_command(CLI::App& app, GlobalOptions&) {
  auto* cmd = app.add_subcommand(
      "diff", "Compare two recordings or two `status --json` snapshots (a CI memory gate)");
  auto a = std::make_shared<DiffArgs>();
  cmd->add_option("A", a->a, "Baseline: a recording or a status --json snapshot")->required();
  cmd->add_option("B", a->b, "Compared run, of the same sort as A")->required();
  cmd->add_option("--fail-over", a->fail_over_pct,
                  "Exit 1 when a device's kind peaks or ends more than PCT % above A")
      ->check(number_up_to(1e9));
  cmd->add_option("--fail-over-bytes", a->fail_over_bytes,
                  "Exit 1 when a device's kind peaks or ends more than N bytes above A")
      ->check(number_up_to(1.8e19));
  cmd->add_flag("--json", a->json_out, "Rows as JSON");
  cmd->callback([a] { diff(*a); });
}

}  // namespace ttmem::cli
