// The layout step of `ttmem top`: (view model, UI state, size) -> lines of styled text. Both
// renderers paint what this returns, so the terminal UI and the `--once` text share one layout:
// draw.cpp maps styles to curses attributes, text_render.cpp prints the text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/top/view_model.h"

namespace ttmem::top {

enum class Style : uint8_t {
  kNormal,
  kDim,
  kBold,
  kTitle,
  kHeader,
  kKey,
  kGood,
  kWarn,
  kCrit,
  kPeak,
  kFirmware,
  kCb,
  kMargin,
  kFree,
  kL1Buffer,
  kL1SmallFree,
  kL1SmallBuffer,
  kClash,
};
inline constexpr int kNumStyles = int(Style::kClash) + 1;

struct Span {
  std::string text;  // UTF-8; every character the layout emits is one column wide
  Style style = Style::kNormal;
};

struct Line {
  std::vector<Span> spans;
  Line& add(std::string text, Style style = Style::kNormal);
  size_t width() const;  // in columns
  std::string text() const;
};

using Frame = std::vector<Line>;

enum class View { kOverview, kBuffers, kL1Map };
inline constexpr int kNumViews = 3;
enum class Density { kAuto, kDetailed, kCompact };

// What the user chose with keys; the layout reads it, never changes it.
struct UiState {
  View view = View::kOverview;
  BufferSort sort = BufferSort::kReserved;
  bool reverse = false;
  size_t scroll = 0;   // first row of the view's scrolled table
  int map_device = 0;  // index into the shown devices
  Density density = Density::kAuto;
  bool paused = false;
  bool help = false;  // the key list covers the view until `?` or Esc
  // `/`: buffers, processes and tags matching this (tag, pid or command); empty: all. While
  // `editing`, keys go to `draft` until Enter applies it or Esc drops it.
  std::string filter;
  bool editing = false;
  std::string draft;
  bool peak = false;  // `P`: each kind's history peak, its bytes and how long ago
};

struct LayoutOptions {
  int width = 100;
  int height = 0;        // 0: as tall as needed (text output), no footer
  bool unicode = true;   // block characters; ASCII when the locale is not UTF-8
  bool stable = false;   // mask pids, ages, times and the directory (golden files)
  int refresh_ms = 500;
};

// The rows of a view's scrolled table (buffers, or the L1 map's buffers) that a frame showed:
// [first, first + shown) of total. Keys scroll from it, so paging and End agree with the screen.
struct TableWindow {
  size_t first = 0;
  size_t shown = 0;
  size_t total = 0;
};

// `window`, when given, receives what the view's scrolled table showed (all zero for the
// overview, which does not scroll).
Frame layout(const ViewModel& vm, const UiState& ui, const LayoutOptions& o,
             TableWindow* window = nullptr);

// At most how many rows of its scrolled table `view` shows at this height: enough rows for
// collect to sort (ui.scroll plus this). The exact window comes from layout().
size_t table_rows(const UiState& ui, const LayoutOptions& o);

// Columns taken by a UTF-8 string (one per code point).
size_t display_width(const std::string& s);

// Cut or pad `s` to exactly `width` columns; right-aligned pads on the left.
std::string fit(const std::string& s, size_t width, bool right_aligned = false);

// Pieces of the layout, exposed for tests.
Line bar(uint64_t used, uint64_t peak, uint64_t capacity, size_t width, bool unicode);
// The newest `width` values of a history, right-aligned: one glyph per sample, its height the
// share of `capacity` (of the window's maximum when capacity is 0), blank for nothing in use,
// and a break glyph where kHistoryRestart marks a new process on the chip.
std::string sparkline(const std::vector<uint64_t>& values, uint64_t capacity, size_t width,
                      bool unicode);
// The largest value of a history, restart marks left out.
uint64_t history_max(const std::vector<uint64_t>& values);
Style usage_style(uint64_t used, uint64_t capacity);

}  // namespace ttmem::top
