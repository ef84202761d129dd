#include "collector/tt_metal_counters.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "collector/query.h"
#include "common/clock.h"
#include "common/kinds.h"
#include "common/proc.h"
#include "protocol/tt_metal_shm.h"

namespace ttmem::collector {

using common::kind_name;
using common::Liveness;
using common::process_liveness;
using common::process_start_time;
using common::process_uid;
using common::realtime_ns;
using common::realtime_to_boot_ticks;

namespace shm = protocol::tt_metal_shm;

namespace {

// No chip has a pebibyte: a counter above this is garbage, not memory.
constexpr uint64_t kMaxPlausibleBytes = uint64_t{1} << 50;
// Linux's PID_MAX_LIMIT: no pid is larger.
constexpr int32_t kMaxPid = 1 << 22;

// Counters in tt-metal's order, as ttmem's kinds.
std::array<uint64_t, kNumKinds> as_kinds(const uint64_t (&allocated)[shm::kCounterKinds]) {
  std::array<uint64_t, kNumKinds> out{};
  for (size_t i = 0; i < shm::kCounterKinds; ++i) out[size_t(shm::kCounterKind[i])] = allocated[i];
  return out;
}

bool plausible(const std::array<uint64_t, kNumKinds>& bytes) {
  return std::all_of(bytes.begin(), bytes.end(),
                     [](uint64_t b) { return b <= kMaxPlausibleBytes; });
}

bool all_zero(const std::array<uint64_t, kNumKinds>& bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](uint64_t b) { return b == 0; });
}

