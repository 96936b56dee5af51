#include "serverd/server_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/support/config_check.h"

namespace sigil::serverd {
namespace {

using std::chrono::seconds;

TEST(ServerConfigTest, DefaultsAreSpires) {
  auto config = ParseServerConfig("server:\n  trust_domain: example.org\n", "server.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->trust_domain.name(), "example.org");
  EXPECT_EQ(config->bind_address, "0.0.0.0");
  EXPECT_EQ(config->bind_port, 8081);
  EXPECT_EQ(config->socket_path, "/tmp/sigil-server/private/api.sock");
  EXPECT_EQ(config->default_x509_svid_ttl, seconds(3600));
  EXPECT_EQ(config->default_jwt_svid_ttl, seconds(300));
  EXPECT_EQ(config->ca_ttl, seconds(86400));
  EXPECT_EQ(config->ca_key_type, KeyType::kEcP256);
  EXPECT_EQ(config->ca_subject.country, "US");
  EXPECT_EQ(config->ca_subject.organization, "SPIFFE");
  EXPECT_EQ(config->ca_mode, CaMode::kDirect);
  EXPECT_EQ(config->log_level, "info");
  EXPECT_EQ(config->log_format, "text");
  EXPECT_EQ(config->key_store.kind, hw::KeyStoreKind::kSoft);
  EXPECT_EQ(config->key_store.key_dir, "/var/lib/sigil-server/keys");
  EXPECT_EQ(config->sqlite_path, "/var/lib/sigil-server/datastore.sqlite3");
  EXPECT_FALSE(config->health_checks.listener_enabled);
  EXPECT_EQ(config->health_checks.live_path, "/live");
}

TEST(ServerConfigTest, ReadsEverySectionAndFlagsOverride) {
  const char* yaml = R"(
server:
  trust_domain: prod.example
  bind_address: 127.0.0.1
  bind_port: 9081
  socket_path: /run/sigil/api.sock
  admin_uids: [0, 1001]
  data_dir: /srv/sigil
  log_level: debug
  log_format: json
  log_file: /var/log/sigil/server.log
  default_x509_svid_ttl: 30m
  default_jwt_svid_ttl: 2m
  ca_ttl: 12h
  ca_key_type: ec-p384
  ca_subject: {country: DE, organization: Acme, common_name: Acme CA}
  ca_mode: delegated
  delegated_ca_ttl: 5m
key_store:
  kind: pkcs11
  module_path: /usr/lib/softhsm/libsofthsm2.so
  token_label: sigil
  pin_file: /etc/sigil/pin
datastore:
  sqlite_path: /srv/db.sqlite3
health_checks:
  listener_enabled: true
  bind_port: 8088
telemetry:
  prometheus: {port: 9988}
)";
  ServerFlagOverrides flags;
  flags.bind_port = 7000;
  flags.log_level = "warn";  // flags override the file, as SPIRE's do
  flags.log_format = "TEXT";
  auto from_file = ParseServerConfig(yaml, "server.yaml");
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  EXPECT_EQ(from_file->log_file, "/var/log/sigil/server.log");
  EXPECT_EQ(from_file->log_format, "json");
  flags.log_file = "/srv/log/serverd.log";
  auto config = ParseServerConfig(yaml, "server.yaml", flags);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->log_file, "/srv/log/serverd.log");
  EXPECT_EQ(config->log_format, "text");
  EXPECT_EQ(config->trust_domain.name(), "prod.example");
  EXPECT_EQ(config->bind_port, 7000);
  EXPECT_EQ(config->log_level, "warn");
  EXPECT_EQ(config->admin_uids, (std::vector<uint32_t>{0, 1001}));
  EXPECT_EQ(config->ca_key_type, KeyType::kEcP384);
  EXPECT_EQ(config->ca_subject.common_name, "Acme CA");
  EXPECT_EQ(config->ca_mode, CaMode::kDelegated);
  EXPECT_EQ(config->delegated_ca_ttl, seconds(300));
  EXPECT_EQ(config->key_store.kind, hw::KeyStoreKind::kPkcs11);
  EXPECT_EQ(config->key_store.token_label, "sigil");
  EXPECT_EQ(config->sqlite_path, "/srv/db.sqlite3");
  EXPECT_TRUE(config->health_checks.listener_enabled);
  EXPECT_EQ(config->health_checks.bind_port, 8088);
  EXPECT_EQ(config->telemetry.port, 9988);
}

TEST(ServerConfigTest, FlagLogLevelIsStillChecked) {
  ServerFlagOverrides flags;
  flags.log_level = "loud";
  auto config = ParseServerConfig("server: {trust_domain: example.org}\n", "server.yaml", flags);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("server.log_level: 'loud'"), std::string::npos)
      << config.status().message();
}

