#include "collector/address_map.h"

#include <algorithm>
#include <array>
#include <bit>
#include <memory>

namespace ttmem::collector {

namespace {

bool begins_before(const AddressRange& a, const AddressRange& b) {
  return a.begin < b.begin;
}

// Below this many ranges std::sort is as fast as clearing and reading the radix histograms.
constexpr size_t kRadixSortMinRanges = 256;
constexpr int kDigitBits = 8;
constexpr size_t kBuckets = size_t(1) << kDigitBits;

size_t digit(uint64_t key, int d) {
  return size_t(key >> (kDigitBits * d)) & (kBuckets - 1);
}

// LSD radix sort on the bits in which the begins differ. Buffers are aligned, so the low bits of
// every begin agree, and the ranges of one kind span a few MiB to a few GiB: keys, (begin -
// lowest begin) shifted past the common low bits, are usually one to three bytes long. A first
// pass finds the lowest and highest begins and the bits that differ (and stops if the ranges are
// in order already); a second builds the histograms of every key byte at once; only the bytes in
// which keys differ are scattered. Each scatter is stable, so the sort is.
void radix_sort_by_begin(std::vector<AddressRange>& ranges) {
  const size_t n = ranges.size();
  const uint64_t first = ranges[0].begin;
  uint64_t lowest = first, highest = first, differing_bits = 0;
  bool sorted = true;  // allocators often hand out ascending addresses: then there is no work
  for (size_t i = 1; i < n; ++i) {
    const uint64_t begin = ranges[i].begin;
    lowest = std::min(lowest, begin);
    highest = std::max(highest, begin);
    differing_bits |= begin ^ first;
    sorted = sorted && ranges[i - 1].begin <= begin;
  }
  if (sorted) return;

  // Bits below the lowest differing one are the same in every begin, so zero in every key.
  const int shift = std::countr_zero(differing_bits);
  auto key = [&](const AddressRange& r) { return (r.begin - lowest) >> shift; };
  const int digits = (std::bit_width((highest - lowest) >> shift) + kDigitBits - 1) / kDigitBits;
  std::array<std::array<size_t, kBuckets>, 64 / kDigitBits> counts{};
  for (const AddressRange& r : ranges) {
    const uint64_t k = key(r);
    for (int d = 0; d < digits; ++d) ++counts[size_t(d)][digit(k, d)];
  }

  auto scratch = std::make_unique_for_overwrite<AddressRange[]>(n);
  AddressRange* from = ranges.data();
  AddressRange* to = scratch.get();
  for (int d = 0; d < digits; ++d) {
    const auto& count = counts[size_t(d)];
    // A byte that every key shares leaves the order as it is.
    if (count[digit(key(from[0]), d)] == n) continue;
    std::array<size_t, kBuckets> next;  // where each bucket's next range goes
    size_t offset = 0;
    for (size_t b = 0; b < kBuckets; ++b) {
      next[b] = offset;
      offset += count[b];
    }
    for (size_t i = 0; i < n; ++i) to[next[digit(key(from[i]), d)]++] = from[i];
    std::swap(from, to);
  }
  if (from != ranges.data()) std::copy(from, from + n, ranges.data());
}

}  // namespace

void sort_by_begin(std::vector<AddressRange>& ranges) {
  if (ranges.size() < kRadixSortMinRanges) {
    std::sort(ranges.begin(), ranges.end(), begins_before);
  } else {
    radix_sort_by_begin(ranges);
  }
}

FreeSpace free_space(std::vector<AddressRange>& used, uint64_t region_begin, uint64_t region_end) {
  FreeSpace out;
  if (region_end <= region_begin) return out;
  sort_by_begin(used);
  uint64_t cursor = region_begin;  // everything below is covered or outside the region
  for (const AddressRange& r : used) {
    uint64_t b = std::max(r.begin, region_begin);
    uint64_t e = std::min(r.end, region_end);
    if (e <= b) continue;
    if (b > cursor) {
      out.free_bytes += b - cursor;
      out.largest_free_block = std::max(out.largest_free_block, b - cursor);
    }
    cursor = std::max(cursor, e);
  }
  if (region_end > cursor) {
    out.free_bytes += region_end - cursor;
    out.largest_free_block = std::max(out.largest_free_block, region_end - cursor);
  }
  return out;
}

}  // namespace ttmem::collector
