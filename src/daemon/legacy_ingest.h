// Legacy ingest: a Unix-socket listener that speaks the lineage's AllocMessage protocol
// (protocol/legacy.h), so existing clients and monitors work unchanged against ttmemd.
//
// Each connection that reports allocations is a process in the model: its live buffers (keyed
// by device + address within the connection, as the lineage keyed them) are handed to
// merge_external() with every refresh. QUERY and DEVICE_INFO_QUERY are answered from the whole
// model: segment processes and every legacy connection.
//
// Input is hostile: the form is detected from the bytes (or fixed by option), every message
// head is checked, partial messages wait for their remaining bytes, and a connection that sends
// something that is not a message is closed and its bytes counted as rejected.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "collector/external.h"
#include "collector/model.h"
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
  int form_;
  std::vector<uint8_t> in_;
  uint64_t rejected_bytes_ = 0;
};

// What one connection has reported: its live buffers (keyed by device + address, as the
// lineage keyed them), per-device counts and the reports it could not apply.
struct LegacyLedger {
  static constexpr size_t kMaxLiveBuffers = 1u << 20;

  struct Live {
    uint32_t kind;  // < kNumKinds
    uint64_t size;
    uint64_t time_ns;
  };
  // (device, is_cb, address) -> buffer
  std::map<std::tuple<int32_t, bool, uint64_t>, Live> live;
  std::map<uint32_t, ExternalProcess::DeviceCounts> counts;  // by device
  protocol::ProcessCounters counters{};
  bool reported = false;  // has sent an allocation: a process in the model

  // Applies one message; returns whether the live set changed. Queries are accepted without
  // change (the caller answers them); messages only a server sends are counted as invalid.
  bool apply(const protocol::legacy::Message& m);
};

class LegacyIngest {
 public:
  static constexpr size_t kMaxConnections = 256;
  static constexpr size_t kMaxPendingOutput = 64 * 1024;
  static constexpr int kQuietMs = 25;

  // Binds `path` (removing a stale socket file first) and listens. form: 0 detect, or 72/112/144.
  // The socket is owner-only (0600), or 0660 with group `group`: only those may connect.
  // Throws std::runtime_error with what to do.
  LegacyIngest(std::string path, uint32_t form, std::optional<gid_t> group = std::nullopt);
  ~LegacyIngest();

  // Readable when poll() has work: for the daemon's epoll.
  int fd() const { return epoll_fd_; }

  // Accepts, reads, answers. `base` is the model without legacy connections (for replies).
  // Returns true if the model changed.
  bool poll(const Snapshot& base);

  // Milliseconds until poll() must run again without an fd event (form detection, pending
  // output), or -1.
  int next_timeout_ms() const;

  // Connections that have reported allocations, as processes for merge_external().
  std::vector<ExternalProcess> processes() const;

  // Buffers (not CBs) still live when their connection closed, since the last call, as leak
  // records: the lineage's clients report nothing when they die.
  std::vector<LeakRecord> take_leaks();

  size_t connections() const { return conns_.size(); }
  uint64_t rejected_bytes() const { return rejected_bytes_; }

 private:
  struct Connection {
    int fd = -1;
    uint64_t serial = 0;
    pid_t pid = 0;
    uint64_t start_time = 0;
    std::string command;
    LegacyDecoder decoder{0};
    std::string out;
    uint64_t last_input_ns = 0;
    LegacyLedger ledger;
  };

  void accept_all();
  // Returns false when the connection must be closed.
  bool read_from(Connection& c, const Snapshot& base, bool* changed);
  void handle(Connection& c, const protocol::legacy::Message& m, const Snapshot& base,
              bool* changed);
  void reply(Connection& c, const protocol::legacy::Message& m);
  bool flush(Connection& c);
  void close(int fd, const Snapshot& base);
  protocol::legacy::Message query_reply(const protocol::legacy::Message& m,
                                        const Snapshot& base) const;
  protocol::legacy::Message device_info_reply(const protocol::legacy::Message& m,
                                              const Snapshot& base) const;

  std::string path_;
  uint32_t fixed_form_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  uint64_t next_serial_ = 1;
  uint64_t rejected_bytes_ = 0;
  std::map<int, Connection> conns_;
  std::vector<LeakRecord> leaks_;
};

}  // namespace ttmem::daemon
