#include "daemon/legacy_ingest.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <stdexcept>
#include <utility>

#include "common/clock.h"
#include "common/format.h"
#include "common/kinds.h"
#include "common/proc.h"

namespace ttmem::daemon {

using collector::BufferView;
using collector::DeviceView;
using collector::KindUsage;
using collector::kNumKinds;
using collector::LeakRecord;
using collector::Snapshot;
using common::format_bytes;
using common::kind_name;
using common::Liveness;
using common::monotonic_ns;
using common::open_pidfd;
using common::process_cmdline;
using common::process_liveness;
using common::process_start_time;
using common::process_uid;
using common::realtime_ns;

namespace lg = protocol::legacy;
using T = lg::MessageType;

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
  // A burst may have grown the buffer to a few hundred KiB; an idle connection keeps little.
  if (in_.capacity() > kIdleCapacity && in_.size() <= kIdleCapacity / 2) in_.shrink_to_fit();
  return true;
}

// ---------------------------------------------------------------------------------------------
// LegacyLedger: the prototype server's counting, per process.
// ---------------------------------------------------------------------------------------------

namespace {

uint64_t limit_of(const LegacyLimits& limits, uint32_t device, uint32_t kind) {
  uint64_t capacity = limits[device][kind];
  return capacity != 0 ? capacity : lg::kMaxSizeOfUnknownDevice;
}

// Whether `add` more bytes keep `held` within `limit` (without overflowing on the way).
bool fits(uint64_t held, uint64_t add, uint64_t limit) {
  return add != 0 && add <= limit && held <= limit - add;
}

// The fields a live legacy buffer (BufferView) and a leaked one (LeakRecord) share: the prototype's
// clients name a buffer by its address and say nothing of banks, so its bytes are its range.
template <class Record>
void fill_from_legacy(Record& r, const LegacyKey& where, const LegacyLedger::Buffer& b) {
  r.device = where.device;
  r.kind = b.kind;
  r.buffer_id = where.address;
  r.address = where.address;
  r.size = b.size;
  r.reserved = b.size;
  r.time_ns = b.time_ns;
  r.tag = "legacy";
}

}  // namespace

LegacyLedger::~LegacyLedger() {
  for (const auto& [id, d] : devices_) {
    for (uint32_t k = 0; k < kNumKinds; ++k) totals_->devices[id].bytes[k] -= d.bytes[k];
    totals_->devices[id].kernel_bytes -= d.kernel_bytes;
  }
  totals_->records -= buffers_.size() + kernels_.size();
}

void LegacyLedger::count_alloc(uint32_t device, uint32_t kind, uint64_t bytes) {
  Device& d = devices_[device];
  d.count[kind] += 1;
  d.allocs[kind] += 1;
  d.bytes[kind] += bytes;
  totals_->devices[device].bytes[kind] += bytes;
  reported_ = true;
}

void LegacyLedger::count_free(uint32_t device, uint32_t kind, uint64_t bytes) {
  Device& d = devices_[device];
  d.count[kind] -= 1;
  d.frees[kind] += 1;
  d.bytes[kind] -= bytes;
  totals_->devices[device].bytes[kind] -= bytes;
}

bool LegacyLedger::take_record() {
  if (totals_->records < totals_->max_records) {
    totals_->records += 1;
    // Logged again only after the live set fell well below the bound, not at every free.
    if (totals_->records < totals_->max_records / 10 * 9) totals_->bound_reported = false;
    return true;
  }
  counters_.slab_overflow += 1;
  if (!totals_->bound_reported) {
    totals_->bound_reported = true;
    std::fprintf(stderr,
                 "ttmemd: legacy clients hold %zu buffers and kernels, the bound "
                 "(--legacy-max-buffers); further allocations are refused and counted as "
                 "slab_overflow until some are freed\n",
                 totals_->max_records);
  }
  return false;
}

