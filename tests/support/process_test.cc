#include "tests/support/process.h"

#include <gtest/gtest.h>

namespace sigil::testing {
namespace {

TEST(RunProcess, CapturesOutputExitCodeAndStdin) {
  auto r = RunProcess({"sh", "-c", "cat; echo err >&2; exit 3"}, {.stdin_data = "hello"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->out, "hello");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_EQ(r->exit_code, 3);
}

TEST(RunProcess, PassesEnvironmentAndWorkingDirectory) {
  TempDir dir;
  auto r = RunProcess({"sh", "-c", "echo $SIGIL_X; pwd"},
                      {.env = {{"SIGIL_X", "42"}}, .cwd = dir.path()});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "42\n" + dir.path().string() + "\n");
}

TEST(RunProcess, KillsOnTimeoutAndSaysSo) {
  auto r = RunProcess({"sleep", "30"}, {}, std::chrono::milliseconds(200));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
}

TEST(RunProcess, MissingProgramIsNotFound) {
  auto r = RunProcess({"sigil-no-such-program"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("sigil-no-such-program"), std::string::npos);
}

TEST(ChildProcess, StopsWithSignalAndKeepsLogs) {
  TempDir dir;
  auto child = ChildProcess::Start({"sh", "-c", "echo started; exec sleep 30"}, dir.path());
  ASSERT_TRUE(child.ok());
  EXPECT_TRUE(WaitUntil([&] { return child->stdout_text() == "started\n"; }));
  EXPECT_TRUE(child->running());
  EXPECT_EQ(child->Stop(), 128 + 15);
  EXPECT_FALSE(child->running());
}

TEST(TempDir, IsRemovedWithItsContents) {
  std::filesystem::path kept;
  {
    TempDir dir;
    kept = dir.path();
    WriteFile(dir / "f", "x");
    EXPECT_EQ(ReadFile(dir / "f"), "x");
  }
  EXPECT_FALSE(std::filesystem::exists(kept));
}

TEST(FreeLoopbackPort, GivesConsecutiveUnusedPorts) {
  int p = FreeLoopbackPort(2);
  EXPECT_GT(p, 1024);
  EXPECT_FALSE(LoopbackPortAccepts(p));
  EXPECT_FALSE(LoopbackPortAccepts(p + 1));
}

}  // namespace
}  // namespace sigil::testing
