#include "serverd/admin/admin_api.h"

#include <gtest/gtest.h>

#include "serverd/datastore/sqlite_datastore.h"
#include "tests/support/process.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;

class AdminApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenSqliteDatastore(dir_ / "db.sqlite3");
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    entries_ = std::make_unique<EntryService>(*TrustDomain::Parse("example.org"), *store_);
    federated_ = std::make_unique<FederatedBundles>(*store_);
    api_ = std::make_unique<AdminApi>(*entries_, *store_, *federated_);
  }
  json Call(const std::string& path, const json& body) {
    auto result = api_->Handle(path, body);
    EXPECT_TRUE(result.ok()) << path << ": " << result.status().ToString();
    return result.ok() ? *result : json();
  }

  sigil::testing::TempDir dir_{"sigil-admin"};
  std::unique_ptr<Datastore> store_;
  std::unique_ptr<EntryService> entries_;
  std::unique_ptr<FederatedBundles> federated_;
  std::unique_ptr<AdminApi> api_;
};

TEST_F(AdminApiTest, EntryLifecycleInSpiresShapes) {
  json created = Call("/v1/entry/BatchCreateEntry", json::parse(R"({"entries": [
    {"spiffe_id": {"trust_domain": "example.org", "path": "/web"},
     "parent_id": {"trust_domain": "example.org", "path": "/host"},
     "selectors": [{"type": "unix", "value": "uid:1001"}], "x509_svid_ttl": 600},
    {"spiffe_id": "spiffe://other.org/x", "parent_id": "spiffe://example.org/host",
     "selectors": [{"type": "unix", "value": "uid:1"}]}
  ]})"));
  ASSERT_EQ(created["results"].size(), 2u);
  EXPECT_EQ(created["results"][0]["status"]["code"], 0);
  EXPECT_EQ(created["results"][1]["status"]["code"], 3);
  EXPECT_NE(created["results"][1]["status"]["message"].get<std::string>().find("not in trust domain"), std::string::npos);
  const std::string id = created["results"][0]["entry"]["id"];

  json listed = Call("/v1/entry/ListEntries", json::parse(R"({"filter": {"by_selectors":
      {"selectors": [{"type": "unix", "value": "uid:1001"}], "match": "MATCH_EXACT"}}})"));
  ASSERT_EQ(listed["entries"].size(), 1u);
  EXPECT_EQ(listed["entries"][0]["x509_svid_ttl"], 600);
  EXPECT_EQ(Call("/v1/entry/ListEntries", json::parse(R"({"filter": {"by_parent_id": "spiffe://example.org/nope"}})"))["entries"].size(), 0u);

  json entry = Call("/v1/entry/GetEntry", {{"id", id}});
  entry["x509_svid_ttl"] = 60;
  json updated = Call("/v1/entry/BatchUpdateEntry", {{"entries", {entry}}});
  EXPECT_EQ(updated["results"][0]["status"]["code"], 0);
  EXPECT_EQ(Call("/v1/entry/GetEntry", {{"id", id}})["x509_svid_ttl"], 60);
  EXPECT_EQ(Call("/v1/entry/CountEntries", json::object())["count"], 1);

  json deleted = Call("/v1/entry/BatchDeleteEntry", {{"ids", {id, "missing"}}});
  EXPECT_EQ(deleted["results"][0]["status"]["code"], 0);
  EXPECT_EQ(deleted["results"][1]["status"]["code"], 5);
  EXPECT_EQ(Call("/v1/entry/CountEntries", json::object())["count"], 0);
}

TEST_F(AdminApiTest, BadRequestsAreNamed) {
  auto unknown = api_->Handle("/v1/entry/Explode", json::object());
  EXPECT_EQ(unknown.status().code(), Code::kNotFound);
  auto no_entries = api_->Handle("/v1/entry/BatchCreateEntry", json::object());
  EXPECT_NE(no_entries.status().message().find("\"entries\""), std::string::npos);
  auto bad_match = api_->Handle("/v1/entry/ListEntries", json::parse(R"({"filter": {"by_selectors": {"selectors": [], "match": "MATCH_SOME"}}})"));
  EXPECT_EQ(bad_match.status().code(), Code::kInvalidArgument);
  auto no_id = api_->Handle("/v1/agent/GetAgent", json::object());
  EXPECT_NE(no_id.status().message().find("\"id\" is required"), std::string::npos);
}

TEST_F(AdminApiTest, JoinTokensWithAnAliasEntry) {
  json token = Call("/v1/agent/CreateJoinToken", {{"ttl", 60}, {"agent_id", "spiffe://example.org/host/rack7"}});
  const std::string value = token["value"];
  EXPECT_EQ(value.size(), 36u);
  auto stored = store_->FetchJoinToken(value);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored->expires_at, std::stoll(token["expires_at"].get<std::string>()));
  EXPECT_EQ(stored->spiffe_id, "spiffe://example.org/host/rack7");
  auto aliases = store_->ListEntries({.spiffe_id = "spiffe://example.org/host/rack7"});
  ASSERT_EQ(aliases->size(), 1u);
  // As SPIRE makes it: parented to the token's agent, selecting that agent.
  EXPECT_EQ(aliases->front().parent_id, JoinTokenAgentId(entries_->trust_domain(), value));
  EXPECT_EQ(aliases->front().selectors[0].value, JoinTokenAgentId(entries_->trust_domain(), value));
  // The agent may issue the entries parented to the alias.
  RegistrationEntry workload;
  workload.spiffe_id = "spiffe://example.org/host/rack7/web";
  workload.parent_id = "spiffe://example.org/host/rack7";
  workload.selectors = {{"unix", "uid:1001"}};
  ASSERT_TRUE(entries_->Create(workload).ok());
  auto issuable = entries_->AuthorizedEntries({.spiffe_id = JoinTokenAgentId(entries_->trust_domain(), value),
                                               .attestation_type = "join_token"});
  ASSERT_TRUE(issuable.ok()) << issuable.status().ToString();
  bool found = false;
  for (const RegistrationEntry& e : *issuable) found = found || e.spiffe_id == workload.spiffe_id;
  EXPECT_TRUE(found) << "the alias's workload is not the token's agent's";

  EXPECT_EQ(api_->Handle("/v1/agent/CreateJoinToken", {{"ttl", -1}}).status().code(), Code::kInvalidArgument);
  auto foreign = api_->Handle("/v1/agent/CreateJoinToken", {{"agent_id", "spiffe://other.org/h"}});
  EXPECT_NE(foreign.status().message().find("not in trust domain"), std::string::npos);
}

TEST_F(AdminApiTest, AgentsAreListedBannedAndEvicted) {
  ASSERT_TRUE(store_->CreateAgent({"spiffe://example.org/spire/agent/join_token/t", "join_token", "01", 1, false, {}, 0, 0}).ok());
  EXPECT_EQ(Call("/v1/agent/CountAgents", json::object())["count"], 1);
  Call("/v1/agent/BanAgent", {{"id", "spiffe://example.org/spire/agent/join_token/t"}});
  EXPECT_TRUE(Call("/v1/agent/GetAgent", {{"id", "spiffe://example.org/spire/agent/join_token/t"}})["banned"].get<bool>());
  Call("/v1/agent/DeleteAgent", {{"id", "spiffe://example.org/spire/agent/join_token/t"}});
  EXPECT_EQ(Call("/v1/agent/ListAgents", json::object())["agents"].size(), 0u);
  EXPECT_EQ(api_->Handle("/v1/agent/DeleteAgent", {{"id", "spiffe://example.org/x"}}).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace sigil::serverd
