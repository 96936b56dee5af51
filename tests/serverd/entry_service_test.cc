#include "serverd/entry_service.h"

#include <gtest/gtest.h>

#include "serverd/sqlite_datastore.h"
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
