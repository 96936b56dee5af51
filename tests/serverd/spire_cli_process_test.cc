// What a SPIRE operator types at `spire-server`, typed at a real `serverd run` (CA key in a
// SoftHSM2 token): entry IDs and batch files, the filters of entry, agent and bundle listings,
// agent purge, SPIRE's JSON shapes, and the SPIRE flags Sigil refuses with a reason.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <set>

#include "core/base64url.h"
#include "core/jwt_svid.h"
#include "core/openssl_util.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"
#include "serverd/datastore/sqlite_datastore.h"
#include "tests/support/serverd_process.h"
#include "tests/support/softhsm_suite.h"
#include "tests/support/test_pki.h"

namespace sigil::testing {
namespace {

using nlohmann::json;

class SpireCliTest : public SoftHsmSuite<> {
 protected:
  void SetUp() override {
    auto server = ServerdProcess::Create(*hsm_, "spire-cli-" + std::to_string(++tokens_));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  void TearDown() override {
    if (!server_) return;
    server_->Stop();
    EXPECT_EQ(server_->logs().find("Sanitizer"), std::string::npos) << server_->logs();
  }

  ProcessOutput Cli(std::vector<std::string> args) { return server_->MustCli(std::move(args)); }

  // The command with `input` on its standard input.
  ProcessOutput CliWithInput(std::vector<std::string> args, const std::string& input) {
    std::vector<std::string> argv = {ServerdProcess::Binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"-socketPath", server_->socket_path().string()});
    auto out = RunProcess(argv, {.stdin_data = input}, std::chrono::seconds(30));
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : ProcessOutput{};
  }

  json Json(std::vector<std::string> args) {
    args.push_back("-output");
    args.push_back("json");
    ProcessOutput out = Cli(std::move(args));
    EXPECT_EQ(out.exit_code, 0) << out.err;
    return json::parse(out.out, nullptr, false);
  }

  int64_t EntryCount() { return Json({"entry", "count"}).value("count", int64_t{-1}); }

  std::set<std::string> EntryIds() {
    std::set<std::string> ids;
    const json shown = Json({"entry", "show"});
    for (const json& e : shown["entries"]) ids.insert(e.value("id", ""));
    return ids;
  }

  void SetBundle(const std::string& trust_domain) {
    TestCa ca(trust_domain);
    const auto path = server_->dir() / (trust_domain + ".pem");
    WriteFile(path, ca.CertPem());
    ASSERT_EQ(
        Cli({"bundle", "set", "-id", "spiffe://" + trust_domain, "-path", path.string()}).exit_code,
        0);
  }

