// The datastore conformance suite, run unchanged against SQLite (real database files) and
// PostgreSQL (a real server the test starts): every record round trips, uniqueness and single
// use hold, nothing is written on error, and acknowledged writes survive kill -9. Then what only
// one store has: SQLite's migrations from older files; PostgreSQL's several replicas on one
// database and its outages.
#include "serverd/datastore/postgres_datastore.h"
#include "serverd/datastore/sqlite_datastore.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <set>
#include <thread>

#include "core/event_loop_check.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "transport/event_loop.h"
#include "tests/support/sqlite_check.h"

namespace sigil::serverd {
namespace {

using sigil::testing::TempDir;
using std::chrono::seconds;

RegistrationEntry SampleEntry(const std::string& name, const std::string& parent = "spiffe://example.org/spire/agent/join_token/t1") {
  RegistrationEntry e;
  e.spiffe_id = "spiffe://example.org/" + name;
  e.parent_id = parent;
  e.selectors = {{"unix", "uid:1001"}, {"unix", "gid:10"}};
  e.x509_svid_ttl = seconds(3600);
  e.jwt_svid_ttl = seconds(300);
  e.dns_names = {name + ".example.org", "alt." + name + ".example.org"};
  e.federates_with = {"other.org", "third.org"};
  e.admin = true;
  e.downstream = false;
  e.expires_at = 1900000000;
  e.hint = "hint-" + name;
  return e;
}

enum class StoreKind { kSqlite, kPostgres };

std::string StoreName(const ::testing::TestParamInfo<StoreKind>& info) {
  return info.param == StoreKind::kSqlite ? "Sqlite" : "Postgres";
}

// One store of `kind`, fresh for each test: a new file, or a new database on the binary's one
// PostgreSQL server.
class StoreFixture {
 public:
  explicit StoreFixture(StoreKind kind) : kind_(kind) {
    if (kind_ == StoreKind::kPostgres) {
      auto server = sigil::testing::SharedPostgres();
      if (!server.ok()) {
        ADD_FAILURE() << server.status().ToString();
        return;
      }
      postgres_ = *server;
      static int databases = 0;
      database_ = "conformance_" + std::to_string(::getpid()) + "_" + std::to_string(++databases);
      auto made = postgres_->CreateDatabase(database_);
      if (!made.ok()) ADD_FAILURE() << made.status().ToString();
    }
  }

  Result<std::unique_ptr<Datastore>> TryOpen() const {
    if (kind_ == StoreKind::kSqlite) return OpenSqliteDatastore(path());
    if (postgres_ == nullptr) return Status(Code::kFailedPrecondition, "PostgreSQL did not start");
    return OpenPostgresDatastore({.connection_string = postgres_->ConnectionString(database_)});
  }
  std::unique_ptr<Datastore> Open() const {
    auto store = TryOpen();
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Runs `sql` on the store's own database, as an operator's tool would.
  Status ExecRaw(const std::string& sql) const {
    if (kind_ == StoreKind::kPostgres) return postgres_->Exec(database_, sql);
    sqlite3* db = nullptr;
    if (sqlite3_open(path().c_str(), &db) != SQLITE_OK) return Status(Code::kInternal, "cannot open the file");
    Status status;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      status = Status(Code::kInternal, sqlite3_errmsg(db));
    }
    sqlite3_close(db);
    return status;
  }

  // Everything the store holds at rest: its file (and WAL), or every file of the server.
  std::string AtRest() const {
    if (kind_ == StoreKind::kPostgres) {
      // The server's files, its write-ahead log included, once it has written what it holds.
      (void)postgres_->Exec(database_, "CHECKPOINT");
      std::string files;
      for (const auto& file : std::filesystem::recursive_directory_iterator(postgres_->data_dir())) {
        if (file.is_regular_file()) files += sigil::testing::ReadFile(file.path());
      }
      return files;
    }
    return sigil::testing::ReadFile(path()) +
           (std::filesystem::exists(path().string() + "-wal") ? sigil::testing::ReadFile(path().string() + "-wal") : "");
  }

  std::filesystem::path path() const { return dir_ / "datastore.sqlite3"; }
  StoreKind kind() const { return kind_; }
  sigil::testing::Postgres* postgres() const { return postgres_; }

 private:
  StoreKind kind_;
  TempDir dir_{"sigil-datastore"};
  sigil::testing::Postgres* postgres_ = nullptr;
  std::string database_;
};

// What a store's change feed announced, kind by kind.
class FeedRecorder {
 public:
  explicit FeedRecorder(Datastore& store)
      : subscription_(store.changes().Subscribe([this](StoreChange change) {
          {
            std::lock_guard lock(mutex_);
            ++counts_[change];
          }
          heard_.notify_all();
        })) {}

  // Waits for an announcement of `change` after the last Clear.
  bool WaitFor(StoreChange change, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex_);
    return heard_.wait_for(lock, timeout, [&] { return counts_[change] > 0; });
  }
  // Forgets what was heard, once the feed has been quiet for `quiet` (a PostgreSQL store announces
  // every kind when its listener connects).
  void Clear(std::chrono::milliseconds quiet = std::chrono::milliseconds(300)) {
    std::unique_lock lock(mutex_);
    do {
      counts_.clear();
    } while (heard_.wait_for(lock, quiet, [&] { return !counts_.empty(); }));
  }
  int Count(StoreChange change) {
    std::lock_guard lock(mutex_);
    return counts_[change];
  }

 private:
  std::mutex mutex_;
  std::condition_variable heard_;
  std::map<StoreChange, int> counts_;
  ChangeFeed::Subscription subscription_;  // last: unsubscribes before the rest goes
};

class DatastoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override { store_ = Open(); }
  std::unique_ptr<Datastore> Open() { return fixture_.Open(); }
  Status ExecRaw(const std::string& sql) { return fixture_.ExecRaw(sql); }

