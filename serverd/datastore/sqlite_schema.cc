#include <iterator>
#include <string>

#include "serverd/datastore/sqlite_connection.h"
#include "serverd/datastore/sqlite_datastore.h"

namespace sigil::serverd::sqlite {
namespace {

constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TABLE entries (
  id TEXT PRIMARY KEY,
  spiffe_id TEXT NOT NULL,
  parent_id TEXT NOT NULL,
  selector_key TEXT NOT NULL,
  x509_svid_ttl INTEGER NOT NULL,
  jwt_svid_ttl INTEGER NOT NULL,
  admin INTEGER NOT NULL,
  downstream INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  hint TEXT NOT NULL,
  revision INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (spiffe_id, parent_id, selector_key)
);
CREATE INDEX entries_by_parent ON entries (parent_id);
CREATE INDEX entries_by_spiffe_id ON entries (spiffe_id);
CREATE INDEX entries_by_revision ON entries (revision);
CREATE TABLE entry_selectors (
  entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
  type TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (entry_id, type, value)
);
CREATE INDEX entry_selectors_by_selector ON entry_selectors (type, value);
CREATE TABLE entry_dns_names (
  entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  name TEXT NOT NULL,
  PRIMARY KEY (entry_id, position)
);
CREATE TABLE entry_federates_with (
  entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  trust_domain TEXT NOT NULL,
  PRIMARY KEY (entry_id, position)
);
CREATE TABLE entry_tombstones (
  entry_id TEXT PRIMARY KEY,
  parent_id TEXT NOT NULL,
  revision INTEGER NOT NULL
);
CREATE INDEX entry_tombstones_by_revision ON entry_tombstones (revision);

CREATE TABLE agents (
  spiffe_id TEXT PRIMARY KEY,
  attestation_type TEXT NOT NULL,
  serial TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  banned INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE agent_selectors (
  spiffe_id TEXT NOT NULL REFERENCES agents (spiffe_id) ON DELETE CASCADE,
  type TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (spiffe_id, type, value)
);

CREATE TABLE join_tokens (
  token_hash TEXT PRIMARY KEY,
  spiffe_id TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);

CREATE TABLE bundles (
  trust_domain TEXT PRIMARY KEY,
  data TEXT NOT NULL,
  federated INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE ca_journal (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key_label TEXT NOT NULL,
  certificate BLOB NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('prepared', 'active', 'retired'))
);
)sql";

// Version 2: an agent's previous SVID, accepted for a short overlap after a renewal.
constexpr const char* kSchemaV2 = R"sql(
ALTER TABLE agents ADD COLUMN previous_serial TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN previous_serial_valid_until INTEGER NOT NULL DEFAULT 0;
)sql";

// Version 3: federation relationships made with `serverd federation create`, and the bundle
// history of federated trust domains.
constexpr const char* kSchemaV3 = R"sql(
CREATE TABLE federation_relationships (
  trust_domain TEXT PRIMARY KEY,
  bundle_endpoint_url TEXT NOT NULL,
  bundle_endpoint_profile TEXT NOT NULL CHECK (bundle_endpoint_profile IN ('https_spiffe', 'https_web')),
  endpoint_spiffe_id TEXT NOT NULL
);

CREATE TABLE bundle_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  trust_domain TEXT NOT NULL,
  data TEXT NOT NULL,
  stored_at INTEGER NOT NULL
);
CREATE INDEX bundle_history_by_trust_domain ON bundle_history (trust_domain, id);
)sql";

// Version 4: an operator's taint and revocation of each CA slot's two authorities.
constexpr const char* kSchemaV4 = R"sql(
ALTER TABLE ca_journal ADD COLUMN x509_tainted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ca_journal ADD COLUMN x509_revoked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ca_journal ADD COLUMN jwt_tainted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ca_journal ADD COLUMN jwt_revoked INTEGER NOT NULL DEFAULT 0;
)sql";

// Version 5: the replica each CA slot belongs to, and its JWT key's public half, as in
// PostgreSQL's version 2 (one SQLite file has one serverd, whose replica name is empty).
constexpr const char* kSchemaV5 = R"sql(
ALTER TABLE ca_journal ADD COLUMN replica TEXT NOT NULL DEFAULT '';
ALTER TABLE ca_journal ADD COLUMN jwt_public_key BLOB NOT NULL DEFAULT x'';
)sql";

// Each version's script, in order: a file at version V runs the scripts of the versions after V.
struct SchemaStep {
  int version;
  const char* script;
};
constexpr SchemaStep kSchemaSteps[] = {{1, kSchemaV1}, {2, kSchemaV2}, {3, kSchemaV3}, {4, kSchemaV4}, {5, kSchemaV5}};
static_assert(std::size(kSchemaSteps) == static_cast<size_t>(kSqliteSchemaVersion), "a schema version without its script");

}  // namespace

Status MigrateSchema(sqlite3* db, StatementCache& statements) {
  SIGIL_RETURN_IF_ERROR(Exec(db, "PRAGMA journal_mode=WAL", "enabling WAL"));
  SIGIL_RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", "setting pragmas"));
  Transaction tx(db);
  SIGIL_RETURN_IF_ERROR(tx.Begin());
  int64_t version = 0;
  {
    Statement exists(statements, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_version'");
    if (exists.Next() && exists.Int(0) == 1) {
      Statement read(statements, "SELECT version FROM schema_version");
      if (read.Next()) version = read.Int(0);
      SIGIL_RETURN_IF_ERROR(read.status("reading the schema version"));
    }
    SIGIL_RETURN_IF_ERROR(exists.status("reading the schema"));
  }
  if (version > kSqliteSchemaVersion) {
    return Status(Code::kFailedPrecondition,
                  "datastore schema version " + std::to_string(version) +
                      " is newer than this serverd understands (" +
                      std::to_string(kSqliteSchemaVersion) + "); refusing to touch it");
  }
  for (const SchemaStep& step : kSchemaSteps) {
    if (step.version <= version) continue;
    const std::string to = std::to_string(step.version);
    SIGIL_RETURN_IF_ERROR(Exec(db, step.script,
                               step.version == 1 ? "creating the datastore schema"
                                                 : "migrating the datastore schema to version " + to));
    // Version 1's script creates the table empty.
    const std::string record = step.version == 1 ? "INSERT INTO schema_version (version) VALUES (1)"
                                                 : "UPDATE schema_version SET version = " + to;
    SIGIL_RETURN_IF_ERROR(Exec(db, record.c_str(), "recording the schema version"));
  }
  return tx.Commit();
}

}  // namespace sigil::serverd::sqlite
