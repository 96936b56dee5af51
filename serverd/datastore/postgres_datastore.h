// The PostgreSQL datastore: the same Datastore as SQLite's, in a database that several serverd
// replicas share. Calls are network round trips on a pool of libpq connections, so they block
// (never on an event loop, as with SQLite). A connection that breaks is opened again on its next
// use, with back-off while the server stays unreachable: the calls in between fail at once with
// Unavailable instead of each waiting for a connect. The schema is created and migrated at open,
// under an advisory lock so that replicas starting together migrate once, and recorded in
// schema_version; a schema newer than this serverd is refused.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "serverd/datastore/datastore.h"

namespace sigil::serverd {

inline constexpr int kPostgresSchemaVersion = 2;

struct PostgresOptions {
  // libpq's connection string ("host=… port=… dbname=… user=…") or URI (postgresql://…),
  // without a password: that comes from `password`, or libpq's own PGPASSWORD or ~/.pgpass.
  std::string connection_string;
  std::string password;
  int max_connections = 8;
  std::chrono::seconds connect_timeout{5};
  // How long a call waits for a free connection of the pool before it fails with Unavailable.
  std::chrono::milliseconds acquire_timeout{10'000};
};

// InvalidArgument when libpq cannot read the connection string, or when it names a password (that
// belongs in a file or the environment, not in serverd's config); the message never repeats it.
Status CheckPostgresConnectionString(const std::string& connection_string);

// Connects once (the pool grows on demand up to max_connections) and migrates the schema.
Result<std::unique_ptr<Datastore>> OpenPostgresDatastore(const PostgresOptions& options);

}  // namespace sigil::serverd