  StoreFixture fixture_{GetParam()};
  std::unique_ptr<Datastore> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, DatastoreTest, ::testing::Values(StoreKind::kSqlite, StoreKind::kPostgres), StoreName);

TEST_P(DatastoreTest, EntryRoundTripsEveryField) {
  auto created = store_->CreateEntry(SampleEntry("web"));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->id.size(), 36u);
  EXPECT_GT(created->created_at, 0);
  EXPECT_EQ(created->revision, 1);

  auto fetched = store_->FetchEntry(created->id);
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  EXPECT_EQ(*fetched, *created);
  EXPECT_EQ(fetched->dns_names[0], "web.example.org");  // the first DNS name stays first

  store_.reset();
  store_ = Open();
  auto reopened = store_->FetchEntry(created->id);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(*reopened, *created);
  EXPECT_EQ(store_->FetchEntry("nope").status().code(), Code::kNotFound);
}

TEST_P(DatastoreTest, DuplicateIsRefusedAndWritesNothing) {
  ASSERT_TRUE(store_->CreateEntry(SampleEntry("web")).ok());
  RegistrationEntry same = SampleEntry("web");
  std::reverse(same.selectors.begin(), same.selectors.end());  // order does not matter
  auto duplicate = store_->CreateEntry(same);
  ASSERT_EQ(duplicate.status().code(), Code::kAlreadyExists);
  EXPECT_NE(duplicate.status().message().find("spiffe://example.org/web"), std::string::npos);
  EXPECT_EQ(*store_->CountEntries(), 1);
  EXPECT_EQ(*store_->CurrentRevision(), 1);

  RegistrationEntry other_selectors = SampleEntry("web");
  other_selectors.selectors = {{"unix", "uid:1002"}};
  EXPECT_TRUE(store_->CreateEntry(other_selectors).ok());
}

TEST_P(DatastoreTest, BatchIsAllOrNothing) {
  std::vector<RegistrationEntry> batch = {SampleEntry("a"), SampleEntry("b"), SampleEntry("a")};
  auto failed = store_->CreateEntries(batch);
  ASSERT_EQ(failed.status().code(), Code::kAlreadyExists);
  EXPECT_NE(failed.status().ToString().find("entry 3 of the batch"), std::string::npos);
  EXPECT_EQ(*store_->CountEntries(), 0);

  batch.pop_back();
  auto created = store_->CreateEntries(batch);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->size(), 2u);
  EXPECT_EQ(*store_->CountEntries(), 2);
}

TEST_P(DatastoreTest, BatchWritesEachEntryAloneInOneRevision) {
  auto created = store_->BatchCreateEntries({SampleEntry("a"), SampleEntry("b"), SampleEntry("a")});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  ASSERT_EQ(created->size(), 3u);
  ASSERT_TRUE((*created)[0].ok() && (*created)[1].ok());
  EXPECT_EQ((*created)[2].status().code(), Code::kAlreadyExists);
  EXPECT_EQ((*created)[0]->revision, 1);
  EXPECT_EQ((*created)[1]->revision, 1);
  EXPECT_EQ(*store_->CountEntries(), 2);
  EXPECT_EQ(*store_->CurrentRevision(), 1);

  RegistrationEntry a = *(*created)[0];
  a.x509_svid_ttl = seconds(60);
  RegistrationEntry missing = a;
  missing.id = "no-such-id";
  RegistrationEntry b_as_a = *(*created)[1];  // would duplicate a
  b_as_a.spiffe_id = a.spiffe_id;
  auto updated = store_->BatchUpdateEntries({a, missing, b_as_a});
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  ASSERT_TRUE((*updated)[0].ok()) << (*updated)[0].status().ToString();
  EXPECT_EQ((*updated)[0]->revision, 2);
  EXPECT_EQ((*updated)[1].status().code(), Code::kNotFound);
  EXPECT_EQ((*updated)[2].status().code(), Code::kAlreadyExists);
  EXPECT_EQ(store_->FetchEntry(a.id)->x509_svid_ttl, seconds(60));
  EXPECT_EQ(store_->FetchEntry(b_as_a.id)->spiffe_id, "spiffe://example.org/b");
  EXPECT_EQ(*store_->CurrentRevision(), 2);

  // A batch in which nothing is written takes no revision.
  auto none = store_->BatchUpdateEntries({missing});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ((*none)[0].status().code(), Code::kNotFound);
  EXPECT_EQ(*store_->CurrentRevision(), 2);
}

TEST_P(DatastoreTest, ListFiltersByIdParentAndSelectors) {
  RegistrationEntry a = SampleEntry("a");
  RegistrationEntry b = SampleEntry("b", "spiffe://example.org/spire/agent/join_token/t2");
  b.selectors = {{"unix", "uid:1001"}};
  RegistrationEntry c = SampleEntry("c");
  c.selectors = {{"unix", "uid:1001"}, {"unix", "gid:10"}, {"unix", "user:web"}};
  for (auto* e : {&a, &b, &c}) ASSERT_TRUE(store_->CreateEntry(*e).ok());

  auto by_id = store_->ListEntries({.spiffe_id = "spiffe://example.org/b"});
  ASSERT_EQ(by_id->size(), 1u);
  EXPECT_EQ(by_id->front().spiffe_id, "spiffe://example.org/b");
  auto by_parent = store_->ListEntries({.parent_id = "spiffe://example.org/spire/agent/join_token/t1"});
  EXPECT_EQ(by_parent->size(), 2u);
  auto by_parents = store_->ListEntries({.parent_ids = std::vector<std::string>{
                                             "spiffe://example.org/spire/agent/join_token/t2",
                                             "spiffe://example.org/nobody"}});
  ASSERT_EQ(by_parents->size(), 1u);
  EXPECT_EQ(by_parents->front().spiffe_id, "spiffe://example.org/b");
  EXPECT_TRUE(store_->ListEntries({.parent_ids = std::vector<std::string>{}})->empty());

  const SelectorSet query({{"unix", "uid:1001"}, {"unix", "gid:10"}});
  auto count = [&](SelectorMatch mode) {
    EntryFilter filter;
    filter.selectors = query;
    filter.match = mode;
    return store_->ListEntries(filter)->size();
  };
  EXPECT_EQ(count(SelectorMatch::kExact), 1u);     // a
  EXPECT_EQ(count(SelectorMatch::kSubset), 2u);    // a, b
  EXPECT_EQ(count(SelectorMatch::kSuperset), 2u);  // a, c
  EXPECT_EQ(count(SelectorMatch::kAny), 3u);
}

