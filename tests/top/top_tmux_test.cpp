// The terminal UI for real: `ttmem top` runs in a tmux pane (its own server socket, a fixed
// size) against a segment directory where a tracked workload holds 8 devices. The tests read the
// screen with capture-pane, press keys with send-keys and resize the window.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string_view>
#include <thread>

#include "harness.h"

namespace ttmem::test {
namespace {

size_t columns(const std::string& line) {
  size_t n = 0;
  for (char c : line) n += (uint8_t(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// A tmux server of our own; killed (with everything in it) at destruction.
// Configure found no tmux: the terminal tests cannot run here.
constexpr const char* kNoTmux =
    "tmux is not installed: the terminal UI is not tested (scripts/install-deps.sh installs it)";
bool have_tmux() { return std::string_view(TTMEM_TMUX).size() > 0; }

class Tmux {
 public:
  explicit Tmux(const std::string& dir) {
    static int counter = 0;
    socket_ = "ttmem-top-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    config_ = dir + "/tmux.conf";
    std::ofstream(config_) << "set -g status off\n";
  }
  ~Tmux() { tmux({"kill-server"}); }

  RunResult tmux(std::vector<std::string> args) {
    std::vector<std::string> argv = {TTMEM_TMUX, "-L", socket_, "-f", config_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  void start(const std::string& command, int width, int height) {
    RunResult r = tmux({"new-session", "-d", "-x", std::to_string(width), "-y",
                        std::to_string(height), command});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  std::string screen() { return tmux({"capture-pane", "-p"}).out; }

  void keys(std::vector<std::string> keys) {
    keys.insert(keys.begin(), "send-keys");
    tmux(keys);
  }

  void resize(int width, int height) {
    RunResult r = tmux({"resize-window", "-x", std::to_string(width), "-y", std::to_string(height)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // Polls the screen until `pred` holds; the last screen is left in `last`.
  bool wait_for(const std::function<bool(const std::string&)>& pred, std::string& last,
                int timeout_ms = 10000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    do {
      last = screen();
      if (pred(last)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (std::chrono::steady_clock::now() < end);
    return false;
  }

  // All of `texts` on one capture.
  bool wait_all(const std::vector<std::string>& texts, std::string& last) {
    return wait_for([&](const std::string& x) {
      for (const auto& t : texts) {
        if (x.find(t) == std::string::npos) return false;
      }
      return true;
    }, last);
  }

  bool wait_text(const std::string& text, std::string& last, int timeout_ms = 10000) {
    return wait_for([&](const std::string& s) { return s.find(text) != std::string::npos; },
                    last, timeout_ms);
  }

 private:
  std::string socket_;
  std::string config_;
};

// The monitor's exit status is written to DIR/status: tmux's own pane status is not reliable
// on a loaded machine. The shell ignores SIGINT so Ctrl-C reaches only the monitor (which
// installs its own handler).
std::string top_command(const std::string& program, const std::string& dir,
                        const std::string& args) {
  return "trap '' INT; env TTMEM_DIR=" + dir + " LC_ALL=C.UTF-8 " + program + " " + args +
         "; echo $? > " + dir + "/status";
}

// The exit status the monitor left in DIR/status, waiting up to 5 s for it.
std::string exit_status(const std::string& dir) {
  for (int i = 0; i < 100; ++i) {
    std::ifstream in(dir + "/status");
    std::string s;
    if (std::getline(in, s)) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "(still running)";
}

std::unique_ptr<Child> start_workload(const std::string& dir) {
  auto load = std::make_unique<Child>(
      std::vector<std::string>{TTMEM_CLI, "sim", "llama-decode", "--speed", "0", "--hold", "120"},
      std::map<std::string, std::string>{{"TTMEM_DIR", dir}});
  EXPECT_TRUE(load->expect_line("holding for 120 s"));
  return load;
}

bool fits(const std::string& screen, size_t width) {
  for (const auto& l : lines_of(screen)) {
    if (columns(l) > width) return false;
  }
  return true;
}

TEST(TopTmux, ShowsEightDevicesProcessesAndHandlesKeysAndResizing) {
  if (!have_tmux()) GTEST_SKIP() << kNoTmux;
  TempDir dir;
  auto load = start_workload(dir.path());
  Tmux t(dir.path());
  t.start(top_command(TTMEM_CLI, dir.path(), "top -r 100"), 140, 45);

  // A bar for every device (a row per device id with block characters) and the process row.
  // One predicate over one capture: a capture can catch the screen halfway through a paint.
  std::string pid = std::to_string(load->pid());
  auto overview_complete = [&](const std::string& screen) {
    int device_rows = 0;
    bool process_row = false;
    for (const auto& l : lines_of(screen)) {
      for (int d = 0; d < 8; ++d) {
        if (l.rfind(std::to_string(d) + " ", 0) == 0 && l.find("░") != std::string::npos) {
          ++device_rows;
        }
      }
      process_row |= l.find(pid) != std::string::npos && l.find("llama-decode") != std::string::npos;
    }
    return screen.find("8 devices") != std::string::npos && device_rows == 8 && process_row;
  };
  std::string s;
  ASSERT_TRUE(t.wait_for(overview_complete, s)) << s;
  EXPECT_NE(s.find("q quit"), std::string::npos) << s;  // the footer is painted before the body

  // 'c' switches to the detailed layout: one line per kind with its own bar.
  t.keys({"c"});
  ASSERT_TRUE(t.wait_all({"Device 0  chip 0x", "  TRACE    "}, s)) << s;
  // `P`: each kind's history peak in place of its sparkline.
  t.keys({"P"});
  ASSERT_TRUE(t.wait_all({"HISTORY PEAK (P: back)", "s ago"}, s)) << s;
  t.keys({"P"});
  ASSERT_TRUE(t.wait_for(
      [](const std::string& x) {
        return x.find("HISTORY PEAK") == std::string::npos &&
               x.find("HISTORY") != std::string::npos;
      },
      s))
      << s;
  t.keys({"c", "c"});  // compact, then automatic again

  // The buffers view, and its sort keys.
  t.keys({"b"});
  ASSERT_TRUE(t.wait_all({"RESERVED▼", "[2 Buffers]"}, s)) << s;
  t.keys({"s"});
  ASSERT_TRUE(t.wait_text("SIZE▼", s)) << s;
  t.keys({"r"});
  ASSERT_TRUE(t.wait_text("SIZE▲", s)) << s;
  t.keys({"Down", "Down"});
  ASSERT_TRUE(t.wait_text("rows 3-", s)) << s;
  // `/` filters by tag; the eight copies of the mesh buffer are one row.
  t.keys({"/"});
  ASSERT_TRUE(t.wait_text("Enter applies", s)) << s;
  t.keys({"lm_head", "Enter"});
  ASSERT_TRUE(t.wait_all({"Only \"lm_head\": 8 buffers in 1 rows", "0-7 ×8"}, s)) << s;
  t.keys({"/", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "Enter"});
  ASSERT_TRUE(t.wait_for(
      [](const std::string& x) {
        return x.find("Only \"") == std::string::npos && x.find("[2 Buffers]") != std::string::npos;
      },
      s))
      << s;

  // The L1 map, and moving to the next device.
  t.keys({"m"});
  // The firmware is drawn at the bottom of L1, and the clash margin is stated.
  ASSERT_TRUE(t.wait_all({"L1 map of device 0", "clash margin", "FFFF"}, s)) << s;
  t.keys({"Right"});
  ASSERT_TRUE(t.wait_text("L1 map of device 1", s)) << s;
  t.keys({"Tab"});
  ASSERT_TRUE(t.wait_text("[1 Overview]", s)) << s;

  // Resizing: smaller, tiny, and back; the screen always fits and keeps its footer.
  t.resize(72, 20);
  ASSERT_TRUE(t.wait_for([](const std::string& x) {
    return fits(x, 72) && x.find("q quit") != std::string::npos &&
           x.find("ttmem top") != std::string::npos && lines_of(x).size() <= 20;
  }, s)) << s;
  t.resize(30, 6);
  ASSERT_TRUE(t.wait_text("terminal too small", s)) << s;
  EXPECT_TRUE(fits(s, 30)) << s;
  t.resize(120, 40);
  ASSERT_TRUE(t.wait_text("Processes (1)", s)) << s;
  EXPECT_TRUE(fits(s, 120)) << s;

  // 'q' ends the program with exit status 0.
  t.keys({"q"});
  EXPECT_EQ(exit_status(dir.path()), "0");
}

// Started before the workload, the compatibility name shows it once it appears, with the prototype monitor's
// flags; -d limits it to the devices asked for.
// A directory a ttmemd serves: the live overview is that daemon's (the header says so), the
// buffers view reads the segments itself, and a daemon that stops answering leaves the monitor
// reading them too. --direct never asks.
TEST(TopTmux, OverviewComesFromTheTtmemdServingTheDirectory) {
  if (!have_tmux()) GTEST_SKIP() << kNoTmux;
  TempDir dir;
  auto load = start_workload(dir.path());
  Child daemon({TTMEMD, "--dir", dir.path(), "--listen", "127.0.0.1:0", "--interval", "100"}, {});
  auto line = daemon.read_line(10000);
  ASSERT_TRUE(line && line->rfind("ttmemd listening on ", 0) == 0) << line.value_or("(none)");
  const std::string file = dir.path() + "/ttmemd.json";
  for (int i = 0; i < 200 && !std::filesystem::exists(file); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(std::filesystem::exists(file));

  Tmux t(dir.path());
  t.start(top_command(TTMEM_CLI, dir.path(), "top -r 100"), 160, 40);
  std::string s;
  ASSERT_TRUE(t.wait_all({"8 devices", "via ttmemd", "llama-decode"}, s)) << s;
  t.keys({"2"});
  ASSERT_TRUE(t.wait_for([](const std::string& x) {
    return x.find("[2 Buffers]") != std::string::npos && x.find("via ttmemd") == std::string::npos &&
           x.find("embedding") != std::string::npos;
  }, s)) << s;
  t.keys({"1"});
  ASSERT_TRUE(t.wait_text("via ttmemd", s)) << s;
  daemon.kill(SIGKILL);
  daemon.wait();
  ASSERT_TRUE(t.wait_for([](const std::string& x) {
    return x.find("via ttmemd") == std::string::npos && x.find("8 devices") != std::string::npos;
  }, s)) << s;
  t.keys({"q"});
  ASSERT_EQ(exit_status(dir.path()), "0");
  std::filesystem::remove(dir.path() + "/status");

  Child again({TTMEMD, "--dir", dir.path(), "--listen", "127.0.0.1:0"}, {});
  ASSERT_TRUE(again.read_line(10000));
  for (int i = 0; i < 200 && !std::filesystem::exists(file); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Tmux t2(dir.path());
  t2.start(top_command(TTMEM_CLI, dir.path(), "top --direct -r 100"), 160, 40);
  ASSERT_TRUE(t2.wait_text("8 devices", s)) << s;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(t2.screen().find("via ttmemd"), std::string::npos) << t2.screen();
  t2.keys({"q"});
  EXPECT_EQ(exit_status(dir.path()), "0");
}

TEST(TopTmux, CompatibilityNameFollowsAWorkloadThatStartsLater) {
  if (!have_tmux()) GTEST_SKIP() << kNoTmux;
  TempDir dir;
  Tmux t(dir.path());
  t.start(top_command(TTMEM_COMPAT, dir.path(), "-a -r 100"), 120, 40);
  std::string s;
  ASSERT_TRUE(t.wait_text("No devices", s)) << s;
  auto load = start_workload(dir.path());
  ASSERT_TRUE(t.wait_for([](const std::string& x) {
    return x.find("8 devices") != std::string::npos && x.find("llama-decode") != std::string::npos;
  }, s)) << s;
  t.keys({"q"});
  ASSERT_EQ(exit_status(dir.path()), "0");
  std::filesystem::remove(dir.path() + "/status");

  Tmux t2(dir.path());
  t2.start(top_command(TTMEM_COMPAT, dir.path(), "-d 6 -r 100"), 120, 40);
  ASSERT_TRUE(t2.wait_for([](const std::string& x) {
    return x.find("1 device ") != std::string::npos && x.find("Device 6") != std::string::npos;
  }, s)) << s;
  EXPECT_EQ(s.find("Device 0"), std::string::npos) << s;
  // Ctrl-C (SIGINT, handled like the SIGTERM `make demo` sends) restores the terminal, exits 0.
  t2.tmux({"send-keys", "C-c"});
  EXPECT_EQ(exit_status(dir.path()), "0");
}

}  // namespace
}  // namespace ttmem::test
