#include "collector/segment_reader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "common/text.h"

namespace ttmem::collector {

using common::printable_text;

namespace pr = protocol;

namespace {

// Asks for transparent huge pages over the 2 MiB-aligned middle of a large, not yet touched
// buffer: 100,000 records are 6.4 MB, and first-touch faults of 4 KiB pages were a quarter of
// `ttmem status`. Only a hint; kernels without THP (or with it off) ignore it.
void advise_huge_pages(void* data, size_t bytes) {
  constexpr uintptr_t kHuge = 2u << 20;
  if (bytes < 2 * kHuge) return;
  uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

constexpr int kReadRetries = 4;
// A device descriptor: the slot and the registration copy, in turn (read_device).
constexpr int kDeviceReadRetries = 64;

template <class T>
const T* at(const uint8_t* base, uint64_t offset) {
  return reinterpret_cast<const T*>(base + offset);
}

// Checks the header's identity and geometry. Returns "" when it is usable.
std::string validate_header(const pr::SegmentHeader& h, uint64_t file_size) {
  if (h.magic != pr::kSegmentMagic) return "not a ttmem segment (bad magic)";
  if (h.version != pr::kSegmentVersion) {
    return fmt::format("segment version {} is not supported (this ttmem reads version {})",
                       h.version, pr::kSegmentVersion);
  }
  if (h.header_size != sizeof(pr::SegmentHeader)) return "header size mismatch";
  if (h.max_devices != pr::kMaxDevices || h.num_kinds != pr::kNumKinds ||
      h.string_capacity != pr::kStringCapacity || h.device_slot_size != sizeof(pr::DeviceSlot) ||
      h.record_size != sizeof(pr::BufferRecord) || h.event_size != sizeof(pr::EventRecord) ||
      h.string_slot_size != sizeof(pr::StringSlot)) {
    return "record sizes or table capacities differ from this ttmem's protocol";
  }
  if (h.slab_capacity < pr::kMinSlabCapacity || h.slab_capacity > pr::kMaxSlabCapacity) {
    return fmt::format("slab capacity {} out of range", h.slab_capacity);
  }
  if (h.ring_capacity < pr::kMinRingCapacity || h.ring_capacity > pr::kMaxRingCapacity ||
      !pr::is_power_of_two(h.ring_capacity)) {
    return fmt::format("ring capacity {} is not a power of two in range", h.ring_capacity);
  }
  pr::Layout l = pr::compute_layout(h.slab_capacity, h.ring_capacity);
  if (h.devices_offset != l.devices_offset || h.counters_offset != l.counters_offset ||
      h.ring_heads_offset != l.ring_heads_offset || h.strings_offset != l.strings_offset ||
      h.slab_offset != l.slab_offset || h.rings_offset != l.rings_offset ||
      h.segment_size != l.segment_size) {
    return "table offsets disagree with the declared capacities";
  }
  // A file longer than its header says is read up to segment_size: the writer never grows it,
  // and refusing it would leave its process's buffers unread and never reaped (their leak
  // records lost, the file left behind). Shorter is missing part of what it declares.
  if (file_size < h.segment_size) {
    return fmt::format("truncated: file is {} B, header says {} B", file_size, h.segment_size);
  }
  if (h.pid == 0 || h.pid > uint32_t(INT32_MAX)) return "invalid pid";
  return {};
}

}  // namespace

std::optional<SegmentName> parse_segment_name(const std::string& filename) {
  const std::string prefix = pr::kSegmentPrefix;
  const std::string suffix = pr::kSegmentSuffix;
  if (filename.size() <= prefix.size() + suffix.size()) return std::nullopt;
  if (filename.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  if (filename.compare(filename.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return std::nullopt;
  }
  std::string mid = filename.substr(prefix.size(), filename.size() - prefix.size() - suffix.size());
  size_t dash = mid.find('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == mid.size()) return std::nullopt;
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() <= 20 && std::all_of(s.begin(), s.end(), ::isdigit);
  };
  std::string p = mid.substr(0, dash), t = mid.substr(dash + 1);
  if (!digits(p) || !digits(t) || p.size() > 10) return std::nullopt;
  unsigned long long pid = std::stoull(p);
  if (pid == 0 || pid > uint64_t(INT32_MAX)) return std::nullopt;
  return SegmentName{pid_t(pid), std::stoull(t)};
}

std::unique_ptr<SegmentReader> SegmentReader::open(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    *error = fmt::format("cannot open: {}", std::strerror(errno));
    return nullptr;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    *error = "not a regular file";
    return nullptr;
  }
  if (uint64_t(st.st_size) < sizeof(pr::SegmentHeader)) {
    ::close(fd);
    *error = fmt::format("truncated: {} B, smaller than the {} B header", uint64_t(st.st_size),
                         sizeof(pr::SegmentHeader));
    return nullptr;
  }
  pr::SegmentHeader h;
  if (::pread(fd, &h, sizeof h, 0) != ssize_t(sizeof h)) {
    ::close(fd);
    *error = "cannot read header";
    return nullptr;
  }
  if (std::string why = validate_header(h, uint64_t(st.st_size)); !why.empty()) {
    ::close(fd);
    *error = why;
    return nullptr;
  }
  void* p = ::mmap(nullptr, h.segment_size, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    ::close(fd);
    *error = fmt::format("cannot map: {}", std::strerror(errno));
    return nullptr;
  }
  std::unique_ptr<SegmentReader> r(new SegmentReader());
  r->path_ = path;
  r->fd_ = fd;
  r->base_ = static_cast<const uint8_t*>(p);
  r->size_ = h.segment_size;
  r->file_uid_ = uint32_t(st.st_uid);
  r->file_dev_ = st.st_dev;
  r->file_ino_ = st.st_ino;
  r->file_ctime_ns_ = int64_t(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  r->header_ = h;
  r->header_.cmdline[pr::kCmdlineBytes - 1] = '\0';
  return r;
}

SegmentReader::~SegmentReader() {
  if (base_ != nullptr) ::munmap(const_cast<uint8_t*>(base_), size_);
  if (fd_ >= 0) ::close(fd_);
}

std::string SegmentReader::command() const {
  return printable_text(
      std::string_view(header_.cmdline, strnlen(header_.cmdline, pr::kCmdlineBytes)), ' ');
}

const std::string& SegmentReader::tag(uint32_t id) const {
  return id < strings_.size() ? strings_[id] : strings_[0];
}

void SegmentReader::refresh_strings() {
  uint32_t count =
      pr::load_u32(&at<pr::SegmentHeader>(base_, 0)->string_count, std::memory_order_acquire);
  count = std::min(count, pr::kStringCapacity);
  const auto* slots = at<pr::StringSlot>(base_, header_.strings_offset);
  // Append-only table: only slots not yet seen are read.
  for (uint32_t id = uint32_t(strings_.size()); id < count; ++id) {
    pr::StringSlot s = pr::copy_words_out(&slots[id]);
    size_t len = std::min<size_t>(s.len, pr::kStringMaxLen);
    len = strnlen(s.text, len);
    strings_.push_back(printable_text(std::string_view(s.text, len), '?'));
  }
}

bool SegmentReader::valid_record(const pr::BufferRecord& r, const SegmentState& st) const {
  if (r.device >= pr::kMaxDevices || !st.devices[r.device]) return false;
  if (r.kind >= pr::kNumKinds) return false;
  if (r.tag != 0 && r.tag >= strings_.size()) return false;
  // The reserved range must not wrap the address space.
  if (r.address > UINT64_MAX - r.size_per_bank) return false;
  return true;
}

namespace {
// Unique over every reader of the process: numbers for reads (SegmentState::filled_by_read) and
// for device slots put into a state (SegmentState::device_marks).
uint64_t unique_number() {
  static std::atomic<uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

// Puts device d's slot (or nothing) into *out with a new mark: the one way a reader changes a
// state's devices.
void put_device(SegmentState* out, uint32_t d, const std::optional<pr::DeviceSlot>& slot) {
  out->devices[d] = slot;
  out->device_marks[d] = unique_number();
}
}  // namespace

void SegmentReader::read_device(uint32_t d, SegmentState* out, bool out_is_last_read) const {
  const auto* slots = at<pr::DeviceSlot>(base_, header_.devices_offset);
  const auto* counters = at<pr::KindCounters>(base_, header_.counters_offset);
  const auto* heads = at<pr::RingHead>(base_, header_.ring_heads_offset);
  CachedSlot& cached = slot_cache_[d];
  const uint64_t word0 = pr::load_word(reinterpret_cast<const uint64_t*>(&slots[d]),
                                       std::memory_order_acquire);
  if (cached.valid && cached.word0 == word0 && !(word0 & 1)) {
    // Not written since it was read (a write moves the sequence twice): only what moves with
    // every event is read again.
    if (cached.slot) {
      for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
        out->counters[d][k] = pr::copy_words_out(&counters[d * pr::kNumKinds + k]);
      }
      out->ring_heads[d] = pr::load_word(&heads[d].head, std::memory_order_acquire);
    }
    // The last read put the cached slot (or nothing) into *out, and it has not changed since.
    if (!out_is_last_read) put_device(out, d, cached.slot);
    return;
  }
  put_device(out, d, std::nullopt);
  const std::optional<pr::DeviceSlot> previous = cached.slot;  // the last stable reading
  cached.valid = false;
  // The cache changes below. Unless *out is the state this reader filled last, that state may
  // not hold what the cache will (SegmentReader::device() reads into a state of its own), so the
  // next read into it copies every slot.
  if (out->filled_by_read != last_read_) last_read_ = 0;
  pr::DeviceSlot slot;
  // The slot, or while it is being re-registered (or was left half written by a writer that died
  // there) the header's `registering` copy, which the client writes completely first
  // (protocol/segment.h). A writer re-registering in a loop writes one of the two at a time, so
  // trying them in turn finds a stable one even when each read is slower than a write.
  const pr::DeviceSlot* registering = &at<pr::SegmentHeader>(base_, 0)->registering;
  bool ok = false, from_slot = false;
  for (int i = 0; i < kDeviceReadRetries && !ok; ++i) {
    from_slot = pr::seqlock_read32(&slots[d], &slot);
    ok = from_slot || (pr::seqlock_read32(registering, &slot) && slot.logical_id == d);
  }
  if (!ok && previous) {
    // Each copy was being written again during every try: the writer re-registers faster than
    // this reader can copy 512 bytes (a tight loop, or a reader slowed by a sanitizer). The
    // descriptor the device had at the last stable reading stands, as if this read came a
    // moment earlier; dropping the device would reject all of its records.
    slot = *previous;
    ok = true;
  }
  // Only a reading of the slot itself, at the first word checked above, can stand for later
  // reads: not one of the `registering` copy, nor one the slot changed under.
  const bool cacheable = from_slot && std::memcmp(&slot, &word0, sizeof word0) == 0;
  if (!ok) return;
  if (!(slot.flags & pr::kDeviceRegistered) || slot.logical_id != d) {
    cached = CachedSlot{cacheable, word0, std::nullopt};
    return;
  }
  // Every load from the mapping before the board text is made: a load that faults must find no
  // string alive in this frame (collector/mapping_guard.h).
  for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
    out->counters[d][k] = pr::copy_words_out(&counters[d * pr::kNumKinds + k]);
  }
  out->ring_heads[d] = pr::load_word(&heads[d].head, std::memory_order_acquire);
  slot.board[sizeof slot.board - 1] = '\0';
  std::string board = printable_text(std::string_view(slot.board, strlen(slot.board)), '?');
  std::memcpy(slot.board, board.data(), board.size());  // same length: replaced in place
  put_device(out, d, slot);
  // Kept even when not cacheable: the last stable reading stands in for a read that finds none.
  cached = CachedSlot{cacheable, word0, slot};
}

namespace {
constexpr const char* kTruncatedWhileRead =
    "segment was truncated while being read (only a foreign writer shrinks one); remove it";
}

bool SegmentReader::read_without_records(SegmentState* out, std::string* error) {
  struct stat st;
  if (truncated_ || ::fstat(fd_, &st) != 0 || uint64_t(st.st_size) < size_) {
    *error = truncated_ ? kTruncatedWhileRead : "segment was truncated after it was opened";
    truncated_ = true;
    return false;
  }
  // Read numbers are unique, so neither a state made afresh (0) nor one another reader filled
  // since, nor a copy of an older fill, passes for this reader's last.
  const bool out_is_last_read = last_read_ != 0 && out->filled_by_read == last_read_;
  out->filled_by_read = 0;  // until this read completes
  // The size just checked can shrink before the loads below: they are guarded.
  truncated_ = !guarded(base_, size_, [&] {
    const auto* h = at<pr::SegmentHeader>(base_, 0);
    out->process_state = pr::load_u32(&h->state, std::memory_order_acquire);
    out->process_counters = pr::copy_words_out(&h->counters);
    refresh_strings();
    for (uint32_t d = 0; d < pr::kMaxDevices; ++d) read_device(d, out, out_is_last_read);
    uint32_t high = pr::load_u32(&h->slab_high_water, std::memory_order_acquire);
    out->record_slots = std::min(high, header_.slab_capacity);
  });
  if (!truncated_) {
    last_read_ = unique_number();
    out->filled_by_read = last_read_;
  }
  // Nothing is known of the records until they are scanned.
  out->records.clear();
  out->torn_records = 0;
  out->corrupt_records = 0;
  if (truncated_) *error = kTruncatedWhileRead;
  return !truncated_;
}

bool SegmentReader::read(SegmentState* out, std::string* error) {
  if (!read_without_records(out, error)) return false;
  // The counters say how many records are live: reserving that (plus headroom for allocations
  // made while we scan) avoids regrowth copies, which at 100,000 buffers cost more than the scan.
  // The counters are hostile input like the rest, so the guess is clamped to the slots scanned.
  const uint32_t high = out->record_slots;
  uint64_t live = 0;
  for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
    if (!out->devices[d]) continue;
    for (uint32_t k = 0; k < pr::kNumKinds; ++k) {
      live += std::min<uint64_t>(out->counters[d][k].live_count, high);
    }
  }
  const size_t wanted = std::min<uint64_t>(high, live + live / 16 + 64);
  if (wanted > out->records.capacity()) {
    out->records.reserve(wanted);
    advise_huge_pages(out->records.data(), out->records.capacity() * sizeof(pr::BufferRecord));
  }
  if (!for_each_live_record(out, [out](const pr::BufferRecord& r) { out->records.push_back(r); })) {
    *error = kTruncatedWhileRead;
    return false;
  }
  return true;
}

bool SegmentReader::read_live_record(const pr::BufferRecord& slot, SegmentState* st,
                                     pr::BufferRecord* record) {
  bool ok = false;
  for (int t = 0; t < kReadRetries && !ok; ++t) ok = pr::seqlock_read32(&slot, record);
  if (!ok) {
    uint64_t again = pr::load_word(reinterpret_cast<const uint64_t*>(&slot));
    if (!(again & 1)) ++st->torn_records;  // still changing under us, not merely in progress
    return false;
  }
  if (!(record->flags & pr::kRecordLive)) return false;
  // A tag interned after this read began: strings are published before the records that
  // use them, so reading the table again finds it.
  if (record->tag >= strings_.size()) refresh_strings();
  // Likewise a device registered after the device slots were read: the client registers a
  // device before it writes any record on it, so reading its slot again finds it.
  if (record->device < pr::kMaxDevices && !st->devices[record->device]) {
    read_device(record->device, st);
  }
  if (!valid_record(*record, *st)) {
    ++st->corrupt_records;
    return false;
  }
  return true;
}

void SegmentReader::drain(const EventSink& sink) {
  if (truncated_) return;
  // `sink` sees private copies only, so no frame of it is alive when a load faults.
  truncated_ = !guarded(base_, size_, [&] { drain_guarded(sink); });
}

void SegmentReader::drain_guarded(const EventSink& sink) {
  const auto* heads = at<pr::RingHead>(base_, header_.ring_heads_offset);
  const uint64_t cap = header_.ring_capacity;
  for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
    uint64_t head = pr::load_word(&heads[d].head, std::memory_order_acquire);
    uint64_t& cursor = cursors_[d];
    if (head < cursor) {  // only a foreign writer moves a head backwards
      cursor = head;
      continue;
    }
    uint64_t start = std::max(cursor, head > cap ? head - cap : 0);
    dropped_[d] += start - cursor;
    const auto* ring = at<pr::EventRecord>(base_, header_.rings_offset) + d * cap;
    for (uint64_t i = start; i < head; ++i) {
      const pr::EventRecord* slot = &ring[i & (cap - 1)];
      uint64_t want = 2 * i + 2;
      if (pr::load_word(&slot->seq, std::memory_order_acquire) != want) {
        ++dropped_[d];  // overwritten by a newer event while we read
        continue;
      }
      pr::EventRecord ev = pr::copy_words_out(slot, 1);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (pr::load_word(&slot->seq, std::memory_order_relaxed) != want) {
        ++dropped_[d];
        continue;
      }
      ev.seq = want;
      // Strings are published before the events that use them: a tag newer than the table
      // read last is there now.
      if (ev.tag >= strings_.size()) refresh_strings();
      if (sink) sink(d, ev);
    }
    cursor = head;
  }
}

uint64_t SegmentReader::change_stamp() const {
  // A stamp no read can have taken before: the caller reads, and the read reports the file.
  constexpr uint64_t kTruncatedStamp = ~uint64_t{0};
  if (truncated_) return kTruncatedStamp;
  const auto* h = at<pr::SegmentHeader>(base_, 0);
  const auto* heads = at<pr::RingHead>(base_, header_.ring_heads_offset);
  const auto* slots = at<pr::DeviceSlot>(base_, header_.devices_offset);
  uint64_t stamp = 0;
  truncated_ = !guarded(base_, size_, [&] {
    stamp = pr::load_u32(&h->state, std::memory_order_acquire);
    for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
      stamp += pr::load_word(&heads[d].head, std::memory_order_acquire);
      stamp += pr::load_word(reinterpret_cast<const uint64_t*>(&slots[d]));
    }
  });
  return truncated_ ? kTruncatedStamp : stamp;
}

