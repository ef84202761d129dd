// The client's slow paths: creating and mapping the segment at the first call, a forked child's
// own segment, and marking (or removing) the segment at exit. None runs per event; the hot path
// is client.cpp.
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "client/fast_clock.h"
#include "client/state.h"
#include "common/access.h"
#include "common/clock.h"
#include "common/proc.h"

namespace ttmem::client {

using common::default_segment_dir;
using common::monotonic_ns;
using common::own_pid_namespace;
using common::prepare_segment_dir;
using common::process_cmdline;
using common::process_start_time;
using common::realtime_ns;
using common::resolve_group;
using common::share_file_with_group;

bool commit_range(uint64_t offset, uint64_t len) {
  int rc = ::posix_fallocate(g_state.fd, off_t(offset), off_t(len));
  if (rc != 0) errno = rc;  // posix_fallocate returns the error instead of setting errno
  return rc == 0;
}

namespace {

void report_setup_problem(const std::string& text);

// A whole number from the environment, within [lo, hi]. A value that is not a whole number
// (`12abc`) or is out of range is not silently replaced: one line says what is used instead.
uint32_t env_u32(const char* name, uint32_t def, uint32_t lo, uint32_t hi) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return def;
  char* end = nullptr;
  errno = 0;
  unsigned long long x = std::strtoull(v, &end, 10);
  const bool whole = end != v && *end == '\0' && *v != '-' && errno == 0;
  const uint64_t used = whole ? std::clamp<unsigned long long>(x, lo, hi) : def;
  if (!whole || used != x) {
    report_setup_problem(std::string(name) + "=" + v + " is not a whole number from " +
                         std::to_string(lo) + " to " + std::to_string(hi) + "; using " +
                         std::to_string(used) + ". Set it to a number in that range");
  }
  return uint32_t(used);
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

void release_segment_mapping() {
  if (g_state.base != nullptr) ::munmap(g_state.base, g_state.size);
  if (g_state.fd >= 0) ::close(g_state.fd);
  g_state.base = nullptr;
  g_state.header = nullptr;
  g_state.fd = -1;
}

// A private array of one u32 per slab slot; pages are touched only as slots are used.
uint32_t* map_slot_array(uint32_t slots) {
  void* p = ::mmap(nullptr, size_t(slots) * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<uint32_t*>(p);
}

void release_slot_arrays() {
  State& s = g_state;
  for (uint32_t** a : {&s.pool, &s.cb_next}) {
    if (*a != nullptr) ::munmap(*a, size_t(s.slab_capacity) * sizeof(uint32_t));
    *a = nullptr;
  }
}

// The start of every message that means the process runs untracked, and the usual remedy.
constexpr const char* kTrackingOff = "tracking is off for this process: ";
constexpr const char* kRemedyDirectory =
    "Set TTMEM_DIR to a writable directory with free space (or TTMEM_DISABLE=1 to turn tracking "
    "off)";

// Records why set-up did not go as configured, and says it once on stderr: someone set an
// environment variable that could not be honoured, and the program must run on regardless.
void report_setup_problem(const std::string& text) {
  State& s = g_state;
  if (text == s.setup_message) return;  // a forked child repeats its parent's set-up
  std::snprintf(s.setup_message, sizeof s.setup_message, "%s", text.c_str());
  std::fprintf(stderr, "ttmem: %s\n", s.setup_message);
}

// The group TTMEM_GROUP names, or nullopt (owner-only). An unusable value leaves segments
// owner-only and sets *note to what to do.
std::optional<gid_t> configured_group(std::string* note) {
  const char* spec = std::getenv("TTMEM_GROUP");
  if (spec == nullptr || *spec == '\0') return std::nullopt;
  std::string error;
  std::optional<gid_t> gid = resolve_group(spec, &error);
  if (!gid) *note = std::string("TTMEM_GROUP: ") + error + "; segments stay owner-only";
  return gid;
}

// Prepares the segment directory and returns the group to share segments with. False (with
// the reason reported) when no segment can be created there at all.
bool prepare_directory(const std::string& dir, std::optional<gid_t>* group) {
  std::string note;
  *group = configured_group(&note);
  std::string why = prepare_segment_dir(dir, *group);
  if (!why.empty() && *group && prepare_segment_dir(dir, std::nullopt).empty()) {
    note = why + "; segments stay owner-only";
    group->reset();
    why.clear();
  }
  if (!why.empty()) {
    report_setup_problem(std::string(kTrackingOff) + why);  // `why` says what to do
    return false;
  }
  if (!note.empty()) report_setup_problem(note);
  return true;
}

// Tracking cannot start at `step`: report the step, the directory, the system's error (from
// errno) and what to do. Returns false.
bool setup_failed(const std::string& dir, const char* step, const char* remedy = kRemedyDirectory) {
  const int err = errno;
  report_setup_problem(std::string(kTrackingOff) + "cannot " + step + " in " + dir + ": " +
                       std::strerror(err) + ". " + remedy);
  return false;
}

// The recorder's acknowledgement file (protocol/segment.h, RecordAck), when `ttmem record` runs
// this program; otherwise, or if it cannot be made, null: the rings then overwrite as usual.
pr::RecordAck* create_ack_file(const char* segment_path) {
  const char* wanted = std::getenv("TTMEM_RECORD_ACK");
  if (wanted == nullptr || std::strcmp(wanted, "1") != 0) return nullptr;
  std::string path = std::string(segment_path) + pr::kAckSuffix;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return nullptr;
  void* p = MAP_FAILED;
  if (::ftruncate(fd, sizeof(pr::RecordAck)) == 0 &&
      ::posix_fallocate(fd, 0, sizeof(pr::RecordAck)) == 0) {
    p = ::mmap(nullptr, sizeof(pr::RecordAck), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  ::close(fd);
  if (p == MAP_FAILED) {
    ::unlink(path.c_str());
    return nullptr;
  }
  return static_cast<pr::RecordAck*>(p);
}

// Creates, sizes and maps the segment under a temporary name, fills the header, then renames it
// into place: a collector never sees a half-written header.
bool create_segment() {
  State& s = g_state;
  // Exactly N live buffers: the slab is not rounded up to whole chunks (grow_slab makes a last,
  // partial chunk usable). Before, TTMEM_MAX_BUFFERS=1 gave 1,024 slots.
  s.slab_capacity = env_u32("TTMEM_MAX_BUFFERS", pr::kDefaultSlabCapacity, pr::kMinSlabCapacity,
                            pr::kMaxSlabCapacity);
  uint32_t ring = env_u32("TTMEM_RING_EVENTS", pr::kDefaultRingCapacity, pr::kMinRingCapacity,
                          pr::kMaxRingCapacity);
  s.ring_capacity = uint32_t(std::bit_ceil(ring));
  s.layout = pr::compute_layout(s.slab_capacity, s.ring_capacity);
  s.size = s.layout.segment_size;

  std::string dir = default_segment_dir();
  std::optional<gid_t> group;
  if (!prepare_directory(dir, &group)) return false;
  // ftruncate past a file-size limit (ulimit -f) raises SIGXFSZ, whose default action would kill
  // the tracked program: refuse instead.
  rlimit fsize{};
  if (::getrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur != RLIM_INFINITY &&
      fsize.rlim_cur < s.size) {
    errno = EFBIG;
    return setup_failed(dir, "create a segment larger than the file-size limit (ulimit -f)",
                        "Raise the limit (ulimit -f), or make the segment smaller with lower "
                        "TTMEM_MAX_BUFFERS and TTMEM_RING_EVENTS");
  }
  pid_t pid = ::getpid();
  uint64_t start = process_start_time(pid).value_or(0);
  std::snprintf(s.path, sizeof s.path, "%s/%s%d-%llu%s", dir.c_str(), pr::kSegmentPrefix, int(pid),
                static_cast<unsigned long long>(start), pr::kSegmentSuffix);
  std::string tmp = std::string(s.path) + ".tmp";
  ::unlink(tmp.c_str());
  s.fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (s.fd < 0) return setup_failed(dir, "create a segment file");
  // Shared before the rename, so no collector ever sees the segment with other permissions.
  if (group) {
    if (std::string why = share_file_with_group(s.fd, *group); !why.empty()) {
      report_setup_problem(why + "; the segment stays owner-only");
    }
  }
  void* p = MAP_FAILED;
  if (::ftruncate(s.fd, off_t(s.size)) == 0 && commit_range(0, s.layout.slab_offset)) {
    p = ::mmap(nullptr, s.size, PROT_READ | PROT_WRITE, MAP_SHARED, s.fd, 0);
  }
  if (p == MAP_FAILED) {
    setup_failed(dir, "reserve and map the segment's header");
    ::close(s.fd);
    s.fd = -1;
    ::unlink(tmp.c_str());
    return false;
  }
  s.base = static_cast<uint8_t*>(p);
  s.pool = map_slot_array(s.slab_capacity);
  s.cb_next = map_slot_array(s.slab_capacity);
  if (s.pool == nullptr || s.cb_next == nullptr) {
    setup_failed(dir, "map the slot pool");
    release_slot_arrays();
    release_segment_mapping();
    ::unlink(tmp.c_str());
    return false;
  }
  s.pool_count = 0;
  s.slab_used = 0;
  // Created before the segment appears, so the recorder finds it when it finds the segment.
  s.ack = create_ack_file(s.path);

  auto* h = reinterpret_cast<pr::SegmentHeader*>(s.base);
  h->magic = pr::kSegmentMagic;
  h->version = pr::kSegmentVersion;
  h->header_size = sizeof(pr::SegmentHeader);
  h->segment_size = s.size;
  h->pid = uint32_t(pid);
  h->uid = uint32_t(::getuid());
  h->start_time = start;
  h->pid_namespace = own_pid_namespace();
  h->created_realtime_ns = realtime_ns();
  h->created_monotonic_ns = monotonic_ns();
  FastClock::enable(tsc_is_clocksource());
  h->max_devices = pr::kMaxDevices;
  h->num_kinds = pr::kNumKinds;
  h->string_capacity = pr::kStringCapacity;
  h->slab_capacity = s.slab_capacity;
  h->ring_capacity = s.ring_capacity;
  h->device_slot_size = sizeof(pr::DeviceSlot);
  h->record_size = sizeof(pr::BufferRecord);
  h->event_size = sizeof(pr::EventRecord);
  h->string_slot_size = sizeof(pr::StringSlot);
  h->devices_offset = s.layout.devices_offset;
  h->counters_offset = s.layout.counters_offset;
  h->ring_heads_offset = s.layout.ring_heads_offset;
  h->strings_offset = s.layout.strings_offset;
  h->slab_offset = s.layout.slab_offset;
  h->rings_offset = s.layout.rings_offset;
  std::string cmd = process_cmdline(pid, pr::kCmdlineBytes - 1);
  std::memcpy(h->cmdline, cmd.data(), std::min(cmd.size(), size_t(pr::kCmdlineBytes - 1)));
  pr::store_u32(&h->state, pr::kStateActive, std::memory_order_release);
  s.header = h;

  if (::rename(tmp.c_str(), s.path) != 0) {
    setup_failed(dir, "rename the segment into place");
    release_segment_mapping();
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

void on_fork_child();

bool initialize() {
  if (env_flag("TTMEM_DISABLE")) return false;
  if (!create_segment()) return false;
  static bool atfork_registered = false;
  if (!atfork_registered) {
    ::pthread_atfork(nullptr, nullptr, on_fork_child);
    atfork_registered = true;
  }
  return true;
}

// After fork() the child shares the parent's segment mapping. It must never write there: make
// every call take the slow path, where the child gets a segment of its own.
void on_fork_child() {
  State& s = g_state;
  s.init_lock.reset();
  s.pool_lock.reset();
  s.intern_lock.reset();
  for (auto& d : s.devices) d.lock.reset();
  if (s.mode.load(std::memory_order_relaxed) == kActive) {
    s.mode.store(kForkedChild, std::memory_order_relaxed);
  }
}

// The child starts with the parent's devices and interned strings (same ids, so op stacks stay
// valid) but none of its buffers: those belong to the parent.
bool reinitialize_after_fork() {
  State& s = g_state;
  uint32_t strings = s.string_count;
  auto* old_strings = new (std::nothrow) pr::StringSlot[strings];
  if (old_strings == nullptr) return false;
  for (uint32_t i = 1; i < strings; ++i) old_strings[i] = *string_slot(i);
  pr::DeviceSlot* old_devices = new (std::nothrow) pr::DeviceSlot[pr::kMaxDevices];
  if (old_devices == nullptr) {
    delete[] old_strings;
    return false;
  }
  bool had[pr::kMaxDevices];
  for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
    DeviceState& dev = s.devices[d];
    had[d] = dev.registered.load(std::memory_order_relaxed);
    old_devices[d] = dev.desc;
    dev.registered.store(false, std::memory_order_relaxed);
    dev.index.release();
    dev.local_free_count = 0;
    dev.cb_programs.release();
    dev.ring = nullptr;
    dev.ring_head = 0;
    dev.ack_read = nullptr;
  }
  if (s.ack != nullptr) {  // the parent's: the child gets its own with its segment
    ::munmap(s.ack, sizeof(pr::RecordAck));
    s.ack = nullptr;
  }
  release_segment_mapping();  // unmaps the parent's segment in this process only
  release_slot_arrays();
  bool ok = create_segment();
  if (ok) {
    for (uint32_t i = 1; i < strings; ++i) {
      publish_string(i, old_strings[i].text, old_strings[i].len);
    }
    for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
      if (had[d]) install_device(d, old_devices[d]);
    }
  }
  delete[] old_strings;
  delete[] old_devices;
  return ok;
}

}  // namespace

void publish_string(uint32_t id, const char* text, size_t len) {
  pr::StringSlot* slot = string_slot(id);
  slot->len = uint8_t(len);
  std::memcpy(slot->text, text, len);
  slot->text[len] = '\0';
  // Pairs with the collector's acquire load of string_count: the text is complete before the
  // count covers it.
  pr::store_u32(&g_state.header->string_count, id + 1, std::memory_order_release);
}

// Every call that finds the mode not Active comes here. Returns TTMEM_OK once active.
[[gnu::noinline, gnu::cold]] int slow_enter() {
  State& s = g_state;
  Guard g(s.init_lock);
  int mode = s.mode.load(std::memory_order_relaxed);
  if (mode == kUninitialized) {
    mode = initialize() ? kActive : kDisabled;
  } else if (mode == kForkedChild) {
    mode = reinitialize_after_fork() ? kActive : kDisabled;
  }
  s.mode.store(mode, std::memory_order_release);
  return mode == kActive ? TTMEM_OK : TTMEM_DISABLED;
}

// At normal exit: mark the segment, and remove it when nothing is left to report. With live
// buffers it stays, so a collector turns them into leak records.
[[gnu::destructor]] void on_unload() {
  State& s = g_state;
  if (s.mode.load(std::memory_order_acquire) != kActive || s.header == nullptr) return;
  s.mode.store(kDisabled, std::memory_order_release);
  pr::store_u32(&s.header->state, pr::kStateExited, std::memory_order_release);
  uint64_t live = 0;
  for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
    for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
      if (k == uint32_t(Kind::Cb)) continue;  // CBs end with their program
      live += pr::load_word(&counters(d, k)->live_count);
    }
  }
  if (live == 0) ::unlink(s.path);
  if (s.ack != nullptr) ::unlink((std::string(s.path) + pr::kAckSuffix).c_str());
}

}  // namespace ttmem::client
