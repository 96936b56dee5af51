// The serverd admin commands against an admin API answering in-process: flags as SPIRE's,
// output as SPIRE prints it, and one clear error line with a non-zero exit for bad input.
#include "serverd/admin/cli.h"

#include <gtest/gtest.h>

#include <sstream>

#include "serverd/admin/admin_api.h"
#include "serverd/datastore/sqlite_datastore.h"
#include "tests/support/process.h"
#include "tests/support/test_pki.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;

class InProcessClient final : public AdminClient {
 public:
  explicit InProcessClient(AdminApi& api) : api_(api) {}
  Result<json> Call(const std::string& path, const json& body) override {
    // Through text, as over the socket.
    SIGIL_ASSIGN_OR_RETURN(json response, api_.Handle(path, json::parse(body.dump())));
    return json::parse(response.dump());
  }

 private:
  AdminApi& api_;
};

class ServerCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenSqliteDatastore(dir_ / "db.sqlite3");
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    entries_ = std::make_unique<EntryService>(*TrustDomain::Parse("example.org"), *store_);
    federated_ = std::make_unique<FederatedBundles>(*store_);
    api_ = std::make_unique<AdminApi>(*entries_, *store_, *federated_);
  }

  struct Outcome {
    int code;
    std::string out;
    std::string err;
  };
  Outcome Run(std::vector<std::string> args) {
    std::ostringstream out, err;
    const int code = RunAdminCommand(
        args,
        [&](const std::string& socket_path) -> Result<std::unique_ptr<AdminClient>> {
          last_socket_ = socket_path;
          if (socket_path == "/nonexistent/api.sock") return Status(Code::kUnavailable, "connection refused");
          return std::unique_ptr<AdminClient>(std::make_unique<InProcessClient>(*api_));
        },
        out, err);
    return {code, out.str(), err.str()};
  }

  sigil::testing::TempDir dir_{"sigil-cli"};
  std::unique_ptr<Datastore> store_;
  std::unique_ptr<EntryService> entries_;
  std::unique_ptr<FederatedBundles> federated_;
  std::unique_ptr<AdminApi> api_;
  std::string last_socket_;
};

TEST_F(ServerCliTest, EntryCreateWithEveryFlagThenShow) {
  sigil::testing::TempDir files{"sigil-cli-bundle"};
  sigil::testing::TestCa other("other.org");
  sigil::testing::WriteFile(files.path() / "other.pem", other.CertPem());
  ASSERT_EQ(Run({"bundle", "set", "-id", "spiffe://other.org", "-path", (files.path() / "other.pem").string()}).code, 0);
  auto created = Run({"entry", "create", "-spiffeID", "spiffe://example.org/web", "-parentID",
                      "spiffe://example.org/host", "-selector", "unix:uid:1001", "-selector", "unix:gid:10",
                      "-x509SVIDTTL", "600", "-jwtSVIDTTL", "120", "-dns", "web.example.org", "-dns",
                      "alt.example.org", "-federatesWith", "spiffe://other.org", "-downstream",
                      "-entryExpiry", "1900000000", "-hint", "external"});
  ASSERT_EQ(created.code, 0) << created.err;
  EXPECT_NE(created.out.find("SPIFFE ID        : spiffe://example.org/web\n"), std::string::npos) << created.out;
  EXPECT_NE(created.out.find("X509-SVID TTL    : 600\n"), std::string::npos) << created.out;
  EXPECT_NE(created.out.find("Selector         : unix:gid:10\n"), std::string::npos);
  EXPECT_NE(created.out.find("DNS name         : web.example.org\n"), std::string::npos);
  EXPECT_EQ(last_socket_, "/tmp/sigil-server/private/api.sock");

  auto entries = store_->ListEntries({});
  ASSERT_EQ(entries->size(), 1u);
  const RegistrationEntry& e = entries->front();
  EXPECT_EQ(e.jwt_svid_ttl, std::chrono::seconds(120));
  EXPECT_EQ(e.dns_names, (std::vector<std::string>{"web.example.org", "alt.example.org"}));
  EXPECT_TRUE(e.downstream);
  EXPECT_EQ(e.expires_at, 1900000000);
  EXPECT_EQ(e.hint, "external");

  auto shown = Run({"entry", "show", "-selector", "unix:uid:1001", "-output", "json", "-socketPath", "/run/s.sock"});
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_EQ(last_socket_, "/run/s.sock");
  auto parsed = json::parse(shown.out);
  ASSERT_EQ(parsed["entries"].size(), 1u);
  EXPECT_EQ(parsed["entries"][0]["id"], e.id);
  auto none = Run({"entry", "show", "-selector", "unix:uid:1001", "-matchSelectorsOn", "exact"});
  EXPECT_NE(none.out.find("Found 0 entries"), std::string::npos) << none.out;
  auto by_id = Run({"entry", "show", "-entryID", e.id});
  EXPECT_NE(by_id.out.find("Found 1 entry\n"), std::string::npos);
}

