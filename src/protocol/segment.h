// The shared-memory segment: the one definition of its layout and record formats.
//
// One segment per tracked process, a file in the segment directory (a tmpfs, /dev/shm by
// default) named `ttmem-<pid>-<start_time>.seg`. The client maps it read-write and is its only
// writer; collectors map it read-only and validate every byte (they never trust it).
// docs/protocol.md mirrors this file; change both together.
//
// All integers are little-endian, naturally aligned. Records that change after creation are
// written with seqlocks (see seqlock_* below) so a reader can tell a torn read from a good one.
//
// Segment, byte offsets (sizes derived by compute_layout() from the capacities in the header):
//
//   0        +------------------------------+
//            | SegmentHeader       4096 B   |  identity, geometry, process counters, cmdline
//   4096     +------------------------------+
//            | DeviceSlot[64]      512 B ea |  device descriptors (seqlocked)
//            +------------------------------+
//            | KindCounters[64][6]  64 B ea |  exact per-device, per-kind counters
//            +------------------------------+
//            | RingHead[64]         64 B ea |  events written per device ring
//            +------------------------------+
//            | StringSlot[N]       128 B ea |  interned tags; id = index, 0 = "no tag"
//            +------------------------------+
//            | BufferRecord[M]      64 B ea |  live-buffer slab (exact)
//            +------------------------------+
//            | EventRecord[64][R]   64 B ea |  one history ring per device (R = power of two)
//            +------------------------------+  = segment_size
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "ttmem/ttmem.hpp"

