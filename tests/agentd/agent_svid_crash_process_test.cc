// The agent's own SVID and key across crashes, with real serverd and agentd processes: agentd
// killed (SIGKILL, through its SIGIL_FAULT_POINT hook) at each point of writing a renewed SVID
// serves again after a restart; a saved key that does not match its SVID — what an earlier
// version left when killed between its two renames — stops the agent at start with the files
// and the fix named, instead of a renewal loop; and an upgrade from that two-file layout keeps
// the host's identity.
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <thread>

#include "tests/agentd/agent_server_fixture.h"
#include "tests/agentd/saved_agent_svid.h"
#include "tests/support/process_usage.h"

namespace sigil::agentd::testing {
namespace {

namespace fs = std::filesystem;
using sigil::testing::ReadFile;
using sigil::testing::ServerdOptions;
using sigil::testing::WriteFile;

class AgentSvidCrashTest : public AgentServerFixture {};

TEST_F(AgentSvidCrashTest, AKeyThatIsNotItsSvidsStopsTheAgentNamingTheFilesAndTheFix) {
  StartServer();
  CreateEntry("/web", ::getuid());
  StartAgent();
  ASSERT_FALSE(WaitForSvidSerial().empty());
  agent_->Stop();
  WriteOldLayout(agent_->data_dir(), /*mismatched=*/true);

  Status started = agent_->Start();
  EXPECT_FALSE(started.ok()) << "agentd came up healthy with a key that is not its SVID's";
  // It stops by itself, once: the join token was spent at the first start, so attesting again
  // cannot succeed, and nothing is gained by trying again and again.
  std::optional<int> exit_code = agent_->WaitForExit(std::chrono::seconds(10));
  ASSERT_TRUE(exit_code.has_value()) << "agentd keeps running with a mismatched key";
  EXPECT_NE(*exit_code, 0);
  const std::string logs = agent_->logs();
  const std::string key_path = (agent_->data_dir() / kOldKeyFile).string();
  EXPECT_NE(logs.find("the agent key in " + key_path + " does not match the agent SVID in"), std::string::npos);
  EXPECT_NE(logs.find("serverd token generate"), std::string::npos) << "the fix is not named";
  EXPECT_EQ(LinesWith(logs, "does not match the saved agent SVID; attesting again"), 1u);
  EXPECT_EQ(LinesWith(logs, "renewal failed"), 0u);

  // The fix as named: a new token, and the agent is back with a key that is its SVID's.
  auto token = Cli({"token", "generate"});
  ASSERT_EQ(token.exit_code, 0) << token.err;
  std::string fresh = token.out.substr(std::string("Token: ").size());
  fresh.erase(fresh.find_last_not_of('\n') + 1);
  std::string config = ReadFile(agent_->dir() / "agent.yaml");
  config.replace(config.find(token_), token_.size(), fresh);
  WriteFile(agent_->dir() / "agent.yaml", config);
  ASSERT_TRUE(agent_->Start().ok()) << agent_->logs();
  EXPECT_TRUE(fs::exists(agent_->data_dir() / kIdentityFile));
  EXPECT_FALSE(fs::exists(agent_->data_dir() / kOldKeyFile));
}

TEST_F(AgentSvidCrashTest, AnUpgradeMovesTheTwoFileLayoutIntoOneFileAndKeepsTheIdentity) {
  StartServer();
  CreateEntry("/web", ::getuid());
  StartAgent();
  ASSERT_FALSE(WaitForSvidSerial().empty());
  agent_->Stop();
  WriteOldLayout(agent_->data_dir(), /*mismatched=*/false);

  // The token was spent at the first start: only the saved identity can bring it back.
  ASSERT_TRUE(agent_->Start().ok()) << agent_->logs();
  EXPECT_NE(agent_->logs().find("moved the agent SVID and its key into one file"), std::string::npos);
  struct stat identity {};
  ASSERT_EQ(::stat((agent_->data_dir() / kIdentityFile).c_str(), &identity), 0);
  EXPECT_EQ(identity.st_mode & 0777, 0600u);
  EXPECT_FALSE(fs::exists(agent_->data_dir() / kOldChainFile));
  EXPECT_FALSE(fs::exists(agent_->data_dir() / kOldKeyFile));
  EXPECT_FALSE(WaitForSvidSerial().empty());
  EXPECT_EQ(Cli({"agent", "count"}).out.find("1 attested agent"), 0u);
}

// The agent SVID lives 10 s, so a renewal (at half-life) comes within 5 s of each start. The saved
// SVID must outlive a stop, a start killed at the renewal, and a restart: in a sanitizer build
// those took over 10 s, so there it lives 30 s.
TEST_F(AgentSvidCrashTest, KilledAtEachPointOfWritingARenewedSvidTheAgentServesAgainAfterRestart) {
  const int agent_ttl_seconds = sigil::testing::kSanitizerTimeFactor > 1 ? 30 : 10;
  ServerdOptions options;
  options.extra_yaml = "  agent_ttl: " + std::to_string(agent_ttl_seconds) + "s\n";
  StartServer(options);
  CreateEntry("/web", ::getuid());
  StartAgent();
  ASSERT_FALSE(WaitForSvidSerial().empty());
  for (const char* point : {"agent-svid-before-rename", "agent-svid-after-rename"}) {
    SCOPED_TRACE(point);
    agent_->Stop();
    agent_->SetEnv({{"SIGIL_FAULT_POINT", point}});
    (void)agent_->Start();  // killed at the point, before or after it is healthy
    std::optional<int> exit_code = agent_->WaitForExit(std::chrono::seconds(2 * agent_ttl_seconds));
    ASSERT_TRUE(exit_code.has_value()) << "agentd did not reach " << point;
    ASSERT_EQ(*exit_code, 128 + SIGKILL);
    ASSERT_NE(agent_->logs().find(std::string("fault_point=") + point), std::string::npos);

    agent_->SetEnv({});
    Status restarted = agent_->Start();
    ASSERT_TRUE(restarted.ok()) << restarted.ToString();
    EXPECT_FALSE(WaitForSvidSerial().empty());
    EXPECT_EQ(agent_->logs().find("does not match"), std::string::npos);
  }
  EXPECT_EQ(Cli({"agent", "count"}).out.find("1 attested agent"), 0u) << "the agent attested again";
}

// Renewals whose SVID cannot be saved (the rename fails) are not used, and are retried at the
// back-off's pace while the agent keeps serving.
TEST_F(AgentSvidCrashTest, ARenewedSvidThatCannotBeSavedIsRetriedWithBackOffWhileServing) {
  ServerdOptions options;
  options.extra_yaml = "  agent_ttl: 30s\n";
  StartServer(options);
  CreateEntry("/web", ::getuid());
  StartAgent("  retry_initial_backoff: 1s\n  retry_max_backoff: 4s\n");
  ASSERT_FALSE(WaitForSvidSerial().empty());
  agent_->Stop();
  agent_->SetEnv({{"SIGIL_FAULT_POINT", "agent-svid-rename-fails"}});
  ASSERT_TRUE(agent_->Start().ok()) << agent_->logs();
  const std::string serial = WaitForSvidSerial();
  ASSERT_FALSE(serial.empty());
  // Renewal is due at 15 s of the SVID's 30; then 10 s of failing renewals.
  ASSERT_TRUE(sigil::testing::WaitUntil([&] { return agent_->logs().find("agent SVID renewal failed") != std::string::npos; },
                                        std::chrono::seconds(25)));
  std::this_thread::sleep_for(std::chrono::seconds(10));
  const std::string logs = agent_->logs();
  EXPECT_NE(logs.find("renaming agent SVID file"), std::string::npos);
  size_t tries = 0;
  for (size_t at = logs.find("agent SVID renewal failed"); at != std::string::npos;
       at = logs.find("agent SVID renewal failed", at + 1)) {
    const size_t field = logs.find("failures=", at);
    if (field != std::string::npos) tries += std::stoul(logs.substr(field + 9));
  }
  // Waits of 0.5-1, 1-2, then 2-4 s: at most 6 tries in 10 s.
  EXPECT_GE(tries, 2u);
  EXPECT_LE(tries, 7u) << "renewal tries in about 10 s";
  EXPECT_EQ(LeafSerial(FirstSvid()), serial) << "the workload lost its SVID";
  EXPECT_FALSE(agent_->WaitForExit(std::chrono::milliseconds(0)).has_value());
}

}  // namespace
}  // namespace sigil::agentd::testing
