// What `PRAGMA integrity_check` says of a SQLite file: "ok" when the store is consistent.
#pragma once

#include <sqlite3.h>

#include <filesystem>
#include <string>

namespace sigil::testing {

inline std::string SqliteIntegrityCheck(const std::filesystem::path& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return "cannot open " + path.string();
  }
  std::string verdict = "no answer";
  sqlite3_stmt* check = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &check, nullptr) == SQLITE_OK &&
      sqlite3_step(check) == SQLITE_ROW) {
    verdict = reinterpret_cast<const char*>(sqlite3_column_text(check, 0));
  }
  sqlite3_finalize(check);
  sqlite3_close(db);
  return verdict;
}

}  // namespace sigil::testing