  static inline int tokens_ = 0;
  std::unique_ptr<ServerdProcess> server_;
};

std::vector<std::string> Entry(const std::string& path, const std::string& uid) {
  return {"entry",     "create",
          "-spiffeID", "spiffe://example.org" + path,
          "-parentID", "spiffe://example.org/host",
          "-selector", "unix:uid:" + uid};
}

std::vector<std::string> With(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

TEST_F(SpireCliTest, EntryIdsAreKeptFromFlagsFilesAndStandardInput) {
  auto chosen = Cli(With(Entry("/a", "1"), {"-entryID", "web-a.1"}));
  ASSERT_EQ(chosen.exit_code, 0) << chosen.err;
  EXPECT_NE(chosen.out.find("Entry ID         : web-a.1\n"), std::string::npos) << chosen.out;
  auto bad = Cli(With(Entry("/b", "2"), {"-entryID", "web b"}));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("entry id 'web b' has a character that is not allowed at position 3"),
            std::string::npos)
      << bad.err;
  auto taken = Cli(With(Entry("/b", "2"), {"-entryID", "web-a.1"}));
  EXPECT_EQ(taken.exit_code, 1);
  EXPECT_NE(taken.err.find("an entry with id web-a.1 already exists"), std::string::npos)
      << taken.err;
  ASSERT_EQ(Cli(Entry("/b", "2")).exit_code, 0);
  ASSERT_EQ(EntryCount(), 2);

  // What `entry show -output json` printed goes back in with its IDs, from a file or stdin.
  const std::string shown = Cli({"entry", "show", "-output", "json"}).out;
  const std::set<std::string> ids = EntryIds();
  json delete_request{{"ids", json::array()}};
  for (const std::string& id : ids) delete_request["ids"].push_back(id);
  WriteFile(server_->dir() / "ids.json", delete_request.dump());
  auto deleted = Cli({"entry", "delete", "-file", (server_->dir() / "ids.json").string()});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_NE(deleted.out.find("Deleted entry with ID: web-a.1\n"), std::string::npos) << deleted.out;
  EXPECT_NE(deleted.out.find("\n\n\nDeleted 2 entries successfully\n"), std::string::npos)
      << deleted.out;
  ASSERT_EQ(EntryCount(), 0);
  auto imported = CliWithInput({"entry", "create", "-data", "-"}, shown);
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(EntryIds(), ids);

  // entry update -data: the same file, each entry changed, found by its ID.
  json changed = json::parse(shown);
  for (json& e : changed["entries"])
    e["selectors"] = json::array({{{"type", "unix"}, {"value", "uid:9"}}});
  WriteFile(server_->dir() / "changed.json", changed.dump());
  auto updated = Cli({"entry", "update", "-data", (server_->dir() / "changed.json").string()});
  ASSERT_EQ(updated.exit_code, 0) << updated.err;
  EXPECT_EQ(Json({"entry", "count", "-selector", "unix:uid:9"})["count"], 2);
  EXPECT_EQ(EntryIds(), ids);
  auto mixed =
      Cli({"entry", "update", "-data", (server_->dir() / "changed.json").string(), "-hint", "x"});
  EXPECT_EQ(mixed.exit_code, 1);
  EXPECT_NE(mixed.err.find("-data cannot be combined with -hint"), std::string::npos) << mixed.err;

  // A file as SPIRE's own -data reads it: entry_id, entryExpiry, IDs as strings.
  WriteFile(server_->dir() / "spire.json",
            R"({"entries": [{"entry_id": "from-spire", "spiffe_id": "spiffe://example.org/c",
    "parent_id": "spiffe://example.org/host", "selectors": [{"type": "unix", "value": "uid:3"}],
    "entryExpiry": 1900000000, "admin": false, "store_svid": false}]})");
  ASSERT_EQ(Cli({"entry", "create", "-data", (server_->dir() / "spire.json").string()}).exit_code,
            0);
  json from_spire = Json({"entry", "show", "-entryID", "from-spire"})["entries"][0];
  EXPECT_EQ(from_spire["expires_at"], "1900000000");

  // Several IDs from standard input, one of them unknown: SPIRE's report of each and in sum.
  auto partly = CliWithInput({"entry", "delete", "-file", "-"},
                             R"({"ids": ["from-spire", "no-such-entry"]})");
  EXPECT_EQ(partly.exit_code, 1);
  EXPECT_NE(partly.out.find("Deleted entry with ID: from-spire\n"), std::string::npos)
      << partly.out;
  EXPECT_NE(partly.out.find("Deleted 1 entries successfully, but failed to delete 1 entries"),
            std::string::npos)
      << partly.out;
  EXPECT_NE(partly.err.find("Failed to delete entry with ID no-such-entry (code: NotFound"),
            std::string::npos)
      << partly.err;
  EXPECT_EQ(EntryCount(), 2);
}

