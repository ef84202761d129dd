// The collect and layout steps of `ttmem top` on hand-built snapshots: no terminal needed.
#include <gtest/gtest.h>

#include <curses.h>

#include <cstdlib>
#include <cstring>
#include <regex>

#include "cli/top/collect.h"
#include "cli/top/keys.h"
#include "cli/top/layout.h"
#include "cli/top/text_render.h"
#include "golden.h"

#include <fmt/format.h>

namespace ttmem::top {

using collector::BufferView;
using collector::DeviceView;
using collector::ProcessDeviceTotals;
using collector::ProcessView;
using collector::Snapshot;
using test::expect_golden;

namespace {

constexpr uint32_t kL1 = uint32_t(Kind::L1);

DeviceView device(uint32_t id, uint64_t l1_used) {
  DeviceView d;
  d.chip_id = 0x100 + id;
  d.logical_ids = {id};
  d.arch = 2;
  d.grid_x = d.grid_y = 8;
  d.l1_per_core = 1 << 20;
  d.unreserved_base = 64 << 10;
  for (uint32_t k : kBarKinds) {
    d.kinds[k].capacity = 64ull << 20;
    d.kinds[k].bank_size = 1 << 20;
  }
  d.kinds[uint32_t(Kind::L1Small)].bank_size = 0;  // no L1_SMALL region on this device
  d.kinds[kL1].bank_base = 64 << 10;
  d.kinds[kL1].bank_size = (1 << 20) - (64 << 10);
  d.kinds[kL1].reserved = l1_used;
  d.kinds[kL1].peak = l1_used * 2;
  d.cb_region_end = 128 << 10;
  d.lowest_l1_address = 512 << 10;
  d.has_l1_buffers = true;
  d.clash_margin = int64_t(d.lowest_l1_address) - int64_t(d.cb_region_end);
  return d;
}

BufferView buffer(uint32_t dev, uint32_t kind, uint64_t id, uint64_t addr, uint64_t size,
                  uint64_t time_ns) {
  BufferView b;
  b.pid = 42;
  b.chip_id = 0x100 + dev;
  b.device = dev;
  b.kind = kind;
  b.buffer_id = id;
  b.address = addr;
  b.size = size;
  b.size_per_bank = size;
  b.reserved = size * 64;
  b.num_banks = 64;
  b.time_ns = time_ns;
  b.tag = "ttnn::op" + std::to_string(id % 3);
  return b;
}

Snapshot snapshot(uint32_t devices) {
  Snapshot s;
  s.segment_dir = "/tmp/x";
  s.taken_monotonic_ns = 1'000'000'000'000;
  for (uint32_t i = 0; i < devices; ++i) s.devices.push_back(device(i, (i + 1) << 20));
  ProcessView p;
  p.pid = 42;
  p.command = "/opt/bin/model --batch 32";
  p.buffers = 3;
  s.processes.push_back(p);
  s.buffers.push_back(buffer(0, kL1, 1, 512 << 10, 4096, 300));
  s.buffers.push_back(buffer(0, kL1, 2, 600 << 10, 65536, 100));
  s.buffers.push_back(buffer(1, kL1, 3, 700 << 10, 1024, 200));
  s.tags.push_back({"ttnn::op1", {}, 2});
  return s;
}

TEST(TopLayout, FitCountsColumnsNotBytes) {
  EXPECT_EQ(display_width("█▏ab"), 4u);
  EXPECT_EQ(fit("█████", 3), "███");
  EXPECT_EQ(fit("ab", 4, true), "  ab");
  EXPECT_EQ(fit("ab", 4), "ab  ");
}

TEST(TopLayout, BarFillsInProportionAndMarksThePeak) {
  Line half = bar(50, 75, 100, 8, false);
  EXPECT_EQ(half.text(), "####..|.");
  EXPECT_EQ(half.spans[0].style, Style::kGood);
  EXPECT_EQ(bar(90, 90, 100, 10, false).spans[0].style, Style::kCrit);
  EXPECT_EQ(bar(70, 70, 100, 10, false).spans[0].style, Style::kWarn);
  // Anything allocated shows, however small.
  EXPECT_EQ(bar(1, 1, 1ull << 40, 4, true).text(), "▏░░░");
  EXPECT_EQ(bar(100, 100, 100, 4, true).width(), 4u);
  EXPECT_EQ(bar(0, 0, 0, 6, true).text(), "-     ");
}

TEST(TopLayout, SparklineScalesToCapacityAndRightAligns) {
  // Shares of the capacity: 0.7% is the lowest glyph, 28% a third of the way, full is full.
  EXPECT_EQ(sparkline({7, 280, 1000}, 1000, 5, true), "  ▁▃█");
  EXPECT_EQ(sparkline({7, 280, 1000}, 1000, 3, false), ".-@");
  // The same plateau at different shares draws different heights, not all solid.
  EXPECT_NE(sparkline({7, 7, 7}, 1000, 3, true), sparkline({280, 280, 280}, 1000, 3, true));
  // Nothing in use is blank, wherever it stands.
  EXPECT_EQ(sparkline({0, 1000, 0}, 1000, 3, false), " @ ");
  EXPECT_EQ(sparkline({0, 0}, 0, 2, true), "  ");
  EXPECT_EQ(display_width(sparkline(std::vector<uint64_t>(500, 3), 100, 10, true)), 10u);
}

TEST(TopLayout, SparklineWithoutCapacityScalesToItsMaximumAndSaysSo) {
  EXPECT_EQ(sparkline({1, 2, 4, 8}, 0, 6, false), "  ._=@");
  EXPECT_EQ(history_max({3, kHistoryRestart, 9, 4}), 9u);

  Snapshot s = snapshot(1);
  s.devices[0].kinds[uint32_t(Kind::Trace)].capacity = 0;
  s.devices[0].kinds[uint32_t(Kind::Trace)].reserved = 3 << 20;
  History h;
  h.push(s);
  UiState ui;
  std::string text = render_text(layout(collect(s, h, {}), ui, {200, 0, false, true, 500}));
  size_t trace = text.find("  TRACE");
  ASSERT_NE(trace, std::string::npos) << text;
  std::string line = text.substr(trace, text.find('\n', trace) - trace);
  EXPECT_NE(line.find("@ max 3.00 MiB"), std::string::npos) << line;
  // Kinds with a capacity carry no label.
  size_t l1 = text.find("  L1 ");
  EXPECT_EQ(text.substr(l1, text.find('\n', l1) - l1).find(" max "), std::string::npos);
}

TEST(TopLayout, SparklineBreaksWhereANewProcessTookTheChip) {
  EXPECT_EQ(sparkline({1000, kHistoryRestart, 500}, 1000, 3, false), "@|=");
  EXPECT_EQ(sparkline({1000, kHistoryRestart, 500}, 1000, 3, true), "█┊▄");
}

TEST(TopCollect, HistoryMarksARestartWhenOtherProcessesHoldTheChip) {
  Snapshot s = snapshot(1);
  ProcessDeviceTotals on_chip;
  on_chip.chip_id = 0x100;
  s.processes[0].device_totals = {on_chip};
  s.processes[0].start_time = 1;
  History h;
  h.push(s);
  h.push(s);
  EXPECT_EQ(h.series(0x100, 1).size(), 2u);  // the same process: no mark

  s.processes[0].device_totals.clear();  // the process ended: the chip is idle, no mark yet
  h.push(s);
  EXPECT_EQ(h.series(0x100, 1).size(), 3u);

  s.processes[0].pid = 43;  // a new process on the same chip
  s.processes[0].start_time = 2;
  s.processes[0].device_totals = {on_chip};
  h.push(s);
  auto v = h.series(0x100, 1);
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(v[3], kHistoryRestart);
  EXPECT_NE(v[4], kHistoryRestart);
  h.push(s);
  EXPECT_EQ(h.series(0x100, 1).size(), 6u);  // still the new process: one mark only

  // A second process joining the first is the same run: no mark.
  ProcessView joiner = s.processes[0];
  joiner.pid = 44;
  s.processes.push_back(joiner);
  h.push(s);
  EXPECT_EQ(h.series(0x100, 1).size(), 7u);
}

TEST(TopCollect, HistoryKeepsTheNewestSamplesOldestFirst) {
  History h;
  Snapshot s = snapshot(1);
  for (uint64_t i = 1; i <= History::kCapacity + 5; ++i) {
    s.devices[0].kinds[kL1].reserved = i;
    h.push(s);
  }
  auto v = h.series(0x100, 1);  // kBarKinds[1] is L1
  ASSERT_EQ(v.size(), History::kCapacity);
  EXPECT_EQ(v.front(), 6u);
  EXPECT_EQ(v.back(), History::kCapacity + 5);
  EXPECT_TRUE(h.series(0x999, 1).empty());
}

TEST(TopCollect, FiltersDevicesAndSortsBuffers) {
  Snapshot s = snapshot(3);
  History h;
  h.push(s);
  CollectRequest r;
  r.devices = {0, 7};
  ViewModel vm = collect(s, h, r);
  ASSERT_EQ(vm.devices.size(), 1u);
  EXPECT_EQ(vm.missing_devices, std::vector<uint32_t>{7});
  EXPECT_EQ(vm.total_buffers, 2u);  // device 1's buffer is filtered out
  EXPECT_EQ(vm.buffers[0].buffer_id, 2u);  // largest first

  r.devices.clear();
  r.sort = BufferSort::kAge;
  vm = collect(s, h, r);
  ASSERT_EQ(vm.buffers.size(), 3u);
  EXPECT_EQ(vm.buffers[0].buffer_id, 2u);  // oldest first
  EXPECT_EQ(vm.buffers[2].buffer_id, 1u);
  r.reverse = true;
  r.buffer_limit = 1;
  vm = collect(s, h, r);
  ASSERT_EQ(vm.buffers.size(), 1u);
  EXPECT_EQ(vm.buffers[0].buffer_id, 1u);
  EXPECT_EQ(vm.total_buffers, 3u);
}

TEST(TopCollect, L1MapCoversEveryByteAndMarksTheMarginAndClashes) {
  Snapshot s = snapshot(1);
  DeviceView& d = s.devices[0];
  L1Map m = build_l1_map(s, d);
  ASSERT_TRUE(m.valid);
  uint64_t at = 0;
  for (const auto& span : m.spans) {
    EXPECT_EQ(span.begin, at);
    EXPECT_LT(span.begin, span.end);
    at = span.end;
  }
  EXPECT_EQ(at, d.l1_per_core);
  auto region_at = [&](uint64_t a) {
    for (const auto& span : m.spans) {
      if (a >= span.begin && a < span.end) return span.region;
    }
    return Region::kFree;
  };
  EXPECT_EQ(region_at(0), Region::kFirmware);
  EXPECT_EQ(region_at(100 << 10), Region::kCb);
  EXPECT_EQ(region_at(300 << 10), Region::kMargin);
  EXPECT_EQ(region_at(512 << 10), Region::kL1Buffer);
  EXPECT_EQ(region_at((512 << 10) + 8192), Region::kFree);

  // A CB region reaching into an L1 buffer is a clash.
  d.cb_region_end = (512 << 10) + 1024;
  d.clash_margin = -1024;
  m = build_l1_map(s, d);
  bool clash = false;
  for (const auto& span : m.spans) clash |= span.region == Region::kClash;
  EXPECT_TRUE(clash);
}

// Whatever the size, every line fits the width and the frame fits the height.
TEST(TopLayout, EveryViewFitsEverySize) {
  Snapshot s = snapshot(8);
  History h;
  h.push(s);
  for (int v = 0; v < kNumViews; ++v) {
    UiState ui;
    ui.view = View(v);
    CollectRequest r;
    r.map_device = 0;
    ViewModel vm = collect(s, h, r);
    for (int w : {20, 40, 80, 132, 250}) {
      for (int ht : {3, 8, 24, 60}) {
        for (bool unicode : {false, true}) {
          LayoutOptions o{w, ht, unicode, false, 500};
          Frame f = layout(vm, ui, o);
          EXPECT_LE(f.size(), size_t(ht)) << w << "x" << ht << " view " << v;
          for (const auto& l : f) EXPECT_LE(l.width(), size_t(w)) << l.text();
          if (w >= 40 && ht >= 8) {
            EXPECT_NE(f.back().text().find("q quit"), std::string::npos);
          }
        }
      }
    }
  }
}

TEST(TopLayout, StableTextMasksVolatileFields) {
  Snapshot s = snapshot(2);
  History h;
  h.push(s);
  UiState ui;
  LayoutOptions o{100, 0, false, true, 500};
  std::string text = render_text(layout(collect(s, h, {}), ui, o));
  EXPECT_EQ(text.find("/tmp/x"), std::string::npos);
  EXPECT_EQ(text.find(" 42 "), std::string::npos);
  EXPECT_NE(text.find("model"), std::string::npos);
  EXPECT_EQ(text.find("/opt/bin"), std::string::npos);
  EXPECT_NE(text.find("Device 1"), std::string::npos);
  ui.view = View::kBuffers;
  text = render_text(layout(collect(s, h, {}), ui, o));
  EXPECT_NE(text.find("RESERVEDv"), std::string::npos);
  EXPECT_EQ(text.find("0.0s"), std::string::npos);
}

// A screen driven as the live loop drives it (named apart from draw.h's curses Screen): collect
// as many rows as the screen can reach, lay out, then press a key against the window that frame
// showed.
class KeyedScreen {
 public:
  KeyedScreen(Snapshot s, UiState ui, int width, int height, bool unicode = false)
      : s_(std::move(s)), ui_(ui), o_{width, height, unicode, true, 500} {
    h_.push(s_);
    draw();
  }
  bool press(int key) {
    bool go_on = handle_key(key, ui_, vm_, window_);
    draw();
    return go_on;
  }
  const Frame& frame() const { return frame_; }
  const TableWindow& window() const { return window_; }
  // The "rows a-b of n" line, as three numbers; all zero without one.
  std::array<size_t, 3> rows_line() const {
    static const std::regex re(R"(^rows (\d+)-(\d+) of (\d+)$)");
    for (const auto& l : frame_) {
      std::smatch m;
      std::string t = l.text();
      if (std::regex_match(t, m, re)) {
        return {std::stoul(m[1]), std::stoul(m[2]), std::stoul(m[3])};
      }
    }
    return {0, 0, 0};
  }