bool LegacyLedger::alloc(const lg::MessageHead& h, uint64_t limit) {
  const uint32_t dev = uint32_t(h.device_id);
  const uint32_t kind = h.buffer_type;
  // Size 0 and sizes beyond the device are not allocations (the prototype refused 0 and sizes
  // above 100 GB): they would make every total a lie, and wrap them.
  if (h.size == 0 || h.size > limit) {
    counters_.invalid_calls += 1;
    return false;
  }
  const LegacyKey key{h.buffer_id, dev};
  if (auto it = buffers_.find(key); it != buffers_.end()) {
    // The prototype reference-counts an address allocated again (a program cache reporting the
    // same buffer twice) and keeps the first size; it stays until as many FREEs came.
    it->second.refs += 1;
    counters_.duplicate_allocs += 1;
    return false;
  }
  if (!take_record()) return false;
  buffers_.emplace(key, Buffer{h.size, monotonic_ns(), 1, uint8_t(kind)});
  count_alloc(dev, kind, h.size);
  return true;
}

bool LegacyLedger::free(const lg::MessageHead& h) {
  const uint32_t dev = uint32_t(h.device_id);
  auto it = buffers_.find(LegacyKey{h.buffer_id, dev});
  if (it == buffers_.end()) {
    counters_.unknown_frees += 1;
    return false;
  }
  if (--it->second.refs > 0) return false;
  const Buffer b = it->second;
  buffers_.erase(it);
  totals_->records -= 1;
  count_free(dev, b.kind, b.size);
  return true;
}

bool LegacyLedger::cb_alloc(const lg::MessageHead& h, uint64_t limit) {
  const uint32_t dev = uint32_t(h.device_id);
  const uint32_t cb = uint32_t(Kind::Cb);
  if (!fits(devices_[dev].bytes[cb], h.size, limit)) {
    counters_.invalid_calls += 1;
    return false;
  }
  // CBs are a count per device, as the prototype kept them: CB_ALLOC adds its size.
  count_alloc(dev, cb, h.size);
  return true;
}

bool LegacyLedger::cb_free(const lg::MessageHead& h) {
  const uint32_t dev = uint32_t(h.device_id);
  const uint32_t cb = uint32_t(Kind::Cb);
  const Device& d = devices_[dev];
  if (d.count[cb] == 0) {
    counters_.unknown_frees += 1;
    return false;
  }
  // CB_FREE subtracts the size it carries, never below zero (the prototype's rule): a client
  // whose CB_ALLOC and CB_FREE sizes disagree moves only its own total.
  count_free(dev, cb, std::min(h.size, d.bytes[cb]));
  return true;
}

bool LegacyLedger::kernel_load(const lg::MessageHead& h, uint64_t limit) {
  const uint32_t dev = uint32_t(h.device_id);
  Device& d = devices_[dev];
  if (!fits(d.kernel_bytes, h.size, limit)) {
    counters_.invalid_calls += 1;
    return false;
  }
  const LegacyKey key{h.buffer_id, dev};
  auto it = kernels_.find(key);
  if (it == kernels_.end()) {
    if (!take_record()) return false;
    it = kernels_.emplace(key, Kernel{0, 0}).first;
    d.kernels += 1;
  }
  it->second.bytes += h.size;
  it->second.loads += 1;
  d.kernel_bytes += h.size;
  totals_->devices[dev].kernel_bytes += h.size;
  reported_ = true;
  return true;
}

bool LegacyLedger::kernel_unload(const lg::MessageHead& h) {
  const uint32_t dev = uint32_t(h.device_id);
  Device& d = devices_[dev];
  auto it = kernels_.find(LegacyKey{h.buffer_id, dev});
  if (it == kernels_.end() && d.kernel_bytes == 0) {
    counters_.unknown_frees += 1;
    return false;
  }
  // KERNEL_UNLOAD subtracts the size it carries from the device's kernel bytes, as the
  // prototype did, and forgets the kernel once every load of its id is unloaded.
  const uint64_t bytes = std::min(h.size, d.kernel_bytes);
  d.kernel_bytes -= bytes;
  totals_->devices[dev].kernel_bytes -= bytes;
  if (it != kernels_.end()) {
    it->second.bytes -= std::min(h.size, it->second.bytes);
    if (--it->second.loads == 0) {
      kernels_.erase(it);
      totals_->records -= 1;
      d.kernels -= 1;
    }
  }
  return true;
}