TEST_P(DatastoreTest, UpdateAndDeleteAdvanceTheRevision) {
  auto created = store_->CreateEntry(SampleEntry("web"));
  ASSERT_TRUE(created.ok());
  RegistrationEntry changed = *created;
  changed.x509_svid_ttl = seconds(60);
  changed.dns_names = {"only.example.org"};
  auto updated = store_->UpdateEntry(changed);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(updated->revision, 2);
  EXPECT_EQ(updated->created_at, created->created_at);
  EXPECT_EQ(store_->FetchEntry(created->id)->dns_names, std::vector<std::string>{"only.example.org"});

  RegistrationEntry missing = changed;
  missing.id = "no-such-id";
  EXPECT_EQ(store_->UpdateEntry(missing).status().code(), Code::kNotFound);
  EXPECT_EQ(*store_->CurrentRevision(), 2);

  ASSERT_TRUE(store_->DeleteEntry(created->id).ok());
  EXPECT_EQ(*store_->CurrentRevision(), 3);
  EXPECT_EQ(store_->DeleteEntry(created->id).code(), Code::kNotFound);
  EXPECT_EQ(*store_->CountEntries(), 0);
}

TEST_P(DatastoreTest, ChangesSinceARevisionPerParent) {
  const std::string agent1 = "spiffe://example.org/spire/agent/join_token/t1";
  const std::string agent2 = "spiffe://example.org/spire/agent/join_token/t2";
  auto a = store_->CreateEntry(SampleEntry("a", agent1));
  auto b = store_->CreateEntry(SampleEntry("b", agent2));
  ASSERT_TRUE(a.ok() && b.ok());

  auto full = store_->EntriesChangedSince(0, {agent1});
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->revision, 2);
  ASSERT_EQ(full->changed.size(), 1u);
  EXPECT_EQ(full->changed[0].id, a->id);

  auto nothing = store_->EntriesChangedSince(full->revision, {agent1});
  EXPECT_TRUE(nothing->changed.empty());
  EXPECT_TRUE(nothing->removed_ids.empty());

  // Moving b to agent1 shows up for agent1 as a change and for agent2 as a removal.
  RegistrationEntry moved = *b;
  moved.parent_id = agent1;
  ASSERT_TRUE(store_->UpdateEntry(moved).ok());
  ASSERT_TRUE(store_->DeleteEntry(a->id).ok());
  auto for_agent1 = store_->EntriesChangedSince(full->revision, {agent1});
  ASSERT_EQ(for_agent1->changed.size(), 1u);
  EXPECT_EQ(for_agent1->changed[0].id, b->id);
  EXPECT_EQ(for_agent1->removed_ids, std::vector<std::string>{a->id});
  auto for_agent2 = store_->EntriesChangedSince(full->revision, {agent2});
  EXPECT_TRUE(for_agent2->changed.empty());
  EXPECT_EQ(for_agent2->removed_ids, std::vector<std::string>{b->id});
  EXPECT_EQ(for_agent2->revision, 4);
  // Asked for both parents, a move between them is a change, not a removal.
  auto for_both = store_->EntriesChangedSince(full->revision, {agent1, agent2});
  ASSERT_EQ(for_both->changed.size(), 1u);
  EXPECT_EQ(for_both->removed_ids, std::vector<std::string>{a->id});
}

TEST_P(DatastoreTest, AgentsAreRecordedBannedAndEvicted) {
  AttestedAgent agent{"spiffe://example.org/spire/agent/join_token/t1", "join_token", "0a1b", 1900000000,
                      false, {{"join_token", "t1"}}, 0, 0};
  ASSERT_TRUE(store_->CreateAgent(agent).ok());
  EXPECT_EQ(store_->CreateAgent(agent).code(), Code::kAlreadyExists);
  auto fetched = store_->FetchAgent(agent.spiffe_id);
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->serial, "0a1b");
  EXPECT_EQ(fetched->selectors, agent.selectors);
  ASSERT_TRUE(store_->UpdateAgentSvid(agent.spiffe_id, "ffee", 1900000100, "0a1b", 1800000300).ok());
  ASSERT_TRUE(store_->SetAgentBanned(agent.spiffe_id, true).ok());
  fetched = store_->FetchAgent(agent.spiffe_id);
  EXPECT_EQ(fetched->serial, "ffee");
  EXPECT_EQ(fetched->expires_at, 1900000100);
  EXPECT_EQ(fetched->previous_serial, "0a1b");
  EXPECT_EQ(fetched->previous_serial_valid_until, 1800000300);
  EXPECT_TRUE(fetched->banned);
  EXPECT_EQ(store_->ListAgents()->size(), 1u);
  EXPECT_EQ(*store_->CountAgents(), 1);
  ASSERT_TRUE(store_->DeleteAgent(agent.spiffe_id).ok());
  EXPECT_EQ(store_->FetchAgent(agent.spiffe_id).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->SetAgentBanned(agent.spiffe_id, true).code(), Code::kNotFound);
}