TEST_F(ServerCliTest, AnExpiryNoCalendarHoldsIsPrintedAsItsNumber) {
  auto created = Run({"entry", "create", "-spiffeID", "spiffe://example.org/far", "-parentID",
                      "spiffe://example.org/host", "-selector", "unix:uid:1001", "-entryExpiry", "9223372036854775807"});
  ASSERT_EQ(created.code, 0) << created.err;
  EXPECT_NE(created.out.find("Expiration time  : 9223372036854775807\n"), std::string::npos) << created.out;
}

TEST_F(ServerCliTest, UpdateDeleteAndCount) {
  ASSERT_EQ(Run({"entry", "create", "-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/h",
                 "-selector", "unix:uid:1"}).code, 0);
  const std::string id = store_->ListEntries({})->front().id;
  auto updated = Run({"entry", "update", "-entryID", id, "-spiffeID", "spiffe://example.org/a", "-parentID",
                      "spiffe://example.org/h", "-selector", "unix:uid:2"});
  ASSERT_EQ(updated.code, 0) << updated.err;
  EXPECT_EQ(store_->FetchEntry(id)->selectors[0].value, "uid:2");
  EXPECT_EQ(Run({"entry", "count"}).out, "1 registration entry\n");
  auto deleted = Run({"entry", "delete", "-entryID", id});
  EXPECT_EQ(deleted.out, "Deleted entry with ID: " + id + "\n\n\nDeleted 1 entries successfully\n");
  EXPECT_EQ(Run({"entry", "count", "-output", "json"}).out, "{\"count\":0}\n");
  auto again = Run({"entry", "delete", "-entryID", id});
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("no entry with id"), std::string::npos) << again.err;
}

