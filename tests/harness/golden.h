// Golden files: text a program prints, compared with a file kept in tests/golden/.
//
// After an intended change of the output, rewrite them and review the change:
//   TTMEM_UPDATE_GOLDEN=1 ctest --test-dir build -R <tests>; git diff tests/golden
// A comparison that rewrites its golden file checked nothing, so it fails, saying what it wrote:
// an update is never mistaken for a pass, and the failures list the files changed.
#pragma once

#include <string>

namespace ttmem::test {

// Set to 1, comparisons that differ rewrite their golden files instead (and fail).
inline constexpr char kUpdateGoldenVariable[] = "TTMEM_UPDATE_GOLDEN";

// Compares `actual` with tests/golden/NAME.
void expect_golden(const std::string& name, const std::string& actual);

// Compares `actual` with the file at `path`, as a non-fatal failure: a mismatch names the first
// differing line; a missing file says how to create it; with TTMEM_UPDATE_GOLDEN=1 a missing or
// different file is written and the comparison fails all the same.
void expect_golden_file(const std::string& path, const std::string& actual);

// Where two texts first differ, by line ("" if they are equal).
std::string first_difference(const std::string& golden, const std::string& actual);

}  // namespace ttmem::test
