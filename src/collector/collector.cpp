#include "collector/collector.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

#include "collector/fold.h"
#include "common/clock.h"
#include "common/proc.h"

namespace ttmem::collector {

using common::default_segment_dir;
using common::Holding;
using common::Liveness;
using common::make_private_dirs;
using common::monotonic_ns;
using common::open_pidfd;
using common::own_pid_namespace;
using common::process_holds_file;
using common::process_liveness;
using common::process_start_time;
using common::process_uids;
using common::ProcessUids;
using common::realtime_ns;
using common::realtime_to_boot_ticks;

namespace pr = protocol;

namespace {

CollectorOptions with_resolved_dir(CollectorOptions o) {
  if (o.dir.empty()) o.dir = default_segment_dir();
  if (o.tt_metal_shm_dir.empty()) o.tt_metal_shm_dir = default_tt_metal_shm_dir();
  return o;
}

}  // namespace

std::string missing_segment_dir_text(const std::string& dir) {
  const std::string clients = default_segment_dir();
  return fmt::format(
      "segment directory {} does not exist: no program has been tracked with it{}", dir,
      clients == dir ? " yet (tracked programs create it)"
                     : fmt::format("; tracked programs here use {} (TTMEM_DIR, else "
                                   "/dev/shm/ttmem-<uid>)",
                                   clients));
}

Collector::Collector(CollectorOptions options)
    : options_(with_resolved_dir(std::move(options))),
      pid_namespace_(own_pid_namespace()),
      leaks_(options_.dir + "/leaks") {
  if (options_.create_dir && !make_private_dirs(options_.dir)) {
    throw std::runtime_error(fmt::format(
        "segment directory {} is not usable ({}); pass --dir or set TTMEM_DIR to a writable "
        "directory",
        options_.dir, std::strerror(errno)));
  }
  struct stat st;
  if (::stat(options_.dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    throw std::runtime_error(fmt::format(
        "segment directory {} is not a directory; pass --dir or set TTMEM_DIR to a directory",
        options_.dir));
  }
  if (options_.incremental) incremental_ = std::make_unique<IncrementalFold>();
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (options_.watch) inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = inotify_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, inotify_fd_, &ev);
  }
  watch_dir_if_present();
}

bool Collector::watch_dir_if_present() {
  struct stat st;
  segment_dir_missing_ = ::stat(options_.dir.c_str(), &st) != 0;
  if (!segment_dir_missing_ && !watching_dir_ && inotify_fd_ >= 0) {
    watching_dir_ =
        ::inotify_add_watch(inotify_fd_, options_.dir.c_str(),
                            IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_CLOSE_WRITE) >=
        0;
  }
  return !segment_dir_missing_;
}

