#include "common/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/text.h"

namespace ttmem::common {
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

// Reads /proc/PID/<name> into buf, NUL-terminated. False when it is unreadable or empty.
bool read_proc_file(pid_t pid, const char* name, char* buf, size_t cap) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/%s", int(pid), name);
  ssize_t n = read_small_file(path, buf, cap - 1);
  if (n <= 0) return false;
  buf[n] = '\0';
  return true;
}

std::optional<ProcStat> read_proc_stat(pid_t pid) {
  char buf[1024];
  if (!read_proc_file(pid, "stat", buf, sizeof buf)) return std::nullopt;
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

uint64_t realtime_to_boot_ticks(int64_t realtime_ns) {
  timespec real{}, boot{};
  ::clock_gettime(CLOCK_REALTIME, &real);
  ::clock_gettime(CLOCK_BOOTTIME, &boot);  // start times count from boot, suspend included
  const int64_t booted_at = (int64_t(real.tv_sec) - boot.tv_sec) * 1'000'000'000 +
                            (int64_t(real.tv_nsec) - boot.tv_nsec);
  const int64_t since_boot = std::max<int64_t>(realtime_ns - booted_at, 0);
  return uint64_t(since_boot / 1'000'000 * ::sysconf(_SC_CLK_TCK) / 1000);
}

uint64_t own_pid_namespace() {
  struct stat st;
  return ::stat("/proc/self/ns/pid", &st) == 0 ? uint64_t(st.st_ino) : 0;
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

std::optional<ProcessUids> process_uids(pid_t pid) {
  char buf[8192];
  if (!read_proc_file(pid, "status", buf, sizeof buf)) return std::nullopt;
  // "Uid:\t<real>\t<effective>\t<saved>\t<filesystem>"
  const char* line = std::strstr(buf, "\nUid:");
  if (line == nullptr) return std::nullopt;
  unsigned long real = 0, effective = 0;
  if (std::sscanf(line + 5, "%lu %lu", &real, &effective) != 2) return std::nullopt;
  return ProcessUids{uid_t(real), uid_t(effective)};
}

namespace {

// Scans /proc/PID/fd for a descriptor of (dev, ino).
Holding holds_as_descriptor(pid_t pid, dev_t dev, ino_t ino) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/fd", int(pid));
  DIR* d = ::opendir(path);
  if (d == nullptr)
    return errno == EACCES || errno == EPERM ? Holding::Unreadable : Holding::NotHeld;
  Holding found = Holding::NotHeld;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    // Following the descriptor's link stats the open file itself, even if it was unlinked.
    if (::fstatat(::dirfd(d), e->d_name, &st, 0) == 0 && st.st_dev == dev && st.st_ino == ino) {
      found = Holding::Held;
      break;
    }
  }
  ::closedir(d);
  return found;
}

// Scans /proc/PID/maps ("start-end perms offset major:minor inode path") for a mapping of
// (dev, ino).
Holding holds_as_mapping(pid_t pid, dev_t dev, ino_t ino) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/maps", int(pid));
  FILE* f = std::fopen(path, "re");
  if (f == nullptr)
    return errno == EACCES || errno == EPERM ? Holding::Unreadable : Holding::NotHeld;
  Holding found = Holding::NotHeld;
  char line[4096];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned major = 0, minor = 0;
    unsigned long long inode = 0;
    if (std::sscanf(line, "%*s %*s %*s %x:%x %llu", &major, &minor, &inode) == 3 &&
        inode == uint64_t(ino) && makedev(major, minor) == dev) {
      found = Holding::Held;
      break;
    }
  }
  std::fclose(f);
  return found;
}

}  // namespace

Holding process_holds_file(pid_t pid, dev_t dev, ino_t ino) {
  Holding as_fd = holds_as_descriptor(pid, dev, ino);
  if (as_fd == Holding::Held) return as_fd;
  Holding as_map = holds_as_mapping(pid, dev, ino);
  if (as_map == Holding::Held) return as_map;
  return as_fd == Holding::Unreadable && as_map == Holding::Unreadable ? Holding::Unreadable
                                                                       : Holding::NotHeld;
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

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return int(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

}  // namespace ttmem::common
