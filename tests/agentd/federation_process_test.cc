// Trust across trust domains, with real serverd and agentd processes and the stock Python gRPC
// client: a bundle set on serverd (`serverd bundle set`) reaches the workloads whose entries
// federate with its trust domain through every Workload API call that carries bundles, follows
// the bundle when it is replaced or deleted, and lets ValidateJWTSVID accept a token of that
// trust domain; `agentd api fetch x509 -write` writes it to a file. An agent restarted while
// serverd is unreachable hands out the federated bundles it kept in data_dir. JWT-SVIDs carry
// the issuer serverd's jwt_issuer names, which OIDC relying parties check.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "core/jwt_svid.h"
#include "core/trust_bundle.h"
#include "hw/soft_key_store.h"
#include "tests/agentd/agent_server_fixture.h"
#include "tests/support/process.h"
#include "tests/support/test_pki.h"

namespace sigil::agentd::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sigil::testing::TestCa;
using sigil::testing::WaitUntil;
using sigil::testing::WriteFile;

constexpr char kPartner[] = "spiffe://partner.test";

std::string Der(X509* cert) {
  auto der = CertToDer(cert);
  return der.ok() ? std::string(der->begin(), der->end()) : std::string();
}

class FederationTest : public AgentServerFixture {
 protected:
  // Sets the partner trust domain's bundle on serverd from `text` in `format` (pem or spiffe).
  void SetPartnerBundle(const std::string& text, const std::string& format = "pem") {
    const auto path = work_.path() / ("partner." + format);
    WriteFile(path, text);
    auto set = Cli({"bundle", "set", "-id", kPartner, "-path", path.string(), "-format", format});
    ASSERT_EQ(set.exit_code, 0) << set.err;
  }

  // An entry for this process's uid that federates with the partner trust domain.
  void CreateFederatingEntry() {
    auto out = Cli({"entry", "create", "-spiffeID", "spiffe://example.org/federating", "-parentID", agent_id_,
                    "-selector", "unix:uid:" + std::to_string(::getuid()), "-federatesWith", kPartner});
    ASSERT_EQ(out.exit_code, 0) << out.err;
  }

  // The partner bundle as the first X509-SVID message carries it; empty when it carries none.
  std::string FederatedDerInX509Svid() {
    json answer;
    FirstSvid(std::nullopt, &answer);
    if (!answer.contains("messages") || answer["messages"].empty()) return "";
    const json& federated = answer["messages"][0]["federated_bundles"];
    return federated.contains(kPartner) ? Unbase64(federated[kPartner]) : "";
  }

  bool X509SvidCarries(const std::string& der, std::chrono::seconds within = std::chrono::seconds(15)) {
    return WaitUntil([&] { return FederatedDerInX509Svid() == der; }, within);
  }

  // What `agentd api fetch x509 -write` writes for the partner; empty when it writes nothing.
  std::string WrittenFederatedBundle(const std::string& folder) {
    const auto written = work_.path() / folder;
    fs::create_directories(written);
    auto fetched = agent_->Cli({"api", "fetch", "x509", "-write", written.string()});
    EXPECT_TRUE(fetched.ok() && fetched->exit_code == 0) << (fetched.ok() ? fetched->err : fetched.status().ToString());
    const auto file = written / "federated_bundle.0.0.pem";
    return fs::exists(file) ? sigil::testing::ReadFile(file) : "";
  }
};

