// The in-process client library: the C API of include/ttmem/ttmem.h over the segment of
// src/protocol/segment.h.
//
// Hot path (alloc, free, CB alloc): one mode check, the device's spinlock (only threads reporting
// on the same device ever contend), a private index update, fixed-size stores into the segment,
// the clock read through the vDSO. No system call, no heap allocation, no formatting, and no
// wait on any reader: readers only ever map the segment read-only.
//
// Slow paths (first call, device registration, slab growth, string interning, fork) may make
// system calls; they never run per event in steady state.
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "client/fast_clock.h"
#include "client/slot_index.h"
#include "common/access.h"
#include "common/clock.h"
#include "common/proc.h"
#include "protocol/segment.h"
#include "ttmem/ttmem.h"

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

namespace {

namespace pr = ttmem::protocol;

// A test-and-test-and-set lock. Held only for a few stores; never across a system call on the
// hot path. Reset (not unlocked) in a forked child, where its holder no longer exists.
class SpinLock {
 public:
  void lock() {
    while (flag_.exchange(true, std::memory_order_acquire)) {
      while (flag_.load(std::memory_order_relaxed)) __builtin_ia32_pause();
    }
  }
  void unlock() { flag_.store(false, std::memory_order_release); }
  void reset() { flag_.store(false, std::memory_order_relaxed); }

 private:
  std::atomic<bool> flag_{false};
};

class Guard {
 public:
  explicit Guard(SpinLock& l) : l_(l) { l_.lock(); }
  ~Guard() { l_.unlock(); }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  SpinLock& l_;
};

enum Mode : int { kUninitialized = 0, kActive = 1, kDisabled = 2, kForkedChild = 3 };

constexpr uint32_t kLocalFreeSlots = 128;   // per-device cache of free slab slots
constexpr uint32_t kSlotBatch = 64;         // slots moved between a device and the global pool
constexpr uint32_t kSlabChunk = 1024;       // slab records made usable (fallocated) at a time
constexpr uint32_t kOpStackDepth = 64;
constexpr uint32_t kInternCapacity = 2 * pr::kStringCapacity;

struct alignas(64) DeviceState {
  SpinLock lock;
  std::atomic<bool> registered{false};
  pr::DeviceSlot desc{};                   // private copy: re-published after fork
  uint32_t banks[pr::kNumKinds] = {};      // bank count per kind, for the reserved figure
  uint32_t alignment[pr::kNumKinds] = {};
  SlotIndex index;
  uint32_t local_free[kLocalFreeSlots] = {};
  uint32_t local_free_count = 0;
  // Program id -> slot of the program's newest CB record on this device; the program's other
  // records follow through State::cb_next. Freeing one program's set costs O(its CBs).
  SlotIndex cb_programs;
  // This device's counters and ring in the segment, resolved once when the device is installed
  // so the hot path does no offset arithmetic. `ring` stays null when its pages could not be
  // reserved: the device then has totals and records but no history.
  pr::KindCounters* kind_counters = nullptr;
  pr::EventRecord* ring = nullptr;
  pr::RingHead* shared_head = nullptr;
  uint64_t ring_mask = 0;
  uint64_t ring_head = 0;  // private copy of the shared head (single writer: holder of `lock`)
  // Under a lossless recorder (RecordAck): how far it has read this ring; null otherwise.
  const uint64_t* ack_read = nullptr;
  // Per kind, the most reserved at one moment since ttmem_peak_reset() (since registration
  // before the first): process-private, so readers keep the segment's lifetime peak.
  uint64_t window_peak[pr::kNumKinds] = {};
};

struct InternEntry {
  uint64_t hash;
  uint32_t id;  // 0: empty
};

struct State {
  std::atomic<int> mode{kUninitialized};
  SpinLock init_lock;

  // Segment.
  int fd = -1;
  uint8_t* base = nullptr;
  size_t size = 0;
  char path[PATH_MAX] = {};
  pr::SegmentHeader* header = nullptr;
  pr::RecordAck* ack = nullptr;  // only for a program `ttmem record` runs (TTMEM_RECORD_ACK=1)
  pr::Layout layout{};
  uint32_t slab_capacity = 0;
  uint32_t ring_capacity = 0;

  // Slab slots not cached by a device: a stack guarded by pool_lock; the slab grows (and is
  // fallocated) a chunk at a time when the stack runs dry.
  SpinLock pool_lock;
  uint32_t* pool = nullptr;  // capacity slab_capacity, anonymous mapping
  uint32_t pool_count = 0;
  uint32_t slab_used = 0;    // records made usable so far (kSlabChunk at a time)
  // For a CB record's slot, the slot of the next older CB record of the same program and device
  // (UINT32_MAX ends the chain). Same capacity and mapping as `pool`.
  uint32_t* cb_next = nullptr;

