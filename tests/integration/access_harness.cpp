#include "access_harness.h"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <vector>

#include "protocol/segment.h"

namespace ttmem::test {

namespace fs = std::filesystem;

FileMode file_mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return {mode_t(st.st_mode & 07777), st.st_gid, st.st_uid};
}

std::optional<gid_t> another_group() {
  const gid_t mine = ::getegid();
  if (::geteuid() == 0) {
    // Not nogroup first: tests run commands as nobody, whose own group it is.
    for (const char* name : {"users", "daemon", "adm", "nogroup"}) {
      if (group* g = ::getgrnam(name); g != nullptr && g->gr_gid != mine) return g->gr_gid;
    }
    return std::nullopt;
  }
  int n = ::getgroups(0, nullptr);
  std::vector<gid_t> groups(size_t(n > 0 ? n : 0));
  n = ::getgroups(int(groups.size()), groups.data());
  for (int i = 0; i < n; ++i) {
    if (groups[size_t(i)] != mine) return groups[size_t(i)];
  }
  return std::nullopt;
}

std::string only_segment(const std::string& dir) {
  std::string found;
  int count = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".seg") {
      found = e.path().string();
      ++count;
    }
  }
  return count == 1 ? found : "";
}

std::unique_ptr<Child> start_load(const std::string& dir, const std::string& truth,
                                  std::map<std::string, std::string> env) {
  env["TTMEM_DIR"] = dir;
  auto load = std::make_unique<Child>(
      std::vector<std::string>{TTMEM_TESTLOAD, "--devices", "2", "--threads", "2", "--ops", "300",
                               "--phases", "1", "--truth", truth},
      env);
  EXPECT_TRUE(load->expect_line("done")) << "ttmem_testload did not finish its phase";
  return load;
}

std::string forge_segment(const std::string& real, const std::string& dir, pid_t pid,
                          uint64_t start_time) {
  std::string path = dir + "/" + protocol::kSegmentPrefix + std::to_string(pid) + "-" +
                     std::to_string(start_time) + protocol::kSegmentSuffix;
  fs::copy_file(real, path, fs::copy_options::overwrite_existing);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  uint32_t pid32 = uint32_t(pid);
  EXPECT_EQ(::pwrite(fd, &pid32, sizeof pid32, offsetof(protocol::SegmentHeader, pid)),
            ssize_t(sizeof pid32));
  EXPECT_EQ(
      ::pwrite(fd, &start_time, sizeof start_time, offsetof(protocol::SegmentHeader, start_time)),
      ssize_t(sizeof start_time));
  ::close(fd);
  return path;
}

}  // namespace ttmem::test