bool LegacyLedger::apply(const lg::Message& m, const LegacyLimits& limits) {
  const lg::MessageHead& h = m.head;
  const T type = T(h.type);
  switch (type) {
    case T::Query:
    case T::DeviceInfoQuery:
    case T::DumpRemaining:
    case T::DumpKernels:
    case T::ServerUrlQuery:
      return false;  // requests: the ingest answers them
    case T::Response:
    case T::DeviceInfoResponse:
    case T::ServerUrlResponse:
      counters_.invalid_calls += 1;  // only a server sends these
      return false;
    default:
      break;
  }
  if (h.device_id < 0 || uint32_t(h.device_id) >= protocol::kMaxDevices) {
    counters_.invalid_calls += 1;
    return false;
  }
  const uint32_t dev = uint32_t(h.device_id);
  switch (type) {
    case T::Alloc:
      if (h.buffer_type > lg::kMaxBufferType) break;
      return alloc(h, limit_of(limits, dev, h.buffer_type));
    case T::Free:
      return free(h);
    case T::CbAlloc:
      return cb_alloc(h, limit_of(limits, dev, uint32_t(Kind::Cb)));
    case T::CbFree:
      return cb_free(h);
    case T::KernelLoad:
      // Kernel binaries sit in L1 (size × cores): no more than the device's L1.
      return kernel_load(h, limit_of(limits, dev, uint32_t(Kind::L1)));
    case T::KernelUnload:
      return kernel_unload(h);
    default:
      break;
  }
  counters_.invalid_calls += 1;
  return false;
}

LegacyLimits legacy_limits(const Snapshot& base) {
  LegacyLimits limits{};
  for (const DeviceView& d : base.devices) {
    for (uint32_t id : d.logical_ids) {
      if (id >= protocol::kMaxDevices) continue;
      for (uint32_t k = 0; k < kNumKinds; ++k) limits[id][k] = d.kinds[k].capacity;
      // CBs live in L1: where the segment gave no CB capacity, L1's bounds them.
      if (limits[id][uint32_t(Kind::Cb)] == 0) {
        limits[id][uint32_t(Kind::Cb)] = d.kinds[uint32_t(Kind::L1)].capacity;
      }
    }
  }
  return limits;
}

// ---------------------------------------------------------------------------------------------
// LegacyIngest: the socket, connections and processes.
// ---------------------------------------------------------------------------------------------

LegacyIngest::LegacyIngest(LegacyOptions options) : options_(std::move(options)) {
  const std::string& path = options_.path;
  if (options_.form != 0 && !lg::is_form(options_.form)) {
    throw std::runtime_error(fmt::format(
        "legacy message size {} is not one of 72, 112, 144 (or 0 to detect)", options_.form));
  }
  totals_.max_records = options_.max_records;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    throw std::runtime_error(fmt::format("legacy socket path '{}' must be 1 to {} bytes", path,
                                         sizeof addr.sun_path - 1));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  // A socket file left by a previous server is removed; anything else at the path is not ours
  // (a file someone put there to stop the server, or a mistake): it is never touched.
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      throw LegacySocketUnavailable(fmt::format(
          "{} exists and is not a socket; remove it or choose another --legacy-socket", path));
    }
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool in_use =
        probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (probe >= 0) ::close(probe);
    if (in_use) {
      throw LegacySocketUnavailable(fmt::format(
          "another server is listening on {} (the prototype's allocation server or another "
          "ttmemd); stop it or choose another --legacy-socket",
          path));
    }
    ::unlink(path.c_str());
  }
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  // The socket file is born owner-only and only then opened to the group, so nobody else can
  // ever connect. The umask is process-wide: this runs while ttmemd has no other threads.
  mode_t old_umask = ::umask(0177);
  bool bound =
      listen_fd_ >= 0 && ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::umask(old_umask);
  if (bound && options_.group &&
      (::chown(path.c_str(), uid_t(-1), *options_.group) != 0 ||
       ::chmod(path.c_str(), 0660) != 0)) {
    std::string err = std::strerror(errno);
    ::close(listen_fd_);
    ::unlink(path.c_str());
    throw std::runtime_error(fmt::format(
        "cannot give group {} access to legacy socket {}: {}; check --legacy-socket-group",
        *options_.group, path, err));
  }
  if (!bound || ::listen(listen_fd_, SOMAXCONN) != 0) {
    std::string err = std::strerror(errno);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    throw LegacySocketUnavailable(fmt::format(
        "cannot listen on legacy socket {}: {}; choose another --legacy-socket", path, err));
  }
  if (::lstat(path.c_str(), &st) == 0) socket_inode_ = st.st_ino;
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
}