  // Interned strings: private open-addressing table from hash to id; text in the segment.
  SpinLock intern_lock;
  InternEntry intern[kInternCapacity] = {};
  uint32_t string_count = 1;  // id 0 is "no tag"

  DeviceState devices[pr::kMaxDevices];

  // Why set-up did not go as configured (ttmem_setup_message); empty when it did.
  char setup_message[PATH_MAX + 512] = {};
};

State g_state;

struct OpStack {
  uint32_t ids[kOpStackDepth];
  uint32_t depth;  // may exceed kOpStackDepth; deeper ops name nothing new
};
// initial-exec for the same reason as FastClock's anchor (read on every untagged allocation).
[[gnu::tls_model("initial-exec")]] thread_local OpStack t_ops;

// ---------------------------------------------------------------------------------------------
// Shared-memory accessors.

pr::BufferRecord* slab() {
  return reinterpret_cast<pr::BufferRecord*>(g_state.base + g_state.layout.slab_offset);
}
pr::KindCounters* counters(uint32_t device, uint32_t kind) {
  auto* c = reinterpret_cast<pr::KindCounters*>(g_state.base + g_state.layout.counters_offset);
  return c + device * pr::kNumKinds + kind;
}
pr::RingHead* ring_head(uint32_t device) {
  return reinterpret_cast<pr::RingHead*>(g_state.base + g_state.layout.ring_heads_offset) +
         device;
}
pr::EventRecord* ring(uint32_t device) {
  return reinterpret_cast<pr::EventRecord*>(g_state.base + g_state.layout.rings_offset) +
         size_t(device) * g_state.ring_capacity;
}
pr::DeviceSlot* device_slot(uint32_t device) {
  return reinterpret_cast<pr::DeviceSlot*>(g_state.base + g_state.layout.devices_offset) + device;
}
pr::StringSlot* string_slot(uint32_t id) {
  return reinterpret_cast<pr::StringSlot*>(g_state.base + g_state.layout.strings_offset) + id;
}

void bump(uint64_t* counter, uint64_t by = 1) {
  std::atomic_ref<uint64_t>(*counter).fetch_add(by, std::memory_order_relaxed);
}

// Reserves tmpfs pages for [offset, offset+len) so that touching them can never raise SIGBUS
// when the file system is full: the tracked program must not crash because /dev/shm is.
bool commit_range(uint64_t offset, uint64_t len) {
  int rc = ::posix_fallocate(g_state.fd, off_t(offset), off_t(len));
  if (rc != 0) errno = rc;  // posix_fallocate returns the error instead of setting errno
  return rc == 0;
}

// ---------------------------------------------------------------------------------------------
// Initialisation.

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

// Creates, sizes and maps the segment under a temporary name, fills the header, then renames it
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
  std::snprintf(s.path, sizeof s.path, "%s/%s%d-%llu%s", dir.c_str(), pr::kSegmentPrefix,
                int(pid), static_cast<unsigned long long>(start), pr::kSegmentSuffix);
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

void publish_string(uint32_t id, const char* text, size_t len) {
  pr::StringSlot* slot = string_slot(id);
  slot->len = uint8_t(len);
  std::memcpy(slot->text, text, len);
  slot->text[len] = '\0';
  // Pairs with the collector's acquire load of string_count: the text is complete before the
  // count covers it.
  pr::store_u32(&g_state.header->string_count, id + 1, std::memory_order_release);
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

// Registers `slot` (a copy of a device descriptor) for `id`; the caller holds init_lock.
bool install_device(uint32_t id, const pr::DeviceSlot& slot);

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

inline int enter() {
  if (g_state.mode.load(std::memory_order_acquire) == kActive) [[likely]] return TTMEM_OK;
  return slow_enter();
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

// ---------------------------------------------------------------------------------------------
// Slab slots.

// Makes the next chunk of the slab usable and puts it in the pool. Caller holds pool_lock.
bool grow_slab() {
  State& s = g_state;
  if (s.slab_used >= s.slab_capacity) return false;
  const uint32_t chunk = std::min(kSlabChunk, s.slab_capacity - s.slab_used);
  uint64_t off = s.layout.slab_offset + uint64_t(s.slab_used) * sizeof(pr::BufferRecord);
  if (!commit_range(off, uint64_t(chunk) * sizeof(pr::BufferRecord))) return false;
  // Highest slots first so the pool hands out ascending slots and collectors scan a dense prefix.
  for (uint32_t i = chunk; i-- > 0;) s.pool[s.pool_count++] = s.slab_used + i;
  s.slab_used += chunk;
  // Pairs with the collector's acquire load: slots below the mark are committed and zeroed.
  pr::store_u32(&s.header->slab_high_water, s.slab_used, std::memory_order_release);
  return true;
}

// A free slot for `dev`, or UINT32_MAX when the slab is full. Caller holds dev.lock.
uint32_t take_slot(DeviceState& dev) {
  if (dev.local_free_count == 0) [[unlikely]] {
    State& s = g_state;
    Guard g(s.pool_lock);
    if (s.pool_count == 0 && !grow_slab()) return UINT32_MAX;
    uint32_t n = std::min(kSlotBatch, s.pool_count);
    for (uint32_t i = 0; i < n; ++i) dev.local_free[dev.local_free_count++] = s.pool[--s.pool_count];
  }
  return dev.local_free[--dev.local_free_count];
}

void give_slot(DeviceState& dev, uint32_t slot) {
  if (dev.local_free_count == kLocalFreeSlots) [[unlikely]] {
    State& s = g_state;
    Guard g(s.pool_lock);
    for (uint32_t i = 0; i < kSlotBatch; ++i) s.pool[s.pool_count++] = dev.local_free[--dev.local_free_count];
  }
  dev.local_free[dev.local_free_count++] = slot;
}

// ---------------------------------------------------------------------------------------------
// Records, counters, events. All called with the device's lock held.

void write_record(uint32_t slot, const pr::BufferRecord& rec) {
  pr::BufferRecord local = rec;
  local.flags = pr::kRecordLive;
  pr::seqlock_write32(&slab()[slot], local);
}

// One atomic store of word 0: the record stops being live and its sequence advances, so a
// reader mid-copy sees the change and retries.
void clear_record(uint32_t slot) {
  auto* w0 = reinterpret_cast<uint64_t*>(&slab()[slot]);
  uint64_t old = pr::load_word(w0);
  uint32_t seq = uint32_t(old) + 2;
  uint64_t cleared = (old & 0x00FFFFFF00000000ULL) | seq;
  pr::store_word(w0, cleared, std::memory_order_release);
}

pr::BufferRecord read_own_record(uint32_t slot) { return pr::copy_words_out(&slab()[slot]); }

uint64_t reserved_of(const DeviceState& dev, const pr::BufferRecord& r) {
  return pr::reserved_bytes(r.kind, r.size, r.size_per_bank, r.num_cores, dev.banks[r.kind]);
}

void count_alloc(DeviceState& dev, uint32_t kind, uint64_t requested, uint64_t reserved) {
  // Single writer (the device lock holder): plain read-modify-write through relaxed atomics.
  pr::KindCounters* c = dev.kind_counters + kind;
  uint64_t cur = pr::load_word(&c->current_reserved) + reserved;
  uint64_t req = pr::load_word(&c->current_requested) + requested;
  pr::store_word(&c->current_reserved, cur);
  pr::store_word(&c->current_requested, req);
  if (cur > pr::load_word(&c->peak_reserved)) pr::store_word(&c->peak_reserved, cur);
  if (cur > dev.window_peak[kind]) dev.window_peak[kind] = cur;
  if (req > pr::load_word(&c->peak_requested)) pr::store_word(&c->peak_requested, req);
  pr::store_word(&c->live_count, pr::load_word(&c->live_count) + 1);
  pr::store_word(&c->total_allocs, pr::load_word(&c->total_allocs) + 1);
}

void count_free(DeviceState& dev, uint32_t kind, uint64_t requested, uint64_t reserved) {
  pr::KindCounters* c = dev.kind_counters + kind;
  pr::store_word(&c->current_reserved, pr::load_word(&c->current_reserved) - reserved);
  pr::store_word(&c->current_requested, pr::load_word(&c->current_requested) - requested);
  pr::store_word(&c->live_count, pr::load_word(&c->live_count) - 1);
  pr::store_word(&c->total_frees, pr::load_word(&c->total_frees) + 1);
}

// The slot for event `idx` still holds one the lossless recorder has not read: wait until it has,
// instead of overwriting it. A recorder that released the program, or made no progress for
// kAckPatienceNs (it died or hung), is not waited for again on this device.
[[gnu::noinline, gnu::cold]] void wait_for_recorder(DeviceState& dev, uint64_t idx) {
  const uint64_t capacity = dev.ring_mask + 1;
  const auto* released = &g_state.ack->released;
  uint64_t seen = pr::load_word(dev.ack_read, std::memory_order_acquire);
  uint64_t progress_ns = monotonic_ns();
  while (idx - seen >= capacity) {
    if (pr::load_u32(released, std::memory_order_acquire) != 0 ||
        monotonic_ns() - progress_ns > pr::kAckPatienceNs) {
      dev.ack_read = nullptr;
      return;
    }
    timespec pause{0, 20'000};
    ::nanosleep(&pause, nullptr);
    const uint64_t now_read = pr::load_word(dev.ack_read, std::memory_order_acquire);
    if (now_read != seen) progress_ns = monotonic_ns();
    seen = now_read;
  }
}

void push_event(DeviceState& dev, const pr::EventRecord& ev) {
  if (dev.ring == nullptr) [[unlikely]] return;
  uint64_t idx = dev.ring_head;
  if (dev.ack_read != nullptr &&
      idx - pr::load_word(dev.ack_read, std::memory_order_acquire) > dev.ring_mask) [[unlikely]] {
    wait_for_recorder(dev, idx);
  }
  pr::EventRecord* slot = dev.ring + (idx & dev.ring_mask);
  pr::store_word(&slot->seq, 2 * idx + 1);
  std::atomic_thread_fence(std::memory_order_release);
  pr::copy_words_in(slot, ev, 1);
  // Pairs with the collector's acquire loads of seq and head.
  pr::store_word(&slot->seq, 2 * idx + 2, std::memory_order_release);
  dev.ring_head = idx + 1;
  pr::store_word(&dev.shared_head->head, idx + 1, std::memory_order_release);
}

pr::EventRecord event_from(pr::EventType type, const pr::BufferRecord& r) {
  pr::EventRecord ev{};
  ev.type = uint8_t(type);
  ev.kind = r.kind;
  ev.layout = r.layout;
  ev.tag = r.tag;
  ev.buffer_id = r.buffer_id;
  ev.address = r.address;
  ev.size = r.size;
  ev.size_per_bank = r.size_per_bank;
  ev.num_banks = r.num_banks;
  ev.num_cores = r.num_cores;
  // A CB has no pages; its event carries the core rectangle instead, so history alone gives
  // which cores it covers (protocol.md, EventRecord).
  ev.page_size = r.kind == uint8_t(Kind::Cb) ? r.aux : r.page_size;
  ev.time_ns = r.time_ns;
  return ev;
}

// Frees the live buffer in `slot` (already removed from the index).
void free_slot_locked(DeviceState& dev, uint32_t slot, uint64_t now) {
  pr::BufferRecord r = read_own_record(slot);
  clear_record(slot);
  count_free(dev, r.kind, r.size, reserved_of(dev, r));
  r.time_ns = now;
  push_event(dev, event_from(pr::EventType::Free, r));
  give_slot(dev, slot);
}

// ---------------------------------------------------------------------------------------------
// Strings and ops.

uint64_t hash_text(const char* text, size_t len) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (size_t i = 0; i < len; ++i) h = (h ^ uint8_t(text[i])) * 0x100000001b3ULL;
  return h | 1;  // never 0
}

// The id of `text` (truncated to kStringMaxLen), interning it on first sight; 0 if the table is
// full or text is empty.
uint32_t intern(const char* text) {
  size_t len = strnlen(text, pr::kStringMaxLen);
  if (len == 0) return 0;
  uint64_t h = hash_text(text, len);
  State& s = g_state;
  Guard g(s.intern_lock);
  for (uint32_t i = uint32_t(h) & (kInternCapacity - 1);; i = (i + 1) & (kInternCapacity - 1)) {
    InternEntry& e = s.intern[i];
    if (e.id == 0) {
      if (s.string_count >= pr::kStringCapacity) {
        // Untagged rather than lost, and counted so that it shows.
        bump(&s.header->counters.tag_overflow);
        return 0;
      }
      uint32_t id = s.string_count++;
      publish_string(id, text, len);
      e.hash = h;
      e.id = id;
      return id;
    }
    if (e.hash == h) {
      const pr::StringSlot* slot = string_slot(e.id);
      if (slot->len == len && std::memcmp(slot->text, text, len) == 0) return e.id;
    }
  }
}

uint32_t current_op() {
  const OpStack& ops = t_ops;
  if (ops.depth == 0) return 0;
  return ops.ids[std::min(ops.depth, kOpStackDepth) - 1];
}

// ---------------------------------------------------------------------------------------------
// Devices.

bool install_device(uint32_t id, const pr::DeviceSlot& slot) {
  State& s = g_state;
  DeviceState& dev = s.devices[id];
  Guard g(dev.lock);
  if (!dev.index.ready() && !dev.index.reserve(s.slab_capacity)) return false;
  if (!dev.cb_programs.ready() && !dev.cb_programs.reserve(s.slab_capacity)) return false;
  dev.kind_counters = counters(id, 0);
  dev.shared_head = ring_head(id);
  dev.ack_read = s.ack != nullptr ? &s.ack->read[id] : nullptr;
  if (dev.ring == nullptr) {
    uint64_t off = s.layout.rings_offset + uint64_t(id) * s.ring_capacity * sizeof(pr::EventRecord);
    if (commit_range(off, uint64_t(s.ring_capacity) * sizeof(pr::EventRecord))) {
      dev.ring = ring(id);
      dev.ring_mask = s.ring_capacity - 1;
    }
  }
  pr::DeviceSlot desc = slot;
  desc.flags = pr::kDeviceRegistered;
  // The same descriptor again (tt-metal reopening a device) changes nothing a reader sees.
  const bool unchanged = dev.registered.load(std::memory_order_relaxed) &&
                         std::memcmp(&dev.desc, &desc, sizeof desc) == 0;
  dev.desc = desc;
  for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
    dev.banks[k] = slot.kinds[k].num_banks;
    dev.alignment[k] = slot.kinds[k].alignment;
  }
  if (!unchanged) {
    // The whole new descriptor first, then the device's slot: while the slot is being written,
    // or if this process dies with it half written (its sequence left odd), readers take the
    // copy. Registrations are serialized by init_lock, so the copy names this device until the
    // slot is complete. Before, readers dropped the device meanwhile, and a kill here lost
    // every record of the device.
    pr::seqlock_write32(&s.header->registering, desc);
    pr::seqlock_write32(device_slot(id), desc);
  }
  dev.registered.store(true, std::memory_order_release);
  return true;
}

DeviceState* registered_device(uint32_t device) {
  if (device >= pr::kMaxDevices) return nullptr;
  DeviceState& dev = g_state.devices[device];
  return dev.registered.load(std::memory_order_acquire) ? &dev : nullptr;
}

int reject(int status) {
  if (g_state.header != nullptr) bump(&g_state.header->counters.invalid_calls);
  return status;
}

uint64_t div_ceil(uint64_t a, uint64_t b) { return b == 0 ? 0 : (a + b - 1) / b; }

// ---------------------------------------------------------------------------------------------
// Circular buffers: one record per (CB, core range), chained per program.

// More ranges than any core grid can hold distinct rectangles is a caller's bug.
constexpr size_t kMaxCbRanges = 4096;

pr::BufferRecord cb_record(uint32_t device, const ttmem_core_range& cores, uint64_t address,
                           uint64_t size_per_core, uint64_t program_id) {
  auto byte = [](uint16_t v) { return uint32_t(std::min<uint16_t>(v, 255)); };
  const uint64_t count = uint64_t(cores.x1 - cores.x0 + 1) * uint64_t(cores.y1 - cores.y0 + 1);
  pr::BufferRecord r{};
  r.device = uint8_t(device);
  r.kind = uint8_t(Kind::Cb);
  r.buffer_id = program_id;
  r.address = address;
  r.size = size_per_core;
  r.size_per_bank = size_per_core;
  r.num_banks = uint16_t(std::min<uint64_t>(count, UINT16_MAX));
  r.num_cores = r.num_banks;
  r.aux = byte(cores.x0) | byte(cores.y0) << 8 | byte(cores.x1) << 16 | byte(cores.y1) << 24;
  return r;
}

struct CbFreed {
  uint64_t bytes = 0;
  uint64_t records = 0;
};

// Frees a program's chain of CB records, newest first. Caller holds dev.lock and has already
// removed the program from cb_programs.
CbFreed free_cb_chain(DeviceState& dev, uint32_t newest) {
  CbFreed freed;
  for (uint32_t slot = newest; slot != UINT32_MAX;) {
    const uint32_t next = g_state.cb_next[slot];
    pr::BufferRecord r = read_own_record(slot);
    const uint64_t reserved = reserved_of(dev, r);
    clear_record(slot);
    count_free(dev, r.kind, reserved, reserved);
    give_slot(dev, slot);
    freed.bytes += reserved;
    ++freed.records;
    slot = next;
  }
  return freed;
}

// The largest buffer the client records, requested or reserved: 1 TiB, far beyond any device's
// memory, and small enough that neither the per-bank arithmetic below nor the counters of a full
// slab (2^24 live records) can wrap. A report beyond it is refused rather than recorded wrong:
// before, size 2^64-1 wrapped the per-bank size (reserved showed 0, the requested total
// wrapped), and an address plus size past 2^64 was recorded, then rejected by every reader.
constexpr uint64_t kMaxBufferBytes = uint64_t{1} << 40;

// True when a buffer's fields describe one that fits the address space and the limit above.
bool plausible_buffer(uint64_t address, uint64_t size, uint64_t size_per_bank, uint32_t banks) {
  uint64_t reserved = 0;
  if (size > kMaxBufferBytes || size_per_bank > kMaxBufferBytes ||
      __builtin_mul_overflow(size_per_bank, uint64_t{banks}, &reserved) ||
      reserved > kMaxBufferBytes) {
    return false;
  }
  return address <= UINT64_MAX - std::max(size, size_per_bank);
}

}  // namespace
}  // namespace ttmem::client

