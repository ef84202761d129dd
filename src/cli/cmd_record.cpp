// ttmem record: capture every tracked process's event stream into a recording file, with
// periodic checkpoints; ttmem export: turn a recording into Perfetto trace JSON, JSON or CSV.
#include <CLI/CLI.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "collector/recording.h"
#include "common/clock.h"

namespace ttmem::cli {
namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct RecordArgs {
  std::string output;
  double duration_s = 0;
  double checkpoint_s = 5;
  std::vector<std::string> command;
};

pid_t spawn(const std::vector<std::string>& argv, const std::string& dir) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::setenv("TTMEM_DIR", dir.c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execvp(args[0], args.data());
  std::fprintf(stderr, "ttmem record: cannot run %s: %s\n", args[0], std::strerror(errno));
  ::_exit(127);
}

int record(const GlobalOptions& global, const RecordArgs& a) {
  require_local(global, "ttmem record");
  if (a.checkpoint_s < 0.1 || a.checkpoint_s > 3600) {
    throw CliError("--checkpoint must be between 0.1 and 3600 seconds", 2);
  }
  CollectorOptions o = collector_options(global);
  o.drain_events = true;
  try {
    Collector collector(o);
    Recorder recorder(collector, a.output, uint32_t(a.checkpoint_s * 1000));
    struct sigaction sa{};
    sa.sa_handler = on_signal;  // no SA_RESTART: the wait returns at once
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    pid_t child = a.command.empty() ? -1 : spawn(a.command, collector.dir());
    int exit_code = 0;
    uint64_t deadline = a.duration_s > 0 ? monotonic_ns() + uint64_t(a.duration_s * 1e9) : 0;
    uint64_t started = monotonic_ns();
    collector.refresh();
    recorder.after_refresh(started);
    bool running = true;
    while (running) {
      uint64_t before = monotonic_ns();
      collector.wait(50);
      recorder.after_refresh(before);
      if (g_stop || (deadline != 0 && monotonic_ns() >= deadline)) running = false;
      if (child > 0) {
        int status = 0;
        if (::waitpid(child, &status, WNOHANG) == child) {
          exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          running = false;
        }
      }
    }
    uint64_t last = monotonic_ns();
    collector.refresh();  // the last events, and the reaping of what just ended
    recorder.finish(last);
    std::fprintf(stderr, "ttmem record: %llu events written to %s\n",
                 (unsigned long long)recorder.events(), a.output.c_str());
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
  cmd->add_option("--duration", a->duration_s, "Stop after this many seconds (0: no limit)");
  cmd->add_option("--checkpoint", a->checkpoint_s,
                  "Seconds between state checkpoints (seek points)")
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
  ex->add_option("--at", *at, "With --format json: the live buffers this many seconds in");
  ex->callback([input, format, output, at] { export_recording(*input, *format, *output, *at); });
}

}  // namespace ttmem::cli