TEST_P(DatastoreTest, JoinTokensWorkOnceBeforeExpiryAndAreStoredHashed) {
  const std::string token = "3f6c1e0d-secret-token-value";
  ASSERT_TRUE(store_->CreateJoinToken(token, {"", 2000}).ok());
  ASSERT_TRUE(store_->CreateJoinToken("expired-token", {"", 1000}).ok());

  auto found = store_->FetchJoinToken(token);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(found->expires_at, 2000);
  AttestedAgent agent{"spiffe://example.org/spire/agent/join_token/t1", "join_token", "0a", 1900000000};
  ASSERT_TRUE(store_->RecordAttestedAgent(agent, token, 1500).ok());
  EXPECT_EQ(store_->FetchJoinToken(token).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->RecordAttestedAgent(agent, token, 1500).code(), Code::kNotFound);

  AttestedAgent late{"spiffe://example.org/spire/agent/join_token/expired-token", "join_token", "0b", 1900000000};
  Status expired = store_->RecordAttestedAgent(late, "expired-token", 1500);
  EXPECT_EQ(expired.code(), Code::kPermissionDenied);
  EXPECT_NE(expired.message().find("expired"), std::string::npos);
  EXPECT_EQ(store_->FetchAgent(late.spiffe_id).status().code(), Code::kNotFound);

  ASSERT_TRUE(store_->CreateJoinToken("old", {"", 10}).ok());
  EXPECT_EQ(*store_->PruneJoinTokens(100), 1);

  store_.reset();
  const std::string at_rest = fixture_.AtRest();
  EXPECT_NE(at_rest, "") << "nothing was read back from the store";
  EXPECT_EQ(at_rest.find("secret-token-value"), std::string::npos) << "the raw token reached the store";
}

// The token and the agent's record are one write: either both happen or neither does.
TEST_P(DatastoreTest, AnAgentIsRecordedWithItsJoinTokenSpentOrNotAtAll) {
  ASSERT_TRUE(store_->CreateJoinToken("kept", {"", 2000}).ok());
  AttestedAgent agent{"spiffe://example.org/spire/agent/join_token/kept", "join_token", "0a", 1900000000};
  ASSERT_TRUE(store_->CreateAgent(agent).ok());
  ASSERT_TRUE(store_->UpdateAgentSvid(agent.spiffe_id, "0b", 1900000000, "0a", 1800000000).ok());

  // Unknown token: the existing record stays as it was.
  EXPECT_EQ(store_->RecordAttestedAgent({agent.spiffe_id, "join_token", "0c", 1}, "unknown", 1500).code(),
            Code::kNotFound);
  EXPECT_EQ(store_->FetchAgent(agent.spiffe_id)->serial, "0b");
  EXPECT_TRUE(store_->FetchJoinToken("kept").ok());

  // A host that attests again replaces its record, previous serial included.
  AttestedAgent again{agent.spiffe_id, "join_token", "0d", 1900000500, false, {{"join_token", "kept"}}};
  ASSERT_TRUE(store_->RecordAttestedAgent(again, "kept", 1500).ok());
  auto fetched = store_->FetchAgent(agent.spiffe_id);
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->serial, "0d");
  EXPECT_EQ(fetched->previous_serial, "");
  EXPECT_EQ(fetched->selectors, again.selectors);
  EXPECT_EQ(store_->FetchJoinToken("kept").status().code(), Code::kNotFound);
}

// SQLite's own history: files written by older versions of serverd.
class SqliteDatastoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = Open(); }
  std::unique_ptr<Datastore> Open() { return fixture_.Open(); }
  std::filesystem::path path() const { return fixture_.path(); }

  StoreFixture fixture_{StoreKind::kSqlite};
  std::unique_ptr<Datastore> store_;
};

