// A tracked program that reports events as fast as the client library takes them, for the
// recording tests and the recording-rate benchmark.
//
//   ttmem_record_load --events N [--devices D] [--scale K]
//     N events (buffer sizes times K) (allocs and frees in equal numbers, plus CB sets) over D devices, then exits
//     with nothing live: a lossless recording matches every alloc with its free and ends at 0.
//   ttmem_record_load --churn [--devices D]
//     allocates a fixed base set, prints "ready BASE_DRAM_BYTES CHURN_BYTES", then allocates
//     and frees one DRAM buffer after another until a line arrives on stdin; prints "stopped"
//     and waits for a second line before exiting (its base set is then left as leaks).
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "test_device.h"
#include "ttmem/ttmem.hpp"

namespace {

using ttmem::Kind;

constexpr uint64_t kChurnBytes = 1 << 20;
constexpr uint64_t kBaseBuffers = 16;
constexpr uint64_t kBaseIds = 1ull << 40;  // far above any id the churn reaches
constexpr uint64_t kBaseBytes = 8 << 20;
const char* const kOps[] = {"ttnn::matmul", "ttnn::softmax", "ttnn::add", "ttnn::layer_norm"};

void alloc(uint32_t device, uint64_t id, Kind kind, uint64_t address, uint64_t size) {
  ttmem_buffer_desc b = ttmem::make_buffer_desc(device, id, kind, address, size);
  b.page_size = 2048;
  b.num_banks = kind == Kind::Dram ? 12 : 64;
  ttmem::buffer_alloc(b);
}

// Events alternate over devices; each device keeps a window of live buffers so frees do not
// simply follow their allocs, and every 4,096 events a program's CB set comes and goes.
void run_events(uint64_t events, uint32_t devices, uint64_t scale) {
  constexpr uint64_t kWindow = 64;
  uint64_t made = 0;
  uint64_t next_id = 1;
  while (made < events) {
    for (uint32_t d = 0; d < devices && made < events; ++d) {
      ttmem::OpScope op(kOps[(made / 1024) % 4]);
      const uint64_t id = next_id++;
      const Kind kind = id % 3 == 0 ? Kind::L1 : Kind::Dram;
      alloc(d, id, kind, 0x100000 + (id % kWindow) * 0x10000, (4096 + (id % 17) * 2048) * scale);
      ++made;
      if (id > kWindow * devices) {
        ttmem::buffer_free(d, id - kWindow * devices);
        ++made;
      }
      if (id % 4096 == 0) {
        ttmem::cb_alloc(d, {{0, 0, 7, 3}}, ttmem::test::kUnreservedBase, 65536, id);
        ttmem::cb_alloc(d, {{0, 4, 7, 7}}, ttmem::test::kUnreservedBase, 32768, id);
        ttmem::cb_free_program(d, id);
        made += 3;
      }
    }
  }
  // Free what the window still holds: every device ends with nothing live.
  for (uint64_t id = next_id > kWindow * devices ? next_id - kWindow * devices : 1; id < next_id;
       ++id) {
    ttmem::buffer_free(uint32_t((id - 1) % devices), id);
  }
}

bool line_waiting() {
  pollfd p{0, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

void churn(uint32_t devices) {
  for (uint32_t d = 0; d < devices; ++d) {
    for (uint64_t i = 0; i < kBaseBuffers; ++i) {
      alloc(d, kBaseIds + i, Kind::Dram, 0x40000000 + i * 0x1000000, kBaseBytes / kBaseBuffers);
    }
  }
  std::printf("ready %llu %llu\n", (unsigned long long)kBaseBytes, (unsigned long long)kChurnBytes);
  std::fflush(stdout);
  uint64_t id = 1;
  while (true) {
    for (int i = 0; i < 4096; ++i, ++id) {
      const uint32_t d = uint32_t(id % devices);
      ttmem::OpScope op(kOps[id % 4]);
      alloc(d, id, Kind::Dram, 0x1000000, kChurnBytes);
      ttmem::buffer_free(d, id);
    }
    if (line_waiting()) break;
  }
  char line[64];
  if (std::fgets(line, sizeof line, stdin) == nullptr) return;
  std::printf("stopped\n");
  std::fflush(stdout);
  if (std::fgets(line, sizeof line, stdin) == nullptr) return;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t events = 0;
  uint32_t devices = 1;
  uint64_t scale = 1;
  bool churning = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--events" && i + 1 < argc) {
      events = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--devices" && i + 1 < argc) {
      devices = uint32_t(std::strtoul(argv[++i], nullptr, 10));
    } else if (a == "--scale" && i + 1 < argc) {
      scale = std::max<uint64_t>(1, std::strtoull(argv[++i], nullptr, 10));
    } else if (a == "--churn") {
      churning = true;
    } else {
      std::fprintf(stderr, "usage: %s --events N [--scale K] | --churn [--devices D]\n", argv[0]);
      return 2;
    }
  }
  if (devices == 0 || devices > 8) devices = 1;
  for (uint32_t d = 0; d < devices; ++d) ttmem::register_device(ttmem::test::test_device_desc(d));
  if (churning) {
    churn(devices);
  } else {
    run_events(events, devices, scale);
  }
  return 0;
}