TEST_F(SpireCliTest, SpireFlagsSigilLacksAreRefusedWithWhy) {
  ASSERT_EQ(Cli(With(Entry("/a", "1"), {"-entryID", "kept"})).exit_code, 0);
  for (const char* flag :
       {"-admin", "-storeSVID", "-disableX509SVIDPrefetch", "-jwtSVIDIncludeJTI"}) {
    auto created = Cli(With(Entry("/b", "2"), {flag}));
    EXPECT_EQ(created.exit_code, 1) << flag;
    EXPECT_EQ(created.err.rfind(std::string("Error: ") + flag + ": Sigil", 0), 0u) << created.err;
    auto updated =
        Cli({"entry", "update", "-entryID", "kept", "-spiffeID", "spiffe://example.org/a",
             "-parentID", "spiffe://example.org/host", "-selector", "unix:uid:5", flag});
    EXPECT_EQ(updated.exit_code, 1) << flag;
    EXPECT_NE(updated.err.find(flag), std::string::npos) << updated.err;
  }
  for (const std::string field :
       {R"("admin": true)", R"("store_svid": true)",
        R"("additional_attributes": {"disable_x509_svid_prefetch": true})",
        R"("additional_attributes": {"jwt_svid_include_jti": true})"}) {
    auto refused = CliWithInput(
        {"entry", "create", "-data", "-"},
        R"({"entries": [{"spiffe_id": "spiffe://example.org/c", "parent_id": "spiffe://example.org/host",
                                    "selectors": [{"type": "unix", "value": "uid:3"}], )" +
            field + "}]}");
    EXPECT_EQ(refused.exit_code, 1) << field;
    EXPECT_NE(refused.err.find("standard input: entries[0]."), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find(": Sigil"), std::string::npos) << refused.err;
  }
  EXPECT_EQ(EntryCount(), 1);
  EXPECT_EQ(Json({"entry", "show", "-entryID", "kept"})["entries"][0]["selectors"][0]["value"],
            "uid:1");

  // What is wrong with an ID is said as it is: no "//" is not a port, a port is.
  auto no_slashes = Cli(With(Entry("/b", "2"), {"-federatesWith", "spiffe:/other.org"}));
  EXPECT_EQ(no_slashes.exit_code, 1);
  EXPECT_NE(
      no_slashes.err.find("'spiffe:/other.org' is not a SPIFFE ID: one starts with \"spiffe://\""),
      std::string::npos)
      << no_slashes.err;
  EXPECT_EQ(no_slashes.err.find("port"), std::string::npos) << no_slashes.err;
  auto port = Cli({"entry", "show", "-parentID", "spiffe://example.org:8443/host"});
  EXPECT_EQ(port.exit_code, 1);
  EXPECT_NE(port.err.find(
                "-parentID 'spiffe://example.org:8443/host': trust domain has a port (':8443')"),
            std::string::npos)
      << port.err;

  auto profile = Cli({"federation", "create", "-trustDomain", "partner.test", "-bundleEndpointURL",
                      "https://partner.test:8443", "-bundleEndpointProfile", "https_ftp"});
  EXPECT_EQ(profile.exit_code, 1);
  EXPECT_NE(profile.err.find("'https_ftp' is unknown"), std::string::npos) << profile.err;
}