// A store written by the version-1 schema opens with its agents kept and no previous SVID.
TEST_F(SqliteDatastoreTest, AVersionOneStoreIsMigrated) {
  ASSERT_TRUE(store_->CreateAgent({"spiffe://example.org/spire/agent/x", "join_token", "0a", 1900000000}).ok());
  store_.reset();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
    const char* to_v1 =
        "ALTER TABLE agents DROP COLUMN previous_serial;"
        "ALTER TABLE agents DROP COLUMN previous_serial_valid_until;"
        "DROP TABLE federation_relationships;"
        "DROP TABLE bundle_history;"
        "ALTER TABLE ca_journal DROP COLUMN x509_tainted;"
        "ALTER TABLE ca_journal DROP COLUMN x509_revoked;"
        "ALTER TABLE ca_journal DROP COLUMN jwt_tainted;"
        "ALTER TABLE ca_journal DROP COLUMN jwt_revoked;"
        "ALTER TABLE ca_journal DROP COLUMN replica;"
        "ALTER TABLE ca_journal DROP COLUMN jwt_public_key;"
        "UPDATE schema_version SET version = 1;";
    EXPECT_EQ(sqlite3_exec(db, to_v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  store_ = Open();
  ASSERT_NE(store_, nullptr);
  auto agent = store_->FetchAgent("spiffe://example.org/spire/agent/x");
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  EXPECT_EQ(agent->serial, "0a");
  EXPECT_EQ(agent->previous_serial, "");
  ASSERT_TRUE(store_->UpdateAgentSvid(agent->spiffe_id, "0b", 1900000000, "0a", 1800000000).ok());
  EXPECT_EQ(store_->FetchAgent(agent->spiffe_id)->previous_serial, "0a");
  EXPECT_TRUE(store_->ListFederationRelationships().ok()) << "version 3's tables were made";
  EXPECT_TRUE(store_->ListBundleHistory("other.org").ok());
  CaSlot record{0, "ca-1", "der", 100, 200, CaSlotState::kRetired};
  record.replica = "b";
  record.jwt_public_key_der = std::string("\x30\x00", 2);
  auto slot = store_->AddCaSlot(record);
  ASSERT_TRUE(slot.ok());
  EXPECT_TRUE(store_->MarkCaSlot(slot->id, CaSlotMark::kX509Tainted).ok()) << "version 4's columns were made";
  EXPECT_EQ(store_->ListCaSlots()->back().replica, "b") << "version 5's columns were made";
  EXPECT_EQ(store_->ListCaSlots()->back().jwt_public_key_der, record.jwt_public_key_der);
}

TEST_P(DatastoreTest, FederationRelationshipsAreKeptByTrustDomain) {
  const StoredFederationRelationship spiffe{"partner.test", "https://partner.example:8443", "https_spiffe",
                                            "spiffe://partner.test/spire/server"};
  const StoredFederationRelationship web{"web.test", "https://web.example", "https_web", ""};
  ASSERT_TRUE(store_->CreateFederationRelationship(web).ok());
  ASSERT_TRUE(store_->CreateFederationRelationship(spiffe).ok());
  EXPECT_EQ(store_->CreateFederationRelationship(spiffe).code(), Code::kAlreadyExists);
  EXPECT_EQ(*store_->ListFederationRelationships(), (std::vector{spiffe, web}));

  StoredFederationRelationship moved = spiffe;
  moved.bundle_endpoint_url = "https://partner.example:9443";
  ASSERT_TRUE(store_->UpdateFederationRelationship(moved).ok());
  EXPECT_EQ(store_->ListFederationRelationships()->front(), moved);
  EXPECT_EQ(store_->UpdateFederationRelationship({"none.test", "https://x", "https_web", ""}).code(), Code::kNotFound);

  StoredFederationRelationship unknown_profile = web;
  unknown_profile.trust_domain = "ftp.test";
  unknown_profile.bundle_endpoint_profile = "https_ftp";
  EXPECT_FALSE(store_->CreateFederationRelationship(unknown_profile).ok()) << "the schema's check";

  ASSERT_TRUE(store_->DeleteFederationRelationship("web.test").ok());
  EXPECT_EQ(store_->DeleteFederationRelationship("web.test").code(), Code::kNotFound);
  EXPECT_EQ(*store_->ListFederationRelationships(), std::vector{moved});
  store_.reset();
  store_ = Open();
  EXPECT_EQ(*store_->ListFederationRelationships(), std::vector{moved}) << "kept across a reopen";
}

TEST_P(DatastoreTest, AFederatedBundleKeepsItsLastVersionsNewestFirst) {
  for (int i = 1; i <= Datastore::kBundleHistoryDepth + 3; ++i) {
    const std::string data = "{\"keys\":[],\"spiffe_sequence\":" + std::to_string(i) + "}";
    ASSERT_TRUE(store_->SetBundle({"other.org", data, true, 0}).ok());
    ASSERT_TRUE(store_->SetBundle({"other.org", data, true, 0}).ok()) << "the same again is not a new version";
  }
  ASSERT_TRUE(store_->SetBundle({"example.org", "{\"keys\":[]}", false, 0}).ok());
  auto history = store_->ListBundleHistory("other.org");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), static_cast<size_t>(Datastore::kBundleHistoryDepth));
  EXPECT_NE(history->front().data.find("\"spiffe_sequence\":13"), std::string::npos);
  EXPECT_NE(history->back().data.find("\"spiffe_sequence\":4"), std::string::npos);
  EXPECT_GT(history->front().stored_at, 0);
  EXPECT_TRUE(store_->ListBundleHistory("example.org")->empty()) << "the server's own bundle has no history here";
  ASSERT_TRUE(store_->DeleteBundle("other.org").ok());
  EXPECT_EQ(store_->ListBundleHistory("other.org")->size(), static_cast<size_t>(Datastore::kBundleHistoryDepth))
      << "the history outlives the bundle";
}

