// Replay and advise on small recordings built by hand (the arithmetic is in the comments).
#include "model/replay.h"

#include <gtest/gtest.h>

namespace ttmem::model {
namespace {

using Type = ReplayEvent::Type;

ReplayInput n150_recording(uint64_t l1_small_size, uint64_t trace_region_size) {
  ReplayInput in;
  in.chips.push_back({.board = "n150",
                      .grid_x = 8,
                      .grid_y = 8,
                      .l1_unreserved_base = 102'400,
                      .l1_small_size = l1_small_size,
                      .trace_region_size = trace_region_size,
                      .dram_bank_base = 32});
  in.tags.push_back("conv_reader_indices");
  return in;
}

ReplayEvent alloc(uint64_t id, BufferType type, uint64_t size, uint32_t page, uint16_t shards = 0) {
  return {.type = Type::Alloc,
          .kind = uint8_t(type),
          .layout = uint8_t(shards ? Layout::HeightSharded : Layout::Interleaved),
          .num_banks = shards,
          .page_size = page,
          .buffer_id = id,
          .size = size};
}

// The cb-clash shape: n150 with l1_small_size 32,768, one 2,048 B L1_SMALL shard per core, a
// 16 KiB-per-bank L1 buffer at 1,499,136 - 32,768 - 16,384 = 1,449,984, and program 7 whose CB
// set ends 100 B above it (recorded from the base 102,400: 1,347,684 B).
ReplayInput clash_recording() {
  ReplayInput in = n150_recording(32'768, 0);
  in.events.push_back(alloc(1, BufferType::L1Small, 64 * 2048, 2048, 64));
  in.events.push_back(alloc(2, BufferType::L1, 64 * 16384, 16384));
  in.events.push_back({.type = Type::CbAlloc,
                       .kind = uint8_t(kCbKind),
                       .buffer_id = 7,
                       .address = 102'400,
                       .size = 1'449'984 + 100 - 102'400});
  return in;
}

TEST(Replay, ReproducesTheRecordedClash) {
  const ReplayInput in = clash_recording();
  const ReplayResult r = replay(in, recorded_config(in));
  ASSERT_TRUE(r.failure);
  EXPECT_EQ(r.failure->error.kind(), ErrorKind::CbClash);
  EXPECT_EQ(r.failure->event_index, 2u);
  EXPECT_EQ(std::string(r.failure->error.what()),
            "Statically allocated circular buffers in program 7 clash with L1 buffers on core "
            "range [0-0 - 7-7]. L1 buffer allocated at 1449984 and static circular buffer region "
            "ends at 1450084");
  // Peaks per bank: L1 16,384 of 1,396,736 - 32,768 = 1,363,968; L1_SMALL 2,048.
  EXPECT_EQ(r.peaks[uint32_t(BufferType::L1)].capacity_per_bank, 1'363'968u);
  EXPECT_EQ(r.peaks[uint32_t(BufferType::L1)].peak_per_bank, 16'384u);
  EXPECT_EQ(r.peaks[uint32_t(BufferType::L1Small)].peak_per_bank, 2'048u);
}

TEST(Advise, ProposesTheLargestL1SmallSizeThatAvoidsTheClashAndItPasses) {
  const ReplayInput in = clash_recording();
  const Advice a = advise(in);
  EXPECT_EQ(a.clash_bytes_over, 100u);
  EXPECT_EQ(a.clash_program, 7u);
  EXPECT_EQ(a.l1_small_min, 2'048u);
  // 32,768 - 100 = 32,668, floored to 32 B: 32,640.
  ASSERT_TRUE(a.l1_small_max);
  EXPECT_EQ(*a.l1_small_max, 32'640u);
  EXPECT_EQ(a.proposal.l1_small_size, 32'640u);
  EXPECT_FALSE(a.proposal_result.failure);
  ReplayConfig config = recorded_config(in);
  config.params.l1_small_size = 32'640;
  EXPECT_FALSE(replay(in, config).failure);
  config.params.l1_small_size = 32'672;  // one alignment step more clashes again
  EXPECT_TRUE(replay(in, config).failure);
}

TEST(Replay, UnderTheRecordedRegionATraceTooLargeFailsAndAdviseSizesIt) {
  // The 1,500,160 B trace buffer of a 1,500,000 B capture (1,465 pages of 1 KiB) does not fit a
  // 1,000,000 B region; the advised region is exactly its size.
  ReplayInput in = n150_recording(0, 1'000'000);
  in.events.push_back(alloc(1, BufferType::Trace, 1'500'160, 1024));
  const ReplayResult r = replay(in, recorded_config(in));
  ASSERT_TRUE(r.failure);
  EXPECT_EQ(r.failure->error.kind(), ErrorKind::TraceTooSmall);
  EXPECT_EQ(r.failure->error.needed(), 1'500'160u);
  const Advice a = advise(in);
  EXPECT_EQ(a.min_trace_region_size, 1'500'160u);
  EXPECT_FALSE(a.proposal_result.failure);
}

TEST(Replay, OutOfMemoryUnderASmallerConfigurationSaysWhy) {
  // Two 400 MiB-per-bank DRAM buffers fit a plain n150 bank (1,073,741,792 B) but not once a
  // 300 MiB-per-bank trace region is carved out (per-bank mode): exhaustion.
  ReplayInput in = n150_recording(0, 0);
  const uint64_t per_bank = 400ull << 20;
  in.events.push_back(alloc(1, BufferType::Dram, 12 * per_bank, 4096));
  in.events.push_back(alloc(2, BufferType::Dram, 12 * per_bank, 4096));
  in.events.back().tag = 1;
  EXPECT_FALSE(replay(in, recorded_config(in)).failure);
  ReplayConfig smaller = recorded_config(in);
  smaller.params.trace_region_size = 300ull << 20;
  smaller.params.trace_mode = TraceRegionMode::PerBank;
  const ReplayResult r = replay(in, smaller);
  ASSERT_TRUE(r.failure);
  EXPECT_EQ(r.failure->error.kind(), ErrorKind::OutOfMemory);
  EXPECT_EQ(r.failure->error.answer().rfind("exhaustion: ", 0), 0u) << r.failure->error.answer();
  EXPECT_NE(r.failure->error.answer().find("biggest holders: (untagged) 419430400 B/bank"),
            std::string::npos)
      << r.failure->error.answer();
}

TEST(Replay, ImpossibleConfigurationsAreRefused) {
  const ReplayInput in = clash_recording();
  ReplayConfig config = recorded_config(in);
  config.params.l1_small_size = 1'400'000;  // more than the 1,396,736 B above the base
  EXPECT_THROW(replay(in, config), ModelError);
  ReplayInput unknown = in;
  unknown.chips[0].board = "n999";
  EXPECT_THROW(recorded_config(unknown), ModelError);
  ReplayInput two_chips = in;
  two_chips.chips.push_back(two_chips.chips[0]);
  two_chips.chips[1].device = 1;
  EXPECT_THROW(replay(two_chips, recorded_config(two_chips)), ModelError);  // n150 has 1 chip
}

TEST(Advise, VerdictsPerProduct) {
  const ReplayInput in = clash_recording();
  const Advice a = advise(in);
  ASSERT_EQ(a.verdicts.size(), 5u);
  EXPECT_EQ(a.verdicts[0].board, "n150");
  EXPECT_TRUE(a.verdicts[0].fits) << a.verdicts[0].reason;
  // L1 headroom on n150 under the proposal: 1,396,736 - 32,640 - 16,384 = 1,347,712.
  EXPECT_EQ(a.verdicts[0].l1_headroom_per_bank, 1'347'712u);
}

}  // namespace
}  // namespace ttmem::model