namespace ttmem::protocol {

// "TTMEMSEG" read as a little-endian u64.
inline constexpr uint64_t kSegmentMagic = 0x474553'4D454D5454ULL;
inline constexpr uint32_t kSegmentVersion = 1;

inline constexpr uint32_t kMaxDevices = 64;
inline constexpr uint32_t kNumKinds = 6;  // DRAM, L1, SYSTEM_MEMORY, L1_SMALL, TRACE, CB
inline constexpr uint32_t kHeaderSize = 4096;
inline constexpr uint32_t kCmdlineBytes = 1024;

// Capacities a segment may declare. Collectors reject anything outside these bounds, so a
// hostile header cannot make them allocate or scan without limit.
inline constexpr uint32_t kMinSlabCapacity = 64;
inline constexpr uint32_t kMaxSlabCapacity = 1u << 24;
inline constexpr uint32_t kDefaultSlabCapacity = 1u << 18;
inline constexpr uint32_t kMinRingCapacity = 16;
inline constexpr uint32_t kMaxRingCapacity = 1u << 20;
inline constexpr uint32_t kDefaultRingCapacity = 1u << 13;
inline constexpr uint32_t kStringCapacity = 4096;
inline constexpr uint32_t kStringMaxLen = 126;

// Records carry the kind as a byte: a ttmem::Kind (ttmem/ttmem.hpp), the one C++ kind enum.
static_assert(kNumKinds == TTMEM_KIND_COUNT && uint32_t(Kind::Cb) == kNumKinds - 1);

// ---------------------------------------------------------------------------------------------
// DeviceSlot (512 B), seqlocked: `seq` odd while being written, even when stable.
//
//   0 seq u32 | 4 flags u32 (bit0 registered) | 8 logical_id u32 | 12 arch u32
//  16 chip_id u64 | 24 grid_x u16 | 26 grid_y u16 | 28 reserved u32
//  32 l1_per_core u64 | 40 unreserved_base u64 | 48 trace_region_size u64 | 56 l1_small_size u64
//  64 KindGeometry[6] (32 B each: capacity u64, bank_size u64, bank_base u64, num_banks u32,
//     alignment u32) up to 256
// 256 board[32] (NUL-terminated) | 288 reserved up to 512
// ---------------------------------------------------------------------------------------------
inline constexpr uint32_t kDeviceRegistered = 1;

struct KindGeometry {
  uint64_t capacity;
  uint64_t bank_size;
  uint64_t bank_base;
  uint32_t num_banks;
  uint32_t alignment;
};
static_assert(sizeof(KindGeometry) == 32);

struct DeviceSlot {
  uint32_t seq;
  uint32_t flags;
  uint32_t logical_id;
  uint32_t arch;
  uint64_t chip_id;
  uint16_t grid_x;
  uint16_t grid_y;
  uint32_t reserved0;
  uint64_t l1_per_core;
  uint64_t unreserved_base;
  uint64_t trace_region_size;
  uint64_t l1_small_size;
  KindGeometry kinds[kNumKinds];
  char board[32];
  uint8_t reserved1[512 - 288];
};
static_assert(sizeof(DeviceSlot) == 512);
static_assert(offsetof(DeviceSlot, kinds) == 64);
static_assert(offsetof(DeviceSlot, board) == 256);

// The slot a registration writes: the descriptor's fields, the board name cut to fit. The one
// conversion from ttmem_device_desc (ttmem.h) to the shared-memory layout.
inline DeviceSlot device_slot_of(const ttmem_device_desc& desc) {
  DeviceSlot slot{};
  slot.logical_id = desc.logical_id;
  slot.arch = desc.arch;
  slot.chip_id = desc.chip_id;
  slot.grid_x = desc.grid_x;
  slot.grid_y = desc.grid_y;
  slot.l1_per_core = desc.l1_per_core;
  slot.unreserved_base = desc.unreserved_base;
  slot.trace_region_size = desc.trace_region_size;
  slot.l1_small_size = desc.l1_small_size;
  for (uint32_t k = 0; k < kNumKinds; ++k) {
    const ttmem_kind_geometry& g = desc.kinds[k];
    slot.kinds[k] = {g.capacity, g.bank_size, g.bank_base, g.num_banks, g.alignment};
  }
  if (desc.board != nullptr) std::strncpy(slot.board, desc.board, sizeof slot.board - 1);
  return slot;
}

// A slot's board name: up to its first NUL, never past the field (a slot is read from memory
// another process wrote).
inline std::string_view board_of(const DeviceSlot& slot) {
  return {slot.board, strnlen(slot.board, sizeof slot.board)};
}

// ---------------------------------------------------------------------------------------------
// SegmentHeader (4096 B). Written once before the file is renamed into place, except for the
// atomic counters and `state`, which the client updates.
//
//   0  magic u64 | 8 version u32 | 12 header_size u32 | 16 segment_size u64
//  24  pid u32 | 28 uid u32 | 32 start_time u64 (clock ticks since boot, /proc/PID/stat #22)
//  40  created_realtime_ns u64 | 48 created_monotonic_ns u64
//  56  max_devices u32 | 60 num_kinds u32 | 64 string_capacity u32 | 68 slab_capacity u32
//  72  ring_capacity u32 | 76 device_slot_size u32 | 80 record_size u32 | 84 event_size u32
//  88  string_slot_size u32 | 92 reserved u32
//  96  devices_offset, counters_offset, ring_heads_offset, strings_offset, slab_offset,
//      rings_offset (u64 each, up to 144)
// 144  pid_namespace u64: inode of the writer's /proc/self/ns/pid (0 = not known). `pid` and
//      `start_time` mean something only to a reader in the same PID namespace.
// 192  state u32 atomic | 196 string_count u32 atomic | 200 slab_high_water u32 atomic
// 256  ProcessCounters (64 B, see below)
// 1024 cmdline[1024]: NUL-separated argv, NUL-padded
// 2048 registering: DeviceSlot (512 B, seqlocked), the descriptor of the latest registration,
//      written completely before the device's own slot is. A reader that finds the slot being
//      written (odd), or left odd by a writer that died there, uses this copy when it names
//      the same device: re-registering is atomic for readers and safe to crash in.
// ---------------------------------------------------------------------------------------------

// Header `state` values.
inline constexpr uint32_t kStateActive = 1;  // the process is running and writing
inline constexpr uint32_t kStateExited = 2;  // the process exited normally (leaks may remain)

// Counters of reports the client could not record; all single 8-byte atomics.
struct ProcessCounters {
  uint64_t slab_overflow;    // allocations not recorded: slab full
  uint64_t unknown_frees;    // frees of ids that were not live
  uint64_t duplicate_allocs; // allocations of an id that was already live (old one replaced)
  uint64_t invalid_calls;    // reports rejected for bad fields or unregistered devices
  uint64_t cb_overflow;      // CBs not recorded: too many live CBs on a device
  uint64_t tag_overflow;     // tags and op names left out: the string table was full
  uint64_t reserved[2];
};
static_assert(sizeof(ProcessCounters) == 64);

struct SegmentHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t header_size;
  uint64_t segment_size;
  uint32_t pid;
  uint32_t uid;
  uint64_t start_time;
  uint64_t created_realtime_ns;
  uint64_t created_monotonic_ns;
  uint32_t max_devices;
  uint32_t num_kinds;
  uint32_t string_capacity;
  uint32_t slab_capacity;
  uint32_t ring_capacity;
  uint32_t device_slot_size;
  uint32_t record_size;
  uint32_t event_size;
  uint32_t string_slot_size;
  uint32_t reserved0;
  uint64_t devices_offset;
  uint64_t counters_offset;
  uint64_t ring_heads_offset;
  uint64_t strings_offset;
  uint64_t slab_offset;
  uint64_t rings_offset;
  uint64_t pid_namespace;
  uint8_t pad0[192 - 152];
  uint32_t state;
  uint32_t string_count;
  uint32_t slab_high_water;
  uint8_t pad1[256 - 204];
  ProcessCounters counters;
  uint8_t pad2[1024 - 320];
  char cmdline[kCmdlineBytes];
  DeviceSlot registering;
  uint8_t pad3[kHeaderSize - 2048 - sizeof(DeviceSlot)];
};
static_assert(sizeof(SegmentHeader) == kHeaderSize);
static_assert(offsetof(SegmentHeader, devices_offset) == 96);
static_assert(offsetof(SegmentHeader, pid_namespace) == 144);
static_assert(offsetof(SegmentHeader, state) == 192);
static_assert(offsetof(SegmentHeader, counters) == 256);
static_assert(offsetof(SegmentHeader, cmdline) == 1024);
static_assert(offsetof(SegmentHeader, registering) == 2048);