Collector::~Collector() {
  for (auto& [path, t] : segments_) {
    if (t.pidfd >= 0) ::close(t.pidfd);
    // The programs waiting on this reader go on without it.
    if (t.ack) pr::store_u32(&t.ack->released, 1, std::memory_order_release);
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void Collector::drain_inotify() {
  if (inotify_fd_ < 0) return;
  alignas(inotify_event) char buf[4096];
  while (::read(inotify_fd_, buf, sizeof buf) > 0) {
  }
}

bool Collector::wait(int timeout_ms) {
  epoll_event events[16];
  int n = ::epoll_wait(epoll_fd_, events, 16, timeout_ms);
  drain_inotify();
  refresh();
  return n > 0;
}

namespace {

// A program's RecordAck file, mapped read-write: only if it is a regular file of the right size
// that belongs to this user (the program made it for a recorder running as the same user).
std::shared_ptr<pr::RecordAck> map_ack_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return nullptr;
  struct stat st;
  void* p = MAP_FAILED;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() &&
      st.st_size == off_t(sizeof(pr::RecordAck))) {
    p = ::mmap(nullptr, sizeof(pr::RecordAck), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  ::close(fd);
  if (p == MAP_FAILED) return nullptr;
  return std::shared_ptr<pr::RecordAck>(static_cast<pr::RecordAck*>(p), [](pr::RecordAck* a) {
    ::munmap(a, sizeof(pr::RecordAck));
  });
}

}  // namespace

void Collector::track(const std::string& path, const SegmentName& name) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return;
  auto known = problems_.find(path);
  int64_t mtime = int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  if (known != problems_.end() && known->second.inode == st.st_ino &&
      known->second.size == uint64_t(st.st_size) && known->second.mtime_ns == mtime) {
    // Same bad file as before: still reported, not re-parsed. Except a segment refused because
    // its process did not hold it: an exiting process closes and unmaps its segment a moment
    // before it stops being alive, so once it has ended the segment is judged again (as the
    // segment of a process that ended before it could be checked).
    bool ended = known->second.rejected == kRejectedNotHeld &&
                 process_liveness(name.pid, name.start_time) != Liveness::Alive;
    if (!ended) return;
  }
  auto remember_problem = [&](std::string error) {
    problems_[path] = Problem{std::move(error), st.st_ino, uint64_t(st.st_size), mtime};
  };
  std::string error;
  auto reader = SegmentReader::open(path, &error);
  if (!reader) return remember_problem(error);
  if (reader->pid() != name.pid || reader->start_time() != name.start_time) {
    return remember_problem(
        fmt::format("header names process {} (start {}), the file name {} (start {})",
                    reader->pid(), reader->start_time(), name.pid, name.start_time));
  }
  Tracked t;
  t.other_namespace = in_other_namespace(*reader);
  // Open the pidfd first, then confirm the start time: if it matches, the pidfd refers to the
  // process that wrote the segment and not to a later process that reused its PID.
  if (!t.other_namespace) t.pidfd = open_pidfd(name.pid);
  if (t.pidfd >= 0 && process_liveness(name.pid, name.start_time) != Liveness::Alive) {
    ::close(t.pidfd);
    t.pidfd = -1;
  }
  Verdict verdict =
      t.other_namespace ? verify_other_namespace(*reader) : verify_origin(*reader, t.pidfd >= 0);
  if (!verdict.rejected.empty()) {
    if (t.pidfd >= 0) ::close(t.pidfd);
    problems_[path] =
        Problem{verdict.error, st.st_ino, uint64_t(st.st_size), mtime, verdict.rejected};
    return;
  }
  problems_.erase(path);
  t.check = verdict.check;
  if (t.pidfd >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = t.pidfd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, t.pidfd, &ev);
  }
  t.reader = std::move(reader);
  t.attached = !refreshed_once_;
  if (options_.acknowledge_events) t.ack = map_ack_file(path + pr::kAckSuffix);
  segments_.emplace(path, std::move(t));
}

// Why no process (pid, start time) that has ended could have written this segment, or "" when one
// could. PID P can be reused only once its holder has ended, so if P is held now by a process
// that started at S_live, the segment's process ran entirely before S_live: its start time is
// earlier, and its file last changed (the client changes the inode only while it lives) before
// S_live. A copy made since, or one naming a later start time, fails; before, it was reaped into
// leak records shown under a live, unrelated process's pid. A copy named for a PID that nobody
// holds now cannot be told from a segment whose process ended unseen (docs/security.md).
namespace {
std::string impossible_ended_process(const SegmentReader& r) {
  const uint64_t now = realtime_to_boot_ticks(int64_t(realtime_ns()));
  if (r.start_time() > now) {
    return fmt::format("process {} is said to start at {} ticks after boot, later than now ({})",
                       r.pid(), r.start_time(), now);
  }
  const std::optional<uint64_t> holder_start = process_start_time(r.pid());
  // Nobody holds the PID, or the process itself does (a zombie, or one that ended just now).
  if (!holder_start || *holder_start == r.start_time()) return {};
  // Two ticks of slack: start times are whole ticks, the file's time is converted to them.
  const uint64_t slack = 2;
  if (r.start_time() > *holder_start ||
      realtime_to_boot_ticks(r.file_ctime_ns()) > *holder_start + slack) {
    return fmt::format(
        "pid {} has belonged to another process since {} ticks after boot, and this file {} "
        "(a copy, not a segment of an earlier process {})",
        r.pid(), *holder_start,
        r.start_time() > *holder_start ? "names a process that started after that"
                                        : "was changed after that",
        r.pid());
  }
  return {};
}
}  // namespace

