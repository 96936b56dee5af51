#include "serverd/server_config.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>

#include "core/config.h"
#include "core/file.h"
#include "core/registration_entry.h"
#include "serverd/datastore/postgres_datastore.h"
#include "serverd/spire_server_conf.h"
#include "transport/listener_limits.h"

namespace sigil::serverd {

namespace {
// A CA certificate lives at most this long; a root of ten years is already long by any
// practice, and the bound keeps its notAfter inside what the clock holds.
constexpr std::chrono::seconds kMaxCaTtl = std::chrono::hours(24 * 365 * 10);

// Whole numbers from 1 to a million: a rate or burst of 0 would refuse every call.
void ReadRateLimit(ConfigSection& section, std::string_view rate_key, std::string_view burst_key, RateLimit& limit) {
  int64_t per_second = static_cast<int64_t>(limit.per_second);
  int64_t burst = static_cast<int64_t>(limit.burst);
  section.Read(rate_key, per_second, 1, 1'000'000);
  section.Read(burst_key, burst, 1, 1'000'000);
  limit = {.per_second = static_cast<double>(per_second), .burst = static_cast<double>(burst)};
}

// Each kind's keys only with that kind: a connection string under a SQLite store (or a file
// path under PostgreSQL) is a mistake to name, not a setting to ignore.
// The default replica name: two serverd on one host and one database must each be given one.
std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "serverd";
  return name;
}

Status CheckReplicaName(const std::string& name) {
  if (name.empty() || name.size() > 64) return InvalidArgumentError("must be 1 to 64 characters long");
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
      return InvalidArgumentError("'" + name + "' may hold only letters, digits, '-', '.' and '_'");
    }
  }
  return Status::Ok();
}

void ReadDatastore(ConfigSection datastore, ServerConfig& config) {
  std::string kind = "sqlite";
  datastore.ReadChoice("kind", kind, {"sqlite", "postgres"});
  config.datastore_kind = kind == "postgres" ? DatastoreKind::kPostgres : DatastoreKind::kSqlite;
  constexpr std::string_view kPostgresKeys[] = {"connection_string", "password_file", "max_connections",
                                                "replica_name"};
  if (config.datastore_kind == DatastoreKind::kSqlite) {
    std::string path;
    datastore.Read("sqlite_path", path);
    config.sqlite_path = path.empty() ? config.data_dir / "datastore.sqlite3" : std::filesystem::path(path);
    for (std::string_view key : kPostgresKeys) {
      if (datastore.Has(key)) datastore.Problem(key, "is PostgreSQL's; set kind: postgres to use it");
    }
  } else {
    if (datastore.Has("sqlite_path")) datastore.Problem("sqlite_path", "is SQLite's, and kind is postgres");
    datastore.Read("connection_string", config.postgres_connection_string);
    if (config.postgres_connection_string.empty()) {
      datastore.Problem("connection_string", "is required with kind: postgres (libpq's, e.g. \"host=db dbname=sigil user=sigil\")");
    } else if (Status checked = CheckPostgresConnectionString(config.postgres_connection_string); !checked.ok()) {
      datastore.Problem("connection_string", checked.message());
    }
    std::string password_file;
    datastore.Read("password_file", password_file);
    config.postgres_password_file = password_file;
    datastore.Read("max_connections", config.postgres_max_connections, 1, 1000);
    config.replica_name = HostName();
    datastore.Read("replica_name", config.replica_name);
    if (Status named = CheckReplicaName(config.replica_name); !named.ok()) {
      datastore.Problem("replica_name", named.message());
    }
  }
  datastore.RefuseUnknownKeys();
}
}  // namespace

