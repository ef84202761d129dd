// The long-lived tracked program of the soak: a steady resident set on every device (weights,
// a KV cache, a captured trace, conv configs) with transient buffers and circular buffers churned
// around it step after step, as a decode loop does, until it is told to stop.
//
//   ttmem_soak_client --devices 8 --rate EVENTS_PER_S --events N --truth FILE
//
// Prints "churning" once the resident set is allocated. A step allocates, on every device, a
// batch of activations and a program's CBs, then frees them all, so between steps the live set
// is exactly the resident set. --rate paces the steps (0: as fast as possible); the client
// stops after --events reports (0: no limit) or when a line arrives on stdin. It then writes
// FILE (ttmem_testload's truth format: per device and kind, what must be live and how many
// allocations and frees were reported), prints "stopped <reports> <seconds>", and waits for one
// more line: "free" frees the resident set and exits; anything else exits leaving it allocated.
#include <poll.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/kinds.h"
#include "test_device.h"
#include "ttmem/ttmem.hpp"

namespace {

using ttmem::test::kUnreservedBase;
using ttmem::test::test_device_desc;

struct Options {
  uint32_t devices = 8;
  double rate = 20'000;  // reports per second
  uint64_t events = 0;
  std::string truth = "truth.json";
};

struct Tally {
  uint64_t requested = 0, reserved = 0, count = 0, allocs = 0, frees = 0;
};

// The buffers one step makes and frees on every device: the outputs of a decode layer's ops.
constexpr uint32_t kTransientBuffers = 12;
// The CBs of the step's program, freed together when the program is released.
constexpr uint32_t kTransientCbs = 3;
// Reports per device per step: each buffer's allocation and free, each CB, and the CB set's free.
constexpr uint64_t kReportsPerDeviceStep = 2 * kTransientBuffers + kTransientCbs + 1;

// Op names cycle through a fixed set: a real model reuses its ops, and the string table must not
// grow with the number of steps.
constexpr const char* kOps[] = {"ttnn::matmul", "ttnn::rms_norm", "ttnn::add",
                                "ttnn::experimental::nlp_create_qkv_heads", "ttnn::softmax"};

uint64_t div_ceil(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
}

class SoakClient {
 public:
  explicit SoakClient(const Options& o) : o_(o), rng_(7), tallies_(o.devices) {
    for (uint32_t d = 0; d < o.devices; ++d) ttmem::register_device(test_device_desc(d));
  }

  // Weights and KV cache in DRAM, a trace, resident L1 and L1_SMALL: the live set that a model
  // keeps for its whole run.
  void allocate_resident_set() {
    for (uint32_t d = 0; d < o_.devices; ++d) {
      ttmem::OpScope op("ttnn::as_tensor");
      for (uint32_t i = 0; i < 48; ++i) resident(d, TTMEM_KIND_DRAM, (8u << 20) + i * 4096);
      for (uint32_t i = 0; i < 32; ++i) resident(d, TTMEM_KIND_DRAM, 4'456'448);  // KV blocks
      resident(d, TTMEM_KIND_TRACE, 20'000'000);
      for (uint32_t i = 0; i < 16; ++i) resident(d, TTMEM_KIND_L1, 65536 + i * 2048);
      for (uint32_t i = 0; i < 4; ++i) resident(d, TTMEM_KIND_L1_SMALL, 4096);
    }
  }

  // One decode step on every device; returns the reports it made.
  uint64_t step() {
    const char* op_name = kOps[steps_ % std::size(kOps)];
    for (uint32_t d = 0; d < o_.devices; ++d) {
      ttmem::OpScope op(op_name);
      uint64_t ids[kTransientBuffers];
      for (uint32_t i = 0; i < kTransientBuffers; ++i) {
        const bool in_dram = i % 3 == 0;
        const uint64_t size = in_dram ? 1 + rng_() % (4u << 20) : 1 + rng_() % (64u << 10);
        ids[i] = next_id_++;
        ttmem_buffer_desc b = ttmem::make_buffer_desc(
            d, ids[i], in_dram ? ttmem::Kind::Dram : ttmem::Kind::L1, kUnreservedBase, size);
        b.page_size = 2048;
        b.num_banks = test_device_desc(d).kinds[b.kind].num_banks;
        ttmem::buffer_alloc(b);
      }
      for (uint32_t c = 0; c < kTransientCbs; ++c) {
        const uint16_t corner = uint16_t(rng_() % 8);
        ttmem::cb_alloc(d, {{0, 0, corner, corner}}, kUnreservedBase + c * 65536,
                        32 * (1 + rng_() % 1024), steps_);
      }
      for (uint64_t id : ids) ttmem::buffer_free(d, id);
      ttmem::cb_free_all(d);
      for (uint32_t k : {TTMEM_KIND_DRAM, TTMEM_KIND_L1}) {
        // Every third buffer is in DRAM: 4 of the 12, the other 8 in L1.
        const uint64_t n = k == TTMEM_KIND_DRAM ? kTransientBuffers / 3
                                                : kTransientBuffers - kTransientBuffers / 3;
        tallies_[d][k].allocs += n;
        tallies_[d][k].frees += n;
      }
      tallies_[d][TTMEM_KIND_CB].allocs += kTransientCbs;
      tallies_[d][TTMEM_KIND_CB].frees += kTransientCbs;
    }
    ++steps_;
    return kReportsPerDeviceStep * o_.devices;
  }

