#include "collector/leak_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <tuple>

#include "collector/json.h"

namespace ttmem::collector {

namespace fs = std::filesystem;

namespace {

constexpr const char* kLeakSuffix = ".leaks.json";

bool is_leak_file(const fs::directory_entry& e) {
  const std::string name = e.path().filename().string();
  return name.size() > std::strlen(kLeakSuffix) &&
         name.compare(name.size() - std::strlen(kLeakSuffix), std::string::npos, kLeakSuffix) == 0;
}

struct LeakFileEntry {
  std::string path;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

// The leak files of `dir`, oldest first (names break ties, so the order is stable). Each is
// stat'ed once, before sorting: another collector prunes and writes files meanwhile, and a
// comparison that looked again could see another time, or none, from one call to the next,
// which std::sort does not survive (it ran off the vector and crashed the soak's collector).
std::vector<LeakFileEntry> leak_files(const std::string& dir) {
  std::vector<LeakFileEntry> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    struct stat st;
    if (!is_leak_file(*it) || ::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      continue;  // not a leak file, or gone already
    }
    files.push_back({it->path().string(), uint64_t(st.st_size),
                     int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec});
  }
  std::sort(files.begin(), files.end(), [](const LeakFileEntry& a, const LeakFileEntry& b) {
    return std::tie(a.mtime_ns, a.path) < std::tie(b.mtime_ns, b.path);
  });
  return files;
}

// Leak records are as readable as the segments they come from: when the segment directory is
// shared with a group (set-gid, group-readable; see common/access.h), so are they. The set-gid
// directory gives them its group.
mode_t group_read_of_parent(const std::string& dir) {
  struct stat st;
  std::string parent = fs::path(dir).parent_path().string();
  if (::stat(parent.c_str(), &st) != 0) return 0;
  return (st.st_mode & S_ISGID) && (st.st_mode & S_IRGRP) ? S_IRGRP : 0;
}

// A leak file that cannot be used; what() is the problem to report.
class UnusableLeakFile : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string malformed_problem(std::string_view why) {
  return fmt::format("malformed leak file ({}); remove it", why);
}

[[noreturn]] void malformed(std::string_view why) {
  throw UnusableLeakFile(malformed_problem(why));
}

constexpr int kFormatVersion = 2;
// Where a reader stops looking for the end of the header line (~100 bytes as written).
constexpr size_t kMaxHeaderBytes = 4096;

// The fewest bytes a record line can take: leak_from_json requires every field, so no record is
// shorter than the one with zero numbers, empty strings and the shortest kind name. Bounds the
// count a header may claim for the bytes that follow it.
uint64_t min_record_line_bytes() {
  static const uint64_t bytes = [] {
    size_t fewest = SIZE_MAX;
    for (uint32_t kind = 0; kind < kNumKinds; ++kind) {
      LeakRecord shortest;
      shortest.kind = kind;
      fewest = std::min(fewest, to_json(shortest).dump().size());
    }
    return uint64_t(fewest) + 1;  // its newline
  }();
  return bytes;
}

struct Header {
  uint64_t count = 0;
  size_t length = 0;  // of the header line, its newline included
};

// The version-2 header at the start of a file of file_size bytes, checked against that size;
// nullopt when the file does not start with one (version 1, or no leak file at all). Throws
// UnusableLeakFile when the header cannot be believed.
std::optional<Header> parse_header(std::string_view start, uint64_t file_size) {
  const size_t newline = start.substr(0, kMaxHeaderBytes).find('\n');
  if (newline == std::string_view::npos) return std::nullopt;
  const nlohmann::json header = nlohmann::json::parse(start.data(), start.data() + newline, nullptr,
                                                      /*allow_exceptions=*/false);
  if (!header.is_object() || !header.contains("version")) return std::nullopt;
  const nlohmann::json& version = header["version"];
  if (version == 1) return std::nullopt;
  if (version != kFormatVersion) {
    malformed(fmt::format("version {} is not one this ttmem reads", version.dump().substr(0, 32)));
  }
  const auto whole_number = [&](const char* key) {
    auto it = header.find(key);
    if (it == header.end() || !it->is_number_unsigned()) {
      malformed(fmt::format("the header's '{}' must be a whole number", key));
    }
    return it->get<uint64_t>();
  };
  Header h;
  h.count = whole_number("count");
  h.length = newline + 1;
  const uint64_t bytes = whole_number("bytes");
  if (bytes != file_size - h.length) {
    malformed(fmt::format("the header says {} bytes of records follow it, the file has {}", bytes,
                          file_size - h.length));
  }
  if (h.count > bytes / min_record_line_bytes()) {
    malformed(fmt::format("{} records cannot fit in {} bytes", h.count, bytes));
  }
  return h;
}

// A leak file opened for reading, with its size checked.
class LeakFile {
 public:
  explicit LeakFile(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    struct stat st;
    if (fd_ < 0 || ::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd_ >= 0) ::close(fd_);
      throw UnusableLeakFile("leak file unreadable; check its permissions or remove it");
    }
    size_ = uint64_t(st.st_size);
  }
  ~LeakFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  LeakFile(const LeakFile&) = delete;
  LeakFile& operator=(const LeakFile&) = delete;

