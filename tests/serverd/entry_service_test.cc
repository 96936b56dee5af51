#include "serverd/entry/entry_service.h"

#include <gtest/gtest.h>

#include "serverd/datastore/sqlite_datastore.h"
#include "tests/support/process.h"

namespace sigil::serverd {
namespace {

const char kAgent[] = "spiffe://example.org/spire/agent/join_token/abc";
const char kOtherAgent[] = "spiffe://example.org/spire/agent/join_token/xyz";

class EntryServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenSqliteDatastore(dir_ / "db.sqlite3");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    service_ = std::make_unique<EntryService>(*TrustDomain::Parse("example.org"), *store_);
  }

  RegistrationEntry Entry(const std::string& path, const std::string& parent,
                          std::vector<Selector> selectors = {{"unix", "uid:1001"}}) {
    RegistrationEntry e;
    e.spiffe_id = "spiffe://example.org" + path;
    e.parent_id = parent;
    e.selectors = std::move(selectors);
    return e;
  }

  std::vector<std::string> Ids(const std::vector<RegistrationEntry>& entries) {
    std::vector<std::string> ids;
    for (const auto& e : entries) ids.push_back(e.spiffe_id);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  sigil::testing::TempDir dir_{"sigil-entries"};
  std::unique_ptr<Datastore> store_;
  std::unique_ptr<EntryService> service_;
};

TEST_F(EntryServiceTest, InvalidEntriesAreRefusedAndNothingIsWritten) {
  RegistrationEntry bad = Entry("/web", "spiffe://other.org/agent", {{"unix", ""}});
  bad.x509_svid_ttl = std::chrono::seconds(-5);
  auto created = service_->Create(bad);
  ASSERT_EQ(created.status().code(), Code::kInvalidArgument);
  const std::string m = created.status().message();
  EXPECT_NE(m.find("parent_id: 'spiffe://other.org/agent' is not in trust domain example.org"), std::string::npos) << m;
  EXPECT_NE(m.find("selectors:"), std::string::npos) << m;
  EXPECT_NE(m.find("x509_svid_ttl:"), std::string::npos) << m;
  EXPECT_EQ(*store_->CountEntries(), 0);
  EXPECT_EQ(*store_->CurrentRevision(), 0);
}

TEST_F(EntryServiceTest, BatchReportsEachEntryAlone) {
  auto results = service_->CreateBatch({Entry("/a", kAgent), Entry("bad id", kAgent), Entry("/a", kAgent)});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[1].status().code(), Code::kInvalidArgument);
  EXPECT_EQ(results[2].status().code(), Code::kAlreadyExists);
  EXPECT_EQ(*store_->CountEntries(), 1);
}

TEST_F(EntryServiceTest, AgentsGetTheirOwnAliasedAndNestedEntriesOnly) {
  const std::string server = ServerSpiffeId(service_->trust_domain()).str();
  EXPECT_EQ(server, "spiffe://example.org/spire/server");
  // A node alias for hosts in rack 7, and entries below it.
  ASSERT_TRUE(service_->Create(Entry("/rack7", server, {{"join_token", "rack:7"}})).ok());
  ASSERT_TRUE(service_->Create(Entry("/rack7-web", "spiffe://example.org/rack7")).ok());
  ASSERT_TRUE(service_->Create(Entry("/own", kAgent)).ok());
  ASSERT_TRUE(service_->Create(Entry("/nested", "spiffe://example.org/own", {{"unix", "uid:2"}})).ok());
  ASSERT_TRUE(service_->Create(Entry("/theirs", kOtherAgent)).ok());

  AttestedAgent in_rack{kAgent, "join_token", "", 0, false, {{"join_token", "rack:7"}, {"join_token", "abc"}}, 0, 0};
  auto entries = service_->AuthorizedEntries(in_rack);
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  EXPECT_EQ(Ids(*entries), (std::vector<std::string>{"spiffe://example.org/nested", "spiffe://example.org/own",
                                                      "spiffe://example.org/rack7-web"}));

  AttestedAgent elsewhere{kOtherAgent, "join_token", "", 0, false, {{"join_token", "xyz"}}, 0, 0};
  EXPECT_EQ(Ids(*service_->AuthorizedEntries(elsewhere)),
            std::vector<std::string>{"spiffe://example.org/theirs"});
}

TEST_F(EntryServiceTest, UpdateBatchReportsEachEntryAloneInOneRevision) {
  auto created = service_->CreateBatch({Entry("/a", kAgent), Entry("/b", kAgent)});
  ASSERT_TRUE(created[0].ok() && created[1].ok());
  EXPECT_EQ(*store_->CurrentRevision(), 1);  // one batch, one revision
  RegistrationEntry a = *created[0];
  a.x509_svid_ttl = std::chrono::seconds(90);
  RegistrationEntry no_id = Entry("/c", kAgent);
  RegistrationEntry bad = *created[1];
  bad.parent_id = "spiffe://other.org/agent";
  auto updated = service_->UpdateBatch({a, no_id, bad});
  ASSERT_EQ(updated.size(), 3u);
  ASSERT_TRUE(updated[0].ok()) << updated[0].status().ToString();
  EXPECT_EQ(updated[1].status().code(), Code::kInvalidArgument);
  EXPECT_NE(updated[1].status().message().find("entry id is required"), std::string::npos);
  EXPECT_EQ(updated[2].status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->FetchEntry(a.id)->x509_svid_ttl, std::chrono::seconds(90));
  EXPECT_EQ(store_->FetchEntry(bad.id)->parent_id, kAgent);
  EXPECT_EQ(*store_->CurrentRevision(), 2);
}

