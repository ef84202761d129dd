#include "daemon/history.h"

#include <stdexcept>
#include <string>

namespace ttmem::daemon {

using collector::KindUsage;
using collector::kNumKinds;
using collector::Snapshot;

HistoryStore::HistoryStore(HistoryOptions options) : options_(options) {
  if (options_.resolution_ms < kMinResolutionMs) {
    throw std::invalid_argument("history resolution must be at least " +
                                std::to_string(kMinResolutionMs) + " ms");
  }
  uint64_t points = options_.retention_s * 1000 / options_.resolution_ms;
  if (points < 1 || points > kMaxPointsPerSeries) {
    throw std::invalid_argument(
        "history retention / resolution must give between 1 and " +
        std::to_string(kMaxPointsPerSeries) + " points per series (got " +
        std::to_string(points) + "); raise the resolution or lower the retention");
  }
  capacity_ = size_t(points);
}

bool HistoryStore::sample(const Snapshot& s) {
  std::lock_guard lock(mu_);
  uint64_t now = s.taken_monotonic_ns;
  if (last_sample_ns_ && now < *last_sample_ns_ + options_.resolution_ms * 1'000'000) {
    return false;
  }
  last_sample_ns_ = now;
  for (const auto& d : s.devices) {
    for (uint32_t k = 0; k < kNumKinds; ++k) {
      const KindUsage& u = d.kinds[k];
      auto key = std::make_pair(d.chip_id, k);
      auto it = series_.find(key);
      if (it == series_.end()) {
        if (u.reserved == 0 && u.count == 0 && u.total_allocs == 0) continue;  // never used
        if (series_.size() >= kMaxSeries) continue;
        it = series_.emplace(key, Series{}).first;
      }
      Series& ser = it->second;
      HistoryPoint p{s.taken_realtime_ns, u.requested, u.reserved, u.count};
      if (ser.ring.size() < capacity_) {
        ser.ring.push_back(p);
      } else {
        ser.ring[ser.next] = p;
        ser.next = (ser.next + 1) % capacity_;
      }
    }
  }
  return true;
}

std::vector<HistoryPoint> HistoryStore::query(uint64_t chip_id, uint32_t kind,
                                              uint64_t since_ns) const {
  std::lock_guard lock(mu_);
  std::vector<HistoryPoint> out;
  auto it = series_.find({chip_id, kind});
  if (it == series_.end()) return out;
  const Series& ser = it->second;
  size_t n = ser.ring.size();
  size_t start = n < capacity_ ? 0 : ser.next;
  for (size_t i = 0; i < n; ++i) {
    const HistoryPoint& p = ser.ring[(start + i) % n];
    if (p.realtime_ns >= since_ns) out.push_back(p);
  }
  return out;
}

std::vector<std::pair<uint64_t, uint32_t>> HistoryStore::series() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<uint64_t, uint32_t>> out;
  for (const auto& [key, ser] : series_) out.push_back(key);
  return out;
}

}  // namespace ttmem::daemon