// The spoofing check. A segment is believed only if the kernel vouches for it: the file belongs
// to the user the process runs as, and the process holds it open (or maps it). Policy and its
// reasons: docs/security.md.
Collector::Verdict Collector::verify_origin(const SegmentReader& r, bool alive) const {
  const pid_t pid = r.pid();
  const uid_t owner = r.file_uid();
  std::optional<ProcessUids> uids = alive ? process_uids(pid) : std::nullopt;
  if (uids) {
    if (owner != uids->real && owner != uids->effective) {
      return {std::string(kRejectedWrongOwner),
              {},
              fmt::format("rejected: the file belongs to uid {} but process {} runs as uid {}",
                          owner, pid, uids->real)};
    }
    switch (process_holds_file(pid, r.file_dev(), r.file_ino())) {
      case Holding::Held:
        return {{}, "held", {}};
      case Holding::Unreadable:
        return {{}, "owner", {}};  // another user: owner is all we see
      case Holding::NotHeld:
        break;
    }
    // A client that exits between the liveness check and the scan no longer holds anything:
    // only a process still alive after the scan is a process that does not hold the segment.
    if (process_liveness(pid, r.start_time()) == Liveness::Alive) {
      return {std::string(kRejectedNotHeld),
              {},
              fmt::format("rejected: process {} does not hold this segment open, so it did not "
                          "write it",
                          pid)};
    }
  }
  // The process ended before it could be checked. Only a file of the collector's own user is
  // believed then: nobody else can create one owned by it. And only if such a process could
  // have written it (a copy can name a process that never was).
  if (owner == ::geteuid()) {
    if (std::string why = impossible_ended_process(r); !why.empty()) {
      return {std::string(kRejectedImpossible), {}, "rejected: " + why};
    }
    return {{}, "owner", {}};
  }
  return {std::string(kRejectedUnverifiable),
          {},
          fmt::format("rejected: process {} ended before its segment could be checked and the "
                      "file belongs to uid {}; that user's own `ttmem status` reports it",
                      pid, owner)};
}

bool Collector::in_other_namespace(const SegmentReader& r) const {
  // 0 on either side (a client from before the field, no /proc): the same namespace, as before.
  return r.pid_namespace() != 0 && pid_namespace_ != 0 && r.pid_namespace() != pid_namespace_;
}

// A process in another PID namespace cannot be looked up here (its pid names another process, or
// none), so neither question of verify_origin can be asked. What can be: nobody but the file's
// owner (or root) could have made the file, so it is believed when it names its owner as the
// process's user, or when it is the collector's own user's (a user namespace maps the container
// user's id). It is shown, never called dead, never reaped: the collector of its own namespace
// does that (docs/security.md, "Containers").
Collector::Verdict Collector::verify_other_namespace(const SegmentReader& r) const {
  if (r.file_uid() == r.uid() || r.file_uid() == ::geteuid()) return {{}, kCheckOtherNamespace, {}};
  return {std::string(kRejectedWrongOwner),
          {},
          fmt::format("rejected: segment of a process in another PID namespace that names uid {} "
                      "but belongs to uid {}",
                      r.uid(), r.file_uid())};
}

