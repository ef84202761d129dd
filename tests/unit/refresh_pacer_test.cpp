#include "daemon/refresh_pacer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace ttmem::daemon {
namespace {

constexpr uint64_t kMs = 1'000'000;

// A daemon that always has a change to refresh: each refresh starts the moment the pacer lets
// it, runs for its CPU time (wall = CPU), and the gaps between refreshes are returned.
struct Loop {
  RefreshPacer pacer;
  uint64_t now = 1'000 * kMs;
  uint64_t cpu_total = 0, start = now;
  std::vector<uint64_t> gaps;

  void run(uint64_t cpu) {
    now += cpu;
    cpu_total += cpu;
    const uint64_t next = pacer.after_refresh(now, cpu);
    gaps.push_back(next - now);
    now = next;
  }
  double share() const { return double(cpu_total) / double(now - start); }
};

// Costs that swing threefold from one refresh to the next leave even gaps: nine times the
// typical cost, not nine times whichever came last.
TEST(RefreshPacer, SwingingCostsLeaveEvenGaps) {
  Loop loop;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 400; ++i) loop.run((rng() % 2 == 0 ? 2 : 6) * kMs + rng() % kMs);
  const auto [shortest, longest] =
      std::minmax_element(loop.gaps.begin() + 8, loop.gaps.end());
  // Pacing by the last refresh alone gives gaps from 18 to 63 ms here.
  EXPECT_LT(double(*longest), 2.0 * double(*shortest));
  EXPECT_LE(loop.share(), 0.10 + double(RefreshPacer::kMaxDebtNs) / double(loop.now - loop.start));
}

// Whatever the costs, early refreshes take at most a tenth of the time (and the ledger's
// allowance) in the long run: a refresh far dearer than the rest is paid back.
TEST(RefreshPacer, KeepsEarlyRefreshesToATenthOfACore) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(seed);
    Loop loop;
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 2000; ++i) {
      uint64_t cpu = kMs + rng() % (5 * kMs);
      if (rng() % 50 == 0) cpu = 200 * kMs + rng() % (300 * kMs);  // a large full read
      if (rng() % 7 == 0) cpu = rng() % (kMs / 10);                 // nothing to do
      loop.run(cpu);
      const double allowance =
          double(RefreshPacer::kMaxDebtNs + int64_t(cpu)) / double(loop.now - loop.start);
      ASSERT_LE(loop.share(), 0.10 + allowance) << "after refresh " << i;
    }
    EXPECT_GT(loop.share(), 0.08);  // and it does refresh as often as the share allows
  }
}

// One dear refresh among cheap ones: the next waits until its excess is paid, and the pace
// then goes back to the cheap ones'.
TEST(RefreshPacer, ADearRefreshIsPaidBackThenThePaceReturns) {
  Loop loop;
  for (int i = 0; i < 20; ++i) loop.run(2 * kMs);
  EXPECT_EQ(loop.gaps.back(), 18 * kMs);
  loop.run(500 * kMs);
  // Its excess over a tenth of its own time and the gap before it, with the first refresh's
  // 2 ms, less the ledger's allowance, ten times over: (2 + 500 - 51.8 - 100) ms x 10.
  EXPECT_EQ(loop.gaps.back(), 3'502 * kMs);
  EXPECT_LE(loop.share(), 0.10 + double(RefreshPacer::kMaxDebtNs) / double(loop.now - loop.start));
  loop.run(2 * kMs);
  EXPECT_LT(loop.gaps.back(), 20 * kMs);  // it counts as twice the median until it is gone
  for (int i = 0; i < 20; ++i) loop.run(2 * kMs);
  EXPECT_EQ(loop.gaps.back(), 18 * kMs);
}

}  // namespace
}  // namespace ttmem::daemon