 private:
  void draw() {
    CollectRequest r;
    r.sort = ui_.sort;
    r.buffer_limit = ui_.scroll + table_rows(ui_, o_);
    r.map_device = ui_.view == View::kL1Map ? ui_.map_device : -1;
    r.filter = ui_.filter;
    vm_ = collect(s_, h_, r);
    frame_ = layout(vm_, ui_, o_, &window_);
  }
  Snapshot s_;
  History h_;
  UiState ui_;
  LayoutOptions o_;
  ViewModel vm_;
  Frame frame_;
  TableWindow window_;
};

Snapshot many_buffers(size_t n) {
  Snapshot s = snapshot(1);
  s.buffers.clear();
  for (size_t i = 0; i < n; ++i) {
    s.buffers.push_back(buffer(0, uint32_t(Kind::Dram), i + 1, 0x1000 * i, 4096 + i, i));
  }
  return s;
}

// The rows line counts every live buffer and names exactly the rows on the screen, after every
// key: End shows the last row, PgUp and Down move by what the screen holds.
TEST(TopKeys, BufferRowsLineCountsEveryLiveBufferAfterEveryKey) {
  for (auto [w, h] : {std::pair{80, 24}, std::pair{100, 30}, std::pair{200, 60}}) {
    SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h));
    KeyedScreen screen(many_buffers(2410), UiState{.view = View::kBuffers}, w, h);
    auto check = [&](const char* after) {
      SCOPED_TRACE(after);
      auto [first, last, total] = screen.rows_line();
      EXPECT_EQ(total, 2410u);
      EXPECT_EQ(first, screen.window().first + 1);
      EXPECT_EQ(last - first + 1, screen.window().shown);
      EXPECT_EQ(screen.frame().size(), size_t(h));
      // The table fills the screen: the line above the footer is the rows line.
      EXPECT_EQ(screen.frame()[size_t(h) - 2].text().rfind("rows ", 0), 0u);
      return std::pair{first, last};
    };
    auto [first, last] = check("start");
    EXPECT_EQ(first, 1u);
    const size_t page = last;
    screen.press(KEY_END);
    std::tie(first, last) = check("End");
    EXPECT_EQ(last, 2410u);
    screen.press(KEY_PPAGE);
    std::tie(first, last) = check("End PgUp");
    EXPECT_EQ(last, 2410u - page);
    screen.press(KEY_DOWN);
    std::tie(first, last) = check("End PgUp Down");
    EXPECT_EQ(last, 2411u - page);
    screen.press(KEY_NPAGE);
    screen.press(KEY_NPAGE);
    std::tie(first, last) = check("PgDn PgDn");
    EXPECT_EQ(last, 2410u);
    screen.press(KEY_UP);
    std::tie(first, last) = check("Up at the end");
    EXPECT_EQ(last, 2409u);
    screen.press(KEY_HOME);
    std::tie(first, last) = check("Home");
    EXPECT_EQ(first, 1u);
  }
}

