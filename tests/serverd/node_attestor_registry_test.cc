// serverd's node attestors as plug-ins: chosen by name from node_attestors:, an unknown name
// refused naming the known ones, and a new attestor needing nothing but its registration.
#include <gtest/gtest.h>

#include "core/config.h"
#include "tests/support/process.h"
#include "serverd/attestor/node_attestor.h"
#include "serverd/datastore/sqlite_datastore.h"
#include "serverd/server_config.h"

namespace sigil::serverd {
namespace {

std::vector<std::string> NamesOf(const std::vector<ConfiguredNodeAttestor>& configured) {
  std::vector<std::string> names;
  for (const auto& attestor : configured) names.push_back(attestor.name);
  return names;
}

Result<ServerConfig> ConfigWith(const std::string& node_attestors_yaml) {
  return ParseServerConfig("server:\n  trust_domain: example.org\n" + node_attestors_yaml, "server.yaml");
}

TEST(NodeAttestorRegistryTest, TheBuiltInAttestorsAreRegisteredByName) {
  EXPECT_EQ(NodeAttestors().Names(), "join_token, tpm_devid");
}

TEST(NodeAttestorRegistryTest, JoinTokenIsOnUntilConfigTurnsItOff) {
  auto plain = ConfigWith("");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(NamesOf(plain->node_attestors), std::vector<std::string>{"join_token"});

  auto off = ConfigWith("node_attestors:\n  join_token: {enabled: false}\n");
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_TRUE(off->node_attestors.empty());
}

TEST(NodeAttestorRegistryTest, ConfigChoosesTpmDevIdAndItsSettingsAreChecked) {
  auto both = ConfigWith("node_attestors:\n  tpm_devid:\n    devid_ca_path: /etc/devid.pem\n"
                         "    allow_ek_without_certificate: true\n");
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_EQ(NamesOf(both->node_attestors), (std::vector<std::string>{"join_token", "tpm_devid"}));

  auto bad = ConfigWith("node_attestors:\n  tpm_devid:\n    colour: blue\n");
  ASSERT_FALSE(bad.ok());
  const std::string m = bad.status().message();
  EXPECT_NE(m.find("node_attestors.tpm_devid.devid_ca_path: is required"), std::string::npos) << m;
  EXPECT_NE(m.find("node_attestors.tpm_devid.endorsement_ca_path: is required"), std::string::npos) << m;
  EXPECT_NE(m.find("node_attestors.tpm_devid.colour: unknown key"), std::string::npos) << m;
}

TEST(NodeAttestorRegistryTest, AnUnknownAttestorIsRefusedNamingTheKnownOnes) {
  auto config = ConfigWith("node_attestors:\n  x509pop: {}\n  join_token: {}\n");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find(
                "node_attestors.x509pop: unknown node attestor \"x509pop\" (known: join_token, tpm_devid)"),
            std::string::npos)
      << config.status().message();
}

// A node attestor of its own: proves every host as "test/<token>".
class EveryHostAttestor final : public NodeAttestor {
 public:
  explicit EveryHostAttestor(std::string label) : label_(std::move(label)) {}
  std::string_view name() const override { return "every_host"; }
  std::vector<wire::AttestationData> data_types() const override {
    return {wire::AttestationData::JoinTokenAttestation};
  }
  Result<AttestationStep> Attest(const wire::AttestationRequest&) override {
    return AttestationStep{.host = AttestedHost{.agent_path = "test/" + label_, .attestation_type = "every_host"}};
  }

 private:
  std::string label_;
};

TEST(NodeAttestorRegistryTest, AThirdAttestorNeedsOnlyItsRegistration) {
  NodeAttestorRegistry registry("node attestor");
  ASSERT_TRUE(registry.Register({.name = "every_host", .configure = [](ConfigSection& section) -> MakeNodeAttestor {
                                   std::string label;
                                   section.Read("label", label);
                                   section.RefuseUnknownKeys();
                                   return [label](const NodeAttestorDeps&) -> Result<std::unique_ptr<NodeAttestor>> {
                                     return std::unique_ptr<NodeAttestor>(std::make_unique<EveryHostAttestor>(label));
                                   };
                                 }})
                  .ok());
  auto doc = ConfigDocument::Parse("node_attestors:\n  every_host: {label: rack7}\n", "server.yaml");
  ASSERT_TRUE(doc.ok());
  ConfigSection section = doc->root().Section("node_attestors");
  auto configured = ReadNodeAttestors(section, registry);
  ASSERT_EQ(configured.size(), 1u);
  EXPECT_EQ(configured[0].name, "every_host");
  sigil::testing::TempDir dir;
  auto store = OpenSqliteDatastore(dir.path() / "datastore.sqlite3");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto attestor = configured[0].make(NodeAttestorDeps{.store = **store});
  ASSERT_TRUE(attestor.ok());
  flatbuffers::FlatBufferBuilder builder;
  builder.Finish(wire::CreateAttestationRequest(builder));
  auto step = (*attestor)->Attest(*flatbuffers::GetRoot<wire::AttestationRequest>(builder.GetBufferPointer()));
  ASSERT_TRUE(step.ok());
  ASSERT_TRUE(step->host.has_value());
  EXPECT_EQ(step->host->agent_path, "test/rack7");
}

}  // namespace
}  // namespace sigil::serverd