// ---------------------------------------------------------------------------------------------
// KindCounters (64 B): exact counters for one (device, kind). Each field is an 8-byte atomic
// written by the client under its per-device lock (single writer) and read relaxed.
//
//   0 current_requested | 8 current_reserved | 16 peak_reserved | 24 live_count
//  32 total_allocs | 40 total_frees | 48 peak_requested | 56 reserved
// ---------------------------------------------------------------------------------------------
struct KindCounters {
  uint64_t current_requested;
  uint64_t current_reserved;
  uint64_t peak_reserved;
  uint64_t live_count;
  uint64_t total_allocs;
  uint64_t total_frees;
  uint64_t peak_requested;
  uint64_t reserved;
};
static_assert(sizeof(KindCounters) == 64);

// RingHead (64 B): `head` is the number of events ever written to the device's ring; the event
// with index i lives in slot i % ring_capacity. One cache line each to avoid false sharing.
struct RingHead {
  uint64_t head;
  uint8_t pad[56];
};
static_assert(sizeof(RingHead) == 64);

// StringSlot (128 B): `len` u8 then up to 126 bytes, NUL-terminated. Slots [1, string_count) are
// valid; each is written completely before string_count is raised (release).
struct alignas(8) StringSlot {
  uint8_t len;
  char text[127];
};
static_assert(sizeof(StringSlot) == 128);

// ---------------------------------------------------------------------------------------------
// BufferRecord (64 B): one live buffer, or one CB of a program on one core range, in the slab.
//
// word 0 is the seqlock and the liveness flag in one 8-byte word, so a free is one atomic store:
//   0 seq u32 | 4 device u8 | 5 kind u8 | 6 layout u8 | 7 flags u8 (bit0 live)
//   8 buffer_id u64 (CB: program id)
//  16 address u64
//  24 size u64 (CB: bytes per core)
//  32 size_per_bank u64 (CB: bytes per core)
//  40 page_size u32 | 44 tag u32 (string id)
//  48 num_banks u16 (banks or shards; CB: cores) | 50 num_cores u16 | 52 aux u32
//     (CB: its core range x0,y0,x1,y1 as bytes, inclusive)
//  56 time_ns u64 (CLOCK_MONOTONIC at allocation)
//
// Writer (alloc): word0 <- seq+1 (odd, not live); fields; word0 <- seq+2 with live (release).
// Writer (free):  word0 <- seq+2 with live cleared (one store; never torn).
// ---------------------------------------------------------------------------------------------
inline constexpr uint8_t kRecordLive = 1;

