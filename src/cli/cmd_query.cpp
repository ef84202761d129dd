// ttmem query: chosen fields, one row per device and kind, as CSV for scripts, like
// nvidia-smi's --query-gpu: `ttmem query --fields device,kind,used,capacity --format csv -l 1`.
#include <CLI/CLI.hpp>

#include <signal.h>
#include <unistd.h>

#include <functional>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "common/kinds.h"

namespace ttmem::cli {

using collector::DeviceView;
using collector::KindUsage;
using collector::Snapshot;
using common::arch_name;
using common::kind_name;

namespace {

struct Row {
  const DeviceView& d;
  uint32_t kind;
  const KindUsage& k;
  uint64_t taken_realtime_ns;
};

// A field: its name, its unit (shown unless nounits), and how a row gives its value.
struct Field {
  const char* name;
  const char* unit;  // "" for none
  const char* help;
  std::function<std::string(const Row&)> value;
};

std::string number(uint64_t v) { return std::to_string(v); }

const std::vector<Field>& fields() {
  static const std::vector<Field> all = {
      {"timestamp", "", "when the state was read (UTC, ISO 8601)",
       [](const Row& r) {
         time_t s = time_t(r.taken_realtime_ns / 1'000'000'000);
         tm t{};
         gmtime_r(&s, &t);
         return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.tm_year + 1900,
                            t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec);
       }},
      {"device", "", "logical device id",
       [](const Row& r) { return number(r.d.logical_ids.empty() ? 0 : r.d.logical_ids[0]); }},
      {"chip", "", "chip id", [](const Row& r) { return fmt::format("{:#x}", r.d.chip_id); }},
      {"arch", "", "architecture", [](const Row& r) { return std::string(arch_name(r.d.arch)); }},
      {"kind", "", "memory kind", [](const Row& r) { return std::string(kind_name(r.kind)); }},
      {"used", "B", "reserved bytes (CB: the L1 covered)",
       [](const Row& r) { return number(r.k.reserved); }},
      {"requested", "B", "bytes the buffers hold", [](const Row& r) { return number(r.k.requested); }},
      {"capacity", "B", "bytes over all banks", [](const Row& r) { return number(r.k.capacity); }},
      {"utilization", "%", "used / capacity",
       [](const Row& r) {
         return r.k.capacity == 0 ? std::string("0.0")
                                  : fmt::format("{:.1f}", 100.0 * double(r.k.reserved) /
                                                              double(r.k.capacity));
       }},
      {"peak", "B", "highest used seen", [](const Row& r) { return number(r.k.peak); }},
      {"largest_free", "B", "largest free block per bank",
       [](const Row& r) { return number(r.k.largest_free_block); }},
      {"free_per_bank", "B", "free bytes per bank",
       [](const Row& r) { return number(r.k.free_per_bank); }},
      {"fragmentation", "", "1 - largest free block / free per bank",
       [](const Row& r) { return fmt::format("{:.3f}", r.k.fragmentation); }},
      {"buffers", "", "live buffers", [](const Row& r) { return number(r.k.count); }},
      {"allocs", "", "allocations ever", [](const Row& r) { return number(r.k.total_allocs); }},
      {"frees", "", "frees ever", [](const Row& r) { return number(r.k.total_frees); }},
      {"clash_margin", "B", "lowest L1 buffer - CB region end (device-wide)",
       [](const Row& r) { return std::to_string(r.d.clash_margin); }},
  };
  return all;
}

std::string valid_fields() {
  std::string names;
  for (const Field& f : fields()) names += (names.empty() ? "" : ",") + std::string(f.name);
  return names;
}

std::vector<const Field*> parse_fields(const std::string& list) {
  std::vector<const Field*> out;
  size_t at = 0;
  while (at <= list.size()) {
    size_t comma = list.find(',', at);
    std::string name = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    const Field* f = nullptr;
    for (const Field& c : fields()) {
      if (name == c.name) f = &c;
    }
    if (f == nullptr) {
      throw CliError(fmt::format("unknown field \"{}\"; valid fields: {}", name, valid_fields()), 2);
    }
    out.push_back(f);
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

struct Format {
  bool header = true;
  bool units = true;
};

Format parse_format(const std::string& text) {
  Format f;
  size_t at = 0;
  bool csv = false;
  while (at <= text.size()) {
    size_t comma = text.find(',', at);
    std::string word = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    if (word == "csv") {
      csv = true;
    } else if (word == "noheader") {
      f.header = false;
    } else if (word == "nounits") {
      f.units = false;
    } else {
      throw CliError(fmt::format("unknown format \"{}\"; use csv, optionally with ,noheader and "
                                 ",nounits", word), 2);
    }
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  if (!csv) throw CliError("--format must start with csv (csv[,noheader][,nounits])", 2);
  return f;
}

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct QueryArgs {
  std::string fields = "device,chip,kind,used,requested,capacity,peak,largest_free,buffers";
  std::string format = "csv";
  double loop_s = 0;
  std::string kind;
};

void print_rows(const Snapshot& s, const std::vector<const Field*>& chosen, const Format& f,
                std::optional<uint32_t> only_kind) {
  for (const DeviceView& d : s.devices) {
    for (uint32_t k = 0; k < protocol::kNumKinds; ++k) {
      if (only_kind && k != *only_kind) continue;
      const KindUsage& u = d.kinds[k];
      if (!only_kind && u.capacity == 0 && u.reserved == 0 && u.count == 0) continue;
      Row row{d, k, u, s.taken_realtime_ns};
      std::string line;
      for (size_t i = 0; i < chosen.size(); ++i) {
        std::string v = chosen[i]->value(row);
        if (f.units && *chosen[i]->unit) v += std::string(" ") + chosen[i]->unit;
        line += (i ? ", " : "") + v;
      }
      std::printf("%s\n", line.c_str());
    }
  }
  std::fflush(stdout);
}

void query(const GlobalOptions& global, const QueryArgs& a) {
  const auto chosen = parse_fields(a.fields);
  const Format f = parse_format(a.format);
  std::optional<uint32_t> only_kind;
  if (!a.kind.empty()) only_kind = resolve_kind(a.kind);
  // The first snapshot before the header: a directory that cannot be read prints nothing else.
  Snapshot first = take_snapshot(global, false, false);
  if (f.header) {
    std::string line;
    for (size_t i = 0; i < chosen.size(); ++i) {
      line += (i ? ", " : "") + std::string(chosen[i]->name);
      if (f.units && *chosen[i]->unit) line += fmt::format(" [{}]", chosen[i]->unit);
    }
    std::printf("%s\n", line.c_str());
  }
  print_rows(first, chosen, f, only_kind);
  if (a.loop_s == 0) return;
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  while (!g_stop) {
    for (double slept = 0; slept < a.loop_s && !g_stop; slept += 0.05) ::usleep(50'000);
    if (!g_stop) print_rows(take_snapshot(global, false, false), chosen, f, only_kind);
  }
}

}  // namespace

void add_query_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("query", "Chosen fields per device and kind, as CSV (-l loops)");
  auto a = std::make_shared<QueryArgs>();
  cmd->add_option("--fields,--query", a->fields, "Comma-separated fields: " + valid_fields())
      ->capture_default_str();
  cmd->add_option("--format", a->format, "csv, optionally ,noheader and ,nounits")
      ->capture_default_str();
  cmd->add_option("-l,--loop", a->loop_s, "Print the rows again every SECONDS until Ctrl-C")
      ->check(number_up_to(86400));
  cmd->add_option("--kind", a->kind, "Only this kind (DRAM, L1, ...; rows even when unused)");
  cmd->callback([&global, a] { query(global, *a); });
}

}  // namespace ttmem::cli
