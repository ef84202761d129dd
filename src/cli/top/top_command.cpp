// ttmem top: the live monitor. The loop here only wires the steps together: collector ->
// collect() -> layout() -> Screen::paint() or render_text(); keys change the UiState.
#include <curses.h>
#include <langinfo.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <clocale>
#include <csignal>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "cli/top/collect.h"
#include "cli/top/draw.h"
#include "cli/top/keys.h"
#include "cli/top/layout.h"
#include "cli/top/source.h"
#include "cli/top/text_render.h"
#include "cli/top/top.h"
#include "collector/json.h"
#include "common/clock.h"

namespace ttmem::top {

using collector::missing_segment_dir_text;
using collector::has_process;
using collector::parse_sort;
using collector::Snapshot;
using collector::sort_names;
using collector::status_json;
using collector::to_json;
using common::monotonic_ns;

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }

// SIGINT, SIGTERM and SIGHUP end the loop so the terminal is restored; no SA_RESTART, so a
// sleeping poll() returns at once.
void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

bool utf8_locale() {
  const char* cs = nl_langinfo(CODESET);
  return cs != nullptr && (std::strcmp(cs, "UTF-8") == 0 || std::strcmp(cs, "utf8") == 0);
}

// --sort was checked by sort_key() when parsed.
BufferSort sort_of(const std::string& name) {
  std::string error;
  return parse_sort(name, &error).value_or(BufferSort::kReserved);
}

View parse_view(const std::string& s) {
  if (s == "buffers") return View::kBuffers;
  if (s == "l1map") return View::kL1Map;
  return View::kOverview;
}

int text_width(const TopArgs& a) {
  if (a.width > 0) return a.width;
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS"); c && std::atoi(c) >= 40) return std::atoi(c);
  return 120;
}

CollectRequest request_for(const TopArgs& a, const UiState& ui, size_t buffer_limit) {
  CollectRequest r;
  r.devices = a.devices;
  r.sort = ui.sort;
  r.reverse = ui.reverse;
  r.buffer_limit = buffer_limit;
  r.map_device = ui.view == View::kL1Map ? ui.map_device : -1;
  r.pid = a.pid;
  r.filter = ui.filter;
  return r;
}

// The devices of `s` that -d selected (all without -d), for --json.
nlohmann::json json_snapshot(const Snapshot& s, const TopArgs& a) {
  nlohmann::json j = status_json(s);
  if (!a.devices.empty()) {
    nlohmann::json kept = nlohmann::json::array();
    for (size_t i = 0; i < s.devices.size(); ++i) {
      for (uint32_t id : s.devices[i].logical_ids) {
        if (std::find(a.devices.begin(), a.devices.end(), id) != a.devices.end()) {
          kept.push_back(j["devices"][i]);
          break;
        }
      }
    }
    j["devices"] = kept;
  }
  nlohmann::json tags = nlohmann::json::array();
  for (const auto& t : s.tags) tags.push_back(to_json(t));
  j["tags"] = tags;
  // Counted from the processes: the snapshots --json prints do not list buffers.
  uint64_t live = 0;
  for (const auto& p : s.processes) live += p.buffers + p.cbs;
  j["buffers"] = live;
  j["taken_realtime_ns"] = s.taken_realtime_ns;
  return j;
}

// Whether a frame needs the snapshot's buffers listed: the buffers view, the L1 map, and a
// filter or -p (which match buffers). The overview alone reads aggregates, so with a million
// live buffers its refresh costs what changed, not what is live.
bool needs_buffers(const UiState& ui, const TopArgs& a) {
  return ui.view != View::kOverview || !ui.filter.empty() || a.pid.has_value();
}

// Lists buffers from now on if the frame needs them (refreshing at once, so this frame has
// them), and stops listing them once no frame does.
void list_buffers_as_needed(SnapshotSource& c, const UiState& ui, const TopArgs& a) {
  const bool needed = needs_buffers(ui, a);
  if (needed == c.lists_buffers()) return;
  c.set_list_buffers(needed);
  if (needed) c.refresh();
}

