#include "model/free_list.h"

#include <algorithm>
#include <bit>

namespace ttmem::model {
namespace {

constexpr uint64_t kSizeClassBase = 1024;
// FreeListOpt stops adding classes at 128 MiB: bit_width(128 MiB / 1 KiB) = 18.
constexpr uint32_t kMaxSizeClasses = 18;

}  // namespace

uint32_t size_class_count(uint64_t bank_size) {
  const auto count = static_cast<uint32_t>(std::bit_width(bank_size / kSizeClassBase));
  return std::clamp(count, 2u, kMaxSizeClasses);
}

uint32_t size_class(uint64_t bytes, uint32_t class_count) {
  const uint64_t units = bytes / kSizeClassBase;
  const uint32_t log2 = units == 0 ? 0 : static_cast<uint32_t>(std::bit_width(units) - 1);
  return std::min(log2, class_count - 1);
}

std::optional<uint64_t> choose_address(std::span<const AddressRange> free_ranges, uint64_t bytes,
                                       bool bottom_up, AllocPolicy policy, uint32_t class_count) {
  auto place = [&](const AddressRange& r) { return bottom_up ? r.begin : r.end - bytes; };
  // Visits ranges in the direction's address order; returns the first accepted placement.
  auto scan = [&](auto&& accept) -> std::optional<uint64_t> {
    const size_t n = free_ranges.size();
    for (size_t i = 0; i < n; ++i) {
      const AddressRange& r = free_ranges[bottom_up ? i : n - 1 - i];
      if (r.size() >= bytes && accept(r)) return place(r);
    }
    return std::nullopt;
  };
  if (policy == AllocPolicy::FirstFit) {
    return scan([](const AddressRange&) { return true; });
  }
  for (uint32_t cls = size_class(bytes, class_count); cls < class_count; ++cls) {
    auto found =
        scan([&](const AddressRange& r) { return size_class(r.size(), class_count) == cls; });
    if (found) return found;
  }
  return std::nullopt;
}

std::vector<AddressRange> intersect(std::span<const AddressRange> a,
                                    std::span<const AddressRange> b) {
  std::vector<AddressRange> out;
  size_t i = 0;
  size_t j = 0;
  while (i < a.size() && j < b.size()) {
    const uint64_t begin = std::max(a[i].begin, b[j].begin);
    const uint64_t end = std::min(a[i].end, b[j].end);
    if (begin < end) out.push_back({begin, end});
    // Advance whichever range ends first; the other may still overlap the next one.
    if (a[i].end < b[j].end) {
      ++i;
    } else {
      ++j;
    }
  }
  return out;
}

FreeList::FreeList(uint64_t offset, uint64_t size, uint64_t alignment)
    : offset_(offset),
      size_(size),
      alignment_(alignment == 0 ? 1 : alignment),
      class_count_(size_class_count(size)) {
  if (size_ > 0) blocks_.push_back({0, size_, false});
}

uint64_t FreeList::block_size(uint64_t bytes) const {
  return align_up(std::max(bytes, alignment_), alignment_);
}

std::optional<uint64_t> FreeList::allocate(uint64_t bytes, bool bottom_up, AllocPolicy policy) {
  const uint64_t need = block_size(bytes);
  const std::vector<AddressRange> free = free_ranges();
  auto address = choose_address(free, need, bottom_up, policy, class_count_);
  if (!address || !allocate_at(*address, bytes)) return std::nullopt;
  return address;
}

size_t FreeList::block_containing(uint64_t relative) const {
  // The last block that begins at or before `relative`.
  auto it = std::upper_bound(blocks_.begin(), blocks_.end(), relative,
                             [](uint64_t value, const Block& b) { return value < b.begin; });
  return static_cast<size_t>(it - blocks_.begin()) - 1;
}

bool FreeList::allocate_at(uint64_t address, uint64_t bytes) {
  const uint64_t need = block_size(bytes);
  if (address < offset_ || blocks_.empty()) return false;
  const uint64_t begin = address - offset_;
  if (begin >= size_ || need > size_ - begin) return false;
  size_t index = block_containing(begin);
  Block block = blocks_[index];
  if (block.allocated || begin + need > block.begin + block.size) return false;

  // Split off the free space before and after the allocation, as FreeListOpt does.
  std::vector<Block> pieces;
  if (begin > block.begin) pieces.push_back({block.begin, begin - block.begin, false});
  pieces.push_back({begin, need, true});
  const uint64_t end = begin + need;
  if (end < block.begin + block.size)
    pieces.push_back({end, block.begin + block.size - end, false});
  blocks_.erase(blocks_.begin() + static_cast<ptrdiff_t>(index));
  blocks_.insert(blocks_.begin() + static_cast<ptrdiff_t>(index), pieces.begin(), pieces.end());
  ++num_allocated_;
  return true;
}

void FreeList::merge_with_next(size_t index) {
  if (index + 1 >= blocks_.size()) return;
  Block& a = blocks_[index];
  const Block& b = blocks_[index + 1];
  if (a.allocated || b.allocated) return;
  a.size += b.size;
  blocks_.erase(blocks_.begin() + static_cast<ptrdiff_t>(index) + 1);
}

bool FreeList::deallocate(uint64_t address) {
  if (address < offset_ || blocks_.empty()) return false;
  const uint64_t begin = address - offset_;
  if (begin >= size_) return false;
  size_t index = block_containing(begin);
  if (blocks_[index].begin != begin || !blocks_[index].allocated) return false;
  blocks_[index].allocated = false;
  --num_allocated_;
  merge_with_next(index);                     // with the following free block
  if (index > 0) merge_with_next(index - 1);  // and the preceding one
  return true;
}

std::vector<AddressRange> FreeList::free_ranges() const {
  std::vector<AddressRange> out;
  for (const Block& b : blocks_) {
    if (!b.allocated) out.push_back({offset_ + b.begin, offset_ + b.begin + b.size});
  }
  return out;
}

BankStatistics FreeList::statistics() const {
  BankStatistics s;
  s.total_allocatable = size_;
  for (const Block& b : blocks_) {
    if (b.allocated) {
      s.total_allocated += b.size;
    } else {
      s.total_free += b.size;
      s.largest_free_block = std::max(s.largest_free_block, b.size);
    }
  }
  return s;
}

std::optional<uint64_t> FreeList::lowest_allocated() const {
  for (const Block& b : blocks_) {
    if (b.allocated) return offset_ + b.begin;
  }
  return std::nullopt;
}

}  // namespace ttmem::model
