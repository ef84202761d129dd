// Legacy ingest: a Unix-socket listener that speaks the AllocMessage protocol of tt-metal's
// allocation-server prototype (protocol/legacy.h), so its clients and its monitor work unchanged
// against ttmemd.
//
// Ownership is per process, as in the prototype's server: every connection of a process (told
// apart by the kernel's peer credentials, never by the message's process_id) reports into one
// ledger, a FREE on any of them applies, and a connection that closes while its process lives
// keeps the buffers until the process dies (a pidfd says when). Then they become leak records,
// one file per process.
//
// Cost is bounded: a buffer costs about 80 bytes (one hash-table node), every QUERY is answered
// from running totals in O(1), the live set of all legacy processes together is bounded
// (max_records, refused with a clear message), and a publication lists buffers one by one only
// while there are few of them (kMaxListedBuffers); above that it carries per-device totals.
//
// Input is hostile: the form is detected from the bytes (or fixed by option), every message
// head is checked, partial messages wait for their remaining bytes, a connection that sends
// something that is not a message is closed and its bytes counted as rejected, and a report
// that cannot be true (size 0, larger than the device, a free of nothing) is counted in the
// sending process's counters and changes nothing.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/external.h"
#include "collector/snapshot.h"
#include "protocol/legacy.h"

namespace ttmem::daemon {

// The form of a connection's messages from its first bytes: 72, 112 or 144; 0 while undecided;
// -1 when the bytes cannot be a message stream. `quiet`: no more bytes are coming for now (a
// client that sent one message and waits for a reply), so a length that equals a form decides.
int detect_legacy_form(const uint8_t* p, size_t n, bool quiet);

// Splits one connection's bytes into messages: detects the form (unless it is fixed), keeps a
// partial message until the rest arrives, and refuses a stream that is not this protocol. No
// I/O: the socket code feeds it what it receives, tests and fuzzers feed it bytes directly.
class LegacyDecoder {
 public:
  using MessageSink = std::function<void(const protocol::legacy::Message&)>;

  // form: 0 to detect, or 72/112/144.
  explicit LegacyDecoder(uint32_t form) : form_(int(form)) {}

  void append(const uint8_t* p, size_t n) { in_.insert(in_.end(), p, p + n); }

  // Hands every complete message to `sink`, in order. False when the bytes cannot be a message
  // stream (the connection must be closed); rejected_bytes() then counts the refused bytes.
  // `quiet`: no more bytes are coming for now (see detect_legacy_form).
  bool decode(bool quiet, const MessageSink& sink);

  int form() const { return form_; }  // 0 while undecided
  bool undecided() const { return form_ == 0 && !in_.empty(); }
  size_t pending_bytes() const { return in_.size(); }
  uint64_t rejected_bytes() const { return rejected_bytes_; }

 private:
  static constexpr size_t kIdleCapacity = 4096;
  int form_;
  std::vector<uint8_t> in_;
  uint64_t rejected_bytes_ = 0;
};

// What every legacy process holds together: the running totals a QUERY answers from, and the
// daemon-wide bound on held records (buffers and kernels).
struct LegacyTotals {
  static constexpr size_t kDefaultMaxRecords = size_t{1} << 20;

  struct Device {
    std::array<uint64_t, collector::kNumKinds>
        bytes{};  // requested bytes per kind (CB: CB_ALLOC − CB_FREE)
    uint64_t kernel_bytes = 0;
  };
  std::array<Device, protocol::kMaxDevices> devices{};
  size_t records = 0;  // buffers and kernels held by every ledger
  size_t max_records = kDefaultMaxRecords;
  bool bound_reported = false;  // the refusal was logged since the bound was last reached
};

// The most bytes one report may claim per device and kind: the capacity a segment process
// registered for it, else protocol::legacy::kMaxSizeOfUnknownDevice (a 0 entry).
using LegacyLimits = std::array<std::array<uint64_t, collector::kNumKinds>, protocol::kMaxDevices>;

// Where a legacy buffer or kernel lives: the prototype keyed both by (device, address or id).
struct LegacyKey {
  uint64_t address;
  uint32_t device;
  bool operator==(const LegacyKey&) const = default;
};
struct LegacyKeyHash {
  size_t operator()(const LegacyKey& k) const noexcept {
    return size_t((k.address ^ (uint64_t(k.device) << 56)) * 0x9E3779B97F4A7C15ull);
  }
};

// What one process has reported over all its connections, counted as the prototype's server
// counted it (docs/daemon.md, "Counting"). Keeps the shared LegacyTotals in step: every byte
// added here is added there, and the destructor takes back what the ledger still holds.
class LegacyLedger {
 public:
  struct Buffer {  // 24 bytes: with its key and the hash node, ~80 bytes a buffer
    uint64_t size;
    uint64_t time_ns;  // CLOCK_MONOTONIC of the first ALLOC
    uint32_t refs;     // ALLOCs at this address not yet matched by a FREE
    uint8_t kind;
  };
  struct Kernel {
    uint64_t bytes;  // KERNEL_LOAD sizes less KERNEL_UNLOAD sizes of this id
    uint32_t loads;
  };
  struct Device {
    std::array<uint64_t, collector::kNumKinds> bytes{};  // CB: CB_ALLOC sizes less CB_FREE sizes
    std::array<uint64_t, collector::kNumKinds>
        count{};  // live buffers; CB: CB_ALLOCs not yet freed
    std::array<uint64_t, collector::kNumKinds> allocs{};
    std::array<uint64_t, collector::kNumKinds> frees{};
    uint64_t kernel_bytes = 0;
    uint64_t kernels = 0;  // kernel ids loaded and not yet unloaded
  };

