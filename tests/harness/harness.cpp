#include "harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

namespace ttmem::test {

namespace fs = std::filesystem;

namespace {

pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            int stdin_fd, int stdout_fd, int stderr_fd) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  if (stdin_fd >= 0) ::dup2(stdin_fd, 0);
  if (stdout_fd >= 0) ::dup2(stdout_fd, 1);
  if (stderr_fd >= 0) ::dup2(stderr_fd, 2);
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
  ::_exit(127);
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string drain_fd(int fd) {
  std::string s;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, size_t(n));
  return s;
}

}  // namespace

Child::Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  pid_ = spawn(argv, env, in[0], out[1], -1);
  ::close(in[0]);
  ::close(out[1]);
  in_ = in[1];
  out_ = out[0];
}

Child::~Child() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    wait();
  }
  if (in_ >= 0) ::close(in_);
  if (out_ >= 0) ::close(out_);
}

std::optional<std::string> Child::read_line(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    size_t nl = buffered_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, int(left)) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    buffered_.append(buf, size_t(n));
  }
}

bool Child::expect_line(const std::string& line, int timeout_ms) {
  while (auto l = read_line(timeout_ms)) {
    if (*l == line) return true;
  }
  return false;
}

void Child::write_line(const std::string& line) {
  std::string s = line + "\n";
  ssize_t n = ::write(in_, s.data(), s.size());
  (void)n;
}

void Child::close_stdin() {
  if (in_ >= 0) ::close(in_);
  in_ = -1;
}

int Child::wait() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  return decode_status(status);
}

void Child::kill(int sig) { ::kill(pid_, sig); }

RunResult run(const std::vector<std::string>& argv,
              const std::map<std::string, std::string>& env) {
  // Output goes to temporary files, so a large JSON document can never fill a pipe and stall.
  FILE* out = std::tmpfile();
  FILE* err = std::tmpfile();
  pid_t pid = spawn(argv, env, -1, fileno(out), fileno(err));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  RunResult r{decode_status(status), {}, {}};
  ::lseek(fileno(out), 0, SEEK_SET);
  ::lseek(fileno(err), 0, SEEK_SET);
  r.out = drain_fd(fileno(out));
  r.err = drain_fd(fileno(err));
  std::fclose(out);
  std::fclose(err);
  return r;
}

nlohmann::json ttmem_json(const std::string& dir, std::vector<std::string> args) {
  std::vector<std::string> argv = {TTMEM_CLI, "--dir", dir};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = run(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return nlohmann::json::parse(s.str());
}

namespace {

// A "Field:   N kB" line of /proc/PID/status, in bytes; 0 when absent.
uint64_t status_bytes(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10) * 1024;
    }
  }
  return 0;
}

}  // namespace

uint64_t rss_bytes(pid_t pid) { return status_bytes(pid, "VmRSS"); }
uint64_t peak_rss_bytes(pid_t pid) { return status_bytes(pid, "VmHWM"); }

}  // namespace ttmem::test
