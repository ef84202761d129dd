#include "daemon/legacy_ingest.h"

#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>
#include <utility>

#include "common/clock.h"
#include "common/proc.h"

namespace ttmem::daemon {

namespace lg = protocol::legacy;
using protocol::Kind;

int detect_legacy_form(const uint8_t* p, size_t n, bool quiet) {
  if (n >= 4 && !lg::plausible_head(p)) return -1;
  // In a request every counter is zero, so the bytes where a shorter form's next message would
  // start are zero in the longer forms: the first offset with a message head decides.
  for (size_t form : {72u, 112u, 144u}) {
    if (n >= form + 4 && lg::plausible_head(p + form)) return int(form);
  }
  if (n >= 144 + 4) return -1;  // no form puts a message head after the first message
  if (quiet && lg::is_form(n)) return int(n);
  return 0;
}

bool LegacyDecoder::decode(bool quiet, const MessageSink& sink) {
  if (form_ == 0) {
    form_ = detect_legacy_form(in_.data(), in_.size(), quiet);
    if (form_ < 0) {
      rejected_bytes_ += in_.size();
      return false;
    }
    if (form_ == 0) return true;  // wait for more bytes or for quiet
  }
  size_t form = size_t(form_);
  size_t used = 0;
  while (in_.size() - used >= form) {
    const uint8_t* p = in_.data() + used;
    if (!lg::plausible_head(p)) {
      // Out of step or not this protocol: a later boundary cannot be trusted either.
      rejected_bytes_ += in_.size() - used;
      return false;
    }
    sink(lg::decode(p, form));
    used += form;
  }
  in_.erase(in_.begin(), in_.begin() + ptrdiff_t(used));
  return true;
}

bool LegacyLedger::apply(const lg::Message& m) {
  using T = lg::MessageType;
  const auto& h = m.head;
  switch (T(h.type)) {
    case T::Alloc:
    case T::CbAlloc:
    case T::Free:
    case T::CbFree: {
      bool cb = h.type == uint8_t(T::CbAlloc) || h.type == uint8_t(T::CbFree);
      bool alloc = h.type == uint8_t(T::Alloc) || h.type == uint8_t(T::CbAlloc);
      if (h.device_id < 0 || uint32_t(h.device_id) >= protocol::kMaxDevices ||
          (!cb && h.buffer_type > lg::kMaxBufferType)) {
        counters.invalid_calls += 1;
        return false;
      }
      uint32_t kind = cb ? uint32_t(Kind::Cb) : h.buffer_type;
      auto key = std::make_tuple(h.device_id, cb, h.buffer_id);
      auto& device_counts = counts[uint32_t(h.device_id)];
      device_counts.device = uint32_t(h.device_id);
      if (alloc) {
        auto it = live.find(key);
        if (it != live.end()) {
          counters.duplicate_allocs += 1;
          device_counts.frees[it->second.kind] += 1;
          live.erase(it);
        } else if (live.size() >= kMaxLiveBuffers) {
          counters.slab_overflow += 1;
          return false;
        }
        live.emplace(key, Live{kind, h.size, monotonic_ns()});
        device_counts.allocs[kind] += 1;
        reported = true;
      } else {
        auto it = live.find(key);
        if (it == live.end()) {
          counters.unknown_frees += 1;
          return false;
        }
        device_counts.frees[it->second.kind] += 1;
        live.erase(it);
      }
      return true;
    }
    case T::Query:
    case T::DeviceInfoQuery:
    case T::DumpRemaining:
    case T::KernelLoad:
    case T::KernelUnload:
    case T::DumpKernels:
      return false;  // accepted; kernels are not device-memory buffers in the model
    case T::Response:
    case T::DeviceInfoResponse:
      break;  // only a server sends these
  }
  counters.invalid_calls += 1;
  return false;
}

LegacyIngest::LegacyIngest(std::string path, uint32_t form, std::optional<gid_t> group)
    : path_(std::move(path)) {
  if (form != 0 && !lg::is_form(form)) {
    throw std::runtime_error(
        fmt::format("legacy message size {} is not one of 72, 112, 144 (or 0 to detect)", form));
  }
  fixed_form_ = form;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof addr.sun_path) {
    throw std::runtime_error(fmt::format("legacy socket path '{}' must be 1 to {} bytes", path_,
                                         sizeof addr.sun_path - 1));
  }
  std::memcpy(addr.sun_path, path_.c_str(), path_.size());
  // A socket file left by a previous server is removed; anything else at the path is not ours.
  struct stat st;
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      throw std::runtime_error(fmt::format(
          "{} exists and is not a socket; remove it or choose another --legacy-socket", path_));
    }
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool in_use =
        probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (probe >= 0) ::close(probe);
    if (in_use) {
      throw std::runtime_error(fmt::format(
          "another server is listening on {} (the lineage's allocation server or another "
          "ttmemd); stop it or choose another --legacy-socket",
          path_));
    }
    ::unlink(path_.c_str());
  }
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  // The socket file is born owner-only and only then opened to the group, so nobody else can
  // ever connect. The umask is process-wide: this runs while ttmemd has no other threads.
  mode_t old_umask = ::umask(0177);
  bool bound =
      listen_fd_ >= 0 && ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::umask(old_umask);
  if (bound && group &&
      (::chown(path_.c_str(), uid_t(-1), *group) != 0 || ::chmod(path_.c_str(), 0660) != 0)) {
    std::string err = std::strerror(errno);
    ::close(listen_fd_);
    ::unlink(path_.c_str());
    throw std::runtime_error(fmt::format(
        "cannot give group {} access to legacy socket {}: {}; check --legacy-socket-group",
        *group, path_, err));
  }
  if (!bound || ::listen(listen_fd_, 64) != 0) {
    std::string err = std::strerror(errno);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    throw std::runtime_error(
        fmt::format("cannot listen on legacy socket {}: {}; choose another "
                    "--legacy-socket",
                    path_, err));
  }
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
}

