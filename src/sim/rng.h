// A seeded generator whose output is the same on every platform: std::mt19937_64 is specified
// bit for bit, but the std distributions are not, so the few distributions the sim needs are
// implemented here.
#pragma once

#include <cstdint>
#include <random>

namespace ttmem::sim {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}

  // Uniform in [lo, hi] (inclusive), by rejection so no value is favoured.
  uint64_t uniform(uint64_t lo, uint64_t hi) {
    if (hi <= lo) return lo;
    const uint64_t span = hi - lo + 1;
    if (span == 0) return engine_();  // the whole 64-bit range
    const uint64_t limit = UINT64_MAX - UINT64_MAX % span;
    uint64_t draw;
    do {
      draw = engine_();
    } while (draw >= limit);
    return lo + draw % span;
  }

  // True with probability numerator / denominator.
  bool chance(uint64_t numerator, uint64_t denominator) {
    return uniform(0, denominator - 1) < numerator;
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace ttmem::sim