// At 80x24 the L1 map's buffer table shows every buffer of a short list.
TEST(TopKeys, L1MapTableShowsEveryBufferThatFits) {
  Snapshot s = snapshot(1);
  s.buffers.push_back(buffer(0, kL1, 4, 800 << 10, 2048, 50));
  KeyedScreen screen(s, UiState{.view = View::kL1Map}, 80, 24);
  size_t shown = 0;
  for (const auto& l : screen.frame()) shown += l.text().find("ttnn::op") != std::string::npos;
  EXPECT_EQ(shown, 3u);
  EXPECT_EQ(screen.window().total, 3u);

  // Many buffers: the table fills the screen down to its rows line, which counts them all.
  for (uint64_t i = 0; i < 40; ++i) s.buffers.push_back(buffer(0, kL1, 10 + i, 900 << 10, 64, i));
  KeyedScreen full(s, UiState{.view = View::kL1Map}, 80, 24);
  EXPECT_EQ(full.rows_line()[2], 43u);
  EXPECT_EQ(full.frame()[22].text().rfind("rows ", 0), 0u) << render_text(full.frame());
  full.press(KEY_END);
  EXPECT_EQ(full.rows_line()[1], 43u);
}

// The screens of a busy 8-chip machine at the terminal sizes people use, against golden files
// (regenerate after an intended change: TTMEM_UPDATE_GOLDEN=1 ctest --test-dir build -R TopSizes).
Snapshot busy_machine() {
  Snapshot s = snapshot(8);
  for (auto& d : s.devices) {
    d.board = "t3k";
    d.kinds[uint32_t(Kind::Dram)].reserved = 1181116006;
    d.kinds[uint32_t(Kind::Dram)].capacity = 12830000000;
    d.kinds[uint32_t(Kind::Dram)].peak = 1224065679;
    d.kinds[uint32_t(Kind::Trace)].reserved = 14040000;
    d.kinds[uint32_t(Kind::Trace)].capacity = 50040000;
    d.kinds[uint32_t(Kind::Cb)].reserved = 15330000;
    d.kinds[uint32_t(Kind::Cb)].capacity = 89390000;
    d.kinds[uint32_t(Kind::Cb)].count = 28;
    d.kinds[uint32_t(Kind::Dram)].count = 300;
  }
  const char* tags[] = {"ttnn::operations::matmul::Matmul", "kv_cache", "ttnn::embedding",
                        "ttnn::operations::data_movement::concat"};
  for (uint64_t i = 0; i < 60; ++i) {
    BufferView b = buffer(uint32_t(i % 8), uint32_t(Kind::Dram), 100 + i, 0x40000000 + i * 0x100000,
                          (i + 1) * 81920, i);
    b.tag = tags[i % 4];
    s.buffers.push_back(b);
  }
  s.processes[0].buffers = s.buffers.size();
  return s;
}