TEST_F(ServerCliTest, BadInputIsOneLineAndChangesNothing) {
  struct Case {
    std::vector<std::string> args;
    std::string mentions;
  };
  for (const Case& c : std::vector<Case>{
           {{"entry", "create", "-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/h", "-selector", "unix"},
            "selector"},
           {{"entry", "create", "-spiffeID", "spiffe://EXAMPLE.org/a", "-parentID", "spiffe://example.org/h", "-selector", "unix:uid:1"},
            "spiffe_id"},
           {{"entry", "create", "-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://other.org/h", "-selector", "unix:uid:1"},
            "parent_id: 'spiffe://other.org/h' is not in trust domain example.org"},
           {{"entry", "create", "-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/h", "-selector", "unix:uid:1",
             "-x509SVIDTTL", "-5"},
            "x509_svid_ttl"},
           {{"entry", "create", "-spiffeID", "spiffe://example.org/a"}, "needs -parentID (or -node) -selector"},
           {{"entry", "create", "-colour", "red"}, "colour"},
           {{"entry", "explode"}, "explode"},
           {{"token", "generate", "-ttl", "0"}, "-ttl must be a positive"},
       }) {
    auto outcome = Run(c.args);
    EXPECT_EQ(outcome.code, 1) << c.args[2];
    EXPECT_NE(outcome.err.find(c.mentions), std::string::npos) << "wanted '" << c.mentions << "' in: " << outcome.err;
    EXPECT_EQ(std::count(outcome.err.begin(), outcome.err.end(), '\n'), 1) << outcome.err;
  }
  EXPECT_EQ(*store_->CountEntries(), 0);

  ASSERT_EQ(Run({"entry", "create", "-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/h",
                 "-selector", "unix:uid:1"}).code, 0);
  auto duplicate = Run({"entry", "create", "-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/h",
                        "-selector", "unix:uid:1"});
  EXPECT_EQ(duplicate.code, 1);
  EXPECT_NE(duplicate.err.find("already exists"), std::string::npos);
  EXPECT_EQ(*store_->CountEntries(), 1);

  auto unreachable = Run({"entry", "count", "-socketPath", "/nonexistent/api.sock"});
  EXPECT_EQ(unreachable.code, 1);
  EXPECT_NE(unreachable.err.find("cannot reach serverd at /nonexistent/api.sock"), std::string::npos);
}

TEST_F(ServerCliTest, DataFileAndNodeAlias) {
  const auto data = dir_ / "entries.json";
  sigil::testing::WriteFile(data, R"({"entries": [
    {"spiffe_id": "spiffe://example.org/one", "parent_id": "spiffe://example.org/h", "selectors": [{"type": "unix", "value": "uid:1"}]},
    {"spiffe_id": "spiffe://example.org/two", "parent_id": "spiffe://example.org/h", "selectors": [{"type": "unix", "value": "uid:2"}]}
  ]})");
  auto batch = Run({"entry", "create", "-data", data.string()});
  ASSERT_EQ(batch.code, 0) << batch.err;
  EXPECT_EQ(*store_->CountEntries(), 2);
  auto node = Run({"entry", "create", "-node", "-spiffeID", "spiffe://example.org/rack7", "-selector", "join_token:rack7"});
  ASSERT_EQ(node.code, 0) << node.err;
  EXPECT_NE(node.out.find("Parent ID        : spiffe://example.org/spire/server"), std::string::npos) << node.out;
}

TEST_F(ServerCliTest, TokensAndAgents) {
  auto token = Run({"token", "generate", "-spiffeID", "spiffe://example.org/host/a", "-ttl", "60"});
  ASSERT_EQ(token.code, 0) << token.err;
  ASSERT_EQ(token.out.rfind("Token: ", 0), 0u);
  const std::string value = token.out.substr(7, 36);
  EXPECT_TRUE(store_->FetchJoinToken(value).ok());

  EXPECT_EQ(Run({"agent", "list"}).out, "No attested agents found\n");
  const std::string agent = JoinTokenAgentId(entries_->trust_domain(), value);
  ASSERT_TRUE(store_->CreateAgent({agent, "join_token", "0a", 1900000000, false, {}, 0, 0}).ok());
  auto listed = Run({"agent", "list"});
  EXPECT_NE(listed.out.find("Found 1 attested agent:"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("Attestation type  : join_token"), std::string::npos) << listed.out;
  EXPECT_EQ(Run({"agent", "ban", "-spiffeID", agent}).out, "Agent banned successfully\n");
  EXPECT_TRUE(store_->FetchAgent(agent)->banned);
  EXPECT_EQ(Run({"agent", "count"}).out, "1 attested agent\n");
  EXPECT_EQ(Run({"agent", "evict", "-spiffeID", agent}).out, "Agent evicted successfully\n");
  auto gone = Run({"agent", "show", "-spiffeID", agent});
  EXPECT_EQ(gone.code, 1);
  EXPECT_NE(gone.err.find("no attested agent"), std::string::npos);
}

}  // namespace
}  // namespace sigil::serverd