// =============================================================================================
// C API

using namespace ttmem::client;
namespace pr = ttmem::protocol;

extern "C" {

int ttmem_register_device(const ttmem_device_desc* desc) {
  if (int st = enter(); st != TTMEM_OK) return st;
  if (desc == nullptr || desc->struct_size < sizeof(ttmem_device_desc) ||
      desc->logical_id >= pr::kMaxDevices) {
    return reject(TTMEM_EINVAL);
  }
  pr::DeviceSlot slot{};
  slot.logical_id = desc->logical_id;
  slot.arch = desc->arch;
  slot.chip_id = desc->chip_id;
  slot.grid_x = desc->grid_x;
  slot.grid_y = desc->grid_y;
  slot.l1_per_core = desc->l1_per_core;
  slot.unreserved_base = desc->unreserved_base;
  slot.trace_region_size = desc->trace_region_size;
  slot.l1_small_size = desc->l1_small_size;
  for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
    const ttmem_kind_geometry& g = desc->kinds[k];
    slot.kinds[k] = {g.capacity, g.bank_size, g.bank_base, g.num_banks, g.alignment};
  }
  if (desc->board != nullptr) {
    std::strncpy(slot.board, desc->board, sizeof slot.board - 1);
  }
  Guard g(g_state.init_lock);
  return install_device(desc->logical_id, slot) ? TTMEM_OK : reject(TTMEM_EIO);
}

