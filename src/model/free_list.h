// One bank's free list, with the placement rules of tt-metal's FreeListOpt.
//
// The list covers [offset, offset + size) of a bank as address-ordered blocks, each free or
// allocated. Block sizes are rounded to the allocator alignment (tt-metal uses the DRAM alignment
// for every bank manager). Placement is separate from the list (choose_address) so a mesh can
// place one lock-step allocation over the intersection of its chips' free ranges with the very
// same rules.
//
// Placement, as FreeListOpt does it:
//   first-fit  bottom-up: the lowest free block that fits, allocation at its start;
//              top-down:  the highest free block that fits, allocation at its end.
//   best-fit   free blocks sit in power-of-two size classes from 1 KiB; the first block that fits
//              (in address order for the direction) in the smallest class holding one.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "model/device_spec.h"

namespace ttmem::model {

struct AddressRange {
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t size() const { return end - begin; }
  bool operator==(const AddressRange&) const = default;
};

// tt-metal's allocator::Statistics for one bank.
struct BankStatistics {
  uint64_t total_allocatable = 0;
  uint64_t total_allocated = 0;
  uint64_t total_free = 0;
  uint64_t largest_free_block = 0;
};

// FreeListOpt's size classes: log2(size / 1 KiB), the last class open-ended. A bank of
// `bank_size` bytes has clamp(bit_width(bank_size / 1 KiB), 2, 18) classes.
uint32_t size_class_count(uint64_t bank_size);
uint32_t size_class(uint64_t bytes, uint32_t class_count);

// Where an allocation of `bytes` (already aligned) goes among `free_ranges` (address-ordered,
// disjoint); nullopt when no range fits.
std::optional<uint64_t> choose_address(std::span<const AddressRange> free_ranges, uint64_t bytes,
                                       bool bottom_up, AllocPolicy policy, uint32_t class_count);

// The ranges free in both address-ordered lists.
std::vector<AddressRange> intersect(std::span<const AddressRange> a,
                                    std::span<const AddressRange> b);

class FreeList {
 public:
  FreeList(uint64_t offset, uint64_t size, uint64_t alignment);

  uint64_t offset() const { return offset_; }
  uint64_t size() const { return size_; }
  uint64_t alignment() const { return alignment_; }
  uint32_t class_count() const { return class_count_; }

  // The bytes a request of `bytes` occupies: at least one alignment unit, rounded up to it.
  uint64_t block_size(uint64_t bytes) const;

  // Allocates by the placement rules; returns the absolute address.
  std::optional<uint64_t> allocate(uint64_t bytes, bool bottom_up, AllocPolicy policy);
  // Takes [address, address + block_size(bytes)) if that range is free.
  bool allocate_at(uint64_t address, uint64_t bytes);
  // Frees the block that starts at `address`; false if none does.
  bool deallocate(uint64_t address);

  std::vector<AddressRange> free_ranges() const;  // absolute, address-ordered
  BankStatistics statistics() const;
  std::optional<uint64_t> lowest_allocated() const;  // absolute
  size_t num_allocated() const { return num_allocated_; }

 private:
  struct Block {
    uint64_t begin;  // relative to offset_
    uint64_t size;
    bool allocated;
  };

  size_t block_containing(uint64_t relative) const;
  void merge_with_next(size_t index);

  uint64_t offset_;
  uint64_t size_;
  uint64_t alignment_;
  uint32_t class_count_;
  size_t num_allocated_ = 0;
  std::vector<Block> blocks_;  // address-ordered, contiguous cover of [0, size_)
};

}  // namespace ttmem::model
