// Helpers for access-control tests: file modes, another group to share with, and forged
// segments (a real segment copied under another process's name).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "harness.h"

namespace ttmem::test {

struct FileMode {
  mode_t bits;  // permission, set-id and sticky bits
  gid_t gid;
  uid_t uid;
};
FileMode file_mode(const std::string& path);

// A group other than this process's effective group that it may hand files to: for root any
// existing group, otherwise a supplementary group. nullopt when there is none.
std::optional<gid_t> another_group();

// The only ttmem-*.seg file in `dir`; "" if there is not exactly one.
std::string only_segment(const std::string& dir);

// ttmem_testload (2 devices, one phase) tracked into `dir` with extra environment, once it has
// printed "done"; a test failure if it does not get there.
std::unique_ptr<Child> start_load(const std::string& dir, const std::string& truth,
                                  std::map<std::string, std::string> env = {});

// Copies the real segment `real` into `dir` under the name of process `pid` with start time
// `start_time`, rewriting the header's pid and start time to match, so that only the origin
// check can tell it from a real segment. Returns the copy's path.
std::string forge_segment(const std::string& real, const std::string& dir, pid_t pid,
                          uint64_t start_time);

}  // namespace ttmem::test
