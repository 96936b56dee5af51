#include "serverd/datastore/sqlite_datastore.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "core/event_loop_check.h"
#include "core/openssl_util.h"
#include "core/x509_ca.h"
#include "serverd/datastore/sqlite_connection.h"
#include "serverd/datastore/store_keys.h"

namespace sigil::serverd {

namespace {

using namespace sqlite;  // NOLINT: the store's own link to its file (sqlite_connection.h)

// The whole Datastore interface in one class, a file longer than the ~600 lines the others keep
// to: every method takes its one lock and its cache of statements, and the entry writes share
// their helpers. What stands alone, the schema and the link to the file, has files of its own.
class SqliteDatastore final : public Datastore {
 public:
  explicit SqliteDatastore(sqlite3* db) : db_(db), statements_(db) {
    // The change feed hears of a commit once it is durable: the update hook notes which tables
    // each statement wrote, the WAL hook runs after the commit, a rollback forgets the notes.
    sqlite3_update_hook(db_, &SqliteDatastore::OnRowWritten, this);
    sqlite3_rollback_hook(db_, &SqliteDatastore::OnRollback, this);
    sqlite3_wal_hook(db_, &SqliteDatastore::OnCommitted, this);
  }
  ~SqliteDatastore() override {
    statements_.Clear();
    sqlite3_close_v2(db_);
  }

  Status Migrate() { return MigrateSchema(db_, statements_); }

  // ---- entries ----

  Result<RegistrationEntry> CreateEntry(RegistrationEntry entry) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Transaction tx(db_);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(int64_t revision, NextRevision());
    SIGIL_RETURN_IF_ERROR(InsertEntry(entry, revision));
    SIGIL_RETURN_IF_ERROR(tx.Commit());
    return entry;
  }

  Result<std::vector<RegistrationEntry>> CreateEntries(std::vector<RegistrationEntry> entries) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Transaction tx(db_);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(int64_t revision, NextRevision());
    for (size_t i = 0; i < entries.size(); ++i) {
      Status inserted = InsertEntry(entries[i], revision);
      if (!inserted.ok()) return std::move(inserted).AddContext("entry " + std::to_string(i + 1) + " of the batch");
    }
    SIGIL_RETURN_IF_ERROR(tx.Commit());
    return entries;
  }

  Result<RegistrationEntry> FetchEntry(const std::string& id) override {
    std::lock_guard lock(LockOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(auto entries, LoadEntries("WHERE id = ?1", {id}));
    if (entries.empty()) return NotFoundError("no entry with id " + id);
    return entries.front();
  }

  Result<std::vector<RegistrationEntry>> ListEntries(const EntryFilter& filter) override {
    std::lock_guard lock(LockOffLoop(__func__));
    std::string where = "WHERE 1=1";
    std::vector<std::string> args;
    if (filter.spiffe_id) {
      args.push_back(*filter.spiffe_id);
      where += " AND spiffe_id = ?" + std::to_string(args.size());
    }
    if (filter.parent_id) {
      args.push_back(*filter.parent_id);
      where += " AND parent_id = ?" + std::to_string(args.size());
    }
    if (filter.parent_ids) {
      args.push_back(JsonArray(*filter.parent_ids));
      where += " AND parent_id IN (SELECT value FROM json_each(?" + std::to_string(args.size()) + "))";
    }
    SIGIL_ASSIGN_OR_RETURN(auto entries, LoadEntries(where, args));
    std::erase_if(entries, [&](const RegistrationEntry& e) { return !EntryMatchesFilter(e, filter); });
    return entries;
  }

  Result<RegistrationEntry> UpdateEntry(RegistrationEntry entry) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Transaction tx(db_);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(int64_t revision, NextRevision());
    SIGIL_RETURN_IF_ERROR(ReplaceEntry(entry, revision));
    SIGIL_RETURN_IF_ERROR(tx.Commit());
    return entry;
  }

  Result<std::vector<Result<RegistrationEntry>>> BatchCreateEntries(std::vector<RegistrationEntry> entries) override {
    return WriteEach(std::move(entries), [this](RegistrationEntry& entry, int64_t revision) { return InsertEntry(entry, revision); });
  }

  Result<std::vector<Result<RegistrationEntry>>> BatchUpdateEntries(std::vector<RegistrationEntry> entries) override {
    return WriteEach(std::move(entries), [this](RegistrationEntry& entry, int64_t revision) { return ReplaceEntry(entry, revision); });
  }

