#include "common/access.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/proc.h"

namespace ttmem::common {
namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 10 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Looks a group name up; nullopt when there is no such group.
std::optional<gid_t> group_by_name(const std::string& name) {
  long hint = ::sysconf(_SC_GETGR_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? size_t(hint) : 1024);
  for (;;) {
    group entry{};
    group* found = nullptr;
    int rc = ::getgrnam_r(name.c_str(), &entry, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 || found == nullptr) return std::nullopt;
    return found->gr_gid;
  }
}

bool is_member(gid_t gid) {
  if (::geteuid() == 0 || ::getegid() == gid) return true;
  int n = ::getgroups(0, nullptr);
  if (n <= 0) return false;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  n = ::getgroups(n, groups.data());
  return n > 0 && std::find(groups.begin(), groups.begin() + n, gid) != groups.begin() + n;
}

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

std::optional<gid_t> resolve_group(const std::string& name_or_gid, std::string* error) {
  std::optional<gid_t> gid;
  if (all_digits(name_or_gid)) {
    unsigned long long v = std::stoull(name_or_gid);
    if (v < uint64_t(gid_t(-1))) gid = gid_t(v);
  } else {
    gid = group_by_name(name_or_gid);
  }
  if (!gid) {
    *error = "no group '" + name_or_gid + "': give an existing group name or numeric gid";
    return std::nullopt;
  }
  if (!is_member(*gid)) {
    *error = "this user is not a member of group '" + name_or_gid +
             "': add it to the group (usermod -aG) or give one of the groups listed by `id`";
    return std::nullopt;
  }
  return gid;
}

std::string prepare_segment_dir(const std::string& dir, std::optional<gid_t> group) {
  if (!make_private_dirs(dir)) {
    return "cannot create segment directory " + dir + " (" + errno_text() +
           "); set TTMEM_DIR to a writable directory";
  }
  // O_NOFOLLOW: a symlink planted at the path must not redirect segments elsewhere.
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return "segment directory " + dir + " is a symlink or cannot be opened (" + errno_text() +
           "); remove it or set TTMEM_DIR to a directory of your own";
  }
  struct stat st;
  std::string why;
  if (::fstat(fd, &st) != 0) {
    why = "cannot stat segment directory " + dir + " (" + errno_text() + ")";
  } else if (st.st_uid == ::geteuid()) {
    if (group) {
      mode_t mode = (st.st_mode & 07777) | S_ISGID | S_IRGRP | S_IXGRP;
      if ((st.st_gid != *group && ::fchown(fd, uid_t(-1), *group) != 0) ||
          ((st.st_mode & 07777) != mode && ::fchmod(fd, mode) != 0)) {
        why = "cannot give group " + std::to_string(*group) + " access to " + dir + " (" +
              errno_text() + ")";
      }
    }
  } else if (group && st.st_gid == *group && (st.st_mode & S_IWGRP) && (st.st_mode & S_IXGRP) &&
             (st.st_mode & S_ISVTX) && !(st.st_mode & S_IWOTH)) {
    // A shared group directory: members can add files but not remove or replace each other's.
  } else {
    why = "segment directory " + dir + " belongs to uid " + std::to_string(st.st_uid) +
          ", not to this user (uid " + std::to_string(::geteuid()) +
          "); remove it or set TTMEM_DIR to a directory of your own" +
          (group ? " (a directory shared by a group must be of that group with mode 3770)" : "");
  }
  ::close(fd);
  return why;
}

std::string share_file_with_group(int fd, gid_t group) {
  if (::fchown(fd, uid_t(-1), group) != 0 || ::fchmod(fd, 0640) != 0) {
    return "cannot give group " + std::to_string(group) + " read access (" + errno_text() + ")";
  }
  return {};
}

}  // namespace ttmem::common