bool Collector::is_dead(const Tracked& t) const {
  if (t.other_namespace) return false;  // not ours to judge: its pid means nothing here
  if (t.pidfd >= 0) {
    pollfd p{t.pidfd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;  // a pidfd is readable once its process has exited
  }
  return process_liveness(t.reader->pid(), t.reader->start_time()) != Liveness::Alive;
}

namespace {

// A client killed between creating `<segment>.tmp` and renaming it into place leaves the
// temporary behind: it is never renamed, and it holds the committed header (about 600 KB of
// /dev/shm). It has no records, so removing it loses nothing; only its own process (by pid and
// start time) could still be writing it. A temporary whose header names another PID namespace
// is left alone: its pid says nothing about its process here.
void remove_if_abandoned_temporary(const std::string& path, const std::string& name,
                                   uint64_t own_namespace) {
  static const std::string kTmp = ".tmp";
  if (name.size() <= kTmp.size() || name.compare(name.size() - kTmp.size(), kTmp.size(), kTmp)) {
    return;
  }
  auto owner = parse_segment_name(name.substr(0, name.size() - kTmp.size()));
  if (!owner || process_liveness(owner->pid, owner->start_time) != Liveness::Dead) return;
  uint64_t writer_namespace = 0;
  if (int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK); fd >= 0) {
    if (::pread(fd, &writer_namespace, sizeof writer_namespace,
                offsetof(pr::SegmentHeader, pid_namespace)) != ssize_t(sizeof writer_namespace)) {
      writer_namespace = 0;
    }
    ::close(fd);
  }
  if (writer_namespace != 0 && own_namespace != 0 && writer_namespace != own_namespace) return;
  ::unlink(path.c_str());
}

}  // namespace

void Collector::scan_directory() {
  // A directory that appears later (the first tracked program creates it) is watched from then.
  if (segment_dir_missing_ && !watch_dir_if_present()) return;
  DIR* d = ::opendir(options_.dir.c_str());
  if (d == nullptr) return;
  std::set<std::string> present;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = options_.dir + "/" + name;
    auto parsed = parse_segment_name(name);
    if (!parsed && options_.reap) remove_if_abandoned_temporary(path, name, pid_namespace_);
    if (!parsed) {
      // Only files that claim to be segments are worth a report; temporaries and the leak
      // directory are ours.
      const std::string suffix = pr::kSegmentSuffix;
      if (name.size() >= suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        present.insert(path);
        if (!problems_.count(path)) {
          problems_[path] = Problem{"file name is not ttmem-<pid>-<start_time>.seg"};
        }
      }
      continue;
    }
    present.insert(path);
    if (!segments_.count(path) && !reaped_.count(path)) track(path, *parsed);
  }
  ::closedir(d);
  // Segments removed by someone else (another collector reaped them) leave the model.
  for (auto it = segments_.begin(); it != segments_.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    // The mapping outlives the unlink: deliver the events the process wrote last (a client that
    // exits with nothing live removes its own segment) before forgetting it.
    if (options_.drain_events && sink_) {
      const Tracked& t = it->second;
      const EventSource source{ProcessKey{t.reader->pid(), t.reader->start_time()},
                               t.reader.get(), &t.state};
      t.reader->drain(
          [&](uint32_t device, const pr::EventRecord& ev) { sink_(source, device, ev); });
    }
    if (it->second.pidfd >= 0) ::close(it->second.pidfd);
    it = segments_.erase(it);
  }
  std::erase_if(problems_, [&](const auto& kv) { return !present.count(kv.first); });
  std::erase_if(reaped_, [&](const std::string& p) { return !present.count(p); });
}

void Collector::reap(const std::string& path, Tracked& t) {
  const SegmentReader& r = *t.reader;
  ProcessView identity;
  identity.pid = r.pid();
  identity.start_time = r.start_time();
  identity.command = r.command();
  std::vector<LeakRecord> leaks = leak_records(
      identity, t.state, [&r](uint32_t id) { return r.tag(id); }, realtime_ns());
  if (std::string err = leaks_.save(leaks); !err.empty()) {
    // Keep the segment: the leak report must not be lost. Try again at the next refresh.
    Problem& p = problems_[path];
    p = Problem{fmt::format("{} leaked buffers of process {} are not saved yet: cannot save leak "
                            "report: {}; they are saved at the next refresh once there is room",
                            leaks.size(), r.pid(), err)};
    p.leaks = true;
    return;
  }
  ::unlink(path.c_str());
  ::unlink((path + pr::kAckSuffix).c_str());  // a lossless recorder's, left by a crash
  reaped_.insert(path);
}

