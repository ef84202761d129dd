#include "collector/daemon_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/proc.h"

namespace ttmem::collector {

namespace {

using nlohmann::json;

// The file is a few dozen bytes; anything longer is not ours.
constexpr size_t kMaxFileBytes = 4096;

std::string file_path(const std::string& dir) { return dir + "/" + kDaemonFileName; }

// The file's JSON if it is a regular file of this user or root, short enough; else null.
json read_file(const std::string& dir) {
  const int fd = ::open(file_path(dir).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return nullptr;
  struct stat st{};
  std::string text;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      (st.st_uid == ::getuid() || st.st_uid == 0) && size_t(st.st_size) <= kMaxFileBytes) {
    text.resize(size_t(st.st_size));
    if (::pread(fd, text.data(), text.size(), 0) != ssize_t(text.size())) text.clear();
  }
  ::close(fd);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : json(nullptr);
}

// A URL `ttmem status` may ask without a token: http:// to a loopback address.
bool loopback_url(const std::string& url) {
  for (const char* prefix : {"http://127.0.0.1:", "http://[::1]:", "http://localhost:"}) {
    if (url.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

}  // namespace

std::string write_daemon_file(const std::string& dir, const std::string& url) {
  const pid_t pid = ::getpid();
  const json j = {{"url", url},
                  {"pid", pid},
                  {"start_time", common::process_start_time(pid).value_or(0)}};
  const std::string text = j.dump() + "\n";
  const std::string tmp = fmt::format("{}.{}.tmp", file_path(dir), pid);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fmt::format("cannot create {}: {}", tmp, std::strerror(errno));
  const bool written = ::write(fd, text.data(), text.size()) == ssize_t(text.size());
  const int write_errno = errno;
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), file_path(dir).c_str()) != 0) {
    const int err = written ? errno : write_errno;
    ::unlink(tmp.c_str());
    return fmt::format("cannot write {}: {}", file_path(dir), std::strerror(err));
  }
  return "";
}

void remove_daemon_file(const std::string& dir) {
  const json j = read_file(dir);
  if (j.is_object() && j.value("pid", json(-1)) == json(::getpid())) {
    ::unlink(file_path(dir).c_str());
  }
}

std::optional<std::string> find_daemon_url(const std::string& dir) {
  const json j = read_file(dir);
  if (!j.is_object()) return std::nullopt;
  const json url = j.value("url", json()), pid = j.value("pid", json()),
             start = j.value("start_time", json());
  if (!url.is_string() || !pid.is_number_unsigned() || !start.is_number_unsigned()) {
    return std::nullopt;
  }
  const uint64_t p = pid.get<uint64_t>();
  if (p == 0 || p > uint64_t(INT32_MAX) || !loopback_url(url.get<std::string>()) ||
      common::process_liveness(pid_t(p), start.get<uint64_t>()) != common::Liveness::Alive) {
    return std::nullopt;
  }
  return url.get<std::string>();
}

}  // namespace ttmem::collector