// Advance must end where a fresh Authorize would, whatever changed in between.
TEST_F(EntryServiceTest, AdvancingMatchesReadingAgain) {
  const std::string server = ServerSpiffeId(service_->trust_domain()).str();
  AttestedAgent agent{kAgent, "join_token", "", 0, false, {{"join_token", "rack:7"}}, 0, 0};
  auto create = [&](const std::string& path, const std::string& parent) {
    auto created = service_->Create(Entry(path, parent, {{"unix", "uid:" + std::to_string(path.size())}}));
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? *created : RegistrationEntry{};
  };
  const int64_t now = NowUnixSeconds();
  auto authorization = service_->Authorize(agent, now);
  ASSERT_TRUE(authorization.ok()) << authorization.status().ToString();

  auto keys = [](const EntryService::Authorization& a) {
    std::vector<std::string> ids;
    for (const auto& [id, entry] : a.by_id) ids.push_back(entry.spiffe_id + " " + id);
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  auto check = [&](const std::string& step) {
    ASSERT_TRUE(service_->Advance(agent, now, *authorization).ok()) << step;
    auto fresh = service_->Authorize(agent, now);
    ASSERT_TRUE(fresh.ok()) << step;
    EXPECT_EQ(authorization->revision, fresh->revision) << step;
    EXPECT_EQ(keys(*authorization), keys(*fresh)) << step;
    for (const auto& [id, entry] : fresh->by_id) EXPECT_EQ(authorization->by_id.at(id), entry) << step;
  };

  RegistrationEntry own = create("/own", kAgent);
  create("/theirs", kOtherAgent);
  check("entries created below the agent and below another");
  RegistrationEntry nested = create("/nested", "spiffe://example.org/own");
  create("/deeper", "spiffe://example.org/nested");
  check("entries nested two levels below the agent's entry");
  RegistrationEntry rack = create("/rack7", server);
  create("/rack7-web", "spiffe://example.org/rack7");
  check("an alias that does not select the agent yet");
  rack.selectors = {{"join_token", "rack:7"}};
  ASSERT_TRUE(service_->Update(rack).ok());
  check("the alias now selects the agent");
  nested.parent_id = kOtherAgent;
  ASSERT_TRUE(service_->Update(nested).ok());
  check("the middle of the chain moved to another agent");
  nested.parent_id = kAgent;
  nested.x509_svid_ttl = std::chrono::seconds(120);
  ASSERT_TRUE(service_->Update(nested).ok());
  check("and back, changed");
  RegistrationEntry expired = create("/expired", kAgent);
  expired.expires_at = now - 1;
  ASSERT_TRUE(service_->Update(expired).ok());
  check("an entry past its expiry");
  own.spiffe_id = "spiffe://example.org/renamed";
  ASSERT_TRUE(service_->Update(own).ok());
  check("a renamed entry");
  ASSERT_TRUE(service_->Delete(nested.id).ok());
  check("the only holder of a parent deleted");
  ASSERT_TRUE(service_->Delete(rack.id).ok());
  check("the alias deleted");
  EXPECT_EQ(keys(*authorization).size(), 1u);  // /renamed alone
}

// Agents advancing from the same revision share one read of the changes; each still ends where
// its own fresh Authorize would, the second as the first.
TEST_F(EntryServiceTest, AgentsAdvancingFromOneRevisionEachGetTheirOwnEntries) {
  AttestedAgent first{kAgent, "join_token", "", 0, false, {}, 0, 0};
  AttestedAgent second{kOtherAgent, "join_token", "", 0, false, {}, 0, 0};
  const int64_t now = NowUnixSeconds();
  auto first_set = service_->Authorize(first, now);
  auto second_set = service_->Authorize(second, now);
  ASSERT_TRUE(first_set.ok() && second_set.ok());
  for (const auto& [path, parent] : std::vector<std::pair<std::string, std::string>>{
           {"/first/a", kAgent}, {"/second/a", kOtherAgent}, {"/first/b", kAgent}, {"/second/b", kOtherAgent}}) {
    ASSERT_TRUE(service_->Create(Entry(path, parent, {{"unix", "uid:1"}})).ok()) << path;
  }
  const std::vector<std::pair<const AttestedAgent*, EntryService::Authorization*>> agents{
      {&first, &*first_set}, {&second, &*second_set}};
  for (const auto& [agent, set] : agents) {
    ASSERT_TRUE(service_->Advance(*agent, now, *set).ok()) << agent->spiffe_id;
    auto fresh = service_->Authorize(*agent, now);
    ASSERT_TRUE(fresh.ok());
    EXPECT_EQ(set->revision, fresh->revision) << agent->spiffe_id;
    ASSERT_EQ(set->by_id.size(), 2u) << agent->spiffe_id;
    for (const auto& [id, entry] : fresh->by_id) EXPECT_EQ(set->by_id.at(id), entry) << agent->spiffe_id;
  }
}

TEST_F(EntryServiceTest, UpdateAndDeleteNeedAnId) {
  EXPECT_EQ(service_->Update(Entry("/a", kAgent)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(service_->Delete("").code(), Code::kInvalidArgument);
  auto created = service_->Create(Entry("/a", kAgent));
  ASSERT_TRUE(created.ok());
  RegistrationEntry changed = *created;
  changed.spiffe_id = "not an id";
  EXPECT_EQ(service_->Update(changed).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->FetchEntry(created->id)->spiffe_id, "spiffe://example.org/a");
  EXPECT_TRUE(service_->Delete(created->id).ok());
}

}  // namespace
}  // namespace sigil::serverd