TEST_P(DatastoreTest, BundlesAndCaJournal) {
  ASSERT_TRUE(store_->SetBundle({"example.org", "{\"keys\":[]}", false, 0}).ok());
  ASSERT_TRUE(store_->SetBundle({"other.org", "{\"keys\":[1]}", true, 0}).ok());
  ASSERT_TRUE(store_->SetBundle({"other.org", "{\"keys\":[2]}", true, 0}).ok());
  EXPECT_EQ(store_->FetchBundle("other.org")->data, "{\"keys\":[2]}");
  EXPECT_EQ(store_->ListBundles()->size(), 2u);
  ASSERT_TRUE(store_->DeleteBundle("other.org").ok());
  EXPECT_EQ(store_->DeleteBundle("other.org").code(), Code::kNotFound);

  std::string der("\x30\x82\x00\x00", 4);
  auto slot = store_->AddCaSlot({0, "ca-1", der, 100, 200, CaSlotState::kActive});
  ASSERT_TRUE(slot.ok());
  CaSlot replica_b{0, "ca-2", der, 150, 300, CaSlotState::kPrepared};
  replica_b.replica = "b";
  replica_b.jwt_public_key_der = std::string("\x30\x59\x00", 3);
  auto next = store_->AddCaSlot(replica_b);
  ASSERT_TRUE(next.ok());
  EXPECT_GT(next->id, slot->id);
  ASSERT_TRUE(store_->SetCaSlotState(slot->id, CaSlotState::kRetired).ok());
  auto slots = store_->ListCaSlots();
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_EQ((*slots)[0].state, CaSlotState::kRetired);
  EXPECT_EQ((*slots)[0].certificate_der, der);
  EXPECT_EQ((*slots)[1].key_label, "ca-2");
  EXPECT_EQ((*slots)[0].replica, "");
  EXPECT_EQ((*slots)[1].replica, "b");
  EXPECT_EQ((*slots)[1].jwt_public_key_der, replica_b.jwt_public_key_der);
  // An operator's marks, each on its own, kept across a reopen.
  EXPECT_FALSE((*slots)[0].x509_tainted || (*slots)[0].x509_revoked || (*slots)[0].jwt_tainted || (*slots)[0].jwt_revoked);
  ASSERT_TRUE(store_->MarkCaSlot(slot->id, CaSlotMark::kX509Tainted).ok());
  ASSERT_TRUE(store_->MarkCaSlot(slot->id, CaSlotMark::kJwtRevoked).ok());
  EXPECT_EQ(store_->MarkCaSlot(999, CaSlotMark::kX509Revoked).code(), Code::kNotFound);
  store_.reset();
  store_ = Open();
  slots = store_->ListCaSlots();
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_TRUE((*slots)[0].x509_tainted);
  EXPECT_FALSE((*slots)[0].x509_revoked);
  EXPECT_FALSE((*slots)[0].jwt_tainted);
  EXPECT_TRUE((*slots)[0].jwt_revoked);
  EXPECT_FALSE((*slots)[1].x509_tainted || (*slots)[1].jwt_revoked);
}

TEST_P(DatastoreTest, ACommittedWriteIsAnnouncedAndARolledBackOneIsNot) {
  FeedRecorder feed(*store_);
  feed.Clear();
  auto entry = store_->CreateEntry(SampleEntry("announced"));
  ASSERT_TRUE(entry.ok());
  EXPECT_TRUE(feed.WaitFor(StoreChange::kEntries));
  feed.Clear();
  ASSERT_TRUE(store_->DeleteEntry(entry->id).ok());
  EXPECT_TRUE(feed.WaitFor(StoreChange::kEntries));
  ASSERT_TRUE(store_->SetBundle({"other.org", "{\"keys\":[]}", true, 0}).ok());
  EXPECT_TRUE(feed.WaitFor(StoreChange::kBundles));
  ASSERT_TRUE(store_->AddCaSlot({0, "ca-1", "der", 100, 200, CaSlotState::kActive}).ok());
  EXPECT_TRUE(feed.WaitFor(StoreChange::kCaJournal));
  feed.Clear();
  // Refused after its revision was taken: rolled back, so nothing is announced. Nor is a read.
  ASSERT_TRUE(store_->CreateEntry(SampleEntry("twice")).ok());
  ASSERT_TRUE(feed.WaitFor(StoreChange::kEntries));
  feed.Clear();
  ASSERT_EQ(store_->CreateEntry(SampleEntry("twice")).status().code(), Code::kAlreadyExists);
  ASSERT_TRUE(store_->ListEntries({}).ok());
  EXPECT_FALSE(feed.WaitFor(StoreChange::kEntries, std::chrono::milliseconds(500)));
  EXPECT_EQ(feed.Count(StoreChange::kBundles) + feed.Count(StoreChange::kCaJournal), 0);
}

TEST_P(DatastoreTest, RefusesASchemaFromTheFuture) {
  store_.reset();
  ASSERT_TRUE(ExecRaw("UPDATE schema_version SET version = 99").ok());
  auto reopened = fixture_.TryOpen();
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(reopened.status().message().find("99"), std::string::npos);
}

TEST_P(DatastoreTest, ConcurrentWritersGetDistinctRevisions) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::mutex mutex;
  std::set<int64_t> revisions;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto created = store_->CreateEntry(SampleEntry("w" + std::to_string(t) + "-" + std::to_string(i)));
        if (!created.ok()) {
          ++failures;
          continue;
        }
        std::lock_guard lock(mutex);
        revisions.insert(created->revision);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(revisions.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(*store_->CountEntries(), kThreads * kPerThread);
}

// A child process creates entries as fast as it can and reports each acknowledged id on a
// pipe; it is killed with SIGKILL mid-stream. Every reported id must be in the reopened store.
TEST_P(DatastoreTest, AcknowledgedWritesSurviveKill9) {
  store_.reset();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    auto store = fixture_.TryOpen();
    if (!store.ok()) ::_exit(2);
    for (int i = 0;; ++i) {
      auto created = (*store)->CreateEntry(SampleEntry("k" + std::to_string(i)));
      if (!created.ok()) ::_exit(3);
      const std::string line = created->id + "\n";
      if (::write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) ::_exit(4);
    }
  }
  ::close(fds[1]);
  std::string acknowledged;
  char buffer[4096];
  while (std::count(acknowledged.begin(), acknowledged.end(), '\n') < 40) {
    const ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
    ASSERT_GT(n, 0) << "the writer stopped early";
    acknowledged.append(buffer, static_cast<size_t>(n));
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  // Lines written before the kill landed are acknowledged too.
  ssize_t n;
  while ((n = ::read(fds[0], buffer, sizeof(buffer))) > 0) acknowledged.append(buffer, static_cast<size_t>(n));
  ::close(fds[0]);

  store_ = Open();
  ASSERT_NE(store_, nullptr);
  size_t checked = 0;
  for (size_t start = 0, end; (end = acknowledged.find('\n', start)) != std::string::npos; start = end + 1) {
    const std::string id = acknowledged.substr(start, end - start);
    EXPECT_TRUE(store_->FetchEntry(id).ok()) << "acknowledged entry " << id << " was lost";
    ++checked;
  }
  EXPECT_GE(checked, 40u);
  store_.reset();

  if (GetParam() == StoreKind::kSqlite) {
    EXPECT_EQ(sigil::testing::SqliteIntegrityCheck(fixture_.path()), "ok");
  }
}

