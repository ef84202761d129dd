// The keys of `ttmem top`: one key changes the UiState, given what the last frame showed. Apart
// from the terminal loop (defined in top_command.cpp) so tests can press keys against a synthetic
// snapshot.
#pragma once

#include "cli/top/layout.h"
#include "cli/top/view_model.h"

namespace ttmem::top {

// Applies one key (a curses key code) to the UI state; false when the key quits. `window` is
// what the last frame's scrolled table showed: scrolling starts from where that frame stood,
// pages by its height and ends where its last row is the table's last.
bool handle_key(int ch, UiState& ui, const ViewModel& vm, const TableWindow& window);

}  // namespace ttmem::top