// Reserved bytes of a buffer or CB: the address range the lock-step banked allocator takes, over
// all banks. Every bank of the kind reserves size_per_bank (even banks that hold no page of the
// buffer); `kind_banks` is the device's bank count for the kind, 0 for kinds without banks. A CB
// takes `size` bytes on each of its cores. The one definition of the "reserved" figure, shared
// by the client's counters and every reader.
constexpr uint64_t reserved_bytes(uint32_t kind, uint64_t size, uint64_t size_per_bank,
                                  uint64_t num_cores, uint32_t kind_banks) {
  if (kind == uint32_t(Kind::Cb)) return size * num_cores;
  return kind_banks != 0 ? size_per_bank * kind_banks : size;
}

struct BufferRecord {
  uint32_t seq;
  uint8_t device;
  uint8_t kind;
  uint8_t layout;
  uint8_t flags;
  uint64_t buffer_id;
  uint64_t address;
  uint64_t size;
  uint64_t size_per_bank;
  uint32_t page_size;
  uint32_t tag;
  uint16_t num_banks;
  uint16_t num_cores;
  uint32_t aux;
  uint64_t time_ns;
};
static_assert(sizeof(BufferRecord) == 64);
static_assert(offsetof(BufferRecord, buffer_id) == 8);
static_assert(offsetof(BufferRecord, tag) == 44);
static_assert(offsetof(BufferRecord, time_ns) == 56);

// ---------------------------------------------------------------------------------------------
// Records as the 8-byte words they are stored in. The client composes a record's words in
// registers and stores them whole. Built field by field on the stack and read back a word at a
// time, each word's load waited for its narrower stores to drain (a store-to-load forward that
// cannot succeed), which cost the hot path about a fifth of its time.
// ---------------------------------------------------------------------------------------------
static_assert(std::endian::native == std::endian::little, "segments are little-endian");

template <class T>
using Words = std::array<uint64_t, sizeof(T) / 8>;

// ORs a field's value into the word that holds byte `offset`, where storing the field would put
// it. `offset` is the field's offsetof, so the words follow the struct's layout.
template <class T, class V>
constexpr void place(Words<T>& words, size_t offset, V value) {
  static_assert(std::is_unsigned_v<V> && sizeof(V) <= 8);
  words[offset / 8] |= uint64_t(value) << (8 * (offset % 8));
}

// Every field of `r`: bit for bit the record, with no trip through memory.
constexpr Words<BufferRecord> words_of(const BufferRecord& r) {
  Words<BufferRecord> w{};
  place<BufferRecord>(w, offsetof(BufferRecord, seq), r.seq);
  place<BufferRecord>(w, offsetof(BufferRecord, device), r.device);
  place<BufferRecord>(w, offsetof(BufferRecord, kind), r.kind);
  place<BufferRecord>(w, offsetof(BufferRecord, layout), r.layout);
  place<BufferRecord>(w, offsetof(BufferRecord, flags), r.flags);
  place<BufferRecord>(w, offsetof(BufferRecord, buffer_id), r.buffer_id);
  place<BufferRecord>(w, offsetof(BufferRecord, address), r.address);
  place<BufferRecord>(w, offsetof(BufferRecord, size), r.size);
  place<BufferRecord>(w, offsetof(BufferRecord, size_per_bank), r.size_per_bank);
  place<BufferRecord>(w, offsetof(BufferRecord, page_size), r.page_size);
  place<BufferRecord>(w, offsetof(BufferRecord, tag), r.tag);
  place<BufferRecord>(w, offsetof(BufferRecord, num_banks), r.num_banks);
  place<BufferRecord>(w, offsetof(BufferRecord, num_cores), r.num_cores);
  place<BufferRecord>(w, offsetof(BufferRecord, aux), r.aux);
  place<BufferRecord>(w, offsetof(BufferRecord, time_ns), r.time_ns);
  return w;
}