  explicit LegacyLedger(LegacyTotals& totals) : totals_(&totals) {}
  ~LegacyLedger();
  LegacyLedger(const LegacyLedger&) = delete;
  LegacyLedger& operator=(const LegacyLedger&) = delete;

  // Applies one message; returns whether the model changed. Requests (QUERY, DEVICE_INFO_QUERY,
  // DUMP_*, SERVER_URL_QUERY) change nothing here (the ingest answers them); messages only a
  // server sends, and reports that cannot be true, are counted in `counters` and change nothing.
  bool apply(const protocol::legacy::Message& m, const LegacyLimits& limits);

  const std::unordered_map<LegacyKey, Buffer, LegacyKeyHash>& buffers() const { return buffers_; }
  const std::unordered_map<LegacyKey, Kernel, LegacyKeyHash>& kernels() const { return kernels_; }
  const std::map<uint32_t, Device>& devices() const { return devices_; }
  const protocol::ProcessCounters& counters() const { return counters_; }
  bool reported() const { return reported_; }  // has reported memory: a process in the model

 private:
  bool alloc(const protocol::legacy::MessageHead& h, uint64_t limit);
  bool free(const protocol::legacy::MessageHead& h);
  bool cb_alloc(const protocol::legacy::MessageHead& h, uint64_t limit);
  bool cb_free(const protocol::legacy::MessageHead& h);
  bool kernel_load(const protocol::legacy::MessageHead& h, uint64_t limit);
  bool kernel_unload(const protocol::legacy::MessageHead& h);
  // Room for one more record under the daemon-wide bound; counts and logs a refusal otherwise.
  bool take_record();
  // One more (or one fewer) live buffer or CB of `bytes` on a device, in the process's figures
  // and the daemon's totals alike.
  void count_alloc(uint32_t device, uint32_t kind, uint64_t bytes);
  void count_free(uint32_t device, uint32_t kind, uint64_t bytes);

  LegacyTotals* totals_;
  std::unordered_map<LegacyKey, Buffer, LegacyKeyHash> buffers_;
  std::unordered_map<LegacyKey, Kernel, LegacyKeyHash> kernels_;
  std::map<uint32_t, Device> devices_;
  protocol::ProcessCounters counters_{};
  bool reported_ = false;
};

struct LegacyOptions {
  std::string path;
  uint32_t form = 0;           // 0 detect, or 72/112/144
  std::optional<gid_t> group;  // group that may connect (0660); owner only (0600) without it
  size_t max_records = LegacyTotals::kDefaultMaxRecords;
};

// The socket path cannot be served (taken by a file that is not a socket or by a live server, or
// not bindable): the daemon serves everything else without this listener.
class LegacySocketUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class LegacyIngest {
 public:
  // New connections wait in the listen backlog beyond this many (their sends block, they are
  // never closed unread): about 1 KiB each while idle.
  static constexpr size_t kMaxConnections = 65536;
  static constexpr size_t kMaxPendingOutput = 64 * 1024;
  static constexpr int kQuietMs = 25;
  // A publication lists legacy buffers one by one up to this many over all processes; above it,
  // it carries each process's per-device totals instead, so a huge live set costs no copies.
  static constexpr size_t kMaxListedBuffers = 10'000;
  // DUMP_REMAINING and DUMP_KERNELS walk the live set: at most one of each a second is built,
  // later requests within the second log nothing new.
  static constexpr uint64_t kMinDumpIntervalNs = 1'000'000'000;

  // Binds the socket (removing a stale socket file first) and listens. Throws
  // LegacySocketUnavailable saying what to do when the path is taken by a live server or by
  // anything that is not a socket (never removed), or cannot be bound; std::runtime_error for
  // options that cannot work (a bad form, a path too long, a group that cannot be given access).
  explicit LegacyIngest(LegacyOptions options);
  ~LegacyIngest();