LegacyIngest::~LegacyIngest() {
  for (auto& [fd, c] : conns_) ::close(fd);
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(path_.c_str());
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void LegacyIngest::accept_all() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (conns_.size() >= kMaxConnections) {
      ::close(fd);  // the client sees EOF; existing connections are unaffected
      continue;
    }
    Connection c;
    c.fd = fd;
    c.serial = next_serial_++;
    c.decoder = LegacyDecoder(fixed_form_);
    c.last_input_ns = monotonic_ns();
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0) {
      c.pid = cred.pid;
      c.start_time = process_start_time(cred.pid).value_or(0);
      c.command = process_cmdline(cred.pid);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    conns_.emplace(fd, std::move(c));
  }
}

void LegacyIngest::close(int fd, const Snapshot& base) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Connection& c = it->second;
  uint64_t now = realtime_ns();
  for (const auto& [key, live] : c.ledger.live) {
    LeakRecord l;
    l.pid = c.pid;
    l.process_start_time = c.start_time;
    l.command = c.command.empty() ? "(legacy client)" : c.command;
    l.detected_realtime_ns = now;
    l.chip_id = external_chip_id(base, uint32_t(std::get<0>(key)));
    l.device = uint32_t(std::get<0>(key));
    l.kind = live.kind;
    l.buffer_id = std::get<2>(key);
    l.address = std::get<2>(key);
    l.size = live.size;
    l.reserved = live.size;
    l.time_ns = live.time_ns;
    if (live.kind != uint32_t(Kind::Cb)) leaks_.push_back(std::move(l));
  }
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  conns_.erase(it);
}

std::vector<LeakRecord> LegacyIngest::take_leaks() {
  return std::exchange(leaks_, {});
}

