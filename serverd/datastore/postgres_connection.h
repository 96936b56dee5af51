// The PostgreSQL datastore's link to the server: one libpq connection with its statements and
// results, the pool that leases connections to calls, and a transaction's scope. Shared by the
// store, its schema (postgres_schema.cc) and its change listener (postgres_change_listener.h),
// which holds a connection of its own.
#pragma once

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <nlohmann/json.hpp>

#include "core/backoff.h"
#include "core/status.h"
#include "serverd/datastore/postgres_datastore.h"

namespace sigil::serverd::pg {

// SQLSTATE classes and codes the store tells apart.
inline bool IsConnectionState(std::string_view state) {
  // 08: connection exception; 57P01-03: the server shutting down or starting.
  return state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03";
}
inline constexpr std::string_view kUniqueViolation = "23505";

// One statement parameter, sent as text (bytea as binary).
struct Param {
  std::string value;
  bool binary = false;
};
inline Param Text(std::string value) { return {std::move(value), false}; }
inline Param Int(int64_t value) { return {std::to_string(value), false}; }
inline Param Bool(bool value) { return {value ? "true" : "false", false}; }
inline Param Bytes(std::string value) { return {std::move(value), true}; }

// libpq's last error on `conn`, without the line end it carries.
inline std::string ErrorText(PGconn* conn) {
  std::string message = PQerrorMessage(conn);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

// The result of one statement, freed with it.
class Rows {
 public:
  explicit Rows(PGresult* result) : result_(result) {}
  ~Rows() { PQclear(result_); }
  Rows(Rows&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
  Rows& operator=(Rows&&) = delete;
  Rows(const Rows&) = delete;

  PGresult* raw() const { return result_; }
  int size() const { return PQntuples(result_); }
  std::string Text(int row, int column) const {
    return std::string(PQgetvalue(result_, row, column), static_cast<size_t>(PQgetlength(result_, row, column)));
  }
  int64_t Int(int row, int column) const { return std::strtoll(PQgetvalue(result_, row, column), nullptr, 10); }
  bool Bool(int row, int column) const { return PQgetvalue(result_, row, column)[0] == 't'; }
  std::string Bytes(int row, int column) const {
    size_t length = 0;
    unsigned char* raw =
        PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(result_, row, column)), &length);
    if (raw == nullptr) return {};
    std::string bytes(reinterpret_cast<const char*>(raw), length);
    PQfreemem(raw);
    return bytes;
  }
  // A json_agg column; an array, empty when the store's JSON could not be read (it never writes such).
  nlohmann::json Array(int row, int column) const {
    nlohmann::json parsed = nlohmann::json::parse(Text(row, column), nullptr, false);
    return parsed.is_array() ? parsed : nlohmann::json::array();
  }
  // How many rows an INSERT, UPDATE or DELETE touched.
  int64_t changed() const { return std::strtoll(PQcmdTuples(result_), nullptr, 10); }

 private:
  PGresult* result_;
};

// A statement's failure, with its SQLSTATE and constraint, so that a caller can tell a
// duplicate from a lost connection.
struct Failure {
  Status status;
  std::string state;
  std::string constraint;
};

// One libpq connection, leased to one call at a time.
class Connection {
 public:
  explicit Connection(PGconn* conn) : conn_(conn) {}
  ~Connection() { PQfinish(conn_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  PGconn* raw() const { return conn_; }
  bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }
  bool idle() const { return PQtransactionStatus(conn_) == PQTRANS_IDLE; }

  // Runs `sql` with `params` ($1, $2, …): its rows, or the failure named by `what`.
  Result<Rows> Run(const char* sql, const std::vector<Param>& params, std::string_view what) {
    Failure failure;
    std::optional<Rows> rows = Try(sql, params, what, &failure);
    if (!rows) return failure.status;
    return std::move(*rows);
  }
  Result<Rows> Run(const std::string& sql, const std::vector<Param>& params, std::string_view what) {
    return Run(sql.c_str(), params, what);
  }
  Status Exec(const char* sql, std::string_view what) { return Run(sql, {}, what).status(); }
  // Several statements in one string (a schema), which only the simple query protocol takes.
  Status Script(const char* sql, std::string_view what) { return Check(Rows(PQexec(conn_, sql)), what).status; }

  // As Run, with the failure kept for the caller to read.
  std::optional<Rows> Try(const char* sql, const std::vector<Param>& params, std::string_view what, Failure* failure) {
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;
    for (const Param& p : params) {
      values.push_back(p.value.c_str());
      lengths.push_back(static_cast<int>(p.value.size()));
      formats.push_back(p.binary ? 1 : 0);
    }
    Rows rows(PQexecParams(conn_, sql, static_cast<int>(params.size()), nullptr, values.data(), lengths.data(),
                           formats.data(), 0));
    Failure kept = Check(rows, what);
    if (kept.status.ok()) return rows;
    *failure = std::move(kept);
    return std::nullopt;
  }

 private:
  // An OK status when `result` succeeded; else what failed.
  Failure Check(const Rows& result, std::string_view what) {
    const ExecStatusType status = PQresultStatus(result.raw());
    if (result.raw() != nullptr && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)) return {};
    Failure failure;
    if (const char* state = PQresultErrorField(result.raw(), PG_DIAG_SQLSTATE)) failure.state = state;
    if (const char* constraint = PQresultErrorField(result.raw(), PG_DIAG_CONSTRAINT_NAME)) failure.constraint = constraint;
    const std::string message = ErrorText(conn_);
    const bool unreachable = broken() || IsConnectionState(failure.state);
    failure.status = Status(unreachable ? Code::kUnavailable : Code::kInternal,
                            std::string(what) + ": " + (unreachable ? "the datastore is unreachable: " : "") + message);
    return failure;
  }

