// A tracked program for fault-injection tests. Two modes:
//
//   ttmem_fault_client churn --ack FILE [--seed S]
//     Threads (AckTable::threads) allocate and free buffers on AckTable::devices devices in a
//     random loop until killed, logging every call in the shared AckTable (see ack_table.h) and
//     timing it. Parks between calls while the table's `pause` is set.
//
//   ttmem_fault_client short [--devices D] [--allocs N] [--keep K] [--churn-ms M]
//                            [--fsize-limit BYTES] [--wait] [--done-file PATH]
//     Registers D devices, allocates N buffers, frees all but the last K; with --churn-ms keeps
//     allocating and freeing one more buffer for M ms. Prints what the library answered:
//       statuses ok=A disabled=B full=C other=D
//       first-error <ttmem_status_string of the first status that was not TTMEM_OK>
//       segment <path or "none">
//     then "ready"; with --wait it waits for a line (or end of input) on stdin before exiting 0.
//     --fsize-limit runs the program under that RLIMIT_FSIZE, as `ulimit -f` would, with SIGXFSZ
//     left at its default action (which kills the process). --reregister: after "ready",
//     re-registers device 0 over and over, its board name alternating, until killed.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ack_table.h"
#include "ttmem/ttmem.hpp"

namespace {

using namespace ttmem::test::fault;

uint64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

ttmem_buffer_desc describe(uint64_t id, uint32_t devices) {
  ExpectedBuffer e = buffer_for(id, devices);
  ttmem_buffer_desc b =
      ttmem::make_buffer_desc(e.device, id, ttmem::Kind(e.kind), e.address, e.size);
  b.page_size = e.page_size;
  b.size_per_bank = e.size_per_bank;
  b.num_banks = e.num_banks;
  return b;
}

// The state store and the library call must not pass each other, in the compiler or the CPU:
// the test trusts the file to say which side of the call the thread was on when it died.
void set_state(Slot& s, SlotState state) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  s.state.store(state, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void churn_thread(AckTable& table, uint32_t index, uint64_t seed) {
  ThreadLog& log = table.thread[index];
  std::mt19937_64 rng(seed * 1000003 + index);
  std::vector<uint32_t> live, empty;
  for (uint32_t i = kSlotsPerThread; i-- > 0;) empty.push_back(i);
  uint64_t serial = 0;
  for (uint64_t op = 0;; ++op) {
    if (table.pause.load(std::memory_order_acquire)) {
      log.paused.store(1, std::memory_order_release);
      while (table.pause.load(std::memory_order_acquire)) ::usleep(1000);
      log.paused.store(0, std::memory_order_release);
    }
    // Leave the CPU now and then: the tests run next to a collector or a daemon on small CI
    // machines, and a busy spin would measure the scheduler, not the library.
    if (op % 512 == 511) ::usleep(100);
    bool alloc = live.empty() || (!empty.empty() && rng() % 100 < 55);
    uint32_t window = table.window.load(std::memory_order_relaxed) % kWindows;
    uint64_t took;
    if (alloc) {
      uint32_t slot = empty.back();
      empty.pop_back();
      Slot& s = log.slots[slot];
      uint64_t id = buffer_id(index, ++serial);
      ttmem_buffer_desc b = describe(id, table.devices);
      s.id.store(id, std::memory_order_relaxed);
      set_state(s, kAllocInFlight);
      uint64_t t0 = now_ns();
      int rc = ttmem_buffer_alloc(&b);
      took = now_ns() - t0;
      set_state(s, rc == TTMEM_OK ? kLive : kEmpty);
      if (rc == TTMEM_OK) {
        log.allocs[b.device][b.kind].fetch_add(1, std::memory_order_relaxed);
        live.push_back(slot);
      } else {
        empty.push_back(slot);
      }
    } else {
      size_t i = rng() % live.size();
      uint32_t slot = live[i];
      live[i] = live.back();
      live.pop_back();
      Slot& s = log.slots[slot];
      uint64_t id = s.id.load(std::memory_order_relaxed);
      ExpectedBuffer e = buffer_for(id, table.devices);
      set_state(s, kFreeInFlight);
      uint64_t t0 = now_ns();
      int rc = ttmem_buffer_free(e.device, id);
      took = now_ns() - t0;
      set_state(s, kEmpty);
      if (rc == TTMEM_OK) log.frees[e.device][e.kind].fetch_add(1, std::memory_order_relaxed);
      empty.push_back(slot);
    }
    log.latency[window][latency_bucket(took)].fetch_add(1, std::memory_order_relaxed);
    log.ops.fetch_add(1, std::memory_order_release);
  }
}

int churn(const std::string& ack_path, uint64_t seed) {
  int fd = ::open(ack_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    std::perror(ack_path.c_str());
    return 2;
  }
  void* p = ::mmap(nullptr, sizeof(AckTable), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    return 2;
  }
  auto& table = *static_cast<AckTable*>(p);
  if (table.threads < 1 || table.threads > kMaxThreads || table.devices < 1 ||
      table.devices > kMaxDevices) {
    std::fprintf(stderr, "bad ack table: %u threads, %u devices\n", table.threads, table.devices);
    return 2;
  }
  for (uint32_t d = 0; d < table.devices; ++d) {
    ttmem::register_device(ttmem::test::test_device_desc(d));
  }
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < table.threads; ++t) {
    threads.emplace_back(churn_thread, std::ref(table), t, seed);
  }
  for (auto& t : threads) t.join();  // never: the test kills this process
  return 0;
}

struct ShortOptions {
  uint32_t devices = 2;
  uint32_t allocs = 20;
  uint32_t keep = 0;
  uint32_t churn_ms = 0;
  uint64_t fsize_limit = 0;
  bool wait = false;
  bool reregister = false;
  std::string done_file;
};

int short_lived(const ShortOptions& o) {
  if (o.fsize_limit != 0) {
    rlimit lim{o.fsize_limit, o.fsize_limit};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) std::perror("setrlimit");
  }
  uint64_t ok = 0, disabled = 0, full = 0, other = 0;
  int first_error = TTMEM_OK;
  auto count = [&](int rc) {
    if (rc != TTMEM_OK && first_error == TTMEM_OK) first_error = rc;
    (rc == TTMEM_OK ? ok : rc == TTMEM_DISABLED ? disabled : rc == TTMEM_EFULL ? full : other)++;
  };
  for (uint32_t d = 0; d < o.devices; ++d) {
    count(ttmem::register_device(ttmem::test::test_device_desc(d)));
  }
  for (uint32_t i = 1; i <= o.allocs; ++i) {
    ttmem_buffer_desc b = describe(buffer_id(0, i), o.devices);
    count(ttmem_buffer_alloc(&b));
  }
  for (uint32_t i = 1; i + o.keep <= o.allocs; ++i) {
    uint64_t id = buffer_id(0, i);
    count(ttmem_buffer_free(buffer_for(id, o.devices).device, id));
  }
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.churn_ms);
  for (uint64_t serial = 1u << 20; std::chrono::steady_clock::now() < until; ++serial) {
    uint64_t id = buffer_id(1, serial);
    ttmem_buffer_desc b = describe(id, o.devices);
    count(ttmem_buffer_alloc(&b));
    count(ttmem_buffer_free(b.device, id));
    if (serial % 64 == 0) ::usleep(200);
  }
  const char* segment = ttmem_segment_path();
  std::printf("statuses ok=%llu disabled=%llu full=%llu other=%llu\n", (unsigned long long)ok,
              (unsigned long long)disabled, (unsigned long long)full, (unsigned long long)other);
  std::printf("first-error %s\n", ttmem_status_string(first_error));
  std::printf("segment %s\nready\n", segment != nullptr ? segment : "none");
  std::fflush(stdout);
  for (uint64_t n = 0; o.reregister; ++n) {
    ttmem_device_desc d = ttmem::test::test_device_desc(0);
    d.board = n % 2 ? "reregistered-a" : "reregistered-b";  // a new descriptor every time
    ttmem::register_device(d);
  }
  if (o.wait) {
    std::string line;
    std::getline(std::cin, line);
  }
  if (!o.done_file.empty()) std::ofstream(o.done_file) << "done\n";
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: ttmem_fault_client churn --ack FILE [--seed S]\n"
               "       ttmem_fault_client short [--devices D] [--allocs N] [--keep K] "
               "[--churn-ms M] [--fsize-limit BYTES] [--wait] [--reregister] "
               "[--done-file PATH]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  std::string mode = argv[1];
  std::string ack;
  uint64_t seed = 1;
  ShortOptions o;
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--wait" || k == "--reregister") {
      (k == "--wait" ? o.wait : o.reregister) = true;
      continue;
    }
    if (i + 1 >= argc) return usage();
    const char* v = argv[++i];
    if (k == "--ack")
      ack = v;
    else if (k == "--seed")
      seed = std::strtoull(v, nullptr, 10);
    else if (k == "--devices")
      o.devices = uint32_t(std::atoi(v));
    else if (k == "--allocs")
      o.allocs = uint32_t(std::atoi(v));
    else if (k == "--keep")
      o.keep = uint32_t(std::atoi(v));
    else if (k == "--churn-ms")
      o.churn_ms = uint32_t(std::atoi(v));
    else if (k == "--fsize-limit")
      o.fsize_limit = std::strtoull(v, nullptr, 10);
    else if (k == "--done-file")
      o.done_file = v;
    else
      return usage();
  }
  if (mode == "churn" && !ack.empty()) return churn(ack, seed);
  if (mode == "short" && o.devices >= 1 && o.devices <= kMaxDevices && o.keep <= o.allocs) {
    return short_lived(o);
  }
  return usage();
}
