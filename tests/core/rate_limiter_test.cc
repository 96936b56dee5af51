// Token buckets by key, on a clock the test moves.
#include "core/rate_limiter.h"

#include <gtest/gtest.h>

namespace sigil {
namespace {

using namespace std::chrono_literals;
using Clock = RateLimiterByKey::Clock;

TEST(RateLimiterTest, ABurstIsTakenAtOnceThenTheRateRefillsIt) {
  RateLimiterByKey limiter({.per_second = 2, .burst = 5});
  const Clock::time_point start{};
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.TrySpend("10.0.0.1", 1, start)) << i;
  EXPECT_FALSE(limiter.TrySpend("10.0.0.1", 1, start));
  EXPECT_FALSE(limiter.TrySpend("10.0.0.1", 1, start + 400ms));
  EXPECT_TRUE(limiter.TrySpend("10.0.0.1", 1, start + 500ms));
  // An idle key never holds more than the burst.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.TrySpend("10.0.0.1", 1, start + 1h)) << i;
  EXPECT_FALSE(limiter.TrySpend("10.0.0.1", 1, start + 1h));
}

TEST(RateLimiterTest, KeysHaveBucketsOfTheirOwn) {
  RateLimiterByKey limiter({.per_second = 1, .burst = 1});
  const Clock::time_point start{};
  EXPECT_TRUE(limiter.TrySpend("a", 1, start));
  EXPECT_FALSE(limiter.TrySpend("a", 1, start));
  EXPECT_TRUE(limiter.TrySpend("b", 1, start));
}

TEST(RateLimiterTest, ACostOverWhatIsLeftSpendsNothing) {
  RateLimiterByKey limiter({.per_second = 10, .burst = 100});
  const Clock::time_point start{};
  EXPECT_TRUE(limiter.TrySpend("agent", 60, start));
  EXPECT_FALSE(limiter.TrySpend("agent", 60, start));
  EXPECT_TRUE(limiter.TrySpend("agent", 40, start));
  EXPECT_FALSE(limiter.TrySpend("agent", 1, start));
}

TEST(RateLimiterTest, KeysBeyondTheBoundDropFullBucketsFirst) {
  RateLimiterByKey limiter({.per_second = 1, .burst = 2}, /*max_keys=*/3);
  const Clock::time_point start{};
  ASSERT_TRUE(limiter.TrySpend("busy", 2, start));
  ASSERT_TRUE(limiter.TrySpend("idle-1", 1, start));
  ASSERT_TRUE(limiter.TrySpend("idle-2", 1, start));
  // One second on, the idle buckets are full again and make room; the busy one is kept, empty.
  ASSERT_TRUE(limiter.TrySpend("new", 1, start + 1s));
  EXPECT_TRUE(limiter.TrySpend("busy", 1, start + 1s));
  EXPECT_FALSE(limiter.TrySpend("busy", 1, start + 1s)) << "the busy key's bucket was dropped and refilled";
}

}  // namespace
}  // namespace sigil
