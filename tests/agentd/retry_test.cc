// The back-off every retry of the agent uses and the log line of a failure that repeats.
#include "agentd/sync/retry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace sigil::agentd {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, DoublesFromTheInitialStepUpToTheCeiling) {
  const BackoffPolicy policy{milliseconds(1'000), milliseconds(60'000)};
  EXPECT_EQ(BackoffStep(policy, 1), milliseconds(1'000));
  EXPECT_EQ(BackoffStep(policy, 2), milliseconds(2'000));
  EXPECT_EQ(BackoffStep(policy, 6), milliseconds(32'000));
  EXPECT_EQ(BackoffStep(policy, 7), milliseconds(60'000));
  EXPECT_EQ(BackoffStep(policy, 1'000'000), milliseconds(60'000));
}

TEST(BackoffTest, EachWaitIsBetweenHalfAndAllOfItsStepAndAResetStartsOver) {
  const BackoffPolicy policy{milliseconds(100), milliseconds(800)};
  Backoff backoff(policy);
  for (int failure = 1; failure <= 10; ++failure) {
    const auto step = BackoffStep(policy, failure);
    const auto wait = backoff.Next();
    EXPECT_GE(wait, step / 2) << "failure " << failure;
    EXPECT_LE(wait, step) << "failure " << failure;
  }
  backoff.Reset();
  EXPECT_LE(backoff.Next(), milliseconds(100));
}

TEST(BackoffTest, WaitsAreJittered) {
  Backoff first({milliseconds(10'000), milliseconds(10'000)});
  std::vector<milliseconds> waits;
  for (int i = 0; i < 20; ++i) waits.push_back(first.Next());
  std::sort(waits.begin(), waits.end());
  EXPECT_LT(waits.front(), waits.back()) << "twenty waits of the same step were all equal";
}

class FailureLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigureLogging(LogLevel::kDebug, LogFormat::kText, [this](std::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override { ConfigureLogging(LogLevel::kInfo, LogFormat::kText); }
  std::vector<std::string> lines_;
};

TEST_F(FailureLogTest, RepeatsWithinAnIntervalAreCountedOnTheNextLine) {
  FailureLog log(LogLevel::kWarn, "renewal failed", milliseconds(300));
  for (int i = 0; i < 50; ++i) log.Failed({{"error", "unreachable"}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find("failures=1"), std::string::npos) << lines_[0];
  std::this_thread::sleep_for(milliseconds(350));
  log.Failed({{"error", "unreachable"}});
  ASSERT_EQ(lines_.size(), 2u);
  EXPECT_NE(lines_[1].find("failures=50"), std::string::npos) << lines_[1];
  EXPECT_NE(lines_[1].find("renewal failed"), std::string::npos) << lines_[1];

  log.Succeeded("renewal recovered");
  ASSERT_EQ(lines_.size(), 3u);
  EXPECT_NE(lines_[2].find("renewal recovered"), std::string::npos) << lines_[2];
  EXPECT_NE(lines_[2].find("failures=51"), std::string::npos) << lines_[2];
  // After a success the next failure is news again, and a success after none is silent.
  log.Failed({{"error", "refused"}});
  EXPECT_EQ(lines_.size(), 4u);
  log.Succeeded("renewal recovered");
  log.Succeeded("renewal recovered");
  EXPECT_EQ(lines_.size(), 5u);
}

}  // namespace
}  // namespace sigil::agentd