LegacyIngest::~LegacyIngest() {
  for (auto& [fd, c] : conns_) ::close(fd);
  for (auto& [fd, key] : pidfds_) ::close(fd);
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    // Only the socket this ingest made: a later ttmemd may have taken the path over already.
    struct stat st;
    if (::lstat(options_.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_ino == socket_inode_) {
      ::unlink(options_.path.c_str());
    }
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

LegacyIngest::Process& LegacyIngest::process_for(pid_t pid) {
  // A pidfd first, then the start time: if the pid was reused in between, the start time is
  // the new process's and the pidfd watches that same process, so the two agree.
  int pidfd = pid > 0 ? open_pidfd(pid) : -1;
  ProcessKey key{pid, pid > 0 ? process_start_time(pid).value_or(0) : 0};
  auto it = processes_.find(key);
  if (it != processes_.end()) {
    if (pidfd >= 0) ::close(pidfd);
    return *it->second;
  }
  auto p = std::make_unique<Process>(totals_);
  p->key = key;
  p->command = pid > 0 ? process_cmdline(pid) : "";
  if (p->command.empty()) p->command = "(legacy client)";
  p->uid = pid > 0 ? process_uid(pid).value_or(0) : 0;
  p->pidfd = pidfd;
  if (pidfd >= 0) {
    pidfds_.emplace(pidfd, key);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = pidfd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, pidfd, &ev);
  }
  return *processes_.emplace(key, std::move(p)).first->second;
}

void LegacyIngest::accept_all() {
  while (conns_.size() < kMaxConnections) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: leave the rest waiting in the backlog (a client's
        // sends block there; closing it would kill the prototype's clients with SIGPIPE) and
        // try again shortly.
        accepting_ = false;
        accept_retry_ns_ = monotonic_ns() + 100'000'000;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
      }
      return;
    }
    Connection c;
    c.fd = fd;
    c.decoder = LegacyDecoder(options_.form);
    c.last_input_ns = monotonic_ns();
    ucred cred{};
    socklen_t len = sizeof cred;
    pid_t pid = ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
    c.process = &process_for(pid);
    c.process->connections += 1;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    conns_.emplace(fd, std::move(c));
  }
  if (accepting_) {
    // At kMaxConnections: the same wait in the backlog until a connection closes.
    accepting_ = false;
    accept_retry_ns_ = 0;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
  }
}

void LegacyIngest::close_connection(int fd) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  it->second.process->connections -= 1;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  conns_.erase(it);
}

bool LegacyIngest::has_ended(const Process& p) const {
  if (p.pidfd >= 0) {
    pollfd pfd{p.pidfd, POLLIN, 0};
    return ::poll(&pfd, 1, 0) > 0;
  }
  if (p.key.pid <= 0) return p.connections == 0;  // no credentials: ends with its connections
  return process_liveness(p.key.pid, p.key.start_time) == Liveness::Dead;
}

void LegacyIngest::retire(const ProcessKey& key, const Snapshot& base) {
  auto it = processes_.find(key);
  if (it == processes_.end()) return;
  Process& p = *it->second;
  const uint64_t now = realtime_ns();
  std::vector<LeakRecord> leaks;
  leaks.reserve(p.ledger.buffers().size());
  for (const auto& [where, b] : p.ledger.buffers()) {
    LeakRecord l;
    l.pid = p.key.pid;
    l.process_start_time = p.key.start_time;
    l.command = p.command;
    l.detected_realtime_ns = now;
    l.chip_id = external_chip_id(base, where.device);
    fill_from_legacy(l, where, b);
    leaks.push_back(std::move(l));
  }
  if (!leaks.empty()) leaks_.push_back(std::move(leaks));
  if (p.pidfd >= 0) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, p.pidfd, nullptr);
    ::close(p.pidfd);
    pidfds_.erase(p.pidfd);
  }
  processes_.erase(it);
}

