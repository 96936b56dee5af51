#include "serverd/datastore/postgres_datastore.h"

#include <libpq-fe.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <random>
#include <unordered_set>
#include <utility>
#include <nlohmann/json.hpp>

#include "core/event_loop_check.h"
#include "core/x509_ca.h"
#include "serverd/datastore/postgres_change_listener.h"
#include "serverd/datastore/postgres_connection.h"
#include "serverd/datastore/store_keys.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;

using namespace pg;  // NOLINT: this file is the pool's one user besides the listener

constexpr const char* kEntryColumns =
    "SELECT id, spiffe_id, parent_id, x509_svid_ttl, jwt_svid_ttl, admin, downstream, expires_at, hint, revision, "
    "created_at, "
    // The lists ride along in the same statement: one round trip and one snapshot per listing.
    "COALESCE((SELECT json_agg(json_build_array(s.type, s.value)) FROM entry_selectors s WHERE s.entry_id = e.id), "
    "'[]'), "
    "COALESCE((SELECT json_agg(d.name ORDER BY d.position) FROM entry_dns_names d WHERE d.entry_id = e.id), '[]'), "
    "COALESCE((SELECT json_agg(f.trust_domain ORDER BY f.position) FROM entry_federates_with f "
    "WHERE f.entry_id = e.id), '[]') "
    "FROM entries e ";

constexpr const char* kAgentColumns =
    "SELECT spiffe_id, attestation_type, serial, expires_at, banned, created_at, updated_at, previous_serial, "
    "previous_serial_valid_until, "
    "COALESCE((SELECT json_agg(json_build_array(s.type, s.value) ORDER BY s.type, s.value) FROM agent_selectors s "
    "WHERE s.spiffe_id = a.spiffe_id), '[]') "
    "FROM agents a ";

std::vector<std::string> Strings(const json& array) {
  std::vector<std::string> strings;
  for (const json& item : array) {
    if (item.is_string()) strings.push_back(item.get<std::string>());
  }
  return strings;
}

std::vector<Selector> Selectors(const json& array) {
  std::vector<Selector> selectors;
  for (const json& pair : array) {
    if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string()) {
      selectors.push_back({pair[0].get<std::string>(), pair[1].get<std::string>()});
    }
  }
  return selectors;
}

std::vector<RegistrationEntry> ReadEntries(const Rows& rows) {
  std::vector<RegistrationEntry> entries;
  entries.reserve(static_cast<size_t>(rows.size()));
  for (int r = 0; r < rows.size(); ++r) {
    RegistrationEntry e;
    e.id = rows.Text(r, 0);
    e.spiffe_id = rows.Text(r, 1);
    e.parent_id = rows.Text(r, 2);
    e.x509_svid_ttl = std::chrono::seconds(rows.Int(r, 3));
    e.jwt_svid_ttl = std::chrono::seconds(rows.Int(r, 4));
    e.admin = rows.Bool(r, 5);
    e.downstream = rows.Bool(r, 6);
    e.expires_at = rows.Int(r, 7);
    e.hint = rows.Text(r, 8);
    e.revision = rows.Int(r, 9);
    e.created_at = rows.Int(r, 10);
    e.selectors = SelectorSet(Selectors(rows.Array(r, 11))).items();
    e.dns_names = Strings(rows.Array(r, 12));
    e.federates_with = Strings(rows.Array(r, 13));
    entries.push_back(std::move(e));
  }
  return entries;
}

std::vector<AttestedAgent> ReadAgents(const Rows& rows) {
  std::vector<AttestedAgent> agents;
  for (int r = 0; r < rows.size(); ++r) {
    agents.push_back({rows.Text(r, 0), rows.Text(r, 1), rows.Text(r, 2), rows.Int(r, 3), rows.Bool(r, 4),
                      Selectors(rows.Array(r, 9)), rows.Int(r, 5), rows.Int(r, 6), rows.Text(r, 7), rows.Int(r, 8)});
  }
  return agents;
}

std::vector<StoredBundle> ReadBundles(const Rows& rows) {
  std::vector<StoredBundle> bundles;
  for (int r = 0; r < rows.size(); ++r) {
    bundles.push_back({rows.Text(r, 0), rows.Text(r, 1), rows.Bool(r, 2), rows.Int(r, 3)});
  }
  return bundles;
}

