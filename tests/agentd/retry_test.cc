// The back-off every retry of the agent uses, and the spread of its long polls.
#include "agentd/sync/entry_sync.h"
#include "agentd/sync/retry.h"

#include <gtest/gtest.h>

#include <algorithm>
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

TEST(SpreadTest, AWaitLosesAtMostItsFractionAndIsDrawnAfreshEachTime) {
  std::vector<milliseconds> waits;
  for (int i = 0; i < 50; ++i) waits.push_back(Spread(milliseconds(10'000), 0.1));
  std::sort(waits.begin(), waits.end());
  EXPECT_GE(waits.front(), milliseconds(9'000));
  EXPECT_LE(waits.back(), milliseconds(10'000));
  EXPECT_LT(waits.front(), waits.back()) << "fifty spread waits were all equal";
}

TEST(SpreadTest, TheAgentsLongPollsWaitBetween27And30Seconds) {
  for (int i = 0; i < 50; ++i) {
    const auto wait = LongPollWait();
    EXPECT_GE(wait, milliseconds(27'000));
    EXPECT_LE(wait, milliseconds(30'000));
  }
}

}  // namespace
}  // namespace sigil::agentd
