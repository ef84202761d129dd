// What the fault client has been told, kept where a test can read it after the client is killed.
//
// The client (ttmem_fault_client) and the test both map one file of this layout. For every
// buffer a client thread holds there is a slot, and the slot's state changes only around the
// client-library call, never inside it:
//
//   alloc:  state <- kAllocInFlight;  ttmem_buffer_alloc();  state <- kLive
//   free:   state <- kFreeInFlight;   ttmem_buffer_free();   state <- kEmpty
//
// So after a SIGKILL a slot in state kLive is an *acknowledged* buffer (its alloc returned and its
// free had not been called), kEmpty is acknowledged as gone, and the in-flight states mark the one
// call per thread that was interrupted and may have happened or not. Full fences separate the
// state stores from the call, so the file never claims more (or less) than the library did.
//
// Every field of a buffer is a pure function of its id (buffer_for), so a reader that shows a
// record whose fields do not match its id has shown a torn or corrupt record.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "protocol/segment.h"
#include "test_device.h"

namespace ttmem::test::fault {

inline constexpr uint32_t kMaxThreads = 8;
inline constexpr uint32_t kMaxDevices = 8;
inline constexpr uint32_t kSlotsPerThread = 256;

enum SlotState : uint32_t { kEmpty = 0, kAllocInFlight = 1, kLive = 2, kFreeInFlight = 3 };

// Per-call latency histogram: 16 ns buckets below 4 us, then one bucket per power of two.
inline constexpr uint32_t kFineBuckets = 256;
inline constexpr uint32_t kFineNs = 16;
inline constexpr uint32_t kBuckets = kFineBuckets + 24;
inline constexpr uint32_t kWindows = 3;  // the test names the window each call counts in

inline uint32_t latency_bucket(uint64_t ns) {
  if (ns < uint64_t(kFineBuckets) * kFineNs) return uint32_t(ns / kFineNs);
  uint32_t b = kFineBuckets + uint32_t(63 - __builtin_clzll(ns)) - 12;  // 4096 ns -> first
  return b < kBuckets ? b : kBuckets - 1;
}
// The lower bound of a bucket, in nanoseconds.
inline uint64_t bucket_floor_ns(uint32_t b) {
  return b < kFineBuckets ? uint64_t(b) * kFineNs : uint64_t(1) << (b - kFineBuckets + 12);
}

struct Slot {
  std::atomic<uint64_t> id;
  std::atomic<uint32_t> state;
  uint32_t reserved;
};

struct ThreadLog {
  std::atomic<uint64_t> ops;     // calls completed
  std::atomic<uint32_t> paused;  // 1 while the thread is parked between calls
  uint32_t reserved;
  // Acknowledged allocs and frees per device and kind: the truth for total_allocs/total_frees.
  std::atomic<uint64_t> allocs[kMaxDevices][protocol::kNumKinds];
  std::atomic<uint64_t> frees[kMaxDevices][protocol::kNumKinds];
  std::atomic<uint64_t> latency[kWindows][kBuckets];
  Slot slots[kSlotsPerThread];
};

struct AckTable {
  uint32_t threads;  // written by the test before the client starts
  uint32_t devices;
  std::atomic<uint32_t> pause;   // the test asks the threads to park between calls
  std::atomic<uint32_t> window;  // latency window the calls count in
  ThreadLog thread[kMaxThreads];
};

// A buffer's fields, derived from its id alone.
struct ExpectedBuffer {
  uint32_t device;
  uint32_t kind;
  uint64_t address;
  uint64_t size;
  uint64_t page_size;
  uint64_t size_per_bank;
  uint32_t num_banks;
};

inline uint64_t mix(uint64_t x) {  // murmur3 finaliser
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb93fe53ca34fULL;
  return x ^ (x >> 33);
}

inline uint64_t buffer_id(uint32_t thread, uint64_t serial) {
  return (uint64_t(thread + 1) << 40) | serial;
}

inline ExpectedBuffer buffer_for(uint64_t id, uint32_t devices) {
  static constexpr uint32_t kKinds[] = {TTMEM_KIND_DRAM, TTMEM_KIND_L1, TTMEM_KIND_SYSTEM_MEMORY,
                                        TTMEM_KIND_L1_SMALL, TTMEM_KIND_TRACE};
  uint64_t h = mix(id);
  ExpectedBuffer b{};
  b.device = uint32_t(h % devices);
  b.kind = kKinds[(h >> 8) % 5];
  const ttmem_kind_geometry& g = test_device_desc(b.device).kinds[b.kind];
  b.size = 1 + (h >> 16) % (1u << 20);
  b.page_size = 2048;
  b.num_banks = g.num_banks;
  b.size_per_bank = g.num_banks == 0 ? 0 : (b.size + g.num_banks - 1) / g.num_banks;
  b.address = g.bank_base + ((h >> 40) % 4096) * 32;
  return b;
}

inline uint64_t reserved_for(const ExpectedBuffer& b) {
  return protocol::reserved_bytes(b.kind, b.size, b.size_per_bank, 0, b.num_banks);
}

}  // namespace ttmem::test::fault
