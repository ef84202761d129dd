// The Galaxy serving load for benchmarks: `ttmem sim llama-70b-galaxy --processes
// N` (Llama-3.1-70B on 32 chips, 18,144 live buffers a process, a decode op every 50 ms per
// process) started into a segment directory and held while the benchmark runs.
//
// Sizes: 6 processes hold 108,864 live buffers (the "100,000" figures), 56 hold 1,016,064 and 64
// hold 1,161,216 (the "1,000,000" figures). The million-buffer runs take minutes on a 2 vCPU
// machine, so benchmarks register them only when TTMEM_BENCH_GALAXY_MILLION=1.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace ttmem::bench {

inline constexpr int kGalaxyProcesses100k = 6;
inline constexpr int kGalaxyProcesses1M = 56;

// Processes to run the Galaxy benchmarks with: 6, and 56 when TTMEM_BENCH_GALAXY_MILLION=1;
// TTMEM_BENCH_GALAXY_PROCESSES=N runs N alone (64: the 32 chips and 64 processes of a full
// serving host).
inline std::vector<int> galaxy_process_counts() {
  if (const char* n = std::getenv("TTMEM_BENCH_GALAXY_PROCESSES")) {
    const int processes = std::atoi(n);
    if (processes >= 1 && processes <= 256) return {processes};
  }
  const char* million = std::getenv("TTMEM_BENCH_GALAXY_MILLION");
  if (million != nullptr && std::strcmp(million, "1") == 0) {
    return {kGalaxyProcesses100k, kGalaxyProcesses1M};
  }
  return {kGalaxyProcesses100k};
}

class GalaxyLoad {
 public:
  // Starts `cli` sim in `dir` with `processes` processes and waits until all are loaded; ok()
  // says whether they were.
  GalaxyLoad(const std::string& cli, const std::string& dir, int processes) : dir_(dir) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    const std::string n = std::to_string(processes);
    std::vector<std::string> args = {cli,           "--dir",       dir,     "sim",
                                     "llama-70b-galaxy", "--processes", n,    "--speed",
                                     "0",           "--hold",      "86400"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    const std::string want = n + " of " + n + " processes loaded";
    std::string line;
    char c;
    while (pid_ > 0 && ::read(out[0], &c, 1) == 1) {
      if (c != '\n') {
        line += c;
        continue;
      }
      if (line == want) {
        ok_ = true;
        break;
      }
      line.clear();
    }
    // Its later output (freeing, at the end) goes nowhere; the pipe stays open so it never
    // writes into a closed one.
    out_fd_ = out[0];
  }
  ~GalaxyLoad() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);  // its copies end with it (PR_SET_PDEATHSIG)
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    remove_segments_of_ended_processes();
  }
  GalaxyLoad(const GalaxyLoad&) = delete;
  GalaxyLoad& operator=(const GalaxyLoad&) = delete;

  bool ok() const { return ok_; }

 private:
  // The copies die holding their buffers; their segments would make every later reader reap a
  // hundred thousand leak records. Nothing in the benchmark wants those: they are removed.
  void remove_segments_of_ended_processes() {
    for (int attempt = 0; attempt < 100; ++attempt) {
      bool all_gone = true;
      if (DIR* d = ::opendir(dir_.c_str())) {
        while (dirent* e = ::readdir(d)) {
          int pid = 0;
          if (std::sscanf(e->d_name, "ttmem-%d-", &pid) != 1 || pid == ::getpid()) continue;
          if (::kill(pid, 0) == 0) {
            all_gone = false;
            continue;
          }
          ::unlink((dir_ + "/" + e->d_name).c_str());
        }
        ::closedir(d);
      }
      if (all_gone) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  std::string dir_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool ok_ = false;
};

}  // namespace ttmem::bench
