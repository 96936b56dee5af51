// SPIRE's local authority commands against real processes: serverd with its CA key in SoftHSM2,
// agentd attested with a join token, a workload watching FetchX509SVID on the stock Python gRPC
// client. An operator prepares and activates a new X.509 authority, taints the old one and sees
// the watched SVID replaced by one the new authority issued, within seconds and long before its
// half-life; revokes it and sees it leave `bundle show` while the agent, whose own SVID the old
// authority had issued too, keeps syncing. The JWT side: a tainted key's cached JWT-SVID is not
// handed out again. Each refusal SPIRE makes is made here too, by name.
#include <openssl/x509v3.h>

#include <cctype>

#include "core/trust_bundle.h"
#include "core/x509_ca.h"
#include "tests/agentd/agent_server_fixture.h"

namespace sigil::agentd::testing {
namespace {

using nlohmann::json;
using sigil::testing::ChildProcess;
using sigil::testing::WaitUntil;

// The authority that issued the leaf of one X509SVID of a Workload API answer: its
// authorityKeyIdentifier in hex, as `localauthority x509 show` names authorities.
std::string LeafIssuer(const json& svid) {
  const std::string der = svid.is_object() && svid.contains("x509_svid") ? Unbase64(svid["x509_svid"]) : "";
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509Ptr leaf(der.empty() ? nullptr : d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  const ASN1_OCTET_STRING* id = leaf ? X509_get0_authority_key_id(leaf.get()) : nullptr;
  if (id == nullptr) return "";
  return HexEncode({ASN1_STRING_get0_data(id), static_cast<size_t>(ASN1_STRING_length(id))});
}

// Every "Authority ID: …" a pretty `localauthority` output prints, in order.
std::vector<std::string> AuthorityIds(const std::string& out) {
  // Scanned by hand: GCC 12's <regex> trips -Wmaybe-uninitialized in the sanitizer builds.
  constexpr std::string_view kLabel = "Authority ID: ";
  std::vector<std::string> ids;
  for (size_t at = out.find(kLabel); at != std::string::npos; at = out.find(kLabel, at)) {
    at += kLabel.size();
    size_t end = at;
    while (end < out.size() && (std::isalnum(static_cast<unsigned char>(out[end])) || out[end] == '_' || out[end] == '-')) {
      ++end;
    }
    if (end > at) ids.push_back(out.substr(at, end - at));
  }
  return ids;
}

// The subject key IDs of the certificates of a PEM bundle.
std::set<std::string> BundleAuthorityIds(const std::string& pem) {
  std::set<std::string> ids;
  auto certs = CertsFromPem(pem);
  if (!certs.ok()) return ids;
  for (const auto& cert : *certs) ids.insert(X509AuthorityId(cert.get()));
  return ids;
}

class LocalAuthorityProcessTest : public AgentServerFixture {};

TEST_F(LocalAuthorityProcessTest, ATaintedAuthorityIsReplacedEverywhereAndARevokedOneLeavesTheBundle) {
  StartServer();
  CreateEntry("/web", ::getuid());
  StartAgent();
  ASSERT_FALSE(WaitForSvidSerial().empty()) << agent_->logs();

  auto shown = Cli({"localauthority", "x509", "show"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("Prepared X.509 authority:\n  No prepared X.509 authority found\n"), std::string::npos)
      << shown.out;
  EXPECT_NE(shown.out.find("Old X.509 authority:\n  No old X.509 authority found\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("  Upstream authority ID: No upstream authority\n"), std::string::npos) << shown.out;
  ASSERT_EQ(AuthorityIds(shown.out).size(), 1u) << shown.out;
  const std::string first = AuthorityIds(shown.out)[0];
  EXPECT_EQ(LeafIssuer(FirstSvid()), first);
  auto jwt_shown = Cli({"localauthority", "jwt", "show", "-output", "json"});
  ASSERT_EQ(jwt_shown.exit_code, 0) << jwt_shown.err;
  const std::string first_kid = json::parse(jwt_shown.out)["active"].value("authority_id", "");
  ASSERT_FALSE(first_kid.empty()) << jwt_shown.out;
  EXPECT_EQ(json::parse(jwt_shown.out)["active"].value("upstream_authority_subject_key_id", "absent"), "")
      << "every field present, as SPIRE prints it: " << jwt_shown.out;
  const json first_jwt = Python({"jwt", "", "db"});
  ASSERT_TRUE(first_jwt.contains("svids")) << first_jwt.dump();
  const std::string first_token = first_jwt["svids"][0].value("svid", "");

  // Refused as SPIRE refuses them: the active authority, a missing ID, an unknown one.
  auto active_taint = Cli({"localauthority", "x509", "taint", "-authorityID", first});
  EXPECT_EQ(active_taint.exit_code, 1);
  EXPECT_NE(active_taint.err.find("could not taint X.509 authority: X.509 authority " + first + " is the active one"),
            std::string::npos) << active_taint.err;
  auto no_id = Cli({"localauthority", "x509", "revoke"});
  EXPECT_EQ(no_id.exit_code, 1);
  EXPECT_NE(no_id.err.find("an authority ID is required"), std::string::npos) << no_id.err;
  auto nothing_prepared = Cli({"localauthority", "x509", "activate", "-authorityID", first});
  EXPECT_EQ(nothing_prepared.exit_code, 1);
  EXPECT_NE(nothing_prepared.err.find("no prepared X.509 authority"), std::string::npos) << nothing_prepared.err;

  auto watcher = ChildProcess::Start(python_->Argv(agent_->socket_path().string(), {"watch"}), work_.path());
  ASSERT_TRUE(watcher.ok()) << watcher.status().ToString();
  std::vector<json> seen;
  WatchedLines lines(*watcher);
  auto poll = [&] { lines.Poll([&](json message) { seen.push_back(std::move(message)); }); };
  ASSERT_TRUE(WaitUntil([&] { poll(); return !seen.empty(); }, std::chrono::seconds(10))) << watcher->stderr_text();
  ASSERT_EQ(LeafIssuer(seen.back()["svids"][0]), first);

  auto prepared = Cli({"localauthority", "x509", "prepare"});
  ASSERT_EQ(prepared.exit_code, 0) << prepared.err;
  EXPECT_EQ(prepared.out.rfind("Prepared X.509 authority:\n  Authority ID: ", 0), 0u) << prepared.out;
  ASSERT_EQ(AuthorityIds(prepared.out).size(), 1u) << prepared.out;
  const std::string second = AuthorityIds(prepared.out)[0];
  EXPECT_NE(second, first);
  auto bundle = Cli({"bundle", "show"});
  EXPECT_EQ(BundleAuthorityIds(bundle.out), (std::set<std::string>{first, second})) << "published when prepared";

  auto activated = Cli({"localauthority", "x509", "activate", "-authorityID", second, "-output", "json"});
  ASSERT_EQ(activated.exit_code, 0) << activated.err;
  EXPECT_EQ(json::parse(activated.out)["activated_authority"].value("authority_id", ""), second) << activated.out;
  shown = Cli({"localauthority", "x509", "show"});
  EXPECT_EQ(AuthorityIds(shown.out), (std::vector<std::string>{second, first})) << "active, then old: " << shown.out;

  // Tainted: the workload's SVID, which the old authority issued an hour's half-life ago, is
  // replaced by one from the new authority and pushed to the watcher.
  auto tainted = Cli({"localauthority", "x509", "taint", "-authorityID", first});
  ASSERT_EQ(tainted.exit_code, 0) << tainted.err;
  EXPECT_EQ(tainted.out.rfind("Tainted X.509 authority:\n  Authority ID: " + first + "\n", 0), 0u) << tainted.out;
  const auto tainted_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitUntil([&] { poll(); return LeafIssuer(seen.back()["svids"][0]) == second; },
                        std::chrono::seconds(15)))
      << agent_->logs();
  const auto replaced_after = std::chrono::steady_clock::now() - tainted_at;
  EXPECT_LT(replaced_after, std::chrono::seconds(5));
  std::cout << "SVID replaced " << std::chrono::duration_cast<std::chrono::milliseconds>(replaced_after).count()
            << " ms after the taint\n";
  auto bundle_json = json::parse(Cli({"bundle", "show", "-output", "json"}).out, nullptr, false);
  int tainted_count = 0;
  for (const json& authority : bundle_json["x509_authorities"]) tainted_count += authority.value("tainted", false);
  EXPECT_EQ(tainted_count, 1) << bundle_json.dump();
  EXPECT_TRUE(WaitUntil([&] { return agent_->logs().find("issued the agent's SVID is tainted") != std::string::npos; },
                        std::chrono::seconds(10)))
      << "the agent renews its own SVID too: " << agent_->logs();

  auto untainted_jwt = Cli({"localauthority", "jwt", "revoke", "-authorityID", first_kid});
  EXPECT_EQ(untainted_jwt.exit_code, 1);
  EXPECT_NE(untainted_jwt.err.find("is not tainted"), std::string::npos) << untainted_jwt.err;
  ASSERT_EQ(Cli({"localauthority", "jwt", "taint", "-authorityID", first_kid}).exit_code, 0);
  ASSERT_TRUE(WaitUntil(
      [&] {
        json again = Python({"jwt", "", "db"});
        return again.contains("svids") && again["svids"][0].value("svid", "") != first_token;
      },
      std::chrono::seconds(10)))
      << "a JWT-SVID the tainted key signed is not handed out again";

  // Revoked: gone from the bundle serverd shows and from the one the workload receives.
  auto revoked = Cli({"localauthority", "x509", "revoke", "-authorityID", first});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  EXPECT_EQ(revoked.out.rfind("Revoked X.509 authority:\n  Authority ID: " + first + "\n", 0), 0u) << revoked.out;
  bundle = Cli({"bundle", "show"});
  EXPECT_EQ(BundleAuthorityIds(bundle.out), (std::set<std::string>{second})) << bundle.out;
  shown = Cli({"localauthority", "x509", "show"});
  EXPECT_NE(shown.out.find("Old X.509 authority:\n  No old X.509 authority found\n"), std::string::npos) << shown.out;
  const auto workload_bundle = [&] {
    std::set<std::string> ids;
    json x509 = Python({"x509-bundles"});
    if (!x509.contains("bundles") || !x509["bundles"].contains("spiffe://example.org")) return ids;
    const std::string der = Unbase64(x509["bundles"]["spiffe://example.org"]);
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    const auto* end = p + der.size();
    while (p < end) {
      X509Ptr cert(d2i_X509(nullptr, &p, end - p));
      if (!cert) break;
      ids.insert(X509AuthorityId(cert.get()));
    }
    return ids;
  };
  EXPECT_TRUE(WaitUntil([&] { return workload_bundle() == std::set<std::string>{second}; }, std::chrono::seconds(10)));

  // The agent still talks to serverd with an SVID the remaining authority issued.
  const size_t before = seen.size();
  CreateEntry("/after-revoke", ::getuid());
  EXPECT_TRUE(WaitUntil([&] { poll(); return seen.size() > before && seen.back()["svids"].size() == 2; },
                        std::chrono::seconds(10)))
      << agent_->logs();
  watcher->Stop();
}

}  // namespace
}  // namespace sigil::agentd::testing
