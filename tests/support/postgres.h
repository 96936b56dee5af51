// A PostgreSQL server of the test's own, as TESTING.md says: initdb in a temporary folder (run
// as the postgres user when the test runs as root, since initdb refuses root), started with
// pg_ctl on a Unix socket in that folder and no TCP listener at all. One per test binary (it
// takes about a second to make); each test makes a database of its own in it.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "tests/support/process.h"

namespace sigil::testing {

class Postgres {
 public:
  static Result<std::unique_ptr<Postgres>> Start();
  ~Postgres();
  Postgres(const Postgres&) = delete;
  Postgres& operator=(const Postgres&) = delete;

  // CREATE DATABASE `name`; its connection string.
  Result<std::string> CreateDatabase(const std::string& name);
  // libpq's connection string for `database` on this server, as user postgres, without a password.
  std::string ConnectionString(const std::string& database) const;
  // Runs `sql` (one or more statements) in `database`.
  Status Exec(const std::string& database, const std::string& sql);
  // The first column of the first row `sql` answers in `database` ("" when no row).
  Result<std::string> Query(const std::string& database, const std::string& sql);

  // pg_ctl stop (fast: connections are ended) and start again on the same data and socket: an
  // outage as the datastore's clients see it.
  Status Stop();
  Status StartAgain();

  const std::filesystem::path& log_path() const { return log_; }
  const std::filesystem::path& data_dir() const { return data_; }

 private:
  Postgres() = default;
  Result<ProcessOutput> RunAsOwner(std::vector<std::string> argv);

  std::unique_ptr<TempDir> dir_;
  std::filesystem::path bin_;
  std::filesystem::path data_;
  std::filesystem::path socket_dir_;
  std::filesystem::path log_;
  int port_ = 0;
  bool running_ = false;
};

// The one Postgres of this test binary, started on first use.
Result<Postgres*> SharedPostgres();

}  // namespace sigil::testing
