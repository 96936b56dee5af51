// The SQLite datastore: one file in WAL mode with foreign keys on, synchronous=FULL so an
// acknowledged write survives a crash, and a busy timeout so a second process (the CLI during
// tests, a backup) waits instead of failing. The schema is created and migrated at open,
// recorded in schema_version.
#pragma once

#include <filesystem>
#include <memory>

#include "serverd/datastore/datastore.h"

namespace sigil::serverd {

inline constexpr int kSqliteSchemaVersion = 5;

Result<std::unique_ptr<Datastore>> OpenSqliteDatastore(const std::filesystem::path& path);

}  // namespace sigil::serverd
