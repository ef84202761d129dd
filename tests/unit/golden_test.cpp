// The golden-file helper every golden test uses: a mismatch, a missing file and an update run
// that writes a golden file all fail, each saying what to do.
#include "golden.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "temp_dir.h"

namespace ttmem::test {
namespace {

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// TTMEM_UPDATE_GOLDEN=1 for one scope (the fixture restores what the run had).
class UpdatingGoldens {
 public:
  UpdatingGoldens() { ::setenv(kUpdateGoldenVariable, "1", 1); }
  ~UpdatingGoldens() { ::unsetenv(kUpdateGoldenVariable); }
};

class Golden : public ::testing::Test {
 protected:
  void SetUp() override {
    // Compare mode, even when the whole suite is run to update goldens.
    if (const char* v = std::getenv(kUpdateGoldenVariable)) saved_ = v;
    ::unsetenv(kUpdateGoldenVariable);
    std::ofstream(path_, std::ios::binary) << "header\nrow 1\nrow 2\n";
  }
  void TearDown() override {
    if (!saved_.empty()) ::setenv(kUpdateGoldenVariable, saved_.c_str(), 1);
  }

  TempDir dir_;
  const std::string path_ = dir_.path() + "/table.txt";
  std::string saved_;
};

TEST_F(Golden, EqualTextPasses) {
  expect_golden_file(path_, "header\nrow 1\nrow 2\n");
}

TEST_F(Golden, AMismatchFailsNamingTheFirstDifferingLine) {
  EXPECT_NONFATAL_FAILURE(expect_golden_file(path_, "header\nrow 1\nrow two\n"),
                          "line 3 of 4 (golden) and 4 (actual):\n"
                          "  golden: \"row 2\"\n"
                          "  actual: \"row two\"");
  EXPECT_NONFATAL_FAILURE(expect_golden_file(path_,
                                             "header\nrow 1\nrow 2\n"
                                             "row 3\n"),
                          "  golden: \"\"\n  actual: \"row 3\"");
  // A lost final newline is a difference too, and says so.
  EXPECT_NONFATAL_FAILURE(expect_golden_file(path_, "header\nrow 1\nrow 2"),
                          "  golden: \"\"\n  actual: (ends before it)");
  EXPECT_NONFATAL_FAILURE(expect_golden_file(path_, "x"),
                          "TTMEM_UPDATE_GOLDEN=1 ctest --test-dir build -R "
                          "'Golden.AMismatchFailsNamingTheFirstDifferingLine'");
  EXPECT_EQ(contents(path_), "header\nrow 1\nrow 2\n");  // comparing never writes
}

TEST_F(Golden, AMissingFileFailsSayingHowToCreateIt) {
  const std::string missing = dir_.path() + "/new.txt";
  EXPECT_NONFATAL_FAILURE(expect_golden_file(missing, ""),
                          missing +
                              " is missing; create it with TTMEM_UPDATE_GOLDEN=1 ctest "
                              "--test-dir build -R "
                              "'Golden.AMissingFileFailsSayingHowToCreateIt'");
  EXPECT_FALSE(std::filesystem::exists(missing));
}

// An update run rewrites a different or missing file and still fails: it checked nothing. A file
// that already matches passes, so the failures list exactly what was written.
TEST_F(Golden, AnUpdateRewritesTheFileAndStillFails) {
  UpdatingGoldens updating;
  EXPECT_NONFATAL_FAILURE(expect_golden_file(path_, "header\nrow 1\nrow two\n"),
                          "rewrote it, first change at line 3");
  EXPECT_EQ(contents(path_), "header\nrow 1\nrow two\n");
  expect_golden_file(path_, "header\nrow 1\nrow two\n");  // equal now: passes, writes nothing
  const std::string missing = dir_.path() + "/new.txt";
  EXPECT_NONFATAL_FAILURE(expect_golden_file(missing, "new\n"), "created it");
  EXPECT_EQ(contents(missing), "new\n");
}

TEST(GoldenDifference, EqualTextsHaveNone) {
  EXPECT_EQ(first_difference("", ""), "");
  EXPECT_EQ(first_difference("a\nb\n", "a\nb\n"), "");
  EXPECT_NE(first_difference("", "\n"), "");
}

}  // namespace
}  // namespace ttmem::test