// The name up to its first NUL, printable ASCII only: it comes from another process.
std::string printable_name(const char (&raw)[64]) {
  std::string out;
  for (char c : raw) {
    if (c == '\0') break;
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

// Kinds (by name) where `parts` add up to more than `total`.
std::string exceeded_kinds(const std::array<uint64_t, kNumKinds>& parts,
                           const std::array<uint64_t, kNumKinds>& total) {
  std::string kinds;
  for (uint32_t k = 0; k < kNumKinds; ++k) {
    if (parts[k] > total[k]) {
      kinds +=
          fmt::format("{}{} {} > {}", kinds.empty() ? "" : ", ", kind_name(k), parts[k], total[k]);
    }
  }
  return kinds;
}

std::string wrong_size(uint64_t size) {
  return fmt::format(
      "size {} bytes, not the {} of a DeviceMemoryRegion (being created, "
      "truncated, or not tt-metal's)",
      size, shm::kFileSize);
}

void add_to(std::array<uint64_t, kNumKinds>& sum, const std::array<uint64_t, kNumKinds>& bytes) {
  for (uint32_t k = 0; k < kNumKinds; ++k) sum[k] += bytes[k];
}

}  // namespace

std::string default_tt_metal_shm_dir() {
  const char* env = std::getenv("TTMEM_TT_METAL_SHM_DIR");
  return env != nullptr && env[0] != '\0' ? env : "/dev/shm";
}

std::optional<TtMetalRegion> parse_tt_metal_region(std::span<const std::byte> bytes,
                                                   uint64_t chip_id_from_name, std::string* error) {
  if (bytes.size() != shm::kFileSize) {
    *error = wrong_size(bytes.size());
    return std::nullopt;
  }
  // A private, aligned copy: the caller's bytes may sit at any address.
  auto raw = std::make_unique<shm::DeviceMemoryRegion>();
  std::memcpy(raw.get(), bytes.data(), sizeof *raw);
  const shm::DeviceMemoryRegion& r = *raw;
  if (r.version < shm::kMinVersion || r.version > shm::kMaxVersion) {
    *error = fmt::format("unknown version {}; ttmem reads versions {} to {}", r.version,
                         shm::kMinVersion, shm::kMaxVersion);
    return std::nullopt;
  }
  if (r.version >= 4 && r.init_state != shm::kInitReady) {
    *error = fmt::format(
        "not initialised (init_state {:#x}): being created, or its creator died "
        "first",
        r.init_state);
    return std::nullopt;
  }
  if (r.asic_id != chip_id_from_name) {
    *error =
        fmt::format("header names chip {}, the file name chip {}", r.asic_id, chip_id_from_name);
    return std::nullopt;
  }
  TtMetalRegion out;
  out.chip_id = r.asic_id;
  TtMetalChipCounters& file = out.file;
  file.version = r.version;
  file.creator_logical_id = r.device_id;
  file.board_serial = r.board_serial;
  file.last_update_realtime_ns = r.last_update_timestamp;
  file.totals = as_kinds(r.total_allocated);
  if (!plausible(file.totals)) {
    *error = fmt::format("impossible totals (above {} bytes)", kMaxPlausibleBytes);
    return std::nullopt;
  }

  std::set<uint32_t> chip_ids;
  std::array<uint64_t, kNumKinds> chip_sum{};
  for (size_t i = 0; i < shm::kMaxChips; ++i) {
    const shm::ChipStats& c = r.chip_stats[i];
    const auto chip_bytes = as_kinds(c.allocated);
    if (c.chip_id == shm::kChipUnused) {
      if (!all_zero(chip_bytes))
        out.warnings.push_back(fmt::format("unused chip slot {} holds counters", i));
      continue;
    }
    if (c.is_remote > 1 || !plausible(chip_bytes) || !chip_ids.insert(c.chip_id).second) {
      out.warnings.push_back(fmt::format("chip slot {} skipped: {}", i,
                                         c.is_remote > 1          ? "is_remote is neither 0 nor 1"
                                         : !plausible(chip_bytes) ? "impossible counters"
                                                                  : "chip id repeated"));
      continue;
    }
    if (c.is_remote == 1) file.remote_chips.push_back({c.chip_id, chip_bytes});
    add_to(chip_sum, chip_bytes);
  }

  std::set<pid_t> pids;
  std::array<uint64_t, kNumKinds> process_sum{};
  for (size_t i = 0; i < shm::kMaxProcesses; ++i) {
    const shm::ProcessStats& p = r.processes[i];
    if (p.pid == 0) continue;  // unused slot
    const auto process_bytes = as_kinds(p.allocated);
    const char* why = p.pid < 0 || p.pid > kMaxPid ? "no such pid can exist"
                      : !plausible(process_bytes)  ? "impossible counters"
                      : !pids.insert(p.pid).second ? "pid repeated"
                                                   : nullptr;
    if (why != nullptr) {
      out.warnings.push_back(fmt::format("process slot {} (pid {}) skipped: {}", i, p.pid, why));
      continue;
    }
    out.processes.push_back(
        {p.pid, printable_name(p.process_name), p.last_update_timestamp, process_bytes});
    add_to(process_sum, process_bytes);
  }
  // Each process's and chip's share is part of the totals. The writer updates them one after
  // another, so a moment's difference is possible; a lasting one means the file is not right.
  if (std::string over = exceeded_kinds(chip_sum, file.totals); !over.empty()) {
    out.warnings.push_back("chip counters add up to more than the totals: " + over);
  }
  if (std::string over = exceeded_kinds(process_sum, file.totals); !over.empty()) {
    out.warnings.push_back("process counters add up to more than the totals: " + over);
  }
  return out;
}

namespace {

// Reads the file into `buffer` with one bounded read. Returns "" or why it cannot be used.
std::string read_region_file(int dir_fd, const std::string& name, const std::string& path,
                             std::vector<std::byte>* buffer,
                             const std::function<void(const std::string&)>& before_read) {
  // O_NONBLOCK: a FIFO planted under the name must not block the refresh.
  int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return fmt::format("cannot open: {}", std::strerror(errno));
  struct stat before {};
  std::string error;
  if (::fstat(fd, &before) != 0 || !S_ISREG(before.st_mode)) {
    error = "not a regular file";
  } else if (uint64_t(before.st_size) != shm::kFileSize) {
    error = wrong_size(uint64_t(before.st_size));
  } else {
    if (before_read) before_read(path);
    // One byte more than the region: a file that grew shows as one.
    buffer->resize(shm::kFileSize + 1);
    size_t got = 0;
    while (got < buffer->size()) {
      ssize_t n = ::pread(fd, buffer->data() + got, buffer->size() - got, off_t(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += size_t(n);
    }
    buffer->resize(got);
    struct stat after {};
    if (::fstat(fd, &after) != 0 || after.st_size != before.st_size ||
        got != uint64_t(before.st_size)) {
      error = fmt::format(
          "changed size while being read ({} bytes, then {}); read again at the "
          "next refresh",
          before.st_size, got);
    }
  }
  ::close(fd);
  return error;
}

}  // namespace

TtMetalScan read_tt_metal_counters(const std::string& dir,
                                   const std::function<void(const std::string&)>& before_read) {
  TtMetalScan scan;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return scan;                        // no directory: no tt-metal here
  std::vector<std::pair<uint64_t, std::string>> files;  // (chip id, name)
  size_t ignored = 0;
  while (dirent* e = ::readdir(d)) {
    std::optional<uint64_t> chip = shm::chip_id_from_file_name(e->d_name);
    if (!chip) continue;
    if (files.size() == kMaxTtMetalFiles) {
      ++ignored;
      continue;
    }
    files.emplace_back(*chip, e->d_name);
  }
  std::sort(files.begin(), files.end());
  std::vector<std::byte> buffer;
  for (const auto& [chip, name] : files) {
    const std::string path = dir + "/" + name;
    std::string error = read_region_file(::dirfd(d), name, path, &buffer, before_read);
    std::optional<TtMetalRegion> region;
    if (error.empty()) region = parse_tt_metal_region(buffer, chip, &error);
    if (!region) {
      scan.problems.push_back({path, "tt-metal counters: " + error, "", false});
      continue;
    }
    region->file.path = path;
    if (!region->warnings.empty()) {
      std::string all;
      for (const auto& w : region->warnings) all += (all.empty() ? "" : "; ") + w;
      scan.problems.push_back({path, "tt-metal counters: " + all, "", false});
    }
    scan.regions.push_back(std::move(*region));
  }
  ::closedir(d);
  if (ignored > 0) {
    scan.problems.push_back({dir,
                             fmt::format("tt-metal counters: {} files beyond the first {} "
                                         "were not read",
                                         ignored, kMaxTtMetalFiles),
                             "", false});
  }
  return scan;
}

namespace {

// The start time of the running process that holds each pid asked about: one look at /proc per
// pid and merge, however many chips' files name it.
class RunningProcesses {
 public:
  std::optional<uint64_t> start_of(pid_t pid) {
    auto [it, fresh] = known_.try_emplace(pid);
    if (fresh) {
      it->second = process_start_time(pid);
      if (it->second && process_liveness(pid, *it->second) != Liveness::Alive) it->second.reset();
    }
    return it->second;
  }

 private:
  std::map<pid_t, std::optional<uint64_t>> known_;
};

// The start time of the live process that wrote a slot last updated at `last_update_ns`, or
// nullopt when that process has ended: no process holds the pid, it is a zombie, or the pid now
// belongs to a process that started after the slot's last update (the pid was reused).
std::optional<uint64_t> live_writer_start(RunningProcesses& running, pid_t pid,
                                          uint64_t last_update_ns) {
  const std::optional<uint64_t> start = running.start_of(pid);
  if (!start) return std::nullopt;
  // Two ticks of slack: start times are whole ticks, the slot's time is converted to them.
  // A time in the future (a wrong clock, or garbage) counts as now.
  constexpr uint64_t kSlackTicks = 2;
  const int64_t updated = int64_t(std::min<uint64_t>(last_update_ns, realtime_ns()));
  if (*start > realtime_to_boot_ticks(updated) + kSlackTicks) return std::nullopt;
  return start;
}

}  // namespace

void merge_tt_metal_counters(Snapshot& s, const TtMetalScan& scan) {
  s.problems.insert(s.problems.end(), scan.problems.begin(), scan.problems.end());
  // No tt-metal file: nothing to add, and the snapshot is in order already (sort_snapshot).
  // Collecting every process's chips first cost a Galaxy host's ttmemd 4 % of its CPU.
  if (scan.regions.empty()) return;
  // Chips each ttmem-reported process registered: (pid, start time) -> chip ids.
  std::map<std::pair<pid_t, uint64_t>, std::set<uint64_t>> ttmem_chips;
  for (const ProcessView& p : s.processes) {
    for (const ProcessDeviceTotals& t : p.device_totals)
      ttmem_chips[{p.pid, p.start_time}].insert(t.chip_id);
  }
  // tt-metal processes by pid, over every chip's file.
  std::map<std::pair<pid_t, uint64_t>, ProcessView> shm_processes;  // by pid and start time
  RunningProcesses running;
  for (const TtMetalRegion& region : scan.regions) {
    auto device = std::find_if(s.devices.begin(), s.devices.end(),
                               [&](const DeviceView& d) { return d.chip_id == region.chip_id; });
    if (device == s.devices.end()) {
      DeviceView v;
      v.chip_id = region.chip_id;
      v.detail = kDetailCounters;
      // No logical id: the creator's is its own process's numbering, and lent to the chip it
      // would collide with the logical ids of ttmem's clients (`--device N`, legacy clients).
      s.devices.push_back(std::move(v));
      device = std::prev(s.devices.end());
    }
    TtMetalChipCounters c = region.file;
    for (const TtMetalRegion::Process& slot : region.processes) {
      const std::optional<uint64_t> start =
          live_writer_start(running, slot.pid, slot.last_update_realtime_ns);
      (start ? c.live_processes : c.stale_processes) += 1;
      // Stale slots of a pid are one row (start time 0), apart from a live process holding the
      // pid now: they may be an earlier process's.
      auto [it, fresh] = shm_processes.try_emplace({slot.pid, start.value_or(0)});
      ProcessView& p = it->second;
      if (fresh) {
        p.pid = slot.pid;
        p.source = kSourceTtMetalShm;
        p.command = slot.name;
        p.counted = false;
        p.stale = !start;
        p.start_time = start.value_or(0);
        if (start) p.uid = process_uid(slot.pid).value_or(0);
      }
      p.chips.push_back(region.chip_id);
      add_to(p.reported, slot.bytes);
      if (!start) continue;
      // The same process through ttmem's client on this chip: its detailed figures are in the
      // model already, this slot is shown but not counted again.
      auto seen = ttmem_chips.find({slot.pid, *start});
      if (seen != ttmem_chips.end() && seen->second.count(region.chip_id)) continue;
      p.counted = true;
      add_to(p.reserved, slot.bytes);
      add_to(p.requested, slot.bytes);
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        KindUsage& u = device->kinds[k];
        u.requested += slot.bytes[k];
        u.reserved += slot.bytes[k];
        u.peak = std::max(u.peak, u.reserved);
      }
    }
    c.totals_stale = c.live_processes == 0;
    device->tt_metal = std::move(c);
  }
  for (auto& [key, p] : shm_processes) s.processes.push_back(std::move(p));
  std::sort(s.devices.begin(), s.devices.end(), device_order);
  std::stable_sort(s.processes.begin(), s.processes.end(),
                   [](const ProcessView& a, const ProcessView& b) { return a.pid < b.pid; });
}

}  // namespace ttmem::collector
