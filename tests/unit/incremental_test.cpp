// Incremental collection: the same state folded from events and in full must give the same
// figures, whatever the events (random runs), wherever the full read that started it fell, and
// through the collector over a segment whose rings overflow.
#include "collector/incremental.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "collector/collector.h"
#include "segment_file.h"

namespace ttmem::collector {
namespace {

namespace pr = protocol;

constexpr uint32_t kDram = uint32_t(Kind::Dram);
constexpr uint32_t kL1 = uint32_t(Kind::L1);
constexpr uint32_t kCb = uint32_t(Kind::Cb);

// ---------------------------------------------------------------------------------------------
// BankSpace against free_space() over the same ranges.

TEST(BankSpace, KeepsWhatFreeSpaceComputesAsRangesComeAndGo) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    const uint64_t begin = 4096, end = 4096 + 1'000'000;
    BankSpace bank(begin, end);
    std::vector<AddressRange> live;
    for (int step = 0; step < 2000; ++step) {
      if (!live.empty() && rng() % 5 < 2) {
        const size_t i = rng() % live.size();
        bank.remove(live[i]);
        live.erase(live.begin() + std::ptrdiff_t(i));
      } else {
        // Aligned starts (as allocators place them), overlaps, ranges sticking out of the
        // region or wholly outside it, and empty ones.
        const uint64_t b = (rng() % 1'100'000) & ~uint64_t{255};
        const uint64_t length = rng() % 4 == 0 ? 0 : (rng() % 60'000);
        live.push_back({b, b + length});
        bank.add(live.back());
      }
      std::vector<AddressRange> copy = live;
      const FreeSpace want = free_space(copy, begin, end);
      const FreeSpace got = bank.free_space();
      ASSERT_EQ(got.free_bytes, want.free_bytes) << "step " << step;
      ASSERT_EQ(got.largest_free_block, want.largest_free_block) << "step " << step;
    }
  }
}

// Ranges nested inside each other: each new one spans every piece the others made. Past
// kMaxSpannedPieces the structure gives up rather than cost O(n) per change.
TEST(BankSpace, GivesUpOnRangesThatEachSpanMorePiecesThanItKeeps) {
  BankSpace bank(0, 1'000'000);
  for (uint64_t i = 0; i < BankSpace::kMaxSpannedPieces; ++i) {
    bank.add({1000 * i, 1'000'000 - 1000 * i});
    ASSERT_FALSE(bank.overflowed()) << i;
  }
  bank.add({500, 999'500});
  EXPECT_TRUE(bank.overflowed());
  EXPECT_TRUE(bank.needs_ranges());
  // The caller's figure from the ranges stands until the next change, and only until then.
  bank.set_free_space({500, 500});
  EXPECT_FALSE(bank.needs_ranges());
  EXPECT_EQ(bank.free_space().free_bytes, 500u);
  bank.remove({0, 1'000'000});  // no longer kept: only the figure is forgotten
  EXPECT_TRUE(bank.overflowed());
  EXPECT_TRUE(bank.needs_ranges());
}

TEST(BankSpace, AnEmptyRegionHasNoFreeSpace) {
  BankSpace bank(100, 100);
  bank.add({0, 1000});
  EXPECT_EQ(bank.free_space().free_bytes, 0u);
  EXPECT_EQ(bank.free_space().largest_free_block, 0u);
}

// ---------------------------------------------------------------------------------------------
// The fold from events against fold_snapshot() of the records they leave.

pr::DeviceSlot device_slot(uint64_t chip_id, uint32_t logical_id) {
  pr::DeviceSlot d{};
  d.flags = pr::kDeviceRegistered;
  d.logical_id = logical_id;
  d.chip_id = chip_id;
  d.grid_x = d.grid_y = 8;
  d.l1_per_core = 1'100'000;
  d.unreserved_base = 100'000;
  std::strcpy(d.board, "n150");
  d.kinds[kDram] = {12'000'000, 1'000'000, 0, 12, 32};
  d.kinds[kL1] = {64'000'000, 1'000'000, 100'000, 64, 32};
  d.kinds[uint32_t(Kind::L1Small)] = {64 * 65536, 65536, 1'034'464, 64, 32};
  d.kinds[uint32_t(Kind::Trace)] = {12 * 100'000, 100'000, 1'000'000, 12, 32};
  d.kinds[kCb] = {64'000'000, 1'000'000, 100'000, 64, 32};
  return d;
}

// A process as a client leaves it: its live records and the ring events that made them.
struct Client {
  std::string key;
  FoldInput in;
  std::vector<std::pair<uint32_t, pr::EventRecord>> events;
  uint64_t next_id = 1;

  Client(pid_t pid, uint64_t chip0, uint64_t chip1) {
    key = "segment-" + std::to_string(pid);
    in.identity.pid = pid;
    in.identity.start_time = 1;
    in.identity.segment = key;
    in.state.devices[0] = device_slot(chip0, 0);
    in.state.devices[1] = device_slot(chip1, 1);
    in.tags = {"", "ttnn::matmul", "ttnn::conv2d", "weights"};
    for (uint32_t d = 0; d < 2; ++d) {
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        in.state.counters[d][k].total_allocs = 10 * d + k;
        in.state.counters[d][k].peak_reserved = 1000 * k;
      }
    }
  }
  TagText tags() const {
    return [this](uint32_t id) { return id < in.tags.size() ? in.tags[id] : std::string(); };
  }
  std::vector<pr::BufferRecord>& records() { return in.state.records; }

  void push(uint32_t device, pr::EventType type, const pr::BufferRecord& r) {
    events.emplace_back(device, pr::event_of(type, r));
  }

  // A DRAM buffer at `address`, `per_bank` bytes a bank.
  void step_alloc_at(uint32_t device, uint64_t address, uint64_t per_bank) {
    pr::BufferRecord r{};
    r.device = uint8_t(device);
    r.kind = uint8_t(kDram);
    r.flags = pr::kRecordLive;
    r.buffer_id = next_id++;
    r.address = address;
    r.size_per_bank = per_bank;
    r.size = 12 * per_bank;
    records().push_back(r);
    push(device, pr::EventType::Alloc, r);
  }

  // One random thing a runtime does, with its event(s), as the client library reports it.
  void step(std::mt19937_64& rng) {
    const uint32_t device = uint32_t(rng() % 2);
    const uint64_t what = rng() % 20;
    auto live_on_device = [&](bool cb) {
      std::vector<size_t> out;
      for (size_t i = 0; i < records().size(); ++i) {
        if (records()[i].device == device && (records()[i].kind == kCb) == cb) out.push_back(i);
      }
      return out;
    };
    if (what < 9) {  // allocate; now and then an id already live (the old one is replaced)
      pr::BufferRecord r{};
      r.device = uint8_t(device);
      const uint32_t kinds[] = {kDram, kL1, uint32_t(Kind::L1Small),
                                uint32_t(Kind::Trace), uint32_t(Kind::SystemMemory)};
      r.kind = uint8_t(kinds[rng() % 5]);
      r.flags = pr::kRecordLive;
      std::vector<size_t> same = live_on_device(false);
      const bool duplicate = !same.empty() && rng() % 10 == 0;
      r.buffer_id = duplicate ? records()[same[rng() % same.size()]].buffer_id : next_id++;
      r.address = (rng() % 1'200'000) & ~uint64_t{31};
      r.size = 1 + rng() % 400'000;
      r.size_per_bank = (r.size + 11) / 12;
      r.page_size = 2048;
      r.num_banks = uint16_t(rng() % 2 == 0 ? 12 : 64);
      r.tag = uint32_t(rng() % in.tags.size());
      r.time_ns = rng();
      if (duplicate) {
        auto old = std::find_if(records().begin(), records().end(), [&](const auto& o) {
          return o.device == device && o.kind != kCb && o.buffer_id == r.buffer_id;
        });
        push(device, pr::EventType::Free, *old);
        records().erase(old);
      }
      records().push_back(r);
      push(device, pr::EventType::Alloc, r);
    } else if (what < 16) {  // free a live buffer
      std::vector<size_t> live = live_on_device(false);
      if (live.empty()) return;
      const size_t i = live[rng() % live.size()];
      push(device, pr::EventType::Free, records()[i]);
      records().erase(records().begin() + std::ptrdiff_t(i));
    } else if (what < 18) {  // a program's CB set: a CB on two core ranges
      const uint64_t program = 1 + rng() % 6;
      const uint64_t address = 100'000 + 1024 * (rng() % 200);
      const uint64_t size = 1024 * (1 + rng() % 16);
      const uint32_t tag = uint32_t(rng() % in.tags.size());
      for (uint32_t range = 0; range < 2; ++range) {
        pr::BufferRecord r{};
        r.device = uint8_t(device);
        r.kind = uint8_t(kCb);
        r.flags = pr::kRecordLive;
        r.buffer_id = program;
        r.address = address;
        r.size = r.size_per_bank = size;
        const uint8_t x0 = uint8_t(rng() % 8), y0 = uint8_t(4 * range);
        r.aux = x0 | uint32_t(y0) << 8 | uint32_t(7) << 16 | uint32_t(y0 + 3) << 24;
        r.num_banks = r.num_cores = uint16_t((8 - x0) * 4);
        r.tag = tag;
        auto same = std::find_if(records().begin(), records().end(), [&](const auto& o) {
          return o.device == device && o.kind == kCb && o.buffer_id == program &&
                 o.address == address && o.aux == r.aux && o.size == size;
        });
        if (same != records().end()) continue;  // the client never writes a CB twice
        records().push_back(r);
        push(device, pr::EventType::CbAlloc, r);
      }
    } else if (what < 19) {  // a program destroyed
      pr::BufferRecord r{};
      r.kind = uint8_t(kCb);
      r.buffer_id = 1 + rng() % 6;
      std::erase_if(records(), [&](const auto& o) {
        return o.device == device && o.kind == kCb && o.buffer_id == r.buffer_id;
      });
      push(device, pr::EventType::CbFreeProgram, r);
    } else {  // the program cache cleared
      pr::BufferRecord r{};
      r.kind = uint8_t(kCb);
      std::erase_if(records(), [&](const auto& o) { return o.device == device && o.kind == kCb; });
      push(device, pr::EventType::CbFreeAll, r);
    }
  }
};

std::vector<IncrementalInput> inputs_of(const std::vector<Client>& clients) {
  std::vector<IncrementalInput> inputs;
  for (const Client& c : clients) {
    inputs.push_back({c.key, c.in.identity, &c.in.state, c.tags(), c.in.dropped_events});
  }
  return inputs;
}

void expect_same_as_full_fold(IncrementalFold& fold, const std::vector<Client>& clients) {
  std::vector<FoldInput> full;
  for (const Client& c : clients) full.push_back(c.in);
  for (bool list_buffers : {false, true}) {
    CbPeaks full_peaks, incremental_peaks;
    const Snapshot want = fold_snapshot(full, list_buffers, &full_peaks);
    const Snapshot got = fold.snapshot(inputs_of(clients), list_buffers, &incremental_peaks);
    std::string difference;
    EXPECT_TRUE(same_figures(got, want, &difference)) << difference;
    EXPECT_EQ(full_peaks, incremental_peaks);
    if (!list_buffers) {
      // Listed on request after a snapshot of aggregates: the buffers a listing fold gives.
      Snapshot listed = got;
      listed.buffers = fold.list_buffers();
      const Snapshot want_listed = fold_snapshot(full, true, &full_peaks);
      EXPECT_EQ(listed.buffers.size(), want_listed.buffers.size());
      EXPECT_TRUE(same_figures(listed, want_listed, &difference)) << difference;
    }
  }
}

// Three processes, two of them on the same chip, folded from a full read and then from
// thousands of random events, checked against the full fold as they go.
TEST(IncrementalFold, RandomEventsFoldToWhatAFullReadGives) {
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    std::vector<Client> clients = {Client(10, 7, 8), Client(11, 7, 9), Client(12, 9, 10)};
    IncrementalFold fold;
    for (Client& c : clients) {
      for (int i = 0; i < 200; ++i) c.step(rng);
      c.events.clear();  // what the first full read sees
      fold.reset_process(c.key, c.in.state, c.records(), c.tags());
    }
    expect_same_as_full_fold(fold, clients);
    for (int round = 0; round < 8; ++round) {
      for (Client& c : clients) {
        const int steps = int(rng() % 300);
        for (int i = 0; i < steps; ++i) c.step(rng);
        for (const auto& [device, ev] : c.events) {
          ASSERT_TRUE(fold.apply(c.key, c.in.state, device, ev, c.tags()));
        }
        c.events.clear();
      }
      expect_same_as_full_fold(fold, clients);
    }
    // A process that leaves takes its share with it.
    fold.forget_all_but({clients[0].key, clients[2].key});
    clients.erase(clients.begin() + 1);
    expect_same_as_full_fold(fold, clients);
  }
}

// The full read a process starts from is not an instant: events from the ring heads taken
// before it are applied on top, some of them already reflected in what it saw. Applying them
// again changes nothing.
TEST(IncrementalFold, EventsTheFullReadAlreadySawChangeNothing) {
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    Client c(20, 7, 8);
    for (int i = 0; i < 300; ++i) c.step(rng);
    c.events.clear();
    for (int i = 0; i < 400; ++i) c.step(rng);
    const std::vector<std::pair<uint32_t, pr::EventRecord>> since_heads = c.events;
    // The scan saw the state some way through those events.
    const size_t seen = rng() % (since_heads.size() + 1);
    std::vector<pr::BufferRecord> scanned;
    {
      // Rebuild the records as they were after `seen` of the events: replay them on the state
      // before them is what the client did; here, run the same seed again up to that point.
      std::mt19937_64 again(seed);
      Client before(20, 7, 8);
      for (int i = 0; i < 300; ++i) before.step(again);
      before.events.clear();
      while (before.events.size() < seen) before.step(again);
      scanned = before.records();
    }
    IncrementalFold fold;
    fold.reset_process(c.key, c.in.state, scanned, c.tags());
    for (const auto& [device, ev] : since_heads) {
      ASSERT_TRUE(fold.apply(c.key, c.in.state, device, ev, c.tags()));
    }
    expect_same_as_full_fold(fold, {c});
  }
}

// A process that frees most of what it held: its live set is packed (the freed places are
// dropped), and what it allocates next fills the places freed before it grows. Folded as one
// batch, as a collector applies a refresh's events.
TEST(IncrementalFold, AMostlyFreedProcessStillFoldsToTheFullFigures) {
  Client c(30, 7, 8);
  for (uint32_t i = 0; i < 3000; ++i) c.step_alloc_at(i % 2, 4096 * uint64_t(i), 2048);
  c.events.clear();
  IncrementalFold fold;
  fold.reset_process(c.key, c.in.state, c.records(), c.tags());
  std::mt19937_64 rng(3);
  auto free_some = [&](size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const size_t at = rng() % c.records().size();
      c.push(c.records()[at].device, pr::EventType::Free, c.records()[at]);
      c.records().erase(c.records().begin() + std::ptrdiff_t(at));
    }
  };
  auto apply = [&] {
    ASSERT_TRUE(fold.apply_all(c.key, c.in.state, c.events, c.tags()));
    c.events.clear();
    expect_same_as_full_fold(fold, {c});
  };
  free_some(1000);  // a third: holes kept
  apply();
  free_some(1700);  // most of it: packed
  apply();
  for (uint32_t i = 0; i < 800; ++i) c.step_alloc_at(i % 2, 4096 * uint64_t(3000 + i), 1024);
  free_some(200);
  apply();
}

// Nested DRAM ranges make a chip's bank structure give up: its free space then comes from the
// ranges at each snapshot that follows a change, and once they are all freed the structure
// starts over.
TEST(IncrementalFold, BanksOfDeeplyOverlappingRangesStillFoldToTheFullFigures) {
  Client c(40, 7, 8);
  for (uint64_t i = 0; i < 3 * BankSpace::kMaxSpannedPieces; ++i) {
    pr::BufferRecord r{};
    r.kind = uint8_t(kDram);
    r.flags = pr::kRecordLive;
    r.buffer_id = c.next_id++;
    r.address = 2000 * i;
    r.size_per_bank = 1'000'000 - 4000 * i;
    r.size = 12 * r.size_per_bank;
    c.records().push_back(r);
  }
  IncrementalFold fold;
  fold.reset_process(c.key, c.in.state, c.records(), c.tags());
  expect_same_as_full_fold(fold, {c});
  // Every other range freed, from the outermost in, twice: the first round gives the structure
  // up; the second changes the free space of a bank that a snapshot has figured since.
  for (int round = 0; round < 2; ++round) {
    std::vector<pr::BufferRecord> kept;
    for (size_t i = 0; i < c.records().size(); ++i) {
      if (i % 2 == 0) {
        c.push(0, pr::EventType::Free, c.records()[i]);
      } else {
        kept.push_back(c.records()[i]);
      }
    }
    c.records() = kept;
    for (const auto& [device, ev] : c.events) {
      ASSERT_TRUE(fold.apply(c.key, c.in.state, device, ev, c.tags()));
    }
    c.events.clear();
    expect_same_as_full_fold(fold, {c});
  }
  for (const pr::BufferRecord& r : c.records()) c.push(0, pr::EventType::Free, r);
  c.records().clear();
  c.step_alloc_at(0, 5000, 10'000);
  for (const auto& [device, ev] : c.events) {
    ASSERT_TRUE(fold.apply(c.key, c.in.state, device, ev, c.tags()));
  }
  expect_same_as_full_fold(fold, {c});
}

TEST(IncrementalFold, RefusesEventsAFullReadWouldRejectAsRecords) {
  Client c(30, 7, 8);
  IncrementalFold fold;
  fold.reset_process(c.key, c.in.state, {}, c.tags());
  pr::EventRecord ev{};
  ev.type = uint8_t(pr::EventType::Alloc);
  ev.kind = 42;  // no such kind
  EXPECT_FALSE(fold.apply(c.key, c.in.state, 0, ev, c.tags()));
  ev.kind = uint8_t(kDram);
  EXPECT_FALSE(fold.apply(c.key, c.in.state, 5, ev, c.tags()));  // device not registered
  ev.address = ~0ull;
  ev.size_per_bank = 2;  // wraps
  EXPECT_FALSE(fold.apply(c.key, c.in.state, 0, ev, c.tags()));
  ev.address = 0;
  ev.tag = pr::kStringCapacity;  // past any string table
  EXPECT_FALSE(fold.apply(c.key, c.in.state, 0, ev, c.tags()));
  ev.tag = 0;
  ev.type = 99;
  EXPECT_FALSE(fold.apply(c.key, c.in.state, 0, ev, c.tags()));
  // A device registered again as another chip: its records must be folded again. The slot's
  // mark moves with it, as SegmentReader gives one to every slot it puts in a state; the fold
  // trusts a slot it checked under the same mark without comparing it again.
  ev.type = uint8_t(pr::EventType::Alloc);
  ev.size = ev.size_per_bank = 4096;
  c.in.state.device_marks[0] = 5;
  ASSERT_TRUE(fold.apply(c.key, c.in.state, 0, ev, c.tags()));
  ev.buffer_id = 2;
  ASSERT_TRUE(fold.apply(c.key, c.in.state, 0, ev, c.tags()));  // checked under mark 5
  c.in.state.devices[0] = device_slot(99, 0);
  c.in.state.device_marks[0] = 6;
  ev.buffer_id = 3;
  EXPECT_FALSE(fold.apply(c.key, c.in.state, 0, ev, c.tags()));
}

// ---------------------------------------------------------------------------------------------
// Through the collector: a hand-made segment written as the client writes it (record, then ring
// event, then head), read by an incremental collector and, each time, by a fresh full one.

// No process has this pid: the collector takes the segment for one that ended, believed because
// the file is its own user's; reap = false keeps it.
constexpr uint32_t kEndedPid = 1u << 30;

class Writer {
 public:
  explicit Writer(test::SegmentFile& f) : f_(f) {}

  void alloc(uint64_t id, uint64_t address, uint64_t size) {
    pr::BufferRecord r{};
    r.kind = uint8_t(kDram);
    r.buffer_id = id;
    r.address = address;
    r.size = size;
    r.size_per_bank = (size + 11) / 12;
    r.num_banks = 12;
    r.page_size = 2048;
    const uint32_t slot = next_slot_++;
    f_.put(slot, r);
    slots_.push_back({id, slot});
    event(pr::EventType::Alloc, r);
  }
  void free(uint64_t id) {
    auto it = std::find_if(slots_.begin(), slots_.end(), [&](auto& s) { return s.first == id; });
    pr::BufferRecord r = f_.slab()[it->second];
    pr::store_word(reinterpret_cast<uint64_t*>(&f_.slab()[it->second]), uint64_t(r.seq + 2));
    slots_.erase(it);
    event(pr::EventType::Free, r);
  }

 private:
  void event(pr::EventType type, const pr::BufferRecord& r) {
    const pr::EventRecord ev = pr::event_of(type, r);  // as the client reports it
    const uint64_t i = head_++;
    auto* rings = reinterpret_cast<pr::EventRecord*>(reinterpret_cast<uint8_t*>(f_.header()) +
                                                     f_.header()->rings_offset);
    pr::EventRecord* slot = &rings[i % test::SegmentFile::kRing];
    pr::store_word(&slot->seq, 2 * i + 1);
    pr::copy_words_in(slot, ev, 1);
    pr::store_word(&slot->seq, 2 * i + 2, std::memory_order_release);
    pr::store_word(&f_.ring_heads()[0].head, head_, std::memory_order_release);
  }

  test::SegmentFile& f_;
  uint32_t next_slot_ = 0;
  uint64_t head_ = 0;
  std::vector<std::pair<uint64_t, uint32_t>> slots_;
};

TEST(IncrementalCollector, FollowsTheSegmentAndReadsItInFullAfterAGap) {
  test::SegmentFile f(kEndedPid);
  f.header()->slab_high_water = 0;
  Writer w(f);
  CollectorOptions options{.dir = f.dir(), .reap = false};
  options.incremental = true;
  Collector incremental(options);
  auto full_snapshot = [&] {
    Collector full(CollectorOptions{.dir = f.dir(), .reap = false});
    full.refresh();
    return full.snapshot();
  };
  auto expect_same = [&](const char* when) {
    incremental.refresh();
    std::string difference;
    EXPECT_TRUE(same_figures(incremental.snapshot(), full_snapshot(), &difference))
        << when << ": " << difference;
  };
  auto grow = [&](uint32_t slots) {
    pr::store_u32(&f.header()->slab_high_water, slots, std::memory_order_release);
  };
  grow(40);
  for (uint64_t id = 1; id <= 10; ++id) w.alloc(id, id * 100'000, 50'000);
  expect_same("first read");
  EXPECT_EQ(incremental.snapshot().devices.at(0).kinds[kDram].count, 10u);
  w.free(3);
  w.free(7);
  w.alloc(11, 300'000, 20'000);
  expect_same("events within the ring");
  EXPECT_EQ(incremental.snapshot().devices.at(0).kinds[kDram].count, 9u);
  // More events than the ring holds: the ones not read are gone, so the segment is read again.
  for (uint64_t id = 12; id <= 32; ++id) w.alloc(id, id * 100'000, 10'000);
  for (uint64_t id = 12; id <= 20; ++id) w.free(id);
  expect_same("after a gap");
  EXPECT_EQ(incremental.snapshot().devices.at(0).kinds[kDram].count, 21u);
  expect_same("nothing changed");
}

// ttmemd and top refresh without listing buffers and list them only when asked: the list is
// the one a collector that lists at every refresh has.
TEST(IncrementalCollector, ListsBuffersOnRequestAsAListingCollectorDoes) {
  test::SegmentFile f(kEndedPid);
  f.header()->slab_high_water = 0;
  Writer w(f);
  CollectorOptions options{.dir = f.dir(), .reap = false, .list_buffers = false};
  options.incremental = true;
  Collector incremental(options);
  pr::store_u32(&f.header()->slab_high_water, 40, std::memory_order_release);
  for (uint64_t id = 1; id <= 10; ++id) w.alloc(id, id * 100'000, 50'000);
  incremental.refresh();
  w.free(4);
  w.alloc(11, 400'000, 30'000);
  incremental.refresh();
  EXPECT_TRUE(incremental.snapshot().buffers.empty());
  EXPECT_FALSE(incremental.lists_buffers());

  Collector full(CollectorOptions{.dir = f.dir(), .reap = false});
  full.refresh();
  Snapshot listed = incremental.snapshot();
  listed.buffers = incremental.list_buffers();
  ASSERT_EQ(listed.buffers.size(), 10u);
  std::string difference;
  EXPECT_TRUE(same_figures(listed, full.snapshot(), &difference)) << difference;

  // Turned on, refreshes list them themselves.
  incremental.set_list_buffers(true);
  incremental.refresh();
  EXPECT_TRUE(same_figures(incremental.snapshot(), full.snapshot(), &difference)) << difference;
  EXPECT_EQ(incremental.list_buffers().size(), 10u);
}

}  // namespace
}  // namespace ttmem::collector
