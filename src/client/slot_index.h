// Private (per-process, per-device) index from buffer id to slab slot.
//
// Open addressing with linear probing and backward-shift deletion, so steady-state churn never
// leaves tombstones and never allocates: the table is one anonymous mapping made at device
// registration, sized to twice the slab capacity (load factor <= 0.5 even if one device holds
// every live buffer). Untouched pages of the mapping cost no memory.
// Not thread-safe: the caller holds the device's lock.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ttmem::client {

class SlotIndex {
 public:
  static constexpr uint32_t kNotFound = UINT32_MAX;

  SlotIndex() = default;
  SlotIndex(const SlotIndex&) = delete;
  SlotIndex& operator=(const SlotIndex&) = delete;
  ~SlotIndex() { release(); }

  // Makes room for at least `max_entries` keys. False if the mapping failed.
  bool reserve(uint32_t max_entries);
  void release();
  bool ready() const { return entries_ != nullptr; }

  uint32_t find(uint64_t key) const;
  // False when the table is full (cannot happen while max_entries is respected).
  bool insert(uint64_t key, uint32_t slot);
  // Maps key to slot; returns the slot it replaced, or kNotFound (also when the table is full,
  // in which case nothing is stored: check size()). One probe for the allocation path, which
  // must notice a duplicate id.
  uint32_t exchange(uint64_t key, uint32_t slot);
  // Removes the key and returns its slot, or kNotFound.
  uint32_t erase(uint64_t key);
  uint32_t size() const { return size_; }

 private:
  // value == 0 marks an empty entry; stored values are slot + 1.
  struct Entry {
    uint64_t key;
    uint32_t value;
    uint32_t pad;
  };

  size_t home(uint64_t key) const {
    // Buffer ids are mostly a process-wide counter (tt-metal's unique_id), so the live set is a
    // window of recent ids: keeping consecutive ids in consecutive entries keeps that window in
    // a few cache lines. High bits are folded in so ids that differ only there (per-thread or
    // per-device id spaces) do not pile onto one run.
    return size_t(key ^ (key >> 21) ^ (key >> 42)) & mask_;
  }

  Entry* entries_ = nullptr;
  size_t capacity_ = 0;  // power of two
  size_t mask_ = 0;
  uint32_t size_ = 0;
};

}  // namespace ttmem::client