TEST(ServerConfigTest, KeyStoreByUri) {
  auto config = ParseServerConfig(
      "server: {trust_domain: example.org}\nkey_store:\n  uri: tpm:device:/dev/tpmrm0?data-dir=/var/lib/t\n",
      "server.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->key_store.kind, hw::KeyStoreKind::kTpm);
  EXPECT_EQ(config->key_store.tcti, "device:/dev/tpmrm0");
}

TEST(ServerConfigTest, EveryBadValueIsNamed) {
  const char* yaml = R"(
server:
  trust_domain: Example.org
  bind_port: 99999
  socket_path: relative.sock
  admin_uids: [root]
  default_x509_svid_ttl: 48h
  ca_key_type: ed25519
  ca_mode: sideways
  colour: blue
key_store:
  kind: hsm
  pin: "1234"
datastore:
  postgres: "host=db"
health_checks:
  live_path: live
)";
  auto config = ParseServerConfig(yaml, "server.yaml");
  ASSERT_FALSE(config.ok());
  const std::string m = config.status().message();
  for (const char* expected :
       {"server.trust_domain:", "server.bind_port: 99999", "server.socket_path: must be an absolute",
        "server.admin_uids: 'root'", "server.default_x509_svid_ttl: must be shorter than ca_ttl",
        "server.ca_key_type: 'ed25519'", "server.ca_mode: 'sideways'", "server.colour: unknown key",
        "key_store.kind: 'hsm'", "key_store.pin: a PIN in the config file", "datastore.postgres:",
        "health_checks.live_path: must start with '/'"}) {
    EXPECT_NE(m.find(expected), std::string::npos) << "missing '" << expected << "' in: " << m;
  }
}