// ---------------------------------------------------------------------------------------------
// EventRecord (64 B): one history event in a device ring.
//
//   0 seq u64: 2*i+1 while event i is being written, 2*i+2 once complete
//   8 type u8 | 9 kind u8 | 10 layout u8 | 11 flags u8 | 12 tag u32
//  16 buffer_id u64 | 24 address u64 | 32 size u64 | 40 size_per_bank u64
//  48 num_banks u16 | 50 num_cores u16 | 52 page_size u32 | 56 time_ns u64
//
// The ring overwrites: a writer never waits. A reader that falls more than ring_capacity events
// behind (or starts late) finds newer sequence numbers and counts the gap as dropped events.
// CB_ALLOC is one record of a program's CB on one core range (buffer_id: the program id; the
// range x0,y0,x1,y1 as bytes in page_size, as in the record's aux).
// CB_FREE_ALL carries the freed CB bytes (over all cores) in `size` and the count of records in
// buffer_id. CB_FREE_PROGRAM frees one program's set on the device: buffer_id is the program id,
// `size` the freed bytes and size_per_bank the count of records.
// ---------------------------------------------------------------------------------------------
enum class EventType : uint8_t { Alloc = 1, Free = 2, CbAlloc = 3, CbFreeAll = 4, CbFreeProgram = 5 };

struct EventRecord {
  uint64_t seq;
  uint8_t type;
  uint8_t kind;
  uint8_t layout;
  uint8_t flags;
  uint32_t tag;
  uint64_t buffer_id;
  uint64_t address;
  uint64_t size;
  uint64_t size_per_bank;
  uint16_t num_banks;
  uint16_t num_cores;
  uint32_t page_size;
  uint64_t time_ns;
};
static_assert(sizeof(EventRecord) == 64);

