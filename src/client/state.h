// The client library's private state and what its two files share: client.cpp (the C API and
// the hot path) and segment_setup.cpp (creating the segment, fork, exit). Not installed.
#pragma once

#include <limits.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "client/slot_index.h"
#include "protocol/segment.h"
#include "ttmem/ttmem.h"

namespace ttmem::client {

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

constexpr uint32_t kLocalFreeSlots = 128;  // per-device cache of free slab slots
constexpr uint32_t kSlotBatch = 64;        // slots moved between a device and the global pool
constexpr uint32_t kSlabChunk = 1024;      // slab records made usable (fallocated) at a time
constexpr uint32_t kOpStackDepth = 64;
constexpr uint32_t kInternCapacity = 2 * pr::kStringCapacity;

struct alignas(64) DeviceState {
  SpinLock lock;
  std::atomic<bool> registered{false};
  pr::DeviceSlot desc{};               // private copy: re-published after fork
  uint32_t banks[pr::kNumKinds] = {};  // bank count per kind, for the reserved figure
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
  uint64_t window_peak[protocol::kNumKinds] = {};
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
  uint32_t slab_used = 0;  // records made usable so far (kSlabChunk at a time)
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

extern State g_state;

// ---------------------------------------------------------------------------------------------
// Shared-memory accessors.

inline pr::BufferRecord* slab() {
  return reinterpret_cast<pr::BufferRecord*>(g_state.base + g_state.layout.slab_offset);
}
inline pr::KindCounters* counters(uint32_t device, uint32_t kind) {
  auto* c = reinterpret_cast<pr::KindCounters*>(g_state.base + g_state.layout.counters_offset);
  return c + device * pr::kNumKinds + kind;
}
inline pr::RingHead* ring_head(uint32_t device) {
  return reinterpret_cast<pr::RingHead*>(g_state.base + g_state.layout.ring_heads_offset) + device;
}
inline pr::EventRecord* ring(uint32_t device) {
  return reinterpret_cast<pr::EventRecord*>(g_state.base + g_state.layout.rings_offset) +
         size_t(device) * g_state.ring_capacity;
}
inline pr::DeviceSlot* device_slot(uint32_t device) {
  return reinterpret_cast<pr::DeviceSlot*>(g_state.base + g_state.layout.devices_offset) + device;
}
inline pr::StringSlot* string_slot(uint32_t id) {
  return reinterpret_cast<pr::StringSlot*>(g_state.base + g_state.layout.strings_offset) + id;
}

inline void bump(uint64_t* counter, uint64_t by = 1) {
  std::atomic_ref<uint64_t>(*counter).fetch_add(by, std::memory_order_relaxed);
}

// segment_setup.cpp: the slow paths.

// Reserves tmpfs pages for [offset, offset+len) (false with errno when the file system is full).
bool commit_range(uint64_t offset, uint64_t len);
void publish_string(uint32_t id, const char* text, size_t len);

// Every call that finds the mode not Active comes here. Returns TTMEM_OK once active.
[[gnu::noinline, gnu::cold]] int slow_enter();

inline int enter() {
  if (g_state.mode.load(std::memory_order_acquire) == kActive) [[likely]]
    return TTMEM_OK;
  return slow_enter();
}

// client.cpp: registers `slot` (a copy of a device descriptor) for `id`; the caller holds
// init_lock. Also how a forked child re-registers its parent's devices.
bool install_device(uint32_t id, const pr::DeviceSlot& slot);

}  // namespace ttmem::client
