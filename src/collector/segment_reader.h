// Read-only access to one client segment. Nothing in a segment is trusted: the header is
// validated against compute_layout(), every record is read under its seqlock and checked, and
// the reader counts what it rejects instead of asserting.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "collector/mapping_guard.h"
#include "protocol/segment.h"

namespace ttmem::collector {

// The state of a segment at one read.
struct SegmentState {
  uint32_t process_state = 0;  // kStateActive / kStateExited
  std::array<std::optional<protocol::DeviceSlot>, protocol::kMaxDevices> devices;
  std::array<std::array<protocol::KindCounters, protocol::kNumKinds>, protocol::kMaxDevices>
      counters{};
  std::vector<protocol::BufferRecord> records;  // live, validated; filled by read() only
  uint32_t record_slots = 0;  // slab slots in use at the read (high-water mark, clamped)
  protocol::ProcessCounters process_counters{};
  uint64_t torn_records = 0;    // kept changing across retries
  uint64_t corrupt_records = 0; // failed validation
  std::array<uint64_t, protocol::kMaxDevices> ring_heads{};
  // The SegmentReader read that last filled this state completely (unique in the process; 0:
  // none). A reader that filled it last copies only the device slots that changed since.
  uint64_t filled_by_read = 0;
  // Per device, a number (unique in the process) given when devices[d] was last put here, so
  // whoever checked that slot before knows it is the same one without comparing 512 bytes.
  std::array<uint64_t, protocol::kMaxDevices> device_marks{};
};

using EventSink = std::function<void(uint32_t device, const protocol::EventRecord&)>;

class SegmentReader {
 public:
  // Maps `path` read-only and validates its header. On failure returns nullptr and sets *error
  // to a sentence saying what is wrong.
  static std::unique_ptr<SegmentReader> open(const std::string& path, std::string* error);
  ~SegmentReader();
  SegmentReader(const SegmentReader&) = delete;
  SegmentReader& operator=(const SegmentReader&) = delete;

  const std::string& path() const { return path_; }
  pid_t pid() const { return pid_t(header_.pid); }
  uint64_t start_time() const { return header_.start_time; }
  uint32_t uid() const { return header_.uid; }
  // The writer's PID namespace (SegmentHeader::pid_namespace); 0 when its client did not say.
  uint64_t pid_namespace() const { return header_.pid_namespace; }
  // Owner and identity of the file mapped (not of whatever the path names later).
  uint32_t file_uid() const { return file_uid_; }
  dev_t file_dev() const { return file_dev_; }
  ino_t file_ino() const { return file_ino_; }
  // When the file's inode last changed (st_ctime, realtime ns): by the client, only while its
  // process lived (creation, rename, slab growth).
  int64_t file_ctime_ns() const { return file_ctime_ns_; }
  uint32_t ring_capacity() const { return header_.ring_capacity; }
  uint64_t created_realtime_ns() const { return header_.created_realtime_ns; }
  std::string command() const;

  // Reads everything that describes the present, copying every live record into out->records.
  // False (with *error) if the file shrank under the mapping, which only a foreign writer does.
  // Every load from the mapping is guarded (collector/mapping_guard.h): a file truncated even
  // during the read makes it return false, never raise SIGBUS. Once that happened, the reader
  // is finished: every later read fails the same way.
  bool read(SegmentState* out, std::string* error);

  // The same without the records: process state and counters, device slots, kind counters, ring
  // heads and tag strings. out->records is left empty. A caller that only needs aggregates then
  // visits the records in place with for_each_live_record(), sparing a copy of 64 bytes per live
  // buffer into memory that the kernel must first zero.
  bool read_without_records(SegmentState* out, std::string* error);

  // Calls visit(const protocol::BufferRecord&) for each live record that passes validation, in
  // slot order, over the slots counted by the read that filled *out; counts into *out the records
  // that were torn or corrupt. False when the file was truncated during the scan (the records
  // visited so far were good; the next read fails). `visit` must not read the mapping. A record on a device, or with a tag, registered after that read
  // makes the reader read the device slot into *out (or the string table) again first, so the
  // device is in *out and the tag resolves when `visit` sees the record.
  template <class Visit>
  bool for_each_live_record(SegmentState* out, Visit&& visit);

  // Device slot `device` as the segment holds it now (under its seqlock): for a reader of events
  // whose last read() came before the device was registered. nullopt if not registered.
  std::optional<protocol::DeviceSlot> device(uint32_t device) const {
    auto st = std::make_unique<SegmentState>();
    read_device(device, st.get());
    return st->devices[device];
  }

  // Tag text for an id; "" for 0 or unknown ids.
  const std::string& tag(uint32_t id) const;
  // Tag ids read so far: [0, tag_count()).
  uint32_t tag_count() const { return uint32_t(strings_.size()); }

  // Delivers ring events written since the previous call to `sink`, in order per device, and
  // adds events that were overwritten before they could be read to dropped(). The first call
  // starts from event 0, so events a late reader never saw count as dropped too. Stops (and the
  // next read fails) if the file is truncated meanwhile.
  void drain(const EventSink& sink);
  uint64_t dropped(uint32_t device) const { return dropped_[device]; }
  // Starts the next drain() at `heads` (as a read() saw them) without counting what came before
  // as dropped: for a reader that attaches to a running process, whose earlier state it has
  // from the read, so the history before it is not a loss to it.
  // The index of the next event drain() reads on `device`.
  uint64_t cursor(uint32_t device) const { return cursors_[device]; }
  void skip_events_before(const std::array<uint64_t, protocol::kMaxDevices>& heads) {
    cursors_ = heads;
  }
  uint64_t dropped_total() const;