uint64_t Collector::drain_events(uint64_t* dropped) {
  uint64_t delivered = 0;
  for (auto& [path, t] : segments_) {
    if (!t.read_ok || !t.drained_once) continue;  // refresh() starts each segment's draining
    const uint64_t lost_before = t.reader->dropped_total();
    drain(t, ProcessKey{t.reader->pid(), t.reader->start_time()}, &delivered);
    *dropped += t.reader->dropped_total() - lost_before;
  }
  return delivered;
}

void Collector::drain(Tracked& t, const ProcessKey& key, uint64_t* delivered) {
  const EventSource source{key, t.reader.get(), &t.state};
  t.reader->drain([&](uint32_t device, const pr::EventRecord& ev) {
    ++*delivered;
    if (sink_) sink_(source, device, ev);
  });
  if (!t.ack) return;
  for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
    pr::store_word(&t.ack->read[d], t.reader->cursor(d), std::memory_order_release);
  }
}

std::optional<Collector::ProcessAccess> Collector::process(const ProcessKey& key) const {
  for (const auto& [path, t] : segments_) {
    if (t.reader->pid() == key.pid && t.reader->start_time() == key.start_time) {
      return ProcessAccess{t.reader.get(), &t.state};
    }
  }
  return std::nullopt;
}

void Collector::refresh() {
  scan_directory();
  for (auto it = segments_.begin(); it != segments_.end();) {
    Tracked& t = it->second;
    // Death is checked before the read so the final read sees the complete final state.
    bool dead = is_dead(t);
    std::string error;
    t.stamp = t.reader->change_stamp();  // before the read: a change during it shows next time
    // Records are copied only where they are needed one by one: to list buffers, or to turn a
    // dead process's into leak records. Otherwise build_snapshot() folds them in place.
    t.records_copied = options_.list_buffers || (dead && options_.reap);
    if (incremental_ && !(dead && options_.reap)) {
      t.records_copied = false;
      t.read_ok = read_incrementally(it->first, t, &error);
    } else {
      t.read_ok = t.records_copied ? t.reader->read(&t.state, &error)
                                   : t.reader->read_without_records(&t.state, &error);
      if (t.read_ok && incremental_) {
        // A dead process about to be reaped (or kept, when its leaks cannot be saved yet): its
        // final records stand until it leaves.
        const SegmentReader* r = t.reader.get();
        incremental_->reset_process(it->first, t.state, t.state.records,
                                    [r](uint32_t id) { return r->tag(id); });
      }
    }
    if (!t.read_ok) {
      problems_[it->first] = Problem{error};
      if (t.pidfd >= 0) ::close(t.pidfd);
      it = segments_.erase(it);
      continue;
    }
    if (options_.drain_events) {
      if (!t.drained_once && t.attached) t.reader->skip_events_before(t.state.ring_heads);
      t.drained_once = true;
      uint64_t delivered = 0;
      drain(t, ProcessKey{t.reader->pid(), t.reader->start_time()}, &delivered);
    }
    if (dead && options_.reap) {
      reap(it->first, t);
      if (reaped_.count(it->first)) {
        if (t.pidfd >= 0) ::close(t.pidfd);
        it = segments_.erase(it);
        continue;
      }
    }
    ++it;
  }
  refreshed_once_ = true;
  if (options_.tt_metal_shm) tt_metal_ = read_tt_metal_counters(options_.tt_metal_shm_dir);
  build_snapshot();
}

bool Collector::read_in_full_for_fold(const std::string& path, Tracked& t, std::string* error) {
  // The heads first: every event from them on happened after the scan began, so applying them
  // to what the scan saw gives the present (an event the scan already reflects changes nothing).
  const std::array<uint64_t, pr::kMaxDevices> heads = t.reader->ring_heads();
  if (!t.reader->read_without_records(&t.state, error)) return false;
  const SegmentReader* r = t.reader.get();
  const TagText tags = [r](uint32_t id) { return r->tag(id); };
  incremental_->start_process(path, t.state);
  // Into the fold straight from the mapping: a copy would be 64 B more per live buffer.
  if (!t.reader->for_each_live_record(&t.state, [&](const pr::BufferRecord& rec) {
        incremental_->add_read(path, t.state, rec, tags);
      })) {
    incremental_->remove_process(path);
    *error = "segment was truncated while being read (only a foreign writer shrinks one); "
             "remove it";
    return false;
  }
  t.applied = heads;
  t.torn_at_full_read = t.state.torn_records;
  t.corrupt_at_full_read = t.state.corrupt_records;
  return true;
}