[[gnu::flatten]] int ttmem_buffer_alloc(const ttmem_buffer_desc* desc) {
  if (int st = enter(); st != TTMEM_OK) [[unlikely]] return st;
  if (desc == nullptr || desc->struct_size < sizeof(ttmem_buffer_desc) ||
      desc->kind >= TTMEM_KIND_CB) [[unlikely]] {
    return reject(TTMEM_EINVAL);
  }
  DeviceState* dev = registered_device(desc->device);
  if (dev == nullptr) [[unlikely]] return reject(TTMEM_ENODEV);

  pr::BufferRecord r{};
  r.device = uint8_t(desc->device);
  r.kind = uint8_t(desc->kind);
  r.layout = uint8_t(desc->layout);
  r.buffer_id = desc->buffer_id;
  r.address = desc->address;
  r.size = desc->size;
  r.page_size = uint32_t(std::min<uint64_t>(desc->page_size, UINT32_MAX));
  uint32_t banks = desc->num_banks != 0 ? desc->num_banks : dev->banks[desc->kind];
  r.num_banks = uint16_t(std::min<uint32_t>(banks, UINT16_MAX));
  r.num_cores = uint16_t(std::min<uint32_t>(desc->num_cores, UINT16_MAX));
  r.size_per_bank = desc->size_per_bank;
  // Bounded before the per-bank arithmetic, which then cannot wrap.
  if (desc->size > kMaxBufferBytes || desc->page_size > kMaxBufferBytes) [[unlikely]] {
    return reject(TTMEM_EINVAL);
  }
  if (r.size_per_bank == 0 && banks != 0) {
    // tt-metal: ceil(pages / banks) x page size rounded up to the kind's alignment.
    if (desc->page_size != 0) {
      uint64_t align = std::max<uint32_t>(dev->alignment[desc->kind], 1);
      uint64_t aligned_page = div_ceil(desc->page_size, align) * align;
      r.size_per_bank = div_ceil(div_ceil(desc->size, desc->page_size), banks) * aligned_page;
    } else {
      r.size_per_bank = div_ceil(desc->size, banks);
    }
  }
  if (!plausible_buffer(r.address, r.size, r.size_per_bank, dev->banks[desc->kind]))
      [[unlikely]] {
    return reject(TTMEM_EINVAL);
  }
  r.tag = desc->tag != nullptr ? intern(desc->tag) : current_op();
  uint64_t reserved = reserved_of(*dev, r);
  r.time_ns = FastClock::now();

  Guard g(dev->lock);
  uint32_t slot = take_slot(*dev);
  if (slot == UINT32_MAX) [[unlikely]] {
    bump(&g_state.header->counters.slab_overflow);
    return TTMEM_EFULL;
  }
  uint32_t old = dev->index.exchange(r.buffer_id, slot);
  if (old != SlotIndex::kNotFound) [[unlikely]] {
    // The id is already live: tt-metal never does this, so the old record is stale. Replace it.
    bump(&g_state.header->counters.duplicate_allocs);
    free_slot_locked(*dev, old, r.time_ns);
  }
  write_record(slot, r);
  count_alloc(*dev, r.kind, r.size, reserved);
  push_event(*dev, event_from(pr::EventType::Alloc, r));
  return TTMEM_OK;
}

