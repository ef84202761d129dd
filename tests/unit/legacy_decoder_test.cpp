// LegacyDecoder and LegacyLedger: the legacy ingest's decoding, without sockets.
#include <gtest/gtest.h>

#include <vector>

#include "daemon/legacy_ingest.h"

namespace ttmem::daemon {

using collector::kNumKinds;

namespace {

namespace lg = protocol::legacy;

std::vector<uint8_t> message(size_t form, lg::MessageType type, uint64_t address) {
  lg::Message m;
  m.head.type = uint8_t(type);
  m.head.size = 4096;
  m.head.buffer_type = 1;  // L1
  m.head.buffer_id = address;
  std::vector<uint8_t> bytes(form);
  lg::encode(m, form, bytes.data());
  return bytes;
}

TEST(LegacyDecoder, MessagesSplitAcrossReadsAreDecodedOnceComplete) {
  std::vector<uint8_t> stream = message(112, lg::MessageType::Alloc, 0x100);
  auto second = message(112, lg::MessageType::Free, 0x100);
  stream.insert(stream.end(), second.begin(), second.end());
  LegacyDecoder decoder(0);
  LegacyTotals totals;
  LegacyLedger ledger(totals);
  std::vector<uint8_t> types;
  auto sink = [&](const lg::Message& m) {
    types.push_back(m.head.type);
    ledger.apply(m, LegacyLimits{});
  };
  decoder.append(stream.data(), 100);  // not enough to tell the form
  ASSERT_TRUE(decoder.decode(false, sink));
  EXPECT_TRUE(types.empty());
  EXPECT_EQ(decoder.form(), 0);
  decoder.append(stream.data() + 100, 30);  // a head at 112 decides the form
  ASSERT_TRUE(decoder.decode(false, sink));
  EXPECT_EQ(decoder.form(), 112);
  EXPECT_EQ(types, std::vector<uint8_t>{1});
  EXPECT_EQ(ledger.buffers().size(), 1u);
  decoder.append(stream.data() + 130, stream.size() - 130);
  ASSERT_TRUE(decoder.decode(false, sink));
  EXPECT_EQ(types, (std::vector<uint8_t>{1, 2}));
  EXPECT_TRUE(ledger.buffers().empty());
  EXPECT_EQ(decoder.pending_bytes(), 0u);
}

TEST(LegacyDecoder, BytesOutOfStepAreRefusedAndCounted) {
  std::vector<uint8_t> stream = message(72, lg::MessageType::Alloc, 0x100);
  stream.insert(stream.end(), 80, 0x07);  // no message head where the next message must start
  LegacyDecoder decoder(72);
  int messages = 0;
  decoder.append(stream.data(), stream.size());
  EXPECT_FALSE(decoder.decode(false, [&](const lg::Message&) { ++messages; }));
  EXPECT_EQ(messages, 1);
  EXPECT_EQ(decoder.rejected_bytes(), 80u);
}

using T = lg::MessageType;
constexpr uint32_t kDram = 0, kSystemMemory = 2, kCb = 5;

TEST(LegacyLedger, ReportsItCannotApplyAreCountedNotKept) {
  LegacyTotals totals;
  LegacyLedger ledger(totals);
  const LegacyLimits none{};
  EXPECT_FALSE(ledger.apply(lg::request(T::Alloc, 64, 4096), none));    // beyond the last device
  EXPECT_FALSE(ledger.apply(lg::request(T::Alloc, 0, 4096, 9), none));  // not a BufferType
  EXPECT_FALSE(ledger.apply(lg::request(T::Response, 0, 0), none));     // only a server sends it
  EXPECT_FALSE(ledger.apply(lg::request(T::Alloc, 0, 0), none));        // size 0
  EXPECT_FALSE(ledger.apply(lg::request(T::Alloc, 0, ~0ull), none));    // 2^64 - 1
  EXPECT_FALSE(ledger.apply(lg::request(T::Alloc, 0, uint64_t(-4096)), none));
  EXPECT_FALSE(ledger.apply(lg::request(T::Alloc, 0, (100ull << 30) + 1), none));  // > 100 GiB
  EXPECT_FALSE(ledger.apply(lg::request(T::Free, 0, 0, 0, 0x40), none));
  EXPECT_FALSE(ledger.apply(lg::request(T::CbFree, 0, 64), none));
  EXPECT_EQ(ledger.counters().invalid_calls, 7u);
  EXPECT_EQ(ledger.counters().unknown_frees, 2u);
  EXPECT_TRUE(ledger.buffers().empty());
  EXPECT_FALSE(ledger.reported());
  EXPECT_EQ(totals.devices[0].bytes, (std::array<uint64_t, kNumKinds>{}));
}

TEST(LegacyLedger, SizesAreBoundedByTheDeviceSoTotalsCannotWrap) {
  LegacyTotals totals;
  LegacyLedger ledger(totals);
  LegacyLimits limits{};
  limits[0][kDram] = 12ull << 30;  // a device a segment registered: its capacity bounds a report
  EXPECT_FALSE(ledger.apply(lg::request(T::Alloc, 0, 1ull << 63, kDram, 0x1), limits));
  EXPECT_FALSE(ledger.apply(lg::request(T::Alloc, 0, 1ull << 63, kDram, 0x2), limits));
  EXPECT_FALSE(ledger.apply(lg::request(T::Alloc, 0, (12ull << 30) + 1, kDram, 0x3), limits));
  EXPECT_TRUE(ledger.apply(lg::request(T::Alloc, 0, 12ull << 30, kDram, 0x4), limits));
  // CB and kernel totals are counts, bounded the same way as they grow.
  EXPECT_TRUE(ledger.apply(lg::request(T::CbAlloc, 1, 60ull << 30), limits));
  EXPECT_FALSE(ledger.apply(lg::request(T::CbAlloc, 1, 60ull << 30), limits));
  EXPECT_EQ(totals.devices[0].bytes[kDram], 12ull << 30);
  EXPECT_EQ(totals.devices[1].bytes[kCb], 60ull << 30);
  EXPECT_EQ(ledger.counters().invalid_calls, 4u);
}

TEST(LegacyLedger, CountsAsThePrototypeServerDid) {
  LegacyTotals totals;
  const LegacyLimits none{};
  {
    LegacyLedger ledger(totals);
    // A duplicate ALLOC at the same device and address is reference-counted, first size kept.
    EXPECT_TRUE(ledger.apply(lg::request(T::Alloc, 0, 1000, kDram, 0x100), none));
    EXPECT_FALSE(ledger.apply(lg::request(T::Alloc, 0, 5000, kDram, 0x100), none));
    EXPECT_EQ(totals.devices[0].bytes[kDram], 1000u);
    EXPECT_FALSE(ledger.apply(lg::request(T::Free, 0, 0, kDram, 0x100), none));  // one ref left
    EXPECT_EQ(totals.devices[0].bytes[kDram], 1000u);
    EXPECT_TRUE(ledger.apply(lg::request(T::Free, 0, 0, kDram, 0x100), none));
    EXPECT_EQ(totals.devices[0].bytes[kDram], 0u);
    EXPECT_EQ(ledger.counters().duplicate_allocs, 1u);
    // CB_ALLOC adds its size, CB_FREE subtracts the size it carries, never below zero.
    EXPECT_TRUE(ledger.apply(lg::request(T::CbAlloc, 0, 300, 0, 0x10), none));
    EXPECT_TRUE(ledger.apply(lg::request(T::CbAlloc, 0, 200, 0, 0x10), none));
    EXPECT_TRUE(ledger.apply(lg::request(T::CbFree, 0, 100, 0, 0x999), none));
    EXPECT_EQ(totals.devices[0].bytes[kCb], 400u);
    EXPECT_TRUE(ledger.apply(lg::request(T::CbFree, 0, 1000, 0, 0x10), none));
    EXPECT_EQ(totals.devices[0].bytes[kCb], 0u);
    // Kernels: LOAD adds, UNLOAD subtracts the size it carries; the id is forgotten once unloaded.
    EXPECT_TRUE(ledger.apply(lg::request(T::KernelLoad, 2, 4096, 0, 7), none));
    EXPECT_TRUE(ledger.apply(lg::request(T::KernelLoad, 2, 4096, 0, 7), none));
    EXPECT_EQ(totals.devices[2].kernel_bytes, 8192u);
    EXPECT_EQ(ledger.kernels().size(), 1u);
    EXPECT_TRUE(ledger.apply(lg::request(T::KernelUnload, 2, 4096, 0, 7), none));
    EXPECT_TRUE(ledger.apply(lg::request(T::KernelUnload, 2, 4096, 0, 7), none));
    EXPECT_TRUE(ledger.kernels().empty());
    EXPECT_EQ(totals.devices[2].kernel_bytes, 0u);
    // SYSTEM_MEMORY stays its own kind in the model (QUERY adds it to l1_small).
    EXPECT_TRUE(ledger.apply(lg::request(T::Alloc, 3, 64, kSystemMemory, 0x1), none));
    EXPECT_TRUE(ledger.apply(lg::request(T::KernelLoad, 3, 128, 0, 9), none));
    EXPECT_EQ(totals.devices[3].bytes[kSystemMemory], 64u);
    EXPECT_EQ(totals.records, 2u);
  }
  // A ledger that goes (its process ended) takes back everything it still held.
  EXPECT_EQ(totals.devices[3].bytes[kSystemMemory], 0u);
  EXPECT_EQ(totals.devices[3].kernel_bytes, 0u);
  EXPECT_EQ(totals.records, 0u);
}

TEST(LegacyLedger, TheDaemonWideBoundRefusesAndCounts) {
  LegacyTotals totals;
  totals.max_records = 3;
  const LegacyLimits none{};
  LegacyLedger a(totals), b(totals);
  EXPECT_TRUE(a.apply(lg::request(T::Alloc, 0, 10, kDram, 1), none));
  EXPECT_TRUE(b.apply(lg::request(T::Alloc, 0, 10, kDram, 1), none));
  EXPECT_TRUE(b.apply(lg::request(T::KernelLoad, 0, 10, 0, 1), none));
  EXPECT_FALSE(a.apply(lg::request(T::Alloc, 0, 10, kDram, 2), none));
  EXPECT_EQ(a.counters().slab_overflow, 1u);
  EXPECT_TRUE(b.apply(lg::request(T::Free, 0, 0, kDram, 1), none));
  EXPECT_TRUE(a.apply(lg::request(T::Alloc, 0, 10, kDram, 2), none));
  EXPECT_EQ(totals.records, 3u);
}

}  // namespace
}  // namespace ttmem::daemon
