// Clocks shared by client and collector. CLOCK_MONOTONIC is system-wide, so event times from
// different processes compare directly; it is read through the vDSO (no system call).
#pragma once

#include <time.h>

#include <cstdint>

namespace ttmem::common {

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

// CPU time of the calling thread: what a piece of work cost, whatever else the machine runs.
inline uint64_t thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

inline uint64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

}  // namespace ttmem::common