bool LegacyIngest::retire_ended(const Snapshot& base, bool check_all) {
  bool changed = false;
  std::vector<ProcessKey> ended;
  for (const auto& [key, p] : processes_) {
    // A process that never reported memory and has no connection left is forgotten at once (a
    // monitor that polls and goes); the others are checked while they have no connection (a
    // pidfd wakes poll() when they end), or all of them at shutdown.
    if (p->connections == 0 && !p->ledger.reported()) {
      ended.push_back(key);
    } else if ((check_all || p->connections == 0 || p->pidfd < 0) && has_ended(*p)) {
      ended.push_back(key);
    }
  }
  for (const ProcessKey& key : ended) {
    // What a process sent before it died still counts: read its connections out, then close
    // them (a child that inherited one speaks for the dead process no more).
    std::vector<int> fds;
    for (const auto& [fd, c] : conns_) {
      if (c.process->key == key) fds.push_back(fd);
    }
    for (int fd : fds) {
      bool ignored = false;
      read_from(conns_.at(fd), base, &ignored);
      close_connection(fd);
    }
    changed |= processes_.at(key)->ledger.reported();
    retire(key, base);
  }
  return changed;
}

std::vector<std::vector<LeakRecord>> LegacyIngest::take_leaks() {
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

namespace {

const DeviceView* find_device(const Snapshot& s, int32_t logical_id) {
  if (logical_id < 0) return nullptr;
  for (const auto& d : s.devices) {
    if (std::find(d.logical_ids.begin(), d.logical_ids.end(), uint32_t(logical_id)) !=
        d.logical_ids.end()) {
      return &d;
    }
  }
  return nullptr;
}

lg::Message reply_head(const lg::Message& m, T type) {
  lg::Message r;
  r.head.type = uint8_t(type);
  r.head.device_id = m.head.device_id;
  r.head.process_id = m.head.process_id;
  r.head.timestamp = realtime_ns();
  return r;
}

}  // namespace

lg::Message LegacyIngest::query_reply(const lg::Message& m, const Snapshot& base) const {
  // O(devices): the segment processes' totals from the last refresh, and the legacy processes'
  // running totals; no buffer is visited.
  std::array<uint64_t, kNumKinds> bytes{};
  uint64_t kernel = 0;
  const int32_t dev = m.head.device_id;
  if (const DeviceView* d = find_device(base, dev)) {
    for (uint32_t k = 0; k < kNumKinds; ++k) bytes[k] += d->kinds[k].requested;
  }
  if (dev >= 0 && uint32_t(dev) < protocol::kMaxDevices) {
    const LegacyTotals::Device& t = totals_.devices[uint32_t(dev)];
    for (uint32_t k = 0; k < kNumKinds; ++k) bytes[k] += t.bytes[k];
    kernel = t.kernel_bytes;
  }
  lg::Message r = reply_head(m, T::Response);
  r.dram = bytes[uint32_t(Kind::Dram)];
  r.l1 = bytes[uint32_t(Kind::L1)];
  // The prototype's server counted SYSTEM_MEMORY into l1_small ("treat as L1_SMALL").
  r.l1_small = bytes[uint32_t(Kind::L1Small)] + bytes[uint32_t(Kind::SystemMemory)];
  r.trace = bytes[uint32_t(Kind::Trace)];
  r.cb = bytes[uint32_t(Kind::Cb)];
  r.kernel = kernel;
  return r;
}

lg::Message LegacyIngest::device_info_reply(const lg::Message& m, const Snapshot& base) const {
  lg::Message r = reply_head(m, T::DeviceInfoResponse);
  if (m.head.device_id == -1) {
    std::set<uint32_t> ids;
    for (const auto& d : base.devices) ids.insert(d.logical_ids.begin(), d.logical_ids.end());
    for (uint32_t id = 0; id < protocol::kMaxDevices; ++id) {
      const LegacyTotals::Device& t = totals_.devices[id];
      bool used = t.kernel_bytes != 0 ||
                  std::any_of(t.bytes.begin(), t.bytes.end(), [](uint64_t b) { return b != 0; });
      if (used) ids.insert(id);
    }
    r.info.num_devices = uint32_t(ids.size());
    r.info.is_available = ids.empty() ? 0 : 1;
    return r;
  }
  // A device only legacy clients name has no geometry here: "not available" makes the
  // prototype's monitor fall back to its defaults instead of showing a capacity of 0 B.
  const DeviceView* d = find_device(base, m.head.device_id);
  if (d == nullptr) return r;
  const KindUsage& dram = d->kinds[uint32_t(Kind::Dram)];
  const uint64_t cores =
      d->grid_x != 0 ? uint64_t(d->grid_x) * d->grid_y : d->kinds[uint32_t(Kind::L1)].num_banks;
  r.info.arch_type = d->arch;
  r.info.num_dram_channels = dram.num_banks;
  r.info.dram_size_per_channel = uint32_t(std::min<uint64_t>(dram.bank_size, UINT32_MAX));
  r.info.l1_size_per_core = uint32_t(std::min<uint64_t>(d->l1_per_core, UINT32_MAX));
  // As the prototype computed them: channels × size per channel, and L1 per core × cores.
  r.info.total_dram_size = uint64_t(r.info.num_dram_channels) * r.info.dram_size_per_channel;
  r.info.total_l1_size = uint64_t(r.info.l1_size_per_core) * cores;
  r.info.is_available = 1;
  return r;
}

namespace {

// One line per group of buffers, and each buffer when a group has at most this many (the
// prototype's dump listed up to ten per type).
constexpr size_t kDumpListedPerGroup = 10;

// What a dump says of one group (a device and kind, or a device's kernels).
struct DumpGroup {
  uint64_t count = 0, bytes = 0;
  std::vector<std::string> lines;  // one per member, when there are few enough
};

}  // namespace

std::string LegacyIngest::remaining_text() const {
  // Per device and kind: buffers, bytes, and (few enough) the buffers themselves.
  std::map<std::pair<uint32_t, uint32_t>, DumpGroup> groups;
  for (const auto& [key, p] : processes_) {
    for (const auto& [id, d] : p->ledger.devices()) {
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        if (d.count[k] == 0) continue;
        DumpGroup& g = groups[{id, k}];
        g.count += d.count[k];
        g.bytes += d.bytes[k];
      }
    }
  }
  for (const auto& [key, p] : processes_) {
    for (const auto& [where, b] : p->ledger.buffers()) {
      DumpGroup& g = groups[{where.device, b.kind}];
      if (g.count > kDumpListedPerGroup) continue;
      g.lines.push_back(fmt::format("    - buffer 0x{:x}: {} (pid {}, refs {})", where.address,
                                    format_bytes(b.size), p->key.pid, b.refs));
    }
  }
  uint64_t total = 0;
  for (const auto& [key, g] : groups) total += key.second == uint32_t(Kind::Cb) ? 0 : g.count;
  std::string out = fmt::format("Remaining buffers of legacy clients: {}\n", total);
  uint32_t shown_device = UINT32_MAX;
  for (const auto& [key, g] : groups) {
    if (key.first != shown_device) out += fmt::format("Device {}:\n", shown_device = key.first);
    out += fmt::format("  {}: {} {}, {}\n", kind_name(key.second), g.count,
                       key.second == uint32_t(Kind::Cb) ? "CB allocations" : "buffers",
                       format_bytes(g.bytes));
    for (const std::string& line : g.lines) out += line + "\n";
  }
  return out;
}

