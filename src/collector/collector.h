// The collector: discovers client segments, validates and reads them, notices process deaths,
// and folds everything into one Snapshot (collector/snapshot.h). A library with no main: the CLI,
// the TUI, the daemon, the Python module and the tests all link it.
//
// Single-threaded by design (one event loop): call refresh() or wait() from one thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "collector/fold.h"
#include "collector/incremental.h"
#include "collector/leak_store.h"
#include "collector/snapshot.h"
#include "collector/segment_reader.h"
#include "collector/tt_metal_counters.h"

namespace ttmem::collector {

struct CollectorOptions {
  std::string dir;            // segment directory; "" = $TTMEM_DIR or /dev/shm/ttmem-<uid>
  bool reap = true;           // turn dead processes into leak records and remove their segments
  bool drain_events = false;  // read the event rings (for history and recording)
  // With drain_events: tell the programs that asked for it (RecordAck, protocol/segment.h) how
  // far their rings have been read, so they wait rather than overwrite. Only a lossless recorder
  // sets this: the programs then run at the pace it reads.
  bool acknowledge_events = false;
  bool list_buffers = true;   // fill Snapshot::buffers (aggregates are always computed)
  bool leak_records = true;   // load every leak record; false: only their count (leak headers)
  // Watch the directory so wait() and fd() wake when a segment appears or goes. A reader that
  // refreshes once and exits turns this off: tearing the inotify watch down when the process
  // ends can take the kernel tens of milliseconds, which would be most of `ttmem status`.
  bool watch = true;
  // Make the directory when it is missing. Only what launches tracked programs sets this
  // (`ttmem record -- CMD`): a reader pointed at a mistyped path must not create it. Without it
  // a missing directory reads as empty (segment_dir_missing()) and is picked up once it appears.
  bool create_dir = false;
  // Read tt-metal's own per-chip counters (collector/tt_metal_counters.h) at every refresh.
  bool tt_metal_shm = true;
  // Keep the fold's figures between refreshes and apply each process's ring events to them
  // (collector/incremental.h): a refresh reads what changed, not every live record. For
  // collectors that refresh often (ttmemd, `ttmem top`); a one-shot reader gains nothing.
  // Snapshot::buffers then lists each process's buffers in no particular order.
  bool incremental = false;
  std::string tt_metal_shm_dir;  // "" = $TTMEM_TT_METAL_SHM_DIR or /dev/shm
};

// What to tell a user whose segment directory does not exist: nothing was tracked with it, and
// which directory tracked programs use.
std::string missing_segment_dir_text(const std::string& dir);

// Identifies the process an event came from.
struct ProcessKey {
  pid_t pid;
  uint64_t start_time;
  auto operator<=>(const ProcessKey&) const = default;
};

// The process an event came from, handed to the event sink with each event: its reader (device
// slots registered since the last read, tag strings) and its latest state. Valid during the
// call. The sink gets them here rather than from Collector::process(), which looks through the
// segments the refresh delivering the event is still changing.
struct EventSource {
  ProcessKey key;
  const SegmentReader* reader = nullptr;  // null when the process has left the collector
  const SegmentState* state = nullptr;
};

using ProcessEventSink =
    std::function<void(const EventSource&, uint32_t device, const protocol::EventRecord&)>;

class Collector {
 public:
  // Throws std::runtime_error (with what to do) when the directory cannot be used.
  explicit Collector(CollectorOptions options);
  ~Collector();
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  // Rescans the directory, reads every segment, reaps dead processes, rebuilds the snapshot.
  void refresh();

  // Sleeps until a segment appears or goes, a tracked process dies, or timeout_ms passes; then
  // refresh(). Returns true when woken by an event rather than the timeout. Without
  // CollectorOptions::watch only a process death wakes it early.
  bool wait(int timeout_ms);

  const Snapshot& snapshot() const { return snapshot_; }

  // Whether refreshes fill Snapshot::buffers (CollectorOptions::list_buffers), from the next
  // refresh on: a viewer turns it on only while it shows buffers.
  void set_list_buffers(bool list) { options_.list_buffers = list; }
  bool lists_buffers() const { return options_.list_buffers; }
  // The live buffers and CBs of the last refresh, as Snapshot::buffers lists them: a copy of
  // them when this collector lists buffers, else built from an incremental collector's live
  // sets (in no particular order). That costs the live set, where an incremental refresh costs
  // what changed, so ttmemd lists buffers only when a request asks for them. Empty for a
  // collector that neither lists buffers nor collects incrementally.
  std::vector<BufferView> list_buffers() const;
  const std::string& dir() const { return options_.dir; }
  // The directory did not exist at the last refresh: nothing has been tracked with it yet.
  bool segment_dir_missing() const { return segment_dir_missing_; }
  LeakStore& leak_store() { return leaks_; }

  // Drains the event rings of every segment already read, without rescanning or re-reading:
  // cheap enough for a recorder to call in a tight loop between refreshes. Returns the events
  // delivered to the sink and adds the events found overwritten to *dropped.
  uint64_t drain_events(uint64_t* dropped);

  // Receives every ring event read (needs drain_events).
  void set_event_sink(ProcessEventSink sink) { sink_ = std::move(sink); }