[[gnu::flatten]] int ttmem_buffer_free(uint32_t device, uint64_t buffer_id) {
  if (int st = enter(); st != TTMEM_OK) [[unlikely]] return st;
  DeviceState* dev = registered_device(device);
  if (dev == nullptr) [[unlikely]] return reject(TTMEM_ENODEV);
  uint64_t now = FastClock::now();
  Guard g(dev->lock);
  uint32_t slot = dev->index.erase(buffer_id);
  if (slot == SlotIndex::kNotFound) [[unlikely]] {
    bump(&g_state.header->counters.unknown_frees);
    return TTMEM_ENOENT;
  }
  free_slot_locked(*dev, slot, now);
  return TTMEM_OK;
}

int ttmem_cb_alloc(uint32_t device, const ttmem_core_range* ranges, size_t num_ranges,
                   uint64_t address, uint64_t size_per_core, uint64_t program_id) {
  if (int st = enter(); st != TTMEM_OK) [[unlikely]] return st;
  if (ranges == nullptr || num_ranges == 0 || num_ranges > kMaxCbRanges) return reject(TTMEM_EINVAL);
  for (size_t i = 0; i < num_ranges; ++i) {
    if (ranges[i].x1 < ranges[i].x0 || ranges[i].y1 < ranges[i].y0) return reject(TTMEM_EINVAL);
  }
  DeviceState* dev = registered_device(device);
  if (dev == nullptr) [[unlikely]] return reject(TTMEM_ENODEV);
  const uint32_t tag = current_op();
  const uint64_t now = FastClock::now();

  Guard g(dev->lock);
  // One record per core range, so readers know exactly which cores a CB covers.
  for (size_t i = 0; i < num_ranges; ++i) {
    pr::BufferRecord r = cb_record(device, ranges[i], address, size_per_core, program_id);
    r.tag = tag;
    r.time_ns = now;
    uint32_t slot = take_slot(*dev);
    if (slot == UINT32_MAX) [[unlikely]] {
      bump(&g_state.header->counters.slab_overflow);
      return TTMEM_EFULL;
    }
    const uint32_t programs = dev->cb_programs.size();
    const uint32_t older = dev->cb_programs.exchange(program_id, slot);
    if (older == SlotIndex::kNotFound && dev->cb_programs.size() == programs) [[unlikely]] {
      give_slot(*dev, slot);  // the program table could not grow
      bump(&g_state.header->counters.cb_overflow);
      return TTMEM_EFULL;
    }
    g_state.cb_next[slot] = older == SlotIndex::kNotFound ? UINT32_MAX : older;
    write_record(slot, r);
    // From the record, as readers compute it, so the counters and every reader agree.
    const uint64_t reserved = reserved_of(*dev, r);
    count_alloc(*dev, r.kind, reserved, reserved);
    pr::EventRecord ev = event_from(pr::EventType::CbAlloc, r);
    ev.page_size = r.aux;  // the core range: recordings rebuild what CB sets cover from it
    push_event(*dev, ev);
  }
  return TTMEM_OK;
}