TEST_F(FederationTest, ASetBundleReachesTheWorkloadsThatFederateAndFollowsItsChanges) {
  StartServer();
  StartAgent();
  TestCa partner("partner.test");
  SetPartnerBundle(partner.CertPem());
  CreateFederatingEntry();
  WaitForSvidSerial();

  ASSERT_TRUE(X509SvidCarries(Der(partner.cert()))) << FederatedDerInX509Svid().size();
  json x509_bundles = Python({"x509-bundles"});
  ASSERT_TRUE(x509_bundles["bundles"].contains(kPartner)) << x509_bundles.dump();
  EXPECT_EQ(Unbase64(x509_bundles["bundles"][kPartner]), Der(partner.cert()));
  EXPECT_TRUE(x509_bundles["bundles"].contains("spiffe://example.org"));
  EXPECT_TRUE(Python({"jwt-bundles"})["bundles"].contains(kPartner));

  // `agentd api fetch x509 -write` writes it as SPIRE's agent does.
  const auto written = work_.path() / "written";
  std::filesystem::create_directories(written);
  auto fetched = agent_->Cli({"api", "fetch", "x509", "-write", written.string()});
  ASSERT_TRUE(fetched.ok() && fetched->exit_code == 0) << (fetched.ok() ? fetched->err : fetched.status().ToString());
  EXPECT_EQ(sigil::testing::ReadFile(written / "federated_bundle.0.0.pem"), partner.CertPem());
  EXPECT_NE(fetched->out.find("for trust domain spiffe://partner.test"), std::string::npos) << fetched->out;

  // A new bundle for the partner (its CA rotated) reaches the workload without a restart.
  TestCa rotated("partner.test");
  SetPartnerBundle(partner.CertPem() + rotated.CertPem());
  EXPECT_TRUE(X509SvidCarries(Der(partner.cert()) + Der(rotated.cert())));

  // Deleted (the entries dissociated), the workload no longer gets it.
  auto deleted = Cli({"bundle", "delete", "-id", kPartner, "-mode", "dissociate"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_TRUE(X509SvidCarries(""));
  EXPECT_FALSE(Python({"x509-bundles"})["bundles"].contains(kPartner));
  EXPECT_NE(agent_->logs().find("federated bundles updated"), std::string::npos);
}

// Without the kept bundle, a workload restarted meanwhile would hold its SVID but could not
// check the partner's until serverd answers: mutual TLS across the domains would fail.
TEST_F(FederationTest, RestartedDuringAnOutageTheAgentServesTheFederatedBundleItKept) {
  StartServer();
  StartAgent();
  TestCa partner("partner.test");
  SetPartnerBundle(partner.CertPem());
  CreateFederatingEntry();
  const std::string serial = WaitForSvidSerial();
  ASSERT_TRUE(X509SvidCarries(Der(partner.cert())));
  // Kept as it arrives, owner-only as the SVIDs beside it, so a kill -9 loses none of it.
  const fs::path kept = agent_->data_dir() / "svids" / "federated_bundles.json";
  EXPECT_TRUE(WaitUntil([&] { return fs::exists(kept); }, std::chrono::seconds(10)));
  if (fs::exists(kept)) {
    EXPECT_EQ(static_cast<unsigned>(fs::status(kept).permissions() & fs::perms::all), 0600u);
  }
  agent_->Kill();
  server_->Stop();

  Status started = agent_->StartUnsynced();
  ASSERT_TRUE(started.ok()) << started.ToString();
  EXPECT_EQ(LeafSerial(FirstSvid()), serial);
  EXPECT_EQ(FederatedDerInX509Svid(), Der(partner.cert()));
  EXPECT_TRUE(Python({"x509-bundles"})["bundles"].contains(kPartner));
  EXPECT_EQ(WrittenFederatedBundle("written-in-outage"), partner.CertPem());

  // A kept file that does not parse is named and left out; the SVIDs are served all the same.
  agent_->Kill();
  WriteFile(kept, "{\"keys\": [");
  started = agent_->StartUnsynced();
  ASSERT_TRUE(started.ok()) << started.ToString();
  EXPECT_EQ(LeafSerial(FirstSvid()), serial);
  EXPECT_EQ(FederatedDerInX509Svid(), "");
  const std::string logs = agent_->logs();
  const size_t warning = logs.find("the kept federated bundles cannot be used");
  ASSERT_NE(warning, std::string::npos) << logs;
  EXPECT_NE(logs.find(kept.string(), warning), std::string::npos) << logs.substr(warning);

  // serverd answers: the bundle comes back, and is kept again.
  ASSERT_TRUE(server_->Start().ok()) << server_->logs();
  EXPECT_TRUE(X509SvidCarries(Der(partner.cert()), std::chrono::seconds(20)));
  EXPECT_TRUE(WaitUntil([&] { return fs::exists(kept); }, std::chrono::seconds(10)));
}

TEST_F(FederationTest, AWorkloadWhoseEntriesDoNotFederateGetsNoForeignBundle) {
  StartServer();
  StartAgent();
  TestCa partner("partner.test");
  SetPartnerBundle(partner.CertPem());
  CreateEntry("/plain", ::getuid());
  WaitForSvidSerial();
  EXPECT_EQ(FederatedDerInX509Svid(), "");
  EXPECT_FALSE(Python({"x509-bundles"})["bundles"].contains(kPartner));
}

// ValidateJWTSVID takes a token of a federated trust domain when the caller's entries federate
// with it, and refuses one signed by a key that bundle does not hold.
TEST_F(FederationTest, ValidateJwtSvidAcceptsATokenOfAFederatedTrustDomain) {
  StartServer();
  StartAgent();
  auto partner_key = hw::GenerateSoftKey(KeyType::kEcP256);
  auto stranger_key = hw::GenerateSoftKey(KeyType::kEcP256);
  ASSERT_TRUE(partner_key.ok() && stranger_key.ok());
  TrustBundle bundle(*TrustDomain::Parse("partner.test"));
  bundle.jwt.authorities.emplace("partner-key-1", JwtAuthority(UpRef(partner_key->get())));
  auto jwks = TrustBundleToJwks(bundle);
  ASSERT_TRUE(jwks.ok()) << jwks.status().ToString();
  SetPartnerBundle(*jwks, "spiffe");
  CreateFederatingEntry();
  WaitForSvidSerial();
  WaitUntil([&] { return Python({"jwt-bundles"})["bundles"].contains(kPartner); }, std::chrono::seconds(15));

  const auto mint = [](EvpPkeyPtr key) {
    auto signer = hw::MakeSoftSigner(std::move(key));
    EXPECT_TRUE(signer.ok());
    JwtSvidParams params(*SpiffeId::Parse("spiffe://partner.test/billing"));
    params.audience = {"payments"};
    auto token = MintJwtSvid(**signer, "partner-key-1", params);
    EXPECT_TRUE(token.ok()) << token.status().ToString();
    return token.ok() ? token->token : "";
  };
  json valid = Python({"validate", "payments", mint(std::move(*partner_key))});
  EXPECT_EQ(valid.value("spiffe_id", ""), "spiffe://partner.test/billing") << valid.dump();
  json forged = Python({"validate", "payments", mint(std::move(*stranger_key))});
  EXPECT_EQ(forged.value("code", ""), "INVALID_ARGUMENT") << forged.dump();
}

TEST_F(FederationTest, JwtSvidsCarryTheConfiguredIssuer) {
  StartServer({.extra_yaml = "  jwt_issuer: https://oidc.example.org\n"});
  StartAgent();
  CreateEntry("/issued", ::getuid());
  WaitForSvidSerial();
  json fetched = Python({"jwt", "spiffe://example.org/issued", "payments"});
  ASSERT_TRUE(fetched.contains("svids")) << fetched.dump();
  json validated = Python({"validate", "payments", fetched["svids"][0].value("svid", "")});
  EXPECT_EQ(validated["claims"].value("iss", ""), "https://oidc.example.org") << validated.dump();
  EXPECT_EQ(validated["claims"].value("sub", ""), "spiffe://example.org/issued");
}

}  // namespace
}  // namespace sigil::agentd::testing
