// serverd's config file (YAML), with SPIRE's defaults. Every key has a default except
// server.trust_domain; every value is checked at start and a bad one stops start-up with a
// message naming its key. SPIRE's server.conf (HCL) is read too, mapped onto these keys by
// spire_server_conf.h; a file's language is told by its name and text (core/config.h).
//
//   server:
//     trust_domain: example.org
//     bind_address: 0.0.0.0          # agent API
//     bind_port: 8081
//     socket_path: /tmp/sigil-server/private/api.sock   # admin API
//     admin_uids: [0]                # besides serverd's own uid
//     audit_log_enabled: false       # one JSON line per admin call and agent attestation/renewal
//     audit_log_path: ""             # their own file (appended, 0600); the log when empty
//     data_dir: /var/lib/sigil-server
//     log_level: info                # debug | info | warn | error, in any case; -logLevel wins
//     log_format: text               # text | json, in any case; -logFormat wins
//     log_file: ""                   # appended to instead of stderr, reopened on SIGHUP; -logFile wins
//     default_x509_svid_ttl: 1h
//     default_jwt_svid_ttl: 5m
//     ca_ttl: 24h
//     ca_key_type: ec-p256           # ec-p256 | ec-p384 | rsa-2048
//     ca_subject: {country: US, organization: SPIFFE, common_name: ""}
//     ca_mode: direct                # direct | delegated
//     delegated_ca_ttl: 10m
//     jwt_issuer: ""                 # the "iss" of every JWT-SVID, an http(s) URL; none when empty
//     agent_ttl: <default_x509_svid_ttl>   # agents' own X509-SVIDs
//   signing:                         # the signing pipeline behind the agent API
//     workers: 2                     # signer threads, each with its own key-store session
//     max_batch: 64                  # jobs a worker takes at once
//     max_wait_us: 100               # how long a worker waits for a batch to fill
//     queue_capacity: 8192           # beyond this, agents are told to back off
//   key_store:                       # or `uri: pkcs11:token=...?...`
//     kind: soft                     # soft | pkcs11 | tpm
//     key_dir / module_path, token_label, token_serial, pin_file, pin_env / tcti, data_dir, auth_file
//   node_attestors:                  # by name; attestor/registrations.cc lists them
//     join_token: {}                 # on unless `enabled: false`
//     tpm_devid:                     # SPIRE's tpm_devid; absent: off
//       devid_ca_path: [ca.pem]      # roots of DevID certificates (one path or a list)
//       endorsement_ca_path: [ek-ca.pem]   # TPM manufacturers' EK roots
//       allow_ek_without_certificate: false
//   datastore:
//     kind: sqlite                   # sqlite | postgres (several replicas on one database)
//     sqlite_path: <data_dir>/datastore.sqlite3
//     connection_string: "host=db.example.org dbname=sigil user=sigil sslmode=verify-full"  # postgres
//     password_file: /etc/sigil/postgres-password   # postgres; or PGPASSWORD, never in this file
//     max_connections: 8             # postgres: the pool's size
//     replica_name: <host name>      # postgres: unique among the replicas of one database
//   agent_api_limits:                # the agent API listener's; see transport/listener_limits.h
//     max_connections_per_source: 256  # per IP address
//     max_csr_batch_items: 1000      # CSRs in one SignCsrBatch, aliased items counted each time
//     max_queued_requests: 8192      # attested agents' requests waiting for a worker
//     attestations_per_second_per_ip: 20   # Attest calls one IP address may make, on average
//     attestation_burst_per_ip: 100        # and at once
//     svids_per_second_per_agent: 500      # SVIDs (X.509 and JWT) one agent may have signed
//     svid_burst_per_agent: 5000           # and at once; at least max_csr_batch_items
//   health_checks:
//     listener_enabled: false
//     bind_address: 127.0.0.1
//     bind_port: 8080
//     live_path: /live
//     ready_path: /ready
//   telemetry:
//     prometheus: {host: 127.0.0.1, port: 0}     # 0: off
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/rate_limiter.h"
#include "core/signer.h"
#include "core/spiffe_id.h"
#include "core/status.h"
#include "hw/key_store.h"
#include "serverd/attestor/node_attestor.h"
#include "serverd/federation/federation_config.h"
#include "serverd/oidc/oidc_discovery.h"
#include "transport/http2_server.h"

