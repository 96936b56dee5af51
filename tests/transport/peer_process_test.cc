// PeerProcess against real processes: one that execs another binary, one that exits, and
// writers other than the process held.
#include "transport/peer_process.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace sigil::transport {
namespace {

using sigil::testing::ChildProcess;
using sigil::testing::TempDir;
using sigil::testing::WaitUntil;

std::string ExecutableOfPid(pid_t pid) {
  std::error_code error;
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", error).string();
}

class PeerProcessTest : public ::testing::Test {
 protected:
  // A shell that execs `sleep` once `trigger` exists.
  ChildProcess StartShellThatExecsLater() {
    auto child = ChildProcess::Start(
        {"/bin/sh", "-c", "while [ ! -e " + trigger_.string() + " ]; do sleep 0.02; done; exec /usr/bin/sleep 30"},
        dir_.path());
    EXPECT_TRUE(child.ok());
    const std::string shell = std::filesystem::canonical("/bin/sh").string();
    EXPECT_TRUE(WaitUntil([&] { return ExecutableOfPid(child->pid()) == shell; }));
    return std::move(*child);
  }

  TempDir dir_{"sigil-peer-process"};
  std::filesystem::path trigger_ = dir_.path() / "exec-now";
};

TEST_F(PeerProcessTest, AProcessThatExecsAnotherBinaryIsNoLongerTheCaller) {
  ChildProcess child = StartShellThatExecsLater();
  auto held = PeerProcess::Hold(child.pid());
  ASSERT_TRUE(held->Pinned().ok());
  ASSERT_TRUE(held->executable_when_held().has_value());
  EXPECT_TRUE(held->StillTheCaller().ok());

  sigil::testing::WriteFile(trigger_, "");
  ASSERT_TRUE(WaitUntil([&] { return ExecutableOfPid(child.pid()) == "/usr/bin/sleep"; }));
  const Status after_exec = held->StillTheCaller();
  EXPECT_EQ(after_exec.code(), Code::kPermissionDenied);
  EXPECT_NE(after_exec.message().find("runs another binary than when it opened the connection"), std::string::npos)
      << after_exec.ToString();
  // Held anew, the process is what it runs now.
  EXPECT_TRUE(PeerProcess::Hold(child.pid())->StillTheCaller().ok());
}

TEST_F(PeerProcessTest, AProcessThatExitedIsNoLongerTheCaller) {
  ChildProcess child = StartShellThatExecsLater();
  auto held = PeerProcess::Hold(child.pid());
  ASSERT_TRUE(held->StillTheCaller().ok());
  child.Stop(9);
  EXPECT_FALSE(held->StillThere());
  const Status gone = held->StillTheCaller();
  EXPECT_EQ(gone.code(), Code::kPermissionDenied);
  EXPECT_NE(gone.message().find("has exited"), std::string::npos) << gone.ToString();
}

TEST_F(PeerProcessTest, BytesFromAnyOtherWriterMarkTheConnection) {
  auto held = PeerProcess::Hold(::getpid());
  held->NoteWriter(::getpid(), ::getuid());
  EXPECT_FALSE(held->foreign_writer().has_value());
  EXPECT_TRUE(held->StillTheCaller().ok());

  held->NoteWriter(::getpid() + 1, 65534);
  held->NoteWriter(::getpid(), ::getuid());  // the first stranger is what is told
  ASSERT_TRUE(held->foreign_writer().has_value());
  EXPECT_EQ(held->foreign_writer()->pid, ::getpid() + 1);
  const Status relayed = held->StillTheCaller();
  EXPECT_EQ(relayed.code(), Code::kPermissionDenied);
  EXPECT_NE(relayed.message().find("written to by process " + std::to_string(::getpid() + 1) + " (uid 65534)"),
            std::string::npos)
      << relayed.ToString();
}

TEST_F(PeerProcessTest, HoldsCheckedTogetherEachGetTheirOwnAnswer) {
  ChildProcess child = StartShellThatExecsLater();
  auto before_both = PeerProcess::Hold(child.pid());
  auto before_exec = PeerProcess::Hold(child.pid());
  auto relayed = PeerProcess::Hold(::getpid());
  relayed->NoteWriter(::getpid() + 1, 65534);
  auto self = PeerProcess::Hold(::getpid());
  auto nobody = PeerProcess::Hold(0x3fffffff);
  {
    const auto checks = PeerProcess::StillTheCallers({before_both.get(), before_exec.get(), relayed.get(), self.get()});
    ASSERT_EQ(checks.size(), 4u);
    EXPECT_TRUE(checks[0].status.ok()) << checks[0].status.ToString();
    EXPECT_TRUE(checks[1].status.ok()) << checks[1].status.ToString();
    EXPECT_EQ(checks[0].binary_now, before_both->executable_when_held());
    EXPECT_EQ(checks[1].binary_now, before_exec->executable_when_held());
    EXPECT_EQ(checks[2].status.code(), Code::kPermissionDenied);
    EXPECT_TRUE(checks[3].status.ok()) << checks[3].status.ToString();
  }

  sigil::testing::WriteFile(trigger_, "");
  ASSERT_TRUE(WaitUntil([&] { return ExecutableOfPid(child.pid()) == "/usr/bin/sleep"; }));
  auto after_exec = PeerProcess::Hold(child.pid());
  // In every order: the exec shows to both holds made before it, the hold made after it runs
  // what it ran when held, and the other pids are answered for themselves.
  const std::vector<const PeerProcess*> orders[] = {
      {before_both.get(), before_exec.get(), after_exec.get(), nobody.get(), before_both.get()},
      {after_exec.get(), nobody.get(), before_exec.get(), before_both.get(), before_both.get()},
  };
  for (const auto& holds : orders) {
    const auto checks = PeerProcess::StillTheCallers(holds);
    ASSERT_EQ(checks.size(), holds.size());
    for (size_t i = 0; i < holds.size(); ++i) {
      const PeerProcess* hold = holds[i];
      if (hold == after_exec.get()) {
        EXPECT_TRUE(checks[i].status.ok()) << checks[i].status.ToString();
        EXPECT_EQ(checks[i].binary_now, after_exec->executable_when_held());
      } else if (hold == nobody.get()) {
        EXPECT_EQ(checks[i].status.code(), Code::kPermissionDenied);
      } else {
        EXPECT_EQ(checks[i].status.code(), Code::kPermissionDenied) << i;
        EXPECT_NE(checks[i].status.message().find("runs another binary"), std::string::npos)
            << checks[i].status.ToString();
      }
    }
  }

  child.Stop(9);
  for (const auto& check : PeerProcess::StillTheCallers({after_exec.get(), before_both.get()})) {
    EXPECT_EQ(check.status.code(), Code::kPermissionDenied);
  }
  EXPECT_NE(PeerProcess::StillTheCallers({after_exec.get()})[0].status.message().find("has exited"), std::string::npos);
}

TEST_F(PeerProcessTest, APidThatNamesNoProcessIsNotPinned) {
  auto held = PeerProcess::Hold(0x3fffffff);
  EXPECT_EQ(held->Pinned().code(), Code::kNotFound);
  EXPECT_EQ(held->StillTheCaller().code(), Code::kPermissionDenied);
}

}  // namespace
}  // namespace sigil::transport