  Status DeleteEntry(const std::string& id) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Transaction tx(db_);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(auto existing, LoadEntries("WHERE id = ?1", {id}));
    if (existing.empty()) return NotFoundError("no entry with id " + id);
    SIGIL_ASSIGN_OR_RETURN(int64_t revision, NextRevision());
    SIGIL_RETURN_IF_ERROR(Statement(statements_, "DELETE FROM entries WHERE id = ?1").Bind(1, id).Run("deleting entry"));
    SIGIL_RETURN_IF_ERROR(Tombstone(id, existing.front().parent_id, revision));
    return tx.Commit();
  }

  Result<int64_t> CountEntries() override {
    std::lock_guard lock(LockOffLoop(__func__));
    return CountLocked("SELECT count(*) FROM entries");
  }

  Result<int64_t> CurrentRevision() override {
    std::lock_guard lock(LockOffLoop(__func__));
    return CountLocked("SELECT value FROM revision WHERE id = 1");
  }

  Result<EntryChanges> EntriesChangedSince(int64_t since_revision,
                                           const std::vector<std::string>& parent_ids) override {
    std::lock_guard lock(LockOffLoop(__func__));
    // One read transaction, so the revision matches the rows read with it.
    SIGIL_RETURN_IF_ERROR(Exec(db_, "BEGIN", "starting a read"));
    struct EndRead {
      sqlite3* db;
      ~EndRead() { sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr); }
    } end_read{db_};
    EntryChanges changes;
    SIGIL_ASSIGN_OR_RETURN(changes.revision, CountLocked("SELECT value FROM revision WHERE id = 1"));
    // The parent filter is the query's, so a sync of a few parents reads their rows only.
    std::string where = "WHERE revision > ?1";
    std::vector<std::string> args = {std::to_string(since_revision)};
    if (!parent_ids.empty()) {
      where += " AND parent_id IN (SELECT value FROM json_each(?2))";
      args.push_back(JsonArray(parent_ids));
    }
    SIGIL_ASSIGN_OR_RETURN(changes.changed, LoadEntries(where, args, true));
    Statement removed(statements_, ("SELECT entry_id FROM entry_tombstones " + where).c_str());
    for (size_t i = 0; i < args.size(); ++i) removed.Bind(static_cast<int>(i + 1), args[i]);
    // An entry that moved between two of the parents left a tombstone under the first, but it
    // is still there under the second.
    std::unordered_set<std::string> present;
    for (const auto& entry : changes.changed) present.insert(entry.id);
    while (removed.Next()) {
      std::string id = removed.Text(0);
      if (!present.contains(id)) changes.removed_ids.push_back(std::move(id));
    }
    SIGIL_RETURN_IF_ERROR(removed.status("reading removed entries"));
    return changes;
  }

  // ---- agents ----

  Status CreateAgent(const AttestedAgent& agent) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Transaction tx(db_);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_RETURN_IF_ERROR(InsertAgent(agent));
    return tx.Commit();
  }

  Status RecordAttestedAgent(const AttestedAgent& agent, const std::string& join_token, int64_t now) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Transaction tx(db_);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    if (!join_token.empty()) SIGIL_RETURN_IF_ERROR(SpendJoinToken(join_token, now));
    SIGIL_RETURN_IF_ERROR(Statement(statements_, "DELETE FROM agents WHERE spiffe_id = ?1")
                              .Bind(1, agent.spiffe_id).Run("replacing the agent's earlier record"));
    SIGIL_RETURN_IF_ERROR(InsertAgent(agent));
    return tx.Commit();
  }

  Result<AttestedAgent> FetchAgent(const std::string& spiffe_id) override {
    std::lock_guard lock(LockOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(auto agents, LoadAgents("WHERE spiffe_id = ?1", spiffe_id));
    if (agents.empty()) return NotFoundError("no attested agent " + spiffe_id);
    return agents.front();
  }

  Result<std::vector<AttestedAgent>> ListAgents() override {
    std::lock_guard lock(LockOffLoop(__func__));
    return LoadAgents("", "");
  }

  Result<int64_t> CountAgents() override {
    std::lock_guard lock(LockOffLoop(__func__));
    return CountLocked("SELECT count(*) FROM agents");
  }

  Status UpdateAgentSvid(const std::string& spiffe_id, const std::string& serial, int64_t expires_at,
                         const std::string& previous_serial, int64_t previous_valid_until) override {
    std::lock_guard lock(LockOffLoop(__func__));
    return ChangeAgent(Statement(statements_, "UPDATE agents SET serial = ?2, expires_at = ?3, updated_at = ?4, "
                                              "previous_serial = ?5, previous_serial_valid_until = ?6 WHERE spiffe_id = ?1")
                           .Bind(1, spiffe_id).Bind(2, serial).Bind(3, expires_at).Bind(4, NowUnixSeconds())
                           .Bind(5, previous_serial).Bind(6, previous_valid_until),
                       spiffe_id);
  }

  Status SetAgentBanned(const std::string& spiffe_id, bool banned) override {
    std::lock_guard lock(LockOffLoop(__func__));
    return ChangeAgent(Statement(statements_, "UPDATE agents SET banned = ?2, updated_at = ?3 WHERE spiffe_id = ?1")
                           .Bind(1, spiffe_id).Bind(2, int64_t{banned}).Bind(3, NowUnixSeconds()),
                       spiffe_id);
  }

  Status DeleteAgent(const std::string& spiffe_id) override {
    std::lock_guard lock(LockOffLoop(__func__));
    return ChangeAgent(Statement(statements_, "DELETE FROM agents WHERE spiffe_id = ?1").Bind(1, spiffe_id), spiffe_id);
  }

  // ---- join tokens ----

  Status CreateJoinToken(const std::string& token, const JoinToken& details) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Statement insert(statements_, "INSERT INTO join_tokens (token_hash, spiffe_id, expires_at) VALUES (?1, ?2, ?3)");
    insert.Bind(1, JoinTokenHash(token)).Bind(2, details.spiffe_id).Bind(3, details.expires_at);
    Status inserted = insert.Run("recording join token");
    if (!inserted.ok() && insert.extended_code() == SQLITE_CONSTRAINT_PRIMARYKEY) {
      return AlreadyExistsError("join token already exists");
    }
    return inserted;
  }

  Result<JoinToken> FetchJoinToken(const std::string& token) override {
    std::lock_guard lock(LockOffLoop(__func__));
    return ReadJoinToken(JoinTokenHash(token));
  }

  Result<int64_t> PruneJoinTokens(int64_t now) override {
    std::lock_guard lock(LockOffLoop(__func__));
    SIGIL_RETURN_IF_ERROR(Statement(statements_, "DELETE FROM join_tokens WHERE expires_at <= ?1").Bind(1, now).Run("pruning join tokens"));
    return int64_t{sqlite3_changes(db_)};
  }

  // ---- bundles ----

  Status SetBundle(const StoredBundle& bundle) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Transaction tx(db_);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(auto held, LoadBundles("WHERE trust_domain = ?1", bundle.trust_domain));
    const bool changed = held.empty() || held.front().data != bundle.data;
    const int64_t now = NowUnixSeconds();
    SIGIL_RETURN_IF_ERROR(
        Statement(statements_, "INSERT INTO bundles (trust_domain, data, federated, updated_at) VALUES (?1, ?2, ?3, ?4) "
                               "ON CONFLICT (trust_domain) DO UPDATE SET data = ?2, federated = ?3, updated_at = ?4")
            .Bind(1, bundle.trust_domain).Bind(2, bundle.data).Bind(3, int64_t{bundle.federated}).Bind(4, now)
            .Run("storing bundle"));
    if (bundle.federated && changed) {
      SIGIL_RETURN_IF_ERROR(
          Statement(statements_, "INSERT INTO bundle_history (trust_domain, data, stored_at) VALUES (?1, ?2, ?3)")
              .Bind(1, bundle.trust_domain).Bind(2, bundle.data).Bind(3, now).Run("keeping the bundle's history"));
      SIGIL_RETURN_IF_ERROR(
          Statement(statements_, "DELETE FROM bundle_history WHERE trust_domain = ?1 AND id NOT IN "
                                 "(SELECT id FROM bundle_history WHERE trust_domain = ?1 ORDER BY id DESC LIMIT ?2)")
              .Bind(1, bundle.trust_domain).Bind(2, int64_t{kBundleHistoryDepth}).Run("trimming the bundle's history"));
    }
    return tx.Commit();
  }

  Result<std::vector<BundleVersion>> ListBundleHistory(const std::string& trust_domain) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Statement read(statements_, "SELECT trust_domain, data, stored_at FROM bundle_history WHERE trust_domain = ?1 ORDER BY id DESC");
    read.Bind(1, trust_domain);
    std::vector<BundleVersion> versions;
    while (read.Next()) versions.push_back({read.Text(0), read.Text(1), read.Int(2)});
    SIGIL_RETURN_IF_ERROR(read.status("reading the bundle history"));
    return versions;
  }

  // ---- federation relationships ----

  Status CreateFederationRelationship(const StoredFederationRelationship& relationship) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Statement insert(statements_, "INSERT INTO federation_relationships (trust_domain, bundle_endpoint_url, "
                                  "bundle_endpoint_profile, endpoint_spiffe_id) VALUES (?1, ?2, ?3, ?4) "
                                  "ON CONFLICT (trust_domain) DO NOTHING");
    BindRelationship(insert, relationship);
    SIGIL_RETURN_IF_ERROR(insert.Run("storing federation relationship"));
    if (sqlite3_changes(db_) == 0) {
      return AlreadyExistsError("a federation relationship with " + relationship.trust_domain + " already exists");
    }
    return Status::Ok();
  }

  Status UpdateFederationRelationship(const StoredFederationRelationship& relationship) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Statement update(statements_, "UPDATE federation_relationships SET bundle_endpoint_url = ?2, "
                                  "bundle_endpoint_profile = ?3, endpoint_spiffe_id = ?4 WHERE trust_domain = ?1");
    BindRelationship(update, relationship);
    SIGIL_RETURN_IF_ERROR(update.Run("updating federation relationship"));
    if (sqlite3_changes(db_) == 0) return NotFoundError("no federation relationship with " + relationship.trust_domain);
    return Status::Ok();
  }

  Result<std::vector<StoredFederationRelationship>> ListFederationRelationships() override {
    std::lock_guard lock(LockOffLoop(__func__));
    Statement read(statements_, "SELECT trust_domain, bundle_endpoint_url, bundle_endpoint_profile, endpoint_spiffe_id "
                                "FROM federation_relationships ORDER BY trust_domain");
    std::vector<StoredFederationRelationship> relationships;
    while (read.Next()) relationships.push_back({read.Text(0), read.Text(1), read.Text(2), read.Text(3)});
    SIGIL_RETURN_IF_ERROR(read.status("reading federation relationships"));
    return relationships;
  }

  Status DeleteFederationRelationship(const std::string& trust_domain) override {
    std::lock_guard lock(LockOffLoop(__func__));
    SIGIL_RETURN_IF_ERROR(Statement(statements_, "DELETE FROM federation_relationships WHERE trust_domain = ?1")
                              .Bind(1, trust_domain).Run("deleting federation relationship"));
    if (sqlite3_changes(db_) == 0) return NotFoundError("no federation relationship with " + trust_domain);
    return Status::Ok();
  }

  Result<StoredBundle> FetchBundle(const std::string& trust_domain) override {
    std::lock_guard lock(LockOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(auto bundles, LoadBundles("WHERE trust_domain = ?1", trust_domain));
    if (bundles.empty()) return NotFoundError("no bundle for trust domain " + trust_domain);
    return bundles.front();
  }

  Result<std::vector<StoredBundle>> ListBundles() override {
    std::lock_guard lock(LockOffLoop(__func__));
    return LoadBundles("", "");
  }

  Status DeleteBundle(const std::string& trust_domain) override {
    std::lock_guard lock(LockOffLoop(__func__));
    SIGIL_RETURN_IF_ERROR(Statement(statements_, "DELETE FROM bundles WHERE trust_domain = ?1").Bind(1, trust_domain).Run("deleting bundle"));
    if (sqlite3_changes(db_) == 0) return NotFoundError("no bundle for trust domain " + trust_domain);
    return Status::Ok();
  }

  // ---- CA journal ----

  Result<CaSlot> AddCaSlot(CaSlot slot) override {
    std::lock_guard lock(LockOffLoop(__func__));
    Statement insert(statements_, "INSERT INTO ca_journal (key_label, certificate, not_before, not_after, state, replica, "
                                  "jwt_public_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    insert.Bind(1, slot.key_label).BindBlob(2, slot.certificate_der).Bind(3, slot.not_before)
        .Bind(4, slot.not_after).Bind(5, std::string(CaSlotStateName(slot.state))).Bind(6, slot.replica)
        .BindBlob(7, slot.jwt_public_key_der);
    SIGIL_RETURN_IF_ERROR(insert.Run("recording CA"));
    slot.id = sqlite3_last_insert_rowid(db_);
    return slot;
  }

  Result<std::vector<CaSlot>> ListCaSlots() override {
    std::lock_guard lock(LockOffLoop(__func__));
    Statement read(statements_,
                   "SELECT id, key_label, certificate, not_before, not_after, state, x509_tainted, x509_revoked, "
                   "jwt_tainted, jwt_revoked, replica, jwt_public_key FROM ca_journal ORDER BY id");
    std::vector<CaSlot> slots;
    while (read.Next()) {
      CaSlot slot{read.Int(0), read.Text(1), read.Text(2), read.Int(3), read.Int(4), CaSlotState::kPrepared};
      const std::string state = read.Text(5);
      slot.state = state == "active" ? CaSlotState::kActive : state == "retired" ? CaSlotState::kRetired : CaSlotState::kPrepared;
      slot.x509_tainted = read.Int(6) != 0;
      slot.x509_revoked = read.Int(7) != 0;
      slot.jwt_tainted = read.Int(8) != 0;
      slot.jwt_revoked = read.Int(9) != 0;
      slot.replica = read.Text(10);
      slot.jwt_public_key_der = read.Text(11);
      slots.push_back(std::move(slot));
    }
    SIGIL_RETURN_IF_ERROR(read.status("reading the CA journal"));
    return slots;
  }

  Status SetCaSlotState(int64_t id, CaSlotState state) override {
    std::lock_guard lock(LockOffLoop(__func__));
    SIGIL_RETURN_IF_ERROR(Statement(statements_, "UPDATE ca_journal SET state = ?2 WHERE id = ?1")
                              .Bind(1, id).Bind(2, std::string(CaSlotStateName(state))).Run("updating the CA journal"));
    if (sqlite3_changes(db_) == 0) return NotFoundError("no CA journal slot " + std::to_string(id));
    return Status::Ok();
  }

  Status MarkCaSlot(int64_t id, CaSlotMark mark) override {
    std::lock_guard lock(LockOffLoop(__func__));
    // Column names from a closed set, never from a caller's string.
    const char* sql = mark == CaSlotMark::kX509Tainted   ? "UPDATE ca_journal SET x509_tainted = 1 WHERE id = ?1"
                      : mark == CaSlotMark::kX509Revoked ? "UPDATE ca_journal SET x509_revoked = 1 WHERE id = ?1"
                      : mark == CaSlotMark::kJwtTainted  ? "UPDATE ca_journal SET jwt_tainted = 1 WHERE id = ?1"
                                                         : "UPDATE ca_journal SET jwt_revoked = 1 WHERE id = ?1";
    SIGIL_RETURN_IF_ERROR(Statement(statements_, sql).Bind(1, id).Run("marking a CA journal slot"));
    if (sqlite3_changes(db_) == 0) return NotFoundError("no CA journal slot " + std::to_string(id));
    return Status::Ok();
  }

  Status Ping() override {
    std::lock_guard lock(LockOffLoop(__func__));
    return CountLocked("SELECT value FROM revision WHERE id = 1").status();
  }

 private:
  Result<int64_t> CountLocked(const char* sql) {
    Statement read(statements_, sql);
    if (!read.Next()) {
      SIGIL_RETURN_IF_ERROR(read.status("reading the datastore"));
      return Status(Code::kInternal, "datastore answered no row");
    }
    return read.Int(0);
  }

  static void OnRowWritten(void* self, int /*operation*/, const char* /*database*/, const char* table,
                           sqlite3_int64 /*row*/) {
    const std::string_view name(table);
    std::optional<StoreChange> change;
    if (name == "revision") change = StoreChange::kEntries;  // every entry write advances it
    if (name == "bundles" || name == "federation_relationships") change = StoreChange::kBundles;
    if (name == "ca_journal") change = StoreChange::kCaJournal;
    if (change) static_cast<SqliteDatastore*>(self)->uncommitted_changes_ |= 1u << static_cast<unsigned>(*change);
  }
  static void OnRollback(void* self) { static_cast<SqliteDatastore*>(self)->uncommitted_changes_ = 0; }
  static int OnCommitted(void* self, sqlite3* db, const char* database, int wal_pages) {
    // A WAL hook replaces SQLite's automatic checkpoint (itself a WAL hook), so it checkpoints as
    // that one would, at 1000 pages.
    if (wal_pages >= 1000) sqlite3_wal_checkpoint_v2(db, database, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    auto* store = static_cast<SqliteDatastore*>(self);
    const unsigned committed = std::exchange(store->uncommitted_changes_, 0);
    for (StoreChange change : kEveryStoreChange) {
      if (committed & (1u << static_cast<unsigned>(change))) store->changes_.Publish(change);
    }
    return SQLITE_OK;
  }

  Result<int64_t> NextRevision() {
    SIGIL_RETURN_IF_ERROR(Exec(db_, "UPDATE revision SET value = value + 1 WHERE id = 1", "advancing the revision"));
    return CountLocked("SELECT value FROM revision WHERE id = 1");
  }

  // One transaction and one revision for the batch, each entry inside its own savepoint: an
  // entry that fails is undone alone and the rest go on, and the batch costs one sync to disk.
  template <typename Write>
  Result<std::vector<Result<RegistrationEntry>>> WriteEach(std::vector<RegistrationEntry> entries, Write write) {
    std::lock_guard lock(LockOffLoop(__func__));
    Transaction tx(db_);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(int64_t revision, NextRevision());
    std::vector<Result<RegistrationEntry>> results;
    results.reserve(entries.size());
    bool any_written = false;
    for (auto& entry : entries) {
      SIGIL_RETURN_IF_ERROR(Exec(db_, "SAVEPOINT batch_item", "starting a batch item"));
      Status written = write(entry, revision);
      if (written.ok()) {
        SIGIL_RETURN_IF_ERROR(Exec(db_, "RELEASE batch_item", "finishing a batch item"));
        results.emplace_back(std::move(entry));
        any_written = true;
      } else {
        SIGIL_RETURN_IF_ERROR(Exec(db_, "ROLLBACK TO batch_item; RELEASE batch_item", "undoing a batch item"));
        results.emplace_back(std::move(written));
      }
    }
    // Nothing written: the transaction rolls back with the revision it took.
    if (any_written) SIGIL_RETURN_IF_ERROR(tx.Commit());
    return results;
  }

  // Replaces every field of the stored entry with `entry`'s but created_at; inside a transaction.
  Status ReplaceEntry(RegistrationEntry& entry, int64_t revision) {
    SIGIL_ASSIGN_OR_RETURN(auto existing, LoadEntries("WHERE id = ?1", {entry.id}));
    if (existing.empty()) return NotFoundError("no entry with id " + entry.id);
    entry.created_at = existing.front().created_at;
    SIGIL_RETURN_IF_ERROR(Statement(statements_, "DELETE FROM entries WHERE id = ?1").Bind(1, entry.id).Run("replacing entry"));
    SIGIL_RETURN_IF_ERROR(InsertEntry(entry, revision));
    if (existing.front().parent_id != entry.parent_id) {
      // Agents holding the old parent learn of the move as a removal.
      SIGIL_RETURN_IF_ERROR(Tombstone(entry.id, existing.front().parent_id, revision));
    }
    return Status::Ok();
  }

  Status Tombstone(const std::string& id, const std::string& parent_id, int64_t revision) {
    return Statement(statements_, "INSERT INTO entry_tombstones (entry_id, parent_id, revision) VALUES (?1, ?2, ?3) "
                          "ON CONFLICT (entry_id) DO UPDATE SET parent_id = ?2, revision = ?3")
        .Bind(1, id).Bind(2, parent_id).Bind(3, revision).Run("recording removal");
  }

  Status InsertEntry(RegistrationEntry& entry, int64_t revision) {
    if (entry.id.empty()) entry.id = NewEntryId();
    if (entry.created_at == 0) entry.created_at = NowUnixSeconds();
    entry.revision = revision;
    entry.selectors = SelectorSet(entry.selectors).items();
    Statement insert(statements_, "INSERT INTO entries (id, spiffe_id, parent_id, selector_key, x509_svid_ttl, jwt_svid_ttl, admin, downstream, expires_at, hint, revision, created_at) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    insert.Bind(1, entry.id).Bind(2, entry.spiffe_id).Bind(3, entry.parent_id).Bind(4, EntrySelectorKey(entry.selectors))
        .Bind(5, int64_t{entry.x509_svid_ttl.count()}).Bind(6, int64_t{entry.jwt_svid_ttl.count()})
        .Bind(7, int64_t{entry.admin}).Bind(8, int64_t{entry.downstream}).Bind(9, entry.expires_at)
        .Bind(10, entry.hint).Bind(11, revision).Bind(12, entry.created_at);
    Status inserted = insert.Run("storing entry");
    if (!inserted.ok()) {
      if (insert.extended_code() == SQLITE_CONSTRAINT_UNIQUE) {
        return AlreadyExistsError("an entry with spiffe_id " + entry.spiffe_id + ", parent_id " +
                                  entry.parent_id + " and the same selectors already exists");
      }
      if (insert.extended_code() == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return AlreadyExistsError("an entry with id " + entry.id + " already exists");
      }
      return inserted;
    }
    for (const Selector& s : entry.selectors) {
      SIGIL_RETURN_IF_ERROR(Statement(statements_, "INSERT INTO entry_selectors (entry_id, type, value) VALUES (?1, ?2, ?3)")
                                .Bind(1, entry.id).Bind(2, s.type).Bind(3, s.value).Run("storing selector"));
    }
    for (size_t i = 0; i < entry.dns_names.size(); ++i) {
      SIGIL_RETURN_IF_ERROR(Statement(statements_, "INSERT INTO entry_dns_names (entry_id, position, name) VALUES (?1, ?2, ?3)")
                                .Bind(1, entry.id).Bind(2, static_cast<int64_t>(i)).Bind(3, entry.dns_names[i]).Run("storing DNS name"));
    }
    for (size_t i = 0; i < entry.federates_with.size(); ++i) {
      SIGIL_RETURN_IF_ERROR(Statement(statements_, "INSERT INTO entry_federates_with (entry_id, position, trust_domain) VALUES (?1, ?2, ?3)")
                                .Bind(1, entry.id).Bind(2, static_cast<int64_t>(i)).Bind(3, entry.federates_with[i]).Run("storing federation"));
    }
    // A re-created id is no longer removed.
    return Statement(statements_, "DELETE FROM entry_tombstones WHERE entry_id = ?1").Bind(1, entry.id).Run("clearing removal");
  }

  // Entries matching `where` (bound to `args` as ?1, ?2, ...), with their lists, ordered by id
  // (or by revision when `by_revision`).
  Result<std::vector<RegistrationEntry>> LoadEntries(const std::string& where, const std::vector<std::string>& args,
                                                     bool by_revision = false) {
    const std::string sql = "SELECT id, spiffe_id, parent_id, x509_svid_ttl, jwt_svid_ttl, admin, downstream, expires_at, hint, revision, created_at FROM entries " +
                            where + (by_revision ? " ORDER BY revision, id" : " ORDER BY id");
    Statement read(statements_, sql.c_str());
    for (size_t i = 0; i < args.size(); ++i) read.Bind(static_cast<int>(i + 1), args[i]);
    std::vector<RegistrationEntry> entries;
    std::map<std::string, size_t> index;
    while (read.Next()) {
      RegistrationEntry e;
      e.id = read.Text(0);
      e.spiffe_id = read.Text(1);
      e.parent_id = read.Text(2);
      e.x509_svid_ttl = std::chrono::seconds(read.Int(3));
      e.jwt_svid_ttl = std::chrono::seconds(read.Int(4));
      e.admin = read.Int(5) != 0;
      e.downstream = read.Int(6) != 0;
      e.expires_at = read.Int(7);
      e.hint = read.Text(8);
      e.revision = read.Int(9);
      e.created_at = read.Int(10);
      index[e.id] = entries.size();
      entries.push_back(std::move(e));
    }
    SIGIL_RETURN_IF_ERROR(read.status("reading entries"));
    if (entries.empty()) return entries;
    // The child rows of the selected entries, joined in memory: one query per table rather than
    // one per entry keeps a full sync of many entries to three scans.
    const std::string children = " WHERE entry_id IN (SELECT id FROM entries " + where + ")";
    auto load_children = [&](const std::string& select, auto&& apply) -> Status {
      const std::string child_sql = select + children;
      Statement rows(statements_, child_sql.c_str());
      for (size_t i = 0; i < args.size(); ++i) rows.Bind(static_cast<int>(i + 1), args[i]);
      while (rows.Next()) {
        if (auto it = index.find(rows.Text(0)); it != index.end()) apply(entries[it->second], rows);
      }
      return rows.status("reading entry details");
    };
    SIGIL_RETURN_IF_ERROR(load_children("SELECT entry_id, type, value FROM entry_selectors",
                                        [](RegistrationEntry& e, Statement& r) { e.selectors.push_back({r.Text(1), r.Text(2)}); }));
    SIGIL_RETURN_IF_ERROR(load_children("SELECT entry_id, name, position FROM entry_dns_names",
                                        [](RegistrationEntry& e, Statement& r) {
                                          const auto position = static_cast<size_t>(r.Int(2));
                                          if (e.dns_names.size() <= position) e.dns_names.resize(position + 1);
                                          e.dns_names[position] = r.Text(1);
                                        }));
    SIGIL_RETURN_IF_ERROR(load_children("SELECT entry_id, trust_domain, position FROM entry_federates_with",
                                        [](RegistrationEntry& e, Statement& r) {
                                          const auto position = static_cast<size_t>(r.Int(2));
                                          if (e.federates_with.size() <= position) e.federates_with.resize(position + 1);
                                          e.federates_with[position] = r.Text(1);
                                        }));
    for (auto& e : entries) e.selectors = SelectorSet(e.selectors).items();
    return entries;
  }

  // Inside a transaction.
  Status InsertAgent(const AttestedAgent& agent) {
    Statement insert(statements_, "INSERT INTO agents (spiffe_id, attestation_type, serial, expires_at, banned, created_at, updated_at, "
                                  "previous_serial, previous_serial_valid_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)");
    insert.Bind(1, agent.spiffe_id).Bind(2, agent.attestation_type).Bind(3, agent.serial)
        .Bind(4, agent.expires_at).Bind(5, int64_t{agent.banned}).Bind(6, NowUnixSeconds())
        .Bind(7, agent.previous_serial).Bind(8, agent.previous_serial_valid_until);
    Status inserted = insert.Run("recording agent");
    if (!inserted.ok()) {
      if (insert.extended_code() == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return AlreadyExistsError("agent " + agent.spiffe_id + " is already attested");
      }
      return inserted;
    }
    for (const Selector& s : agent.selectors) {
      SIGIL_RETURN_IF_ERROR(Statement(statements_, "INSERT OR IGNORE INTO agent_selectors (spiffe_id, type, value) VALUES (?1, ?2, ?3)")
                                .Bind(1, agent.spiffe_id).Bind(2, s.type).Bind(3, s.value).Run("recording agent selector"));
    }
    return Status::Ok();
  }

  Result<JoinToken> ReadJoinToken(const std::string& hash) {
    Statement read(statements_, "SELECT spiffe_id, expires_at FROM join_tokens WHERE token_hash = ?1");
    read.Bind(1, hash);
    if (!read.Next()) {
      SIGIL_RETURN_IF_ERROR(read.status("reading join token"));
      return NotFoundError("join token is unknown or was already used");
    }
    return JoinToken{read.Text(0), read.Int(1)};
  }

  // Inside a transaction: deletes the token, or says why it cannot be spent.
  Status SpendJoinToken(const std::string& token, int64_t now) {
    const std::string hash = JoinTokenHash(token);
    SIGIL_ASSIGN_OR_RETURN(JoinToken found, ReadJoinToken(hash));
    if (found.expires_at <= now) {
      return PermissionDeniedError("join token expired " + std::to_string(now - found.expires_at) + "s ago");
    }
    return Statement(statements_, "DELETE FROM join_tokens WHERE token_hash = ?1").Bind(1, hash).Run("using join token");
  }

  Result<std::vector<AttestedAgent>> LoadAgents(const std::string& where, const std::string& arg) {
    const std::string sql = "SELECT spiffe_id, attestation_type, serial, expires_at, banned, created_at, updated_at, "
                            "previous_serial, previous_serial_valid_until FROM agents " + where + " ORDER BY spiffe_id";
    Statement read(statements_, sql.c_str());
    if (!where.empty()) read.Bind(1, arg);
    std::vector<AttestedAgent> agents;
    while (read.Next()) {
      agents.push_back({read.Text(0), read.Text(1), read.Text(2), read.Int(3), read.Int(4) != 0, {}, read.Int(5), read.Int(6),
                        read.Text(7), read.Int(8)});
    }
    SIGIL_RETURN_IF_ERROR(read.status("reading agents"));
    for (auto& agent : agents) {
      Statement selectors(statements_, "SELECT type, value FROM agent_selectors WHERE spiffe_id = ?1 ORDER BY type, value");
      selectors.Bind(1, agent.spiffe_id);
      while (selectors.Next()) agent.selectors.push_back({selectors.Text(0), selectors.Text(1)});
      SIGIL_RETURN_IF_ERROR(selectors.status("reading agent selectors"));
    }
    return agents;
  }

  Status ChangeAgent(Statement& statement, const std::string& spiffe_id) {
    SIGIL_RETURN_IF_ERROR(statement.Run("updating agent"));
    if (sqlite3_changes(db_) == 0) return NotFoundError("no attested agent " + spiffe_id);
    return Status::Ok();
  }

  static void BindRelationship(Statement& statement, const StoredFederationRelationship& relationship) {
    statement.Bind(1, relationship.trust_domain).Bind(2, relationship.bundle_endpoint_url)
        .Bind(3, relationship.bundle_endpoint_profile).Bind(4, relationship.endpoint_spiffe_id);
  }

  Result<std::vector<StoredBundle>> LoadBundles(const std::string& where, const std::string& arg) {
    const std::string sql = "SELECT trust_domain, data, federated, updated_at FROM bundles " + where + " ORDER BY trust_domain";
    Statement read(statements_, sql.c_str());
    if (!where.empty()) read.Bind(1, arg);
    std::vector<StoredBundle> bundles;
    while (read.Next()) bundles.push_back({read.Text(0), read.Text(1), read.Int(2) != 0, read.Int(3)});
    SIGIL_RETURN_IF_ERROR(read.status("reading bundles"));
    return bundles;
  }

  // Every entry point takes the store's lock through here: SQLite reads wait on the disk and
  // writes on fsync, so none may run on an event loop.
  std::mutex& LockOffLoop(const char* method) {
    AssertNotOnEventLoop(method);
    return mutex_;
  }

  std::mutex mutex_;
  sqlite3* db_;
  StatementCache statements_;
  unsigned uncommitted_changes_ = 0;  // a bit per StoreChange, under the connection's own mutex
};

}  // namespace

Result<std::unique_ptr<Datastore>> OpenSqliteDatastore(const std::filesystem::path& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status status(Code::kFailedPrecondition, "cannot open datastore " + path.string() + ": " +
                                                 (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close_v2(db);
    return status;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);
  auto store = std::make_unique<SqliteDatastore>(db);
  Status migrated = store->Migrate();
  if (!migrated.ok()) return std::move(migrated).AddContext("opening datastore " + path.string());
  return std::unique_ptr<Datastore>(std::move(store));
}

}  // namespace sigil::serverd