// The event that reports a record, and the record an alloc event describes: the one place the
// two layouts meet. A CB has no pages: its events carry its core rectangle (the record's `aux`)
// in `page_size`, so history alone says which cores it covers.
//
// The event is made from the record's words, not its fields: the client has those words in
// registers (it has just composed or read them), and most fields sit at the same place in both
// layouts or one word later. Taking a freed record's fields apart and putting them back cost
// eight of the free's instructions. The asserts pin each move to the two layouts.
constexpr Words<EventRecord> event_words(EventType type, const Words<BufferRecord>& rec) {
  using B = BufferRecord;
  using E = EventRecord;
  // kind and layout: bytes 5-6 of record word 0 become bytes 9-10 (word 1, bytes 1-2).
  static_assert(offsetof(B, kind) == 5 && offsetof(B, layout) == 6);
  static_assert(offsetof(E, type) == 8 && offsetof(E, kind) == 9 && offsetof(E, layout) == 10);
  // tag: the high half of record word 5 and of event word 1.
  static_assert(offsetof(B, tag) == 44 && offsetof(E, tag) == 12);
  // buffer_id .. size_per_bank: record words 1-4 are event words 2-5.
  static_assert(offsetof(B, buffer_id) == 8 && offsetof(E, buffer_id) == 16);
  static_assert(offsetof(B, address) == 16 && offsetof(E, address) == 24);
  static_assert(offsetof(B, size) == 24 && offsetof(E, size) == 32);
  static_assert(offsetof(B, size_per_bank) == 32 && offsetof(E, size_per_bank) == 40);
  // num_banks, num_cores: the low half of word 6 in both; its high half is the record's aux and
  // the event's page_size, which a non-CB event takes from the low half of record word 5.
  static_assert(offsetof(B, num_banks) == 48 && offsetof(E, num_banks) == 48);
  static_assert(offsetof(B, num_cores) == 50 && offsetof(E, num_cores) == 50);
  static_assert(offsetof(B, aux) == 52 && offsetof(E, page_size) == 52);
  static_assert(offsetof(B, page_size) == 40);
  static_assert(offsetof(B, time_ns) == 56 && offsetof(E, time_ns) == 56);
  constexpr uint64_t kLowHalf = 0xFFFF'FFFFULL;
  const bool is_cb = ((rec[0] >> 40) & 0xFF) == uint64_t(Kind::Cb);
  Words<EventRecord> w{};
  w[1] = uint64_t(type) | ((rec[0] >> 32) & 0x00FF'FF00ULL) | (rec[5] & ~kLowHalf);
  w[2] = rec[1];
  w[3] = rec[2];
  w[4] = rec[3];
  w[5] = rec[4];
  w[6] = is_cb ? rec[6] : (rec[6] & kLowHalf) | (rec[5] << 32);
  w[7] = rec[7];
  return w;
}
inline Words<EventRecord> event_words(EventType type, const BufferRecord& r) {
  return event_words(type, words_of(r));
}
inline EventRecord event_of(EventType type, const BufferRecord& r) {
  return std::bit_cast<EventRecord>(event_words(type, r));
}

inline BufferRecord record_of(uint32_t device, const EventRecord& ev) {
  BufferRecord r{};
  r.device = uint8_t(device);
  r.kind = ev.kind;
  r.layout = ev.layout;
  r.flags = kRecordLive;
  r.buffer_id = ev.buffer_id;
  r.address = ev.address;
  r.size = ev.size;
  r.size_per_bank = ev.size_per_bank;
  r.tag = ev.tag;
  r.num_banks = ev.num_banks;
  r.num_cores = ev.num_cores;
  if (ev.kind == uint8_t(Kind::Cb)) {
    r.aux = ev.page_size;
  } else {
    r.page_size = ev.page_size;
  }
  r.time_ns = ev.time_ns;
  return r;
}

// ---------------------------------------------------------------------------------------------
// Layout: the one place offsets are computed. The client writes them into the header; the
// collector recomputes them from the header's capacities and rejects a header that disagrees.
// ---------------------------------------------------------------------------------------------
struct Layout {
  uint64_t devices_offset;
  uint64_t counters_offset;
  uint64_t ring_heads_offset;
  uint64_t strings_offset;
  uint64_t slab_offset;
  uint64_t rings_offset;
  uint64_t segment_size;
};

constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

constexpr Layout compute_layout(uint32_t slab_capacity, uint32_t ring_capacity) {
  Layout l{};
  l.devices_offset = kHeaderSize;
  l.counters_offset = l.devices_offset + uint64_t{kMaxDevices} * sizeof(DeviceSlot);
  l.ring_heads_offset =
      l.counters_offset + uint64_t{kMaxDevices} * kNumKinds * sizeof(KindCounters);
  l.strings_offset = l.ring_heads_offset + uint64_t{kMaxDevices} * sizeof(RingHead);
  l.slab_offset = align_up(l.strings_offset + uint64_t{kStringCapacity} * sizeof(StringSlot), 4096);
  l.rings_offset = align_up(l.slab_offset + uint64_t{slab_capacity} * sizeof(BufferRecord), 4096);
  l.segment_size = align_up(
      l.rings_offset + uint64_t{kMaxDevices} * ring_capacity * sizeof(EventRecord), 4096);
  return l;
}

constexpr bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Segment file name: ttmem-<pid>-<start_time>.seg; written first under a ".tmp" suffix and
// renamed into place once the header is complete, so a collector never sees a half-made header.
inline constexpr const char* kSegmentPrefix = "ttmem-";
inline constexpr const char* kSegmentSuffix = ".seg";

// ---------------------------------------------------------------------------------------------
// RecordAck (4096 B), the file "<segment>.ack": how far a lossless recorder has read each ring.
// Only a program `ttmem record` runs has one (it sets TTMEM_RECORD_ACK=1): its client creates
// the file, mode 0600, before renaming its segment into place, and removes it at exit. The
// recorder maps it read-write and stores, after every drain, the index of the next event it
// will read per device (release). Before overwriting an event the recorder has not read, the
// client waits for it, so the recording loses nothing. `released` = 1 (the recorder stopped),
// or no progress for kAckPatienceNs (it died), and the client stops waiting for good.
// ---------------------------------------------------------------------------------------------
inline constexpr const char* kAckSuffix = ".ack";
inline constexpr uint64_t kAckPatienceNs = 2'000'000'000;
struct alignas(8) RecordAck {
  uint64_t read[kMaxDevices];
  uint32_t released;
  uint8_t reserved[4096 - kMaxDevices * 8 - 4];
};
static_assert(sizeof(RecordAck) == 4096);

// ---------------------------------------------------------------------------------------------
// Word-wise atomic access. Records are copied as 8-byte relaxed atomics so concurrent access is
// well-defined (and TSan-clean); the seqlock decides whether a copy is consistent.
// ---------------------------------------------------------------------------------------------
template <class T>
concept WordRecord = std::is_trivially_copyable_v<T> && sizeof(T) % 8 == 0 && alignof(T) >= 8;

inline uint64_t load_word(const uint64_t* p, std::memory_order mo = std::memory_order_relaxed) {
  // Loads never write, so casting const away for atomic_ref is sound even on a read-only mapping.
  return std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(p)).load(mo);
}
inline void store_word(uint64_t* p, uint64_t v, std::memory_order mo = std::memory_order_relaxed) {
  std::atomic_ref<uint64_t>(*p).store(v, mo);
}
inline uint32_t load_u32(const uint32_t* p, std::memory_order mo = std::memory_order_relaxed) {
  return std::atomic_ref<uint32_t>(*const_cast<uint32_t*>(p)).load(mo);
}
inline void store_u32(uint32_t* p, uint32_t v, std::memory_order mo = std::memory_order_relaxed) {
  std::atomic_ref<uint32_t>(*p).store(v, mo);
}

