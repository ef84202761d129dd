// Process helpers for integration tests: real child processes with pipes, real CLI runs.
#pragma once

#include <sys/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace ttmem::test {

// Under AddressSanitizer or ThreadSanitizer freed memory sits in a quarantine and shadow memory
// grows with use, so resident memory says nothing about leaks: the memory-flatness checks run in
// the normal build only (leaks there are LeakSanitizer's job).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kResidentMemoryIsMeaningful = false;
#else
inline constexpr bool kResidentMemoryIsMeaningful = true;
#endif

// ThreadSanitizer makes ttmem 5 to 15 times slower: a test whose size is what makes it slow
// scales that size down there (and says so), and asserts the same behaviour.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kUnderThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kUnderThreadSanitizer = true;
#else
inline constexpr bool kUnderThreadSanitizer = false;
#endif
#else
inline constexpr bool kUnderThreadSanitizer = false;
#endif

// A child process with its stdin and stdout connected to pipes.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env);
  ~Child();  // kills (SIGKILL) and reaps if still running
  pid_t pid() const { return pid_; }
  // The next line of stdout (without '\n'), or nullopt on EOF or timeout.
  std::optional<std::string> read_line(int timeout_ms = 20000);
  // Reads lines until one equals `line`; false on EOF/timeout.
  bool expect_line(const std::string& line, int timeout_ms = 20000);
  void write_line(const std::string& line);
  void close_stdin();
  // Waits for exit; returns the exit code, or 128+signal.
  int wait();
  void kill(int sig);

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  std::string buffered_;
  bool reaped_ = false;
};

struct RunResult {
  int exit_code;
  std::string out;
  std::string err;
};

// Runs a command to completion with extra environment variables.
RunResult run(const std::vector<std::string>& argv,
              const std::map<std::string, std::string>& env = {});

// `ttmem --dir DIR ARGS... ` with JSON output parsed (asserting exit code 0).
nlohmann::json ttmem_json(const std::string& dir, std::vector<std::string> args);

nlohmann::json read_json_file(const std::string& path);

// Resident memory of a process (VmRSS), from /proc; 0 if it is gone.
uint64_t rss_bytes(pid_t pid);
// Its resident-memory high-water mark (VmHWM).
uint64_t peak_rss_bytes(pid_t pid);

}  // namespace ttmem::test
