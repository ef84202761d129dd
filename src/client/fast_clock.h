// CLOCK_MONOTONIC nanoseconds for the hot path, cheaply.
//
// clock_gettime through the vDSO costs ~28 ns on the development machine; reading the TSC ~12.
// When the kernel's clocksource is the TSC (so it is invariant and synchronised across CPUs),
// each thread converts TSC readings to CLOCK_MONOTONIC nanoseconds with an anchor and a rate it
// measured itself against clock_gettime, re-anchored every second so NTP slewing of the
// monotonic clock cannot pull them apart. The segment only ever holds nanoseconds, so every
// reader sees the same value for the same event. Times from different threads may disagree by
// well under a microsecond.
//
// Two things keep the conversion that close. A rate is never extrapolated further than the span
// it was measured over, so an error in reading the clocks at either end of that span moves a
// stamp by at most that error, not by it times the ratio of the spans; the spans double from
// 20 ms until they reach the second. And each pairing of the two clocks is the tightest of a few
// tries, taken at the middle of the TSC readings around clock_gettime, so an interrupt between
// them does not skew it.
#pragma once

#include <x86intrin.h>

#include <cstdint>

#include "common/clock.h"

namespace ttmem::client {

// True when the kernel's clocksource is the TSC. Read once at start-up (a file read).
bool tsc_is_clocksource();

// One thread's conversion from TSC ticks to CLOCK_MONOTONIC nanoseconds.
struct TscAnchor {
  uint64_t tsc = 0;
  uint64_t ns = 0;
  // Nanoseconds per tick in 32.32 fixed point. An integer multiply and shift cost a third of
  // the double conversions they replace; `valid_ticks` spans one second, so the product stays
  // below 2^32 * 10^9 and cannot overflow.
  uint64_t ns_per_tick_q32 = 0;
  uint64_t valid_ticks = 0;  // 0 until the rate is known: every call reads clock_gettime
  uint64_t first_tsc = 0, first_ns = 0;  // where this thread's rate measurement started
};

// One reading of both clocks: `tsc` is the tick count at the moment `ns` was read.
struct ClockPair {
  uint64_t tsc = 0;
  uint64_t ns = 0;
};
// The tightest of a few pairings: the one whose two TSC readings around clock_gettime lie
// closest together, stamped at their middle.
ClockPair read_clock_pair();

class FastClock {
 public:
  static constexpr uint64_t kMinBaselineNs = 20'000'000;  // rate measured over >= 20 ms
  static constexpr uint64_t kReanchorNs = 1'000'000'000;

  // `enabled` false: always clock_gettime.
  static void enable(bool enabled) { enabled_ = enabled; }

  static uint64_t now() {
    if (!enabled_) return common::monotonic_ns();
    TscAnchor& a = anchor_;
    uint64_t t = __rdtsc();
    if (t - a.tsc < a.valid_ticks) [[likely]] {
      return a.ns + (((t - a.tsc) * a.ns_per_tick_q32) >> 32);
    }
    return reanchor();
  }

 private:
  [[gnu::noinline]] static uint64_t reanchor();

  static inline bool enabled_ = false;
  // initial-exec: a plain %fs-relative load instead of a __tls_get_addr call per event. The
  // anchor is small enough for the static TLS surplus glibc keeps for dlopen'ed libraries.
  [[gnu::tls_model("initial-exec")]] static inline thread_local TscAnchor anchor_;
};

}  // namespace ttmem::client