// Snapshots as text or JSON: --once, --count, --json, or a stdout that is not a terminal.
// `dir_named`: the directory was given with --dir; one that does not exist is then an error, as
// for `ttmem status` (the live screen instead says so and waits for it).
void run_text(SnapshotSource& c, const TopArgs& a, bool unicode, bool dir_named) {
  History history;
  UiState ui;
  ui.view = parse_view(a.view);
  ui.sort = sort_of(a.sort);
  ui.filter = a.filter;
  ui.peak = a.peak;
  LayoutOptions lo;
  lo.width = text_width(a);
  lo.height = 0;
  lo.unicode = unicode;
  lo.stable = a.stable;
  lo.refresh_ms = a.refresh_ms;
  int count = std::max(a.count, 1);
  c.set_list_buffers(!a.json && needs_buffers(ui, a));
  for (int i = 0; i < count && !g_stop.load(std::memory_order_relaxed); ++i) {
    if (i > 0) {
      // Sleep out the interval; segment events wake wait() early and are folded in anyway.
      uint64_t deadline = monotonic_ns() + uint64_t(a.refresh_ms) * 1'000'000;
      for (uint64_t now = monotonic_ns(); now < deadline && !g_stop.load(); now = monotonic_ns()) {
        c.wait(int((deadline - now + 999'999) / 1'000'000));
      }
    } else {
      c.refresh();
    }
    const Snapshot& s = c.snapshot();
    if (i == 0) {
      if (dir_named && s.segment_dir_missing) {
        throw cli::CliError(missing_segment_dir_text(s.segment_dir) + "; check --dir");
      }
      for (uint32_t id : a.devices) cli::resolve_device(s, id);  // unknown -d: an error
      std::string error;
      if (a.pid && !has_process(s, *a.pid, &error)) throw cli::CliError(error);
    }
    history.push(s);
    if (a.json) {
      std::string out = count > 1 ? json_snapshot(s, a).dump() : json_snapshot(s, a).dump(2);
      std::printf("%s\n", out.c_str());
    } else {
      if (i > 0) std::printf("\n");
      ViewModel vm = collect(s, history, request_for(a, ui, a.limit));
      std::fputs(render_text(layout(vm, ui, lo)).c_str(), stdout);
    }
    std::fflush(stdout);
  }
}

}  // namespace

bool handle_key(int ch, UiState& ui, const ViewModel& vm, const TableWindow& window) {
  const size_t page = std::max<size_t>(window.shown, 1);
  const size_t scroll_max = window.total > page ? window.total - page : 0;
  // The frame may have moved a scroll past the end back up (the table shrank, or a page key
  // overshot): keys move from what was on the screen.
  const size_t at = std::min(ui.scroll, std::max(window.first, scroll_max));
  auto scroll_to = [&](size_t row) { ui.scroll = std::min(row, scroll_max); };
  auto set_view = [&](View v) {
    if (ui.view != v) ui.scroll = 0;
    ui.view = v;
  };
  // The L1 map cycles through live devices only (gone ones come last and have no map).
  int devices = std::max<int>(1, int(std::count_if(vm.devices.begin(), vm.devices.end(),
                                                   [](const DeviceRow& d) { return !d.gone; })));
  // The help screen takes the next key: `?` or Esc close it, `q` still quits, anything else
  // closes it and acts.
  if (ui.help) {
    ui.help = false;
    if (ch == '?' || ch == 27) return true;
  }
  // Typing a filter: every key is text until Enter or Esc.
  if (ui.editing) {
    if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
      ui.filter = ui.draft;
      ui.editing = false;
      ui.scroll = 0;
    } else if (ch == 27) {
      ui.editing = false;
    } else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
      if (!ui.draft.empty()) ui.draft.pop_back();
    } else if (ch >= 32 && ch < 127 && ui.draft.size() < 64) {
      ui.draft += char(ch);
    }
    return true;
  }
  switch (ch) {
    case '?': case KEY_F(1): ui.help = true; break;
    case '/':
      ui.editing = true;
      ui.draft = ui.filter;
      break;
    case 'P':
      ui.peak = !ui.peak;
      break;
    case 'q': case 'Q': case 27: return false;
    case '\t': set_view(View((int(ui.view) + 1) % kNumViews)); break;
    case KEY_BTAB: set_view(View((int(ui.view) + kNumViews - 1) % kNumViews)); break;
    case '1': case 'o': set_view(View::kOverview); break;
    case '2': case 'b': set_view(View::kBuffers); break;
    case '3': case 'm': set_view(View::kL1Map); break;
    case KEY_UP: case 'k': scroll_to(at > 0 ? at - 1 : 0); break;
    case KEY_DOWN: case 'j': scroll_to(at + 1); break;
    case KEY_PPAGE: scroll_to(at > page ? at - page : 0); break;
    case KEY_NPAGE: scroll_to(at + page); break;
    case KEY_HOME: case 'g': ui.scroll = 0; break;
    case KEY_END: case 'G': ui.scroll = scroll_max; break;
    case 's': ui.sort = BufferSort((int(ui.sort) + 1) % kNumBufferSorts); ui.scroll = 0; break;
    case 'S':
      ui.sort = BufferSort((int(ui.sort) + kNumBufferSorts - 1) % kNumBufferSorts);
      ui.scroll = 0;
      break;
    case 'r': ui.reverse = !ui.reverse; ui.scroll = 0; break;
    case KEY_RIGHT: case 'l': case ']':
      ui.map_device = (ui.map_device + 1) % devices;
      ui.scroll = 0;
      break;
    case KEY_LEFT: case 'h': case '[':
      ui.map_device = (ui.map_device + devices - 1) % devices;
      ui.scroll = 0;
      break;
    case 'c': ui.density = Density((int(ui.density) + 1) % 3); break;
    case ' ': case 'p': ui.paused = !ui.paused; break;
    default: break;
  }
  return true;
}


