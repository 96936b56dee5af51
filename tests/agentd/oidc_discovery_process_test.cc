// OIDC discovery against real processes: serverd serving /.well-known/openid-configuration and
// its key set, agentd handing a workload a JWT-SVID, and Debian's PyJWT (PyJWKClient) checking
// that token as an OIDC relying party does (OpenBao's and Vault's JWT auth among them), with
// nothing but the issuer URL: in the clear behind a proxy's scheme, over TLS with a certificate
// from files, and after a CA rotation has taken the signing key out of the set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/agentd/agent_server_fixture.h"

namespace sigil::agentd::testing {
namespace {

using nlohmann::json;
using sigil::testing::FreeLoopbackPort;
using sigil::testing::RunProcess;
using sigil::testing::WaitUntil;

class OidcDiscoveryTest : public AgentServerFixture {
 protected:
  // oidc_validate.py's answer as JSON; `cert_file` is the CA it trusts over HTTPS.
  json Relying(const std::vector<std::string>& args, const std::string& cert_file = "") {
    std::vector<std::string> argv = {"/usr/bin/python3", std::string(SIGIL_AGENTD_TEST_DIR) + "/oidc_validate.py"};
    argv.insert(argv.end(), args.begin(), args.end());
    sigil::testing::ProcessOptions options;
    if (!cert_file.empty()) options.env["SSL_CERT_FILE"] = cert_file;
    auto run = RunProcess(argv, options, std::chrono::seconds(30));
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    if (!run.ok()) return json();
    EXPECT_EQ(run->exit_code, 0) << run->err;
    json out = json::parse(run->out, nullptr, false);
    EXPECT_FALSE(out.is_discarded()) << run->out << run->err;
    return out;
  }

