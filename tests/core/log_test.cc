#include "core/log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

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

std::string Contents(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class LogFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/sigil-log-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    ConfigureLogging(LogLevel::kInfo, LogFormat::kText);
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
};

TEST_F(LogFileTest, LinesGoToTheFileAndAfterARenameAndReopenToANewOne) {
  const auto path = dir_ / "daemon.log";
  ConfigureLogging(LogLevel::kInfo, LogFormat::kJson);
  ASSERT_TRUE(LogToFile(path).ok());
  LogInfo("before rotation");
  struct stat made {};
  ASSERT_EQ(::stat(path.c_str(), &made), 0);
  EXPECT_EQ(made.st_mode & 0777, 0640u);

  std::filesystem::rename(path, dir_ / "daemon.log.1");
  LogInfo("still to the renamed file");
  auto reopened = ReopenLogFile();
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_TRUE(*reopened);
  LogInfo("after rotation");

  const std::string old_lines = Contents(dir_ / "daemon.log.1");
  EXPECT_NE(old_lines.find("before rotation"), std::string::npos);
  EXPECT_NE(old_lines.find("still to the renamed file"), std::string::npos);
  EXPECT_EQ(old_lines.find("after rotation"), std::string::npos);
  const std::string new_lines = Contents(path);
  EXPECT_EQ(nlohmann::json::parse(new_lines)["msg"], "after rotation");
}

TEST_F(LogFileTest, AFileThatCannotBeOpenedIsNamedAndChangesNothing) {
  std::vector<std::string> lines;
  ConfigureLogging(LogLevel::kInfo, LogFormat::kText, [&](std::string_view l) { lines.emplace_back(l); });
  const auto missing = dir_ / "no-such-folder" / "daemon.log";
  Status opened = LogToFile(missing);
  EXPECT_FALSE(opened.ok());
  EXPECT_NE(opened.message().find(missing.string()), std::string::npos) << opened.message();
  LogInfo("to the sink still");
  EXPECT_EQ(lines.size(), 1u);
  // Without a log file there is nothing to reopen.
  auto reopened = ReopenLogFile();
  ASSERT_TRUE(reopened.ok());
  EXPECT_FALSE(*reopened);
}

TEST_F(LogFileTest, AFailedReopenKeepsTheOpenFile) {
  const auto folder = dir_ / "logs";
  std::filesystem::create_directory(folder);
  ASSERT_TRUE(LogToFile(folder / "daemon.log").ok());
  std::filesystem::rename(folder, dir_ / "logs.old");  // the path's folder is gone
  auto reopened = ReopenLogFile();
  EXPECT_FALSE(reopened.ok());
  LogInfo("kept");
  EXPECT_NE(Contents(dir_ / "logs.old" / "daemon.log").find("kept"), std::string::npos);
}

}  // namespace
}  // namespace sigil
