// LegacyDecoder and LegacyLedger: the legacy ingest's decoding, without sockets.
#include <gtest/gtest.h>

#include <vector>

#include "daemon/legacy_ingest.h"

namespace ttmem::daemon {
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
  LegacyLedger ledger;
  std::vector<uint8_t> types;
  auto sink = [&](const lg::Message& m) {
    types.push_back(m.head.type);
    ledger.apply(m);
  };
  decoder.append(stream.data(), 100);  // not enough to tell the form
  ASSERT_TRUE(decoder.decode(false, sink));
  EXPECT_TRUE(types.empty());
  EXPECT_EQ(decoder.form(), 0);
  decoder.append(stream.data() + 100, 30);  // a head at 112 decides the form
  ASSERT_TRUE(decoder.decode(false, sink));
  EXPECT_EQ(decoder.form(), 112);
  EXPECT_EQ(types, std::vector<uint8_t>{1});
  EXPECT_EQ(ledger.live.size(), 1u);
  decoder.append(stream.data() + 130, stream.size() - 130);
  ASSERT_TRUE(decoder.decode(false, sink));
  EXPECT_EQ(types, (std::vector<uint8_t>{1, 2}));
  EXPECT_TRUE(ledger.live.empty());
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

TEST(LegacyLedger, ReportsItCannotApplyAreCountedNotKept) {
  LegacyLedger ledger;
  lg::Message m;
  m.head.type = uint8_t(lg::MessageType::Alloc);
  m.head.device_id = 64;  // beyond the last device
  EXPECT_FALSE(ledger.apply(m));
  m.head.device_id = 0;
  m.head.buffer_type = 9;  // not a BufferType
  EXPECT_FALSE(ledger.apply(m));
  m.head.type = uint8_t(lg::MessageType::Response);  // only a server sends it
  EXPECT_FALSE(ledger.apply(m));
  m.head.type = uint8_t(lg::MessageType::Free);
  m.head.buffer_type = 0;
  EXPECT_FALSE(ledger.apply(m));
  EXPECT_EQ(ledger.counters.invalid_calls, 3u);
  EXPECT_EQ(ledger.counters.unknown_frees, 1u);
  EXPECT_TRUE(ledger.live.empty());
  EXPECT_FALSE(ledger.reported);
}

}  // namespace
}  // namespace ttmem::daemon
