#include "fault_harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include "collector/daemon_file.h"
#include "common/kinds.h"

namespace ttmem::test::fault {

using collector::LeakRecord;
using common::kind_name;

namespace fs = std::filesystem;

AckFile::AckFile(const std::string& path, uint32_t threads, uint32_t devices) : path_(path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || ::ftruncate(fd, sizeof(AckTable)) != 0) {
    throw std::runtime_error("cannot create " + path);
  }
  void* p = ::mmap(nullptr, sizeof(AckTable), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw std::runtime_error("cannot map " + path);
  table_ = static_cast<AckTable*>(p);
  table_->threads = threads;
  table_->devices = devices;
}

AckFile::~AckFile() {
  ::munmap(table_, sizeof(AckTable));
  ::unlink(path_.c_str());
}

bool AckFile::pause() {
  table_->pause.store(1, std::memory_order_release);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    uint32_t parked = 0;
    for (uint32_t t = 0; t < table_->threads; ++t) {
      parked += table_->thread[t].paused.load(std::memory_order_acquire);
    }
    if (parked == table_->threads) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

void AckFile::resume() {
  table_->pause.store(0, std::memory_order_release);
}

uint64_t AckFile::ops() const {
  uint64_t n = 0;
  for (uint32_t t = 0; t < table_->threads; ++t) n += table_->thread[t].ops.load();
  return n;
}

Acknowledged acknowledged(const AckTable& table) {
  Acknowledged a;
  for (uint32_t t = 0; t < table.threads; ++t) {
    uint32_t in_flight = 0;
    for (const Slot& s : table.thread[t].slots) {
      uint32_t state = s.state.load();
      uint64_t id = s.id.load();
      if (state == kLive) a.live.emplace(id, buffer_for(id, table.devices));
      if (state == kAllocInFlight || state == kFreeInFlight) {
        a.maybe.emplace(id, buffer_for(id, table.devices));
        ++in_flight;
      }
    }
    if (in_flight > 1) {
      a.problem =
          "thread " + std::to_string(t) + " has " + std::to_string(in_flight) + " calls in flight";
    }
  }
  return a;
}

nlohmann::json truth_json(const AckTable& table) {
  struct Tally {
    uint64_t requested = 0, reserved = 0, count = 0, allocs = 0, frees = 0;
  };
  std::vector<std::array<Tally, protocol::kNumKinds>> tallies(table.devices);
  for (const auto& [id, b] : acknowledged(table).live) {
    Tally& t = tallies[b.device][b.kind];
    t.requested += b.size;
    t.reserved += reserved_for(b);
    t.count += 1;
  }
  nlohmann::json j;
  for (uint32_t d = 0; d < table.devices; ++d) {
    nlohmann::json dev;
    for (uint32_t k = 0; k < protocol::kNumKinds; ++k) {
      Tally& t = tallies[d][k];
      for (uint32_t th = 0; th < table.threads; ++th) {
        t.allocs += table.thread[th].allocs[d][k].load();
        t.frees += table.thread[th].frees[d][k].load();
      }
      dev[std::string(kind_name(k))] = {{"requested", t.requested},
                                        {"reserved", t.reserved},
                                        {"count", t.count},
                                        {"allocs", t.allocs},
                                        {"frees", t.frees}};
    }
    j["devices"][std::to_string(d)] = dev;
    j["chip_id"][std::to_string(d)] = test_device_desc(d).chip_id;
    // The fault client reports no CBs: no program holds a set.
    j["cb_region_end"][std::to_string(d)] = test_device_desc(d).unreserved_base;
    j["cb_programs"][std::to_string(d)] = 0;
  }
  return j;
}

// "" when every field of a shown buffer is the one its id implies.
std::string buffer_differs(uint64_t id, uint32_t device, uint32_t kind, uint64_t address,
                           uint64_t size, uint64_t reserved, const ExpectedBuffer& want) {
  if (device == want.device && kind == want.kind && address == want.address && size == want.size &&
      reserved == reserved_for(want)) {
    return "";
  }
  return "buffer " + std::to_string(id) + " shown as device " + std::to_string(device) + " kind " +
         std::to_string(kind) + " address " + std::to_string(address) + " size " +
         std::to_string(size) + " reserved " + std::to_string(reserved) + "; the client wrote " +
         std::to_string(want.device) + "/" + std::to_string(want.kind) + "/" +
         std::to_string(want.address) + "/" + std::to_string(want.size) + "/" +
         std::to_string(reserved_for(want));
}

// The leak records of `pid` are the acknowledged live set, plus or minus only the buffers whose
// call was in flight when the process died.
void expect_leaks_are_acknowledged(const std::vector<LeakRecord>& leaks, pid_t pid,
                                   const AckTable& table) {
  Acknowledged ack = acknowledged(table);
  ASSERT_EQ(ack.problem, "");
  for (const LeakRecord& l : leaks) {
    if (l.pid != pid) continue;
    // Each acknowledged buffer may be reported once; an in-flight one at most once.
    auto& from = ack.live.count(l.buffer_id) ? ack.live : ack.maybe;
    auto it = from.find(l.buffer_id);
    if (it == from.end()) {
      ADD_FAILURE() << "leak of buffer " << l.buffer_id << " that the client did not hold";
      continue;
    }
    EXPECT_EQ(
        buffer_differs(l.buffer_id, l.device, l.kind, l.address, l.size, l.reserved, it->second),
        "");
    EXPECT_EQ(l.chip_id, test_device_desc(l.device).chip_id);
    from.erase(it);
  }
  for (const auto& [id, b] : ack.live) {
    ADD_FAILURE() << "acknowledged buffer " << id << " (device " << b.device << ", kind " << b.kind
                  << ") is missing from the leak report";
  }
}

std::unique_ptr<Child> start_churn(const std::string& dir, const AckFile& ack, uint64_t seed) {
  return std::make_unique<Child>(
      std::vector<std::string>{TTMEM_FAULT_CLIENT, "churn", "--ack", ack.path(), "--seed",
                               std::to_string(seed)},
      std::map<std::string, std::string>{{"TTMEM_DIR", dir}});
}

uint64_t test_seed() {
  uint64_t seed = 0;
  if (const char* s = std::getenv("TTMEM_FAULT_SEED"); s != nullptr && *s != '\0') {
    seed = std::strtoull(s, nullptr, 10);
  } else {
    seed = std::random_device{}();
  }
  std::printf("seed %llu (rerun with TTMEM_FAULT_SEED=%llu)\n", (unsigned long long)seed,
              (unsigned long long)seed);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

std::vector<std::string> leftover_files(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name != "leaks" && name != collector::kDaemonFileName) names.push_back(name);
  }
  return names;
}

size_t open_fds(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e :
       fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    ++n;
  }
  return n;
}

}  // namespace ttmem::test::fault
