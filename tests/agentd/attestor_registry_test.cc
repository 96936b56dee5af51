// The attestor registries: attestors found by name, an unknown name refused with its name, and
// the node attestor chosen from config as the registration list orders them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "agentd/attestor/node_attestor.h"
#include "agentd/attestor/workload_attestor.h"

namespace sigil::agentd {
namespace {

using ::testing::HasSubstr;

AgentConfig ConfigWith(std::string join_token, bool tpm_devid) {
  AgentConfig config;
  config.join_token = std::move(join_token);
  if (tpm_devid) config.tpm_devid = hw::TpmDevIdConfig::InDir("swtpm:host=127.0.0.1,port=1");
  return config;
}

TEST(AttestorRegistryTest, TheBuiltInAttestorsAreRegisteredByName) {
  EXPECT_EQ(NodeAttestors().Names(), "tpm_devid, join_token");
  EXPECT_EQ(WorkloadAttestors().Names(), "unix");
  ASSERT_TRUE(NodeAttestors().Find("join_token").ok());
  ASSERT_TRUE(NodeAttestors().Find("tpm_devid").ok());
}

TEST(AttestorRegistryTest, AnUnknownNameIsRefusedNamingIt) {
  auto node = NodeAttestors().Find("x509pop");
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), Code::kNotFound);
  EXPECT_EQ(node.status().message(), "unknown node attestor \"x509pop\" (known: tpm_devid, join_token)");

  auto workload = MakeWorkloadAttestor("k8s");
  ASSERT_FALSE(workload.ok());
  EXPECT_EQ(workload.status().code(), Code::kNotFound);
  EXPECT_EQ(workload.status().message(), "unknown workload attestor \"k8s\" (known: unix)");
}

TEST(AttestorRegistryTest, ANameIsRegisteredOnce) {
  WorkloadAttestorRegistry registry("workload attestor");
  auto make = []() -> Result<std::shared_ptr<WorkloadAttestor>> { return InternalError("not made in this test"); };
  EXPECT_TRUE(registry.Register({"docker", make}).ok());
  Status again = registry.Register({"docker", make});
  EXPECT_EQ(again.code(), Code::kAlreadyExists);
  EXPECT_THAT(again.message(), HasSubstr("\"docker\""));
  EXPECT_EQ(registry.Register({"", make}).code(), Code::kInvalidArgument);
  EXPECT_EQ(registry.Names(), "docker");
}

TEST(AttestorRegistryTest, ConfigChoosesTheNodeAttestor) {
  std::string chosen;
  ASSERT_TRUE(ChooseNodeAttestor(ConfigWith("token-1", false), &chosen).ok());
  EXPECT_EQ(chosen, "join_token");
  ASSERT_TRUE(ChooseNodeAttestor(ConfigWith("", true), &chosen).ok());
  EXPECT_EQ(chosen, "tpm_devid");

  auto nothing = ChooseNodeAttestor(ConfigWith("", false), &chosen);
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(nothing.status().message(), HasSubstr("a tpm_devid section"));
  EXPECT_THAT(nothing.status().message(), HasSubstr("agent.join_token or -joinToken"));
}

// A third attestor is one registration: the registry chooses it from config with no other
// change, ahead of those registered after it.
TEST(AttestorRegistryTest, AThirdNodeAttestorNeedsOnlyItsRegistration) {
  class Fixed : public NodeAttestor {
   public:
    Result<AgentSvidAnswer> Attest(ServerClient&, const Bytes&) override { return UnavailableError("fixed"); }
  };
  NodeAttestorRegistry registry("node attestor");
  ASSERT_TRUE(registry
                  .Register({.name = "x509pop",
                             .configured_by = "an x509pop section",
                             .configured = [](const AgentConfig& config) { return config.join_token == "pop"; },
                             .create = [](const AgentConfig&) -> Result<std::unique_ptr<NodeAttestor>> {
                               return std::unique_ptr<NodeAttestor>(std::make_unique<Fixed>());
                             }})
                  .ok());
  for (const auto& plugin : NodeAttestors().plugins()) ASSERT_TRUE(registry.Register(plugin).ok());
  std::string chosen;
  ASSERT_TRUE(ChooseNodeAttestor(ConfigWith("pop", false), &chosen, registry).ok());
  EXPECT_EQ(chosen, "x509pop");
  ASSERT_TRUE(ChooseNodeAttestor(ConfigWith("other", false), &chosen, registry).ok());
  EXPECT_EQ(chosen, "join_token");
}

TEST(AttestorRegistryTest, TheUnixWorkloadAttestorAttestsThisProcess) {
  auto unix_attestor = MakeWorkloadAttestor("unix");
  ASSERT_TRUE(unix_attestor.ok()) << unix_attestor.status().ToString();
  transport::PeerCredentials me{.pid = ::getpid(), .uid = ::getuid(), .gid = ::getgid(), .supplementary_groups = {}};
  auto selectors = (*unix_attestor)->Attest(me);
  ASSERT_TRUE(selectors.ok()) << selectors.status().ToString();
  const Selector uid{"unix", "uid:" + std::to_string(::getuid())};
  EXPECT_NE(std::find(selectors->begin(), selectors->end(), uid), selectors->end());
  // Attested once, its binary is hashed: the next answer needs no blocking work.
  auto again = (*unix_attestor)->AttestWithoutBlocking(me, std::nullopt);
  ASSERT_TRUE(again.has_value());
  ASSERT_TRUE(again->ok());
  EXPECT_EQ(**again, *selectors);
}

}  // namespace
}  // namespace sigil::agentd
