// Squatted directories, against real processes: a local user who makes a daemon's socket or
// state directory before the daemon starts would own what the daemon keeps there (and could
// swap the Workload API socket for one of their own). Both daemons refuse such a directory at
// start, naming it and the fix, before they spend anything — agentd's join token stays usable.
// Runs as root, as CI does: the squatter's directory is handed to uid 65534 with chown.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "tests/support/agentd_process.h"
#include "tests/support/serverd_process.h"

namespace sigil::agentd::testing {
namespace {

namespace fs = std::filesystem;
using sigil::testing::AgentdOptions;
using sigil::testing::AgentdProcess;
using sigil::testing::ServerdProcess;
using sigil::testing::SoftHsm;
using sigil::testing::TempDir;
using sigil::testing::WriteFile;

constexpr uid_t kSquatter = 65534;

void Squat(const fs::path& dir) {
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir;
  ASSERT_EQ(::chown(dir.c_str(), kSquatter, kSquatter), 0) << dir;
}

class OwnedDirectoriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "the squatter's directory is made with chown, which takes root";
    auto hsm = SoftHsm::Create();
    ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
    hsm_ = std::move(*hsm);
  }
  std::unique_ptr<SoftHsm> hsm_;
  TempDir work_{"sigil-owned-dirs"};
};

TEST_F(OwnedDirectoriesTest, ServerdRefusesAnAdminSocketDirectoryAnotherUserMade) {
  auto server = ServerdProcess::Create(*hsm_, "squat-admin");
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  Squat(server.value()->socket_path().parent_path());
  Status started = (*server)->Start();
  ASSERT_FALSE(started.ok()) << "serverd served its admin API from a directory uid 65534 owns";
  const std::string logs = (*server)->logs();
  EXPECT_NE(logs.find("admin socket directory"), std::string::npos) << logs;
  EXPECT_NE(logs.find((*server)->socket_path().parent_path().string() + " is owned by uid 65534"), std::string::npos)
      << logs;
  EXPECT_FALSE(fs::exists((*server)->socket_path())) << "no socket was made in the squatted directory";
}

TEST_F(OwnedDirectoriesTest, AgentdRefusesASquattedSocketDirectoryOrAnOpenDataDirBeforeSpendingItsToken) {
  auto server = ServerdProcess::Create(*hsm_, "squat-agent");
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ASSERT_TRUE((*server)->Start().ok());
  auto token = (*server)->Cli({"token", "generate"});
  ASSERT_TRUE(token.ok() && token->exit_code == 0);
  std::string join_token = token->out.substr(std::string("Token: ").size());
  while (!join_token.empty() && join_token.back() == '\n') join_token.pop_back();
  auto bundle = (*server)->Cli({"bundle", "show"});
  ASSERT_TRUE(bundle.ok() && bundle->exit_code == 0);
  WriteFile(work_ / "bundle.pem", bundle->out);

  AgentdOptions options;
  options.server_port = (*server)->agent_port();
  options.join_token = join_token;
  options.trust_bundle_path = work_ / "bundle.pem";
  auto agent = AgentdProcess::Create(options);
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  const fs::path socket_dir = (*agent)->socket_path().parent_path();

  Squat(socket_dir);
  EXPECT_FALSE((*agent)->Start().ok()) << "agentd bound its Workload API in a directory uid 65534 owns";
  std::string logs = (*agent)->logs();
  EXPECT_NE(logs.find("Workload API socket directory"), std::string::npos) << logs;
  EXPECT_NE(logs.find(socket_dir.string() + " is owned by uid 65534"), std::string::npos) << logs;
  EXPECT_FALSE(fs::exists((*agent)->socket_path()));
  ASSERT_TRUE(fs::remove(socket_dir));

  // A data_dir others may write: they could replace the agent's key. (The refused start above
  // made data_dir, which it checks first.)
  ASSERT_TRUE(fs::is_directory((*agent)->data_dir()));
  ASSERT_EQ(::chmod((*agent)->data_dir().c_str(), 0777), 0);
  EXPECT_FALSE((*agent)->Start().ok()) << "agentd kept its key in a directory everyone can write";
  logs = (*agent)->logs();
  EXPECT_NE(logs.find("data_dir " + (*agent)->data_dir().string() + " cannot be trusted"), std::string::npos) << logs;
  EXPECT_NE(logs.find("chmod go-w"), std::string::npos) << logs;

  // Put right, the same join token still attests: nothing was spent by the refusals.
  ASSERT_EQ(::chmod((*agent)->data_dir().c_str(), 0700), 0);
  Status started = (*agent)->Start();
  EXPECT_TRUE(started.ok()) << started.ToString();
  (*agent)->Stop();
  (*server)->Stop();
}

}  // namespace
}  // namespace sigil::agentd::testing
