// The ncurses renderer of `ttmem top`: paints a Frame (layout.h) on the terminal. It decides
// nothing about what goes where; styles become colours and attributes here and nowhere else.
#pragma once

#include <cstdio>

#include "cli/top/layout.h"

struct screen;  // ncurses' SCREEN

namespace ttmem::top {

// An ncurses session on the controlling terminal, ended (terminal restored) by the destructor.
class Screen {
 public:
  // Throws std::runtime_error when the terminal cannot be used (unknown TERM, no tty).
  // `out`, `in` and `term` default to the process's terminal (the benchmark draws to /dev/null).
  explicit Screen(std::FILE* out = stdout, std::FILE* in = stdin, const char* term = nullptr);
  ~Screen();
  Screen(const Screen&) = delete;
  Screen& operator=(const Screen&) = delete;

  int width() const;
  int height() const;

  // Replaces the screen's contents with `frame` (ncurses sends only what changed).
  void paint(const Frame& frame);

  // The next key, or -1 when none is waiting. KEY_RESIZE after the terminal changed size.
  int read_key();

  // Repaint everything on the next paint (after a resize).
  void invalidate();

 private:
  struct screen* screen_ = nullptr;
  bool colors_ = false;
};

}  // namespace ttmem::top
