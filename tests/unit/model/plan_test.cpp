// Capacity plans: JSON input, validation messages, and the figures a run reports.
#include "model/plan.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ttmem::model {
namespace {

using nlohmann::json;

std::string plan_error(const json& j) {
  try {
    run_plan(parse_plan(j));
  } catch (const PlanError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no PlanError for " << j.dump();
  return {};
}

TEST(Plan, ParsesSizesWithUnits) {
  EXPECT_EQ(parse_size("117440512"), 117'440'512u);
  EXPECT_EQ(parse_size("112MiB"), 117'440'512u);
  EXPECT_EQ(parse_size("1.5KiB"), 1536u);
  EXPECT_EQ(parse_size("50MB"), 50'000'000u);
  EXPECT_EQ(parse_size("4 GiB"), 4ull << 30);
  EXPECT_FALSE(parse_size("12Q"));
  EXPECT_FALSE(parse_size("-1"));
  EXPECT_FALSE(parse_size("0.5"));  // not a whole number of bytes
  EXPECT_FALSE(parse_size(""));
}

TEST(Plan, RunsStepsAndReportsPlacementAndNeeds) {
  const json j = {{"device", "n150"},
                  {"params", {{"trace_region_size", "8MiB"}, {"l1_small_size", 32768}}},
                  {"steps",
                   {{{"op", "allocate"}, {"name", "w"}, {"type", "DRAM"}, {"size", 117440512}},
                    {{"op", "allocate"},
                     {"name", "cfg"},
                     {"type", "L1_SMALL"},
                     {"size", 8192},
                     {"page_size", 128},
                     {"shards", 64}},
                    {{"op", "trace"}, {"name", "t"}, {"size", 3000000}},
                    {{"op", "free"}, {"name", "w"}}}}};
  const Plan plan = parse_plan(j);
  const PlanResult r = run_plan(plan);
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.steps.size(), 4u);
  EXPECT_EQ(r.steps[0].buffer->size_per_bank, 9'787'392u);
  EXPECT_EQ(r.steps[1].buffer->address, 1'499'136u - 128);
  EXPECT_EQ(r.peak_l1_small_per_bank, 128u);
  EXPECT_EQ(r.peak_trace_bytes, r.steps[2].buffer->size);
  EXPECT_EQ(r.views[0][0].total_bytes_allocated_per_bank, 0u);  // w was freed
}

// A 128 KiB-per-bank L1 buffer sits at 1,368,064; CBs of 1,300,000 B end at 1,402,400.
TEST(Plan, StopsAtTheFirstTtMetalFailure) {
  const json j = json::array(
      {{{"op", "allocate"}, {"type", "L1"}, {"size", 64 * 4096 * 32}, {"page_size", 4096}},
       {{"op", "program"}, {"cbs", {{{"size", 1'300'000}}}}},
       {{"op", "allocate"}, {"type", "DRAM"}, {"size", 4096}}});
  const PlanResult r = run_plan(parse_plan(j));
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->kind(), ErrorKind::CbClash);
  EXPECT_EQ(r.steps.size(), 2u);  // the third step never ran
}

TEST(Plan, RejectsInputWithMessagesThatSayWhatToWrite) {
  EXPECT_NE(plan_error({{"device", "n999"}, {"steps", json::array()}}).find("choose one of"),
            std::string::npos);
  EXPECT_NE(plan_error(json::array({{{"op", "free"}, {"name", "x"}}})).find("no earlier step"),
            std::string::npos);
  EXPECT_NE(
      plan_error(
          json::array({{{"op", "allocate"}, {"type", "DRAM"}, {"size", 64}, {"pagesize", 32}}}))
          .find("unknown key 'pagesize'"),
      std::string::npos);
  EXPECT_NE(plan_error(json::array({{{"op", "grow"}}})).find("unknown op"), std::string::npos);
  EXPECT_NE(plan_error(json::array({{{"op", "allocate"}, {"type", "HBM"}, {"size", 64}}}))
                .find("DRAM, L1, L1_SMALL, TRACE"),
            std::string::npos);
  EXPECT_NE(plan_error({{"params", {{"l1_small_size", "2MiB"}}}, {"steps", json::array()}})
                .find("smaller l1_small_size"),
            std::string::npos);
  EXPECT_NE(plan_error(
                {{"steps", {{{"op", "program"}, {"cbs", {{{"cores", "9,9-0,0"}, {"size", 64}}}}}}}})
                .find("is not a core range"),
            std::string::npos);
  EXPECT_THROW(parse_plan(json("steps")), PlanError);
}

}  // namespace
}  // namespace ttmem::model
