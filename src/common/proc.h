// Facts about processes from /proc, used to name segments and to tell a live process from a dead
// one whose PID was reused.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace ttmem::common {

// Field 22 of /proc/PID/stat: start time in clock ticks since boot. Together with the PID it
// identifies a process for the lifetime of the system.
std::optional<uint64_t> process_start_time(pid_t pid);

// The inode of /proc/self/ns/pid: names this process's PID namespace. 0 when unknown (no /proc).
// Two processes see the same PIDs only when these are equal.
uint64_t own_pid_namespace();

// A realtime (ns since the epoch) as clock ticks since boot, the unit of process start times.
uint64_t realtime_to_boot_ticks(int64_t realtime_ns);

// argv joined by spaces, at most max_bytes; empty when unreadable.
std::string process_cmdline(pid_t pid, size_t max_bytes = 1023);

// The real UID owning /proc/PID, if the process exists.
std::optional<uid_t> process_uid(pid_t pid);

// The real and effective UIDs of PID from /proc/PID/status, which anyone may read.
struct ProcessUids {
  uid_t real;
  uid_t effective;
};
std::optional<ProcessUids> process_uids(pid_t pid);

// Whether PID holds the file (dev, ino) open, as a descriptor (/proc/PID/fd) or a mapping
// (/proc/PID/maps). Unreadable when this process may not inspect PID: the kernel shows another
// user's descriptors and mappings only to a process with CAP_SYS_PTRACE.
enum class Holding { Held, NotHeld, Unreadable };
Holding process_holds_file(pid_t pid, dev_t dev, ino_t ino);

// A pidfd for PID (readable once the process has ended), or -1 with errno (ENOSYS on kernels
// before 5.3). The caller checks the start time afterwards if PID may have been reused.
int open_pidfd(pid_t pid);

enum class Liveness { Alive, Dead };

// Alive only if PID exists and its start time equals `start_time` (PID reuse is death).
Liveness process_liveness(pid_t pid, uint64_t start_time);

// The default segment directory for this user: /dev/shm/ttmem-<uid>, or $TTMEM_DIR.
std::string default_segment_dir();

// Creates `dir` and its missing parents with mode 0700 (owner only). True if it is a directory
// afterwards.
bool make_private_dirs(const std::string& dir);

}  // namespace ttmem::common
