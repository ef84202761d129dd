// CRC-32C (Castagnoli), the checksum of each recording block. The SSE4.2 instruction computes
// 8 bytes a cycle, so checksumming never limits the recording rate; other CPUs use a table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ttmem::common {

namespace crc32c_detail {

inline const uint32_t* table() {
  static const auto* t = [] {
    static uint32_t tab[256];
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
      tab[i] = c;
    }
    return tab;
  }();
  return t;
}

inline uint32_t portable(uint32_t crc, const uint8_t* p, size_t n) {
  const uint32_t* t = table();
  for (size_t i = 0; i < n; ++i) crc = t[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) inline uint32_t hardware(uint32_t crc, const uint8_t* p,
                                                           size_t n) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
  }
  uint32_t c32 = uint32_t(c);
  for (; n > 0; --n, ++p) c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}
#endif

}  // namespace crc32c_detail

inline uint32_t crc32c(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
#if defined(__x86_64__)
  static const bool has_sse42 = __builtin_cpu_supports("sse4.2");
  if (has_sse42) return ~crc32c_detail::hardware(~0u, p, size);
#endif
  return ~crc32c_detail::portable(~0u, p, size);
}

}  // namespace ttmem::common
