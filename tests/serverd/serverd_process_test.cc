// A real `serverd run` with its CA key in a SoftHSM2 token, driven only through the `serverd`
// command line and checked with the real `openssl verify`.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "core/cli/command_line.h"
#include "core/jwt_svid.h"
#include "core/trust_bundle.h"
#include "tests/support/agentd_process.h"
#include "tests/support/postgres.h"
#include "tests/support/serverd_process.h"
#include "tests/support/softhsm_suite.h"
#include "tests/support/sqlite_check.h"
#include "tests/support/test_pki.h"

namespace sigil::testing {
namespace {

using nlohmann::json;

class ServerdTest : public SoftHsmSuite<> {
 protected:
  void StartServer(ServerdOptions options = {}) {
    auto server = ServerdProcess::Create(*hsm_, "serverd-" + std::to_string(++tokens_), options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  void TearDown() override {
    if (!server_) return;
    server_->Stop();
    // Under the sanitizer builds serverd is instrumented too: its own reports fail the test.
    EXPECT_EQ(server_->logs().find("Sanitizer"), std::string::npos) << server_->logs();
  }

  ProcessOutput Cli(std::vector<std::string> args) {
    auto out = server_->Cli(std::move(args));
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : ProcessOutput{};
  }

  int64_t Count() {
    auto out = Cli({"entry", "count", "-output", "json"});
    EXPECT_EQ(out.exit_code, 0) << out.err;
    return json::parse(out.out, nullptr, false).value("count", int64_t{-1});
  }

  // `entry create` as fast as the CLI goes until serverd is killed with -9; `after_kill` looks at
  // what it left; after a restart every acknowledged entry is there and the CA is the same.
  void Kill9DuringABurstLosesNoAcknowledgedEntry(const std::function<void()>& after_kill) {
    const std::string root_before = Cli({"bundle", "show"}).out;
    std::vector<std::string> acknowledged;  // written by the writer, read after it joined
    std::atomic<size_t> acknowledged_count{0};
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      for (int i = 0; !stop; ++i) {
        auto out = server_->Cli({"entry", "create", "-spiffeID", "spiffe://example.org/k" + std::to_string(i), "-parentID",
                                 "spiffe://example.org/h", "-selector", "unix:uid:" + std::to_string(i), "-output", "json"});
        if (!out.ok() || out->exit_code != 0) break;
        acknowledged.push_back("spiffe://example.org/k" + std::to_string(i));
        ++acknowledged_count;
      }
    });
    const bool enough = WaitUntil([&] { return acknowledged_count >= 10; }, std::chrono::seconds(60));
    server_->Kill();
    stop = true;
    writer.join();
    ASSERT_TRUE(enough) << "the writer stopped early";
    ASSERT_GE(acknowledged.size(), 10u);

    after_kill();
    Status restarted = server_->Start();
    ASSERT_TRUE(restarted.ok()) << restarted.ToString();
    auto all = json::parse(Cli({"entry", "show", "-output", "json"}).out)["entries"];
    std::set<std::string> present;
    for (const auto& e : all) present.insert("spiffe://example.org" + e["spiffe_id"]["path"].get<std::string>());
    for (const auto& id : acknowledged) EXPECT_EQ(present.count(id), 1u) << id << " was acknowledged, then lost";
    EXPECT_EQ(Cli({"bundle", "show"}).out, root_before);
  }

  // serverd's datastore in a database of its own on this binary's PostgreSQL server.
  ServerdOptions OnPostgres(const std::string& database) {
    auto postgres = SharedPostgres();
    EXPECT_TRUE(postgres.ok()) << postgres.status().ToString();
    if (!postgres.ok()) return {};
    postgres_ = *postgres;
    auto connection = postgres_->CreateDatabase(database);
    EXPECT_TRUE(connection.ok()) << connection.status().ToString();
    // The test's server trusts local connections; serverd still reads the file it is given.
    WriteFile(password_dir_ / "postgres-password", "not-asked-for-by-trust-auth\n");
    ServerdOptions options;
    options.top_level_yaml = "datastore:\n  kind: postgres\n  connection_string: \"" +
                             (connection.ok() ? *connection : "") + "\"\n  password_file: " +
                             (password_dir_ / "postgres-password").string() + "\n  max_connections: 4\n";
    return options;
  }