// A cut line ends with an ellipsis and never in the middle of a number or between a number and
// its unit ("2410 bu", "clash margin 1.28").
TEST(TopSizes, CutTextEndsWithAnEllipsisAndKeepsNumbersWithTheirUnits) {
  Snapshot s = busy_machine();
  // A number cut off at the edge, or followed by the start of its unit.
  const std::regex split(
      R"((^|\s)-?[0-9][0-9.,]* (b|bu|buf|buff|buffe|K|Ki|M|Mi|G|Gi|T|Ti)[~…]$)");
  const std::regex bare_number(R"((^|\s)[0-9][0-9.,]*[~…]$)");
  size_t cut_lines = 0;
  for (int v = 0; v < kNumViews; ++v) {
    for (int w = 40; w <= 140; w += 3) {
      for (Density d : {Density::kDetailed, Density::kCompact}) {
        for (bool unicode : {false, true}) {
          KeyedScreen screen(s, UiState{.view = View(v), .density = d}, w, 30, unicode);
          for (const auto& l : screen.frame()) {
            const std::string t = l.text();
            EXPECT_LE(l.width(), size_t(w)) << t;
            EXPECT_FALSE(std::regex_search(t, split)) << w << ": " << t;
            // Titles hold counts and sizes with units ("8 devices", "1.00 MiB"): none ends
            // in a bare number.
            if (t.rfind("ttmem top", 0) == 0 || t.rfind("Device ", 0) == 0 ||
                t.rfind("L1 map", 0) == 0) {
              EXPECT_FALSE(std::regex_search(t, bare_number)) << w << ": " << t;
            }
            const char* mark = unicode ? "…" : "~";
            cut_lines += t.size() >= std::strlen(mark) &&
                         t.compare(t.size() - std::strlen(mark), std::string::npos, mark) == 0;
          }
        }
      }
    }
  }
  EXPECT_GT(cut_lines, 0u);  // the sizes above do cut lines
}

