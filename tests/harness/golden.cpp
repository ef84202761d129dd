#include "golden.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace ttmem::test {

namespace {

bool updating() {
  const char* v = std::getenv(kUpdateGoldenVariable);
  return v != nullptr && std::string(v) == "1";
}

// Lines without their '\n'; the text after the last '\n' is a line too (empty when the text
// ends with one), so a missing final newline shows as a difference.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    lines.push_back(text.substr(start, nl - start));
  }
  lines.push_back(text.substr(start));
  return lines;
}

// The command that rewrites the golden files of the running test.
std::string update_command() {
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string filter =
      test == nullptr ? "<test>" : std::string(test->test_suite_name()) + "." + test->name();
  return std::string(kUpdateGoldenVariable) + "=1 ctest --test-dir build -R '" + filter + "'";
}

}  // namespace

std::string first_difference(const std::string& golden, const std::string& actual) {
  if (golden == actual) return "";
  const auto g = lines_of(golden), a = lines_of(actual);
  size_t i = 0;
  while (i < g.size() && i < a.size() && g[i] == a[i]) ++i;
  std::ostringstream out;
  out << "line " << i + 1 << " of " << g.size() << " (golden) and " << a.size() << " (actual):\n";
  out << "  golden: " << (i < g.size() ? "\"" + g[i] + "\"" : "(ends before it)") << "\n";
  out << "  actual: " << (i < a.size() ? "\"" + a[i] + "\"" : "(ends before it)");
  return out.str();
}

void expect_golden(const std::string& name, const std::string& actual) {
  expect_golden_file(std::string(TTMEM_GOLDEN_DIR) + "/" + name, actual);
}

void expect_golden_file(const std::string& path, const std::string& actual) {
  const bool exists = std::filesystem::exists(path);
  std::string golden;
  if (exists) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    golden = s.str();
  }
  // A file that already matches was compared like in any run: it passes, so an update run
  // fails exactly for the files it wrote, and lists them.
  if (updating() && !(exists && golden == actual)) {
    std::ofstream out(path, std::ios::binary);
    if (!(out << actual).flush()) {
      ADD_FAILURE() << kUpdateGoldenVariable << "=1: cannot write " << path;
      return;
    }
    std::string change =
        exists ? "rewrote it, first change at " + first_difference(golden, actual) : "created it";
    ADD_FAILURE() << kUpdateGoldenVariable << "=1: " << path << ": " << change
                  << "\nreview with `git diff tests/golden`, then unset " << kUpdateGoldenVariable
                  << " to check it";
    return;
  }
  if (!exists) {
    ADD_FAILURE() << path << " is missing; create it with " << update_command()
                  << ", review it and commit it";
    return;
  }
  if (golden != actual) {
    ADD_FAILURE() << "output differs from " << path << " at " << first_difference(golden, actual)
                  << "\nif the change is intended: " << update_command();
  }
}

}  // namespace ttmem::test