TEST(ServerConfigTest, APostgresDatastoreIsReadWithItsOwnKeysOnly) {
  auto config = ParseServerConfig(
      "server:\n  trust_domain: example.org\ndatastore:\n  kind: postgres\n"
      "  connection_string: \"host=/run/postgresql dbname=sigil user=sigil\"\n"
      "  password_file: /etc/sigil/postgres-password\n  max_connections: 16\n",
      "server.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->datastore_kind, DatastoreKind::kPostgres);
  EXPECT_EQ(config->postgres_connection_string, "host=/run/postgresql dbname=sigil user=sigil");
  EXPECT_EQ(config->postgres_password_file, "/etc/sigil/postgres-password");
  EXPECT_EQ(config->postgres_max_connections, 16);
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(config->replica_name, host) << "a replica is named after its host unless told";

  auto defaults = ParseServerConfig("server:\n  trust_domain: example.org\n", "server.yaml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->datastore_kind, DatastoreKind::kSqlite);
  EXPECT_EQ(defaults->replica_name, "");

  auto named = ParseServerConfig("server:\n  trust_domain: example.org\ndatastore:\n  kind: postgres\n"
                                 "  connection_string: \"host=db\"\n  replica_name: east-1\n",
                                 "server.yaml");
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  EXPECT_EQ(named->replica_name, "east-1");
  auto badly_named = ParseServerConfig("server:\n  trust_domain: example.org\ndatastore:\n  kind: postgres\n"
                                       "  connection_string: \"host=db\"\n  replica_name: \"east 1\"\n",
                                       "server.yaml");
  ASSERT_FALSE(badly_named.ok());
  EXPECT_NE(badly_named.status().message().find("datastore.replica_name: 'east 1' may hold only"), std::string::npos)
      << badly_named.status().ToString();
  auto named_on_sqlite = ParseServerConfig("server:\n  trust_domain: example.org\ndatastore:\n  replica_name: a\n",
                                           "server.yaml");
  ASSERT_FALSE(named_on_sqlite.ok());
  EXPECT_NE(named_on_sqlite.status().message().find("datastore.replica_name: is PostgreSQL's"), std::string::npos)
      << named_on_sqlite.status().ToString();

  auto wrong = ParseServerConfig(
      "server:\n  trust_domain: example.org\ndatastore:\n  kind: postgres\n  sqlite_path: /srv/db.sqlite3\n"
      "  max_connections: 0\n",
      "server.yaml");
  ASSERT_FALSE(wrong.ok());
  std::string m = wrong.status().message();
  EXPECT_NE(m.find("datastore.connection_string: is required with kind: postgres"), std::string::npos) << m;
  EXPECT_NE(m.find("datastore.sqlite_path: is SQLite's"), std::string::npos) << m;
  EXPECT_NE(m.find("datastore.max_connections:"), std::string::npos) << m;

  auto secret = ParseServerConfig(
      "server:\n  trust_domain: example.org\ndatastore:\n  kind: postgres\n"
      "  connection_string: \"host=db dbname=sigil password=hunter2\"\n",
      "server.yaml");
  ASSERT_FALSE(secret.ok());
  m = secret.status().message();
  EXPECT_NE(m.find("datastore.connection_string: holds a password; put it in a file named by password_file"),
            std::string::npos) << m;
  EXPECT_EQ(m.find("hunter2"), std::string::npos) << "the password was echoed: " << m;

  auto misplaced = ParseServerConfig(
      "server:\n  trust_domain: example.org\ndatastore:\n  connection_string: \"host=db\"\n  kind: mysql\n",
      "server.yaml");
  ASSERT_FALSE(misplaced.ok());
  m = misplaced.status().message();
  EXPECT_NE(m.find("datastore.kind: 'mysql'"), std::string::npos) << m;
  EXPECT_NE(m.find("datastore.connection_string: is PostgreSQL's; set kind: postgres"), std::string::npos) << m;
}

TEST(ServerConfigTest, TtlsBeyondWhatTheClockHoldsAreRefusedNamingTheKey) {
  // 2000000d (5,500 years) is within the duration syntax but overflowed the CA's notAfter.
  auto config = ParseServerConfig(
      "server:\n  trust_domain: example.org\n  ca_ttl: 2000000d\n  default_jwt_svid_ttl: 400d\n"
      "  delegated_ca_ttl: 3651d\n",
      "server.yaml");
  ASSERT_FALSE(config.ok());
  const std::string m = config.status().message();
  EXPECT_NE(m.find("server.ca_ttl: 2000000d is longer than 3650d (ten years)"), std::string::npos) << m;
  EXPECT_NE(m.find("server.default_jwt_svid_ttl: 400d is longer than 365d"), std::string::npos) << m;
  EXPECT_NE(m.find("server.delegated_ca_ttl: 3651d is longer than 3650d"), std::string::npos) << m;
  EXPECT_TRUE(ParseServerConfig("server:\n  trust_domain: example.org\n  ca_ttl: 3650d\n", "server.yaml").ok());
}

TEST(ServerConfigTest, AgentApiLimitsAreReadAndBounded) {
  auto config = ParseServerConfig(
      "server:\n  trust_domain: example.org\nagent_api_limits:\n  max_connections: 2000\n"
      "  max_connections_per_source: 50\n  request_timeout: 5s\n  max_stream_unsent_bytes: 1048576\n"
      "  max_source_request_bytes: 2097152\n  max_source_unsent_bytes: 4194304\n",
      "server.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->agent_api_limits.max_source_request_bytes, 2u << 20);
  EXPECT_EQ(config->agent_api_limits.max_source_unsent_bytes, 4u << 20);
  EXPECT_EQ(config->agent_api_limits.max_connections, 2000u);
  EXPECT_EQ(config->agent_api_limits.max_connections_per_source, 50u);
  EXPECT_EQ(config->agent_api_limits.request_timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(config->agent_api_limits.max_stream_unsent_bytes, 1u << 20);
  // Untouched keys keep the listener's defaults.
  EXPECT_EQ(config->agent_api_limits.idle_timeout, transport::Http2ServerOptions{}.idle_timeout);

  auto bad = ParseServerConfig(
      "server:\n  trust_domain: example.org\nagent_api_limits:\n  max_connections: 0\n"
      "  request_timeout: 2d\n  max_conections: 5\n  max_source_unsent_bytes: 1\n",
      "server.yaml");
  ASSERT_FALSE(bad.ok());
  const std::string m = bad.status().message();
  EXPECT_NE(m.find("agent_api_limits.max_connections: 0"), std::string::npos) << m;
  EXPECT_NE(m.find("agent_api_limits.request_timeout: must be at most 24h"), std::string::npos) << m;
  EXPECT_NE(m.find("agent_api_limits.max_conections: unknown key"), std::string::npos) << m;
  EXPECT_NE(m.find("agent_api_limits.max_source_unsent_bytes: 1"), std::string::npos) << m;
}

TEST(ServerConfigTest, PrematureResetLimitsAreReadAndBounded) {
  auto set = ParseServerConfig(
      "server:\n  trust_domain: example.org\nagent_api_limits:\n  premature_resets_per_second: 5\n"
      "  premature_reset_burst: 40\n",
      "server.yaml");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->agent_api_limits.premature_resets_per_second, 5);
  EXPECT_EQ(set->agent_api_limits.premature_reset_burst, 40);
  for (const char* key : {"premature_resets_per_second", "premature_reset_burst"}) {
    sigil::testing::ExpectEachValueRefusedNamingKey(
        [](const std::string& yaml) { return ParseServerConfig(yaml, "server.yaml").status(); },
        std::string("server:\n  trust_domain: example.org\nagent_api_limits:\n  ") + key + ": ",
        {"0", "1000001", "-1", "often"}, std::string("agent_api_limits.") + key);
  }
}

TEST(ServerConfigTest, MaxCsrBatchItemsIsReadBesideTheListenerLimitsAndBounded) {
  auto defaults = ParseServerConfig("server:\n  trust_domain: example.org\n", "server.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(defaults->max_csr_batch_items, 1000u);
  auto set = ParseServerConfig(
      "server:\n  trust_domain: example.org\nagent_api_limits:\n  max_csr_batch_items: 500\n  max_connections: 10\n",
      "server.yaml");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->max_csr_batch_items, 500u);
  EXPECT_EQ(set->agent_api_limits.max_connections, 10u);
  sigil::testing::ExpectEachValueRefusedNamingKey(
      [](const std::string& yaml) { return ParseServerConfig(yaml, "server.yaml").status(); },
      "server:\n  trust_domain: example.org\nagent_api_limits:\n  max_csr_batch_items: ", {"0", "100001", "lots"},
      "agent_api_limits.max_csr_batch_items");
}

TEST(ServerConfigTest, MaxQueuedRequestsHasADefaultAndBounds) {
  auto defaults = ParseServerConfig("server:\n  trust_domain: example.org\n", "server.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(defaults->max_queued_agent_requests, 8192u);
  auto set = ParseServerConfig("server:\n  trust_domain: example.org\nagent_api_limits:\n  max_queued_requests: 100\n",
                               "server.yaml");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->max_queued_agent_requests, 100u);
  sigil::testing::ExpectEachValueRefusedNamingKey(
      [](const std::string& yaml) { return ParseServerConfig(yaml, "server.yaml").status(); },
      "server:\n  trust_domain: example.org\nagent_api_limits:\n  max_queued_requests: ", {"15", "1048577", "many"},
      "agent_api_limits.max_queued_requests");
}

TEST(ServerConfigTest, RateLimitsHaveDefaultsAndBounds) {
  auto defaults = ParseServerConfig("server:\n  trust_domain: example.org\n", "server.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(defaults->attestations_per_ip.per_second, 20);
  EXPECT_EQ(defaults->attestations_per_ip.burst, 100);
  EXPECT_EQ(defaults->svids_per_agent.per_second, 500);
  EXPECT_EQ(defaults->svids_per_agent.burst, 5000);
  auto set = ParseServerConfig(
      "server:\n  trust_domain: example.org\nagent_api_limits:\n  attestations_per_second_per_ip: 1\n"
      "  attestation_burst_per_ip: 3\n  svids_per_second_per_agent: 50\n  svid_burst_per_agent: 2000\n",
      "server.yaml");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->attestations_per_ip.per_second, 1);
  EXPECT_EQ(set->attestations_per_ip.burst, 3);
  EXPECT_EQ(set->svids_per_agent.per_second, 50);
  EXPECT_EQ(set->svids_per_agent.burst, 2000);
  for (const char* key : {"attestations_per_second_per_ip", "attestation_burst_per_ip", "svids_per_second_per_agent"}) {
    sigil::testing::ExpectEachValueRefusedNamingKey(
        [](const std::string& yaml) { return ParseServerConfig(yaml, "server.yaml").status(); },
        std::string("server:\n  trust_domain: example.org\nagent_api_limits:\n  ") + key + ": ",
        {"0", "1000001", "-1", "often"}, std::string("agent_api_limits.") + key);
  }
  // A burst under the batch cap would refuse every full batch, for ever.
  auto small = ParseServerConfig(
      "server:\n  trust_domain: example.org\nagent_api_limits:\n  svid_burst_per_agent: 999\n", "server.yaml");
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("agent_api_limits.svid_burst_per_agent: must be at least max_csr_batch_items (1000)"),
            std::string::npos)
      << small.status().ToString();
}

TEST(ServerConfigTest, MissingTrustDomainAndFileAreNamed) {
  auto config = ParseServerConfig("server: {}\n", "server.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("server.trust_domain: is required"), std::string::npos);
  ServerFlagOverrides flags;
  flags.trust_domain = "example.org";
  EXPECT_TRUE(ParseServerConfig("server: {}\n", "server.yaml", flags).ok());
  auto missing = LoadServerConfig("/nonexistent/server.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/server.yaml"), std::string::npos);
}

TEST(ServerConfigTest, JwtIssuerMustBeAnHttpUrlWithAHost) {
  const auto issuer = [](const std::string& value) {
    return ParseServerConfig("server:\n  trust_domain: example.org\n  jwt_issuer: \"" + value + "\"\n", "server.yaml");
  };
  auto set = issuer("https://oidc.example.org");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->jwt_issuer, "https://oidc.example.org");
  EXPECT_TRUE(issuer("http://127.0.0.1:8443/issuer").ok());
  EXPECT_EQ(ParseServerConfig("server:\n  trust_domain: example.org\n", "server.yaml")->jwt_issuer, "");
  for (const char* bad : {"oidc.example.org", "ftp://oidc.example.org", "https://", "https:///path",
                          "https://oidc.example.org/?x=1", "https://oidc.example.org/#f"}) {
    auto refused = issuer(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find("server.jwt_issuer: '" + std::string(bad) + "' is not an http(s) URL"),
              std::string::npos)
        << refused.status().message();
  }
}

TEST(ServerConfigTest, OidcDiscoveryTakesSpiresProviderKeys) {
  const std::string head = "server:\n  trust_domain: example.org\n  jwt_issuer: https://oidc.example.org\n";
  auto off = ParseServerConfig(head, "server.yaml");
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_FALSE(off->oidc_discovery.enabled());

  auto on = ParseServerConfig(head + "oidc_discovery:\n  domains: [OIDC.example.org]\n  insecure_addr: ':8008'\n"
                              "  set_key_use: true\n  server_path_prefix: /instance/1\n"
                              "  serving_cert_file: {cert_file_path: /etc/c.pem, key_file_path: /etc/k.pem, addr: "
                              "'127.0.0.1:8443', file_sync_interval: 30s}\n",
                              "server.yaml");
  ASSERT_TRUE(on.ok()) << on.status().ToString();
  const OidcDiscoveryConfig& oidc = on->oidc_discovery;
  EXPECT_TRUE(oidc.enabled());
  EXPECT_EQ(oidc.domains, std::vector<std::string>{"oidc.example.org"});
  EXPECT_EQ(oidc.jwt_issuer, "https://oidc.example.org");  // the server's, unless given
  EXPECT_EQ(oidc.cert_file_path, "/etc/c.pem");
  EXPECT_EQ(oidc.file_sync_interval, std::chrono::seconds(30));
  EXPECT_TRUE(oidc.set_key_use);
  EXPECT_EQ(ParseListenAddress(oidc.insecure_addr)->first, "0.0.0.0");
  EXPECT_EQ(ParseListenAddress(oidc.serving_addr)->second, 8443);

  // What SPIRE's provider has and serverd does not is refused by name, with what to do instead.
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"  domains: [a.example]\n  acme: {email: a@b.c, tos_accepted: true}\n  insecure_addr: ':1'\n",
       "oidc_discovery.acme: ACME is not built in"},
      {"  domains: [a.example]\n  listen_socket_path: /run/oidc.sock\n", "oidc_discovery.listen_socket_path: is not supported"},
      {"  domains: [a.example]\n  insecure_addr: ':1'\n  server_api: {address: unix:///x}\n",
       "oidc_discovery.server_api: is not needed"},
      {"  domains: [a.example]\n", "oidc_discovery needs insecure_addr or serving_cert_file"},
      {"  insecure_addr: ':1'\n", "oidc_discovery.domains: must name at least one domain"},
      {"  domains: [a.example]\n  insecure_addr: 'nowhere'\n", "oidc_discovery.insecure_addr: 'nowhere' is not host:port"},
      {"  domains: [a.example]\n  serving_cert_file: {cert_file_path: /c}\n", "needs both cert_file_path and key_file_path"},
      {"  domains: [a.example]\n  serving_cert_file: {cert_file_path: /c, key_file_path: /k}\n  allow_insecure_scheme: true\n",
       "oidc_discovery.allow_insecure_scheme: only applies with insecure_addr"},
      {"  domains: [a.example]\n  insecure_addr: ':1'\n  server_path_prefix: x\n", "does not start with '/'"},
      {"  domains: [a.example]\n  insecure_addr: ':1'\n  colour: blue\n", "oidc_discovery.colour"},
      {"  domains: [a.example]\n  insecure_addr: ':1'\n  jwks_uri: https://a.example/keys#k\n",
       "oidc_discovery.jwks_uri: 'https://a.example/keys#k' is not an http(s) URL with a host"},
      {"  domains: [a.example]\n  insecure_addr: ':1'\n  jwt_issuer: https:///x\n",
       "oidc_discovery.jwt_issuer: 'https:///x' is not an http(s) URL with a host"},
  };
  for (const auto& [section, message] : refused) {
    auto config = ParseServerConfig(head + "oidc_discovery:\n" + section, "server.yaml");
    ASSERT_FALSE(config.ok()) << section;
    EXPECT_NE(config.status().message().find(message), std::string::npos) << config.status().message();
  }
}

