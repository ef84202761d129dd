// ttmem record: capture every tracked process's event stream into a recording file, with
// periodic checkpoints; ttmem export: turn a recording into Perfetto trace JSON, JSON or CSV.
#include <CLI/CLI.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <fstream>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "collector/recording.h"
#include "common/clock.h"

namespace ttmem::cli {

using collector::Collector;
using collector::CollectorOptions;
using collector::export_csv;
using collector::export_json;
using collector::export_perfetto;
using collector::export_state_json;
using collector::read_recording;
using collector::Recorder;
using common::monotonic_ns;

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct RecordArgs {
  std::string output;
  double duration_s = 0;
  double checkpoint_s = 5;
  uint32_t ring_events = 262'144;
  std::vector<std::string> command;
};

// Between refreshes (new segments, ended processes, checkpoints) the recorder only drains.
constexpr uint64_t kRefreshNs = 50'000'000;

// The recording thread is running by now, so everything the child needs is prepared before
// fork(): between fork and exec the child may only make async-signal-safe calls (another
// thread could have held the allocator's lock at the fork).
pid_t spawn(const std::vector<std::string>& argv, const std::string& dir, uint32_t ring_events,
            bool recorded) {
  std::vector<std::string> env;
  bool ring_sized = false;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view v(*e);
    if (v.starts_with("TTMEM_DIR=") || v.starts_with("TTMEM_RECORD_ACK=")) continue;
    ring_sized |= v.starts_with("TTMEM_RING_EVENTS=");
    env.emplace_back(v);
  }
  env.push_back("TTMEM_DIR=" + dir);
  // Lossless: the program waits for the recorder rather than overwrite an event it has not
  // read (RecordAck, protocol/segment.h). Large rings make that wait rare: the recorder,
  // draining continuously, only falls a ring behind when it is descheduled for a while. A ring
  // the user sized is left alone. When the recording already failed, the program runs as if
  // nothing recorded it.
  if (recorded) env.push_back("TTMEM_RECORD_ACK=1");
  if (!ring_sized) env.push_back("TTMEM_RING_EVENTS=" + std::to_string(ring_events));
  std::vector<char*> envp, args;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string failed = "ttmem record: cannot run " + argv[0] + "\n";
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::execvpe(args[0], args.data(), envp.data());
  [[maybe_unused]] ssize_t n = ::write(2, failed.data(), failed.size());
  ::_exit(127);
}

// The recording thread: owns the collector and the recorder. It drains every ring as fast as
// events arrive, refreshes every kRefreshNs (or at once when a segment appears or a process
// ends), and after a gap takes a checkpoint at once.
void record_until(Collector& collector, Recorder& recorder, const std::atomic<bool>& stop,
                  std::atomic<bool>& started) {
  auto refresh = [&](bool woken) {
    const uint64_t before = monotonic_ns();
    if (woken) {
      collector.wait(0);  // consumes the wake-up, then refreshes
    } else {
      collector.refresh();
    }
    recorder.after_refresh(before);
    return before + kRefreshNs;
  };
  uint64_t next_refresh = refresh(false);
  started = true;  // what runs from now on is recorded from its first event
  while (!stop.load(std::memory_order_relaxed)) {
    uint64_t dropped = 0;
    const uint64_t drained = collector.drain_events(&dropped);
    pollfd p{collector.fd(), POLLIN, 0};
    // Idle: sleep until something happens, at most a millisecond (a ring fills no faster
    // than a client writes, and the smallest ring the recorder sizes holds far more).
    const bool woken = ::poll(&p, 1, drained == 0 ? 1 : 0) > 0;
    if (woken || dropped > 0 || monotonic_ns() >= next_refresh) next_refresh = refresh(woken);
  }
  const uint64_t last = monotonic_ns();
  collector.refresh();  // the last events, and the reaping of what just ended
  recorder.finish(last);
}

