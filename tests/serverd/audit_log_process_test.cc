// The audit log of a real serverd (server.audit_log_enabled, its own file): each admin action
// and each agent attestation and renewal leaves one JSON line with the caller, the method, the
// request's fields and the outcome; a refused call too; and no secret (a join token, a CSR, a
// minted token) appears in the file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "agentd/sync/agent_svid.h"
#include "agentd/sync/server_client.h"
#include "core/base64url.h"
#include "core/csr.h"
#include "core/openssl_util.h"
#include "hw/soft_key_store.h"
#include "tests/support/serverd_process.h"
#include "tests/support/softhsm_suite.h"
#include "transport/event_loop.h"

namespace sigil::testing {
namespace {

using agentd::ServerClient;
using nlohmann::json;
using namespace std::chrono_literals;

const TrustDomain kTd = *TrustDomain::Parse("example.org");

std::string Sha256Of(const std::string& text) {
  return HexEncode(Sha256(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size())));
}

class AuditLogTest : public SoftHsmSuite<> {
 protected:
  void SetUp() override {
    audit_path_ = work_.path() / "audit.log";
    auto server = ServerdProcess::Create(
        *hsm_, "audit", {.extra_yaml = "  audit_log_enabled: true\n  audit_log_path: " + audit_path_.string() + "\n"});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    ASSERT_TRUE(server_->Start().ok()) << server_->logs();
  }