bool Collector::read_incrementally(const std::string& path, Tracked& t, std::string* error) {
  if (!incremental_->has_process(path)) return read_in_full_for_fold(path, t, error);
  // The header, device slots and counters every time (a few KB): the process counters
  // (unknown frees, invalid calls) move without an event.
  if (!t.reader->read_without_records(&t.state, error)) return false;
  // Records are not scanned again: what the last scan found torn or corrupt stands.
  t.state.torn_records = t.torn_at_full_read;
  t.state.corrupt_records = t.corrupt_at_full_read;
  // After the device slots: an event on a device registered since needs its slot, which the
  // fold then refuses the event without (and the segment is read in full).
  const std::array<uint64_t, pr::kMaxDevices> heads = t.reader->ring_heads();
  const SegmentReader* r = t.reader.get();
  const TagText tags = [r](uint32_t id) { return r->tag(id); };
  // Every device's events first, then folded as one batch (IncrementalFold::apply_all); the
  // rings are asked for ahead too, so their cache misses overlap.
  for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
    if (heads[d] != t.applied[d]) t.reader->prefetch_events(d, t.applied[d], heads[d]);
  }
  bool complete = true;
  std::vector<IncrementalFold::DeviceEvent>& batch = event_batch_;
  batch.clear();
  for (uint32_t d = 0; d < pr::kMaxDevices && complete; ++d) {
    if (heads[d] == t.applied[d]) continue;
    complete = t.reader->read_events(d, t.applied[d], heads[d],
                                     [&](uint32_t device, const pr::EventRecord& ev) {
                                       batch.emplace_back(device, ev);
                                     });
    t.applied[d] = heads[d];
  }
  complete = complete && incremental_->apply_all(path, t.state, batch, tags);
  if (batch.capacity() > 65536) std::vector<IncrementalFold::DeviceEvent>().swap(batch);
  if (!complete) {
    // A gap, or an event the fold cannot take: the present is read in full instead.
    if (t.reader->truncated()) {
      *error = "segment was truncated while being read (only a foreign writer shrinks one); "
               "remove it";
      return false;
    }
    if (!read_in_full_for_fold(path, t, error)) return false;
  }
  return true;
}

bool Collector::changed() const {
  for (const auto& [path, t] : segments_) {
    if (t.reader->change_stamp() != t.stamp) return true;
  }
  return false;
}

ProcessView Collector::identity_of(const std::string& path, const Tracked& t) const {
  const SegmentReader* reader = t.reader.get();
  ProcessView p;
  p.pid = reader->pid();
  p.start_time = reader->start_time();
  p.uid = reader->uid();
  p.command = reader->command();
  p.segment = path;
  p.segment_check = t.check;
  p.exited = t.state.process_state == pr::kStateExited;
  p.counters = t.state.process_counters;
  return p;
}

std::array<uint64_t, pr::kMaxDevices> Collector::dropped_events_of(const Tracked& t) const {
  // Events this reader missed. One that reads no history misses nothing: a ring overwriting
  // while nobody records is how it works, not a loss.
  std::array<uint64_t, pr::kMaxDevices> dropped{};
  if (options_.drain_events) {
    for (uint32_t d = 0; d < pr::kMaxDevices; ++d) dropped[d] = t.reader->dropped(d);
  }
  return dropped;
}

