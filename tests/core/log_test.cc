#include "core/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace sigil {
namespace {

TEST(LogTest, TextIsLogfmtWithQuotingWhereNeeded) {
  const std::string line = FormatLogLine(LogFormat::kText, LogLevel::kInfo, "Starting server",
                                         {{"trust_domain", "example.org"}, {"note", "a \"b\""}},
                                         "2026-11-24T07:00:00Z");
  EXPECT_EQ(line,
            "time=2026-11-24T07:00:00Z level=info msg=\"Starting server\" trust_domain=example.org "
            "note=\"a \\\"b\\\"\"\n");
}

TEST(LogTest, JsonIsOneObjectPerLine) {
  const std::string line = FormatLogLine(LogFormat::kJson, LogLevel::kWarn, "CA rotated",
                                         {{"serial", "0a"}}, "2026-11-24T07:00:00Z");
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  auto parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["level"], "warning");
  EXPECT_EQ(parsed["msg"], "CA rotated");
  EXPECT_EQ(parsed["serial"], "0a");
}

TEST(LogTest, LevelFiltersAndSinkReceivesWholeLines) {
  std::vector<std::string> lines;
  ConfigureLogging(LogLevel::kWarn, LogFormat::kText, [&](std::string_view l) { lines.emplace_back(l); });
  LogInfo("hidden");
  LogWarn("shown", {{"k", "v"}});
  LogError("also shown");
  ConfigureLogging(LogLevel::kInfo, LogFormat::kText);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("level=warning msg=shown k=v\n"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("level=error"), std::string::npos);
}

TEST(LogTest, ParsesNames) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("warn"), LogLevel::kWarn);
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_NE(ParseLogLevel("loud").status().message().find("'loud'"), std::string::npos);
  EXPECT_FALSE(ParseLogFormat("xml").ok());
}

}  // namespace
}  // namespace sigil
