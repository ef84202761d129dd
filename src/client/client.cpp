// The in-process client library: the C API of include/ttmem/ttmem.h over the segment of
// src/protocol/segment.h.
//
// Hot path (alloc, free, CB alloc): one mode check, the device's spinlock (only threads reporting
// on the same device ever contend), a private index update, whole-word stores into the segment
// of words composed in registers (protocol::words_of), the clock read from the TSC (fast_clock.h).
// No system call, no heap allocation, no formatting, and no wait on any reader (but a lossless
// recorder's ring acknowledgement): readers only ever map the segment read-only.
//
// Slow paths (device registration, slab growth, string interning) may make system calls; they
// never run per event in steady state. Creating the segment at the first call, a forked child's
// own segment and the exit are in segment_setup.cpp; the state both files share is state.h.
#include <time.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <string>

#include "client/fast_clock.h"
#include "client/slot_index.h"
#include "client/state.h"
#include "common/clock.h"
#include "protocol/segment.h"
#include "ttmem/ttmem.h"

namespace ttmem::client {

using common::monotonic_ns;

// The data of the hot path, defined in the file of the hot path.
State g_state;

namespace {

struct OpStack {
  uint32_t ids[kOpStackDepth];
  uint32_t depth;  // may exceed kOpStackDepth; deeper ops name nothing new
};
// initial-exec for the same reason as FastClock's anchor (read on every untagged allocation).
[[gnu::tls_model("initial-exec")]] thread_local OpStack t_ops;

// Slab slots (below): a free slot for `dev` (UINT32_MAX when the slab is full), and a slot
// given back. Caller holds dev.lock.
uint32_t take_slot(DeviceState& dev);
void give_slot(DeviceState& dev, uint32_t slot);

// ---------------------------------------------------------------------------------------------
// Records, counters, events. All called with the device's lock held.

using RecordWords = pr::Words<pr::BufferRecord>;
constexpr size_t kTimeWord = offsetof(pr::BufferRecord, time_ns) / 8;

// Stores `rec`, marked live, into `slot`; returns the words it stored, which its event is made
// from.
RecordWords write_record(uint32_t slot, pr::BufferRecord rec) {
  rec.flags = pr::kRecordLive;
  const RecordWords words = pr::words_of(rec);
  pr::seqlock_write32(&slab()[slot], words);
  return words;
}

// Ends the live record in `slot` and returns its words. Only this process writes its slab, so
// its own record needs no seqlock to read; ending it is one atomic store of word 0: the record
// stops being live and its sequence advances, so a reader mid-copy sees the change and retries.
RecordWords clear_record(uint32_t slot) {
  pr::BufferRecord* shared = &slab()[slot];
  const auto words = std::bit_cast<RecordWords>(pr::copy_words_out(shared));
  const uint32_t seq = uint32_t(words[0]) + 2;
  const uint64_t cleared = (words[0] & 0x00FFFFFF00000000ULL) | seq;
  pr::store_word(reinterpret_cast<uint64_t*>(shared), cleared, std::memory_order_release);
  return words;
}

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

void push_event(DeviceState& dev, const pr::Words<pr::EventRecord>& ev) {
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


// Frees the live buffer in `slot` (already removed from the index).
void free_slot_locked(DeviceState& dev, uint32_t slot, uint64_t now) {
  RecordWords words = clear_record(slot);
  const auto r = std::bit_cast<pr::BufferRecord>(words);
  count_free(dev, r.kind, r.size, reserved_of(dev, r));
  words[kTimeWord] = now;
  push_event(dev, pr::event_words(pr::EventType::Free, words));
  give_slot(dev, slot);
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
    for (uint32_t i = 0; i < n; ++i)
      dev.local_free[dev.local_free_count++] = s.pool[--s.pool_count];
  }
  return dev.local_free[--dev.local_free_count];
}

void give_slot(DeviceState& dev, uint32_t slot) {
  if (dev.local_free_count == kLocalFreeSlots) [[unlikely]] {
    State& s = g_state;
    Guard g(s.pool_lock);
    for (uint32_t i = 0; i < kSlotBatch; ++i)
      s.pool[s.pool_count++] = dev.local_free[--dev.local_free_count];
  }
  dev.local_free[dev.local_free_count++] = slot;
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

}  // namespace

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

namespace {

DeviceState* registered_device(uint32_t device) {
  if (device >= pr::kMaxDevices) return nullptr;
  DeviceState* dev = &g_state.devices[device];
  // Hides where `dev` came from. Otherwise GCC rebuilds each field's address from g_state and
  // the device number, three instructions at a time, a dozen times per event.
  asm("" : "+r"(dev));
  return dev->registered.load(std::memory_order_acquire) ? dev : nullptr;
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
    const auto r = std::bit_cast<pr::BufferRecord>(clear_record(slot));
    const uint64_t reserved = reserved_of(dev, r);
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
  const pr::DeviceSlot slot = pr::device_slot_of(*desc);
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
  const RecordWords words = write_record(slot, r);
  count_alloc(*dev, r.kind, r.size, reserved);
  push_event(*dev, pr::event_words(pr::EventType::Alloc, words));
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
    const RecordWords words = write_record(slot, r);
    // From the record, as readers compute it, so the counters and every reader agree.
    const uint64_t reserved = reserved_of(*dev, r);
    count_alloc(*dev, r.kind, reserved, reserved);
    // Carries the core range: recordings rebuild what CB sets cover from it.
    push_event(*dev, pr::event_words(pr::EventType::CbAlloc, words));
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
  push_event(*dev, std::bit_cast<pr::Words<pr::EventRecord>>(ev));
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
  push_event(*dev, std::bit_cast<pr::Words<pr::EventRecord>>(ev));
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