void Collector::verify_incremental(const Snapshot& incremental) {
  std::vector<std::pair<std::string, uint64_t>> stamps;
  for (const auto& [path, t] : segments_) stamps.emplace_back(path, t.stamp);
  if (stamps == verified_stamps_ && monotonic_ns() - verified_ns_ < kReverifyNs) return;
  std::vector<FoldInput> inputs;
  for (const auto& [path, t] : segments_) {
    if (t.reader->change_stamp() != t.stamp) return;  // changed since: nothing to compare
    FoldInput in;
    in.identity = identity_of(path, t);
    std::string error;
    if (!t.reader->read(&in.state, &error)) return;
    for (uint32_t id = 0; id < t.reader->tag_count(); ++id) in.tags.push_back(t.reader->tag(id));
    in.dropped_events = dropped_events_of(t);
    inputs.push_back(std::move(in));
  }
  for (const auto& [path, t] : segments_) {
    if (t.reader->change_stamp() != t.stamp) return;
  }
  CbPeaks peaks = cb_peaks_;
  const Snapshot full = fold_snapshot(inputs, options_.list_buffers, &peaks);
  std::string difference;
  verified_stamps_ = std::move(stamps);
  verified_ns_ = monotonic_ns();
  if (!same_figures(incremental, full, &difference)) {
    verified_stamps_.clear();
    // A bug, or a segment whose records changed without events (only a foreign writer does
    // that): said on stderr, and everything is read in full at the next refresh.
    std::fprintf(stderr, "ttmem: the incremental fold differs from a full read: %s\n",
                 difference.c_str());
    incremental_ = std::make_unique<IncrementalFold>();
  }
}

void Collector::build_snapshot() {
  const uint64_t taken_realtime_ns = realtime_ns();
  const uint64_t taken_monotonic_ns = monotonic_ns();
  Snapshot s;
  if (incremental_) {
    std::set<std::string> tracked;
    std::vector<IncrementalInput> inputs;
    for (const auto& [path, t] : segments_) {
      tracked.insert(path);
      const SegmentReader* reader = t.reader.get();
      inputs.push_back(IncrementalInput{path, identity_of(path, t), &t.state,
                                        [reader](uint32_t id) { return reader->tag(id); },
                                        dropped_events_of(t)});
    }
    incremental_->forget_all_but(tracked);
    s = incremental_->snapshot(inputs, options_.list_buffers, &cb_peaks_);
#ifndef NDEBUG
    verify_incremental(s);
#endif
  } else {
    s = fold_in_full();
  }
  s.taken_realtime_ns = taken_realtime_ns;
  s.taken_monotonic_ns = taken_monotonic_ns;
  s.segment_dir = options_.dir;
  s.segment_dir_missing = segment_dir_missing_;
  s.leaks = options_.leak_records ? leaks_.load(&s.problems) : leaks_.load_count(&s.problems);
  for (const auto& [path, problem] : problems_) {
    s.problems.push_back({path, problem.error, problem.rejected, problem.leaks});
  }
  // Last: its processes are matched against the segments' to count none twice.
  merge_tt_metal_counters(s, tt_metal_);
  snapshot_ = std::move(s);
}

std::vector<BufferView> Collector::list_buffers() const {
  if (options_.list_buffers) return snapshot_.buffers;
  if (incremental_) return incremental_->list_buffers();
  return {};
}

Snapshot Collector::fold_in_full() {
  size_t total_records = 0;
  for (const auto& [path, t] : segments_) total_records += t.state.records.size();
  SnapshotFold fold(options_.list_buffers, total_records);
  for (auto& [path, t] : segments_) {
    const SegmentReader* reader = t.reader.get();
    SegmentState& st = t.state;
    fold.begin_process(identity_of(path, t), st,
                       [reader](uint32_t id) { return reader->tag(id); },
                       t.records_copied ? st.records.size() : st.record_slots);
    if (t.records_copied) {
      for (const auto& rec : st.records) fold.add(rec);
    } else {
      // Folded in place, never copied. A file truncated during the scan leaves what was folded;
      // the next refresh's read fails and drops the segment with the reason.
      if (!t.reader->for_each_live_record(&st, [&fold](const pr::BufferRecord& rec) {
            fold.add(rec);
          })) {
        problems_[path] = Problem{"segment was truncated while being read; remove it"};
      }
    }
    fold.end_process(dropped_events_of(t));
  }
  return fold.finish(&cb_peaks_);
}

}  // namespace ttmem::collector
