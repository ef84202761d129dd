// Child processes for benchmarks: a program started with its output on a descriptor, and a
// ttmemd serving a directory for as long as the benchmark runs.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace ttmem::bench {

// Starts args[0] with `stdout_fd` as its standard output; -1 if it could not. posix_spawn
// (vfork-like) rather than fork: forking this process, which maps a large segment and a large
// heap, would copy its page tables and bill a shell-started command for work it never does.
inline pid_t spawn(const std::vector<std::string>& args, int stdout_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// A ttmemd on `dir`, listening on a free port, stopped at destruction.
class Daemon {
 public:
  // full_reads: the daemon as it was before incremental collection (`--full-reads`).
  Daemon(const char* binary, const std::string& dir, bool full_reads = false) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    std::vector<std::string> args = {binary, "--dir", dir, "--listen", "127.0.0.1:0"};
    if (full_reads) args.push_back("--full-reads");
    pid_ = spawn(args, fds[1]);
    ::close(fds[1]);
    // "ttmemd listening on http://127.0.0.1:PORT"
    std::string line;
    char c;
    while (line.find('\n') == std::string::npos && ::read(fds[0], &c, 1) == 1) line += c;
    ::close(fds[0]);
    auto colon = line.rfind(':');
    port_ = colon == std::string::npos ? 0 : std::atoi(line.c_str() + colon + 1);
  }
  ~Daemon() {
    if (pid_ > 0) {  // never kill(-1)
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  int port() const { return port_; }
  // CPU seconds (user + system) the daemon has used so far, from /proc.
  double cpu_seconds() const {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid_) + "/stat").c_str(), "r");
    if (f == nullptr) return 0;
    char buf[1024] = {};
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    const char* p = std::strrchr(buf, ')');
    if (n == 0 || p == nullptr) return 0;
    // Fields after the command: state is field 3; utime and stime are fields 14 and 15.
    unsigned long long utime = 0, stime = 0;
    std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime);
    return double(utime + stime) / double(::sysconf(_SC_CLK_TCK));
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace ttmem::bench
