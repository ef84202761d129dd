// Private (per-process, per-device) index from buffer id to slab slot.
//
// Open addressing with linear probing and backward-shift deletion, so churn never leaves
// tombstones. The table starts small and doubles (a slow path: one mapping and a rehash) when
// it passes half full, up to room for `max_entries`; it never shrinks, so steady state neither
// allocates nor rehashes, and a typical live set stays in cache. Ids are spread before placement
// (Fibonacci hashing, one multiply): tt-metal's unique_id is a counter, and long-lived low ids
// (weights) placed as they are would form runs that every later wrap of the counter has to probe
// through; ids that are addresses step by powers of two and would share a few home slots.
// Not thread-safe: the caller holds the device's lock.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ttmem::client {

class SlotIndex {
 public:
  static constexpr uint32_t kNotFound = UINT32_MAX;
  static constexpr size_t kInitialCapacity = 1024;

  SlotIndex() = default;
  SlotIndex(const SlotIndex&) = delete;
  SlotIndex& operator=(const SlotIndex&) = delete;
  ~SlotIndex() { release(); }

  // Allows up to `max_entries` keys. False if the first mapping failed.
  bool reserve(uint32_t max_entries);
  void release();
  bool ready() const { return entries_ != nullptr; }

  uint32_t find(uint64_t key) const;
  // False when the key could not be stored (max_entries reached, or growing failed).
  bool insert(uint64_t key, uint32_t slot);
  // Maps key to slot; returns the slot it replaced, or kNotFound (also when the key could not be
  // stored, in which case size() did not grow). One probe for the allocation path, which must
  // notice a duplicate id.
  uint32_t exchange(uint64_t key, uint32_t slot);
  // Removes the key and returns its slot, or kNotFound.
  uint32_t erase(uint64_t key);
  uint32_t size() const { return size_; }
  // How far the entry placed furthest from its home slot lies from it (a full scan, for tests).
  size_t longest_probe() const;
  size_t capacity() const { return capacity_; }

  // Calls fn(key, slot) for every entry, in table order; the table must not change meanwhile.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (size_t i = 0; i < capacity_; ++i) {
      if (entries_[i].value != 0) fn(entries_[i].key, entries_[i].value - 1);
    }
  }
  // Removes every entry; keeps the table's size.
  void clear();

 private:
  // value == 0 marks an empty entry; stored values are slot + 1.
  struct Entry {
    uint64_t key;
    uint32_t value;
    uint32_t pad;
  };

  size_t home(uint64_t key) const {
    // Fibonacci hashing: the top bits of the id times 2^64 / golden ratio. Consecutive ids land
    // evenly spread, never side by side, and every id bit reaches the top bits.
    return size_t((key * 0x9E3779B97F4A7C15ULL) >> shift_);
  }
  static Entry* map_table(size_t capacity);
  bool grow();
  // The table's size and what home() and probing derive from it.
  void set_capacity(size_t capacity);

  Entry* entries_ = nullptr;
  size_t capacity_ = 0;  // power of two
  size_t mask_ = 0;
  unsigned shift_ = 63;  // 64 - log2(capacity_); unused while there is no table
  size_t max_capacity_ = 0;
  uint32_t size_ = 0;
};

}  // namespace ttmem::client
