#include <iterator>
#include <string>

#include "serverd/datastore/postgres_connection.h"
#include "serverd/datastore/postgres_datastore.h"

namespace sigil::serverd::pg {
namespace {

// The whole schema of version 1: SQLite's version 4 in PostgreSQL's types. The revision row is
// the one lock every entry write takes (UPDATE … RETURNING), so revisions commit in the order
// they are handed out and a reader that sees revision R sees every change up to R.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TABLE entries (
  id TEXT PRIMARY KEY,
  spiffe_id TEXT NOT NULL,
  parent_id TEXT NOT NULL,
  selector_key TEXT NOT NULL,
  x509_svid_ttl BIGINT NOT NULL,
  jwt_svid_ttl BIGINT NOT NULL,
  admin BOOLEAN NOT NULL,
  downstream BOOLEAN NOT NULL,
  expires_at BIGINT NOT NULL,
  hint TEXT NOT NULL,
  revision BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  CONSTRAINT entries_identity UNIQUE (spiffe_id, parent_id, selector_key)
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
  revision BIGINT NOT NULL
);
CREATE INDEX entry_tombstones_by_revision ON entry_tombstones (revision);

CREATE TABLE agents (
  spiffe_id TEXT PRIMARY KEY,
  attestation_type TEXT NOT NULL,
  serial TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  banned BOOLEAN NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  previous_serial TEXT NOT NULL DEFAULT '',
  previous_serial_valid_until BIGINT NOT NULL DEFAULT 0
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
  expires_at BIGINT NOT NULL
);

CREATE TABLE bundles (
  trust_domain TEXT PRIMARY KEY,
  data TEXT NOT NULL,
  federated BOOLEAN NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE bundle_history (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  trust_domain TEXT NOT NULL,
  data TEXT NOT NULL,
  stored_at BIGINT NOT NULL
);
CREATE INDEX bundle_history_by_trust_domain ON bundle_history (trust_domain, id);

CREATE TABLE federation_relationships (
  trust_domain TEXT PRIMARY KEY,
  bundle_endpoint_url TEXT NOT NULL,
  bundle_endpoint_profile TEXT NOT NULL CHECK (bundle_endpoint_profile IN ('https_spiffe', 'https_web')),
  endpoint_spiffe_id TEXT NOT NULL
);

CREATE TABLE ca_journal (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  key_label TEXT NOT NULL,
  certificate BYTEA NOT NULL,
  not_before BIGINT NOT NULL,
  not_after BIGINT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('prepared', 'active', 'retired')),
  x509_tainted BOOLEAN NOT NULL DEFAULT false,
  x509_revoked BOOLEAN NOT NULL DEFAULT false,
  jwt_tainted BOOLEAN NOT NULL DEFAULT false,
  jwt_revoked BOOLEAN NOT NULL DEFAULT false
);
)sql";

// Version 2: every commit that writes entries (through the revision row), bundles, federation
// relationships or the CA journal notifies channel sigil_changes (postgres_change_listener.h);
// the CA journal names the replica whose key store holds each slot's keys, and keeps the JWT
// key's public half so that the other replicas can publish it.
constexpr const char* kSchemaV2 = R"sql(
CREATE FUNCTION sigil_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('sigil_changes', TG_ARGV[0]);
  RETURN NULL;
END
$$;
CREATE TRIGGER revision_notify AFTER UPDATE ON revision
  FOR EACH STATEMENT EXECUTE FUNCTION sigil_notify_change('entries');
CREATE TRIGGER bundles_notify AFTER INSERT OR UPDATE OR DELETE ON bundles
  FOR EACH STATEMENT EXECUTE FUNCTION sigil_notify_change('bundles');
CREATE TRIGGER federation_relationships_notify AFTER INSERT OR UPDATE OR DELETE ON federation_relationships
  FOR EACH STATEMENT EXECUTE FUNCTION sigil_notify_change('bundles');
CREATE TRIGGER ca_journal_notify AFTER INSERT OR UPDATE OR DELETE ON ca_journal
  FOR EACH STATEMENT EXECUTE FUNCTION sigil_notify_change('ca_journal');
ALTER TABLE ca_journal ADD COLUMN replica TEXT NOT NULL DEFAULT '';
ALTER TABLE ca_journal ADD COLUMN jwt_public_key BYTEA NOT NULL DEFAULT ''::bytea;
)sql";

// Any constant: the key of the advisory lock that makes replicas starting together migrate one
// after the other.
constexpr int64_t kMigrationLock = 0x5161'6c00'0001;

// Each version's script, in order: a database at version V runs the scripts of the versions after V.
struct SchemaStep {
  int version;
  const char* script;
};
constexpr SchemaStep kSchemaSteps[] = {{1, kSchemaV1}, {2, kSchemaV2}};
static_assert(std::size(kSchemaSteps) == static_cast<size_t>(kPostgresSchemaVersion), "a schema version without its script");

}  // namespace

Status MigrateSchema(Connection& connection) {
  Transaction tx(connection);
  SIGIL_RETURN_IF_ERROR(tx.Begin());
  SIGIL_RETURN_IF_ERROR(connection.Run("SELECT pg_advisory_xact_lock($1)", {Int(kMigrationLock)},
                                       "waiting for another serverd's migration").status());
  SIGIL_ASSIGN_OR_RETURN(Rows exists, connection.Run("SELECT to_regclass('schema_version') IS NOT NULL", {},
                                                     "reading the schema"));
  int64_t version = 0;
  if (exists.Bool(0, 0)) {
    SIGIL_ASSIGN_OR_RETURN(version, OneInt(connection, "SELECT version FROM schema_version", "reading the schema version"));
  }
  if (version > kPostgresSchemaVersion) {
    return Status(Code::kFailedPrecondition,
                  "datastore schema version " + std::to_string(version) + " is newer than this serverd understands (" +
                      std::to_string(kPostgresSchemaVersion) + "); refusing to touch it");
  }
  for (const SchemaStep& step : kSchemaSteps) {
    if (step.version <= version) continue;
    const std::string to = std::to_string(step.version);
    SIGIL_RETURN_IF_ERROR(connection.Script(step.script, step.version == 1
                                                             ? "creating the datastore schema"
                                                             : "migrating the datastore schema to version " + to));
    // Version 1's script creates the table empty.
    const std::string record = step.version == 1 ? "INSERT INTO schema_version (version) VALUES (1)"
                                                 : "UPDATE schema_version SET version = " + to;
    SIGIL_RETURN_IF_ERROR(connection.Exec(record.c_str(), "recording the schema version"));
  }
  return tx.Commit();
}

}  // namespace sigil::serverd::pg
