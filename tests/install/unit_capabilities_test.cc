// sigil-agent.service runs agentd as its own user with the capabilities of its
// AmbientCapabilities= line. This test runs agentd's unix workload attestor as another user
// with exactly those (and NoNewPrivileges, as the unit does) against a workload of a third
// user whose binary only its owner may read, and finds the whole selector set; then with each
// capability taken away, and finds that selector missing that the capability is for. So the
// unit grants what the attestor needs, and each capability it grants is needed.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/openssl_util.h"
#include "tests/install/unit_file.h"
#include "tests/support/process.h"

namespace sigil {
namespace {

using testing::ChildProcess;
using testing::ReadFile;
using testing::RunProcess;
using testing::TempDir;

constexpr uid_t kWorkloadUid = 65534;  // nobody
constexpr uid_t kAgentUid = 65533;     // no user of the host: owns nothing

// "CAP_SYS_PTRACE" as setpriv names it: "sys_ptrace".
std::string SetprivName(std::string capability) {
  capability = capability.substr(capability.rfind("CAP_", 0) == 0 ? 4 : 0);
  std::transform(capability.begin(), capability.end(), capability.begin(), ::tolower);
  return capability;
}

class UnitCapabilitiesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "runs processes as other users: needs root";
    unit_caps_ = testing::Words(
        testing::UnitFile::Read(std::string(SIGIL_BUILD_ROOT) + "/agentd/dist/sigil-agent.service")
            .Get("AmbientCapabilities"));
    ASSERT_FALSE(unit_caps_.empty());

    // The workload: a copy of sleep, mode 0700 in a folder of mode 0700, both its user's.
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
    const auto home = dir_ / "workload-home";
    std::filesystem::create_directory(home);
    workload_binary_ = home / "workload";
    std::filesystem::copy_file("/bin/sleep", workload_binary_);
    ASSERT_EQ(::chown(home.c_str(), kWorkloadUid, kWorkloadUid), 0);
    ASSERT_EQ(::chown(workload_binary_.c_str(), kWorkloadUid, kWorkloadUid), 0);
    ASSERT_EQ(::chmod(home.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(workload_binary_.c_str(), 0700), 0);
    const std::string binary = ReadFile(workload_binary_);
    workload_sha256_ = HexEncode(Sha256({reinterpret_cast<const uint8_t*>(binary.data()), binary.size()}));
    const std::string id = std::to_string(kWorkloadUid);
    auto workload = ChildProcess::Start(
        {"setpriv", "--reuid", id, "--regid", id, "--clear-groups", workload_binary_.string(), "60"}, dir_.path());
    ASSERT_TRUE(workload.ok()) << workload.status().ToString();
    workload_.emplace(std::move(*workload));
    // Attested once it runs the copy, not setpriv.
    ASSERT_TRUE(testing::WaitUntil([&] {
      std::error_code ec;
      return std::filesystem::read_symlink("/proc/" + std::to_string(workload_->pid()) + "/exe", ec) ==
             workload_binary_;
    }));

    // The attester, where the agent's user may run it.
    const char* attester = std::getenv("SIGIL_ATTEST_PROCESS");
    ASSERT_NE(attester, nullptr) << "SIGIL_ATTEST_PROCESS names the attester (meson sets it)";
    attester_ = dir_ / "attest_process";
    std::filesystem::copy_file(attester, attester_);
    ASSERT_EQ(::chmod(attester_.c_str(), 0755), 0);
  }

  // The selectors the attester prints for the workload, run as kAgentUid with `capabilities`
  // (unit names, "CAP_SYS_PTRACE") ambient, inherited and bounding, and no new privileges.
  std::vector<std::string> AttestWith(const std::vector<std::string>& capabilities) {
    std::string caps = "-all";
    for (const auto& capability : capabilities) caps += ",+" + SetprivName(capability);
    const std::string id = std::to_string(kAgentUid);
    auto out = RunProcess({"setpriv", "--reuid", id, "--regid", id, "--clear-groups", "--no-new-privs",
                           "--inh-caps=" + caps, "--ambient-caps=" + caps, "--bounding-set=" + caps,
                           attester_.string(), std::to_string(workload_->pid()), std::to_string(kWorkloadUid),
                           std::to_string(kWorkloadUid)});
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    if (!out.ok()) return {};
    EXPECT_EQ(out->exit_code, 0) << out->err;
    return testing::Words(out->out);
  }

  std::vector<std::string> Without(const std::string& capability) const {
    std::vector<std::string> rest;
    for (const auto& c : unit_caps_) {
      if (c != capability) rest.push_back(c);
    }
    EXPECT_EQ(rest.size() + 1, unit_caps_.size()) << capability << " is not in the unit";
    return rest;
  }

  static bool Has(const std::vector<std::string>& selectors, const std::string& selector) {
    return std::find(selectors.begin(), selectors.end(), selector) != selectors.end();
  }
  static bool HasType(const std::vector<std::string>& selectors, const std::string& prefix) {
    return std::any_of(selectors.begin(), selectors.end(), [&](const std::string& s) { return s.rfind(prefix, 0) == 0; });
  }

  TempDir dir_{"sigil-unit-caps"};
  std::vector<std::string> unit_caps_;
  std::filesystem::path workload_binary_;
  std::string workload_sha256_;
  std::optional<ChildProcess> workload_;
  std::filesystem::path attester_;
};

TEST_F(UnitCapabilitiesTest, TheUnitsCapabilitiesAttestAnotherUsersProcessFully) {
  const auto selectors = AttestWith(unit_caps_);
  EXPECT_TRUE(Has(selectors, "unix:uid:" + std::to_string(kWorkloadUid))) << ::testing::PrintToString(selectors);
  EXPECT_TRUE(Has(selectors, "unix:path:" + workload_binary_.string())) << ::testing::PrintToString(selectors);
  EXPECT_TRUE(Has(selectors, "unix:sha256:" + workload_sha256_)) << ::testing::PrintToString(selectors);
}

TEST_F(UnitCapabilitiesTest, WithoutSysPtraceTheBinaryIsNotSeen) {
  const auto selectors = AttestWith(Without("CAP_SYS_PTRACE"));
  EXPECT_TRUE(Has(selectors, "unix:uid:" + std::to_string(kWorkloadUid))) << ::testing::PrintToString(selectors);
  EXPECT_FALSE(HasType(selectors, "unix:path:")) << ::testing::PrintToString(selectors);
  EXPECT_FALSE(HasType(selectors, "unix:sha256:")) << ::testing::PrintToString(selectors);
}

TEST_F(UnitCapabilitiesTest, WithoutDacReadSearchAnUnreadableBinaryIsNotHashed) {
  const auto selectors = AttestWith(Without("CAP_DAC_READ_SEARCH"));
  EXPECT_TRUE(Has(selectors, "unix:path:" + workload_binary_.string())) << ::testing::PrintToString(selectors);
  EXPECT_FALSE(HasType(selectors, "unix:sha256:")) << ::testing::PrintToString(selectors);
}

}  // namespace
}  // namespace sigil
