#include "cli/top/draw.h"

#include <curses.h>

#include <array>
#include <cstdio>
#include <stdexcept>

namespace ttmem::top {
namespace {

// Colour pair and attributes of each style. Pair 0 is the terminal's default.
struct Look {
  short fg, bg;
  attr_t attrs;
};

constexpr short kDefault = -1;

std::array<Look, kNumStyles> looks() {
  std::array<Look, kNumStyles> l{};
  auto set = [&](Style s, short fg, short bg, attr_t a) { l[size_t(s)] = {fg, bg, a}; };
  set(Style::kNormal, kDefault, kDefault, A_NORMAL);
  set(Style::kDim, kDefault, kDefault, A_DIM);
  set(Style::kBold, kDefault, kDefault, A_BOLD);
  set(Style::kTitle, COLOR_CYAN, kDefault, A_BOLD);
  set(Style::kHeader, COLOR_BLUE, kDefault, A_BOLD);
  set(Style::kKey, COLOR_BLACK, COLOR_CYAN, A_NORMAL);
  set(Style::kGood, COLOR_GREEN, kDefault, A_NORMAL);
  set(Style::kWarn, COLOR_YELLOW, kDefault, A_BOLD);
  set(Style::kCrit, COLOR_RED, kDefault, A_BOLD);
  set(Style::kPeak, COLOR_MAGENTA, kDefault, A_BOLD);
  set(Style::kFirmware, COLOR_WHITE, COLOR_BLACK, A_DIM);
  set(Style::kCb, COLOR_WHITE, COLOR_BLUE, A_BOLD);
  set(Style::kMargin, COLOR_YELLOW, kDefault, A_BOLD);
  set(Style::kFree, kDefault, kDefault, A_DIM);
  set(Style::kL1Buffer, COLOR_BLACK, COLOR_GREEN, A_NORMAL);
  set(Style::kL1SmallFree, COLOR_CYAN, kDefault, A_DIM);
  set(Style::kL1SmallBuffer, COLOR_BLACK, COLOR_CYAN, A_NORMAL);
  set(Style::kClash, COLOR_WHITE, COLOR_RED, A_BOLD);
  return l;
}

const std::array<Look, kNumStyles> kLooks = looks();

}  // namespace

Screen::Screen(std::FILE* out, std::FILE* in, const char* term) {
  // newterm (not initscr) so a terminal ncurses cannot drive is an error, not an exit().
  screen_ = newterm(term, out, in);
  if (screen_ == nullptr) {
    throw std::runtime_error(
        "cannot start the terminal UI (is TERM set to a known terminal?); use --once for text");
  }
  set_term(screen_);
  cbreak();
  noecho();
  nonl();
  keypad(stdscr, TRUE);
  nodelay(stdscr, TRUE);
  set_escdelay(25);
  curs_set(0);
  if (has_colors()) {
    start_color();
    use_default_colors();
    colors_ = true;
    for (int i = 1; i < kNumStyles; ++i) {
      init_pair(short(i), kLooks[size_t(i)].fg, kLooks[size_t(i)].bg);
    }
  }
}

Screen::~Screen() {
  endwin();
  delscreen(screen_);
}

int Screen::width() const { return COLS; }
int Screen::height() const { return LINES; }

void Screen::paint(const Frame& frame) {
  erase();
  int y = 0;
  for (const Line& line : frame) {
    if (y >= LINES) break;
    move(y, 0);
    for (const Span& span : line.spans) {
      const Look& look = kLooks[size_t(span.style)];
      attr_t a = look.attrs;
      if (colors_ && span.style != Style::kNormal) a |= COLOR_PAIR(int(span.style));
      if (!colors_ && (span.style == Style::kKey || span.style == Style::kL1Buffer ||
                       span.style == Style::kCb || span.style == Style::kClash)) {
        a |= A_REVERSE;
      }
      attrset(a);
      // Writing the bottom-right cell scrolls on some terminals; addnstr stops at the edge.
      addnstr(span.text.c_str(), int(span.text.size()));
    }
    ++y;
  }
  attrset(A_NORMAL);
  refresh();
}

int Screen::read_key() {
  int ch = getch();
  return ch == ERR ? -1 : ch;
}

void Screen::invalidate() { clearok(curscr, TRUE); }

}  // namespace ttmem::top