  uint64_t size() const { return size_; }

  // Its first min(max_bytes, size) bytes (fewer if it shrank since it was opened).
  std::string read(uint64_t max_bytes) const { return read_at(0, max_bytes); }

  // Up to max_bytes from `offset`, within the size it had when opened.
  std::string read_at(uint64_t offset, uint64_t max_bytes) const {
    std::string text(offset < size_ ? std::min(max_bytes, size_ - offset) : 0, '\0');
    size_t got = 0;
    while (got < text.size()) {
      ssize_t n = ::pread(fd_, text.data() + got, text.size() - got, off_t(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += size_t(n);
    }
    text.resize(got);
    return text;
  }

 private:
  int fd_;
  uint64_t size_ = 0;
};

// Every record of a file, whatever its version; throws UnusableLeakFile or
// nlohmann::json::exception.
std::vector<LeakRecord> parse_records(const LeakFile& file) {
  std::vector<LeakRecord> records;
  const std::optional<Header> header = parse_header(file.read(kMaxHeaderBytes), file.size());
  if (!header) {
    if (file.size() > LeakStore::kMaxVersion1Bytes) {
      throw UnusableLeakFile(fmt::format(
          "version-1 leak file of {} B is larger than the {} B this ttmem parses as one "
          "document; its records are not shown. Read it with an older ttmem, or remove it",
          file.size(), LeakStore::kMaxVersion1Bytes));
    }
    const nlohmann::json document = nlohmann::json::parse(file.read(file.size()));
    for (const auto& j : document.at("leaks")) records.push_back(leak_from_json(j));
    return records;
  }
  records.reserve(header->count);  // bounded by the file's size (parse_header)
  // A chunk at a time: besides the records, a reader holds at most a chunk and one line.
  std::string pending;
  for (uint64_t offset = header->length; offset < file.size();) {
    const std::string chunk = file.read_at(offset, LeakStore::kReadChunkBytes);
    if (chunk.empty()) break;  // shrank since it was opened: the count check below fails
    offset += chunk.size();
    pending += chunk;
    size_t line = 0;
    for (size_t newline; (newline = pending.find('\n', line)) != std::string::npos;
         line = newline + 1) {
      if (records.size() == header->count) {
        malformed(fmt::format("more records than the header's count of {}", header->count));
      }
      records.push_back(
          leak_from_json(nlohmann::json::parse(pending.data() + line, pending.data() + newline)));
    }
    pending.erase(0, line);
    if (pending.size() > LeakStore::kMaxRecordLineBytes) {
      malformed(fmt::format("a record line longer than {} B", LeakStore::kMaxRecordLineBytes));
    }
  }
  if (!pending.empty()) malformed("its last record has no newline");
  if (records.size() != header->count) {
    malformed(fmt::format("{} records where the header says {}", records.size(), header->count));
  }
  return records;
}

// The number of records in a file: from its header, or by parsing a version-1 file.
uint64_t count_records(const LeakFile& file) {
  if (auto header = parse_header(file.read(kMaxHeaderBytes), file.size())) return header->count;
  return parse_records(file).size();
}

// Runs `read` on the file at `path`; returns "" or the problem that makes the file unusable.
template <class Read>
std::string read_leak_file(const std::string& path, Read&& read) {
  try {
    read(LeakFile(path));
    return {};
  } catch (const UnusableLeakFile& e) {
    return e.what();
  } catch (const nlohmann::json::exception& e) {
    return malformed_problem(e.what());
  }
}

}  // namespace

std::string LeakStore::save(const std::vector<LeakRecord>& leaks, std::string_view source) {
  if (leaks.empty()) return {};
  const mode_t group_read = group_read_of_parent(dir_);
  const mode_t dir_mode = 0700 | (group_read ? S_ISGID | S_IRGRP | S_IXGRP : 0);
  if (::mkdir(dir_.c_str(), dir_mode) != 0 && errno != EEXIST) {
    return fmt::format("cannot create {}: {}", dir_, std::strerror(errno));
  }
  // One record a line: dump() escapes every control character in a string, so a record never
  // holds a newline of its own.
  std::string records;
  for (const auto& l : leaks) {
    records += to_json(l).dump();
    records += '\n';
  }
  const nlohmann::json header = {{"version", kFormatVersion},
                                 {"count", leaks.size()},
                                 {"bytes", records.size()},
                                 {"pid", leaks[0].pid},
                                 {"process_start_time", leaks[0].process_start_time}};
  std::string name = fmt::format("ttmem-{}-{}{}{}{}", leaks[0].pid, leaks[0].process_start_time,
                                 source.empty() ? "" : "-", source, kLeakSuffix);
  std::string path = dir_ + "/" + name;
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << header.dump() << '\n' << records;
    out.flush();
    if (!out) {
      ::unlink(tmp.c_str());
      return fmt::format("cannot write {} (is the file system full?)", tmp);
    }
  }
  ::chmod(tmp.c_str(), 0600 | group_read);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return fmt::format("cannot rename {}: {}", tmp, std::strerror(errno));
  }
  for (const std::string& beyond : scan()) {
    std::error_code ec;
    fs::remove(beyond, ec);
  }
  return {};
}