  void free_resident_set() {
    for (const Resident& r : resident_) ttmem::buffer_free(r.device, r.id);
    resident_.clear();
  }

  void write_truth() const {
    nlohmann::json j;
    for (uint32_t d = 0; d < o_.devices; ++d) {
      nlohmann::json kinds;
      for (uint32_t k = 0; k < TTMEM_KIND_COUNT; ++k) {
        const Tally& t = tallies_[d][k];
        kinds[std::string(ttmem::common::kKindNames[k])] = {{"requested", t.requested},
                                                            {"reserved", t.reserved},
                                                            {"count", t.count},
                                                            {"allocs", t.allocs},
                                                            {"frees", t.frees}};
      }
      j["devices"][std::to_string(d)] = kinds;
      j["chip_id"][std::to_string(d)] = ttmem::test::kChipIdBase + d;
      // Every step frees its CBs: no program holds a CB set between steps.
      j["cb_region_end"][std::to_string(d)] = kUnreservedBase;
      j["cb_programs"][std::to_string(d)] = 0;
    }
    std::ofstream(o_.truth + ".tmp") << j.dump() << "\n";
    std::rename((o_.truth + ".tmp").c_str(), o_.truth.c_str());
  }

 private:
  struct Resident {
    uint32_t device;
    uint64_t id;
  };

  // An interleaved buffer with its per-bank size given, so its reserved figure is known exactly.
  void resident(uint32_t device, uint32_t kind, uint64_t size) {
    const ttmem_kind_geometry g = test_device_desc(device).kinds[kind];
    const uint64_t per_bank = div_ceil(div_ceil(size, g.num_banks), g.alignment) * g.alignment;
    ttmem_buffer_desc b =
        ttmem::make_buffer_desc(device, next_id_, ttmem::Kind(kind), g.bank_base, size);
    b.page_size = g.alignment;
    b.num_banks = g.num_banks;
    b.size_per_bank = per_bank;
    if (ttmem::buffer_alloc(b) != TTMEM_OK) {
      std::fprintf(stderr, "resident allocation failed\n");
      std::exit(2);
    }
    resident_.push_back({device, next_id_++});
    Tally& t = tallies_[device][kind];
    t.requested += size;
    t.reserved += per_bank * g.num_banks;
    t.count += 1;
    t.allocs += 1;
  }

  const Options& o_;
  std::mt19937_64 rng_;
  std::vector<std::array<Tally, TTMEM_KIND_COUNT>> tallies_;
  std::vector<Resident> resident_;
  uint64_t next_id_ = 1;
  uint64_t steps_ = 0;
};

bool stdin_has_line() {
  pollfd p{0, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--devices")
      o.devices = uint32_t(std::atoi(v));
    else if (k == "--rate")
      o.rate = std::atof(v);
    else if (k == "--events")
      o.events = std::strtoull(v, nullptr, 10);
    else if (k == "--truth")
      o.truth = v;
    else
      return false;
  }
  return argc % 2 == 1 && o.devices >= 1 && o.devices <= TTMEM_MAX_DEVICES && o.rate >= 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: ttmem_soak_client [--devices N] [--rate REPORTS_PER_S] [--events N] "
                 "[--truth FILE]\n");
    return 2;
  }
  SoakClient client(o);
  client.allocate_resident_set();
  std::printf("churning\n");
  std::fflush(stdout);

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  uint64_t reports = 0;
  while ((o.events == 0 || reports < o.events) && !stdin_has_line()) {
    reports += client.step();
    if (o.rate > 0) {
      std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(reports / o.rate)));
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  client.write_truth();
  std::printf("stopped %llu %.3f\n", static_cast<unsigned long long>(reports), seconds);
  std::fflush(stdout);

  std::string line;
  if (o.events == 0 || reports < o.events)
    std::getline(std::cin, line);  // the line that stopped it
  if (std::getline(std::cin, line) && line == "free") client.free_resident_set();
  return 0;
}
