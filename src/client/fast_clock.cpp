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

uint64_t FastClock::reanchor(uint64_t t) {
  TscAnchor& a = anchor_;
  uint64_t ns = monotonic_ns();
  t = __rdtsc();
  if (a.first_ns == 0 || t <= a.first_tsc) {
    a.first_tsc = t;
    a.first_ns = ns;
    return ns;
  }
  uint64_t elapsed = ns - a.first_ns;
  if (elapsed < kMinBaselineNs) return ns;  // still measuring the rate: exact time meanwhile
  // The rate over everything this thread has seen so far: the longer, the more precise.
  const double ns_per_tick = double(elapsed) / double(t - a.first_tsc);
  a.ns_per_tick_q32 = uint64_t(ns_per_tick * 4294967296.0);
  a.tsc = t;
  a.ns = ns;
  a.valid_ticks = a.ns_per_tick_q32 != 0 ? uint64_t(double(kReanchorNs) / ns_per_tick) : 0;
  return ns;
}

}  // namespace ttmem::client