  // A JWT-SVID for `audience` from `agentd api fetch jwt`, as this process's own workload.
  std::string FetchJwt(const std::string& audience) {
    const std::string prefix = "token(spiffe://example.org/relying-party-client):\n\t";
    std::string token;
    WaitUntil([&] {
      auto fetched = agent_->Cli({"api", "fetch", "jwt", "-audience", audience});
      if (!fetched.ok() || fetched->exit_code != 0 || fetched->out.rfind(prefix, 0) != 0) return false;
      token = fetched->out.substr(prefix.size(), fetched->out.find('\n', prefix.size()) - prefix.size());
      return true;
    }, std::chrono::seconds(15));
    return token;
  }
};

TEST_F(OidcDiscoveryTest, AJwtSvidFromTheAgentValidatesWithKeysDiscoveredFromTheIssuer) {
  const int port = FreeLoopbackPort();
  const std::string issuer = "http://127.0.0.1:" + std::to_string(port);
  StartServer({.extra_yaml = "  jwt_issuer: " + issuer + "\n",
               .top_level_yaml = "oidc_discovery:\n"
                                 "  domains: [\"127.0.0.1\"]\n"
                                 "  insecure_addr: 127.0.0.1:" + std::to_string(port) + "\n"
                                 "  allow_insecure_scheme: true\n"
                                 "  set_key_use: true\n"});
  StartAgent();
  CreateEntry("/relying-party-client", ::getuid());
  const std::string token = FetchJwt("openbao");
  ASSERT_FALSE(token.empty());

  json valid = Relying({"validate", issuer, token, "openbao"});
  ASSERT_EQ(valid.value("valid", false), true) << valid.dump();
  EXPECT_EQ(valid["claims"]["sub"], "spiffe://example.org/relying-party-client");
  EXPECT_EQ(valid["claims"]["iss"], issuer);
  EXPECT_EQ(valid["jwks_uri"], issuer + "/keys");

  // The relying party's own checks still bite: another audience is refused.
  json other = Relying({"validate", issuer, token, "vault"});
  EXPECT_EQ(other.value("valid", true), false) << other.dump();
  EXPECT_NE(other.value("error", "").find("InvalidAudienceError"), std::string::npos) << other.dump();

  // The key set is the JWT authorities alone, each with its kid, alg and (set_key_use) use,
  // never cached on the way.
  json keys = Relying({"get", issuer + "/keys"});
  ASSERT_EQ(keys["status"], 200) << keys.dump();
  json set = json::parse(keys["body"].get<std::string>());
  ASSERT_FALSE(set["keys"].empty()) << set.dump();
  for (const json& key : set["keys"]) {
    EXPECT_EQ(key.value("use", ""), "sig") << key.dump();
    EXPECT_EQ(key.value("alg", ""), "ES256") << key.dump();
    EXPECT_FALSE(key.value("kid", "").empty()) << key.dump();
    EXPECT_FALSE(key.contains("x5c")) << key.dump();
  }
  EXPECT_EQ(keys["headers"].value("Cache-Control", ""), "no-cache, no-store, must-revalidate") << keys.dump();

  // Behind a proxy that terminates TLS, the document's URLs say https.
  json proxied = Relying({"get", issuer + "/.well-known/openid-configuration"});
  ASSERT_EQ(proxied["status"], 200);
  EXPECT_EQ(json::parse(proxied["body"].get<std::string>())["jwks_uri"], issuer + "/keys");

  // A host the operator did not list is refused, as SPIRE's provider refuses it.
  json foreign = Relying({"get", issuer + "/.well-known/openid-configuration", "attacker.example"});
  EXPECT_EQ(foreign["status"], 400) << foreign.dump();
  EXPECT_NE(foreign["body"].get<std::string>().find("domain \"attacker.example\" is not allowed"), std::string::npos);
  json elsewhere = Relying({"get", issuer + "/nothing-here"});
  EXPECT_EQ(elsewhere["status"], 404);
}

TEST_F(OidcDiscoveryTest, OverTlsWithACertificateFromFiles) {
  const std::string cert = (work_.path() / "oidc.crt").string();
  const std::string key = (work_.path() / "oidc.key").string();
  const auto make_certificate = [&](const std::string& cert_path, const std::string& key_path) {
    auto made = RunProcess({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-keyout", key_path, "-out", cert_path, "-days", "1", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost"});
    ASSERT_TRUE(made.ok() && made->exit_code == 0) << (made.ok() ? made->err : made.status().ToString());
  };
  make_certificate(cert, key);
  const int port = FreeLoopbackPort();
  const std::string issuer = "https://localhost:" + std::to_string(port);
  StartServer({.extra_yaml = "  jwt_issuer: " + issuer + "\n",
               .top_level_yaml = "oidc_discovery:\n"
                                 "  domains: [localhost]\n"
                                 "  serving_cert_file:\n"
                                 "    cert_file_path: " + cert + "\n"
                                 "    key_file_path: " + key + "\n"
                                 "    addr: 127.0.0.1:" + std::to_string(port) + "\n"
                                 "    file_sync_interval: 1s\n"});
  StartAgent();
  CreateEntry("/relying-party-client", ::getuid());
  const std::string token = FetchJwt("openbao");
  ASSERT_FALSE(token.empty());
  json valid = Relying({"validate", issuer, token, "openbao"}, cert);
  ASSERT_EQ(valid.value("valid", false), true) << valid.dump();
  EXPECT_EQ(valid["jwks_uri"], issuer + "/keys");

  // Nothing is answered in the clear on the TLS port.
  json plain = Relying({"get", "http://127.0.0.1:" + std::to_string(port) + "/keys"});
  EXPECT_EQ(plain.value("status", -1), 0) << plain.dump();

  // A renewed certificate, written over the files, is served within file_sync_interval: a
  // relying party trusting only the new one gets through, one trusting only the old one not.
  const std::string old_cert = (work_.path() / "oidc-old.crt").string();
  std::filesystem::copy_file(cert, old_cert);
  const std::string next_cert = (work_.path() / "oidc-next.crt").string();
  const std::string next_key = (work_.path() / "oidc-next.key").string();
  make_certificate(next_cert, next_key);
  std::filesystem::copy_file(next_key, key, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(next_cert, cert, std::filesystem::copy_options::overwrite_existing);
  EXPECT_TRUE(WaitUntil([&] { return Relying({"get", issuer + "/keys"}, next_cert).value("status", 0) == 200; },
                        std::chrono::seconds(15)));
  EXPECT_EQ(Relying({"get", issuer + "/keys"}, old_cert).value("status", -1), 0);
}

TEST_F(OidcDiscoveryTest, ATokenSignedByARotatedOutKeyIsRefused) {
  // A 12-second CA: the next one is published at 6 s, active at 10 s, and the first one (and
  // its JWT key) leaves the bundle, and the key set, at 12 s.
  const int port = FreeLoopbackPort();
  const std::string issuer = "http://127.0.0.1:" + std::to_string(port);
  StartServer({.ca_ttl = "12s",
               .default_x509_svid_ttl = "4s",
               .extra_yaml = "  jwt_issuer: " + issuer + "\n  default_jwt_svid_ttl: 4s\n  agent_ttl: 4s\n",
               .top_level_yaml = "oidc_discovery:\n"
                                 "  domains: [\"127.0.0.1\"]\n"
                                 "  insecure_addr: 127.0.0.1:" + std::to_string(port) + "\n"
                                 "  allow_insecure_scheme: true\n"});
  auto minted = Cli({"jwt", "mint", "-spiffeID", "spiffe://example.org/rotated", "-audience", "openbao", "-ttl", "60"});
  ASSERT_EQ(minted.exit_code, 0) << minted.err;
  std::string token = minted.out;
  while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
  json before = Relying({"validate", issuer, token, "openbao"});
  ASSERT_EQ(before.value("valid", false), true) << before.dump();
  const std::string kid = json::parse(Relying({"get", issuer + "/keys"})["body"].get<std::string>())["keys"][0]["kid"];

  // The token's key leaves the set once its CA has expired; a relying party that fetches the
  // set again (PyJWKClient does, for a kid it lacks) refuses the token.
  bool gone = false;
  WaitUntil([&] {
    json set = json::parse(Relying({"get", issuer + "/keys"})["body"].get<std::string>(), nullptr, false);
    gone = !set.is_discarded() && !set["keys"].empty();
    for (const json& key : set.is_discarded() ? json::array() : set["keys"]) gone = gone && key["kid"] != kid;
    return gone;
  }, std::chrono::seconds(30));
  ASSERT_TRUE(gone);
  json after = Relying({"validate", issuer, token, "openbao"});
  EXPECT_EQ(after.value("valid", true), false) << after.dump();
  EXPECT_NE(after.value("error", "").find("Unable to find a signing key"), std::string::npos) << after.dump();

  // A token of the new key validates.
  auto again = Cli({"jwt", "mint", "-spiffeID", "spiffe://example.org/rotated", "-audience", "openbao", "-ttl", "3"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  std::string fresh = again.out;
  while (!fresh.empty() && (fresh.back() == '\n' || fresh.back() == ' ')) fresh.pop_back();
  EXPECT_EQ(Relying({"validate", issuer, fresh, "openbao"}).value("valid", false), true);
}

}  // namespace
}  // namespace sigil::agentd::testing