TEST_F(SpireCliTest, EntryShowAndCountTakeSpiresFilters) {
  SetBundle("other.org");
  SetBundle("third.org");
  ASSERT_EQ(Cli(With(Entry("/a", "1"), {"-federatesWith", "spiffe://other.org", "-entryID", "a"}))
                .exit_code,
            0);
  ASSERT_EQ(Cli(With(Entry("/b", "2"), {"-federatesWith", "other.org", "-federatesWith",
                                        "spiffe://third.org", "-entryID", "b"}))
                .exit_code,
            0);
  ASSERT_EQ(
      Cli(With(Entry("/c", "3"), {"-downstream", "-hint", "internal", "-entryID", "c"})).exit_code,
      0);
  ASSERT_EQ(Cli(With(Entry("/d", "4"), {"-entryID", "d"})).exit_code, 0);

  const auto ids = [&](std::vector<std::string> filter) {
    std::vector<std::string> args = {"entry", "show"};
    args.insert(args.end(), filter.begin(), filter.end());
    std::vector<std::string> found;
    const json shown = Json(args);
    for (const json& e : shown["entries"]) found.push_back(e.value("id", ""));
    std::sort(found.begin(), found.end());
    return found;
  };
  using Ids = std::vector<std::string>;
  EXPECT_EQ(ids({"-federatesWith", "spiffe://other.org"}), (Ids{"a", "b"}));
  EXPECT_EQ(ids({"-federatesWith", "other.org", "-matchFederatesWithOn", "exact"}), (Ids{"a"}));
  EXPECT_EQ(ids({"-federatesWith", "third.org", "-matchFederatesWithOn", "any"}), (Ids{"b"}));
  EXPECT_EQ(ids({"-federatesWith", "other.org", "-matchFederatesWithOn", "subset"}), (Ids{"a"}));
  EXPECT_EQ(ids({"-federatesWith", "other.org", "-federatesWith", "third.org",
                 "-matchFederatesWithOn", "subset"}),
            (Ids{"a", "b"}));
  EXPECT_EQ(ids({"-downstream"}), (Ids{"c"}));
  EXPECT_EQ(ids({"-hint", "internal"}), (Ids{"c"}));
  EXPECT_EQ(ids({"-hint", "external"}), (Ids{}));
  EXPECT_EQ(ids({}), (Ids{"a", "b", "c", "d"}));

  EXPECT_EQ(Cli({"entry", "count", "-federatesWith", "spiffe://other.org"}).out,
            "2 registration entries\n");
  EXPECT_EQ(Cli({"entry", "count", "-downstream"}).out, "1 registration entry\n");
  EXPECT_EQ(Json({"entry", "count", "-hint", "internal"}), (json{{"count", 1}}));
  EXPECT_EQ(Json({"entry", "count", "-spiffeID", "spiffe://example.org/d"})["count"], 1);
  EXPECT_EQ(Json({"entry", "count", "-parentID", "spiffe://example.org/host"})["count"], 4);
  EXPECT_EQ(
      Json({"entry", "count", "-selector", "unix:uid:2", "-matchSelectorsOn", "exact"})["count"],
      1);
  EXPECT_EQ(Json({"entry", "count", "-federatesWith", "other.org", "-downstream"})["count"], 0);

  auto combined = Cli({"entry", "show", "-entryID", "a", "-spiffeID", "spiffe://example.org/a"});
  EXPECT_EQ(combined.exit_code, 1);
  EXPECT_NE(combined.err.find("the -entryID flag can't be combined with others"), std::string::npos)
      << combined.err;
  auto bad_match =
      Cli({"entry", "count", "-federatesWith", "other.org", "-matchFederatesWithOn", "most"});
  EXPECT_EQ(bad_match.exit_code, 1);
  EXPECT_NE(bad_match.err.find("most"), std::string::npos) << bad_match.err;
}

// "2006-01-02 15:04:05 -0700 -07", SPIRE's layout of -expiresBefore, in UTC.
std::string SpireTime(int64_t unix_seconds) {
  const std::time_t t = unix_seconds;
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buffer[64];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%S +0000 +00", &utc);
  return buffer;
}

// Three agents in serverd's own datastore, written while it is stopped: one attested by join
// token, two by TPM DevID (which can attest again), one of those long expired and one banned.
class SpireAgentCliTest : public SpireCliTest {
 protected:
  void SetUp() override {
    SpireCliTest::SetUp();
    server_->Stop();
    {
      auto store = serverd::OpenSqliteDatastore(server_->datastore_path());
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      const std::vector<Selector> rack = {{"tpm_devid", "subject:cn:rack7"}};
      for (const serverd::AttestedAgent& agent :
           {serverd::AttestedAgent{
                token_agent_, "join_token", "0a", now_ + 3600, false, {}, now_, now_},
            serverd::AttestedAgent{old_tpm_, "tpm_devid", "0b", now_ - 40 * 86400, false, rack,
                                   now_, now_},
            serverd::AttestedAgent{banned_tpm_, "tpm_devid", "0c", now_ - 86400, true, rack, now_,
                                   now_}}) {
        ASSERT_TRUE((*store)->CreateAgent(agent).ok()) << agent.spiffe_id;
      }
    }
    ASSERT_TRUE(server_->Start().ok());
  }

