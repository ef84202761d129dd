// A tracked test program: registers devices and makes thousands of allocations and frees across
// kinds and threads through the real client library, keeping its own ground truth.
//
//   ttmem_testload --devices 8 --threads 4 --ops 2000 --phases 2 --seed 1 --truth PREFIX
//
// After each phase it writes PREFIX.<phase>.json and prints "phase <n>", then waits for a line on
// stdin. After the last phase it prints "done" and waits for one more line: "free" frees
// everything and exits 0; "exit" (or end of input) exits leaving its buffers allocated.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cb_oracle.h"
#include "common/kinds.h"
#include "test_device.h"
#include "ttmem/ttmem.hpp"

namespace {

using ttmem::test::kUnreservedBase;

struct Options {
  uint32_t devices = 8;
  uint32_t threads = 4;
  uint32_t ops = 2000;
  uint32_t phases = 1;
  uint32_t cb_every = 40;
  uint64_t seed = 1;
  std::string truth = "truth";
};

struct Live {
  uint32_t device;
  uint32_t kind;
  uint64_t id;
  uint64_t size;
  uint64_t reserved;
};

struct Tally {
  uint64_t requested = 0, reserved = 0, count = 0, allocs = 0, frees = 0;
};

// One live CB record: a CB of a program on one core range.
struct CbRecord {
  uint64_t program;
  ttmem::test::CbExtent extent;
};

// Ground truth, merged from the threads at the end of each phase.
struct Truth {
  std::vector<std::array<Tally, TTMEM_KIND_COUNT>> tallies;
  std::vector<uint64_t> events;  // ring events per device
  std::vector<Live> live;
  std::vector<std::vector<CbRecord>> cbs;  // live CB records, per device
};

std::vector<ttmem::test::CbExtent> extents(const std::vector<CbRecord>& cbs) {
  std::vector<ttmem::test::CbExtent> out;
  for (const CbRecord& r : cbs) out.push_back(r.extent);
  return out;
}

size_t cb_programs(const std::vector<CbRecord>& cbs) {
  std::set<uint64_t> programs;
  for (const CbRecord& r : cbs) programs.insert(r.program);
  return programs.size();
}

uint64_t div_ceil(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

class Worker {
 public:
  Worker(const Options& o, uint32_t index, Truth& shared_cbs_owner)
      : o_(o), index_(index), rng_(o.seed * 1000003 + index), cb_truth_(shared_cbs_owner) {
    tallies_.resize(o.devices);
    events_.resize(o.devices, 0);
  }

  void run_phase() {
    for (uint32_t i = 0; i < o_.ops; ++i) {
      if (index_ == 0 && o_.cb_every != 0 && i % o_.cb_every == 0) cb_op();
      if (live_.empty() || uniform(100) < 55) {
        alloc();
      } else {
        free_one();
      }
    }
  }

  void free_all() {
    for (const Live& l : live_) ttmem::buffer_free(l.device, l.id);
    live_.clear();
  }

  void merge_into(Truth& t) const {
    for (uint32_t d = 0; d < o_.devices; ++d) {
      for (uint32_t k = 0; k < TTMEM_KIND_COUNT; ++k) {
        Tally& dst = t.tallies[d][k];
        const Tally& src = tallies_[d][k];
        dst.requested += src.requested;
        dst.reserved += src.reserved;
        dst.count += src.count;
        dst.allocs += src.allocs;
        dst.frees += src.frees;
      }
      t.events[d] += events_[d];
    }
    t.live.insert(t.live.end(), live_.begin(), live_.end());
  }

 private:
  uint64_t uniform(uint64_t n) { return rng_() % n; }

  void alloc() {
    static constexpr uint32_t kKinds[] = {TTMEM_KIND_DRAM, TTMEM_KIND_DRAM, TTMEM_KIND_L1,
                                          TTMEM_KIND_L1, TTMEM_KIND_L1_SMALL, TTMEM_KIND_TRACE,
                                          TTMEM_KIND_SYSTEM_MEMORY};
    uint32_t device = uint32_t(uniform(o_.devices));
    uint32_t kind = kKinds[uniform(std::size(kKinds))];
    ttmem_device_desc geo = ttmem::test::test_device_desc(device);
    const ttmem_kind_geometry& g = geo.kinds[kind];
    uint64_t id = (uint64_t(index_ + 1) << 40) | next_id_++;
    static constexpr uint64_t kPages[] = {2048, 4096, 1088, 576, 32};
    uint64_t page = kPages[uniform(std::size(kPages))];
    uint64_t size = (kind == TTMEM_KIND_DRAM ? 1 + uniform(16u << 20) : 1 + uniform(1u << 16));
    ttmem_buffer_desc b = ttmem::make_buffer_desc(device, id, ttmem::Kind(kind), 0, size);
    b.page_size = page;
    bool sharded = kind != TTMEM_KIND_DRAM && uniform(2) == 0;
    b.layout = sharded ? TTMEM_LAYOUT_WIDTH_SHARDED : TTMEM_LAYOUT_INTERLEAVED;
    uint32_t banks = sharded ? uint32_t(1 + uniform(g.num_banks ? g.num_banks : 1)) : g.num_banks;
    b.num_banks = banks;
    b.num_cores = sharded ? banks : 0;
    uint64_t per_bank = 0;
    if (banks != 0) {
      uint64_t align = std::max<uint32_t>(g.alignment, 1);
      per_bank = div_ceil(div_ceil(size, page), banks) * div_ceil(page, align) * align;
      // Half the reports give the per-bank size, half leave it to the library to derive.
      if (uniform(2) == 0) b.size_per_bank = per_bank;
    }
    b.address = g.bank_base + uniform(std::max<uint64_t>(g.bank_size / 32, 1)) * 32;
    b.tag = uniform(3) == 0 ? "testload::explicit" : nullptr;
    ttmem::OpScope op(index_ % 2 ? "ttnn::linear" : "ttnn::matmul");
    if (int rc = ttmem::buffer_alloc(b); rc != TTMEM_OK && rc != TTMEM_DISABLED) {
      std::fprintf(stderr, "alloc failed\n");
      std::exit(2);
    }
    uint64_t reserved = g.num_banks != 0 ? per_bank * g.num_banks : size;
    Tally& t = tallies_[device][kind];
    t.requested += size;
    t.reserved += reserved;
    t.count += 1;
    t.allocs += 1;
    events_[device] += 1;
    live_.push_back({device, kind, id, size, reserved});
  }

  void free_one() {
    size_t i = uniform(live_.size());
    Live l = live_[i];
    live_[i] = live_.back();
    live_.pop_back();
    if (int rc = ttmem::buffer_free(l.device, l.id); rc != TTMEM_OK && rc != TTMEM_DISABLED) {
      std::fprintf(stderr, "free failed\n");
      std::exit(2);
    }
    Tally& t = tallies_[l.device][l.kind];
    t.requested -= l.size;
    t.reserved -= l.reserved;
    t.count -= 1;
    t.frees += 1;
    events_[l.device] += 1;
  }

  // Thread 0 alone reports CBs, so the per-device CB truth has one writer. Like tt-metal, each
  // program's CBs stack up from the unreserved base on a few core ranges, the sets of live
  // programs overlap, and a program's set is freed whole (or every set of the device at once).
  void cb_op() {
    uint32_t device = uint32_t(uniform(o_.devices));
    std::vector<CbRecord>& cbs = cb_truth_.cbs[device];
    const uint64_t choice = uniform(6);
    if (choice == 0) {
      ttmem::cb_free_all(device);
      if (!cbs.empty()) events_[device] += 1;
      forget_cbs(device, [](const CbRecord&) { return true; });
      return;
    }
    if (choice == 1 && !cbs.empty()) {
      const uint64_t program = cbs[uniform(cbs.size())].program;
      if (int rc = ttmem::cb_free_program(device, program); rc != TTMEM_OK && rc != TTMEM_DISABLED) {
        std::fprintf(stderr, "cb_free_program failed\n");
        std::exit(2);
      }
      events_[device] += 1;
      forget_cbs(device, [program](const CbRecord& r) { return r.program == program; });
      return;
    }
    const uint64_t program = next_program_++;
    uint64_t address = kUnreservedBase;
    for (uint64_t cb = 0, n = 1 + uniform(3); cb < n; ++cb) {
      const uint64_t size = 32 * (1 + uniform(2048));
      std::vector<ttmem_core_range> ranges;
      for (uint64_t r = 0, m = 1 + uniform(2); r < m; ++r) {
        const uint16_t x0 = uint16_t(uniform(8)), y0 = uint16_t(uniform(8));
        ranges.push_back({x0, y0, uint16_t(x0 + uniform(8 - x0)), uint16_t(y0 + uniform(8 - y0))});
      }
      ttmem_cb_alloc(device, ranges.data(), ranges.size(), address, size, program);
      Tally& t = tallies_[device][TTMEM_KIND_CB];
      for (const ttmem_core_range& r : ranges) {
        cbs.push_back({program, {r, address + size}});
        t.count += 1;
        t.allocs += 1;
        events_[device] += 1;
      }
      address += size;
    }
  }

  // Drops the device's CB records that `freed` selects from the truth, counting their frees.
  template <class Pred>
  void forget_cbs(uint32_t device, Pred freed) {
    Tally& t = tallies_[device][TTMEM_KIND_CB];
    std::erase_if(cb_truth_.cbs[device], [&](const CbRecord& r) {
      if (!freed(r)) return false;
      t.count -= 1;
      t.frees += 1;
      return true;
    });
  }

  const Options& o_;
  uint32_t index_;
  std::mt19937_64 rng_;
  Truth& cb_truth_;
  uint64_t next_id_ = 1;
  uint64_t next_program_ = 1;
  std::vector<std::array<Tally, TTMEM_KIND_COUNT>> tallies_;
  std::vector<uint64_t> events_;
  std::vector<Live> live_;
};

// The truth document: per device and kind the exact figures a collector must show (CB:
// requested and reserved are the covered L1), the CB region end and programs per device, ring
// events per device, and the live buffers.
void write_truth(const Options& o, const std::vector<Worker>& workers, const Truth& cb_owner,
                 uint32_t phase) {
  Truth t;
  t.tallies.resize(o.devices);
  t.events.resize(o.devices, 0);
  for (const auto& w : workers) w.merge_into(t);
  nlohmann::json j;
  for (uint32_t d = 0; d < o.devices; ++d) {
    Tally& cb = t.tallies[d][TTMEM_KIND_CB];
    // The L1 the sets cover, worked out core by core without the collector's code.
    const std::vector<ttmem::test::CbExtent> live_cbs = extents(cb_owner.cbs[d]);
    cb.requested = cb.reserved = ttmem::test::covered_cb_bytes(live_cbs, {8, 8, kUnreservedBase});
    nlohmann::json dev;
    for (uint32_t k = 0; k < TTMEM_KIND_COUNT; ++k) {
      const Tally& x = t.tallies[d][k];
      dev[std::string(ttmem::common::kKindNames[k])] = {{"requested", x.requested},
                                                        {"reserved", x.reserved},
                                                        {"count", x.count},
                                                        {"allocs", x.allocs},
                                                        {"frees", x.frees}};
    }
    const std::string id = std::to_string(d);
    j["devices"][id] = dev;
    j["events"][id] = t.events[d];
    j["chip_id"][id] = 0x7000 + d;
    j["cb_region_end"][id] = ttmem::test::cb_region_end(live_cbs, kUnreservedBase);
    j["cb_programs"][id] = cb_programs(cb_owner.cbs[d]);
  }
  const char* setup = ttmem_setup_message();
  j["setup_message"] = setup != nullptr ? setup : "";
  j["live"] = nlohmann::json::array();
  for (const Live& l : t.live)
    j["live"].push_back({l.device, std::string(ttmem::common::kKindNames[l.kind]), l.id});
  std::string path = o.truth + "." + std::to_string(phase) + ".json";
  std::ofstream(path + ".tmp") << j.dump() << "\n";
  std::rename((path + ".tmp").c_str(), path.c_str());
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--devices") o.devices = uint32_t(std::atoi(v));
    else if (k == "--threads") o.threads = uint32_t(std::atoi(v));
    else if (k == "--ops") o.ops = uint32_t(std::atoi(v));
    else if (k == "--phases") o.phases = uint32_t(std::atoi(v));
    else if (k == "--cb-every") o.cb_every = uint32_t(std::atoi(v));
    else if (k == "--seed") o.seed = std::strtoull(v, nullptr, 10);
    else if (k == "--truth") o.truth = v;
    else return false;
  }
  return o.devices >= 1 && o.devices <= TTMEM_MAX_DEVICES && o.threads >= 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr, "usage: ttmem_testload [--devices N] [--threads T] [--ops K] "
                         "[--phases P] [--cb-every C] [--seed S] [--truth PREFIX]\n");
    return 2;
  }
  for (uint32_t d = 0; d < o.devices; ++d) {
    ttmem_device_desc desc = ttmem::test::test_device_desc(d);
    ttmem::register_device(desc);
  }
  Truth cb_owner;
  cb_owner.cbs.resize(o.devices);
  std::vector<Worker> workers;
  workers.reserve(o.threads);
  for (uint32_t t = 0; t < o.threads; ++t) workers.emplace_back(o, t, cb_owner);

  std::string line;
  for (uint32_t phase = 1; phase <= o.phases; ++phase) {
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([&w] { w.run_phase(); });
    for (auto& t : threads) t.join();
    write_truth(o, workers, cb_owner, phase);
    std::printf("phase %u\n", phase);
    std::fflush(stdout);
    if (phase < o.phases && !std::getline(std::cin, line)) return 0;
  }
  std::printf("done\n");
  std::fflush(stdout);
  if (std::getline(std::cin, line) && line == "free") {
    for (auto& w : workers) w.free_all();
    for (uint32_t d = 0; d < o.devices; ++d) ttmem::cb_free_all(d);
  }
  return 0;
}
