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
#include <sstream>

#include "collector/json.h"

namespace ttmem {

namespace fs = std::filesystem;

namespace {

constexpr const char* kLeakSuffix = ".leaks.json";

bool is_leak_file(const fs::directory_entry& e) {
  const std::string name = e.path().filename().string();
  return name.size() > std::strlen(kLeakSuffix) &&
         name.compare(name.size() - std::strlen(kLeakSuffix), std::string::npos, kLeakSuffix) == 0;
}

std::vector<fs::directory_entry> leak_files(const std::string& dir) {
  std::vector<fs::directory_entry> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && is_leak_file(*it)) files.push_back(*it);
  }
  // Oldest first; names break ties so the order is stable.
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
    std::error_code e1, e2;
    auto ta = a.last_write_time(e1), tb = b.last_write_time(e2);
    return ta != tb ? ta < tb : a.path() < b.path();
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

}  // namespace

LeakStore::Parsed LeakStore::parse_file(const std::string& path, uint64_t size,
                                        std::error_code size_error) {
  Parsed parsed;
  parsed.size = size;
  if (size_error || size > kMaxFileBytes) {
    parsed.error = "leak file too large or unreadable; remove it";
    return parsed;
  }
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  try {
    auto doc = nlohmann::json::parse(buf.str());
    for (const auto& j : doc.at("leaks")) parsed.records.push_back(leak_from_json(j));
  } catch (const nlohmann::json::exception& e) {
    parsed.records.clear();
    parsed.error = fmt::format("malformed leak file ({}); remove it", e.what());
  }
  parsed.count = parsed.records.size();
  return parsed;
}

std::string LeakStore::save(const std::vector<LeakRecord>& leaks) {
  if (leaks.empty()) return {};
  const mode_t group_read = group_read_of_parent(dir_);
  const mode_t dir_mode = 0700 | (group_read ? S_ISGID | S_IRGRP | S_IXGRP : 0);
  if (::mkdir(dir_.c_str(), dir_mode) != 0 && errno != EEXIST) {
    return fmt::format("cannot create {}: {}", dir_, std::strerror(errno));
  }
  nlohmann::json doc = {{"version", 1}, {"leaks", nlohmann::json::array()}};
  for (const auto& l : leaks) doc["leaks"].push_back(to_json(l));
  std::string name =
      fmt::format("ttmem-{}-{}{}", leaks[0].pid, leaks[0].process_start_time, kLeakSuffix);
  std::string path = dir_ + "/" + name;
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << doc.dump() << '\n';
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
  std::map<std::string, Parsed> seen;
  std::vector<std::string> beyond, retained;
  bool retained_file_parsed = false;
  size_t records = 0;
  for (auto f = files.rbegin(); f != files.rend(); ++f) {
    const std::string path = f->path().string();
    const bool full = !retained.empty() && (retained.size() == kMaxFiles || records >= kMaxRecords);
    if (full) {
      beyond.push_back(path);
      continue;
    }
    std::error_code ec1, ec2;
    uint64_t size = f->file_size(ec1);
    int64_t mtime = f->last_write_time(ec2).time_since_epoch().count();
    Parsed parsed;
    auto cached = cache_.find(path);
    bool usable = cached != cache_.end() && !ec1 && !ec2 && cached->second.size == size &&
                  cached->second.mtime_ns == mtime;
    if (usable && cached->second.records.size() != cached->second.count) {
      // Only its count was kept (it was beyond the bounds): enough while it still is.
      usable = !retained.empty() && records + cached->second.count > kMaxRecords;
    }
    if (usable) {
      parsed = std::move(cached->second);
    } else {
      parsed = parse_file(path, size, ec1);
      parsed.mtime_ns = mtime;
    }
    if (!retained.empty() && records + parsed.count > kMaxRecords) {
      // The first file that does not fit: every older one is beyond the bounds too. Its count
      // stays cached, so a reader that does not prune does not parse it again.
      records = kMaxRecords;
      parsed.records = std::vector<LeakRecord>();  // frees them, as clear() would not
      beyond.push_back(path);
    } else {
      records += parsed.count;
      retained.push_back(path);
      retained_file_parsed |= !usable;
    }
    seen.emplace(path, std::move(parsed));
  }
  std::reverse(retained.begin(), retained.end());
  list_stale_ |= retained_file_parsed || retained != retained_;
  retained_ = std::move(retained);
  cache_ = std::move(seen);  // files that are gone, or beyond the bounds, leave the cache
  return beyond;
}

LeakList LeakStore::load(std::vector<SegmentProblem>* problems) const {
  scan();
  if (list_stale_) {
    std::vector<LeakRecord> records;
    for (const std::string& path : retained_) {
      const Parsed& parsed = cache_.at(path);
      records.insert(records.end(), parsed.records.begin(), parsed.records.end());
    }
    list_ = LeakList(std::move(records));
    list_stale_ = false;
  }
  for (const std::string& path : retained_) {
    const Parsed& parsed = cache_.at(path);
    if (!parsed.error.empty()) problems->push_back({path, parsed.error});
  }
  return list_;
}

size_t LeakStore::clear() {
  size_t n = 0;
  for (const auto& f : leak_files(dir_)) {
    std::error_code ec;
    if (fs::remove(f.path(), ec)) ++n;
  }
  return n;
}

}  // namespace ttmem
