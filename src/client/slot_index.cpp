#include "client/slot_index.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>

namespace ttmem::client {

SlotIndex::Entry* SlotIndex::map_table(size_t capacity) {
  void* p = ::mmap(nullptr, capacity * sizeof(Entry), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<Entry*>(p);
}

bool SlotIndex::reserve(uint32_t max_entries) {
  release();
  max_capacity_ = std::max(kInitialCapacity, std::bit_ceil(size_t(max_entries) * 2));
  const size_t capacity = std::min(kInitialCapacity, max_capacity_);
  entries_ = map_table(capacity);
  if (entries_ == nullptr) return false;
  set_capacity(capacity);
  size_ = 0;
  return true;
}

void SlotIndex::release() {
  if (entries_ != nullptr) ::munmap(entries_, capacity_ * sizeof(Entry));
  entries_ = nullptr;
  capacity_ = mask_ = 0;
  size_ = 0;
}

void SlotIndex::clear() {
  if (entries_ != nullptr) std::fill(entries_, entries_ + capacity_, Entry{});
  size_ = 0;
}

bool SlotIndex::grow() {
  if (capacity_ >= max_capacity_) return false;
  size_t bigger = capacity_ * 2;
  Entry* fresh = map_table(bigger);
  if (fresh == nullptr) return false;
  Entry* old = entries_;
  size_t old_capacity = capacity_;
  entries_ = fresh;
  set_capacity(bigger);
  for (size_t i = 0; i < old_capacity; ++i) {
    if (old[i].value == 0) continue;
    size_t j = home(old[i].key);
    while (entries_[j].value != 0) j = (j + 1) & mask_;
    entries_[j] = old[i];
  }
  ::munmap(old, old_capacity * sizeof(Entry));
  return true;
}

void SlotIndex::set_capacity(size_t capacity) {
  capacity_ = capacity;
  mask_ = capacity - 1;
  shift_ = 64 - unsigned(std::countr_zero(capacity));
}

size_t SlotIndex::longest_probe() const {
  size_t longest = 0;
  for (size_t i = 0; i < capacity_; ++i) {
    if (entries_[i].value != 0) longest = std::max(longest, (i - home(entries_[i].key)) & mask_);
  }
  return longest;
}

uint32_t SlotIndex::find(uint64_t key) const {
  for (size_t i = home(key);; i = (i + 1) & mask_) {
    const Entry& e = entries_[i];
    if (e.value == 0) return kNotFound;
    if (e.key == key) return e.value - 1;
  }
}

uint32_t SlotIndex::exchange(uint64_t key, uint32_t slot) {
  for (size_t i = home(key);; i = (i + 1) & mask_) {
    Entry& e = entries_[i];
    if (e.value == 0) {
      if (size_ + 1 > capacity_ / 2) {
        // Keep the load at most one half: grow, then place the key in the bigger table.
        if (!grow()) return kNotFound;
        return exchange(key, slot);
      }
      e.key = key;
      e.value = slot + 1;
      ++size_;
      return kNotFound;
    }
    if (e.key == key) {
      uint32_t old = e.value - 1;
      e.value = slot + 1;
      return old;
    }
  }
}

bool SlotIndex::insert(uint64_t key, uint32_t slot) {
  uint32_t before = size_;
  uint32_t old = exchange(key, slot);
  return old != kNotFound || size_ != before;
}

uint32_t SlotIndex::erase(uint64_t key) {
  size_t i = home(key);
  for (;; i = (i + 1) & mask_) {
    if (entries_[i].value == 0) return kNotFound;
    if (entries_[i].key == key) break;
  }
  uint32_t slot = entries_[i].value - 1;
  // Backward-shift: pull later entries of the probe run into the hole when their home position
  // allows it, so lookups never need tombstones.
  size_t hole = i;
  for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
    Entry& e = entries_[j];
    if (e.value == 0) break;
    size_t h = home(e.key);
    // Move e into the hole unless its home lies cyclically in (hole, j].
    bool home_after_hole = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
    if (!home_after_hole) {
      entries_[hole] = e;
      hole = j;
    }
  }
  entries_[hole].value = 0;
  entries_[hole].key = 0;
  --size_;
  return slot;
}

}  // namespace ttmem::client
