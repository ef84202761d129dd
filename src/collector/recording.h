// Recordings (protocol/record_file.h): writing them from a live Collector, reading them back
// with full validation, and exporting them as Perfetto trace-event JSON, JSON or CSV. Shared by
// `ttmem record` / `ttmem export` and anything else that records.
#pragma once

#include <cstdint>
#include <cstdio>
#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "collector/collector.h"
#include "protocol/record_file.h"

namespace ttmem::collector {

// Appends records to a file, in checksummed blocks (record_file.h). Throws std::runtime_error
// (with what to do) on I/O errors.
class RecordWriter {
 public:
  RecordWriter(const std::string& path, uint32_t checkpoint_interval_ms);
  ~RecordWriter();
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  // Appends one record to the current block; the block goes to the file when it is full or at
  // flush().
  void write(protocol::record::RecordType type, uint64_t time_ns, const void* payload,
             size_t size, const void* tail = nullptr, size_t tail_size = 0);
  // Ends the current block and writes it: what a killed recorder would lose is bounded by the
  // time between flushes.
  void flush();
  void close();
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  void grow_block(size_t record_bytes);

  int fd_ = -1;
  std::string path_;
  std::optional<protocol::record::FileHeader> header_;  // until the first flush writes it
  std::vector<uint8_t> block_;  // a BlockHeader's room, then records
  size_t used_ = 0;
  uint32_t records_ = 0;
  uint64_t bytes_written_ = 0;
};

// Records a Collector: set it up before the first refresh(), then call after_refresh() after
// each refresh with a monotonic time taken before that refresh began. Events arrive through the
// collector's event sink, from refresh() or Collector::drain_events().
class Recorder {
 public:
  Recorder(Collector& collector, const std::string& path, uint32_t checkpoint_interval_ms);
  // Writes what the refresh observed (drops, problems, ends) and a checkpoint when one is due,
  // or at once with `checkpoint_now` (after a gap: the exact state again, as soon as possible).
  void after_refresh(uint64_t refresh_started_ns, bool checkpoint_now = false);
  // A last checkpoint, later than every event written; the file is complete after this.
  void finish(uint64_t refresh_started_ns);
  void flush() { writer_.flush(); }
  uint64_t events() const { return events_; }
  uint64_t dropped() const { return dropped_total_; }  // events this recording missed
  uint64_t bytes_written() const { return writer_.bytes_written(); }

 private:
  // What the recorder knows of one process, found once per batch of its events.
  struct ProcessEntry {
    uint32_t index = 0;
    std::array<bool, protocol::kMaxDevices> described{};
    std::vector<uint32_t> tag_ids;  // segment tag id -> recording string id (0: not yet known)
    protocol::ProcessCounters counters{};
    std::array<uint64_t, protocol::kMaxDevices> dropped{};
    bool ended = false;
  };
  // The process's reader and state from the collector, for what is recorded after a refresh;
  // events come with theirs.
  EventSource source_of(const ProcessKey& key) const;
  ProcessEntry& process_entry(const EventSource& source);
  void ensure_device(ProcessEntry& p, const EventSource& source, uint32_t device);
  uint32_t recording_tag(ProcessEntry& p, const EventSource& source, uint32_t segment_tag);
  uint32_t string_id(const std::string& text);
  void on_event(const EventSource& source, uint32_t device, const protocol::EventRecord& e);
  void checkpoint(uint64_t time_ns);