  // The IDs `agent list` with `filter` prints, sorted.
  std::vector<std::string> Listed(std::vector<std::string> filter) {
    const json agents = Json(With({"agent", "list"}, filter));
    std::vector<std::string> found;
    for (const json& a : agents["agents"]) {
      found.push_back("spiffe://example.org" + a["id"].value("path", ""));
    }
    std::sort(found.begin(), found.end());
    return found;
  }

  const int64_t now_ = NowUnixSeconds();
  const std::string token_agent_ = "spiffe://example.org/spire/agent/join_token/t1";
  const std::string old_tpm_ = "spiffe://example.org/spire/agent/tpm_devid/old";
  const std::string banned_tpm_ = "spiffe://example.org/spire/agent/tpm_devid/banned";
};

using Ids = std::vector<std::string>;

TEST_F(SpireAgentCliTest, ListAndCountTakeSpiresFilters) {
  EXPECT_EQ(Listed({"-attestationType", "tpm_devid"}), (Ids{banned_tpm_, old_tpm_}));
  EXPECT_EQ(Listed({"-banned", "true"}), (Ids{banned_tpm_}));
  EXPECT_EQ(Listed({"-banned", "false"}), (Ids{token_agent_, old_tpm_}));
  EXPECT_EQ(Listed({"-canReattest", "false"}), (Ids{token_agent_}));
  EXPECT_EQ(Listed({"-selector", "tpm_devid:subject:cn:rack7", "-matchSelectorsOn", "exact"}),
            (Ids{banned_tpm_, old_tpm_}));
  EXPECT_EQ(Listed({"-expiresBefore", SpireTime(now_)}), (Ids{banned_tpm_, old_tpm_}));
  EXPECT_EQ(Listed({"-expiresBefore", SpireTime(now_ - 2 * 86400), "-canReattest", "true"}),
            (Ids{old_tpm_}));
  EXPECT_EQ(Cli({"agent", "count", "-canReattest", "true"}).out, "2 attested agents\n");
  EXPECT_EQ(Json({"agent", "count", "-attestationType", "join_token"}), (json{{"count", 1}}));

  json agent = Json({"agent", "show", "-spiffeID", old_tpm_});
  for (const char* field : {"id", "attestation_type", "x509svid_serial_number",
                            "x509svid_expires_at", "selectors", "banned", "can_reattest"}) {
    EXPECT_TRUE(agent.contains(field)) << field << " missing from " << agent.dump();
  }
  EXPECT_EQ(agent["x509svid_expires_at"], std::to_string(now_ - 40 * 86400));
  EXPECT_TRUE(agent["can_reattest"].get<bool>());
  EXPECT_NE(Cli({"agent", "list", "-banned", "true"})
                .out.find("Banned            : true\nCan re-attest     : true\n"),
            std::string::npos);

  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"-banned", "maybe"},
        std::vector<std::string>{"-expiresBefore", "yesterday"}}) {
    auto refused = Cli(With({"agent", "list"}, bad));
    EXPECT_EQ(refused.exit_code, 1) << bad[1];
    EXPECT_NE(refused.err.find(bad[0]), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("'" + bad[1] + "'"), std::string::npos) << refused.err;
  }
}