std::array<uint64_t, pr::kMaxDevices> SegmentReader::ring_heads() const {
  std::array<uint64_t, pr::kMaxDevices> out{};
  if (truncated_) return out;
  const auto* heads = at<pr::RingHead>(base_, header_.ring_heads_offset);
  truncated_ = !guarded(base_, size_, [&] {
    for (uint32_t d = 0; d < pr::kMaxDevices; ++d) {
      out[d] = pr::load_word(&heads[d].head, std::memory_order_acquire);
    }
  });
  if (truncated_) out = {};
  return out;
}

bool SegmentReader::read_events(uint32_t device, uint64_t from, uint64_t to,
                                const EventSink& sink) {
  const uint64_t cap = header_.ring_capacity;
  if (truncated_ || device >= pr::kMaxDevices || to < from || to - from > cap) return false;
  const auto* ring = at<pr::EventRecord>(base_, header_.rings_offset) + device * cap;
  bool complete = true;
  // `sink` sees private copies only (as in drain()): no frame of it is alive when a load faults.
  // The buffer is the reader's, reused: an incremental refresh of 56 processes calls this for
  // each of their 32 devices with a few events each.
  std::vector<pr::EventRecord>& events = event_buffer_;
  events.clear();
  events.reserve(size_t(to - from));
  truncated_ = !guarded(base_, size_, [&] {
    for (uint64_t i = from; i < to && complete; ++i) {
      const pr::EventRecord* slot = &ring[i & (cap - 1)];
      const uint64_t want = 2 * i + 2;
      // The sequence before and after the copy, as drain() checks it: overwritten by a newer
      // event before or while we read it.
      if (pr::load_word(&slot->seq, std::memory_order_acquire) != want) {
        complete = false;
        break;
      }
      pr::EventRecord ev = pr::copy_words_out(slot, 1);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (pr::load_word(&slot->seq, std::memory_order_relaxed) != want) {
        complete = false;
        break;
      }
      ev.seq = want;
      if (ev.tag >= strings_.size()) refresh_strings();
      events.push_back(ev);
    }
  });
  if (truncated_ || !complete) return false;
  for (const pr::EventRecord& ev : events) sink(device, ev);
  // A reader that once caught up with a whole ring does not keep that much for good.
  if (events.capacity() > 4096) std::vector<pr::EventRecord>().swap(events);
  return true;
}

void SegmentReader::prefetch_events(uint32_t device, uint64_t from, uint64_t to) const {
  const uint64_t cap = header_.ring_capacity;
  if (truncated_ || device >= pr::kMaxDevices || to <= from || cap == 0) return;
  const auto* ring = at<pr::EventRecord>(base_, header_.rings_offset) + device * cap;
  to = std::min(to, from + 256);
  for (uint64_t i = from; i < to; ++i) {
    const char* slot = reinterpret_cast<const char*>(&ring[i & (cap - 1)]);
    __builtin_prefetch(slot);
    __builtin_prefetch(slot + sizeof(pr::EventRecord) - 1);
  }
}

uint64_t SegmentReader::dropped_total() const {
  uint64_t total = 0;
  for (uint64_t v : dropped_) total += v;
  return total;
}

}  // namespace ttmem::collector