namespace {

// The terminal UI: repaint on every refresh, key and resize; refresh on a fixed cadence.
void run_live(SnapshotSource& c, const TopArgs& a, bool unicode) {
  Screen screen;
  History history;
  UiState ui;
  ui.view = parse_view(a.view);
  ui.sort = sort_of(a.sort);
  ui.filter = a.filter;
  ui.peak = a.peak;
  c.set_list_buffers(needs_buffers(ui, a));
  c.refresh();
  history.push(c.snapshot());
  const uint64_t period = uint64_t(a.refresh_ms) * 1'000'000;
  uint64_t next = monotonic_ns() + period;
  while (!g_stop.load(std::memory_order_relaxed)) {
    LayoutOptions lo;
    lo.width = screen.width();
    lo.height = screen.height();
    lo.unicode = unicode;
    lo.refresh_ms = a.refresh_ms;
    list_buffers_as_needed(c, ui, a);
    ViewModel vm = collect(c.snapshot(), history, request_for(a, ui, ui.scroll + table_rows(ui, lo)));
    vm.source_label = c.label();
    if (!vm.devices.empty()) ui.map_device = std::min(ui.map_device, int(vm.devices.size()) - 1);
    TableWindow window;
    screen.paint(layout(vm, ui, lo, &window));

    uint64_t now = monotonic_ns();
    pollfd pfd{STDIN_FILENO, POLLIN, 0};
    int timeout = now >= next ? 0 : int((next - now + 999'999) / 1'000'000);
    int n = ::poll(&pfd, 1, timeout);
    if (n > 0) {
      bool quit = false;
      for (int ch = screen.read_key(); ch != -1; ch = screen.read_key()) {
        if (ch == KEY_RESIZE) {
          screen.invalidate();
        } else if (!handle_key(ch, ui, vm, window)) {
          quit = true;
          break;
        }
      }
      if (quit) break;
      if (pfd.revents & (POLLHUP | POLLERR)) break;  // the terminal went away
    }
    if (monotonic_ns() >= next) {
      if (!ui.paused) {
        c.wait(0);  // drains segment notifications, then refreshes
        history.push(c.snapshot());
      }
      next += period;
      if (next < monotonic_ns()) next = monotonic_ns() + period;  // fell behind: skip ticks
    }
  }
}

}  // namespace

void add_top_options(CLI::App& app, TopArgs& a) {
  app.add_option("-r,--refresh", a.refresh_ms, "Refresh interval in milliseconds")
      ->check(CLI::Range(10, 3'600'000))
      ->capture_default_str();
  auto* all = app.add_flag("-a,--all", a.all, "Show all devices (the default)");
  auto* dev = app.add_option("-d,--device", a.devices, "Show this device (logical id); repeatable")
                  ->allow_extra_args(false);
  all->excludes(dev);
  app.add_flag("--once", a.once, "Print one snapshot as text and exit");
  app.add_flag("--json", a.json, "Print snapshots as JSON (one line each with --count)");
  app.add_option("-n,--count", a.count, "Print N snapshots, one per refresh, and exit")
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--view", a.view, "Text view: overview, buffers or l1map")
      ->check(CLI::IsMember({"overview", "buffers", "l1map"}))
      ->capture_default_str();
  app.add_option("--sort", a.sort, "Buffer order, as in ttmem buffers: " + sort_names())
      ->check(cli::sort_key())
      ->capture_default_str();
  app.add_option("-p,--pid", a.pid,
                 "Only this process: its buffers, its row and the devices it holds buffers on")
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--filter", a.filter,
                 "Only buffers whose tag, or whose process's pid or command, contains TEXT (any "
                 "case), and the processes and tags that match; `/` changes it live");
  app.add_flag("--peak", a.peak,
               "Overview: each kind's history peak and how long ago, as the `P` key shows");
  app.add_option("--limit", a.limit, "Rows of the text buffers view (0: all)")
      ->check(cli::number_up_to(1e12));
  app.add_option("--width", a.width, "Text width in columns (default: the terminal's, else 120)")
      ->check(CLI::Range(40, 1000));
  app.add_flag("--ascii", a.ascii, "ASCII bars and sparklines even in a UTF-8 locale");
  app.add_flag("--stable", a.stable,
               "Mask pids, ages, times and the directory in text output (golden files)");
  app.add_flag("--direct", a.direct,
               "Read the segments even when a ttmemd serves the directory (by default the live "
               "view shows that ttmemd's overview: one fold for every viewer; buffer views read "
               "the segments either way)");
  app.add_option("--legacy-socket", a.legacy_socket,
                 "Without --server, --dir or $TTMEM_DIR: show what the ttmemd listening on this "
                 "legacy socket serves, if one does")
      ->capture_default_str();
}

void run_top(const cli::GlobalOptions& global, const TopArgs& a) {
  std::setlocale(LC_ALL, "");
  const bool unicode = !a.ascii && utf8_locale();
  g_stop.store(false);
  install_signal_handlers();
  const bool text = a.once || a.json || a.count > 0 || a.stable || !::isatty(STDOUT_FILENO) ||
                    !::isatty(STDIN_FILENO);
  // The live view asks a ttmemd serving the directory; text prints read what they print.
  std::unique_ptr<SnapshotSource> c = open_source(global, a.legacy_socket, !text && !a.direct);
  if (text) {
    run_text(*c, a, unicode, !global.dir.empty());
    return;
  }
  try {
    run_live(*c, a, unicode);
  } catch (const std::runtime_error& e) {
    throw cli::CliError(e.what());
  }
}

}  // namespace ttmem::top

namespace ttmem::cli {

void add_top_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("top", "Live monitor: devices, kinds, processes, buffers, L1 map");
  auto a = std::make_shared<top::TopArgs>();
  top::add_top_options(*cmd, *a);
  cmd->callback([&global, a] { top::run_top(global, *a); });
}

}  // namespace ttmem::cli
