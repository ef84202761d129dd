// ttmem report: a recording as one self-contained HTML page (src/cli/report/report.h).
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/report/report.h"

namespace ttmem::cli {

using collector::read_recording;

namespace {

struct ReportArgs {
  std::string input;
  std::string output = "report.html";
  size_t points = 600;
};

void write_file(const std::string& path, const std::string& text) {
  // Owner-only, like the recording it shows: it names every process and buffer.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw CliError(fmt::format("cannot create {}: {}; choose another -o path", path,
                               std::strerror(errno)));
  }
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      throw CliError(fmt::format("cannot write {}: {} (is the disk full?)", path,
                                 std::strerror(n < 0 ? errno : ENOSPC)));
    }
    done += size_t(n);
  }
  if (::close(fd) != 0) {
    throw CliError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  }
}

void report(const ReportArgs& a) {
  if (a.points < 10 || a.points > 100'000) {
    throw CliError("--points must be between 10 and 100000", 2);
  }
  std::string error;
  auto r = read_recording(a.input, &error);
  if (!r) throw CliError(error);
  if (r->truncated) {
    std::fprintf(stderr, "ttmem report: %s ends in a partly written block (the recorder was "
                 "stopped abruptly); reporting what precedes it\n", a.input.c_str());
  }
  report::ReportOptions o;
  o.title = std::filesystem::path(a.input).filename().string();
  o.timeline_points = a.points;
  const std::string html = report::render_html(*r, o);
  write_file(a.output, html);
  std::fprintf(stderr, "ttmem report: %s (%.1f MB)\n", a.output.c_str(),
               double(html.size()) / 1e6);
}

}  // namespace

void add_report_command(CLI::App& app, GlobalOptions&) {
  auto* cmd = app.add_subcommand(
      "report", "A recording as one self-contained HTML page: timelines, peaks, leaks, L1 map");
  auto a = std::make_shared<ReportArgs>();
  cmd->add_option("recording", a->input, "Recording file from `ttmem record`")->required();
  cmd->add_option("-o,--output", a->output, "HTML file to write")->capture_default_str();
  cmd->add_option("--points", a->points,
                  "Time buckets per chart (each keeps its exact peak)")
      ->capture_default_str()
      ->check(number_up_to(1e6));
  cmd->callback([a] { report(*a); });
}

}  // namespace ttmem::cli
