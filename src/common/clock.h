// Clocks shared by client and collector. CLOCK_MONOTONIC is system-wide, so event times from
// different processes compare directly; it is read through the vDSO (no system call).
#pragma once

#include <time.h>
#include <x86intrin.h>

#include <cstdint>

namespace ttmem {

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

inline uint64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

inline uint64_t read_tsc() { return __rdtsc(); }

// True when the kernel's clocksource is the TSC: then it is invariant and synchronised across
// CPUs, and raw readings from any process compare directly.
bool tsc_is_clocksource();

// Converts a segment's TSC readings to CLOCK_MONOTONIC nanoseconds. The rate is calibrated
// against the reference pair the writer stored at creation (the longer ago, the more precise);
// for a segment younger than kMinBaselineNs, against a short calibration of this process's own.
class TscConverter {
 public:
  static constexpr uint64_t kMinBaselineNs = 50'000'000;

  TscConverter() = default;
  TscConverter(uint64_t tsc_reference, uint64_t monotonic_reference_ns);
  uint64_t to_ns(uint64_t tsc) const;

 private:
  uint64_t tsc_ref_ = 0;
  uint64_t ns_ref_ = 0;
  double ns_per_tick_ = 1.0;
};

}  // namespace ttmem
