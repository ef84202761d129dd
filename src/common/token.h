// Bearer tokens for ttmemd: the daemon's --token-file and the CLI's --token-file read the same way.
#pragma once

#include <string>

namespace ttmem::common {

// The file's first line without surrounding whitespace. Throws std::runtime_error saying what to
// do when the file is unreadable or that line is empty: never a silently missing token.
std::string read_token_file(const std::string& path);

}  // namespace ttmem::common