std::string LegacyIngest::kernels_text() const {
  std::map<uint32_t, DumpGroup> groups;
  for (const auto& [key, p] : processes_) {
    for (const auto& [id, d] : p->ledger.devices()) {
      if (d.kernel_bytes == 0 && d.kernels == 0) continue;
      groups[id].bytes += d.kernel_bytes;
      groups[id].count += d.kernels;
    }
  }
  for (const auto& [key, p] : processes_) {
    for (const auto& [where, k] : p->ledger.kernels()) {
      DumpGroup& g = groups[where.device];
      if (g.count > kDumpListedPerGroup) continue;
      g.lines.push_back(fmt::format("    - kernel {}: {} (pid {}, loads {})", where.address,
                                    format_bytes(k.bytes), p->key.pid, k.loads));
    }
  }
  std::string out = "Kernels of legacy clients:\n";
  if (groups.empty()) out += "  none\n";
  for (const auto& [device, g] : groups) {
    out += fmt::format("Device {}: {} kernels, {}\n", device, g.count, format_bytes(g.bytes));
    for (const std::string& line : g.lines) out += line + "\n";
  }
  return out;
}

void LegacyIngest::dump(const lg::Message& m, pid_t pid) {
  const bool kernels = m.head.type == uint8_t(T::DumpKernels);
  Dump& last = kernels ? kernels_dump_ : remaining_dump_;
  const uint64_t now = realtime_ns();
  // Each dump walks the live set: a client asking in a loop gets at most one a second.
  if (last.realtime_ns != 0 && now - last.realtime_ns < kMinDumpIntervalNs) return;
  last.realtime_ns = now;
  last.pid = pid;
  last.text = kernels ? kernels_text() : remaining_text();
  std::fprintf(stderr, "ttmemd: %s requested by pid %d\n%s",
               kernels ? "DUMP_KERNELS" : "DUMP_REMAINING", int(pid), last.text.c_str());
  std::fflush(stderr);
}

