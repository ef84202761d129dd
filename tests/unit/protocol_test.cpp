#include "protocol/segment.h"

#include <cstring>

#include <gtest/gtest.h>

#include "collector/segment_reader.h"

namespace ttmem::protocol {
namespace {

TEST(Protocol, MagicSpellsTtmemseg) {
  char text[9] = {};
  std::memcpy(text, &kSegmentMagic, 8);
  EXPECT_STREQ(text, "TTMEMSEG");
}

// The byte offsets documented in docs/protocol.md for the default capacities.
TEST(Protocol, DefaultLayoutOffsets) {
  Layout l = compute_layout(kDefaultSlabCapacity, kDefaultRingCapacity);
  EXPECT_EQ(l.devices_offset, 4096u);
  EXPECT_EQ(l.counters_offset, 4096u + 64 * 512);
  EXPECT_EQ(l.ring_heads_offset, l.counters_offset + 64 * 6 * 64);
  EXPECT_EQ(l.strings_offset, l.ring_heads_offset + 64 * 64);
  EXPECT_EQ(l.slab_offset % 4096, 0u);
  EXPECT_EQ(l.rings_offset, l.slab_offset + uint64_t(kDefaultSlabCapacity) * 64);
  EXPECT_EQ(l.segment_size, l.rings_offset + 64ull * kDefaultRingCapacity * 64);
}

TEST(Protocol, SeqlockRoundTripAndTornDetection) {
  alignas(64) BufferRecord shared{};
  BufferRecord r{};
  r.buffer_id = 42;
  r.size = 1000;
  r.flags = kRecordLive;
  seqlock_write32(&shared, r);
  BufferRecord out;
  ASSERT_TRUE(seqlock_read32(&shared, &out));
  EXPECT_EQ(out.buffer_id, 42u);
  EXPECT_EQ(out.seq, 2u);
  EXPECT_EQ(out.flags, kRecordLive);
  shared.seq = 3;  // a writer in progress
  EXPECT_FALSE(seqlock_read32(&shared, &out));
}

// The client stores records and events as words composed in registers (words_of, event_words):
// every field must land exactly where the struct puts it. Every byte of the record differs,
// so a field placed at the wrong offset or truncated shows.
TEST(Protocol, ComposedWordsAreTheRecordBitForBit) {
  BufferRecord r;
  auto* bytes = reinterpret_cast<uint8_t*>(&r);
  for (size_t i = 0; i < sizeof r; ++i) bytes[i] = uint8_t(0x11 + i);  // each byte its own
  const auto words = words_of(r);
  EXPECT_EQ(std::memcmp(words.data(), &r, sizeof r), 0);

  for (const Kind kind : {Kind::Cb, Kind::L1}) {
    r.kind = uint8_t(kind);
    const EventRecord ev = event_of(EventType::Free, r);
    EventRecord want{};
    want.type = uint8_t(EventType::Free);
    want.kind = r.kind;
    want.layout = r.layout;
    want.tag = r.tag;
    want.buffer_id = r.buffer_id;
    want.address = r.address;
    want.size = r.size;
    want.size_per_bank = r.size_per_bank;
    want.num_banks = r.num_banks;
    want.num_cores = r.num_cores;
    want.page_size = kind == Kind::Cb ? r.aux : r.page_size;  // a CB's events carry its cores
    want.time_ns = r.time_ns;
    EXPECT_EQ(std::memcmp(&ev, &want, sizeof ev), 0) << "kind " << int(kind);
  }
}

TEST(Protocol, SegmentNames) {
  auto n = ttmem::collector::parse_segment_name("ttmem-1234-99887766.seg");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->pid, 1234);
  EXPECT_EQ(n->start_time, 99887766u);
  for (const char* bad : {"ttmem-.seg", "ttmem-12.seg", "ttmem-a-1.seg", "ttmem-0-1.seg",
                          "ttmem-1-2.seg.tmp", "x-1-2.seg", "ttmem-99999999999-1.seg",
                          "ttmem-1-2-3.seg", "ttmem--1-2.seg"}) {
    EXPECT_FALSE(ttmem::collector::parse_segment_name(bad)) << bad;
  }
}

}  // namespace
}  // namespace ttmem::protocol