// Detailed mode on a short screen says how many devices it could not show and how to see them.
TEST(TopSizes, DetailedModeCountsTheDevicesItCannotShow) {
  KeyedScreen screen(busy_machine(), UiState{.density = Density::kDetailed}, 80, 24);
  const std::string text = render_text(screen.frame());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(\+(\d+) more devices \(c: compact\))")))
      << text;
  size_t titles = 0;
  for (size_t at = text.find("Device "); at != std::string::npos;
       at = text.find("Device ", at + 1)) {
    ++titles;
  }
  EXPECT_EQ(titles + std::stoul(m[1]), 8u) << text;
  EXPECT_GT(titles, 0u);
}

// At 80 columns the buffers view gives up BANKS and ADDRESS, not the tag; a wide screen has all.
TEST(TopSizes, NarrowBuffersViewDropsLowValueColumnsBeforeTheTag) {
  auto header_and_text = [](int w, BufferSort sort) {
    KeyedScreen screen(busy_machine(), UiState{.view = View::kBuffers, .sort = sort}, w, 24);
    return std::pair{screen.frame()[3].text(), render_text(screen.frame())};
  };
  auto [narrow, text] = header_and_text(80, BufferSort::kReserved);
  EXPECT_EQ(narrow.find("BANKS"), std::string::npos) << narrow;
  EXPECT_EQ(narrow.find("ADDRESS"), std::string::npos) << narrow;
  EXPECT_NE(narrow.find("RESERVED"), std::string::npos) << narrow;
  EXPECT_NE(text.find("ttnn::operations::matmul::Matmul"), std::string::npos) << text;
  // The column the rows are sorted by stays.
  EXPECT_NE(header_and_text(80, BufferSort::kAddress).first.find("ADDRESS"), std::string::npos);
  auto [wide, unused] = header_and_text(200, BufferSort::kReserved);
  EXPECT_NE(wide.find("BANKS"), std::string::npos) << wide;
  EXPECT_NE(wide.find("ADDRESS"), std::string::npos) << wide;
}