// Every section in the order the README lists them, a few lines each; a section with more than a
// few keys (datastore, key store, node attestors, federation, telemetry) has a reader of its own.
Result<ServerConfig> ParseServerConfig(std::string_view text, const std::string& source,
                                       const ServerFlagOverrides& overrides) {
  SIGIL_ASSIGN_OR_RETURN(ConfigDocument doc, ReadConfigDocument(text, source, "serverd", TranslateSpireServerConf));
  ServerConfig config;
  ConfigSection server = doc.root().Section("server");

  std::string trust_domain = overrides.trust_domain;
  if (trust_domain.empty()) server.Read("trust_domain", trust_domain);
  if (trust_domain.empty()) {
    server.Problem("trust_domain", "is required (or -trustDomain)");
  } else if (auto parsed = TrustDomain::Parse(trust_domain); !parsed.ok()) {
    server.Problem("trust_domain", parsed.status().message());
  } else {
    config.trust_domain = *parsed;
  }
  server.Read("bind_address", config.bind_address);
  if (!overrides.bind_address.empty()) config.bind_address = overrides.bind_address;
  server.Read("bind_port", config.bind_port, 0, 65535);
  if (overrides.bind_port != 0) config.bind_port = overrides.bind_port;
  std::string path = config.socket_path.string();
  server.Read("socket_path", path);
  if (!overrides.socket_path.empty()) path = overrides.socket_path;
  config.socket_path = path;
  if (!config.socket_path.is_absolute()) server.Problem("socket_path", "must be an absolute path");

  std::vector<std::string> uids;
  server.Read("admin_uids", uids);
  for (const std::string& uid : uids) {
    char* end = nullptr;
    const unsigned long value = std::strtoul(uid.c_str(), &end, 10);
    if (uid.empty() || *end != '\0' || value > 0xffffffffUL) {
      server.Problem("admin_uids", "'" + uid + "' is not a user id");
    } else {
      config.admin_uids.push_back(static_cast<uint32_t>(value));
    }
  }
  server.Read("audit_log_enabled", config.audit_log_enabled);
  path.clear();
  server.Read("audit_log_path", path);
  config.audit_log_path = path;
  if (!path.empty() && !config.audit_log_enabled) {
    server.Problem("audit_log_path", "names a file for the audit log, but audit_log_enabled is not true");
  }
  path = config.data_dir.string();
  server.Read("data_dir", path);
  if (!overrides.data_dir.empty()) path = overrides.data_dir;
  config.data_dir = path;

  ReadLogLevel(server, overrides.log_level, config.log_level);
  ReadLogFormat(server, overrides.log_format, config.log_format);
  path.clear();
  server.Read("log_file", path);
  if (!overrides.log_file.empty()) path = overrides.log_file;
  config.log_file = path;
  server.Read("default_x509_svid_ttl", config.default_x509_svid_ttl, std::chrono::seconds(1));
  server.Read("default_jwt_svid_ttl", config.default_jwt_svid_ttl, std::chrono::seconds(1));
  server.Read("ca_ttl", config.ca_ttl, std::chrono::seconds(10));
  std::string key_type(KeyTypeName(config.ca_key_type));
  server.ReadChoice("ca_key_type", key_type, {"ec-p256", "ec-p384", "rsa-2048"});
  config.ca_key_type = *ParseKeyType(key_type);
  ConfigSection subject = server.Section("ca_subject");
  subject.Read("country", config.ca_subject.country);
  subject.Read("organization", config.ca_subject.organization);
  subject.Read("common_name", config.ca_subject.common_name);
  subject.RefuseUnknownKeys();
  std::string mode = "direct";
  server.ReadChoice("ca_mode", mode, {"direct", "delegated"});
  config.ca_mode = mode == "delegated" ? CaMode::kDelegated : CaMode::kDirect;
  server.Read("delegated_ca_ttl", config.delegated_ca_ttl, std::chrono::seconds(60));
  server.Read("jwt_issuer", config.jwt_issuer);
  if (Status checked = CheckOidcUrl(config.jwt_issuer); !config.jwt_issuer.empty() && !checked.ok()) {
    server.Problem("jwt_issuer", checked.message());
  }
  config.agent_ttl = config.default_x509_svid_ttl;
  server.Read("agent_ttl", config.agent_ttl, std::chrono::seconds(1));
  // Bounds that keep every TTL far from overflowing time arithmetic, and refuse typos.
  auto at_most = [&](const char* key, std::chrono::seconds value, std::chrono::seconds max, const char* what) {
    if (value > max) server.Problem(key, FormatDuration(value) + " is longer than " + FormatDuration(max) + " (" + what + ")");
  };
  at_most("default_x509_svid_ttl", config.default_x509_svid_ttl, kMaxSvidTtl, "a year, the longest SVID");
  at_most("default_jwt_svid_ttl", config.default_jwt_svid_ttl, kMaxSvidTtl, "a year, the longest SVID");
  at_most("agent_ttl", config.agent_ttl, kMaxSvidTtl, "a year, the longest SVID");
  at_most("ca_ttl", config.ca_ttl, kMaxCaTtl, "ten years");
  at_most("delegated_ca_ttl", config.delegated_ca_ttl, kMaxCaTtl, "ten years");
  if (config.agent_ttl >= config.ca_ttl) {
    server.Problem("agent_ttl", "must be shorter than ca_ttl");
  }
  if (config.default_x509_svid_ttl >= config.ca_ttl) {
    server.Problem("default_x509_svid_ttl", "must be shorter than ca_ttl, or every SVID is cut to the CA's life");
  }
  server.RefuseUnknownKeys();

  ConfigSection signing = doc.root().Section("signing");
  signing.Read("workers", config.signing_workers, 1, 64);
  signing.Read("max_batch", config.signing_max_batch, 1, 4096);
  signing.Read("max_wait_us", config.signing_max_wait_us, 0, 1'000'000);
  signing.Read("queue_capacity", config.signing_queue_capacity, 16, 1 << 20);
  signing.RefuseUnknownKeys();

  hw::ReadKeyStoreConfig(doc.root().Section("key_store"), config.key_store);
  if (config.key_store.kind == hw::KeyStoreKind::kSoft && config.key_store.key_dir.empty()) {
    config.key_store.key_dir = config.data_dir / "keys";
  }
  if (config.key_store.kind == hw::KeyStoreKind::kTpm && config.key_store.data_dir.empty()) {
    config.key_store.data_dir = config.data_dir / "tpm";
  }

  ConfigSection attestors = doc.root().Section("node_attestors");
  config.node_attestors = ReadNodeAttestors(attestors);

  ReadDatastore(doc.root().Section("datastore"), config);

  ReadHealthChecks(doc.root().Section("health_checks"), config.health_checks);
  ConfigSection limits = doc.root().Section("agent_api_limits");
  // Read before the listener's keys, which refuse any key not read by then. A legitimate item
  // carries a CSR of a few hundred bytes, so a 4 MiB body holds at most some ten thousand.
  int64_t batch_items = static_cast<int64_t>(config.max_csr_batch_items);
  limits.Read("max_csr_batch_items", batch_items, 1, 100'000);
  config.max_csr_batch_items = static_cast<size_t>(batch_items);
  int64_t queued_requests = static_cast<int64_t>(config.max_queued_agent_requests);
  limits.Read("max_queued_requests", queued_requests, 16, 1 << 20);
  config.max_queued_agent_requests = static_cast<size_t>(queued_requests);
  ReadRateLimit(limits, "attestations_per_second_per_ip", "attestation_burst_per_ip", config.attestations_per_ip);
  ReadRateLimit(limits, "svids_per_second_per_agent", "svid_burst_per_agent", config.svids_per_agent);
  if (config.svids_per_agent.burst < static_cast<double>(config.max_csr_batch_items)) {
    limits.Problem("svid_burst_per_agent",
                   "must be at least max_csr_batch_items (" + std::to_string(config.max_csr_batch_items) +
                       "), or a full batch could never be signed");
  }
  transport::ReadListenerLimits(limits, config.agent_api_limits);

  ReadTelemetry(doc.root().Section("telemetry"), config.telemetry);

  ReadFederationConfig(doc.root().Section("federation"), config.trust_domain, config.federation);
  if (doc.root().Has("oidc_discovery")) {
    ReadOidcDiscoveryConfig(doc.root().Section("oidc_discovery"), config.jwt_issuer, config.oidc_discovery);
  }

  doc.root().RefuseUnknownKeys();
  SIGIL_RETURN_IF_ERROR(doc.Finish());
  return config;
}

Result<ServerConfig> LoadServerConfig(const std::filesystem::path& path,
                                      const ServerFlagOverrides& overrides) {
  SIGIL_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path, "config file"));
  if (overrides.expand_env) text = ExpandEnv(text, std::getenv);
  return ParseServerConfig(text, path.string(), overrides);
}

}  // namespace sigil::serverd