  PGconn* conn_;
};

// While the server stays unreachable, connecting again waits 100 ms, doubling to 5 s.
inline constexpr BackoffPolicy kConnectBackoff{std::chrono::milliseconds(100), std::chrono::milliseconds(5'000)};

// The pool: connections made on demand up to max_connections and handed to one call at a time.
// A connection that broke is dropped when given back, and the next call connects anew; while
// the server stays unreachable, connecting is tried again only after a back-off (100 ms
// doubling to 5 s, with jitter), and the calls in between fail at once with the last error.
class Pool {
 public:
  explicit Pool(PostgresOptions options) : options_(std::move(options)) {}

  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Connection> connection) : pool_(pool), connection_(std::move(connection)) {}
    Lease(Lease&& other) noexcept = default;
    ~Lease() {
      if (connection_) pool_->GiveBack(std::move(connection_));
    }
    Connection& operator*() const { return *connection_; }
    Connection* operator->() const { return connection_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> connection_;
  };

  Result<Lease> Acquire() {
    std::unique_lock lock(mutex_);
    const auto deadline = std::chrono::steady_clock::now() + options_.acquire_timeout;
    while (idle_.empty() && open_ >= options_.max_connections) {
      if (freed_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
          open_ >= options_.max_connections) {
        return UnavailableError("all " + std::to_string(options_.max_connections) +
                                " datastore connections stayed busy for " +
                                std::to_string(options_.acquire_timeout.count()) + " ms");
      }
    }
    if (!idle_.empty()) {
      std::unique_ptr<Connection> connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(connection));
    }
    if (std::chrono::steady_clock::now() < retry_at_) return last_failure_;
    ++open_;
    lock.unlock();
    Result<std::unique_ptr<Connection>> made = Connect();
    lock.lock();
    if (!made.ok()) {
      --open_;
      retry_at_ = std::chrono::steady_clock::now() + connect_backoff_.Next();
      last_failure_ = made.status();
      freed_.notify_one();
      return made.status();
    }
    connect_backoff_.Reset();
    retry_at_ = {};
    return Lease(this, std::move(*made));
  }

  // Opens one connection, outside the pool: the migration's.
  Result<std::unique_ptr<Connection>> Connect() {
    const std::string timeout = std::to_string(options_.connect_timeout.count());
    // dbname first and expanded: the connection string's own keys, then these over them.
    std::vector<const char*> keys = {"dbname", "connect_timeout", "application_name"};
    std::vector<const char*> values = {options_.connection_string.c_str(), timeout.c_str(), "serverd"};
    if (!options_.password.empty()) {
      keys.push_back("password");
      values.push_back(options_.password.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    PGconn* conn = PQconnectdbParams(keys.data(), values.data(), 1);
    if (conn == nullptr) return UnavailableError("cannot connect to the datastore: out of memory");
    auto connection = std::make_unique<Connection>(conn);
    if (PQstatus(conn) != CONNECTION_OK) {
      return UnavailableError("cannot connect to the datastore: " + ErrorText(conn));
    }
    return connection;
  }

 private:
  void GiveBack(std::unique_ptr<Connection> connection) {
    // A call that returned inside a transaction (its rollback failed) leaves it to be ended here.
    if (!connection->broken() && !connection->idle()) (void)connection->Exec("ROLLBACK", "ending a transaction");
    std::lock_guard lock(mutex_);
    if (connection->broken() || !connection->idle()) {
      --open_;
    } else {
      idle_.push_back(std::move(connection));
    }
    freed_.notify_one();
  }

  const PostgresOptions options_;
  std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Connection>> idle_;
  int open_ = 0;  // leased and idle
  Backoff connect_backoff_{kConnectBackoff};
  std::chrono::steady_clock::time_point retry_at_;
  Status last_failure_;
};

// The one integer a statement answers in one row (a count, the revision).
inline Result<int64_t> OneInt(Connection& connection, const char* sql, std::string_view what) {
  SIGIL_ASSIGN_OR_RETURN(Rows rows, connection.Run(sql, {}, what));
  if (rows.size() != 1) return Status(Code::kInternal, std::string(what) + ": the datastore answered no row");
  return rows.Int(0, 0);
}

// BEGIN (or `begin`), and a ROLLBACK unless Commit() succeeded.
class Transaction {
 public:
  explicit Transaction(Connection& connection) : connection_(connection) {}
  ~Transaction() {
    if (open_) (void)connection_.Exec("ROLLBACK", "rolling back");
  }
  Status Begin(const char* begin = "BEGIN") {
    SIGIL_RETURN_IF_ERROR(connection_.Exec(begin, "starting a transaction"));
    open_ = true;
    return Status::Ok();
  }
  Status Commit() {
    open_ = false;
    return connection_.Exec("COMMIT", "committing");
  }

 private:
  Connection& connection_;
  bool open_ = false;
};

// Creates the schema in an empty database, or migrates an older one to kPostgresSchemaVersion, in
// one transaction on `connection`, one replica at a time; refuses a schema newer than this serverd.
Status MigrateSchema(Connection& connection);

}  // namespace sigil::serverd::pg
