// The systemd units `meson install` puts in place, checked by systemd's own tools.
//
// `systemd-analyze verify` loads a unit with everything it depends on, and checks that its
// ExecStart= binary is there and executable and that its Documentation= man page opens. The
// binaries are not in this machine's /usr/bin, so the units are verified in the tree
// `meson install` made under a DESTDIR, with --root (systemd 252): the binaries, the units and
// the man pages (MANPATH) are those of that tree. --root also reads every other unit from that
// tree, so systemd's own units (sysinit.target, network-online.target, ...) are copied into it
// from this machine first. verify reports a setting it does not understand on standard error
// and still exits 0, so a clean unit is one whose check says nothing at all.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/install/installed_tree.h"
#include "tests/support/process.h"

namespace sigil {
namespace {

using testing::ProcessOutput;
using testing::RunProcess;
using testing::TempDir;

const std::string kUnitDir = SIGIL_SYSTEMD_UNIT_DIR;

class SystemdUnitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::InstallInto(root_).ok());
    ASSERT_TRUE(std::filesystem::exists(root_ / kUnitDir.substr(1) / "sigil-server.service"));
    ASSERT_TRUE(std::filesystem::exists(root_ / kUnitDir.substr(1) / "sigil-agent.service"));
    // systemd's own units beside Sigil's, which stay as installed (-n).
    auto copied = RunProcess({"cp", "-rn", kUnitDir + "/.", (root_ / kUnitDir.substr(1)).string()});
    ASSERT_TRUE(copied.ok() && copied->exit_code == 0) << (copied.ok() ? copied->err : copied.status().ToString());
  }

  ProcessOutput Analyze(std::vector<std::string> args) {
    args.insert(args.begin(), {"systemd-analyze"});
    args.insert(args.begin() + 2, "--root=" + root_.string());
    auto out = RunProcess(args, {.env = {{"MANPATH", (root_ / std::string(SIGIL_MANDIR).substr(1)).string()}}});
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : ProcessOutput{};
  }

  TempDir dir_{"sigil-units"};
  std::filesystem::path root_ = dir_ / "root";
};

TEST_F(SystemdUnitsTest, BothUnitsVerifyWithoutAWord) {
  const ProcessOutput verify = Analyze({"verify", "sigil-server.service", "sigil-agent.service"});
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  EXPECT_EQ(verify.out + verify.err, "");
}

// The check above would pass vacuously if verify looked elsewhere or said nothing of a wrong
// setting: it finds a binary missing from the tree, and names a setting it cannot parse.
TEST_F(SystemdUnitsTest, VerifyLooksIntoTheInstalledTree) {
  std::filesystem::remove(root_ / "usr/bin/serverd");
  const ProcessOutput missing = Analyze({"verify", "sigil-server.service"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("/usr/bin/serverd"), std::string::npos) << missing.err;

  const auto unit_dir = root_ / kUnitDir.substr(1);
  std::string unit = testing::ReadFile(unit_dir / "sigil-agent.service");
  const size_t at = unit.find("ProtectSystem=strict");
  ASSERT_NE(at, std::string::npos);
  testing::WriteFile(unit_dir / "sigil-typo.service", unit.replace(at, 20, "ProtectSystem=stern"));
  const ProcessOutput typo = Analyze({"verify", "sigil-typo.service"});
  EXPECT_NE(typo.err.find("stern"), std::string::npos) << typo.err;
}

// `systemd-analyze security` scores what a unit leaves open, 0 (nothing) to 10. The ceilings
// are the units' scores when they were written (serverd 1.6, agentd 2.3: CAP_SYS_PTRACE and
// the whole /proc it needs), so that a sandboxing setting lost fails here.
TEST_F(SystemdUnitsTest, ExposureStaysUnderItsCeiling) {
  for (const auto& [unit, ceiling] : {std::pair{"sigil-server.service", "16"}, {"sigil-agent.service", "23"}}) {
    const ProcessOutput security =
        Analyze({"security", "--offline=yes", std::string("--threshold=") + ceiling, unit});
    const size_t overall = security.out.find("Overall exposure level");
    EXPECT_EQ(security.exit_code, 0) << unit << ": "
                                     << (overall == std::string::npos ? security.out + security.err
                                                                      : security.out.substr(overall));
  }
}

}  // namespace
}  // namespace sigil