int ttmem_cb_free_program(uint32_t device, uint64_t program_id) {
  if (int st = enter(); st != TTMEM_OK) [[unlikely]] return st;
  DeviceState* dev = registered_device(device);
  if (dev == nullptr) [[unlikely]] return reject(TTMEM_ENODEV);
  const uint64_t now = FastClock::now();
  Guard g(dev->lock);
  const uint32_t newest = dev->cb_programs.erase(program_id);
  if (newest == SlotIndex::kNotFound) return TTMEM_ENOENT;  // no CBs: nothing to free
  const CbFreed freed = free_cb_chain(*dev, newest);
  pr::EventRecord ev{};
  ev.type = uint8_t(pr::EventType::CbFreeProgram);
  ev.kind = uint8_t(ttmem::Kind::Cb);
  ev.buffer_id = program_id;
  ev.size = freed.bytes;
  ev.size_per_bank = freed.records;
  ev.time_ns = now;
  push_event(*dev, ev);
  return TTMEM_OK;
}

int ttmem_cb_free_all(uint32_t device) {
  if (int st = enter(); st != TTMEM_OK) [[unlikely]] return st;
  DeviceState* dev = registered_device(device);
  if (dev == nullptr) [[unlikely]] return reject(TTMEM_ENODEV);
  uint64_t now = FastClock::now();
  Guard g(dev->lock);
  if (dev->cb_programs.size() == 0) return TTMEM_OK;
  CbFreed freed;
  dev->cb_programs.for_each([&](uint64_t, uint32_t newest) {
    const CbFreed one = free_cb_chain(*dev, newest);
    freed.bytes += one.bytes;
    freed.records += one.records;
  });
  dev->cb_programs.clear();
  pr::EventRecord ev{};
  ev.type = uint8_t(pr::EventType::CbFreeAll);
  ev.kind = uint8_t(ttmem::Kind::Cb);
  ev.buffer_id = freed.records;
  ev.size = freed.bytes;
  ev.time_ns = now;
  push_event(*dev, ev);
  return TTMEM_OK;
}