  void TearDown() override {
    if (server_) server_->Stop();
    if (HasFailure() && server_) std::cerr << "serverd logs:\n" << server_->logs().substr(0, 20'000);
  }

  // The lines written since the last call, parsed.
  std::vector<json> NewLines() {
    const std::string text = ReadFile(audit_path_);
    std::vector<json> lines;
    size_t at = read_;
    for (size_t end = text.find('\n', at); end != std::string::npos; at = end + 1, end = text.find('\n', at)) {
      lines.push_back(json::parse(text.substr(at, end - at), nullptr, false));
      EXPECT_FALSE(lines.back().is_discarded()) << text.substr(at, end - at);
    }
    read_ = at;
    return lines;
  }

  // The one new line of `method`; null (and a failure) unless there is exactly one.
  json OnlyLineOf(const std::string& method) {
    json found;
    int count = 0;
    for (json& line : NewLines()) {
      if (line.value("method", "") == method) {
        found = std::move(line);
        ++count;
      }
    }
    EXPECT_EQ(count, 1) << method;
    return count == 1 ? found : json();
  }

  // An admin line: this test's uid and pid-bearing caller, the method and its outcome.
  void ExpectAdminLine(const json& line, const std::string& status) {
    EXPECT_EQ(line.value("type", ""), "audit") << line.dump();
    EXPECT_EQ(line.value("api", ""), "admin") << line.dump();
    EXPECT_EQ(line.value("caller_uid", -1), static_cast<int>(::getuid())) << line.dump();
    EXPECT_GT(line.value("caller_pid", 0), 0) << line.dump();
    EXPECT_EQ(line.value("status", ""), status) << line.dump();
    EXPECT_EQ(line.value("time", "").size(), 20u) << line.dump();
  }

  ProcessOutput Cli(std::vector<std::string> args) { return server_->MustCli(std::move(args)); }

  TempDir work_{"sigil-audit"};
  std::filesystem::path audit_path_;
  std::unique_ptr<ServerdProcess> server_;
  size_t read_ = 0;
};

TEST_F(AuditLogTest, EachAdminActionAndAgentAttestationLeavesOneLineAndNoSecret) {
  std::vector<std::string> secrets;

  // A join token: its digest is audited, never its value.
  ProcessOutput token = Cli({"token", "generate", "-ttl", "600", "-output", "json"});
  ASSERT_EQ(token.exit_code, 0) << token.err;
  const std::string token_value = json::parse(token.out, nullptr, false).value("value", "");
  ASSERT_FALSE(token_value.empty()) << token.out;
  json line = OnlyLineOf("/v1/agent/CreateJoinToken");
  ExpectAdminLine(line, "OK");
  EXPECT_EQ(line["request"].value("ttl", 0), 600) << line.dump();
  EXPECT_EQ(line["response"]["value"].value("sha256", ""), Sha256Of(token_value)) << line.dump();

  // Another, never used: it must never appear.
  ProcessOutput unused = Cli({"token", "generate", "-output", "json"});
  secrets.push_back(json::parse(unused.out, nullptr, false).value("value", ""));
  ASSERT_FALSE(secrets.back().empty()) << unused.out;
  EXPECT_EQ(OnlyLineOf("/v1/agent/CreateJoinToken")["response"]["value"].value("sha256", ""), Sha256Of(secrets.back()));
  // Until it is spent, the first is a secret too; spent, it names the agent, as SPIRE names it.
  EXPECT_EQ(ReadFile(audit_path_).find(token_value), std::string::npos);

  // The agent attests with it, then renews its SVID: both on the agent API.
  transport::LoopThread loop;
  loop.Start();
  auto bundle = X509BundleFromPem(kTd, Cli({"bundle", "show"}).out);
  ASSERT_TRUE(bundle.ok());
  ServerClient agent(ServerClient::Options{.endpoint = {.host = "127.0.0.1", .port = server_->agent_port()},
                                           .trust_domain = kTd, .timeout = 10s},
                     &loop.loop());
  ASSERT_TRUE(agent.SetBundle(*bundle).ok());
  auto key = hw::GenerateSoftKey(KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  const Bytes csr = *MakeCsr(key->get());
  secrets.push_back(Base64Encode(csr));
  auto svid = agent.AttestWithJoinToken(token_value, csr);
  ASSERT_TRUE(svid.ok()) << svid.status().ToString();
  line = OnlyLineOf("AttestAgent");
  EXPECT_EQ(line.value("api", ""), "agent") << line.dump();
  EXPECT_EQ(line.value("caller_address", "").rfind("127.0.0.1:", 0), 0u) << line.dump();
  EXPECT_EQ(line.value("status", ""), "OK") << line.dump();
  EXPECT_EQ(line["request"].value("agent_id", ""), svid->agent_id.str()) << line.dump();
  EXPECT_EQ(line["request"].value("attestation_type", ""), "join_token") << line.dump();
  EXPECT_EQ(line["request"]["join_token"].value("sha256", ""), Sha256Of(token_value)) << line.dump();
  EXPECT_FALSE(line["request"].value("serial", "").empty()) << line.dump();
  auto credentials = agentd::CredentialsOf(svid->chain_der, key->get());
  ASSERT_TRUE(credentials.ok());
  ASSERT_TRUE(agent.SetAgentCredentials(*credentials).ok());
  ASSERT_TRUE(agent.RenewAgentSvid(*MakeCsr(key->get())).ok());
  line = OnlyLineOf("RenewAgent");
  EXPECT_EQ(line.value("caller_id", ""), svid->agent_id.str()) << line.dump();
  EXPECT_EQ(line.value("status", ""), "OK") << line.dump();

  // The spent token again: refused, and audited as refused.
  ServerClient stranger(ServerClient::Options{.endpoint = {.host = "127.0.0.1", .port = server_->agent_port()},
                                              .trust_domain = kTd, .timeout = 10s},
                        &loop.loop());
  ASSERT_TRUE(stranger.SetBundle(*bundle).ok());
  EXPECT_FALSE(stranger.AttestWithJoinToken(token_value, csr).ok());
  line = OnlyLineOf("AttestAgent");
  EXPECT_NE(line.value("status", ""), "OK") << line.dump();
  EXPECT_FALSE(line.value("status_message", "").empty()) << line.dump();

  // Entries: created (the new id in the line), updated, shown (a read: no response kept), deleted.
  ProcessOutput created = Cli({"entry", "create", "-parentID", svid->agent_id.str(), "-spiffeID",
                               "spiffe://example.org/web", "-selector", "unix:uid:1001", "-output", "json"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const std::string id = json::parse(created.out, nullptr, false)["results"][0]["entry"].value("id", "");
  line = OnlyLineOf("/v1/entry/BatchCreateEntry");
  ExpectAdminLine(line, "OK");
  EXPECT_EQ(line["response"]["results"][0]["entry"].value("id", ""), id) << line.dump();
  EXPECT_NE(line["request"].dump().find("unix"), std::string::npos) << line.dump();
  ASSERT_EQ(Cli({"entry", "update", "-entryID", id, "-parentID", svid->agent_id.str(), "-spiffeID",
                 "spiffe://example.org/web", "-selector", "unix:uid:1002"})
                .exit_code,
            0);
  line = OnlyLineOf("/v1/entry/BatchUpdateEntry");
  ExpectAdminLine(line, "OK");
  EXPECT_NE(line["request"].dump().find("uid:1002"), std::string::npos) << line.dump();
  ASSERT_EQ(Cli({"entry", "show", "-entryID", id}).exit_code, 0);
  line = OnlyLineOf("/v1/entry/GetEntry");
  ExpectAdminLine(line, "OK");
  EXPECT_FALSE(line.contains("response")) << line.dump();
  ASSERT_EQ(Cli({"entry", "delete", "-entryID", id}).exit_code, 0);
  line = OnlyLineOf("/v1/entry/BatchDeleteEntry");
  ExpectAdminLine(line, "OK");
  EXPECT_EQ(line["request"]["ids"][0], id) << line.dump();

  // A refused request: its status and why.
  EXPECT_NE(Cli({"entry", "show", "-entryID", "no-such-entry"}).exit_code, 0);
  line = OnlyLineOf("/v1/entry/GetEntry");
  ExpectAdminLine(line, "NOT_FOUND");
  EXPECT_FALSE(line.value("status_message", "").empty()) << line.dump();

  // Bundles: set (the bundle as a digest), deleted.
  const std::string partner_pem = Cli({"bundle", "show"}).out;
  NewLines();
  const auto pem_path = work_.path() / "partner.pem";
  WriteFile(pem_path, partner_pem);
  ASSERT_EQ(Cli({"bundle", "set", "-id", "spiffe://partner.test", "-path", pem_path.string()}).exit_code, 0);
  line = OnlyLineOf("/v1/bundle/BatchSetFederatedBundle");
  ExpectAdminLine(line, "OK");
  EXPECT_EQ(line["request"]["bundles"][0]["pem"].value("sha256", ""), Sha256Of(partner_pem)) << line.dump();
  ASSERT_EQ(Cli({"bundle", "delete", "-id", "spiffe://partner.test"}).exit_code, 0);
  line = OnlyLineOf("/v1/bundle/BatchDeleteFederatedBundle");
  ExpectAdminLine(line, "OK");

  // Agents: banned, evicted.
  ASSERT_EQ(Cli({"agent", "ban", "-spiffeID", svid->agent_id.str()}).exit_code, 0);
  ExpectAdminLine(OnlyLineOf("/v1/agent/BanAgent"), "OK");
  ASSERT_EQ(Cli({"agent", "evict", "-spiffeID", svid->agent_id.str()}).exit_code, 0);
  line = OnlyLineOf("/v1/agent/DeleteAgent");
  ExpectAdminLine(line, "OK");
  EXPECT_EQ(line["request"].value("id", ""), svid->agent_id.str()) << line.dump();

  // Minting: the JWT itself is never written.
  ProcessOutput jwt = Cli({"jwt", "mint", "-spiffeID", "spiffe://example.org/web", "-audience", "vault"});
  ASSERT_EQ(jwt.exit_code, 0) << jwt.err;
  secrets.push_back(jwt.out.substr(0, jwt.out.find('\n')));
  line = OnlyLineOf("/v1/svid/MintJWTSVID");
  ExpectAdminLine(line, "OK");
  EXPECT_EQ(line["request"].value("spiffe_id", ""), "spiffe://example.org/web") << line.dump();

  const std::string file = ReadFile(audit_path_);
  for (const std::string& secret : secrets) {
    EXPECT_EQ(file.find(secret), std::string::npos) << "a secret in the audit log: " << secret.substr(0, 40);
  }
  struct stat info{};
  ASSERT_EQ(::stat(audit_path_.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace sigil::testing