void LegacyIngest::handle(Connection& c, const lg::Message& m, const Snapshot& base,
                          bool* changed) {
  if (c.process->ledger.apply(m, limits_)) *changed = true;
  switch (T(m.head.type)) {
    case T::Query:
      reply(c, query_reply(m, base));
      break;
    case T::DeviceInfoQuery:
      reply(c, device_info_reply(m, base));
      break;
    case T::DumpRemaining:
    case T::DumpKernels:
      dump(m, c.process->key.pid);
      break;
    case T::ServerUrlQuery: {
      uint8_t buf[sizeof(lg::Message144)];
      const size_t form = size_t(c.decoder.form());
      lg::encode_url(reply_head(m, T::ServerUrlResponse).head, server_url_.c_str(), form, buf);
      c.out.append(reinterpret_cast<const char*>(buf), form);
      break;
    }
    default:
      break;
  }
}

bool LegacyIngest::read_from(Connection& c, const Snapshot& base, bool* changed) {
  uint8_t buf[16384];
  bool open = true;
  for (int round = 0; round < 16; ++round) {  // bounded: other connections get their turn
    ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) {
      open = false;  // decode what came before the end
      break;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      open = false;
      break;
    }
    c.decoder.append(buf, size_t(n));
    c.last_input_ns = monotonic_ns();
    if (size_t(n) < sizeof buf) break;
  }
  bool quiet = !open || monotonic_ns() - c.last_input_ns >= uint64_t(kQuietMs) * 1'000'000;
  if (!c.decoder.decode(quiet, [&](const lg::Message& m) { handle(c, m, base, changed); })) {
    rejected_bytes_ += c.decoder.rejected_bytes();
    *changed = true;  // the rejected bytes are counted in the next publication
    return false;
  }
  return flush(c) && open;
}

bool LegacyIngest::poll(const Snapshot& base) {
  limits_ = legacy_limits(base);
  bool changed = false;
  if (!accepting_ && conns_.size() < kMaxConnections &&
      (accept_retry_ns_ == 0 || monotonic_ns() >= accept_retry_ns_)) {
    accepting_ = true;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  }
  epoll_event events[64];
  int n = ::epoll_wait(epoll_fd_, events, 64, 0);
  std::vector<int> ready;
  bool process_ended = false;
  for (int i = 0; i < n; ++i) {
    const int fd = events[i].data.fd;
    if (fd == listen_fd_) {
      accept_all();
    } else if (pidfds_.count(fd)) {
      process_ended = true;
    } else {
      ready.push_back(fd);
    }
  }
  // Connections with undecided forms or pending output are revisited without an fd event.
  for (auto& [fd, c] : conns_) {
    if (c.decoder.undecided() || !c.out.empty()) ready.push_back(fd);
  }
  std::sort(ready.begin(), ready.end());
  ready.erase(std::unique(ready.begin(), ready.end()), ready.end());
  bool closed = false;
  for (int fd : ready) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) continue;
    if (!read_from(it->second, base, &changed)) {
      close_connection(fd);
      closed = true;
    }
  }
  if (process_ended || closed || next_timeout_ms() >= 0) {
    // A pidfd fired: look at every process, those with connections still open included (a
    // dead process's connections may not have reported their end yet).
    changed |= retire_ended(base, /*check_all=*/process_ended);
  }
  return changed;
}

void LegacyIngest::finish(const Snapshot& base) {
  limits_ = legacy_limits(base);
  bool changed = false;
  std::vector<int> fds;
  for (const auto& [fd, c] : conns_) fds.push_back(fd);
  for (int fd : fds) {
    if (!read_from(conns_.at(fd), base, &changed)) close_connection(fd);
  }
  retire_ended(base, /*check_all=*/true);
}

