#include "client/fast_clock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

namespace ttmem::client {

using common::monotonic_ns;

bool tsc_is_clocksource() {
  int fd = ::open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
                  O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[16] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  return n >= 3 && std::strncmp(buf, "tsc", 3) == 0 && (n == 3 || buf[3] == '\n');
}

ClockPair read_clock_pair() {
  constexpr int kTries = 4;
  ClockPair best;
  uint64_t best_gap = UINT64_MAX;
  for (int i = 0; i < kTries; ++i) {
    const uint64_t before = __rdtsc();
    const uint64_t ns = monotonic_ns();
    const uint64_t after = __rdtsc();
    if (after < before || after - before >= best_gap) continue;
    best_gap = after - before;
    best = {before + best_gap / 2, ns};
  }
  if (best_gap == UINT64_MAX) best = {__rdtsc(), monotonic_ns()};  // the TSC went backwards
  return best;
}

uint64_t FastClock::reanchor() {
  TscAnchor& a = anchor_;
  if (a.first_ns != 0) {
    // Still measuring the rate: the exact time meanwhile, read once, not paired.
    const uint64_t ns = monotonic_ns();
    if (ns - a.first_ns < kMinBaselineNs) return ns;
  }
  const ClockPair now = read_clock_pair();
  if (a.first_ns == 0 || now.tsc <= a.first_tsc) {
    a.first_tsc = now.tsc;  // the start of this thread's rate measurement
    a.first_ns = now.ns;
    a.valid_ticks = 0;
    return now.ns;
  }
  // At least kMinBaselineNs: the monotonic clock read above never runs backwards.
  const uint64_t elapsed = now.ns - a.first_ns;
  // The rate over everything this thread has seen so far: the longer, the more precise.
  const double ns_per_tick = double(elapsed) / double(now.tsc - a.first_tsc);
  a.ns_per_tick_q32 = uint64_t(ns_per_tick * 4294967296.0);
  a.tsc = now.tsc;
  a.ns = now.ns;
  // Extrapolate no further than the span the rate was measured over.
  const uint64_t window_ns = elapsed < kReanchorNs ? elapsed : kReanchorNs;
  a.valid_ticks = a.ns_per_tick_q32 != 0 ? uint64_t(double(window_ns) / ns_per_tick) : 0;
  return now.ns;
}

}  // namespace ttmem::client
