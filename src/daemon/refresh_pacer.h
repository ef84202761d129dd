// When ttmemd may refresh early (on a change seen between timer refreshes) so that early
// refreshes use at most a tenth of a core.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace ttmem::daemon {

// Under constant churn a refresh's CPU swings two- to threefold from one to the next (its
// caches, what else ran on the core). Spacing each refresh by nine times the CPU the last one
// took left gaps from 25 to 120 ms between refreshes of a Galaxy host, and the view was as stale
// as the longest gap. The pacer spaces them by nine times the typical CPU of the last sixteen
// refreshes: their mean, each counted as at most twice their median, so the gaps stay even and
// one dear refresh does not stretch the sixteen after it.
//
// What dear refreshes cost beyond that is kept in a ledger, which holds the long-run share to a
// tenth of the wall time: CPU spent beyond that share, once more than kMaxDebtNs (a large process
// read in full, say), holds the next early refresh back until the excess is paid.
class RefreshPacer {
 public:
  // A second's worth of the share: the typical cost's errors either way stay within it, so only
  // a refresh far dearer than the rest holds the next back.
  static constexpr int64_t kMaxDebtNs = 100'000'000;
  static constexpr size_t kWindow = 16;

  // A refresh ended at `now_ns` (monotonic), and the loop that runs refreshes took `cpu_ns` of
  // thread CPU since the one before ended, this one included: the earliest time the next early
  // refresh may start.
  uint64_t after_refresh(uint64_t now_ns, uint64_t cpu_ns) {
    if (last_end_ns_ != 0) {
      // A tenth of the wall time since the last refresh ended (this one's included) is allowed.
      debt_ns_ += int64_t(cpu_ns) - int64_t((now_ns - last_end_ns_) / 10);
      // Idle or cheap stretches bank at most kMaxDebtNs: enough to offset a dear refresh, not
      // to pay for a long burst.
      debt_ns_ = std::max(debt_ns_, -kMaxDebtNs);
    } else {
      debt_ns_ = int64_t(cpu_ns);  // no wall time to set against the first
    }
    last_end_ns_ = now_ns;
    recent_[refreshes_++ % kWindow] = cpu_ns;
    const size_t n = std::min<size_t>(refreshes_, kWindow);
    std::array<uint64_t, kWindow> sorted = recent_;
    std::nth_element(sorted.begin(), sorted.begin() + (n - 1) / 2, sorted.begin() + n);
    const uint64_t cap = 2 * sorted[(n - 1) / 2];
    uint64_t sum = 0;
    for (size_t i = 0; i < n; ++i) sum += std::min(recent_[i], cap);
    uint64_t wait_ns = 9 * (sum / n);
    if (debt_ns_ > kMaxDebtNs) wait_ns = std::max(wait_ns, uint64_t(debt_ns_ - kMaxDebtNs) * 10);
    return now_ns + wait_ns;
  }

 private:
  uint64_t last_end_ns_ = 0;
  std::array<uint64_t, kWindow> recent_{};  // the CPU of the last refreshes, by refreshes_ % kWindow
  uint64_t refreshes_ = 0;
  int64_t debt_ns_ = 0;  // CPU spent beyond a tenth of the wall time, floored at -kMaxDebtNs
};

}  // namespace ttmem::daemon