int LegacyIngest::next_timeout_ms() const {
  int timeout = -1;
  auto sooner = [&](int ms) { timeout = timeout < 0 ? ms : std::min(timeout, ms); };
  if (!accepting_ && conns_.size() < kMaxConnections) sooner(100);
  for (const auto& [fd, c] : conns_) {
    if (c.decoder.undecided() || !c.out.empty()) {
      sooner(kQuietMs);
      break;
    }
  }
  // Without pidfds, a process's end is noticed by looking.
  for (const auto& [key, p] : processes_) {
    if (p->pidfd < 0) {
      sooner(250);
      break;
    }
  }
  return timeout;
}

std::vector<ExternalProcess> LegacyIngest::processes() const {
  const bool list = totals_.records <= kMaxListedBuffers;
  std::vector<ExternalProcess> out;
  for (const auto& [key, p] : processes_) {
    if (!p->ledger.reported()) continue;
    ExternalProcess e;
    e.process.pid = p->key.pid;
    e.process.start_time = p->key.start_time;
    e.process.command = p->command;
    e.process.segment = fmt::format("legacy:{}#{}", options_.path, p->key.pid);
    e.process.counters = p->ledger.counters();
    e.process.uid = p->uid;
    for (const auto& [id, d] : p->ledger.devices()) {
      ExternalProcess::DeviceCounts counts;
      counts.device = id;
      counts.allocs = d.allocs;
      counts.frees = d.frees;
      e.counts.push_back(counts);
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        // CBs are counts without records; buffers too when there are too many to copy.
        if (d.count[k] == 0 || (list && k != uint32_t(Kind::Cb))) continue;
        e.unlisted.push_back({id, k, d.bytes[k], d.count[k], "legacy"});
      }
    }
    if (list) {
      e.buffers.reserve(p->ledger.buffers().size());
      for (const auto& [where, b] : p->ledger.buffers()) {
        BufferView v;
        fill_from_legacy(v, where, b);
        v.size_per_bank = b.size;
        e.buffers.push_back(std::move(v));
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::map<uint32_t, uint64_t> LegacyIngest::kernel_bytes() const {
  std::map<uint32_t, uint64_t> out;
  for (uint32_t id = 0; id < protocol::kMaxDevices; ++id) {
    if (totals_.devices[id].kernel_bytes != 0) out[id] = totals_.devices[id].kernel_bytes;
  }
  return out;
}

nlohmann::json LegacyIngest::report() const {
  using nlohmann::json;
  json processes = json::array();
  for (const auto& [key, p] : processes_) {
    json devices = json::array();
    for (const auto& [id, d] : p->ledger.devices()) {
      json bytes = json::object(), count = json::object();
      for (uint32_t k = 0; k < kNumKinds; ++k) {
        bytes[std::string(kind_name(k))] = d.bytes[k];
        count[std::string(kind_name(k))] = d.count[k];
      }
      devices.push_back({{"device", id},
                         {"bytes", bytes},
                         {"buffers", count},
                         {"kernel_bytes", d.kernel_bytes},
                         {"kernels", d.kernels}});
    }
    const auto& c = p->ledger.counters();
    processes.push_back({{"pid", p->key.pid},
                         {"start_time", p->key.start_time},
                         {"command", p->command},
                         {"connections", p->connections},
                         {"reported", p->ledger.reported()},
                         {"unknown_frees", c.unknown_frees},
                         {"duplicate_allocs", c.duplicate_allocs},
                         {"invalid_calls", c.invalid_calls},
                         {"slab_overflow", c.slab_overflow},
                         {"devices", devices}});
  }
  auto dump_json = [](const Dump& d) {
    return json{{"realtime_ns", d.realtime_ns}, {"pid", d.pid}, {"text", d.text}};
  };
  return json{{"socket", options_.path},
              {"connections", conns_.size()},
              {"records", totals_.records},
              {"max_records", totals_.max_records},
              {"buffers_listed", totals_.records <= kMaxListedBuffers},
              {"processes", processes},
              {"remaining_dump", dump_json(remaining_dump_)},
              {"kernels_dump", dump_json(kernels_dump_)}};
}

}  // namespace ttmem::daemon