// Only agents that can attest again, expired longer ago than -expiredFor (30 days by default).
TEST_F(SpireAgentCliTest, PurgeTakesTheLongExpiredThatCanAttestAgain) {
  auto dry = Cli({"agent", "purge", "-dryRun"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_EQ(dry.out, "Found 1 expired agent\n\n\nAgents that can be purged:\nSPIFFE ID         : " +
                         old_tpm_ + "\n");
  json would = Json({"agent", "purge", "-expiredFor", "1h", "-dryRun"});
  ASSERT_EQ(would["expired_agents"].size(), 2u) << would.dump();
  EXPECT_FALSE(would["expired_agents"][0]["deleted"].get<bool>());
  EXPECT_EQ(Json({"agent", "count"})["count"], 3);

  auto purged = Cli({"agent", "purge"});
  ASSERT_EQ(purged.exit_code, 0) << purged.err;
  EXPECT_EQ(purged.out,
            "Found 1 expired agent\n\nAgents purged:\nSPIFFE ID         : " + old_tpm_ + "\n");
  EXPECT_EQ(Listed({}), (Ids{token_agent_, banned_tpm_}));
  EXPECT_EQ(Cli({"agent", "purge"}).out, "No agents to purge.\n");
  json none = Json({"agent", "purge", "-expiredFor", "1h"});
  ASSERT_EQ(none["expired_agents"].size(), 1u) << none.dump();
  EXPECT_EQ(none["expired_agents"][0], (json{{"agent_id", banned_tpm_}, {"deleted", true}}));
  auto bad = Cli({"agent", "purge", "-expiredFor", "soon"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("-expiredFor: 'soon' is not a duration"), std::string::npos) << bad.err;
}

TEST_F(SpireCliTest, BundlesAndMintedSvidsInSpiresJson) {
  EXPECT_EQ(Cli({"bundle", "count"}).out, "1 bundle\n");
  SetBundle("other.org");
  EXPECT_EQ(Json({"bundle", "count"}), (json{{"count", 2}}));

  const std::string pem = Cli({"bundle", "show"}).out;
  auto roots = CertsFromPem(pem);
  ASSERT_TRUE(roots.ok() && !roots->empty());
  json bundle = Json({"bundle", "show"});
  EXPECT_EQ(bundle["trust_domain"], "example.org");
  for (const char* field :
       {"x509_authorities", "jwt_authorities", "refresh_hint", "sequence_number"}) {
    EXPECT_TRUE(bundle.contains(field)) << field << " missing from " << bundle.dump();
  }
  ASSERT_EQ(bundle["x509_authorities"].size(), roots->size());
  auto first_root = Base64Decode(bundle["x509_authorities"][0].value("asn1", ""));
  ASSERT_TRUE(first_root.ok());
  EXPECT_EQ(*first_root, *CertToDer(roots->front().get()));
  ASSERT_FALSE(bundle["jwt_authorities"].empty());
  EXPECT_FALSE(bundle["jwt_authorities"][0].value("key_id", "").empty());
  EXPECT_TRUE(
      PublicKeyFromDer(*Base64Decode(bundle["jwt_authorities"][0].value("public_key", ""))).ok());
  json listed = Json({"bundle", "list"});
  ASSERT_EQ(listed["bundles"].size(), 1u);
  EXPECT_EQ(listed["bundles"][0]["trust_domain"], "other.org");
  EXPECT_EQ(listed["bundles"][0]["x509_authorities"].size(), 1u);

  json x509 = Json({"x509", "mint", "-spiffeID", "spiffe://example.org/db", "-ttl", "300"});
  ASSERT_GE(x509["x509_svid"].size(), 1u) << x509.dump();
  auto leaf_der = Base64Decode(x509["x509_svid"][0].get<std::string>());
  ASSERT_TRUE(leaf_der.ok());
  auto leaf = CertFromDer(*leaf_der);
  ASSERT_TRUE(leaf.ok());
  auto key = PrivateKeyFromDer(*Base64Decode(x509.value("private_key", "")));
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(X509_check_private_key(leaf->get(), key->get()), 1);
  EXPECT_EQ(*Base64Decode(x509["root_cas"][0].get<std::string>()), *first_root);

  json jwt = Json({"jwt", "mint", "-spiffeID", "spiffe://example.org/db", "-audience", "payments",
                   "-ttl", "120"});
  const json& svid = jwt["svid"];
  EXPECT_EQ(svid["id"], (json{{"trust_domain", "example.org"}, {"path", "/db"}}));
  EXPECT_EQ(std::stoll(svid.value("expires_at", "0")) - std::stoll(svid.value("issued_at", "0")),
            120);
  auto jwks = TrustBundleFromJwks(*TrustDomain::Parse("example.org"),
                                  Cli({"bundle", "show", "-format", "spiffe"}).out);
  ASSERT_TRUE(jwks.ok());
  EXPECT_TRUE(ValidateJwtSvid(svid.value("token", ""), jwks->jwt, "payments").ok());
}

}  // namespace
}  // namespace sigil::testing
