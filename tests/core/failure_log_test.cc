// A failure that repeats, logged once per interval with its count, alone or per key.
#include "core/failure_log.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace sigil {
namespace {

using std::chrono::milliseconds;

class FailureLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigureLogging(LogLevel::kDebug, LogFormat::kText, [this](std::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override { ConfigureLogging(LogLevel::kInfo, LogFormat::kText); }

  size_t LinesWith(const std::string& text) const {
    size_t count = 0;
    for (const auto& line : lines_) count += line.find(text) != std::string::npos;
    return count;
  }

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

TEST_F(FailureLogTest, FlushLogsWhatIsCountedWithTheLatestFailureAndNothingWhenThereIsNone) {
  FailureLog log(LogLevel::kWarn, "call refused", std::chrono::minutes(1));
  log.Flush();
  EXPECT_TRUE(lines_.empty());
  for (int i = 0; i < 50; ++i) log.Failed({{"error", "attempt " + std::to_string(i)}});
  ASSERT_EQ(lines_.size(), 1u);
  log.Flush();
  ASSERT_EQ(lines_.size(), 2u);
  EXPECT_NE(lines_[1].find("failures=49"), std::string::npos) << lines_[1];
  EXPECT_NE(lines_[1].find("\"attempt 49\""), std::string::npos) << lines_[1];
  log.Flush();
  EXPECT_EQ(lines_.size(), 2u);
}

TEST_F(FailureLogTest, EachKeyIsCountedApartAndKeysBeyondTheBoundShareOneLog) {
  FailureLogByKey log(LogLevel::kWarn, "call refused", std::chrono::minutes(1), 2);
  for (int i = 0; i < 20; ++i) {
    log.Failed("agent-a", {{"peer", "agent-a"}});
    log.Failed("agent-b", {{"peer", "agent-b"}});
  }
  EXPECT_EQ(LinesWith("peer=agent-a failures=1"), 1u);
  EXPECT_EQ(LinesWith("peer=agent-b failures=1"), 1u);
  EXPECT_EQ(lines_.size(), 2u);
  // A thousand new keys cost one line between them, not one each.
  for (int i = 0; i < 1000; ++i) log.Failed("stranger-" + std::to_string(i), {{"peer", "stranger-" + std::to_string(i)}});
  EXPECT_EQ(lines_.size(), 3u);
  EXPECT_EQ(LinesWith("peer=stranger-0 failures=1"), 1u);

  log.Flush();
  EXPECT_EQ(LinesWith("peer=agent-a failures=19"), 1u);
  EXPECT_EQ(LinesWith("peer=agent-b failures=19"), 1u);
  EXPECT_EQ(LinesWith("peer=stranger-999 failures=999"), 1u);
  EXPECT_EQ(lines_.size(), 6u);
}

}  // namespace
}  // namespace sigil