// The compact overview gives the bars the room: no run of blanks before MARGIN.
TEST(TopSizes, CompactBarsTakeTheFreeColumns) {
  KeyedScreen screen(busy_machine(), UiState{.density = Density::kCompact}, 80, 24);
  const std::string row = screen.frame()[3].text();
  ASSERT_EQ(row.rfind("0 ", 0), 0u) << row;
  EXPECT_EQ(row.find("     384.00 KiB"), std::string::npos) << row;
  EXPECT_NE(row.find("#.."), std::string::npos) << row;  // TRACE at 28%: bars wider than a cell
}

// At 45 columns the compact overview keeps MARGIN and BUFS whole: percents lose their decimal
// before the last columns are cut.
TEST(TopSizes, CompactAt45ColumnsKeepsMarginAndBuffers) {
  KeyedScreen screen(busy_machine(), UiState{.density = Density::kCompact}, 45, 12);
  const Frame& f = screen.frame();
  ASSERT_GT(f.size(), 4u);
  EXPECT_NE(f[2].text().find("MARGIN BUFS"), std::string::npos) << f[2].text();
  const std::string row = f[3].text();
  EXPECT_LE(display_width(row), 45u) << row;
  EXPECT_EQ(row.find("~"), std::string::npos) << row;  // nothing cut
  EXPECT_NE(row.find("384.00 KiB"), std::string::npos) << row;
  EXPECT_NE(row.find(" 9%"), std::string::npos) << row;
}

// `?` shows every key on its own screen; `?` again (or Esc) closes it without quitting, and a
// key pressed in the help acts as well as closing it.
TEST(TopKeys, QuestionMarkShowsTheKeysAndClosesAgain) {
  KeyedScreen screen(busy_machine(), UiState{}, 80, 24);
  EXPECT_NE(screen.frame().back().text().find("? help"), std::string::npos);
  screen.press('?');
  std::string text = render_text(screen.frame());
  EXPECT_NE(text.find("Keys"), std::string::npos) << text;
  EXPECT_NE(text.find("reverse the sort"), std::string::npos) << text;
  EXPECT_EQ(text.find("Processes"), std::string::npos) << text;
  screen.press('?');
  text = render_text(screen.frame());
  EXPECT_EQ(text.find("reverse the sort"), std::string::npos) << text;
  EXPECT_NE(text.find("Processes"), std::string::npos) << text;
  EXPECT_TRUE(screen.press('?'));
  EXPECT_TRUE(screen.press(27));  // Esc closes the help, and does not quit
  EXPECT_EQ(render_text(screen.frame()).find("reverse the sort"), std::string::npos);
  screen.press('?');
  screen.press('2');
  text = render_text(screen.frame());
  EXPECT_NE(text.find("Buffers (63 live)"), std::string::npos) << text;
}

