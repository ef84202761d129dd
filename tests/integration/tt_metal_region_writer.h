// Writes tt-metal's per-chip counter files (tt_device_<chip>_memory) for tests, from the layout
// documented in docs/protocol.md and declared in protocol/tt_metal_shm.h: what tt-metal writes,
// and the torn, truncated and garbage variants a reader must survive.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "protocol/tt_metal_shm.h"

namespace ttmem::test {

namespace tt_shm = ::ttmem::protocol::tt_metal_shm;

// Bytes per tt-metal counter, in tt-metal's order: DRAM, L1, L1_SMALL, TRACE, CB.
using TtMetalBytes = std::array<uint64_t, tt_shm::kCounterKinds>;

class TtMetalRegionWriter {
 public:
  // An initialised region of `version` for chip `chip_id`, created by logical device `logical_id`:
  // its own chip in chip slot 0, every other slot unused.
  TtMetalRegionWriter(uint32_t version, uint64_t chip_id, uint32_t logical_id)
      : region_(std::make_unique<tt_shm::DeviceMemoryRegion>()) {
    std::memset(region_.get(), 0, sizeof *region_);
    region_->version = version;
    region_->asic_id = chip_id;
    region_->device_id = logical_id;
    region_->reference_count = 1;
    for (auto& c : region_->chip_stats) c.chip_id = tt_shm::kChipUnused;
    region_->chip_stats[0].chip_id = logical_id;
    if (version >= 4) region_->init_state = tt_shm::kInitReady;
  }

  // A process slot; its bytes count toward the totals and the local chip's slot.
  TtMetalRegionWriter& process(int32_t pid, const TtMetalBytes& bytes, uint64_t updated_ns,
                               const char* name = "python3") {
    tt_shm::ProcessStats& p = region_->processes[next_process_++];
    p.pid = pid;
    for (size_t k = 0; k < bytes.size(); ++k) {
      p.allocated[k] = bytes[k];
      region_->total_allocated[k] += bytes[k];
      region_->chip_stats[0].allocated[k] += bytes[k];
    }
    p.last_update_timestamp = updated_ns;
    std::strncpy(p.process_name, name, sizeof p.process_name - 1);
    region_->last_update_timestamp = std::max(region_->last_update_timestamp, updated_ns);
    return *this;
  }

  // A remote chip reached through this one (its bytes are in the totals, as tt-metal keeps them).
  TtMetalRegionWriter& remote_chip(uint32_t logical_id, const TtMetalBytes& bytes) {
    tt_shm::ChipStats& c = region_->chip_stats[next_chip_++];
    c.chip_id = logical_id;
    c.is_remote = 1;
    for (size_t k = 0; k < bytes.size(); ++k) {
      c.allocated[k] = bytes[k];
      region_->total_allocated[k] += bytes[k];
    }
    return *this;
  }

  tt_shm::DeviceMemoryRegion& region() { return *region_; }

  static std::string file_name(uint64_t chip_id) {
    return std::string(tt_shm::kFilePrefix) + std::to_string(chip_id) + tt_shm::kFileSuffix;
  }

  // Writes the region (its first `size` bytes; default: all of it) to DIR/tt_device_<chip>_memory.
  void write(const std::string& dir, size_t size = sizeof(tt_shm::DeviceMemoryRegion)) const {
    write_bytes(dir + "/" + file_name(region_->asic_id), region_.get(), size);
  }

  static void write_bytes(const std::string& path, const void* data, size_t size) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    const ssize_t n = ::write(fd, data, size);
    (void)n;
    ::close(fd);
  }

 private:
  std::unique_ptr<tt_shm::DeviceMemoryRegion> region_;
  size_t next_process_ = 0;
  size_t next_chip_ = 1;
};

}  // namespace ttmem::test