  // A number that changes whenever the writer reports anything (every alloc, free and CB event
  // advances a ring head; registering a device advances its slot's sequence) or its process
  // state changes. About a hundred loads: cheap enough to poll often, so a reader can skip a
  // full read() while nothing happened. A truncated file gives a stamp that differs from every
  // earlier one, so the caller reads, and learns of it.
  uint64_t change_stamp() const;

  // True once a load from the mapping found the file truncated under it.
  bool truncated() const { return truncated_; }

  // How many events each device's ring has had written (its head): for a reader that applies
  // events from where a full read began (collector/incremental.h). Zero for every device when
  // the file was truncated.
  std::array<uint64_t, protocol::kMaxDevices> ring_heads() const;

  // Delivers events [from, to) of `device`'s ring to `sink`, in order. False when one of them
  // was overwritten before it could be read (or the span is longer than the ring, or goes
  // backwards, or the file was truncated): the reader missed part of the history and must read
  // the present in full. Unlike drain(), keeps no cursor of its own.
  bool read_events(uint32_t device, uint64_t from, uint64_t to, const EventSink& sink);
  // Starts loading the ring slots of events [from, to) of `device` (at most the first 256),
  // for a reader about to read several devices' events: their cache misses then overlap.
  // Never faults (a prefetch does not), whatever the mapping.
  void prefetch_events(uint32_t device, uint64_t from, uint64_t to) const;

 private:
  SegmentReader() = default;
  void refresh_strings();
  void drain_guarded(const EventSink& sink);
  // Reads device slot `d` (and its counters and ring head) under its seqlock into *out.
  // `out_is_last_read`: *out holds what this reader's last complete read put there, so a slot
  // that has not changed since is there already.
  void read_device(uint32_t d, SegmentState* out, bool out_is_last_read = false) const;
  bool valid_record(const protocol::BufferRecord& r, const SegmentState& st) const;
  // Reads the record in `slot` under its seqlock into *record. True when it is live and valid;
  // otherwise counts it into *st when it was torn or corrupt.
  bool read_live_record(const protocol::BufferRecord& slot, SegmentState* st,
                        protocol::BufferRecord* record);

  std::string path_;
  int fd_ = -1;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint32_t file_uid_ = 0;
  dev_t file_dev_ = 0;
  ino_t file_ino_ = 0;
  int64_t file_ctime_ns_ = 0;
  protocol::SegmentHeader header_{};  // validated private copy of the immutable part
  std::vector<std::string> strings_{""};
  std::array<uint64_t, protocol::kMaxDevices> cursors_{};
  std::array<uint64_t, protocol::kMaxDevices> dropped_{};
  mutable bool truncated_ = false;
  // read_device()'s last stable reading of each device, and the slot's first word (sequence
  // and flags) it was taken at: while `valid` (a reading of the slot itself at that word), a
  // slot whose first word has not moved is not copied again. Copying all 64 slots of 512 bytes
  // per segment was most of an incremental refresh of 56 processes.
  struct CachedSlot {
    bool valid = false;
    uint64_t word0 = 0;
    std::optional<protocol::DeviceSlot> slot;
  };
  mutable std::array<CachedSlot, protocol::kMaxDevices> slot_cache_{};
  // This reader's last complete read_without_records() (SegmentState::filled_by_read). Copying
  // each unchanged slot into the state again, 512 bytes per chip of every process, was a
  // quarter of reading a Galaxy host's devices.
  mutable uint64_t last_read_ = 0;
  std::vector<protocol::EventRecord> event_buffer_;  // read_events()'s copies
};

template <class Visit>
bool SegmentReader::for_each_live_record(SegmentState* out, Visit&& visit) {
  out->torn_records = 0;
  out->corrupt_records = 0;
  if (truncated_) return false;
  const auto* slab = reinterpret_cast<const protocol::BufferRecord*>(base_ + header_.slab_offset);
  const uint32_t slots = std::min(out->record_slots, header_.slab_capacity);
  // One guard for the whole scan, not one per record. `visit` is never running when a load
  // faults: it sees only the private copy.
  truncated_ = !guarded(base_, size_, [&] {
    for (uint32_t i = 0; i < slots; ++i) {
      // Cheap pre-check, inline in the loop: most free slots are skipped without a full copy.
      // A record with an odd sequence is an allocation still being written: not acknowledged to
      // its caller yet, so not live (and, if its writer died there, never live).
      uint64_t w0 = protocol::load_word(reinterpret_cast<const uint64_t*>(&slab[i]));
      if (!((w0 >> 56) & protocol::kRecordLive) || (w0 & 1)) continue;
      protocol::BufferRecord record;
      if (read_live_record(slab[i], out, &record)) visit(std::as_const(record));
    }
  });
  return !truncated_;
}

// Parses "ttmem-<pid>-<start>.seg"; nullopt for any other name.
struct SegmentName {
  pid_t pid;
  uint64_t start_time;
};
std::optional<SegmentName> parse_segment_name(const std::string& filename);

}  // namespace ttmem::collector