// `/` filters by tag, pid or command; -p keeps one process and the devices it holds.
TEST(TopCollect, FilterByTagOrProcessAndByPid) {
  Snapshot s = snapshot(3);
  ProcessView other;
  other.pid = 77;
  other.command = "python serve.py";
  other.counted = true;
  s.processes[0].counted = true;
  s.processes.push_back(other);
  BufferView theirs = buffer(2, kL1, 9, 800 << 10, 2048, 50);
  theirs.pid = 77;
  theirs.tag = "kv_cache";
  s.buffers.push_back(theirs);
  s.tags.push_back({"kv_cache", {}, 1});
  History h;
  h.push(s);
  CollectRequest r;
  r.filter = "KV";  // any case, in the tag
  ViewModel vm = collect(s, h, r);
  ASSERT_EQ(vm.buffers.size(), 1u);
  EXPECT_EQ(vm.buffers[0].buffer_id, 9u);
  ASSERT_EQ(vm.processes.size(), 1u);  // the process that holds a matching buffer
  EXPECT_EQ(vm.processes[0].pid, 77);
  ASSERT_EQ(vm.tags.size(), 1u);
  EXPECT_EQ(vm.tags[0].tag, "kv_cache");
  r.filter = "model --batch";  // the command
  vm = collect(s, h, r);
  EXPECT_EQ(vm.live_buffers, 3u);
  ASSERT_EQ(vm.processes.size(), 1u);
  EXPECT_EQ(vm.processes[0].pid, 42);
  r.filter = "77";  // the pid
  EXPECT_EQ(collect(s, h, r).live_buffers, 1u);
  r.filter = "nothing matches this";
  vm = collect(s, h, r);
  EXPECT_TRUE(vm.buffers.empty());
  EXPECT_TRUE(vm.processes.empty());
  EXPECT_EQ(vm.devices.size(), 3u);  // devices stay: their figures are the whole chip's

  r.filter.clear();
  r.pid = 77;
  vm = collect(s, h, r);
  ASSERT_EQ(vm.devices.size(), 1u);  // the one device it holds buffers on
  EXPECT_EQ(vm.devices[0].logical_ids, std::vector<uint32_t>{2});
  ASSERT_EQ(vm.buffers.size(), 1u);
  ASSERT_EQ(vm.processes.size(), 1u);
  EXPECT_EQ(vm.processes[0].pid, 77);
}

// `/` takes text until Enter (applies) or Esc (drops it); the header says what is shown.
TEST(TopKeys, SlashTypesAFilterAndEnterAppliesIt) {
  KeyedScreen screen(busy_machine(), UiState{}, 100, 30);
  screen.press('2');
  screen.press('/');
  for (char c : std::string("kv_cachX")) screen.press(c);
  screen.press(KEY_BACKSPACE);
  screen.press('e');
  std::string text = render_text(screen.frame());
  EXPECT_NE(text.find("/kv_cache_"), std::string::npos) << text;
  EXPECT_NE(text.find("Buffers (63 live)"), std::string::npos) << text;  // not applied yet
  EXPECT_TRUE(screen.press('q'));  // text while typing, not quit
  screen.press(KEY_BACKSPACE);
  screen.press('\n');
  text = render_text(screen.frame());
  EXPECT_NE(text.find("Only \"kv_cache\": 15 buffers in 15 rows"), std::string::npos) << text;
  EXPECT_NE(text.find("Buffers (15 live)"), std::string::npos) << text;
  EXPECT_EQ(text.find("ttnn::embedding"), std::string::npos) << text;
  screen.press('/');
  screen.press(27);  // Esc: the filter stays as it was
  EXPECT_NE(render_text(screen.frame()).find("Buffers (15 live)"), std::string::npos);
  screen.press('/');
  for (int i = 0; i < 8; ++i) screen.press(KEY_BACKSPACE);
  screen.press('\n');  // empty: cleared
  EXPECT_NE(render_text(screen.frame()).find("Buffers (63 live)"), std::string::npos);
}

// One buffer per device of a mesh, same address, size and tag: one row, "0-7 ×8".
TEST(TopCollect, MeshBufferCopiesFoldIntoOneRow) {
  Snapshot s = snapshot(8);
  s.buffers.clear();
  for (uint32_t d = 0; d < 8; ++d) {
    BufferView b = buffer(d, uint32_t(Kind::Dram), 1000 + d, 0x40000000, 1 << 20, 10 + d);
    b.tag = "weights";
    s.buffers.push_back(b);
  }
  s.buffers.push_back(buffer(3, uint32_t(Kind::Dram), 7, 0x50000000, 4096, 5));  // alone
  BufferView cb = buffer(0, uint32_t(Kind::Cb), 5, 0x10000, 2048, 1);            // CBs never fold
  s.buffers.push_back(cb);
  s.buffers.push_back(cb);
  History h;
  h.push(s);
  ViewModel vm = collect(s, h, CollectRequest{});
  EXPECT_EQ(vm.live_buffers, 11u);
  EXPECT_EQ(vm.total_buffers, 4u);
  ASSERT_FALSE(vm.buffers.empty());
  EXPECT_EQ(vm.buffers[0].copies, 8u);
  EXPECT_EQ(vm.buffers[0].devices, "0-7");
  EXPECT_EQ(vm.buffers[0].device, 0u);  // the copy that sorts first
  UiState ui;
  ui.view = View::kBuffers;
  std::string text = render_text(layout(vm, ui, LayoutOptions{120, 0, true, true, 500}));
  EXPECT_NE(text.find("0-7 ×8"), std::string::npos) << text;
  EXPECT_NE(text.find("Buffers (11 live in 4 rows"), std::string::npos) << text;
  s.buffers.erase(s.buffers.begin() + 2);  // device 2's copy freed: "0,1,3-7" is a list
  vm = collect(s, h, CollectRequest{});
  EXPECT_EQ(vm.buffers[0].devices, "0,1,3,4,5,6,7");
  EXPECT_EQ(vm.buffers[0].copies, 7u);
}