namespace sigil::serverd {

enum class CaMode { kDirect, kDelegated };
enum class DatastoreKind { kSqlite, kPostgres };

struct CaSubject {
  std::string country = "US";
  std::string organization = "SPIFFE";
  std::string common_name;
};

struct ServerConfig {
  TrustDomain trust_domain;
  std::string bind_address = "0.0.0.0";
  int bind_port = 8081;
  std::filesystem::path socket_path = "/tmp/sigil-server/private/api.sock";
  std::vector<uint32_t> admin_uids;
  bool audit_log_enabled = false;  // serverd/audit_log.h
  std::filesystem::path audit_log_path;
  std::filesystem::path data_dir = "/var/lib/sigil-server";
  std::string log_level = "info";
  std::string log_format = "text";
  std::filesystem::path log_file;  // empty: stderr
  std::chrono::seconds default_x509_svid_ttl{3600};
  std::chrono::seconds default_jwt_svid_ttl{300};
  std::chrono::seconds ca_ttl{86400};
  KeyType ca_key_type = KeyType::kEcP256;
  CaSubject ca_subject;
  CaMode ca_mode = CaMode::kDirect;
  std::chrono::seconds delegated_ca_ttl{600};
  std::string jwt_issuer;
  std::chrono::seconds agent_ttl{0};  // 0 until parsed: default_x509_svid_ttl

  int signing_workers = 2;
  int signing_max_batch = 64;
  int signing_max_wait_us = 100;
  int signing_queue_capacity = 8192;

  std::vector<ConfiguredNodeAttestor> node_attestors;  // on, in registration order

  hw::KeyStoreConfig key_store;
  DatastoreKind datastore_kind = DatastoreKind::kSqlite;
  std::filesystem::path sqlite_path;  // default: <data_dir>/datastore.sqlite3
  std::string postgres_connection_string;
  std::filesystem::path postgres_password_file;  // empty: libpq's own (PGPASSWORD, ~/.pgpass)
  int postgres_max_connections = 8;
  // This serverd among the replicas sharing one PostgreSQL store: its CA slots in the journal are
  // the ones it signs with. Empty with SQLite (one serverd per file).
  std::string replica_name;

  HealthCheckConfig health_checks;
  transport::Http2ServerOptions agent_api_limits;  // agent_api_limits: (transport/listener_limits.h)
  size_t max_csr_batch_items = 1000;               // agent_api_limits.max_csr_batch_items
  // Attested agents' requests waiting for a worker (agent_api_limits.max_queued_requests):
  // enough for every agent of a 5,000-agent fleet to sync and renew at once after a restart.
  size_t max_queued_agent_requests = 8192;
  // A real agent attests once when it starts, and again only when it lost its SVID; the burst
  // lets a rack's worth of agents behind one NAT address start together. SPIRE allows one per
  // second per address.
  RateLimit attestations_per_ip{.per_second = 20, .burst = 100};
  // A real agent has each of its entries signed once per half TTL, and all of them when it
  // starts: the burst covers an agent with 5000 entries starting at once, the rate one renewing
  // 5000 entries every 10 seconds. SPIRE allows 500 X.509 SVIDs per second per address.
  RateLimit svids_per_agent{.per_second = 500, .burst = 5000};

  PrometheusConfig telemetry;

  OidcDiscoveryConfig oidc_discovery;  // off unless the `oidc_discovery:` section is given
  FederationConfig federation;
};

// Flags that override single keys, as SPIRE's `server run` has them. Empty/zero: not given.
struct ServerFlagOverrides {
  std::string trust_domain;
  std::string bind_address;
  int bind_port = 0;
  std::string socket_path;
  std::string data_dir;
  std::string log_level;
  std::string log_format;
  std::string log_file;
  bool expand_env = false;  // -expandEnv: $VAR and ${VAR} in the file replaced before parsing
};

// Parses `text` (the file at `source`, YAML or SPIRE's HCL: ReadConfigDocument), applies
// `overrides`, and checks every value.
Result<ServerConfig> ParseServerConfig(std::string_view text, const std::string& source,
                                       const ServerFlagOverrides& overrides = {});

// Reads and parses the file.
Result<ServerConfig> LoadServerConfig(const std::filesystem::path& path,
                                      const ServerFlagOverrides& overrides = {});

}  // namespace sigil::serverd