// The datastore blocks on disk: called from an event-loop thread it aborts, naming the call,
// in the builds the tests run (see core/event_loop_check.h); off the loop it just works.
TEST_P(DatastoreTest, ACallFromAnEventLoopThreadAborts) {
#if SIGIL_EVENT_LOOP_CHECK
  // A threadsafe death test runs the whole test again in a new process, which would start a
  // PostgreSQL server of its own and leave it running when it aborts, so with PostgreSQL the
  // child is forked from this process. This process has threads by then (the store's change
  // listener), and ThreadSanitizer ends a forked child that starts one: that child marks its
  // own thread as EventLoop::Run does, and the lines below show that a loop's thread is marked.
  const bool forked = GetParam() == StoreKind::kPostgres;
  GTEST_FLAG_SET(death_test_style, forked ? "fast" : "threadsafe");
  EXPECT_DEATH(
      {
        if (forked) {
          MarkEventLoopThread(true);
          (void)store_->CurrentRevision();
        }
        transport::LoopThread loop;
        loop.Start();
        loop.loop().Invoke([&] { (void)store_->CurrentRevision(); });
      },
      "CurrentRevision called on an event-loop thread");
  transport::LoopThread loop;
  loop.Start();
  std::atomic<bool> marked{false};
  loop.loop().Invoke([&] { marked = OnEventLoopThread(); });
  EXPECT_TRUE(marked.load());
  EXPECT_FALSE(OnEventLoopThread());
  EXPECT_TRUE(store_->CurrentRevision().ok());
#else
  GTEST_SKIP() << "the event-loop check is off in this build (NDEBUG)";
#endif
}

// PostgreSQL's own: several serverd replicas on one database, and the server's outages.
class PostgresDatastoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    replica_a_ = fixture_.Open();
    replica_b_ = fixture_.Open();
    ASSERT_NE(replica_a_, nullptr);
    ASSERT_NE(replica_b_, nullptr);
  }

  StoreFixture fixture_{StoreKind::kPostgres};
  std::unique_ptr<Datastore> replica_a_;
  std::unique_ptr<Datastore> replica_b_;
};

TEST_F(PostgresDatastoreTest, ReplicasSeeOneStoreAndSpendATokenOnce) {
  auto created = replica_a_->CreateEntry(SampleEntry("shared"));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto seen = replica_b_->FetchEntry(created->id);
  ASSERT_TRUE(seen.ok()) << seen.status().ToString();
  EXPECT_EQ(*seen, *created);
  EXPECT_EQ(replica_b_->CreateEntry(SampleEntry("shared")).status().code(), Code::kAlreadyExists);

  ASSERT_TRUE(replica_a_->CreateJoinToken("once", {"", 4000000000}).ok());
  AttestedAgent agent{"spiffe://example.org/spire/agent/join_token/once", "join_token", "0a", 1900000000};
  ASSERT_TRUE(replica_a_->RecordAttestedAgent(agent, "once", 1500).ok());
  EXPECT_EQ(replica_b_->RecordAttestedAgent(agent, "once", 1500).code(), Code::kNotFound)
      << "a token spent at one replica works at another";

  // Both replicas race to spend one token, over and over: exactly one wins each race.
  for (int round = 0; round < 10; ++round) {
    const std::string token = "race-" + std::to_string(round);
    ASSERT_TRUE(replica_a_->CreateJoinToken(token, {"", 4000000000}).ok());
    std::atomic<int> recorded{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> racers;
    for (int t = 0; t < 4; ++t) {
      racers.emplace_back([&, t] {
        Datastore& replica = t % 2 == 0 ? *replica_a_ : *replica_b_;
        AttestedAgent racer{"spiffe://example.org/spire/agent/join_token/" + token, "join_token", "0" + std::to_string(t),
                            1900000000};
        Status status = replica.RecordAttestedAgent(racer, token, 1500);
        if (status.ok()) {
          ++recorded;
        } else if (status.code() == Code::kNotFound) {
          ++refused;
        }
      });
    }
    for (auto& racer : racers) racer.join();
    EXPECT_EQ(recorded.load(), 1) << "round " << round;
    EXPECT_EQ(refused.load(), 3) << "round " << round;
  }
  EXPECT_EQ(*replica_b_->CountAgents(), 11);
}

// Writers on two replicas at once: every revision is handed out once, and a reader on either
// replica that holds revision R has every change up to R (revisions commit in order).
TEST_F(PostgresDatastoreTest, WritersOnTwoReplicasCommitInRevisionOrder) {
  constexpr int kPerWriter = 40;
  std::atomic<bool> writing{true};
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      Datastore& replica = t % 2 == 0 ? *replica_a_ : *replica_b_;
      for (int i = 0; i < kPerWriter; ++i) {
        if (!replica.CreateEntry(SampleEntry("w" + std::to_string(t) + "-" + std::to_string(i))).ok()) ++failures;
      }
    });
  }
  // A syncing agent's view, read while the writers run: never a revision with a change missing.
  int64_t held = 0;
  std::set<std::string> seen;
  int reads = 0;
  std::thread reader([&] {
    while (writing.load()) {
      auto changes = replica_b_->EntriesChangedSince(held, {});
      if (!changes.ok()) {
        ++failures;
        continue;
      }
      for (const auto& entry : changes->changed) {
        EXPECT_GT(entry.revision, held);
        EXPECT_LE(entry.revision, changes->revision);
        seen.insert(entry.id);
      }
      held = changes->revision;
      ++reads;
    }
  });
  for (auto& writer : writers) writer.join();
  writing = false;
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  auto last = replica_b_->EntriesChangedSince(held, {});
  ASSERT_TRUE(last.ok());
  for (const auto& entry : last->changed) seen.insert(entry.id);
  EXPECT_EQ(seen.size(), static_cast<size_t>(4 * kPerWriter)) << "a change committed below a revision a reader held";
  EXPECT_EQ(*replica_a_->CurrentRevision(), 4 * kPerWriter);
  EXPECT_GT(reads, 1);
}