std::vector<std::string> LeakStore::scan() const {
  const auto files = leak_files(dir_);
  std::map<std::string, CachedFile> seen;
  std::vector<std::string> beyond, retained;
  bool retained_file_read = false;
  size_t records = 0;
  for (auto f = files.rbegin(); f != files.rend(); ++f) {
    const std::string& path = f->path;
    const bool full = !retained.empty() && (retained.size() == kMaxFiles || records >= kMaxRecords);
    if (full) {
      beyond.push_back(path);
      continue;
    }
    auto cached = cache_.find(path);
    const bool unchanged = cached != cache_.end() && cached->second.size == f->size &&
                           cached->second.mtime_ns == f->mtime_ns;
    CachedFile file;
    if (unchanged) {
      file = std::move(cached->second);
    } else {
      file.size = f->size;
      file.mtime_ns = f->mtime_ns;
      file.error = read_leak_file(
          path, [&](const LeakFile& leak_file) { file.count = count_records(leak_file); });
    }
    if (!retained.empty() && records + file.count > kMaxRecords) {
      // The first file that does not fit: every older one is beyond the bounds too. It stays
      // cached (its count, not its records), so a reader that does not prune does not read it
      // again.
      records = kMaxRecords;
      file.records.reset();
      beyond.push_back(path);
    } else {
      records += file.count;
      retained.push_back(path);
      retained_file_read |= !unchanged;
    }
    seen.emplace(path, std::move(file));
  }
  std::reverse(retained.begin(), retained.end());
  list_stale_ |= retained_file_read || retained != retained_;
  retained_ = std::move(retained);
  cache_ = std::move(seen);  // files that are gone, or beyond the bounds, leave the cache
  return beyond;
}

void LeakStore::rebuild_list() const {
  LeakList::Files files;
  files.reserve(retained_.size());
  for (const std::string& path : retained_) {
    CachedFile& file = cache_.at(path);
    if (!file.records && file.error.empty()) {
      file.error = read_leak_file(path, [&](const LeakFile& leak_file) {
        file.records = std::make_shared<const LeakList::Records>(parse_records(leak_file));
      });
      // The file may have been replaced since its header was read; what was parsed counts.
      file.count = file.records ? file.records->size() : 0;
    }
    if (file.records) files.push_back(file.records);
  }
  list_ = LeakList(std::move(files));
  list_stale_ = false;
}

void LeakStore::report_problems(std::vector<SegmentProblem>* problems) const {
  for (const std::string& path : retained_) {
    const CachedFile& file = cache_.at(path);
    if (!file.error.empty()) problems->push_back({path, file.error, {}, /*leaks=*/true});
  }
}

LeakList LeakStore::load(std::vector<SegmentProblem>* problems) const {
  scan();
  if (list_stale_) rebuild_list();
  report_problems(problems);
  return list_;
}

LeakList LeakStore::load_count(std::vector<SegmentProblem>* problems) const {
  scan();
  uint64_t count = 0;
  for (const std::string& path : retained_) {
    const CachedFile& file = cache_.at(path);
    if (file.error.empty()) count += file.count;
  }
  report_problems(problems);
  return LeakList::counted_only(count);
}

size_t LeakStore::clear() {
  size_t n = 0;
  for (const auto& f : leak_files(dir_)) {
    std::error_code ec;
    if (fs::remove(f.path, ec)) ++n;
  }
  return n;
}

}  // namespace ttmem::collector
