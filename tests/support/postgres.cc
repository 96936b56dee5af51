#include "tests/support/postgres.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <unistd.h>

#include <mutex>

namespace sigil::testing {
namespace {

constexpr char kOwner[] = "postgres";

// The newest installed server's programs: /usr/lib/postgresql/<version>/bin.
std::filesystem::path ServerBin() {
  std::filesystem::path best;
  int best_version = -1;
  std::error_code error;
  for (const auto& version : std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
    const std::string name = version.path().filename().string();
    const int number = std::atoi(name.c_str());
    if (number > best_version && std::filesystem::exists(version.path() / "bin" / "initdb")) {
      best_version = number;
      best = version.path() / "bin";
    }
  }
  return best;
}

std::string Tail(const std::string& text, size_t bytes = 2000) {
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

}  // namespace

Result<std::unique_ptr<Postgres>> Postgres::Start() {
  auto server = std::unique_ptr<Postgres>(new Postgres());
  server->bin_ = ServerBin();
  if (server->bin_.empty()) {
    return Status(Code::kFailedPrecondition, "no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)");
  }
  server->dir_ = std::make_unique<TempDir>("sigil-postgres");
  const std::filesystem::path& dir = server->dir_->path();
  server->data_ = dir / "data";
  server->socket_dir_ = dir / "run";
  server->log_ = dir / "run" / "postgres.log";
  std::filesystem::create_directories(server->data_);
  std::filesystem::create_directories(server->socket_dir_);
  if (::geteuid() == 0) {
    const passwd* owner = ::getpwnam(kOwner);
    if (owner == nullptr) return Status(Code::kFailedPrecondition, "no user 'postgres' to run PostgreSQL as");
    // The owner must reach its folders inside the test's temporary folder.
    std::filesystem::permissions(dir, std::filesystem::perms(0755));
    for (const auto& owned : {server->data_, server->socket_dir_}) {
      if (::chown(owned.c_str(), owner->pw_uid, owner->pw_gid) != 0) {
        return Status(Code::kInternal, "cannot give " + owned.string() + " to postgres");
      }
    }
  }
  server->port_ = FreeLoopbackPort();
  SIGIL_ASSIGN_OR_RETURN(ProcessOutput made,
                         server->RunAsOwner({(server->bin_ / "initdb").string(), "-D", server->data_.string(), "-A",
                                             "trust", "-U", kOwner, "-E", "UTF8", "--locale=C", "--no-sync"}));
  if (made.exit_code != 0) return Status(Code::kInternal, "initdb failed: " + Tail(made.out + made.err));
  SIGIL_RETURN_IF_ERROR(server->StartAgain());
  return server;
}

Postgres::~Postgres() {
  if (running_) {
    (void)RunAsOwner({(bin_ / "pg_ctl").string(), "-D", data_.string(), "-m", "immediate", "-w", "stop"});
  }
}

Result<ProcessOutput> Postgres::RunAsOwner(std::vector<std::string> argv) {
  if (::geteuid() == 0) argv.insert(argv.begin(), {"runuser", "-u", kOwner, "--"});
  return RunProcess(argv, {}, std::chrono::seconds(60));
}

Status Postgres::StartAgain() {
  SIGIL_ASSIGN_OR_RETURN(
      ProcessOutput started,
      RunAsOwner({(bin_ / "pg_ctl").string(), "-D", data_.string(), "-l", log_.string(), "-w", "-t", "30", "-o",
                  "-p " + std::to_string(port_) + " -k " + socket_dir_.string() + " -c listen_addresses=''",
                  "start"}));
  if (started.exit_code != 0) {
    return Status(Code::kInternal, "pg_ctl start failed: " + Tail(started.out + started.err) + "\n" + Tail(ReadFile(log_)));
  }
  running_ = true;
  return Status::Ok();
}

Status Postgres::Stop() {
  SIGIL_ASSIGN_OR_RETURN(ProcessOutput stopped,
                         RunAsOwner({(bin_ / "pg_ctl").string(), "-D", data_.string(), "-m", "fast", "-w", "stop"}));
  if (stopped.exit_code != 0) return Status(Code::kInternal, "pg_ctl stop failed: " + Tail(stopped.out + stopped.err));
  running_ = false;
  return Status::Ok();
}

std::string Postgres::ConnectionString(const std::string& database) const {
  return "host=" + socket_dir_.string() + " port=" + std::to_string(port_) + " user=" + kOwner + " dbname=" + database;
}

Status Postgres::Exec(const std::string& database, const std::string& sql) {
  return Query(database, sql).status();
}

Result<std::string> Postgres::Query(const std::string& database, const std::string& sql) {
  PGconn* conn = PQconnectdb(ConnectionString(database).c_str());
  Result<std::string> answer = std::string();
  if (PQstatus(conn) != CONNECTION_OK) {
    answer = Status(Code::kUnavailable, std::string("cannot connect to PostgreSQL: ") + PQerrorMessage(conn));
  } else {
    PGresult* result = PQexec(conn, sql.c_str());
    const ExecStatusType outcome = PQresultStatus(result);
    if (outcome != PGRES_COMMAND_OK && outcome != PGRES_TUPLES_OK) {
      answer = Status(Code::kInternal, sql + ": " + PQerrorMessage(conn));
    } else if (PQntuples(result) > 0 && PQnfields(result) > 0) {
      answer = std::string(PQgetvalue(result, 0, 0));
    }
    PQclear(result);
  }
  PQfinish(conn);
  return answer;
}

Result<std::string> Postgres::CreateDatabase(const std::string& name) {
  SIGIL_RETURN_IF_ERROR(Exec("postgres", "CREATE DATABASE " + name));
  return ConnectionString(name);
}

Result<Postgres*> SharedPostgres() {
  static std::mutex mutex;
  static std::unique_ptr<Postgres> server;
  static Status failed;
  std::lock_guard lock(mutex);
  if (!server && failed.ok()) {
    auto started = Postgres::Start();
    if (started.ok()) {
      server = std::move(*started);
    } else {
      failed = started.status();
    }
  }
  if (!failed.ok()) return failed;
  return server.get();
}

}  // namespace sigil::testing