// A replica hears of another's commit by PostgreSQL's notification, well within a second.
TEST_F(PostgresDatastoreTest, AWriteOnOneReplicaWakesTheOtherAtOnce) {
  FeedRecorder heard_by_b(*replica_b_);
  heard_by_b.Clear();
  std::vector<double> latencies_ms;
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(replica_a_->CreateEntry(SampleEntry("wake-" + std::to_string(i))).ok());
    ASSERT_TRUE(heard_by_b.WaitFor(StoreChange::kEntries, std::chrono::seconds(1))) << "write " << i;
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    heard_by_b.Clear(std::chrono::milliseconds(0));
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  EXPECT_LT(latencies_ms[latencies_ms.size() / 2], 250.0) << "median from commit on A to B's feed";
  ASSERT_TRUE(replica_a_->SetBundle({"other.org", "{\"keys\":[]}", true, 0}).ok());
  EXPECT_TRUE(heard_by_b.WaitFor(StoreChange::kBundles, std::chrono::seconds(1)));
  ASSERT_TRUE(replica_a_->AddCaSlot({0, "ca-a", "der", 100, 200, CaSlotState::kActive}).ok());
  EXPECT_TRUE(heard_by_b.WaitFor(StoreChange::kCaJournal, std::chrono::seconds(1)));
}

// PostgreSQL stops: calls fail with Unavailable, promptly, and name the datastore; it comes back:
// the same store objects work again without being opened anew.
TEST_F(PostgresDatastoreTest, AnOutageIsUnavailableAndTheStoreRecoversWithoutReopening) {
  ASSERT_TRUE(replica_a_->CreateEntry(SampleEntry("before")).ok());
  sigil::testing::Postgres& server = *fixture_.postgres();
  ASSERT_TRUE(server.Stop().ok());
  for (int call = 0; call < 3; ++call) {
    const auto start = std::chrono::steady_clock::now();
    Status down = replica_a_->Ping();
    EXPECT_EQ(down.code(), Code::kUnavailable) << down.ToString();
    EXPECT_NE(down.message().find("datastore"), std::string::npos) << down.ToString();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  }
  EXPECT_EQ(replica_b_->CreateEntry(SampleEntry("during")).status().code(), Code::kUnavailable);
  ASSERT_TRUE(server.StartAgain().ok());
  // The back-off ends within its ceiling (5 s), then the next call connects.
  EXPECT_TRUE(sigil::testing::WaitUntil([&] { return replica_a_->Ping().ok(); }, std::chrono::seconds(10)));
  EXPECT_TRUE(sigil::testing::WaitUntil([&] { return replica_b_->CountEntries().ok(); }, std::chrono::seconds(10)));
  EXPECT_EQ(*replica_b_->CountEntries(), 1) << "the write refused during the outage must not have landed";
  EXPECT_TRUE(replica_b_->CreateEntry(SampleEntry("after")).ok());
}

// Notifications sent while a replica's listener is cut off are lost: when it is back it says that
// anything may have changed, and then hears the other replica's writes again.
TEST_F(PostgresDatastoreTest, AListenerCutOffAnnouncesEverythingWhenBackAndHearsAgain) {
  FeedRecorder heard_by_b(*replica_b_);
  heard_by_b.Clear();
  sigil::testing::Postgres& server = *fixture_.postgres();
  ASSERT_TRUE(server.Stop().ok());
  ASSERT_TRUE(server.StartAgain().ok());
  for (StoreChange change : kEveryStoreChange) {
    EXPECT_TRUE(heard_by_b.WaitFor(change, std::chrono::seconds(10))) << static_cast<int>(change);
  }
  ASSERT_TRUE(sigil::testing::WaitUntil([&] { return replica_a_->Ping().ok(); }, std::chrono::seconds(10)));
  heard_by_b.Clear();
  ASSERT_TRUE(replica_a_->CreateEntry(SampleEntry("after")).ok());
  EXPECT_TRUE(heard_by_b.WaitFor(StoreChange::kEntries, std::chrono::seconds(1)));
}

TEST(PostgresOptionsTest, APasswordInTheConnectionStringIsRefusedAndNamed) {
  Status refused = CheckPostgresConnectionString("host=/run/postgresql dbname=sigil password=hunter2");
  EXPECT_EQ(refused.code(), Code::kInvalidArgument);
  EXPECT_NE(refused.message().find("password_file"), std::string::npos) << refused.ToString();
  EXPECT_EQ(refused.message().find("hunter2"), std::string::npos) << "the password was echoed";
  EXPECT_EQ(CheckPostgresConnectionString("postgresql://sigil:hunter2@localhost/sigil").code(), Code::kInvalidArgument);
  EXPECT_EQ(CheckPostgresConnectionString("host=/run/postgresql dbname='unterminated").code(), Code::kInvalidArgument);
  EXPECT_TRUE(CheckPostgresConnectionString("host=/run/postgresql dbname=sigil user=sigil").ok());
  EXPECT_TRUE(CheckPostgresConnectionString("postgresql://sigil@localhost:5432/sigil?sslmode=require").ok());
}

}  // namespace
}  // namespace sigil::serverd