// `P` puts each kind's history peak, and how long ago it was, where the sparkline was.
TEST(TopLayout, PeakKeyShowsEachKindsHistoryPeakAndWhen) {
  Snapshot s = snapshot(1);
  History h;
  for (uint64_t used : {1u << 20, 5u << 20, 2u << 20, 3u << 20}) {
    s.devices[0].kinds[kL1].reserved = used;
    h.push(s);
  }
  ViewModel vm = collect(s, h, CollectRequest{});
  UiState ui;
  LayoutOptions o{160, 0, false, true, 500};
  EXPECT_EQ(render_text(layout(vm, ui, o)).find("HISTORY PEAK"), std::string::npos);
  ui.peak = true;
  std::string text = render_text(layout(vm, ui, o));
  EXPECT_NE(text.find("HISTORY PEAK (P: back)"), std::string::npos) << text;
  EXPECT_NE(text.find("^5.00 MiB 1.0s ago"), std::string::npos) << text;  // 2 samples of 500 ms
  KeyedScreen screen(s, UiState{}, 160, 40);
  screen.press('P');
  EXPECT_NE(render_text(screen.frame()).find("HISTORY PEAK"), std::string::npos);
}

// A device whose processes ended stays on screen, greyed, with how long ago it went; after
// History::kKeepGoneNs it is dropped.
TEST(TopCollect, GoneDevicesStayGreyedForAWhile) {
  Snapshot s = snapshot(2);
  History h;
  h.push(s);
  Snapshot later = s;
  later.devices.erase(later.devices.begin());  // device 0 went away
  later.taken_monotonic_ns += 10'000'000'000;
  h.push(later);
  ViewModel vm = collect(later, h, {});
  ASSERT_EQ(vm.devices.size(), 2u);
  EXPECT_FALSE(vm.devices[0].gone);
  EXPECT_EQ(vm.devices[0].logical_ids, std::vector<uint32_t>{1});
  EXPECT_TRUE(vm.devices[1].gone);
  EXPECT_EQ(vm.devices[1].gone_for_ns, 10'000'000'000u);
  Frame f = layout(vm, UiState{}, {120, 0, false, false, 500});
  bool titled = false;
  for (const auto& l : f) {
    if (l.text().rfind("Device 0", 0) != 0) continue;
    titled = true;
    EXPECT_NE(l.text().find("[gone 10.0s ago]"), std::string::npos) << l.text();
    EXPECT_EQ(l.spans[0].style, Style::kDim);
  }
  EXPECT_TRUE(titled);

  // Every device gone: the screen shows them, not "No devices".
  Snapshot empty = later;
  empty.devices.clear();
  empty.taken_monotonic_ns += 1'000'000'000;
  h.push(empty);
  const LayoutOptions stable_text{120, 0, false, true, 500};
  std::string text = render_text(layout(collect(empty, h, {}), UiState{}, stable_text));
  EXPECT_EQ(text.find("No devices"), std::string::npos) << text;
  EXPECT_NE(text.find("[gone]"), std::string::npos) << text;

  empty.taken_monotonic_ns += History::kKeepGoneNs;
  text = render_text(layout(collect(empty, h, {}), UiState{}, stable_text));
  EXPECT_NE(text.find("No devices"), std::string::npos) << text;
}

TEST(TopSizes, GoldenScreensAtEachTerminalSize) {
  Snapshot s = busy_machine();
  static constexpr const char* kViewFiles[kNumViews] = {"overview", "buffers", "l1map"};
  for (auto [w, h] :
       {std::pair{80, 24}, std::pair{100, 30}, std::pair{200, 60}, std::pair{45, 10}}) {
    for (int v = 0; v < kNumViews; ++v) {
      KeyedScreen screen(s, UiState{.view = View(v)}, w, h);
      const std::string text = render_text(screen.frame());
      for (const auto& l : screen.frame()) EXPECT_LE(l.width(), size_t(w)) << l.text();
      expect_golden(fmt::format("top_{}_{}x{}.txt", kViewFiles[v], w, h), text);
    }
  }
}

}  // namespace
}  // namespace ttmem::top