int ttmem_op_push(const char* name) {
  if (int st = enter(); st != TTMEM_OK) return st;
  if (name == nullptr) return reject(TTMEM_EINVAL);
  OpStack& ops = t_ops;
  if (ops.depth < kOpStackDepth) ops.ids[ops.depth] = intern(name);
  ++ops.depth;
  return TTMEM_OK;
}

int ttmem_op_pop(void) {
  if (int st = enter(); st != TTMEM_OK) return st;
  OpStack& ops = t_ops;
  if (ops.depth == 0) return reject(TTMEM_EINVAL);
  --ops.depth;
  return TTMEM_OK;
}

int ttmem_enabled(void) { return enter() == TTMEM_OK ? 1 : 0; }

const char* ttmem_status_string(int status) {
  switch (status) {
    case TTMEM_OK: return "ok";
    case TTMEM_DISABLED: return "tracking is disabled";
    case TTMEM_EINVAL: return "invalid argument";
    case TTMEM_ENODEV: return "device not registered";
    case TTMEM_EFULL: return "live-buffer table full (raise TTMEM_MAX_BUFFERS)";
    case TTMEM_ENOENT: return "buffer id is not live";
    case TTMEM_EIO: return "segment could not be created";
    default: return "unknown status";
  }
}

int ttmem_peak_reset(void) {
  if (int st = enter(); st != TTMEM_OK) return st;
  for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
    DeviceState* dev = registered_device(d);
    if (dev == nullptr) continue;
    Guard g(dev->lock);
    for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
      dev->window_peak[k] = pr::load_word(&dev->kind_counters[k].current_reserved);
    }
  }
  return TTMEM_OK;
}

int ttmem_peak(uint32_t device, uint32_t kind, uint64_t* bytes) {
  if (int st = enter(); st != TTMEM_OK) return st;
  // A question, not a report: a refusal is not counted as an invalid call. A process's CB sets
  // overlap, so the sum its counters keep is no figure of the device.
  if (bytes == nullptr || kind >= TTMEM_KIND_CB) return TTMEM_EINVAL;
  DeviceState* dev = registered_device(device);
  if (dev == nullptr) return TTMEM_ENODEV;
  Guard g(dev->lock);
  *bytes = dev->window_peak[kind];
  return TTMEM_OK;
}

const char* ttmem_setup_message(void) {
  return g_state.setup_message[0] != '\0' ? g_state.setup_message : nullptr;
}

const char* ttmem_segment_path(void) {
  return g_state.mode.load(std::memory_order_acquire) == kActive ? g_state.path : nullptr;
}

}  // extern "C"