TEST(ServerConfigTest, FederationTakesSpiresBundleEndpointAndRelationships) {
  const std::string head = "server:\n  trust_domain: example.org\n";
  auto config = ParseServerConfig(
      head + "federation:\n"
             "  bundle_endpoint: {address: 127.0.0.1, port: 8443, refresh_hint: 1m,\n"
             "                    profile: {https_web: {serving_cert_file: {cert_file_path: /c.pem, key_file_path: /k.pem}}}}\n"
             "  federates_with:\n"
             "    partner.test:\n"
             "      bundle_endpoint_url: https://partner.example:8443\n"
             "      bundle_endpoint_profile: {https_spiffe: {endpoint_spiffe_id: spiffe://partner.test/spire/server}}\n"
             "    web.test: {bundle_endpoint_url: https://web.example, bundle_endpoint_profile: https_web}\n",
      "server.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const FederationConfig& federation = config->federation;
  EXPECT_TRUE(federation.bundle_endpoint.enabled);
  EXPECT_EQ(federation.bundle_endpoint.port, 8443);
  EXPECT_EQ(federation.bundle_endpoint.refresh_hint, std::chrono::minutes(1));
  EXPECT_EQ(federation.bundle_endpoint.profile, BundleEndpointProfile::kHttpsWeb);
  EXPECT_EQ(federation.bundle_endpoint.serving_cert_file.key_file_path, "/k.pem");
  ASSERT_EQ(federation.federates_with.size(), 2u);
  EXPECT_EQ(federation.federates_with[0].trust_domain.name(), "partner.test");
  EXPECT_EQ(federation.federates_with[0].profile, BundleEndpointProfile::kHttpsSpiffe);
  EXPECT_EQ(federation.federates_with[0].endpoint_spiffe_id->str(), "spiffe://partner.test/spire/server");
  EXPECT_EQ(federation.federates_with[1].profile, BundleEndpointProfile::kHttpsWeb);
  EXPECT_FALSE(ParseServerConfig(head, "server.yaml")->federation.bundle_endpoint.enabled);

  const std::vector<std::pair<std::string, std::string>> refused = {
      {"  bundle_endpoint: {profile: https_ftp}\n", "federation.bundle_endpoint.profile: 'https_ftp' is not one of https_spiffe, https_web"},
      {"  bundle_endpoint: {profile: {https_web: {}}}\n", "https_web needs serving_cert_file"},
      {"  bundle_endpoint: {profile: {https_web: {acme: {}, serving_cert_file: {cert_file_path: /c, key_file_path: /k}}}}\n",
       "acme: ACME is not built in"},
      {"  federates_with: {p.test: {bundle_endpoint_url: http://p.example, bundle_endpoint_profile: https_web}}\n",
       "federation.federates_with.p.test.bundle_endpoint_url: 'http://p.example' is not an https URL"},
      {"  federates_with: {p.test: {bundle_endpoint_url: https://p.example}}\n", "bundle_endpoint_profile: is required"},
      {"  federates_with: {p.test: {bundle_endpoint_url: https://p.example, bundle_endpoint_profile: https_spiffe}}\n",
       "endpoint_spiffe_id: is required with https_spiffe"},
      {"  federates_with: {p.test: {bundle_endpoint_url: https://p.example, bundle_endpoint_profile: "
       "{https_spiffe: {endpoint_spiffe_id: spiffe://other.test/x}}}}\n",
       "'spiffe://other.test/x' is not in trust domain p.test"},
      {"  federates_with: {example.org: {bundle_endpoint_url: https://p.example, bundle_endpoint_profile: https_web}}\n",
       "is this server's own trust domain"},
      {"  federates_with: {p.test: {bundle_endpoint_url: https://p.example, bundle_endpoint_profile: {https_web: {}, "
       "https_spiffe: {}}}}\n",
       "names 2 choices"},
  };
  for (const auto& [section, message] : refused) {
    auto bad = ParseServerConfig(head + "federation:\n" + section, "server.yaml");
    ASSERT_FALSE(bad.ok()) << section;
    EXPECT_NE(bad.status().message().find(message), std::string::npos) << bad.status().message();
  }
}

TEST(ServerConfigTest, AuditLogIsOffUnlessEnabledAndItsPathNeedsIt) {
  const std::string head = "server:\n  trust_domain: example.org\n";
  auto off = ParseServerConfig(head, "server.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->audit_log_enabled);
  auto on = ParseServerConfig(head + "  audit_log_enabled: true\n  audit_log_path: /var/log/sigil/audit.log\n", "server.yaml");
  ASSERT_TRUE(on.ok()) << on.status().ToString();
  EXPECT_TRUE(on->audit_log_enabled);
  EXPECT_EQ(on->audit_log_path, "/var/log/sigil/audit.log");
  auto orphan = ParseServerConfig(head + "  audit_log_path: /var/log/sigil/audit.log\n", "server.yaml");
  ASSERT_FALSE(orphan.ok());
  EXPECT_NE(orphan.status().message().find("server.audit_log_path: names a file for the audit log, but audit_log_enabled is not true"),
            std::string::npos)
      << orphan.status().message();
}

}  // namespace
}  // namespace sigil::serverd
