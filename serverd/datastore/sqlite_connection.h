// The SQLite datastore's link to its file: prepared statements kept for reuse, one statement's
// binding and reading, and a write transaction's scope. Shared by the store (sqlite_datastore.cc)
// and its schema (sqlite_schema.cc).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/status.h"

namespace sigil::serverd::sqlite {

// A prepared statement; values bound by position from 1, columns read from 0.
// Prepared statements kept for the next use of the same SQL: preparing (parsing and planning)
// cost more than running for the datastore's short statements, and a batch of thousands of
// entries runs the same few statements thousands of times.
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  ~StatementCache() { Clear(); }
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  sqlite3* db() const { return db_; }

  // A statement of `sql` of its own to the caller: a cached one, or a new one.
  int Take(const char* sql, sqlite3_stmt** stmt) {
    {
      std::lock_guard lock(mutex_);
      if (auto it = idle_.find(sql); it != idle_.end()) {
        *stmt = it->second;
        idle_.erase(it);
        return SQLITE_OK;
      }
    }
    return sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, nullptr);
  }
  // Back for the next caller, reset and unbound; finalized when the cache is full.
  void Give(sqlite3_stmt* stmt) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    std::lock_guard lock(mutex_);
    if (idle_.size() >= kMaxIdle) {
      sqlite3_finalize(stmt);
      return;
    }
    idle_.emplace(sqlite3_sql(stmt), stmt);
  }
  void Clear() {
    std::lock_guard lock(mutex_);
    for (auto& [sql, stmt] : idle_) sqlite3_finalize(stmt);
    idle_.clear();
  }

 private:
  // Filters make a few shapes of SELECT each; the rest of the SQL is fixed.
  static constexpr size_t kMaxIdle = 128;
  sqlite3* db_;
  std::mutex mutex_;
  std::unordered_multimap<std::string, sqlite3_stmt*> idle_;
};

class Statement {
 public:
  Statement(StatementCache& cache, const char* sql) : db_(cache.db()), cache_(&cache) {
    rc_ = cache.Take(sql, &stmt_);
  }
  ~Statement() {
    if (stmt_ != nullptr) cache_->Give(stmt_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(int index, const std::string& value) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(int index, int64_t value) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  Statement& BindBlob(int index, const std::string& value) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_blob(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    return *this;
  }

  // True while a row is available; errors end the loop and show in status().
  bool Next() {
    if (rc_ != SQLITE_OK && rc_ != SQLITE_ROW) return false;
    const int step = sqlite3_step(stmt_);
    if (step == SQLITE_ROW) {
      rc_ = SQLITE_ROW;
      return true;
    }
    rc_ = step == SQLITE_DONE ? SQLITE_OK : step;
    return false;
  }

  // Runs a statement that returns no rows.
  Status Run(std::string_view what) {
    while (Next()) {
    }
    return status(what);
  }

  std::string Text(int column) const {
    const auto* text = sqlite3_column_blob(stmt_, column);
    return text == nullptr ? std::string()
                           : std::string(static_cast<const char*>(text), sqlite3_column_bytes(stmt_, column));
  }
  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }

  int extended_code() const { return rc_ == SQLITE_OK || rc_ == SQLITE_ROW ? rc_ : sqlite3_extended_errcode(db_); }

  Status status(std::string_view what) const {
    if (rc_ == SQLITE_OK || rc_ == SQLITE_ROW) return Status::Ok();
    const Code code = (rc_ & 0xff) == SQLITE_BUSY ? Code::kUnavailable : Code::kInternal;
    return Status(code, std::string(what) + ": " + sqlite3_errmsg(db_));
  }

 private:
  sqlite3* db_;
  StatementCache* cache_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

inline Status Exec(sqlite3* db, const char* sql, std::string_view what) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    Status status(Code::kInternal, std::string(what) + ": " + (error ? error : "unknown error"));
    sqlite3_free(error);
    return status;
  }
  return Status::Ok();
}

// BEGIN IMMEDIATE (the write lock up front, so two writers never deadlock upgrading) and a
// ROLLBACK unless Commit() succeeded.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  ~Transaction() {
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Status Begin() {
    SIGIL_RETURN_IF_ERROR(Exec(db_, "BEGIN IMMEDIATE", "starting a transaction"));
    open_ = true;
    return Status::Ok();
  }
  Status Commit() {
    SIGIL_RETURN_IF_ERROR(Exec(db_, "COMMIT", "committing"));
    open_ = false;
    return Status::Ok();
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

// Creates the schema in an empty file, or migrates an older one to kSqliteSchemaVersion, in one
// transaction; refuses a file whose schema is newer than this serverd.
Status MigrateSchema(sqlite3* db, StatementCache& statements);

}  // namespace sigil::serverd::sqlite