template <WordRecord T>
void copy_words_in(T* shared, const Words<T>& words, size_t first_word = 0) {
  auto* dst = reinterpret_cast<uint64_t*>(shared);
#pragma GCC unroll 16
  for (size_t i = first_word; i < words.size(); ++i) store_word(dst + i, words[i]);
}
template <WordRecord T>
void copy_words_in(T* shared, const T& local, size_t first_word = 0) {
  copy_words_in(shared, std::bit_cast<Words<T>>(local), first_word);
}

template <WordRecord T>
T copy_words_out(const T* shared, size_t first_word = 0) {
  const auto* src = reinterpret_cast<const uint64_t*>(shared);
  uint64_t dst[sizeof(T) / 8] = {};
#pragma GCC unroll 16
  for (size_t i = first_word; i < sizeof(T) / 8; ++i) dst[i] = load_word(src + i);
  T out;
  std::memcpy(&out, dst, sizeof(T));
  return out;
}

// Reads a record whose first word holds a 32-bit seqlock in its low half (BufferRecord,
// DeviceSlot). Returns false when the record was being written (odd) or changed during the copy.
// Pairs with the writer's release store of the even sequence number.
template <WordRecord T>
bool seqlock_read32(const T* shared, T* out) {
  const auto* w0 = reinterpret_cast<const uint64_t*>(shared);
  uint64_t first = load_word(w0, std::memory_order_acquire);
  if (first & 1) return false;
  T copy = copy_words_out(shared, 1);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (load_word(w0, std::memory_order_relaxed) != first) return false;
  std::memcpy(&copy, &first, sizeof(first));
  *out = copy;
  return true;
}

// Writes a whole record under its 32-bit seqlock (single writer). The caller's words supply
// every field except the sequence number, which this function advances twice.
template <WordRecord T>
void seqlock_write32(T* shared, const Words<T>& words) {
  auto* w0 = reinterpret_cast<uint64_t*>(shared);
  uint64_t old_first = load_word(w0);
  uint32_t seq = static_cast<uint32_t>(old_first);
  // Odd sequence, fields of the old word 0 kept but the record no longer live.
  uint64_t writing = (old_first & 0x00FFFFFF00000000ULL) | uint32_t(seq + 1);
  store_word(w0, writing);
  std::atomic_thread_fence(std::memory_order_release);
  copy_words_in(shared, words, 1);
  const uint64_t first = (words[0] & ~uint64_t{0xFFFFFFFF}) | uint32_t(seq + 2);
  store_word(w0, first, std::memory_order_release);
}
template <WordRecord T>
void seqlock_write32(T* shared, const T& local) {
  seqlock_write32(shared, std::bit_cast<Words<T>>(local));
}

}  // namespace ttmem::protocol
