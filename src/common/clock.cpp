#include "common/clock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

namespace ttmem {

bool tsc_is_clocksource() {
  int fd = ::open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
                  O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[16] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  return n >= 3 && std::strncmp(buf, "tsc", 3) == 0 && (n == 3 || buf[3] == '\n');
}

namespace {

// This process's own estimate, made once: two readings of both clocks 2 ms apart.
double own_ns_per_tick() {
  static const double rate = [] {
    uint64_t t0 = read_tsc(), n0 = monotonic_ns();
    uint64_t n1 = n0;
    while (n1 - n0 < 2'000'000) n1 = monotonic_ns();
    uint64_t t1 = read_tsc();
    return t1 > t0 ? double(n1 - n0) / double(t1 - t0) : 1.0;
  }();
  return rate;
}

}  // namespace

TscConverter::TscConverter(uint64_t tsc_reference, uint64_t monotonic_reference_ns)
    : tsc_ref_(tsc_reference), ns_ref_(monotonic_reference_ns) {
  uint64_t tsc_now = read_tsc(), ns_now = monotonic_ns();
  if (ns_now > ns_ref_ + kMinBaselineNs && tsc_now > tsc_ref_) {
    ns_per_tick_ = double(ns_now - ns_ref_) / double(tsc_now - tsc_ref_);
  } else {
    ns_per_tick_ = own_ns_per_tick();
  }
}

uint64_t TscConverter::to_ns(uint64_t tsc) const {
  double delta = (double(tsc) - double(tsc_ref_)) * ns_per_tick_;
  double ns = double(ns_ref_) + delta;
  return ns <= 0 ? 0 : uint64_t(ns);
}

}  // namespace ttmem
