// Recordings (protocol/record_file.h): writing them from a live Collector, reading them back
// with full validation, and exporting them as Perfetto trace-event JSON, JSON or CSV. Shared by
// `ttmem record` / `ttmem export` and anything else that records.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "collector/collector.h"
#include "protocol/record_file.h"

namespace ttmem {

// Appends records to a file. Throws std::runtime_error (with what to do) on I/O errors.
class RecordWriter {
 public:
  RecordWriter(const std::string& path, uint32_t checkpoint_interval_ms);
  ~RecordWriter();
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  void write(protocol::record::RecordType type, uint64_t time_ns, const void* payload,
             size_t size, const void* tail = nullptr, size_t tail_size = 0);
  void close();

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

// Records a Collector: set it up before the first refresh(), then call after_refresh() after
// each refresh with a monotonic time taken before that refresh began.
class Recorder {
 public:
  Recorder(Collector& collector, const std::string& path, uint32_t checkpoint_interval_ms);
  void after_refresh(uint64_t refresh_started_ns);
  // A last checkpoint; the file is complete after this.
  void finish(uint64_t refresh_started_ns);
  uint64_t events() const { return events_; }

 private:
  uint32_t process_index(const ProcessKey& key);
  void ensure_device(uint32_t process, const ProcessKey& key, uint32_t device);
  uint32_t string_id(const std::string& text);
  void on_event(const ProcessKey& key, uint32_t device, const protocol::EventRecord& e);
  void checkpoint(uint64_t time_ns);

  Collector& collector_;
  RecordWriter writer_;
  uint32_t interval_ms_;
  std::optional<uint64_t> last_checkpoint_;
  std::map<ProcessKey, uint32_t> processes_;
  std::map<std::pair<uint32_t, uint32_t>, bool> devices_;
  std::map<std::string, uint32_t> strings_;
  std::map<ProcessKey, protocol::ProcessCounters> counters_;
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> dropped_;
  uint64_t events_ = 0;
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
  bool truncated = false;         // the last record was cut short (recorder killed)

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

// Exports. Times are relative to the recording's start.
std::string export_perfetto(const Recording& r);
std::string export_json(const Recording& r);
std::string export_csv(const Recording& r);
// {"at_ns":..., "devices": per chip and kind totals, "buffers":[...]} at one moment.
std::string export_state_json(const Recording& r, uint64_t at_ns);

}  // namespace ttmem