  Postgres* postgres_ = nullptr;
  TempDir password_dir_{"sigil-serverd-secrets"};
  static inline int tokens_ = 0;
  std::unique_ptr<ServerdProcess> server_;
};

TEST_F(ServerdTest, EntriesThroughTheCommandLine) {
  StartServer();
  const std::vector<std::string> create = {
      "entry", "create", "-spiffeID", "spiffe://example.org/web", "-parentID",
      "spiffe://example.org/spire/agent/join_token/abc", "-selector", "unix:uid:1001", "-selector",
      "unix:gid:10", "-x509SVIDTTL", "600", "-jwtSVIDTTL", "60", "-dns", "web.example.org",
      "-federatesWith", "spiffe://other.org", "-downstream", "-entryExpiry", "1900000000",
      "-hint", "internal"};
  // Federating with a trust domain whose bundle the server does not hold is refused, as SPIRE
  // refuses it, and creates nothing.
  auto unbundled = Cli(create);
  EXPECT_EQ(unbundled.exit_code, 1);
  EXPECT_NE(unbundled.err.find("unable to find federated bundle \"spiffe://other.org\""), std::string::npos)
      << unbundled.err;
  EXPECT_NE(Cli({"entry", "count"}).out.find("0 registration entries"), std::string::npos);
  TestCa other("other.org");
  WriteFile(server_->dir() / "other.pem", other.CertPem());
  ASSERT_EQ(Cli({"bundle", "set", "-id", "spiffe://other.org", "-path", (server_->dir() / "other.pem").string()}).exit_code, 0);

  auto created = Cli(create);
  ASSERT_EQ(created.exit_code, 0) << created.err << server_->logs();
  EXPECT_NE(created.out.find("SPIFFE ID        : spiffe://example.org/web"), std::string::npos) << created.out;

  auto shown = Cli({"entry", "show", "-spiffeID", "spiffe://example.org/web", "-output", "json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  json entries = json::parse(shown.out)["entries"];
  ASSERT_EQ(entries.size(), 1u);
  const std::string id = entries[0]["id"];
  EXPECT_EQ(entries[0]["x509_svid_ttl"], 600);
  EXPECT_EQ(entries[0]["jwt_svid_ttl"], 60);
  EXPECT_EQ(entries[0]["dns_names"][0], "web.example.org");
  EXPECT_EQ(entries[0]["federates_with"][0], "spiffe://other.org");
  EXPECT_FALSE(entries[0]["admin"].get<bool>());
  EXPECT_TRUE(entries[0]["downstream"].get<bool>());
  EXPECT_EQ(entries[0]["expires_at"], "1900000000");
  EXPECT_EQ(entries[0]["hint"], "internal");

  auto by_selector = Cli({"entry", "show", "-selector", "unix:uid:1001", "-matchSelectorsOn", "subset"});
  EXPECT_NE(by_selector.out.find("Found 0 entries"), std::string::npos) << by_selector.out;
  by_selector = Cli({"entry", "show", "-selector", "unix:uid:1001", "-matchSelectorsOn", "superset"});
  EXPECT_NE(by_selector.out.find("Found 1 entry"), std::string::npos) << by_selector.out;

  auto updated = Cli({"entry", "update", "-entryID", id, "-spiffeID", "spiffe://example.org/web", "-parentID",
                      "spiffe://example.org/spire/agent/join_token/abc", "-selector", "unix:uid:1002"});
  ASSERT_EQ(updated.exit_code, 0) << updated.err;
  EXPECT_NE(updated.out.find("Selector         : unix:uid:1002"), std::string::npos);

  const auto data = server_->dir() / "batch.json";
  WriteFile(data, R"({"entries": [
    {"spiffe_id": "spiffe://example.org/b1", "parent_id": "spiffe://example.org/h", "selectors": [{"type": "unix", "value": "uid:1"}]},
    {"spiffe_id": "spiffe://example.org/b2", "parent_id": "spiffe://example.org/h", "selectors": [{"type": "unix", "value": "uid:2"}]}]})");
  ASSERT_EQ(Cli({"entry", "create", "-data", data.string()}).exit_code, 0);
  EXPECT_EQ(Count(), 3);
  EXPECT_EQ(Cli({"entry", "count"}).out, "3 registration entries\n");

  auto deleted = Cli({"entry", "delete", "-entryID", id});
  EXPECT_EQ(deleted.out, "Deleted entry with ID: " + id + "\n\n\nDeleted 1 entries successfully\n");
  EXPECT_EQ(Count(), 2);
}

TEST_F(ServerdTest, BadInputIsRefusedAndNothingIsWritten) {
  StartServer();
  ASSERT_EQ(Cli({"entry", "create", "-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/h",
                 "-selector", "unix:uid:1"}).exit_code, 0);
  struct Case {
    std::vector<std::string> args;
    std::string mentions;
  };
  for (const Case& c : std::vector<Case>{
           {{"-spiffeID", "spiffe://example.org/a b", "-parentID", "spiffe://example.org/h", "-selector", "unix:uid:1"}, "spiffe_id"},
           {{"-spiffeID", "http://example.org/a", "-parentID", "spiffe://example.org/h", "-selector", "unix:uid:1"}, "spiffe_id"},
           {{"-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://other.org/h", "-selector", "unix:uid:1"},
            "not in trust domain example.org"},
           {{"-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/h", "-selector", "unixuid1"}, "selector"},
           {{"-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/h", "-selector", "unix:uid:1",
             "-x509SVIDTTL", "-1"}, "x509_svid_ttl"},
           {{"-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/h", "-selector", "unix:uid:1"},
            "already exists"},
       }) {
    std::vector<std::string> args = {"entry", "create"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto out = Cli(args);
    EXPECT_EQ(out.exit_code, 1) << c.mentions;
    EXPECT_NE(out.err.find(c.mentions), std::string::npos) << "wanted '" << c.mentions << "' in: " << out.err;
  }
  EXPECT_EQ(Count(), 1);
}

TEST_F(ServerdTest, MintedSvidsVerifyWithOpensslAndJwtsWithTheBundle) {
  StartServer();
  auto pem = Cli({"bundle", "show"});
  ASSERT_EQ(pem.exit_code, 0) << pem.err;
  EXPECT_NE(pem.out.find("-----BEGIN CERTIFICATE-----"), std::string::npos);
  auto jwks = Cli({"bundle", "show", "-format", "spiffe"});
  ASSERT_EQ(jwks.exit_code, 0);
  auto bundle = TrustBundleFromJwks(*TrustDomain::Parse("example.org"), jwks.out);
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();

  const auto out_dir = server_->dir() / "minted";
  std::filesystem::create_directories(out_dir);
  auto minted = Cli({"x509", "mint", "-spiffeID", "spiffe://example.org/db", "-dns", "db.example.org", "-ttl", "300",
                     "-write", out_dir.string()});
  ASSERT_EQ(minted.exit_code, 0) << minted.err << server_->logs();
  WriteFile(server_->dir() / "bundle.pem", pem.out);
  for (const char* purpose : {"sslclient", "sslserver"}) {
    auto verified = RunProcess({"openssl", "verify", "-CAfile", (server_->dir() / "bundle.pem").string(), "-purpose",
                                purpose, (out_dir / "svid.pem").string()});
    ASSERT_TRUE(verified.ok());
    EXPECT_EQ(verified->exit_code, 0) << purpose << ": " << verified->out << verified->err;
  }
  auto text = RunProcess({"openssl", "x509", "-in", (out_dir / "svid.pem").string(), "-noout", "-ext", "subjectAltName"});
  EXPECT_NE(text->out.find("URI:spiffe://example.org/db"), std::string::npos) << text->out;
  EXPECT_NE(text->out.find("DNS:db.example.org"), std::string::npos) << text->out;

  auto jwt = Cli({"jwt", "mint", "-spiffeID", "spiffe://example.org/db", "-audience", "payments"});
  ASSERT_EQ(jwt.exit_code, 0) << jwt.err;
  std::string token = jwt.out.substr(0, jwt.out.find('\n'));
  auto valid = ValidateJwtSvid(token, bundle->jwt, "payments");
  ASSERT_TRUE(valid.ok()) << valid.status().ToString();
  EXPECT_EQ(valid->spiffe_id.str(), "spiffe://example.org/db");
  EXPECT_FALSE(ValidateJwtSvid(token, bundle->jwt, "billing").ok());
}

TEST_F(ServerdTest, JwtMintCarriesTheConfiguredIssuer) {
  StartServer({.extra_yaml = "  jwt_issuer: https://oidc.example.org\n"});
  auto jwt = Cli({"jwt", "mint", "-spiffeID", "spiffe://example.org/db", "-audience", "payments"});
  ASSERT_EQ(jwt.exit_code, 0) << jwt.err;
  const std::string token = jwt.out.substr(0, jwt.out.find('\n'));
  auto claims_json = UnverifiedJwtClaims(token);
  ASSERT_TRUE(claims_json.ok()) << token;
  json claims = json::parse(*claims_json, nullptr, false);
  EXPECT_EQ(claims.value("iss", ""), "https://oidc.example.org") << claims.dump();
}

// Both binaries answer --version with the release, as SPIRE's do.
TEST(SigilBinariesTest, VersionIsTheRelease) {
  for (const std::string& binary : {ServerdProcess::Binary(), AgentdProcess::Binary()}) {
    for (const char* flag : {"--version", "-version"}) {
      auto out = RunProcess({binary, flag});
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      EXPECT_EQ(out->exit_code, 0) << binary << " " << flag << ": " << out->err;
      EXPECT_EQ(out->out, std::string(SigilVersion()) + "\n") << binary << " " << flag;
    }
  }
}

TEST_F(ServerdTest, TokensAndAgents) {
  StartServer();
  auto token = Cli({"token", "generate", "-spiffeID", "spiffe://example.org/host/rack7", "-ttl", "60"});
  ASSERT_EQ(token.exit_code, 0) << token.err;
  EXPECT_EQ(token.out.rfind("Token: ", 0), 0u);
  // As SPIRE makes it: parented to the token's agent, and selecting it.
  const std::string agent = "spiffe://example.org/spire/agent/join_token/" + token.out.substr(7, 36);
  auto alias = Cli({"entry", "show", "-spiffeID", "spiffe://example.org/host/rack7"});
  EXPECT_NE(alias.out.find("Parent ID        : " + agent + "\n"), std::string::npos) << alias.out;
  EXPECT_NE(alias.out.find("Selector         : spiffe_id:" + agent + "\n"), std::string::npos) << alias.out;
  EXPECT_EQ(Cli({"agent", "list"}).out, "No attested agents found\n");
  auto missing = Cli({"agent", "show", "-spiffeID", "spiffe://example.org/spire/agent/join_token/none"});
  EXPECT_EQ(missing.exit_code, 1);
}

TEST_F(ServerdTest, AdminSocketIsPrivateAndRefusesOtherUids) {
  StartServer();
  struct stat st {};
  ASSERT_EQ(::stat(server_->socket_path().parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(server_->socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0770u);
  ASSERT_EQ(::getuid(), 0u) << "tools/test runs as root; this test switches to another uid";
  // Open the file modes, so that only serverd's own uid check stands between uid 65534 and the API.
  ::chmod(server_->dir().c_str(), 0755);
  ::chmod(server_->socket_path().parent_path().c_str(), 0755);
  ::chmod(server_->socket_path().c_str(), 0777);
  auto out = RunProcess({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ServerdProcess::Binary(),
                         "entry", "count", "-socketPath", server_->socket_path().string()});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->exit_code, 1);
  EXPECT_NE(out->err.find("uid 65534 may not use the admin API"), std::string::npos) << out->err;
  EXPECT_EQ(Cli({"entry", "count"}).exit_code, 0);
}

TEST_F(ServerdTest, FederatedBundlesAreSetListedAndDeleted) {
  StartServer();
  TestCa other("other.org");
  WriteFile(server_->dir() / "other.pem", other.CertPem());
  auto set = Cli({"bundle", "set", "-id", "spiffe://other.org", "-path", (server_->dir() / "other.pem").string()});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  auto listed = Cli({"bundle", "list"});
  EXPECT_NE(listed.out.find("* spiffe://other.org"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find(other.CertPem()), std::string::npos) << listed.out;
  auto as_json = json::parse(Cli({"bundle", "list", "-output", "json"}).out);
  ASSERT_EQ(as_json["bundles"].size(), 1u);
  auto jwks = TrustBundleFromJwks(*TrustDomain::Parse("other.org"), as_json["bundles"][0]["jwks"].get<std::string>());
  ASSERT_TRUE(jwks.ok()) << jwks.status().ToString();
  EXPECT_EQ(jwks->x509.authorities.size(), 1u);

  auto own = Cli({"bundle", "set", "-id", "spiffe://example.org", "-path", (server_->dir() / "other.pem").string()});
  EXPECT_EQ(own.exit_code, 1);
  EXPECT_NE(own.err.find("own trust domain"), std::string::npos) << own.err;
  WriteFile(server_->dir() / "junk.pem", "not a certificate");
  auto junk = Cli({"bundle", "set", "-id", "spiffe://third.org", "-path", (server_->dir() / "junk.pem").string()});
  EXPECT_EQ(junk.exit_code, 1);

  EXPECT_EQ(Cli({"bundle", "delete", "-id", "spiffe://other.org"}).out, "bundle deleted.\n");
  EXPECT_EQ(Cli({"bundle", "list", "-output", "json"}).out, "{\"bundles\":[]}\n");
  EXPECT_EQ(Cli({"bundle", "delete", "-id", "spiffe://other.org"}).exit_code, 1);
}

// `bundle delete -mode` as SPIRE's: restrict refuses while an entry federates with the bundle,
// dissociate takes the trust domain off those entries, delete deletes them.
TEST_F(ServerdTest, DeletingAFederatedBundleDoesWhatItsModeSays) {
  StartServer();
  TestCa other("other.org");
  WriteFile(server_->dir() / "other.pem", other.CertPem());
  const auto set_bundle = [&] {
    return Cli({"bundle", "set", "-id", "spiffe://other.org", "-path", (server_->dir() / "other.pem").string()}).exit_code;
  };
  const auto create = [&](const std::string& path) {
    auto out = Cli({"entry", "create", "-spiffeID", "spiffe://example.org" + path, "-parentID",
                    "spiffe://example.org/host", "-selector", "unix:uid:1001", "-federatesWith", "spiffe://other.org",
                    "-output", "json"});
    EXPECT_EQ(out.exit_code, 0) << out.err;
    return json::parse(out.out)["results"][0]["entry"].value("id", "");
  };
  ASSERT_EQ(set_bundle(), 0);
  const std::string id = create("/a");

  auto restricted = Cli({"bundle", "delete", "-id", "spiffe://other.org"});
  EXPECT_EQ(restricted.exit_code, 1);
  EXPECT_NE(restricted.err.find("registration entries federate with spiffe://other.org (1, entry " + id),
            std::string::npos) << restricted.err;
  EXPECT_EQ(json::parse(Cli({"bundle", "list", "-output", "json"}).out)["bundles"].size(), 1u);
  EXPECT_EQ(Cli({"bundle", "delete", "-id", "spiffe://other.org", "-mode", "sideways"}).exit_code, 1);

  auto dissociated = Cli({"bundle", "delete", "-id", "spiffe://other.org", "-mode", "dissociate"});
  ASSERT_EQ(dissociated.exit_code, 0) << dissociated.err;
  auto entry = json::parse(Cli({"entry", "show", "-entryID", id, "-output", "json"}).out)["entries"][0];
  EXPECT_TRUE(entry["federates_with"].empty()) << entry.dump();
  EXPECT_EQ(json::parse(Cli({"bundle", "list", "-output", "json"}).out)["bundles"].size(), 0u);

  ASSERT_EQ(set_bundle(), 0);
  create("/b");
  auto deleted = Cli({"bundle", "delete", "-id", "spiffe://other.org", "-mode", "delete"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  // The dissociated entry stays; the one still federating went with the bundle.
  EXPECT_EQ(Cli({"entry", "count"}).out, "1 registration entry\n");
  EXPECT_NE(Cli({"entry", "show", "-entryID", id}).out.find("Found 1 entry"), std::string::npos);
}

TEST_F(ServerdTest, HealthAndMetricsOverPlainHttp) {
  const int health = FreeLoopbackPort();
  const int metrics = FreeLoopbackPort();
  StartServer({.top_level_yaml = "health_checks:\n  listener_enabled: true\n  bind_port: " + std::to_string(health) +
                                 "\ntelemetry:\n  prometheus: {port: " + std::to_string(metrics) + "}\n"});
  for (const char* path : {"/live", "/ready"}) {
    auto out = RunProcess({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                           "http://127.0.0.1:" + std::to_string(health) + path});
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->out, "200 1.1") << path;
  }
  auto missing = RunProcess({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                             "http://127.0.0.1:" + std::to_string(health) + "/nope"});
  EXPECT_EQ(missing->out, "404");
  ASSERT_EQ(Cli({"jwt", "mint", "-spiffeID", "spiffe://example.org/a", "-audience", "x"}).exit_code, 0);
  ASSERT_EQ(Cli({"entry", "create", "-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/h",
                 "-selector", "unix:uid:1"}).exit_code, 0);
  auto scraped = RunProcess({"curl", "-s", "http://127.0.0.1:" + std::to_string(metrics) + "/metrics"});
  ASSERT_TRUE(scraped.ok());
  EXPECT_NE(scraped->out.find("\nspire_server_server_ca_sign_jwt_svid 1\n"), std::string::npos) << scraped->out;
  EXPECT_NE(scraped->out.find("\nsigil_server_entries 1\n"), std::string::npos) << scraped->out;
  EXPECT_NE(scraped->out.find("# TYPE sigil_server_agents gauge"), std::string::npos);
}

TEST_F(ServerdTest, Kill9LosesNoAcknowledgedEntryAndKeepsTheCa) {
  StartServer();
  Kill9DuringABurstLosesNoAcknowledgedEntry([&] { EXPECT_EQ(SqliteIntegrityCheck(server_->datastore_path()), "ok"); });
}

TEST_F(ServerdTest, OnPostgresKill9LosesNoAcknowledgedEntryAndKeepsTheCa) {
  StartServer(OnPostgres("serverd_kill9"));
  EXPECT_FALSE(std::filesystem::exists(server_->datastore_path())) << "serverd made a SQLite file beside PostgreSQL";
  Kill9DuringABurstLosesNoAcknowledgedEntry([] {});
}

// PostgreSQL stops: serverd says it is not ready, and names the datastore; PostgreSQL starts
// again: serverd is ready and writes again, without a restart.
TEST_F(ServerdTest, OnPostgresAnOutageMakesServerdNotReadyUntilItEnds) {
  StartServer(OnPostgres("serverd_outage"));
  ASSERT_EQ(Cli({"entry", "create", "-spiffeID", "spiffe://example.org/before", "-parentID", "spiffe://example.org/h",
                 "-selector", "unix:uid:1"}).exit_code, 0);
  ASSERT_TRUE(postgres_->Stop().ok());
  ProcessOutput down;
  EXPECT_TRUE(WaitUntil([&] {
    down = Cli({"healthcheck"});
    return down.exit_code != 0;
  }, std::chrono::seconds(15))) << "serverd stayed healthy with its datastore down";
  EXPECT_NE((down.out + down.err).find("datastore"), std::string::npos) << down.out << down.err;
  EXPECT_NE(Cli({"entry", "create", "-spiffeID", "spiffe://example.org/during", "-parentID", "spiffe://example.org/h",
                 "-selector", "unix:uid:2"}).exit_code, 0);
  ASSERT_TRUE(postgres_->StartAgain().ok());
  EXPECT_TRUE(WaitUntil([&] { return Cli({"healthcheck"}).exit_code == 0; }, std::chrono::seconds(20)))
      << "serverd did not recover from the outage";
  EXPECT_EQ(Cli({"entry", "create", "-spiffeID", "spiffe://example.org/after", "-parentID", "spiffe://example.org/h",
                 "-selector", "unix:uid:3"}).exit_code, 0);
  EXPECT_EQ(Count(), 2);
}

TEST_F(ServerdTest, ShortLivedCaRotatesWhileServing) {
  StartServer({.ca_ttl = "12s", .default_x509_svid_ttl = "4s"});
  const auto dir = server_->dir();
  std::set<std::string> roots_seen;
  std::filesystem::path previous;
  int verified = 0;
  // One CA lifetime and a little is enough on a quiet machine; a sanitizer build on a loaded
  // one takes seconds over each round (four processes), so the loop runs until it has seen what
  // it waits for, and a round waits only for what is left of its 700 ms.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (int n = 0; std::chrono::steady_clock::now() < deadline && (roots_seen.size() < 3 || verified < 20); ++n) {
    const auto round_ends = std::chrono::steady_clock::now() + std::chrono::milliseconds(700);
    const auto out = dir / ("svid" + std::to_string(n));
    std::filesystem::create_directories(out);
    auto minted = Cli({"x509", "mint", "-spiffeID", "spiffe://example.org/w", "-write", out.string()});
    ASSERT_EQ(minted.exit_code, 0) << minted.err;
    const std::string bundle = ReadFile(out / "bundle.pem");
    roots_seen.insert(bundle);
    // The SVID minted a moment ago, perhaps by the CA before a rotation, still verifies against
    // the bundle published now — while it is itself still valid: one minted by the old CA just
    // before it handed over ends with that CA, and a slow round may outlast it.
    for (const auto& svid : {out / "svid.pem", previous}) {
      if (svid.empty()) continue;
      if (svid == previous && RunProcess({"openssl", "x509", "-checkend", "2", "-noout", "-in", svid.string()})->exit_code != 0) {
        continue;
      }
      auto result = RunProcess({"openssl", "verify", "-CAfile", (out / "bundle.pem").string(), svid.string()});
      EXPECT_EQ(result->exit_code, 0) << svid << ": " << result->out << result->err;
      verified += result->exit_code == 0;
    }
    previous = out / "svid.pem";
    std::this_thread::sleep_until(round_ends);
  }
  EXPECT_GE(roots_seen.size(), 3u) << "the CA never rotated (one bundle, then two CAs, then the next)";
  EXPECT_GE(verified, 20);
}

}  // namespace
}  // namespace sigil::testing