// The whole Datastore interface in one class, a file longer than the ~600 lines the others keep
// to: every method leases from its one pool, and the entry writes share their helpers. What
// stands alone, the schema and the link to the server, has files of its own.
class PostgresDatastore final : public Datastore {
 public:
  explicit PostgresDatastore(const PostgresOptions& options) : pool_(options) {}

  Status Migrate() {
    SIGIL_ASSIGN_OR_RETURN(std::unique_ptr<Connection> connection, pool_.Connect());
    return MigrateSchema(*connection);
  }

  void StartListening() { listener_ = std::make_unique<ChangeListener>(pool_, changes_); }

  // ---- entries ----

  Result<RegistrationEntry> CreateEntry(RegistrationEntry entry) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    Transaction tx(*connection);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(int64_t revision, NextRevision(*connection));
    SIGIL_RETURN_IF_ERROR(InsertEntry(*connection, entry, revision));
    SIGIL_RETURN_IF_ERROR(tx.Commit());
    return entry;
  }

  Result<std::vector<RegistrationEntry>> CreateEntries(std::vector<RegistrationEntry> entries) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    Transaction tx(*connection);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(int64_t revision, NextRevision(*connection));
    for (size_t i = 0; i < entries.size(); ++i) {
      Status inserted = InsertEntry(*connection, entries[i], revision);
      if (!inserted.ok()) return std::move(inserted).AddContext("entry " + std::to_string(i + 1) + " of the batch");
    }
    SIGIL_RETURN_IF_ERROR(tx.Commit());
    return entries;
  }

  Result<RegistrationEntry> FetchEntry(const std::string& id) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(auto entries, LoadEntries(*connection, "WHERE id = $1", {Text(id)}));
    if (entries.empty()) return NotFoundError("no entry with id " + id);
    return entries.front();
  }

  Result<std::vector<RegistrationEntry>> ListEntries(const EntryFilter& filter) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    std::string where = "WHERE true";
    std::vector<Param> params;
    if (filter.spiffe_id) {
      params.push_back(Text(*filter.spiffe_id));
      where += " AND spiffe_id = $" + std::to_string(params.size());
    }
    if (filter.parent_id) {
      params.push_back(Text(*filter.parent_id));
      where += " AND parent_id = $" + std::to_string(params.size());
    }
    if (filter.parent_ids) {
      params.push_back(Text(JsonArray(*filter.parent_ids)));
      where += " AND parent_id IN (SELECT jsonb_array_elements_text($" + std::to_string(params.size()) + "::jsonb))";
    }
    SIGIL_ASSIGN_OR_RETURN(auto entries, LoadEntries(*connection, where, params));
    std::erase_if(entries, [&](const RegistrationEntry& e) { return !EntryMatchesFilter(e, filter); });
    return entries;
  }

  Result<RegistrationEntry> UpdateEntry(RegistrationEntry entry) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    Transaction tx(*connection);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(int64_t revision, NextRevision(*connection));
    SIGIL_RETURN_IF_ERROR(ReplaceEntry(*connection, entry, revision));
    SIGIL_RETURN_IF_ERROR(tx.Commit());
    return entry;
  }

  Result<std::vector<Result<RegistrationEntry>>> BatchCreateEntries(std::vector<RegistrationEntry> entries) override {
    return WriteEach(__func__, std::move(entries), [](Connection& c, RegistrationEntry& entry, int64_t revision) {
      return InsertEntry(c, entry, revision);
    });
  }

  Result<std::vector<Result<RegistrationEntry>>> BatchUpdateEntries(std::vector<RegistrationEntry> entries) override {
    return WriteEach(__func__, std::move(entries), [](Connection& c, RegistrationEntry& entry, int64_t revision) {
      return ReplaceEntry(c, entry, revision);
    });
  }

  Status DeleteEntry(const std::string& id) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    Transaction tx(*connection);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(int64_t revision, NextRevision(*connection));
    SIGIL_ASSIGN_OR_RETURN(Rows deleted, connection->Run("DELETE FROM entries WHERE id = $1 RETURNING parent_id",
                                                         {Text(id)}, "deleting entry"));
    if (deleted.size() == 0) return NotFoundError("no entry with id " + id);
    SIGIL_RETURN_IF_ERROR(Tombstone(*connection, id, deleted.Text(0, 0), revision));
    return tx.Commit();
  }

  Result<int64_t> CountEntries() override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    return OneInt(*connection, "SELECT count(*) FROM entries", "counting entries");
  }

  Result<int64_t> CurrentRevision() override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    return OneInt(*connection, "SELECT value FROM revision WHERE id = 1", "reading the revision");
  }

  Result<EntryChanges> EntriesChangedSince(int64_t since_revision,
                                           const std::vector<std::string>& parent_ids) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    // One snapshot, so the revision matches the rows read with it.
    Transaction tx(*connection);
    SIGIL_RETURN_IF_ERROR(tx.Begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    EntryChanges changes;
    SIGIL_ASSIGN_OR_RETURN(changes.revision,
                           OneInt(*connection, "SELECT value FROM revision WHERE id = 1", "reading the revision"));
    std::string where = "WHERE revision > $1";
    std::vector<Param> params = {Int(since_revision)};
    if (!parent_ids.empty()) {
      where += " AND parent_id IN (SELECT jsonb_array_elements_text($2::jsonb))";
      params.push_back(Text(JsonArray(parent_ids)));
    }
    SIGIL_ASSIGN_OR_RETURN(changes.changed, LoadEntries(*connection, where, params, true));
    SIGIL_ASSIGN_OR_RETURN(Rows removed, connection->Run("SELECT entry_id FROM entry_tombstones " + where, params,
                                                         "reading removed entries"));
    // An entry that moved between two of the parents left a tombstone under the first, but it
    // is still there under the second.
    std::unordered_set<std::string> present;
    for (const auto& entry : changes.changed) present.insert(entry.id);
    for (int r = 0; r < removed.size(); ++r) {
      std::string id = removed.Text(r, 0);
      if (!present.contains(id)) changes.removed_ids.push_back(std::move(id));
    }
    SIGIL_RETURN_IF_ERROR(tx.Commit());
    return changes;
  }

  // ---- agents ----

  Status CreateAgent(const AttestedAgent& agent) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    Transaction tx(*connection);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_RETURN_IF_ERROR(InsertAgent(*connection, agent, false));
    return tx.Commit();
  }

  Status RecordAttestedAgent(const AttestedAgent& agent, const std::string& join_token, int64_t now) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    Transaction tx(*connection);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    if (!join_token.empty()) SIGIL_RETURN_IF_ERROR(SpendJoinToken(*connection, join_token, now));
    SIGIL_RETURN_IF_ERROR(InsertAgent(*connection, agent, true));
    return tx.Commit();
  }

  Result<AttestedAgent> FetchAgent(const std::string& spiffe_id) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows rows, connection->Run(std::string(kAgentColumns) + "WHERE spiffe_id = $1",
                                                      {Text(spiffe_id)}, "reading agents"));
    std::vector<AttestedAgent> agents = ReadAgents(rows);
    if (agents.empty()) return NotFoundError("no attested agent " + spiffe_id);
    return agents.front();
  }

  Result<std::vector<AttestedAgent>> ListAgents() override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows rows, connection->Run(std::string(kAgentColumns) + "ORDER BY spiffe_id", {},
                                                      "reading agents"));
    return ReadAgents(rows);
  }

  Result<int64_t> CountAgents() override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    return OneInt(*connection, "SELECT count(*) FROM agents", "counting agents");
  }

  Status UpdateAgentSvid(const std::string& spiffe_id, const std::string& serial, int64_t expires_at,
                         const std::string& previous_serial, int64_t previous_valid_until) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    return ChangeAgent(*connection,
                       "UPDATE agents SET serial = $2, expires_at = $3, updated_at = $4, previous_serial = $5, "
                       "previous_serial_valid_until = $6 WHERE spiffe_id = $1",
                       {Text(spiffe_id), Text(serial), Int(expires_at), Int(NowUnixSeconds()), Text(previous_serial),
                        Int(previous_valid_until)},
                       spiffe_id);
  }

  Status SetAgentBanned(const std::string& spiffe_id, bool banned) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    return ChangeAgent(*connection, "UPDATE agents SET banned = $2, updated_at = $3 WHERE spiffe_id = $1",
                       {Text(spiffe_id), Bool(banned), Int(NowUnixSeconds())}, spiffe_id);
  }

  Status DeleteAgent(const std::string& spiffe_id) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    return ChangeAgent(*connection, "DELETE FROM agents WHERE spiffe_id = $1", {Text(spiffe_id)}, spiffe_id);
  }

  // ---- join tokens ----

  Status CreateJoinToken(const std::string& token, const JoinToken& details) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    Failure failure;
    if (!connection->Try("INSERT INTO join_tokens (token_hash, spiffe_id, expires_at) VALUES ($1, $2, $3)",
                         {Text(JoinTokenHash(token)), Text(details.spiffe_id), Int(details.expires_at)},
                         "recording join token", &failure)) {
      if (failure.state == kUniqueViolation) return AlreadyExistsError("join token already exists");
      return failure.status;
    }
    return Status::Ok();
  }

  Result<JoinToken> FetchJoinToken(const std::string& token) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows rows, connection->Run("SELECT spiffe_id, expires_at FROM join_tokens WHERE token_hash = $1",
                                                      {Text(JoinTokenHash(token))}, "reading join token"));
    if (rows.size() == 0) return NotFoundError("join token is unknown or was already used");
    return JoinToken{rows.Text(0, 0), rows.Int(0, 1)};
  }

  Result<int64_t> PruneJoinTokens(int64_t now) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows pruned, connection->Run("DELETE FROM join_tokens WHERE expires_at <= $1", {Int(now)},
                                                        "pruning join tokens"));
    return pruned.changed();
  }

  // ---- bundles ----

  Status SetBundle(const StoredBundle& bundle) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    Transaction tx(*connection);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(Rows held, connection->Run("SELECT data FROM bundles WHERE trust_domain = $1 FOR UPDATE",
                                                      {Text(bundle.trust_domain)}, "reading bundles"));
    const bool changed = held.size() == 0 || held.Text(0, 0) != bundle.data;
    const int64_t now = NowUnixSeconds();
    SIGIL_RETURN_IF_ERROR(connection
                              ->Run("INSERT INTO bundles (trust_domain, data, federated, updated_at) VALUES ($1, $2, $3, $4) "
                                    "ON CONFLICT (trust_domain) DO UPDATE SET data = $2, federated = $3, updated_at = $4",
                                    {Text(bundle.trust_domain), Text(bundle.data), Bool(bundle.federated), Int(now)},
                                    "storing bundle")
                              .status());
    if (bundle.federated && changed) {
      SIGIL_RETURN_IF_ERROR(connection
                                ->Run("INSERT INTO bundle_history (trust_domain, data, stored_at) VALUES ($1, $2, $3)",
                                      {Text(bundle.trust_domain), Text(bundle.data), Int(now)},
                                      "keeping the bundle's history")
                                .status());
      SIGIL_RETURN_IF_ERROR(connection
                                ->Run("DELETE FROM bundle_history WHERE trust_domain = $1 AND id NOT IN "
                                      "(SELECT id FROM bundle_history WHERE trust_domain = $1 ORDER BY id DESC LIMIT $2)",
                                      {Text(bundle.trust_domain), Int(kBundleHistoryDepth)},
                                      "trimming the bundle's history")
                                .status());
    }
    return tx.Commit();
  }

  Result<StoredBundle> FetchBundle(const std::string& trust_domain) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows rows, connection->Run("SELECT trust_domain, data, federated, updated_at FROM bundles "
                                                      "WHERE trust_domain = $1",
                                                      {Text(trust_domain)}, "reading bundles"));
    std::vector<StoredBundle> bundles = ReadBundles(rows);
    if (bundles.empty()) return NotFoundError("no bundle for trust domain " + trust_domain);
    return bundles.front();
  }

  Result<std::vector<StoredBundle>> ListBundles() override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows rows, connection->Run("SELECT trust_domain, data, federated, updated_at FROM bundles "
                                                      "ORDER BY trust_domain",
                                                      {}, "reading bundles"));
    return ReadBundles(rows);
  }

  Status DeleteBundle(const std::string& trust_domain) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows deleted, connection->Run("DELETE FROM bundles WHERE trust_domain = $1",
                                                         {Text(trust_domain)}, "deleting bundle"));
    if (deleted.changed() == 0) return NotFoundError("no bundle for trust domain " + trust_domain);
    return Status::Ok();
  }

  Result<std::vector<BundleVersion>> ListBundleHistory(const std::string& trust_domain) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows rows, connection->Run("SELECT trust_domain, data, stored_at FROM bundle_history "
                                                      "WHERE trust_domain = $1 ORDER BY id DESC",
                                                      {Text(trust_domain)}, "reading the bundle history"));
    std::vector<BundleVersion> versions;
    for (int r = 0; r < rows.size(); ++r) versions.push_back({rows.Text(r, 0), rows.Text(r, 1), rows.Int(r, 2)});
    return versions;
  }

  // ---- federation relationships ----

  Status CreateFederationRelationship(const StoredFederationRelationship& relationship) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows inserted, connection->Run("INSERT INTO federation_relationships (trust_domain, "
                                                          "bundle_endpoint_url, bundle_endpoint_profile, "
                                                          "endpoint_spiffe_id) VALUES ($1, $2, $3, $4) "
                                                          "ON CONFLICT (trust_domain) DO NOTHING",
                                                          RelationshipParams(relationship),
                                                          "storing federation relationship"));
    if (inserted.changed() == 0) {
      return AlreadyExistsError("a federation relationship with " + relationship.trust_domain + " already exists");
    }
    return Status::Ok();
  }

  Status UpdateFederationRelationship(const StoredFederationRelationship& relationship) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows updated, connection->Run("UPDATE federation_relationships SET bundle_endpoint_url = $2, "
                                                         "bundle_endpoint_profile = $3, endpoint_spiffe_id = $4 "
                                                         "WHERE trust_domain = $1",
                                                         RelationshipParams(relationship),
                                                         "updating federation relationship"));
    if (updated.changed() == 0) return NotFoundError("no federation relationship with " + relationship.trust_domain);
    return Status::Ok();
  }

  Result<std::vector<StoredFederationRelationship>> ListFederationRelationships() override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows rows, connection->Run("SELECT trust_domain, bundle_endpoint_url, bundle_endpoint_profile, "
                                                      "endpoint_spiffe_id FROM federation_relationships "
                                                      "ORDER BY trust_domain",
                                                      {}, "reading federation relationships"));
    std::vector<StoredFederationRelationship> relationships;
    for (int r = 0; r < rows.size(); ++r) {
      relationships.push_back({rows.Text(r, 0), rows.Text(r, 1), rows.Text(r, 2), rows.Text(r, 3)});
    }
    return relationships;
  }

  Status DeleteFederationRelationship(const std::string& trust_domain) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows deleted, connection->Run("DELETE FROM federation_relationships WHERE trust_domain = $1",
                                                         {Text(trust_domain)}, "deleting federation relationship"));
    if (deleted.changed() == 0) return NotFoundError("no federation relationship with " + trust_domain);
    return Status::Ok();
  }

  // ---- CA journal ----

  Result<CaSlot> AddCaSlot(CaSlot slot) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows rows, connection->Run("INSERT INTO ca_journal (key_label, certificate, not_before, "
                                                      "not_after, state, replica, jwt_public_key) "
                                                      "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                                                      {Text(slot.key_label), Bytes(slot.certificate_der),
                                                       Int(slot.not_before), Int(slot.not_after),
                                                       Text(std::string(CaSlotStateName(slot.state))),
                                                       Text(slot.replica), Bytes(slot.jwt_public_key_der)},
                                                      "recording CA"));
    slot.id = rows.Int(0, 0);
    return slot;
  }

  Result<std::vector<CaSlot>> ListCaSlots() override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows rows, connection->Run("SELECT id, key_label, certificate, not_before, not_after, state, "
                                                      "x509_tainted, x509_revoked, jwt_tainted, jwt_revoked, "
                                                      "replica, jwt_public_key FROM ca_journal ORDER BY id",
                                                      {}, "reading the CA journal"));
    std::vector<CaSlot> slots;
    for (int r = 0; r < rows.size(); ++r) {
      CaSlot slot{rows.Int(r, 0), rows.Text(r, 1), rows.Bytes(r, 2), rows.Int(r, 3), rows.Int(r, 4), CaSlotState::kPrepared};
      const std::string state = rows.Text(r, 5);
      slot.state = state == "active" ? CaSlotState::kActive : state == "retired" ? CaSlotState::kRetired : CaSlotState::kPrepared;
      slot.x509_tainted = rows.Bool(r, 6);
      slot.x509_revoked = rows.Bool(r, 7);
      slot.jwt_tainted = rows.Bool(r, 8);
      slot.jwt_revoked = rows.Bool(r, 9);
      slot.replica = rows.Text(r, 10);
      slot.jwt_public_key_der = rows.Bytes(r, 11);
      slots.push_back(std::move(slot));
    }
    return slots;
  }

  Status SetCaSlotState(int64_t id, CaSlotState state) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    SIGIL_ASSIGN_OR_RETURN(Rows updated, connection->Run("UPDATE ca_journal SET state = $2 WHERE id = $1",
                                                         {Int(id), Text(std::string(CaSlotStateName(state)))},
                                                         "updating the CA journal"));
    if (updated.changed() == 0) return NotFoundError("no CA journal slot " + std::to_string(id));
    return Status::Ok();
  }

  Status MarkCaSlot(int64_t id, CaSlotMark mark) override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    // Column names from a closed set, never from a caller's string.
    const char* sql = mark == CaSlotMark::kX509Tainted   ? "UPDATE ca_journal SET x509_tainted = true WHERE id = $1"
                      : mark == CaSlotMark::kX509Revoked ? "UPDATE ca_journal SET x509_revoked = true WHERE id = $1"
                      : mark == CaSlotMark::kJwtTainted  ? "UPDATE ca_journal SET jwt_tainted = true WHERE id = $1"
                                                         : "UPDATE ca_journal SET jwt_revoked = true WHERE id = $1";
    SIGIL_ASSIGN_OR_RETURN(Rows updated, connection->Run(sql, {Int(id)}, "marking a CA journal slot"));
    if (updated.changed() == 0) return NotFoundError("no CA journal slot " + std::to_string(id));
    return Status::Ok();
  }

  Status Ping() override {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(__func__));
    return OneInt(*connection, "SELECT value FROM revision WHERE id = 1", "reading the revision").status();
  }

 private:
  // Every entry point takes its connection through here: a call is a network round trip, so
  // none may run on an event loop.
  Result<Pool::Lease> LeaseOffLoop(const char* method) {
    AssertNotOnEventLoop(method);
    return pool_.Acquire();
  }

  // Inside a transaction: the revision row stays locked until it ends, so entry writes commit in
  // revision order.
  static Result<int64_t> NextRevision(Connection& connection) {
    return OneInt(connection, "UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value",
                  "advancing the revision");
  }

  // One transaction and one revision for the batch, each entry inside its own savepoint: an
  // entry that fails is undone alone and the rest go on.
  template <typename Write>
  Result<std::vector<Result<RegistrationEntry>>> WriteEach(const char* method, std::vector<RegistrationEntry> entries,
                                                           Write write) {
    SIGIL_ASSIGN_OR_RETURN(auto connection, LeaseOffLoop(method));
    Transaction tx(*connection);
    SIGIL_RETURN_IF_ERROR(tx.Begin());
    SIGIL_ASSIGN_OR_RETURN(int64_t revision, NextRevision(*connection));
    std::vector<Result<RegistrationEntry>> results;
    results.reserve(entries.size());
    bool any_written = false;
    for (auto& entry : entries) {
      SIGIL_RETURN_IF_ERROR(connection->Exec("SAVEPOINT batch_item", "starting a batch item"));
      Status written = write(*connection, entry, revision);
      if (written.ok()) {
        SIGIL_RETURN_IF_ERROR(connection->Exec("RELEASE SAVEPOINT batch_item", "finishing a batch item"));
        results.emplace_back(std::move(entry));
        any_written = true;
      } else {
        if (written.code() == Code::kUnavailable) return written;
        SIGIL_RETURN_IF_ERROR(connection->Exec("ROLLBACK TO SAVEPOINT batch_item", "undoing a batch item"));
        SIGIL_RETURN_IF_ERROR(connection->Exec("RELEASE SAVEPOINT batch_item", "undoing a batch item"));
        results.emplace_back(std::move(written));
      }
    }
    // Nothing written: the transaction rolls back with the revision it took.
    if (any_written) SIGIL_RETURN_IF_ERROR(tx.Commit());
    return results;
  }

  // Replaces every field of the stored entry with `entry`'s but created_at; inside a transaction.
  static Status ReplaceEntry(Connection& connection, RegistrationEntry& entry, int64_t revision) {
    SIGIL_ASSIGN_OR_RETURN(Rows existing, connection.Run("DELETE FROM entries WHERE id = $1 RETURNING created_at, parent_id",
                                                         {Text(entry.id)}, "replacing entry"));
    if (existing.size() == 0) return NotFoundError("no entry with id " + entry.id);
    entry.created_at = existing.Int(0, 0);
    SIGIL_RETURN_IF_ERROR(InsertEntry(connection, entry, revision));
    if (existing.Text(0, 1) != entry.parent_id) {
      // Agents holding the old parent learn of the move as a removal.
      SIGIL_RETURN_IF_ERROR(Tombstone(connection, entry.id, existing.Text(0, 1), revision));
    }
    return Status::Ok();
  }

  static Status Tombstone(Connection& connection, const std::string& id, const std::string& parent_id, int64_t revision) {
    return connection
        .Run("INSERT INTO entry_tombstones (entry_id, parent_id, revision) VALUES ($1, $2, $3) "
             "ON CONFLICT (entry_id) DO UPDATE SET parent_id = $2, revision = $3",
             {Text(id), Text(parent_id), Int(revision)}, "recording removal")
        .status();
  }

  static Status InsertEntry(Connection& connection, RegistrationEntry& entry, int64_t revision) {
    if (entry.id.empty()) entry.id = NewEntryId();
    if (entry.created_at == 0) entry.created_at = NowUnixSeconds();
    entry.revision = revision;
    entry.selectors = SelectorSet(entry.selectors).items();
    Failure failure;
    if (!connection.Try("INSERT INTO entries (id, spiffe_id, parent_id, selector_key, x509_svid_ttl, jwt_svid_ttl, admin, "
                        "downstream, expires_at, hint, revision, created_at) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                        {Text(entry.id), Text(entry.spiffe_id), Text(entry.parent_id),
                         Text(EntrySelectorKey(entry.selectors)), Int(entry.x509_svid_ttl.count()),
                         Int(entry.jwt_svid_ttl.count()), Bool(entry.admin), Bool(entry.downstream),
                         Int(entry.expires_at), Text(entry.hint), Int(revision), Int(entry.created_at)},
                        "storing entry", &failure)) {
      if (failure.state == kUniqueViolation && failure.constraint == "entries_identity") {
        return AlreadyExistsError("an entry with spiffe_id " + entry.spiffe_id + ", parent_id " + entry.parent_id +
                                  " and the same selectors already exists");
      }
      if (failure.state == kUniqueViolation) return AlreadyExistsError("an entry with id " + entry.id + " already exists");
      return failure.status;
    }
    // The lists in one statement each, from JSON arrays: a round trip per selector would cost
    // more than the rest of the write.
    json selectors = json::array();
    for (const Selector& s : entry.selectors) selectors.push_back({s.type, s.value});
    SIGIL_RETURN_IF_ERROR(connection
                              .Run("INSERT INTO entry_selectors (entry_id, type, value) "
                                   "SELECT $1, s->>0, s->>1 FROM jsonb_array_elements($2::jsonb) s",
                                   {Text(entry.id), Text(selectors.dump())}, "storing selectors")
                              .status());
    if (!entry.dns_names.empty()) {
      SIGIL_RETURN_IF_ERROR(connection
                                .Run("INSERT INTO entry_dns_names (entry_id, position, name) "
                                     "SELECT $1, n.position - 1, n.name FROM jsonb_array_elements_text($2::jsonb) "
                                     "WITH ORDINALITY AS n(name, position)",
                                     {Text(entry.id), Text(JsonArray(entry.dns_names))}, "storing DNS names")
                                .status());
    }
    if (!entry.federates_with.empty()) {
      SIGIL_RETURN_IF_ERROR(connection
                                .Run("INSERT INTO entry_federates_with (entry_id, position, trust_domain) "
                                     "SELECT $1, f.position - 1, f.name FROM jsonb_array_elements_text($2::jsonb) "
                                     "WITH ORDINALITY AS f(name, position)",
                                     {Text(entry.id), Text(JsonArray(entry.federates_with))}, "storing federations")
                                .status());
    }
    // A re-created id is no longer removed.
    return connection.Run("DELETE FROM entry_tombstones WHERE entry_id = $1", {Text(entry.id)}, "clearing removal").status();
  }

  // Entries matching `where` (over `params`), ordered by id (or by revision when `by_revision`).
  static Result<std::vector<RegistrationEntry>> LoadEntries(Connection& connection, const std::string& where,
                                                            const std::vector<Param>& params, bool by_revision = false) {
    SIGIL_ASSIGN_OR_RETURN(Rows rows, connection.Run(std::string(kEntryColumns) + where +
                                                         (by_revision ? " ORDER BY revision, id" : " ORDER BY id"),
                                                     params, "reading entries"));
    return ReadEntries(rows);
  }

  // Inside a transaction. `replace`: a host attesting again replaces its earlier record (two
  // replicas recording it at once end with one); else a record of the same ID is AlreadyExists.
  static Status InsertAgent(Connection& connection, const AttestedAgent& agent, bool replace) {
    const int64_t now = NowUnixSeconds();
    const std::string insert =
        "INSERT INTO agents (spiffe_id, attestation_type, serial, expires_at, banned, created_at, updated_at, "
        "previous_serial, previous_serial_valid_until) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)" +
        std::string(replace ? " ON CONFLICT (spiffe_id) DO UPDATE SET attestation_type = $2, serial = $3, "
                              "expires_at = $4, banned = $5, created_at = $6, updated_at = $6, previous_serial = $7, "
                              "previous_serial_valid_until = $8"
                            : "");
    Failure failure;
    if (!connection.Try(insert.c_str(),
                        {Text(agent.spiffe_id), Text(agent.attestation_type), Text(agent.serial), Int(agent.expires_at),
                         Bool(agent.banned), Int(now), Text(agent.previous_serial), Int(agent.previous_serial_valid_until)},
                        "recording agent", &failure)) {
      if (failure.state == kUniqueViolation) return AlreadyExistsError("agent " + agent.spiffe_id + " is already attested");
      return failure.status;
    }
    if (replace) {
      SIGIL_RETURN_IF_ERROR(connection.Run("DELETE FROM agent_selectors WHERE spiffe_id = $1", {Text(agent.spiffe_id)},
                                           "replacing the agent's earlier record")
                                .status());
    }
    json selectors = json::array();
    for (const Selector& s : agent.selectors) selectors.push_back({s.type, s.value});
    return connection
        .Run("INSERT INTO agent_selectors (spiffe_id, type, value) "
             "SELECT $1, s->>0, s->>1 FROM jsonb_array_elements($2::jsonb) s ON CONFLICT DO NOTHING",
             {Text(agent.spiffe_id), Text(selectors.dump())}, "recording agent selectors")
        .status();
  }

  // Inside a transaction: deletes the token, or says why it cannot be spent (and the caller's
  // rollback keeps it). The DELETE takes the row: a replica spending the same token at once
  // waits for this transaction and then finds nothing.
  static Status SpendJoinToken(Connection& connection, const std::string& token, int64_t now) {
    SIGIL_ASSIGN_OR_RETURN(Rows spent, connection.Run("DELETE FROM join_tokens WHERE token_hash = $1 RETURNING expires_at",
                                                      {Text(JoinTokenHash(token))}, "using join token"));
    if (spent.size() == 0) return NotFoundError("join token is unknown or was already used");
    const int64_t expires_at = spent.Int(0, 0);
    if (expires_at <= now) return PermissionDeniedError("join token expired " + std::to_string(now - expires_at) + "s ago");
    return Status::Ok();
  }

  static Status ChangeAgent(Connection& connection, const char* sql, const std::vector<Param>& params,
                            const std::string& spiffe_id) {
    SIGIL_ASSIGN_OR_RETURN(Rows changed, connection.Run(sql, params, "updating agent"));
    if (changed.changed() == 0) return NotFoundError("no attested agent " + spiffe_id);
    return Status::Ok();
  }

  static std::vector<Param> RelationshipParams(const StoredFederationRelationship& relationship) {
    return {Text(relationship.trust_domain), Text(relationship.bundle_endpoint_url),
            Text(relationship.bundle_endpoint_profile), Text(relationship.endpoint_spiffe_id)};
  }

  Pool pool_;
  std::unique_ptr<ChangeListener> listener_;  // stops before the pool goes
};

}  // namespace

Result<std::unique_ptr<Datastore>> OpenPostgresDatastore(const PostgresOptions& options) {
  SIGIL_RETURN_IF_ERROR(CheckPostgresConnectionString(options.connection_string).AddContext("datastore connection_string"));
  auto store = std::make_unique<PostgresDatastore>(options);
  Status migrated = store->Migrate();
  if (!migrated.ok()) return std::move(migrated).AddContext("opening the PostgreSQL datastore");
  store->StartListening();
  return std::unique_ptr<Datastore>(std::move(store));
}

}  // namespace sigil::serverd
