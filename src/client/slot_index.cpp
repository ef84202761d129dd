#include "client/slot_index.h"

#include <sys/mman.h>

#include <bit>

namespace ttmem::client {

bool SlotIndex::reserve(uint32_t max_entries) {
  release();
  size_t cap = std::bit_ceil(size_t(max_entries) * 2);
  if (cap < 16) cap = 16;
  void* p = ::mmap(nullptr, cap * sizeof(Entry), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  entries_ = static_cast<Entry*>(p);
  capacity_ = cap;
  mask_ = cap - 1;
  size_ = 0;
  return true;
}

void SlotIndex::release() {
  if (entries_ != nullptr) ::munmap(entries_, capacity_ * sizeof(Entry));
  entries_ = nullptr;
  capacity_ = mask_ = 0;
  size_ = 0;
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
      if (size_ + 1 > capacity_ / 2) return kNotFound;
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
