#include "cli/top/layout.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <optional>
#include <string_view>

#include "cli/top/collect.h"
#include "collector/collector.h"
#include "common/format.h"
#include "common/kinds.h"

namespace ttmem::top {

using collector::missing_segment_dir_text;
using collector::sort_name;
using common::format_bytes;
using common::format_percent;
using common::kind_name;

namespace {

constexpr size_t kMinWidth = 40;
constexpr int kMinHeight = 8;
constexpr size_t kKindWidth = 9;  // "L1_SMALL "
constexpr size_t kBytesWidth = 11;  // "1023.99 KiB"
// The largest free block, headed "FREE BLK/BANK": free space is per bank (a buffer spreads over
// every bank of its kind), which a DRAM total of 10 GiB free beside 924 MiB would hide.
constexpr size_t kFreeWidth = 13;

// ---------------------------------------------------------------------------------------------
// Text helpers

size_t utf8_prefix_bytes(const std::string& s, size_t columns) {
  size_t cols = 0, i = 0;
  while (i < s.size()) {
    if ((uint8_t(s[i]) & 0xC0) != 0x80) {
      if (cols == columns) break;
      ++cols;
    }
    ++i;
  }
  return i;
}

std::string pct_text(uint64_t part, uint64_t whole) { return format_percent(part, whole); }

std::string bytes_or_dash(uint64_t v, bool known) { return known ? format_bytes(v) : "-"; }

std::string format_age(uint64_t ns) {
  double s = double(ns) / 1e9;
  if (s < 60) return fmt::format("{:.1f}s", s);
  if (s < 3600) return fmt::format("{:.1f}m", s / 60);
  return fmt::format("{:.1f}h", s / 3600);
}

std::string join_ids(const std::vector<uint32_t>& ids) {
  std::string s;
  for (uint32_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s.empty() ? "?" : s;
}

// The command with its program's directory dropped ("/opt/x/model --b 1" -> "model --b 1"), so
// the name shows in a narrow column; stable output keeps the name alone (arguments may hold
// temporary paths).
std::string short_command(const std::string& command, bool stable) {
  size_t space = command.find(' ');
  std::string first = command.substr(0, space);
  size_t slash = first.rfind('/');
  std::string name = slash == std::string::npos ? first : first.substr(slash + 1);
  return stable || space == std::string::npos ? name : name + command.substr(space);
}

std::string pid_text(pid_t pid, bool stable) { return stable ? "*" : std::to_string(pid); }

// ---------------------------------------------------------------------------------------------
// Tables: columns sized to the widest visible cell; the last column takes what is left.

struct Column {
  std::string title;
  bool right = true;
  // When the table is too wide, columns go in this order, highest first; 0 never goes. The last
  // column (a tag or command) is the one people read, so the others give way to it.
  int drop_order = 0;
};
struct Cell {
  std::string text;
  Style style = Style::kNormal;
};
using Row = std::vector<Cell>;

// Appends the column header, then the rows from `first` that fit in `max_rows` lines below it,
// the rows line included (all rows when max_rows is 0). `rows` may hold only a prefix of the
// table (collect sorts no more than the screen can reach); `total` is the table's real length,
// so the "rows a-b of N" line counts every live row, not the prefix. A window that would run past
// the end is moved up so that it stays full: the line is right whatever the scroll position a
// key left behind. Returns what it showed.
TableWindow add_table(Frame& f, const std::vector<Column>& cols, const std::vector<Row>& rows,
                      size_t total, size_t width, size_t first, size_t max_rows) {
  total = std::max(total, rows.size());
  // A window onto part of the rows ends with a line saying which rows it shows.
  const bool windowed = max_rows != 0 && (total > max_rows || first > 0);
  const size_t n =
      max_rows == 0 ? total : (windowed ? std::max<size_t>(max_rows, 2) - 1 : max_rows);
  first = std::min(first, total > n ? total - n : 0);
  const size_t last = std::min(rows.size(), first + n);
  std::vector<size_t> w(cols.size(), 0);
  for (size_t c = 0; c < cols.size(); ++c) w[c] = display_width(cols[c].title);
  for (size_t r = first; r < last; ++r) {
    for (size_t c = 0; c < cols.size() && c < rows[r].size(); ++c) {
      w[c] = std::max(w[c], display_width(rows[r][c].text));
    }
  }
  // Drop columns, in their drop order, while the last one would get less than it wants.
  std::vector<bool> hidden(cols.size(), false);
  auto used_by_others = [&] {
    size_t used = 0;
    for (size_t c = 0; c + 1 < cols.size(); ++c) used += hidden[c] ? 0 : w[c] + 2;
    return used;
  };
  if (!cols.empty()) {
    const size_t wanted_last = std::min<size_t>(w.back(), 24);
    while (used_by_others() + wanted_last > width) {
      size_t victim = cols.size();
      for (size_t c = 0; c + 1 < cols.size(); ++c) {
        if (!hidden[c] && cols[c].drop_order > 0 &&
            (victim == cols.size() || cols[c].drop_order > cols[victim].drop_order)) {
          victim = c;
        }
      }
      if (victim == cols.size()) break;
      hidden[victim] = true;
    }
  }
  const size_t used = used_by_others();
  if (!cols.empty()) w.back() = std::max<size_t>(std::min(w.back(), width - std::min(width, used)), 1);

  Line h;
  for (size_t c = 0; c < cols.size(); ++c) {
    if (hidden[c]) continue;
    h.add(fit(cols[c].title, w[c], cols[c].right) + (c + 1 < cols.size() ? "  " : ""),
          Style::kHeader);
  }
  f.push_back(std::move(h));
  for (size_t r = first; r < last; ++r) {
    Line l;
    for (size_t c = 0; c < cols.size(); ++c) {
      if (hidden[c]) continue;
      const Cell cell = c < rows[r].size() ? rows[r][c] : Cell{};
      bool last_col = c + 1 == cols.size();
      l.add(last_col && !cols[c].right ? fit(cell.text, std::min(w[c], display_width(cell.text)))
                                       : fit(cell.text, w[c], cols[c].right),
            cell.style);
      if (!last_col) l.add("  ");
    }
    f.push_back(std::move(l));
  }
  const size_t shown = last > first ? last - first : 0;
  if (windowed) {
    f.push_back(Line().add(fmt::format("rows {}-{} of {}", shown == 0 ? 0 : first + 1, last, total),
                           Style::kDim));
  }
  // A page is what the window holds, even when fewer rows are left to fill it.
  return {first, windowed ? n : shown, total};
}

// ---------------------------------------------------------------------------------------------
// Devices

// A device that is gone is drawn in its last figures, all greyed.
void grey_if_gone(Line& l, const DeviceRow& d) {
  if (!d.gone) return;
  for (auto& span : l.spans) span.style = Style::kDim;
}

bool kind_shown(const KindRow& k) { return k.capacity != 0 || k.used != 0 || k.count != 0; }

size_t detailed_rows(const ViewModel& vm) {
  size_t n = 1;  // column header
  for (const auto& d : vm.devices) {
    n += 1;
    for (const auto& k : d.kinds) n += kind_shown(k) ? 1 : 0;
  }
  return n;
}

std::string margin_text(int64_t margin) {
  return margin < 0 ? "-" + format_bytes(uint64_t(-margin)) + " CLASH"
                    : format_bytes(uint64_t(margin));
}

Style margin_style(int64_t margin) {
  if (margin < 0) return Style::kCrit;
  if (margin < 64 * 1024) return Style::kWarn;
  return Style::kGood;
}

// Widths of the optional pieces of a detailed kind line at this terminal width.
struct DetailWidths {
  size_t bar = 10;
  bool peak = false;
  bool free = false;
  size_t spark = 0;
};

DetailWidths detail_widths(size_t width) {
  // "  KIND     " + bar + " " + used " /" cap + " " pct  => 2 + 9 + bar + 1 + 22 + 7
  const size_t fixed = 2 + kKindWidth + 1 + 2 * kBytesWidth + 2 + 7;
  DetailWidths w;
  size_t avail = width > fixed ? width - fixed : 0;
  if (avail >= 10 + 1 + kBytesWidth) {
    w.peak = true;
    avail -= 1 + kBytesWidth;
  }
  if (avail >= 10 + 1 + kFreeWidth + 5) {
    w.free = true;
    avail -= 1 + kFreeWidth + 5;
  }
  if (avail >= 10 + 10) {
    w.spark = std::min<size_t>(48, (avail - 10) / 2);
    avail -= w.spark + 2;
  }
  w.bar = std::max<size_t>(avail, 3);
  return w;
}

// The highest used bytes in a history and how many samples ago; nullopt for an empty one.
std::optional<std::pair<uint64_t, size_t>> history_peak(const std::vector<uint64_t>& h) {
  std::optional<std::pair<uint64_t, size_t>> peak;
  for (size_t i = 0; i < h.size(); ++i) {
    if (h[i] == kHistoryRestart) continue;
    if (!peak || h[i] >= peak->first) peak = std::pair(h[i], h.size() - 1 - i);
  }
  return peak;
}

void add_detail_header(Frame& f, const DetailWidths& w, bool peak) {
  Line l;
  l.add(fit("  KIND", 2 + kKindWidth) + fit("USAGE", w.bar) + " " +
            fit("USED", kBytesWidth, true) + " /" + fit("CAPACITY", kBytesWidth, true) + " " +
            fit("USE%", 6, true),
        Style::kHeader);
  if (w.peak) l.add(" " + fit("PEAK", kBytesWidth, true), Style::kHeader);
  if (w.free) {
    l.add(" " + fit("FREE BLK/BANK", kFreeWidth, true) + fit("FRAG", 5, true), Style::kHeader);
  }
  if (w.spark) l.add(peak ? "  HISTORY PEAK (P: back)" : "  HISTORY", Style::kHeader);
  f.push_back(std::move(l));
}

Line device_title(const DeviceRow& d, bool stable) {
  Line l;
  l.add(fmt::format("Device {}", join_ids(d.logical_ids)), Style::kTitle);
  l.add(fmt::format("  chip {:#x}  {} {}x{}{}", d.chip_id, d.arch, d.grid_x, d.grid_y,
                    d.board.empty() ? "" : "  " + d.board),
        Style::kDim);
  if (!d.source_note.empty()) l.add("  [" + d.source_note + "]", Style::kDim);
  l.add(fmt::format("  {} buffers  clash margin ", d.buffers));
  l.add(margin_text(d.clash_margin), margin_style(d.clash_margin));
  if (d.dropped_events > 0) {
    l.add(fmt::format("  ! {} events dropped", d.dropped_events), Style::kWarn);
  }
  grey_if_gone(l, d);
  if (d.gone) {
    l.add(stable ? "  [gone]" : fmt::format("  [gone {} ago]", format_age(d.gone_for_ns)),
          Style::kWarn);
  }
  return l;
}

// `peak_ms`: with `P`, the sample interval, to say how long ago the history peaked; 0 otherwise.
Line kind_line(const KindRow& k, const DetailWidths& w, bool unicode, int peak_ms) {
  Line l;
  l.add("  " + fit(std::string(kind_name(k.kind)), kKindWidth), Style::kBold);
  for (auto& s : bar(k.used, k.peak, k.capacity, w.bar, unicode).spans) l.spans.push_back(s);
  l.add(" " + fit(format_bytes(k.used), kBytesWidth, true) + " /" +
        fit(bytes_or_dash(k.capacity, k.capacity != 0), kBytesWidth, true) + " ");
  l.add(fit(pct_text(k.used, k.capacity), 6, true), usage_style(k.used, k.capacity));
  if (w.peak) l.add(" " + fit(format_bytes(k.peak), kBytesWidth, true), Style::kPeak);
  if (w.free) {
    // CB's free block is the clash margin; fragmentation is a banked-allocator notion.
    bool banked = k.kind != uint32_t(Kind::Cb) && k.capacity != 0;
    l.add(" " + fit(bytes_or_dash(k.largest_free_block, k.capacity != 0), kFreeWidth, true) +
          fit(banked ? fmt::format("{:.0f}%", k.fragmentation * 100) : "-", 5, true));
  }
  auto peak = peak_ms > 0 ? history_peak(k.history) : std::nullopt;
  if (w.spark && peak) {
    // The history's peak in place of its sparkline: what it was and when.
    const double ago_s = double(peak->second) * peak_ms / 1000.0;
    const char* mark = unicode ? "▲" : "^";
    l.add(fmt::format("  {}{} {:.1f}s ago", mark, format_bytes(peak->first), ago_s), Style::kPeak);
  } else if (w.spark) {
    // Without a capacity the sparkline is scaled to its own maximum: the label gives the range.
    std::string range =
        k.capacity == 0 ? " max " + format_bytes(history_max(k.history)) : std::string();
    if (display_width(range) * 2 > w.spark) range.clear();
    l.add("  " + sparkline(k.history, k.capacity, w.spark - display_width(range), unicode),
          Style::kTitle);
    if (!range.empty()) l.add(range, Style::kDim);
  }
  return l;
}

size_t device_lines(const DeviceRow& d) {
  size_t n = 1;
  for (const auto& k : d.kinds) n += kind_shown(k) ? 1 : 0;
  return n;
}

// Whole devices while they fit in `max_lines`; the rest are counted on one line that names the
// key for the compact layout, so no device disappears without a word.
void add_devices_detailed(Frame& f, const ViewModel& vm, size_t width, bool unicode, bool stable,
                          size_t max_lines, int peak_ms) {
  DetailWidths w = detail_widths(width);
  add_detail_header(f, w, peak_ms > 0);
  size_t used = 1;
  for (size_t i = 0; i < vm.devices.size(); ++i) {
    const DeviceRow& d = vm.devices[i];
    const bool last = i + 1 == vm.devices.size();
    if (used + device_lines(d) + (last ? 0 : 1) > max_lines) {
      size_t more = vm.devices.size() - i;
      f.push_back(Line().add(fmt::format("+{} more device{} (c: compact)", more,
                                         more == 1 ? "" : "s"),
                             Style::kWarn));
      return;
    }
    used += device_lines(d);
    f.push_back(device_title(d, stable));
    for (const auto& k : d.kinds) {
      if (!kind_shown(k)) continue;
      f.push_back(kind_line(k, w, unicode, peak_ms));
      grey_if_gone(f.back(), d);
    }
  }
}

void add_devices_compact(Frame& f, const ViewModel& vm, size_t width, bool unicode) {
  // The margin and buffer columns are as wide as their widest value (plus a gap); the bars get
  // everything else.
  constexpr size_t kDevWidth = 5;
  constexpr size_t kPctWidth = 6;  // "100.0%"
  size_t margin_w = 6, bufs_w = 4;  // "MARGIN", "BUFS"
  for (const auto& d : vm.devices) {
    margin_w = std::max(margin_w, display_width(margin_text(d.clash_margin)));
    bufs_w = std::max(bufs_w, std::to_string(d.buffers).size());
  }
  // Too narrow for a "100.0%" in every kind beside MARGIN and BUFS (45 columns): whole percents
  // ("100%"), a narrower DEV and one-column gaps, so the margin and buffer count keep their room.
  size_t dev_w = kDevWidth, pct_w = kPctWidth;
  if (width < dev_w + margin_w + bufs_w + 4 + kBarKinds.size() * (pct_w + 1)) {
    dev_w = 4;
    pct_w = 4;
    margin_w += 1;
    bufs_w += 1;
  } else {
    margin_w += 2;
    bufs_w += 2;
  }
  const size_t fixed = dev_w + margin_w + bufs_w;
  // A cell is [bar " "] pct and a one-column gap; without room for a bar, the pct alone.
  const size_t cell = std::max((width > fixed ? width - fixed : 0) / kBarKinds.size(), pct_w + 1);
  const size_t bar_w = cell >= pct_w + 2 + 3 ? cell - pct_w - 2 : 0;
  auto pct = [&](uint64_t used, uint64_t capacity) {
    if (pct_w == kPctWidth || capacity == 0) return pct_text(used, capacity);
    return fmt::format("{:.0f}%", 100.0 * double(used) / double(capacity));
  };
  Line h;
  h.add(fit("DEV", dev_w), Style::kHeader);
  for (uint32_t k : kBarKinds) {
    h.add(fit(std::string(kind_name(k)), cell - 1) + " ", Style::kHeader);
  }
  h.add(fit("MARGIN", margin_w, true) + fit("BUFS", bufs_w, true), Style::kHeader);
  f.push_back(std::move(h));
  for (const auto& d : vm.devices) {
    Line l;
    l.add(fit(join_ids(d.logical_ids), dev_w), Style::kTitle);
    for (const auto& k : d.kinds) {
      size_t taken = pct_w;
      if (bar_w > 0) {
        for (auto& s : bar(k.used, k.peak, k.capacity, bar_w, unicode).spans) l.spans.push_back(s);
        l.add(" ");
        taken += bar_w + 1;
      }
      l.add(fit(pct(k.used, k.capacity), pct_w, true), usage_style(k.used, k.capacity));
      l.add(std::string(cell - taken, ' '));
    }
    l.add(fit(margin_text(d.clash_margin), margin_w, true), margin_style(d.clash_margin));
    l.add(fit(std::to_string(d.buffers), bufs_w, true));
    if (d.dropped_events > 0) l.add(" !drop", Style::kWarn);
    grey_if_gone(l, d);
    if (d.gone) l.add(" gone", Style::kWarn);
    f.push_back(std::move(l));
  }
}

// ---------------------------------------------------------------------------------------------
// Tables of the overview and the buffers view

constexpr std::array<uint32_t, 5> kTableKinds = kBarKinds;

std::vector<Column> kind_columns(std::vector<Column> head) {
  for (uint32_t k : kTableKinds) head.push_back({std::string(kind_name(k)), true});
  return head;
}

std::vector<Row> process_rows(const ViewModel& vm, bool stable) {
  std::vector<Row> rows;
  for (const auto& p : vm.processes) {
    Style s = p.exited ? Style::kDim : Style::kNormal;
    Row r{{pid_text(p.pid, stable), s}};
    for (uint32_t k : kTableKinds) r.push_back({format_bytes(p.reserved[k]), s});
    r.push_back({std::to_string(p.buffers), s});
    r.push_back({std::to_string(p.cbs), s});
    r.push_back({std::to_string(p.dropped_events), p.dropped_events ? Style::kWarn : s});
    r.push_back({std::to_string(p.problems), p.problems ? Style::kCrit : s});
    r.push_back({(p.exited ? "[exited] " : "") + short_command(p.command, stable), s});
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<Column> process_columns() {
  auto cols = kind_columns({{"PID", true}});
  for (const char* c : {"BUFFERS", "CBS", "DROPPED", "ERRORS"}) cols.push_back({c, true});
  cols.push_back({"COMMAND", false});
  return cols;
}

std::vector<Row> tag_rows(const ViewModel& vm) {
  std::vector<Row> rows;
  for (const auto& t : vm.tags) {
    Row r;
    for (uint32_t k : kTableKinds) r.push_back({format_bytes(t.reserved[k])});
    r.push_back({std::to_string(t.buffers)});
    r.push_back({t.tag, Style::kBold});
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<Column> tag_columns() {
  auto cols = kind_columns({});
  cols.push_back({"BUFFERS", true});
  cols.push_back({"TAG / OP", false});
  return cols;
}

// The column a sort orders by, and whether its natural order is descending.
struct SortColumn {
  const char* title;
  bool descending;
};
SortColumn sort_column(BufferSort s) {
  switch (s) {
    case BufferSort::kReserved: return {"RESERVED", true};
    case BufferSort::kSize: return {"SIZE", true};
    case BufferSort::kAge: return {"AGE", true};
    case BufferSort::kAddress: return {"ADDRESS", false};
    case BufferSort::kDevice: return {"DEV", false};
    case BufferSort::kKind: return {"KIND", false};
    case BufferSort::kPid: return {"PID", false};
    case BufferSort::kTag: return {"TAG", false};
  }
  return {"", false};
}

std::vector<Row> buffer_rows(const std::vector<BufferRow>& buffers, bool stable, bool unicode) {
  std::vector<Row> rows;
  rows.reserve(buffers.size());
  for (const auto& b : buffers) {
    // A mesh buffer's copies: the devices and how many, e.g. "0-7 ×8".
    std::string dev = b.copies > 1
                          ? fmt::format("{} {}{}", b.devices, unicode ? "×" : "x", b.copies)
                          : std::to_string(b.device);
    rows.push_back({{pid_text(b.pid, stable)},
                    {std::move(dev)},
                    {std::string(kind_name(b.kind)), Style::kBold},
                    {std::to_string(b.buffer_id)},
                    {fmt::format("{:#x}", b.address)},
                    {format_bytes(b.size)},
                    {format_bytes(b.reserved)},
                    {std::to_string(b.banks)},
                    {stable ? "-" : format_age(b.age_ns), Style::kDim},
                    {b.tag.empty() ? "-" : b.tag}});
  }
  return rows;
}

std::vector<Column> buffer_columns(const UiState& ui, bool unicode) {
  // On a narrow screen BANKS goes first, then ADDRESS, AGE, ID and SIZE: the tag, the bytes
  // reserved and whose buffer it is are what the view is for.
  std::vector<Column> cols = {{"PID", true},          {"DEV", true},         {"KIND", false},
                              {"ID", true, 2},        {"ADDRESS", true, 4},  {"SIZE", true, 1},
                              {"RESERVED", true},     {"BANKS", true, 5},    {"AGE", true, 3},
                              {"TAG", false}};
  SortColumn sc = sort_column(ui.sort);
  bool down = sc.descending != ui.reverse;
  for (auto& c : cols) {
    if (c.title != sc.title) continue;
    c.title += down ? (unicode ? "▼" : "v") : (unicode ? "▲" : "^");
    c.drop_order = 0;  // the column the rows are sorted by stays
  }
  return cols;
}

// ---------------------------------------------------------------------------------------------
// L1 map

struct RegionLook {
  char glyph;
  Style style;
  const char* name;
};
RegionLook region_look(Region r) {
  switch (r) {
    case Region::kFirmware: return {'F', Style::kFirmware, "firmware"};
    case Region::kCb: return {'C', Style::kCb, "CB region"};
    case Region::kMargin: return {'~', Style::kMargin, "clash margin"};
    case Region::kFree: return {'.', Style::kFree, "free"};
    case Region::kL1Buffer: return {'B', Style::kL1Buffer, "L1 buffer"};
    case Region::kL1SmallFree: return {',', Style::kL1SmallFree, "L1_SMALL free"};
    case Region::kL1SmallBuffer: return {'S', Style::kL1SmallBuffer, "L1_SMALL buffer"};
    case Region::kClash: return {'X', Style::kClash, "CB/L1 clash"};
  }
  return {'?', Style::kNormal, "?"};
}

// The region a cell [a, b) shows: a clash anywhere in it, else what covers most of it.
Region cell_region(const std::vector<RegionSpan>& spans, size_t& cursor, uint64_t a, uint64_t b) {
  std::array<uint64_t, 8> cover{};
  while (cursor < spans.size() && spans[cursor].end <= a) ++cursor;
  for (size_t i = cursor; i < spans.size() && spans[i].begin < b; ++i) {
    uint64_t lo = std::max(a, spans[i].begin), hi = std::min(b, spans[i].end);
    if (hi > lo) cover[size_t(spans[i].region)] += hi - lo;
  }
  if (cover[size_t(Region::kClash)] > 0) return Region::kClash;
  return Region(std::max_element(cover.begin(), cover.end()) - cover.begin());
}

// The CB region per core and whose CB sets make it: every live program keeps its set, the sets
// overlap from the unreserved base, and the region ends at the highest CB end among them.
std::string cb_region_text(const L1Map& m) {
  if (m.cb_programs == 0) return "no program holds CBs";
  return fmt::format("{} per core, the highest CB end of {} program{} CB set{}",
                     format_bytes(m.cb_region_bytes), m.cb_programs, m.cb_programs == 1 ? "'s" : "s'",
                     m.cb_programs == 1 ? "" : "s");
}

size_t add_l1_map(Frame& f, const ViewModel& vm, const UiState& ui,
                  size_t width, size_t grid_rows) {
  const L1Map& m = vm.l1_map;
  if (!m.valid) {
    f.push_back(Line().add(vm.devices.empty() ? "No devices to map."
                                              : "This device reports no L1 geometry.",
                           Style::kDim));
    return 0;
  }
  f.push_back(Line()
                  .add(fmt::format("L1 map of device {}", m.logical_id), Style::kTitle)
                  .add(fmt::format("  chip {:#x}  per core {} ({:#x} bytes), drawn to scale  "
                                   "[{}/{}]",
                                   m.chip_id, format_bytes(m.l1_per_core), m.l1_per_core,
                                   ui.map_device + 1, vm.devices.size()),
                       Style::kDim));
  const size_t label = 2 + fmt::format("{:x}", m.l1_per_core).size() + 1;
  const size_t cols = width > label + 1 ? width - label - 1 : 1;
  const uint64_t cells = uint64_t(cols) * std::max<size_t>(grid_rows, 1);
  // Cells hold a whole number of 64-byte units, so row addresses stay round.
  const uint64_t per_cell = std::max<uint64_t>((m.l1_per_core + cells * 64 - 1) / (cells * 64), 1) * 64;
  // A margin narrower than two cells would vanish under its neighbours: show it anyway.
  const bool tiny_margin = m.clash_margin > 0 && uint64_t(m.clash_margin) < 2 * per_cell;
  size_t cursor = 0;
  for (uint64_t row_start = 0; row_start < m.l1_per_core; row_start += per_cell * cols) {
    Line l;
    l.add(fit(fmt::format("{:#x}", row_start), label - 1, true) + " ", Style::kDim);
    for (size_t c = 0; c < cols; ++c) {
      uint64_t a = row_start + c * per_cell;
      if (a >= m.l1_per_core) break;
      uint64_t b = std::min(a + per_cell, m.l1_per_core);
      Region r = cell_region(m.spans, cursor, a, b);
      if (tiny_margin && r != Region::kClash && a < m.lowest_l1_address && b > m.cb_region_end) {
        r = Region::kMargin;
      }
      RegionLook look = region_look(r);
      if (!l.spans.empty() && l.spans.back().style == look.style) {
        l.spans.back().text += look.glyph;
      } else {
        l.add(std::string(1, look.glyph), look.style);
      }
    }
    f.push_back(std::move(l));
  }
  Line legend;
  legend.add(fmt::format("one cell = {}  ", format_bytes(per_cell)), Style::kDim);
  for (Region r : {Region::kFirmware, Region::kCb, Region::kMargin, Region::kFree,
                   Region::kL1Buffer, Region::kL1SmallFree, Region::kL1SmallBuffer,
                   Region::kClash}) {
    RegionLook look = region_look(r);
    legend.add(std::string(1, look.glyph), look.style).add(std::string(" ") + look.name + "  ");
  }
  f.push_back(std::move(legend));

  f.push_back(Line().add(fmt::format("firmware {:#x}-{:#x}   CB region {:#x}-{:#x}: {}",
                                     uint64_t(0), m.unreserved_base, m.unreserved_base,
                                     m.cb_region_end, cb_region_text(m))));
  f.push_back(Line()
                  .add("clash margin ")
                  .add(margin_text(m.clash_margin), margin_style(m.clash_margin))
                  .add(m.has_l1_buffers
                           ? fmt::format(" (CB end {:#x} .. lowest L1 buffer {:#x})",
                                         m.cb_region_end, m.lowest_l1_address)
                           : fmt::format(" (no L1 buffers; L1 top {:#x})", m.lowest_l1_address)));
  return grid_rows;
}

std::string header_time(uint64_t realtime_ns) {
  std::time_t t = std::time_t(realtime_ns / 1'000'000'000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

void add_header(Frame& f, const ViewModel& vm, const UiState& ui, const LayoutOptions& o) {
  Line l;
  l.add("ttmem top", Style::kTitle);
  static constexpr const char* kViewNames[kNumViews] = {"Overview", "Buffers", "L1 map"};
  for (int v = 0; v < kNumViews; ++v) {
    bool on = int(ui.view) == v;
    l.add(on ? fmt::format("  [{} {}]", v + 1, kViewNames[v])
             : fmt::format("   {} {} ", v + 1, kViewNames[v]),
          on ? Style::kKey : Style::kDim);
  }
  uint64_t processes = vm.processes.size();
  l.add(fmt::format("   {} device{}  {} process{}  {} buffers", vm.devices.size(),
                    vm.devices.size() == 1 ? "" : "s", processes, processes == 1 ? "" : "es",
                    vm.live_buffers));
  if (!o.stable) {
    l.add(fmt::format("  {}  {}{}", header_time(vm.taken_realtime_ns), vm.segment_dir,
                      vm.source_label.empty() ? "" : "  " + vm.source_label),
          Style::kDim);
  }
  if (ui.paused) l.add("  PAUSED", Style::kWarn);
  f.push_back(std::move(l));
  if (ui.editing) {
    f.push_back(
        Line()
            .add("/" + ui.draft + "_", Style::kKey)
            .add("  tag, pid or command; Enter applies, Esc cancels, empty clears", Style::kDim));
  } else if (!vm.filter.empty() || vm.pid) {
    std::string what = vm.pid ? fmt::format("process {}", pid_text(*vm.pid, o.stable)) : "";
    if (!vm.filter.empty()) what += (what.empty() ? "" : ", ") + ("\"" + vm.filter + "\"");
    f.push_back(Line().add(
        fmt::format("Only {}: {} buffers in {} rows{}", what, vm.live_buffers, vm.total_buffers,
                    vm.filter.empty() ? "" : "  (/ changes, empty clears)"),
        Style::kKey));
  }

  // Warnings: each is one line, only when it applies.
  if (vm.dropped_events > 0) {
    f.push_back(Line().add(fmt::format("! {} history events missed by a reader that records "
                                       "them; totals are exact. Record under `ttmem record -- "
                                       "CMD`, or raise TTMEM_RING_EVENTS",
                                       vm.dropped_events),
                           Style::kWarn));
  }
  for (uint32_t id : vm.missing_devices) {
    f.push_back(Line().add(
        fmt::format("! device {} is not registered by any tracked process (yet)", id),
        Style::kWarn));
  }
  if (vm.leaks > 0) {
    f.push_back(Line().add(
        fmt::format("! {} leaked buffers from ended processes: see `ttmem leaks`", vm.leaks),
        Style::kWarn));
  }
  if (!vm.problems.empty()) {
    f.push_back(Line().add(fmt::format("! {} segment files skipped: see `ttmem status`",
                                       vm.problems.size()),
                           Style::kWarn));
  }
  if (vm.devices.empty() && vm.missing_devices.empty()) {
    std::string why =
        o.stable ? "no tracked process has registered a device."
        : vm.segment_dir_missing
            ? missing_segment_dir_text(vm.segment_dir) + "."
            : "no tracked process has registered a device in " + vm.segment_dir +
                  " (same TTMEM_DIR?)";
    f.push_back(Line().add("No devices: " + why, Style::kDim));
  }
}

void add_footer(Frame& f, const UiState& ui, bool unicode) {
  Line l;
  auto key = [&](const char* k, const char* what) {
    l.add(k, Style::kKey).add(std::string(" ") + what + "  ");
  };
  key("q", "quit");
  key("?", "help");  // early: on a narrow screen the rest of the keys are cut
  key("Tab/1-3", "view");
  if (ui.view != View::kL1Map) key("/", "filter");
  if (ui.view == View::kOverview) key("c", "compact/detail");
  if (ui.view == View::kOverview) key("P", "peak");
  if (ui.view != View::kOverview) key(unicode ? "↑↓ PgUp/PgDn" : "Up/Dn PgUp/PgDn", "scroll");
  if (ui.view == View::kBuffers) {
    key("s", "sort");
    key("r", "reverse");
  }
  if (ui.view == View::kL1Map) key(unicode ? "←→" : "Left/Right", "device");
  key("space", ui.paused ? "resume" : "pause");
  f.push_back(std::move(l));
}

// A word that is a number ("1.28", "2410", "0x1f", "-3"): what follows it is its unit.
bool numeric_word(const std::string& w) {
  bool digit = false;
  for (char c : w) {
    if (std::isdigit(uint8_t(c))) {
      digit = true;
    } else if (!std::isxdigit(uint8_t(c)) &&
               std::string_view(".,x+-%").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return digit;
}

// How many columns of `text` to keep when it must end with an ellipsis within `width`: at a
// word boundary near the edge, never between a number and its unit; else a hard cut.
size_t clip_columns(const std::string& text, size_t width) {
  const size_t keep = width > 0 ? width - 1 : 0;
  std::vector<std::string> chars;  // one code point each
  for (size_t i = 0; i < text.size();) {
    size_t n = utf8_prefix_bytes(text.substr(i), 1);
    chars.push_back(text.substr(i, n));
    i += n;
  }
  auto word_before = [&](size_t col) {  // the word ending at column col (exclusive)
    size_t b = col;
    while (b > 0 && chars[b - 1] != " ") --b;
    std::string w;
    for (size_t i = b; i < col; ++i) w += chars[i];
    return std::pair{b, w};
  };
  size_t cut = keep;
  // The first word the cut loses (part or all of it).
  size_t lost = keep;
  while (lost < chars.size() && chars[lost] == " ") ++lost;
  size_t lost_end = lost;
  while (lost_end < chars.size() && chars[lost_end] != " ") ++lost_end;
  const std::string lost_word = word_before(lost_end).second;
  // The cut falls inside a word: drop all of it.
  if (chars[keep] != " ") cut = word_before(keep).first;
  while (cut > 0 && chars[cut - 1] == " ") --cut;
  // The word lost is the unit of the number before it ("2410 buffers", "1.28 MiB"): drop the
  // number too.
  auto [number_start, before] = word_before(cut);
  if (lost < chars.size() && !numeric_word(lost_word) && numeric_word(before)) cut = number_start;
  while (cut > 0 && chars[cut - 1] == " ") --cut;  // no spaces before the ellipsis
  // Too much lost (a long word, a grid row): cut hard at the edge.
  return keep - cut > 16 || cut == 0 ? keep : cut;
}

// The key list, for `?`: every key the live screen takes, with what it does; then the words of
// the columns that say per bank or per core.
void add_help(Frame& f, bool unicode) {
  f.push_back(Line());
  f.push_back(Line().add("Keys", Style::kTitle));
  const std::pair<const char*, const char*> keys[] = {
      {"? F1", "this help (any key closes it)"},
      {"q Esc", "quit"},
      {"Tab Shift-Tab 1-3", "next/previous view, or overview, buffers, L1 map"},
      {"c", "overview: automatic, detailed or compact devices"},
      {unicode ? "↑↓ j k" : "Up Down j k", "scroll a row"},
      {"PgUp PgDn", "scroll a page"},
      {"Home End g G", "first / last rows"},
      {"s S", "buffers: next / previous sort"},
      {"r", "buffers: reverse the sort"},
      {unicode ? "←→ h l [ ]" : "Left Right h l [ ]", "L1 map: previous / next device"},
      {"/", "filter by tag, pid or command (Enter applies, Esc cancels)"},
      {"P", "overview: each kind's history peak, and how long ago, for its sparkline"},
      {"space p", "pause / resume refreshing"},
  };
  for (const auto& [key, what] : keys) {
    f.push_back(Line().add("  " + fit(key, 20), Style::kKey).add(what));
  }
  f.push_back(Line());
  f.push_back(Line().add("Columns", Style::kTitle));
  const std::pair<const char*, const char*> columns[] = {
      {"USED CAPACITY PEAK", "bytes over all banks of the kind (CB: the L1 the CB sets cover)"},
      {"FREE BLK/BANK", "the largest free block in one bank: the most a bank can still take"},
      {"FRAG", "1 - largest free block / free bytes, per bank"},
      {"SIZE", "buffers: the buffer's bytes over its banks; a CB's per core"},
      {"RESERVED", "buffers: what it takes over all banks (CB: per core x cores)"},
  };
  for (const auto& [column, what] : columns) {
    f.push_back(Line().add("  " + fit(column, 20), Style::kHeader).add(what));
  }
}

// Cuts a line to `width` columns, marking the cut with an ellipsis ("~" in ASCII).
void clip(Line& l, size_t width, bool unicode) {
  if (l.width() <= width) return;
  size_t keep = clip_columns(l.text(), width);
  size_t cols = 0;
  for (size_t i = 0; i < l.spans.size(); ++i) {
    size_t w = display_width(l.spans[i].text);
    if (cols + w >= keep) {
      l.spans[i].text.resize(utf8_prefix_bytes(l.spans[i].text, keep - cols));
      l.spans[i].text += unicode ? "…" : "~";
      l.spans.resize(i + 1);
      return;
    }
    cols += w;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Line& Line::add(std::string text, Style style) {
  spans.push_back({std::move(text), style});
  return *this;
}

size_t Line::width() const {
  size_t w = 0;
  for (const auto& s : spans) w += display_width(s.text);
  return w;
}

std::string Line::text() const {
  std::string t;
  for (const auto& s : spans) t += s.text;
  return t;
}

size_t display_width(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (uint8_t(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

std::string fit(const std::string& s, size_t width, bool right_aligned) {
  size_t w = display_width(s);
  if (w > width) return s.substr(0, utf8_prefix_bytes(s, width));
  std::string pad(width - w, ' ');
  return right_aligned ? pad + s : s + pad;
}

Style usage_style(uint64_t used, uint64_t capacity) {
  if (capacity == 0) return used ? Style::kWarn : Style::kDim;
  double f = double(used) / double(capacity);
  return f >= 0.85 ? Style::kCrit : f >= 0.60 ? Style::kWarn : Style::kGood;
}

Line bar(uint64_t used, uint64_t peak, uint64_t capacity, size_t width, bool unicode) {
  Line l;
  if (width == 0) return l;
  if (capacity == 0) {
    l.add(fit(used ? "no capacity" : "-", width), Style::kDim);
    return l;
  }
  static constexpr const char* kEighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  double frac = std::min(1.0, double(used) / double(capacity));
  uint64_t eighths = uint64_t(std::llround(frac * double(width) * 8));
  if (used > 0 && eighths == 0) eighths = 1;  // anything allocated shows
  size_t full = size_t(eighths / 8);
  size_t part = size_t(eighths % 8);
  std::string filled;
  for (size_t i = 0; i < full; ++i) filled += unicode ? "█" : "#";
  if (part > 0) filled += unicode ? kEighths[part] : (part >= 4 ? "#" : ":");
  size_t filled_cols = full + (part > 0 ? 1 : 0);
  l.add(filled, usage_style(used, capacity));

  // The peak marks the highest the kind has been: a tick where it stands beyond the fill.
  size_t peak_col = size_t(std::min(1.0, double(peak) / double(capacity)) * double(width));
  if (peak_col >= width) peak_col = width - 1;
  std::string empty;
  size_t empty_cols = width - filled_cols;
  if (peak > used && peak_col >= filled_cols) {
    size_t before = peak_col - filled_cols;
    for (size_t i = 0; i < before; ++i) empty += unicode ? "░" : ".";
    l.add(empty, Style::kDim);
    l.add(unicode ? "│" : "|", Style::kPeak);
    empty.clear();
    empty_cols = width - peak_col - 1;
  }
  for (size_t i = 0; i < empty_cols; ++i) empty += unicode ? "░" : ".";
  l.add(empty, Style::kDim);
  return l;
}

uint64_t history_max(const std::vector<uint64_t>& values) {
  uint64_t max = 0;
  for (uint64_t v : values) {
    if (v != kHistoryRestart) max = std::max(max, v);
  }
  return max;
}

std::string sparkline(const std::vector<uint64_t>& values, uint64_t capacity, size_t width,
                      bool unicode) {
  static constexpr const char* kLevels[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  static constexpr char kAscii[] = "._-=+*#@";
  const size_t n = std::min(values.size(), width);
  const std::vector<uint64_t> window(values.end() - ptrdiff_t(n), values.end());
  // Scaled to the kind's capacity, as the bar is, so a glyph's height means the same share on
  // every row; only a kind whose capacity is unknown scales to its own maximum (and says so).
  const uint64_t scale = capacity != 0 ? capacity : history_max(window);
  std::string out(width - n, ' ');
  for (uint64_t v : window) {
    if (v == kHistoryRestart) {
      out += unicode ? "┊" : "|";
      continue;
    }
    // Nothing in use is blank; anything in use is at least the lowest glyph.
    if (v == 0 || scale == 0) {
      out += ' ';
      continue;
    }
    double eighths = std::ceil(std::min(1.0, double(v) / double(scale)) * 8.0);
    size_t level = size_t(std::clamp(eighths, 1.0, 8.0)) - 1;
    if (unicode) {
      out += kLevels[level];
    } else {
      out += kAscii[level];
    }
  }
  return out;
}

size_t table_rows(const UiState& ui, const LayoutOptions& o) {
  if (o.height == 0) return 0;
  // An upper bound, never short: every frame has the header line, the table's column header
  // and the footer; the view's other lines only take rows away.
  (void)ui;
  return size_t(std::max(o.height - 3, 1));
}

Frame layout(const ViewModel& vm, const UiState& ui, const LayoutOptions& o,
             TableWindow* window) {
  Frame f;
  TableWindow scrolled;
  const size_t width = size_t(std::max(o.width, 1));
  if (o.height != 0 && (width < kMinWidth || o.height < kMinHeight)) {
    f.push_back(Line().add(fmt::format("terminal too small ({}x{}); need {}x{}", o.width,
                                       o.height, kMinWidth, kMinHeight),
                           Style::kWarn));
    f.push_back(Line().add("q", Style::kKey).add(" quit"));
    for (auto& l : f) clip(l, width, o.unicode);
    return f;
  }
  add_header(f, vm, ui, o);
  // Rows left for the body: everything but the footer in a terminal; unlimited in text.
  auto left = [&]() -> size_t {
    if (o.height == 0) return SIZE_MAX;
    size_t used = f.size() + 1;
    return size_t(o.height) > used ? size_t(o.height) - used : 0;
  };

  if (ui.help) {
    add_help(f, o.unicode);
  } else {
    switch (ui.view) {
      case View::kOverview: {
        if (!vm.devices.empty()) {
          f.push_back(Line());
          bool detailed = ui.density == Density::kDetailed ||
                          (ui.density == Density::kAuto &&
                           (o.height == 0 || detailed_rows(vm) + 8 <= left()));
          if (detailed) {
            add_devices_detailed(f, vm, width, o.unicode, o.stable, left(),
                                 ui.peak ? o.refresh_ms : 0);
          } else {
            add_devices_compact(f, vm, width, o.unicode);
          }
        }
        // Processes get the first half of what is left (at least their rows when they fit),
        // tags the rest.
        auto procs = process_rows(vm, o.stable);
        auto tags = tag_rows(vm);
        size_t room = left();
        if (room >= 3) {
          f.push_back(Line());
          f.push_back(Line().add(fmt::format("Processes ({})", vm.processes.size()), Style::kTitle));
          size_t max = 0;
          if (o.height != 0) {
            max = tags.empty() ? room - 3
                               : std::max<size_t>(1, std::min(procs.size(), (room - 3) / 2));
          }
          if (procs.empty()) {
            f.push_back(Line().add("No tracked processes.", Style::kDim));
          } else {
            add_table(f, process_columns(), procs, procs.size(), width, 0, std::max<size_t>(max, o.height ? 1 : 0));
          }
        }
        room = left();
        if (room >= 4 && !tags.empty()) {
          f.push_back(Line());
          f.push_back(Line().add(fmt::format("Tags and ops ({})", vm.tags.size()), Style::kTitle));
          add_table(f, tag_columns(), tags, tags.size(), width, 0, o.height == 0 ? 0 : room - 3);
        }
        break;
      }
      case View::kBuffers: {
        f.push_back(Line());
        f.push_back(Line()
                        .add(vm.live_buffers == vm.total_buffers
                                 ? fmt::format("Buffers ({} live)", vm.live_buffers)
                                 : fmt::format("Buffers ({} live in {} rows: a mesh buffer's "
                                               "copies are one)",
                                               vm.live_buffers, vm.total_buffers),
                             Style::kTitle)
                        .add(fmt::format("  sorted by {}{}", sort_name(ui.sort),
                                         ui.reverse ? ", reversed" : ""),
                             Style::kDim));
        size_t room = left();
        if (room >= 2) {
          // vm.buffers starts at row 0 of the sorted list; the view shows from ui.scroll.
          scrolled = add_table(f, buffer_columns(ui, o.unicode),
                               buffer_rows(vm.buffers, o.stable, o.unicode), vm.total_buffers,
                               width, ui.scroll, o.height == 0 ? 0 : room - 1);
        }
        break;
      }
      case View::kL1Map: {
        f.push_back(Line());
        size_t room = left();
        size_t grid = o.height == 0 ? 16 : std::clamp<size_t>(room > 10 ? (room - 10) / 2 : 2, 2, 16);
        add_l1_map(f, vm, ui, width, grid);
        room = left();
        if (vm.l1_map.valid && room >= 3) {
          f.push_back(Line());
          f.push_back(Line().add(fmt::format("L1 and L1_SMALL buffers by address ({})",
                                             vm.l1_map.l1_buffers_total),
                                 Style::kTitle));
          // Room less the blank line, the title and the column header: the table fills the screen.
          scrolled =
              add_table(f, buffer_columns(UiState{.sort = BufferSort::kAddress}, o.unicode),
                        buffer_rows(vm.l1_map.l1_buffers, o.stable, o.unicode),
                        vm.l1_map.l1_buffers_total, width, ui.scroll, o.height == 0 ? 0 : room - 3);
        }
        break;
      }
    }
  }

  if (o.height != 0) {
    while (f.size() + 1 < size_t(o.height)) f.push_back(Line());
    if (f.size() >= size_t(o.height)) f.resize(size_t(o.height) - 1);
    add_footer(f, ui, o.unicode);
  }
  for (auto& l : f) clip(l, width, o.unicode);
  if (window != nullptr) *window = scrolled;
  return f;
}

}  // namespace ttmem::top