  // The reader and latest state of a tracked process, or nullopt once it has left the model: for
  // consumers of a snapshot (the recorder's checkpoints) that need its device descriptors and
  // tag strings. Valid until the next refresh(); not for the event sink, which is handed them
  // (EventSource). state->records is filled only when the collector lists buffers: otherwise
  // records are folded in place, never copied.
  struct ProcessAccess {
    const SegmentReader* reader;
    const SegmentState* state;
  };
  std::optional<ProcessAccess> process(const ProcessKey& key) const;

  // True when some tracked process reported anything since the last refresh() (see
  // SegmentReader::change_stamp). Segments appearing or going are signalled through fd().
  bool changed() const;

  // An fd that becomes readable when wait() has work: for embedding in another event loop.
  int fd() const { return epoll_fd_; }

 private:
  struct Tracked {
    std::unique_ptr<SegmentReader> reader;
    std::string check;  // ProcessView::segment_check
    int pidfd = -1;
    // Written in another PID namespace: its pid names nobody (or somebody else) here, so it is
    // never judged dead and never reaped by this collector.
    bool other_namespace = false;
    SegmentState state;
    bool read_ok = false;
    bool records_copied = false;  // state.records holds the records; else fold them in place
    uint64_t stamp = 0;  // change_stamp() taken just before the last read
    // Incremental: the next event of each device ring to apply, and what the last full read
    // found torn or corrupt.
    std::array<uint64_t, protocol::kMaxDevices> applied{};
    uint64_t torn_at_full_read = 0, corrupt_at_full_read = 0;
    // Present at this collector's first refresh: its history before that is no loss to this
    // reader, so draining starts at the ring heads of the first read. A segment that appears
    // later was born while this reader watched: draining starts at its first event.
    bool attached = false;
    bool drained_once = false;
    std::shared_ptr<protocol::RecordAck> ack;  // mapped read-write; null if none
  };
  struct Problem {
    std::string error;
    uint64_t inode = 0, size = 0;
    int64_t mtime_ns = 0;
    std::string rejected;  // SegmentProblem::rejected
    bool leaks = false;    // SegmentProblem::leaks
  };
  // Outcome of verify_origin(): `rejected` (a kRejected* reason, with `error`) or `check`.
  struct Verdict {
    std::string rejected;
    std::string check;
    std::string error;
  };

  void scan_directory();
  void track(const std::string& path, const SegmentName& name);
  Verdict verify_origin(const SegmentReader& reader, bool alive) const;
  Verdict verify_other_namespace(const SegmentReader& reader) const;
  bool in_other_namespace(const SegmentReader& reader) const;
  bool is_dead(const Tracked& t) const;
  void reap(const std::string& path, Tracked& t);
  void build_snapshot();
  void drain_inotify();
  // Checks that the directory exists and watches it once it does; false while it is missing.
  bool watch_dir_if_present();
  void drain(Tracked& t, const ProcessKey& key, uint64_t* delivered);
  // Incremental reads: the ring events since the last read applied to the fold, or, the first
  // time and after a gap, the whole segment read and the fold's state of it replaced.
  bool read_incrementally(const std::string& path, Tracked& t, std::string* error);
  bool read_in_full_for_fold(const std::string& path, Tracked& t, std::string* error);
  ProcessView identity_of(const std::string& path, const Tracked& t) const;
  std::array<uint64_t, protocol::kMaxDevices> dropped_events_of(const Tracked& t) const;
  // Debug builds: when no segment changed since it was read, folds every segment in full; if
  // that differs from the incremental snapshot, says so on stderr and starts the incremental
  // state afresh. A state of the segments already found to agree is compared again only after
  // kReverifyNs (a record changed without an event shows then): an idle refresh of a large
  // process would otherwise repeat a full fold twice a second.
  void verify_incremental(const Snapshot& incremental);
  static constexpr uint64_t kReverifyNs = 10'000'000'000;
  // The fold of every segment's records, read in place or copied (the non-incremental path).
  Snapshot fold_in_full();

  CollectorOptions options_;
  const uint64_t pid_namespace_;  // this collector's (own_pid_namespace())
  LeakStore leaks_;
  int inotify_fd_ = -1;
  int epoll_fd_ = -1;
  std::map<std::string, Tracked> segments_;
  std::map<std::string, Problem> problems_;
  std::set<std::string> reaped_;  // paths already reported, in case unlink failed
  ProcessEventSink sink_;
  Snapshot snapshot_;
  bool refreshed_once_ = false;
  bool segment_dir_missing_ = false;
  bool watching_dir_ = false;
  CbPeaks cb_peaks_;      // the fold's, kept from one refresh to the next
  std::unique_ptr<IncrementalFold> incremental_;  // with CollectorOptions::incremental
  // The segments and their change stamps when verify_incremental() last found them agree, and
  // when (monotonic).
  std::vector<std::pair<std::string, uint64_t>> verified_stamps_;
  uint64_t verified_ns_ = 0;
  TtMetalScan tt_metal_;  // tt-metal's counters as read by the last refresh
  std::vector<IncrementalFold::DeviceEvent> event_batch_;  // read_incrementally()'s, reused
};

}  // namespace ttmem::collector
