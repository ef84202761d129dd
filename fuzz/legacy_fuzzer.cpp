// Fuzz target: ttmemd's legacy AllocMessage ingest (LegacyDecoder and LegacyLedger), fed the way
// a socket feeds it: arbitrary bytes arriving in arbitrary pieces, with or without pauses.
//
// Input: one control byte, then the byte stream a client sent.
//   bits 0-1  the form: 0 detect (the default), 1 = 72, 2 = 112, 3 = 144 (--legacy-form)
//   bits 2-7  seed of the split: piece lengths (1-200 bytes) and which pieces end in a pause
//
// Properties: however the stream is split, the decoder hands over the same messages and
// accepts or refuses the stream alike, as long as no pause falls inside it (a pause may
// legitimately decide the form sooner); every live buffer the ledger keeps has a valid kind.
#include <cstring>
#include <vector>

#include "common/kinds.h"
#include "daemon/legacy_ingest.h"
#include "fuzz_support.h"

namespace {

namespace lg = ttmem::protocol::legacy;
using ttmem::daemon::LegacyDecoder;
using ttmem::daemon::LegacyLedger;

struct Outcome {
  std::vector<lg::Message> messages;
  bool accepted = true;
};

bool same_message(const lg::Message& a, const lg::Message& b) {
  return std::memcmp(&a.head, &b.head, sizeof a.head) == 0 && a.dram == b.dram && a.l1 == b.l1 &&
         a.l1_small == b.l1_small && a.trace == b.trace && a.cb == b.cb && a.kernel == b.kernel &&
         std::memcmp(&a.info, &b.info, sizeof a.info) == 0 &&
         a.ringbuffer_total_size == b.ringbuffer_total_size &&
         a.ringbuffer_used_bytes == b.ringbuffer_used_bytes &&
         a.ringbuffer_num_programs == b.ringbuffer_num_programs;
}

// Feeds `stream` in pieces chosen by `seed` (none if seed is 0), with a pause after a piece when
// `pauses` allows it, then a final pause. Every message goes through `ledger`.
Outcome feed(uint32_t form, const uint8_t* stream, size_t size, uint32_t seed, bool pauses,
             LegacyLedger& ledger) {
  Outcome out;
  LegacyDecoder decoder(form);
  auto sink = [&](const lg::Message& m) {
    FUZZ_CHECK(lg::plausible_head(reinterpret_cast<const uint8_t*>(&m.head)));
    ledger.apply(m, ttmem::daemon::LegacyLimits{});
    out.messages.push_back(m);
  };
  uint32_t state = seed * 2654435761u + 1;  // xorshift32: deterministic pieces per seed
  size_t at = 0;
  while (at < size && out.accepted) {
    size_t piece = size - at;
    bool pause = false;
    if (seed != 0) {
      state ^= state << 13;
      state ^= state >> 17;
      state ^= state << 5;
      piece = std::min<size_t>(piece, 1 + state % 200);
      pause = pauses && (state >> 24) % 4 == 0;
    }
    decoder.append(stream + at, piece);
    at += piece;
    out.accepted = decoder.decode(pause, sink);
  }
  if (out.accepted) out.accepted = decoder.decode(true, sink);
  if (!out.accepted) FUZZ_CHECK(decoder.rejected_bytes() > 0);
  if (out.accepted) FUZZ_CHECK(decoder.pending_bytes() < sizeof(lg::Message144) + 4);
  return out;
}

void check_ledger(const LegacyLedger& ledger, const ttmem::daemon::LegacyTotals& totals) {
  FUZZ_CHECK(totals.records <= totals.max_records);
  FUZZ_CHECK(ledger.buffers().size() + ledger.kernels().size() == totals.records);
  for (const auto& [key, live] : ledger.buffers()) {
    FUZZ_CHECK(live.kind < ttmem::collector::kNumKinds);
    FUZZ_CHECK(live.size > 0 && live.size <= lg::kMaxSizeOfUnknownDevice);
    FUZZ_CHECK(key.device < ttmem::protocol::kMaxDevices);
  }
  // The running totals a QUERY answers from agree with the ledger's own.
  for (const auto& [device, d] : ledger.devices()) {
    FUZZ_CHECK(d.bytes == totals.devices[device].bytes);
    FUZZ_CHECK(d.kernel_bytes == totals.devices[device].kernel_bytes);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr uint32_t kForms[] = {0, 72, 112, 144};
  const uint32_t form = kForms[data[0] & 3];
  const uint32_t seed = data[0] >> 2;
  ++data;
  --size;

  ttmem::daemon::LegacyTotals whole_totals, split_totals, paused_totals;
  LegacyLedger whole_ledger(whole_totals), split_ledger(split_totals),
      paused_ledger(paused_totals);
  Outcome whole = feed(form, data, size, 0, false, whole_ledger);
  Outcome split = feed(form, data, size, seed + 1, false, split_ledger);
  FUZZ_CHECK(whole.accepted == split.accepted);
  FUZZ_CHECK(whole.messages.size() == split.messages.size());
  for (size_t i = 0; i < whole.messages.size(); ++i) {
    FUZZ_CHECK(same_message(whole.messages[i], split.messages[i]));
  }
  FUZZ_CHECK(whole_ledger.buffers().size() == split_ledger.buffers().size());
  feed(form, data, size, seed + 1, true, paused_ledger);
  check_ledger(whole_ledger, whole_totals);
  check_ledger(paused_ledger, paused_totals);
  return 0;
}
