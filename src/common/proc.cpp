#include "common/proc.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/text.h"

namespace ttmem {
namespace {

// Reads a small /proc file without iostreams or heap growth beyond `out`.
ssize_t read_small_file(const char* path, char* out, size_t cap) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t used = 0;
  while (used < cap) {
    ssize_t n = ::read(fd, out + used, cap - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += size_t(n);
  }
  ::close(fd);
  return ssize_t(used);
}

}  // namespace

namespace {

struct ProcStat {
  char state;
  uint64_t start_time;
};

std::optional<ProcStat> read_proc_stat(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
  char buf[1024];
  ssize_t n = read_small_file(path, buf, sizeof buf - 1);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  // The command name (field 2) may contain spaces and parentheses: skip to the last ')'.
  char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ' || p[2] == '\0') return std::nullopt;
  ProcStat out{p[2], 0};
  ++p;
  // After ')' come fields 3.. separated by single spaces; start time is field 22.
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p + 1, ' ');
    if (p == nullptr) return std::nullopt;
  }
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(p + 1, &end, 10);
  if (end == p + 1 || errno != 0) return std::nullopt;
  out.start_time = uint64_t(v);
  return out;
}

}  // namespace

std::optional<uint64_t> process_start_time(pid_t pid) {
  auto st = read_proc_stat(pid);
  if (!st) return std::nullopt;
  return st->start_time;
}

std::string process_cmdline(pid_t pid, size_t max_bytes) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/cmdline", int(pid));
  std::string buf(max_bytes, '\0');
  ssize_t n = read_small_file(path, buf.data(), buf.size());
  if (n <= 0) return {};
  buf.resize(size_t(n));
  while (!buf.empty() && buf.back() == '\0') buf.pop_back();
  // Arguments are separated by NULs; any byte sequence is a valid argument.
  return printable_text(buf, ' ');
}

std::optional<uid_t> process_uid(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d", int(pid));
  struct stat st;
  if (::stat(path, &st) != 0) return std::nullopt;
  return st.st_uid;
}

Liveness process_liveness(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return Liveness::Dead;
  // A zombie has exited: its buffers are gone even though its parent has not reaped it yet.
  auto st = read_proc_stat(pid);
  if (!st || st->start_time != start_time || st->state == 'Z' || st->state == 'X') {
    return Liveness::Dead;
  }
  return Liveness::Alive;
}

std::string default_segment_dir() {
  const char* env = std::getenv("TTMEM_DIR");
  if (env != nullptr && env[0] != '\0') return env;
  return "/dev/shm/ttmem-" + std::to_string(::getuid());
}

bool make_private_dirs(const std::string& dir) {
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      std::string partial = dir.substr(0, i);
      if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) return false;
    }
  }
  struct stat st;
  return ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace ttmem
