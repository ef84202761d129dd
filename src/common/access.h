// Who may read what ttmem writes. Everything is owner-only unless a group is configured
// (TTMEM_GROUP for the client, --legacy-socket-group for ttmemd); then the members of that one
// group may read segments, leak records and connect to the legacy socket. Policy and reasons:
// docs/security.md.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace ttmem::common {

// Resolves a group name or a decimal gid that this process may hand files to (root: any group;
// anyone else: one of its own groups). On failure returns nullopt and sets *error to a sentence
// saying what is wrong and what to do.
std::optional<gid_t> resolve_group(const std::string& name_or_gid, std::string* error);

// Makes `dir` (and its missing parents, mode 0700) ready to hold this user's segments. Returns ""
// or a sentence saying why it cannot be used and what to do.
//   - The directory itself is never followed through a symlink.
//   - Without a group it must belong to this user; it is created 0700.
//   - With a group, a directory of this user gets that group, set-gid and group read/search
//     (so files created in it inherit the group). A directory of another user is accepted only
//     as a shared group directory: of that group, group-writable, sticky (so no member can remove
//     or replace another member's segment) and not writable by others.
std::string prepare_segment_dir(const std::string& dir, std::optional<gid_t> group);

// Gives the group read access to an open file of this user (group `group`, mode 0640). Returns ""
// or what failed.
std::string share_file_with_group(int fd, gid_t group);

}  // namespace ttmem::common