  // Readable when poll() has work: for the daemon's epoll.
  int fd() const { return epoll_fd_; }

  // The URL a SERVER_URL_QUERY is answered with (ttmemd's HTTP address).
  void set_server_url(std::string url) { server_url_ = std::move(url); }

  // Accepts, reads, answers, notices processes that ended. `base` is the model without legacy
  // processes (for replies and size limits). Returns true if the model changed.
  bool poll(const collector::Snapshot& base);

  // Before the daemon exits: reads what the connections sent, and turns the buffers of every
  // process that has ended into leak records (take_leaks()), so none is lost to a shutdown.
  void finish(const collector::Snapshot& base);

  // Milliseconds until poll() must run again without an fd event, or -1.
  int next_timeout_ms() const;

  // Processes that have reported memory, for merge_external().
  std::vector<ExternalProcess> processes() const;

  // Leak records of the processes that ended since the last call, one list per process (one
  // leak file each): buffers still live when the process died. CBs and kernels are counts, not
  // buffers, and leave no record.
  std::vector<std::vector<collector::LeakRecord>> take_leaks();

  // Text of the last DUMP_REMAINING / DUMP_KERNELS ("" if none yet), as also logged on stderr.
  struct Dump {
    uint64_t realtime_ns = 0;
    pid_t pid = 0;  // who asked
    std::string text;
  };
  const Dump& remaining_dump() const { return remaining_dump_; }
  const Dump& kernels_dump() const { return kernels_dump_; }

  // /api/v1/legacy: per process and device, bytes and buffers per kind, CB and kernel bytes,
  // kernels, the bound, and the last dumps. O(processes × devices + listed kernels).
  nlohmann::json report() const;

  const std::string& path() const { return options_.path; }
  size_t connections() const { return conns_.size(); }
  uint64_t rejected_bytes() const { return rejected_bytes_; }
  const LegacyTotals& totals() const { return totals_; }
  // Kernel bytes all legacy clients hold loaded, per device where not zero.
  std::map<uint32_t, uint64_t> kernel_bytes() const;

 private:
  struct ProcessKey {
    pid_t pid;
    uint64_t start_time;
    auto operator<=>(const ProcessKey&) const = default;
  };
  struct Process {
    explicit Process(LegacyTotals& totals) : ledger(totals) {}
    ProcessKey key{};
    std::string command;
    uint32_t uid = 0;
    int pidfd = -1;  // readable once the process has ended; -1 where pidfds are unavailable
    size_t connections = 0;
    LegacyLedger ledger;
  };
  struct Connection {
    int fd = -1;
    Process* process = nullptr;
    LegacyDecoder decoder{0};
    std::string out;
    uint64_t last_input_ns = 0;
  };

  void accept_all();
  Process& process_for(pid_t pid);
  // Returns false when the connection must be closed.
  bool read_from(Connection& c, const collector::Snapshot& base, bool* changed);
  void handle(Connection& c, const protocol::legacy::Message& m, const collector::Snapshot& base,
              bool* changed);
  void reply(Connection& c, const protocol::legacy::Message& m);
  bool flush(Connection& c);
  void close_connection(int fd);
  bool has_ended(const Process& p) const;
  // Records the process's leaks and forgets it (its connections must be closed).
  void retire(const ProcessKey& key, const collector::Snapshot& base);
  // Drains and closes the connections of processes that have ended, then retires them.
  bool retire_ended(const collector::Snapshot& base, bool check_all);
  protocol::legacy::Message query_reply(const protocol::legacy::Message& m,
                                        const collector::Snapshot& base) const;
  protocol::legacy::Message device_info_reply(const protocol::legacy::Message& m,
                                              const collector::Snapshot& base) const;
  void dump(const protocol::legacy::Message& m, pid_t pid);
  std::string remaining_text() const;
  std::string kernels_text() const;

  LegacyOptions options_;
  std::string server_url_;
  ino_t socket_inode_ = 0;  // the socket file this ingest created: only it is removed at exit
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  bool accepting_ = true;         // false while out of file descriptors or at kMaxConnections
  uint64_t accept_retry_ns_ = 0;  // when to try accepting again
  uint64_t rejected_bytes_ = 0;
  LegacyTotals totals_;
  LegacyLimits limits_{};
  std::map<ProcessKey, std::unique_ptr<Process>> processes_;
  std::map<int, ProcessKey> pidfds_;  // pidfd -> process
  std::map<int, Connection> conns_;
  std::vector<std::vector<collector::LeakRecord>> leaks_;
  Dump remaining_dump_, kernels_dump_;
};

// Per device and kind, the most bytes one legacy report may claim (see LegacyLimits).
LegacyLimits legacy_limits(const collector::Snapshot& base);

}  // namespace ttmem::daemon