  Collector& collector_;
  RecordWriter writer_;
  uint32_t interval_ms_;
  std::optional<uint64_t> last_checkpoint_;
  std::map<ProcessKey, ProcessEntry> processes_;
  const ProcessKey* last_key_ = nullptr;  // the previous event's process (events come in runs)
  ProcessEntry* last_entry_ = nullptr;
  std::map<std::string, uint32_t> strings_;
  uint64_t events_ = 0;
  uint64_t latest_event_ns_ = 0;  // the newest event time written
  uint64_t dropped_total_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Reading

struct RecordedProcess {
  uint32_t pid = 0;
  uint64_t start_time = 0;
  uint32_t uid = 0;
  std::string command;
  std::optional<uint64_t> end_ns;
  uint32_t leaked = 0;
};

struct RecordedBuffer {
  uint32_t process = 0;
  uint32_t device = 0;
  protocol::BufferRecord record{};
  uint64_t reserved = 0;
};

struct Recording {
  protocol::record::FileHeader header{};
  std::vector<RecordedProcess> processes;
  std::map<std::pair<uint32_t, uint32_t>, protocol::DeviceSlot> devices;  // (process, device)
  std::vector<std::string> strings{""};
  struct Event {
    uint64_t time_ns;
    uint32_t process, device;
    protocol::EventRecord event;
  };
  std::vector<Event> events;  // sorted by time (stable)
  struct Checkpoint {
    uint64_t time_ns;
    std::vector<RecordedBuffer> buffers;
  };
  std::vector<Checkpoint> checkpoints;  // in time order
  struct Instant {
    uint64_t time_ns;
    uint32_t process, device;  // device UINT32_MAX: the whole process
    std::string what;
    uint64_t count;
  };
  std::vector<Instant> instants;  // drops and problems
  uint64_t end_ns = 0;            // time of the last record
  bool truncated = false;         // the last block was cut short (recorder killed)
  uint64_t dropped_events = 0;    // events the recorder missed (sum of its DROPPED records)

  // Chip id of a process's logical device (0 if never described).
  uint64_t chip_id(uint32_t process, uint32_t device) const;
  // Reserved bytes of a buffer or event on its device (lock-step banks; CB: per core x cores).
  uint64_t reserved_of(uint32_t process, uint32_t device, uint32_t kind, uint64_t size,
                       uint64_t size_per_bank, uint32_t num_cores) const;
};

// Reads and validates a whole recording. nullopt with *error (what is wrong and what to do).
std::optional<Recording> read_recording(const std::string& path, std::string* error);

// Live buffers at `time_ns`: the last checkpoint at or before it, then the events after it.
std::vector<RecordedBuffer> state_at(const Recording& r, uint64_t time_ns);

// A live buffer's identity: (process, device, buffer id); a CB record's: its program, address
// and core rectangle (a program has one record per CB and core range).
struct LiveKey {
  uint32_t process, device;
  uint8_t cb;
  uint64_t id, address;
  uint32_t cores;
  auto operator<=>(const LiveKey&) const = default;
};

LiveKey key_of(const RecordedBuffer& b);

// The recording replayed in time order with exact totals. Events change the live set; each
// checkpoint, an exact copy of the live state, replaces it, so after a gap the totals are exact
// again from the next checkpoint (the recorder takes one as soon as it sees a gap). An ALLOC
// identical to a live buffer (already in a checkpoint) and a FREE of a buffer not live change
// nothing. A chip's CB figure is the L1 its CBs cover (cb_coverage.h), never their sum.
class ReplayVisitor {
 public:
  virtual ~ReplayVisitor() = default;
  virtual void begin(const RecordedBuffer&, uint64_t /*time_ns*/) {}
  virtual void end(const RecordedBuffer&, uint64_t /*time_ns*/) {}
  // A chip's figure for a kind changed: reserved bytes (CB: covered bytes).
  virtual void usage(uint64_t /*time_ns*/, uint64_t /*chip_id*/, uint32_t /*kind*/,
                     uint64_t /*bytes*/) {}
};
// Returns the buffers live at the recording's end (leaks, or what was live when it stopped).
std::vector<RecordedBuffer> replay(const Recording& r, ReplayVisitor& visitor);
// state_at(), telling `visitor` everything replayed up to `time_ns`.
std::vector<RecordedBuffer> state_at(const Recording& r, uint64_t time_ns, ReplayVisitor& visitor);

// The start of a recording's time axis: exports give times relative to it.
uint64_t recording_start_ns(const Recording& r);

// Live buffers at each of `times_ns` (ascending), in one pass over the recording.
std::vector<std::vector<RecordedBuffer>> states_at(const Recording& r,
                                                   const std::vector<uint64_t>& times_ns);

// Exports. Times are relative to the recording's start.
std::string export_perfetto(const Recording& r);
std::string export_json(const Recording& r);
std::string export_csv(const Recording& r);
// {"at_ns":..., "devices": per chip and kind totals, "buffers":[...]} at one moment.
std::string export_state_json(const Recording& r, uint64_t at_ns);

}  // namespace ttmem::collector
