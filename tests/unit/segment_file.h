// A hand-made client segment for unit tests: valid, with one registered device, editable
// through a writable mapping so a test can put any bytes in it. It names process `pid` with
// start time 1.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include "protocol/segment.h"
#include "temp_dir.h"

namespace ttmem::test {

class SegmentFile {
 public:
  static constexpr uint32_t kSlab = 1024;
  static constexpr uint32_t kRing = 16;

  explicit SegmentFile(uint32_t pid = 1) {
    namespace pr = protocol;
    path_ = dir_.path() + "/ttmem-" + std::to_string(pid) + "-1.seg";
    layout_ = pr::compute_layout(kSlab, kRing);
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT, 0600);
    EXPECT_EQ(::ftruncate(fd, off_t(layout_.segment_size)), 0);
    base_ = static_cast<uint8_t*>(
        ::mmap(nullptr, layout_.segment_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    ::close(fd);
    auto* h = header();
    h->magic = pr::kSegmentMagic;
    h->version = pr::kSegmentVersion;
    h->header_size = sizeof(pr::SegmentHeader);
    h->segment_size = layout_.segment_size;
    h->pid = pid;
    h->start_time = 1;
    h->max_devices = pr::kMaxDevices;
    h->num_kinds = pr::kNumKinds;
    h->string_capacity = pr::kStringCapacity;
    h->slab_capacity = kSlab;
    h->ring_capacity = kRing;
    h->device_slot_size = sizeof(pr::DeviceSlot);
    h->record_size = sizeof(pr::BufferRecord);
    h->event_size = sizeof(pr::EventRecord);
    h->string_slot_size = sizeof(pr::StringSlot);
    h->devices_offset = layout_.devices_offset;
    h->counters_offset = layout_.counters_offset;
    h->ring_heads_offset = layout_.ring_heads_offset;
    h->strings_offset = layout_.strings_offset;
    h->slab_offset = layout_.slab_offset;
    h->rings_offset = layout_.rings_offset;
    h->state = pr::kStateActive;
    h->string_count = 1;
    h->slab_high_water = kSlab;
    pr::DeviceSlot d{};
    d.flags = pr::kDeviceRegistered;
    d.logical_id = 0;
    d.chip_id = 77;
    d.kinds[0] = {12 << 20, 1 << 20, 0, 12, 32};
    pr::seqlock_write32(devices(), d);
  }
  ~SegmentFile() { ::munmap(base_, layout_.segment_size); }
  SegmentFile(const SegmentFile&) = delete;
  SegmentFile& operator=(const SegmentFile&) = delete;

  protocol::SegmentHeader* header() { return reinterpret_cast<protocol::SegmentHeader*>(base_); }
  protocol::DeviceSlot* devices() {
    return reinterpret_cast<protocol::DeviceSlot*>(base_ + layout_.devices_offset);
  }
  // Counters of `device`, one per kind.
  protocol::KindCounters* counters(uint32_t device) {
    return reinterpret_cast<protocol::KindCounters*>(base_ + layout_.counters_offset) +
           device * protocol::kNumKinds;
  }
  protocol::RingHead* ring_heads() {
    return reinterpret_cast<protocol::RingHead*>(base_ + layout_.ring_heads_offset);
  }
  protocol::StringSlot* strings() {
    return reinterpret_cast<protocol::StringSlot*>(base_ + layout_.strings_offset);
  }
  protocol::BufferRecord* slab() {
    return reinterpret_cast<protocol::BufferRecord*>(base_ + layout_.slab_offset);
  }
  void put(uint32_t slot, protocol::BufferRecord r) {
    r.flags = protocol::kRecordLive;
    protocol::seqlock_write32(&slab()[slot], r);
  }
  const std::string& dir() const { return dir_.path(); }
  const std::string& path() const { return path_; }

 private:
  TempDir dir_;
  std::string path_;
  protocol::Layout layout_;
  uint8_t* base_ = nullptr;
};

}  // namespace ttmem::test