int record(const GlobalOptions& global, const RecordArgs& a) {
  require_local(global, "ttmem record");
  if (a.checkpoint_s < 0.1 || a.checkpoint_s > 3600) {
    throw CliError("--checkpoint must be between 0.1 and 3600 seconds", 2);
  }
  if (a.ring_events < protocol::kMinRingCapacity || a.ring_events > protocol::kMaxRingCapacity) {
    throw CliError(fmt::format("--ring-events must be between {} and {}",
                               protocol::kMinRingCapacity, protocol::kMaxRingCapacity), 2);
  }
  CollectorOptions o = collector_options(global);
  o.drain_events = true;
  o.acknowledge_events = true;
  // The program it starts creates the directory anyway; made now, it is watched from the start.
  o.create_dir = !a.command.empty();
  try {
    Collector collector(o);
    Recorder recorder(collector, a.output, uint32_t(a.checkpoint_s * 1000));
    struct sigaction sa{};
    sa.sa_handler = on_signal;  // no SA_RESTART: the wait returns at once
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    std::atomic<bool> stop{false}, started{false};
    std::exception_ptr failure;
    std::thread recording([&] {
      try {
        record_until(collector, recorder, stop, started);
      } catch (...) {
        failure = std::current_exception();
      }
      stop = true;
    });
    while (!started && !stop) ::usleep(1000);
    // The program runs even if the recording failed (a full disk): never take it down with us.
    pid_t child = a.command.empty() ? -1 : spawn(a.command, collector.dir(), a.ring_events, !stop);
    int exit_code = 0;
    const uint64_t deadline =
        a.duration_s > 0 ? monotonic_ns() + uint64_t(a.duration_s * 1e9) : 0;
    while (!stop) {
      if (g_stop || (deadline != 0 && monotonic_ns() >= deadline)) break;
      if (child > 0) {
        int status = 0;
        if (::waitpid(child, &status, WNOHANG) == child) {
          exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          break;
        }
      }
      ::usleep(5000);
    }
    stop = true;
    recording.join();
    if (failure) std::rethrow_exception(failure);
    std::fprintf(stderr, "ttmem record: %llu events written to %s\n",
                 (unsigned long long)recorder.events(), a.output.c_str());
    if (recorder.dropped() > 0) {
      std::fprintf(stderr,
                   "ttmem record: %llu events were overwritten before they could be recorded "
                   "(marked as gaps; totals stay exact from the next checkpoint). Start the "
                   "program under `ttmem record -- CMD`, or give it larger rings with "
                   "TTMEM_RING_EVENTS\n",
                   (unsigned long long)recorder.dropped());
    }
    return exit_code;
  } catch (const std::runtime_error& e) {
    throw CliError(e.what());
  }
}

void export_recording(const std::string& input, const std::string& format,
                      const std::string& output, std::optional<double> at_s) {
  std::string error;
  auto r = read_recording(input, &error);
  if (!r) throw CliError(error);
  if (r->truncated) {
    std::fprintf(stderr, "ttmem export: %s ends in a partly written record (the recorder was "
                 "stopped abruptly); exporting what precedes it\n", input.c_str());
  }
  std::string text;
  if (at_s) {
    if (format != "json") throw CliError("--at works with --format json", 2);
    text = export_state_json(*r, uint64_t(*at_s * 1e9));
  } else if (format == "perfetto") {
    text = export_perfetto(*r);
  } else if (format == "json") {
    text = export_json(*r);
  } else {
    text = export_csv(*r);
  }
  if (output.empty() || output == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return;
  }
  std::ofstream out(output, std::ios::binary);
  out << text;
  if (!out) throw CliError(fmt::format("cannot write {}; choose another -o path", output));
}

}  // namespace

void add_record_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "record", "Record every tracked process's allocations into a file (Ctrl-C stops)");
  auto a = std::make_shared<RecordArgs>();
  cmd->add_option("-o,--output", a->output, "Recording file to write")->required();
  cmd->add_option("--duration", a->duration_s, "Stop after this many seconds (0: no limit)")
      ->check(number_up_to(1e9));
  cmd->add_option("--checkpoint", a->checkpoint_s,
                  "Seconds between state checkpoints (seek points)")
      ->capture_default_str();
  cmd->add_option("--ring-events", a->ring_events,
                  "Ring capacity (events per device) for the program it runs; a ring the "
                  "environment sizes (TTMEM_RING_EVENTS) is kept")
      ->capture_default_str();
  cmd->add_option("command", a->command,
                  "Program to run with TTMEM_DIR set; recording stops when it exits "
                  "(write it after --)");
  cmd->callback([&global, a] {
    int rc = record(global, *a);
    if (rc != 0) throw CliError(fmt::format("the recorded command exited with {}", rc), rc);
  });

  auto* ex = app.add_subcommand("export", "Convert a recording: Perfetto trace JSON, JSON or CSV");
  auto input = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("perfetto");
  auto output = std::make_shared<std::string>();
  auto at = std::make_shared<std::optional<double>>();
  ex->add_option("recording", *input, "Recording file from `ttmem record`")->required();
  ex->add_option("--format,-f", *format, "perfetto (ui.perfetto.dev), json or csv")
      ->check(CLI::IsMember({"perfetto", "json", "csv"}))
      ->capture_default_str();
  ex->add_option("-o,--output", *output, "Output file (default: standard output)");
  ex->add_option("--at", *at, "With --format json: the live buffers this many seconds in")
      ->check(number_up_to(1e9));
  ex->callback([input, format, output, at] { export_recording(*input, *format, *output, *at); });
}

}  // namespace ttmem::cli