bool LegacyIngest::flush(Connection& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out.erase(0, size_t(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
    return false;
  }
  // A client that never reads its replies cannot make the daemon buffer without limit.
  return c.out.size() <= kMaxPendingOutput;
}

void LegacyIngest::reply(Connection& c, const lg::Message& m) {
  uint8_t buf[sizeof(lg::Message144)];
  size_t form = size_t(c.decoder.form());
  lg::encode(m, form, buf);
  c.out.append(reinterpret_cast<const char*>(buf), form);
}

lg::Message LegacyIngest::query_reply(const lg::Message& m, const Snapshot& base) const {
  std::array<uint64_t, kNumKinds> bytes{};
  int32_t dev = m.head.device_id;
  for (const auto& d : base.devices) {
    if (std::find(d.logical_ids.begin(), d.logical_ids.end(), uint32_t(dev)) ==
        d.logical_ids.end()) {
      continue;
    }
    for (uint32_t k = 0; k < kNumKinds; ++k) bytes[k] += d.kinds[k].requested;
  }
  for (const auto& [fd, c] : conns_) {
    for (const auto& [key, live] : c.ledger.live) {
      if (std::get<0>(key) == dev) bytes[live.kind] += live.size;
    }
  }
  lg::Message r;
  r.head.type = uint8_t(lg::MessageType::Response);
  r.head.device_id = dev;
  r.head.process_id = m.head.process_id;
  r.head.timestamp = realtime_ns();
  r.dram = bytes[uint32_t(Kind::Dram)];
  r.l1 = bytes[uint32_t(Kind::L1)];
  r.l1_small = bytes[uint32_t(Kind::L1Small)];
  r.trace = bytes[uint32_t(Kind::Trace)];
  r.cb = bytes[uint32_t(Kind::Cb)];
  return r;
}

lg::Message LegacyIngest::device_info_reply(const lg::Message& m, const Snapshot& base) const {
  std::set<int32_t> ids;
  for (const auto& d : base.devices) {
    for (uint32_t id : d.logical_ids) ids.insert(int32_t(id));
  }
  for (const auto& [fd, c] : conns_) {
    for (const auto& [dev, counts] : c.ledger.counts) ids.insert(int32_t(dev));
  }
  lg::Message r;
  r.head.type = uint8_t(lg::MessageType::DeviceInfoResponse);
  r.head.device_id = m.head.device_id;
  r.head.process_id = m.head.process_id;
  r.head.timestamp = realtime_ns();
  r.info.num_devices = uint32_t(ids.size());
  for (const auto& d : base.devices) {
    if (m.head.device_id < 0 || std::find(d.logical_ids.begin(), d.logical_ids.end(),
                                          uint32_t(m.head.device_id)) == d.logical_ids.end()) {
      continue;
    }
    const KindUsage& dram = d.kinds[uint32_t(Kind::Dram)];
    r.info.total_dram_size = dram.capacity;
    r.info.total_l1_size = d.kinds[uint32_t(Kind::L1)].capacity;
    r.info.arch_type = d.arch;
    r.info.num_dram_channels = dram.num_banks;
    r.info.dram_size_per_channel = uint32_t(std::min<uint64_t>(dram.bank_size, UINT32_MAX));
    r.info.l1_size_per_core = uint32_t(std::min<uint64_t>(d.l1_per_core, UINT32_MAX));
    r.info.is_available = 1;
    break;
  }
  if (m.head.device_id >= 0 && r.info.is_available == 0 && ids.count(m.head.device_id)) {
    r.info.is_available = 1;  // known only from legacy reports: no geometry to give
  }
  return r;
}

void LegacyIngest::handle(Connection& c, const lg::Message& m, const Snapshot& base,
                          bool* changed) {
  if (c.ledger.apply(m)) *changed = true;
  if (m.head.type == uint8_t(lg::MessageType::Query)) reply(c, query_reply(m, base));
  if (m.head.type == uint8_t(lg::MessageType::DeviceInfoQuery)) {
    reply(c, device_info_reply(m, base));
  }
}

bool LegacyIngest::read_from(Connection& c, const Snapshot& base, bool* changed) {
  uint8_t buf[16384];
  for (int round = 0; round < 16; ++round) {  // bounded: other connections get their turn
    ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return false;
    }
    c.decoder.append(buf, size_t(n));
    c.last_input_ns = monotonic_ns();
    if (size_t(n) < sizeof buf) break;
  }
  bool quiet = monotonic_ns() - c.last_input_ns >= uint64_t(kQuietMs) * 1'000'000;
  if (!c.decoder.decode(quiet, [&](const lg::Message& m) { handle(c, m, base, changed); })) {
    rejected_bytes_ += c.decoder.rejected_bytes();
    return false;
  }
  return flush(c);
}

bool LegacyIngest::poll(const Snapshot& base) {
  bool changed = false;
  epoll_event events[64];
  int n = ::epoll_wait(epoll_fd_, events, 64, 0);
  std::vector<int> ready;
  for (int i = 0; i < n; ++i) {
    if (events[i].data.fd == listen_fd_) {
      accept_all();
    } else {
      ready.push_back(events[i].data.fd);
    }
  }
  // Connections with undecided forms or pending output are revisited without an fd event.
  for (auto& [fd, c] : conns_) {
    if (c.decoder.undecided() || !c.out.empty()) ready.push_back(fd);
  }
  std::sort(ready.begin(), ready.end());
  ready.erase(std::unique(ready.begin(), ready.end()), ready.end());
  for (int fd : ready) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) continue;
    Connection& c = it->second;
    if (!read_from(c, base, &changed)) {
      changed = true;  // a process left the model, or rejected bytes were counted
      close(fd, base);
    }
  }
  return changed;
}

int LegacyIngest::next_timeout_ms() const {
  for (const auto& [fd, c] : conns_) {
    if (c.decoder.undecided() || !c.out.empty()) return kQuietMs;
  }
  return -1;
}

std::vector<ExternalProcess> LegacyIngest::processes() const {
  std::vector<ExternalProcess> out;
  for (const auto& [fd, c] : conns_) {
    if (!c.ledger.reported) continue;
    ExternalProcess e;
    e.process.pid = c.pid;
    e.process.start_time = c.start_time;
    e.process.command = c.command.empty() ? "(legacy client)" : c.command;
    e.process.segment = fmt::format("legacy:{}#{}", path_, c.serial);
    e.process.counters = c.ledger.counters;
    if (auto uid = process_uid(c.pid)) e.process.uid = *uid;
    for (const auto& [dev, counts] : c.ledger.counts) e.counts.push_back(counts);
    for (const auto& [key, live] : c.ledger.live) {
      BufferView b;
      b.device = uint32_t(std::get<0>(key));
      b.kind = live.kind;
      b.buffer_id = std::get<2>(key);
      b.address = std::get<2>(key);
      b.size = live.size;
      b.size_per_bank = live.size;
      b.reserved = live.size;
      b.time_ns = live.time_ns;
      b.tag = "legacy";
      e.buffers.push_back(std::move(b));
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace ttmem::daemon
