// SPIRE's server.conf read by serverd: the README's bare-metal set-up written as SPIRE writes it
// gives the same ServerConfig, field by field, as the same set-up in serverd's YAML; what serverd
// lacks is refused by name.
#include "serverd/spire_server_conf.h"

#include <gtest/gtest.h>

#include "core/hcl.h"
#include "serverd/server_config.h"
#include "tests/support/config_check.h"
#include "tests/support/config_tree.h"

namespace sigil::serverd {
namespace {

using sigil::testing::ExpectSameListenerLimits;
using sigil::testing::TreeDifference;

void ExpectSameServerConfig(const ServerConfig& a, const ServerConfig& b) {
  EXPECT_EQ(a.trust_domain.name(), b.trust_domain.name());
  EXPECT_EQ(a.bind_address, b.bind_address);
  EXPECT_EQ(a.bind_port, b.bind_port);
  EXPECT_EQ(a.socket_path, b.socket_path);
  EXPECT_EQ(a.admin_uids, b.admin_uids);
  EXPECT_EQ(a.data_dir, b.data_dir);
  EXPECT_EQ(a.log_level, b.log_level);
  EXPECT_EQ(a.log_format, b.log_format);
  EXPECT_EQ(a.log_file, b.log_file);
  EXPECT_EQ(a.default_x509_svid_ttl, b.default_x509_svid_ttl);
  EXPECT_EQ(a.default_jwt_svid_ttl, b.default_jwt_svid_ttl);
  EXPECT_EQ(a.ca_ttl, b.ca_ttl);
  EXPECT_EQ(a.ca_key_type, b.ca_key_type);
  EXPECT_EQ(a.ca_subject.country, b.ca_subject.country);
  EXPECT_EQ(a.ca_subject.organization, b.ca_subject.organization);
  EXPECT_EQ(a.ca_subject.common_name, b.ca_subject.common_name);
  EXPECT_EQ(a.ca_mode, b.ca_mode);
  EXPECT_EQ(a.delegated_ca_ttl, b.delegated_ca_ttl);
  EXPECT_EQ(a.jwt_issuer, b.jwt_issuer);
  EXPECT_EQ(a.agent_ttl, b.agent_ttl);
  EXPECT_EQ(a.signing_workers, b.signing_workers);
  EXPECT_EQ(a.signing_max_batch, b.signing_max_batch);
  EXPECT_EQ(a.signing_max_wait_us, b.signing_max_wait_us);
  EXPECT_EQ(a.signing_queue_capacity, b.signing_queue_capacity);
  ASSERT_EQ(a.node_attestors.size(), b.node_attestors.size());
  for (size_t i = 0; i < a.node_attestors.size(); ++i) EXPECT_EQ(a.node_attestors[i].name, b.node_attestors[i].name);
  EXPECT_EQ(a.key_store.kind, b.key_store.kind);
  EXPECT_EQ(a.key_store.key_dir, b.key_store.key_dir);
  EXPECT_EQ(a.key_store.module_path, b.key_store.module_path);
  EXPECT_EQ(a.key_store.token_label, b.key_store.token_label);
  EXPECT_EQ(a.key_store.token_serial, b.key_store.token_serial);
  EXPECT_EQ(a.key_store.pin_file, b.key_store.pin_file);
  EXPECT_EQ(a.key_store.pin_env, b.key_store.pin_env);
  EXPECT_EQ(a.key_store.tcti, b.key_store.tcti);
  EXPECT_EQ(a.key_store.data_dir, b.key_store.data_dir);
  EXPECT_EQ(a.key_store.auth_file, b.key_store.auth_file);
  EXPECT_EQ(a.sqlite_path, b.sqlite_path);
  EXPECT_EQ(a.health_checks.listener_enabled, b.health_checks.listener_enabled);
  EXPECT_EQ(a.health_checks.bind_address, b.health_checks.bind_address);
  EXPECT_EQ(a.health_checks.bind_port, b.health_checks.bind_port);
  EXPECT_EQ(a.health_checks.live_path, b.health_checks.live_path);
  EXPECT_EQ(a.health_checks.ready_path, b.health_checks.ready_path);
  ExpectSameListenerLimits(a.agent_api_limits, b.agent_api_limits);
  EXPECT_EQ(a.max_csr_batch_items, b.max_csr_batch_items);
  EXPECT_EQ(a.attestations_per_ip.per_second, b.attestations_per_ip.per_second);
  EXPECT_EQ(a.attestations_per_ip.burst, b.attestations_per_ip.burst);
  EXPECT_EQ(a.svids_per_agent.per_second, b.svids_per_agent.per_second);
  EXPECT_EQ(a.svids_per_agent.burst, b.svids_per_agent.burst);
  EXPECT_EQ(a.telemetry.host, b.telemetry.host);
  EXPECT_EQ(a.telemetry.port, b.telemetry.port);
  EXPECT_EQ(a.oidc_discovery.enabled(), b.oidc_discovery.enabled());
  EXPECT_EQ(a.federation.bundle_endpoint.enabled, b.federation.bundle_endpoint.enabled);
  EXPECT_EQ(a.federation.bundle_endpoint.address, b.federation.bundle_endpoint.address);
  EXPECT_EQ(a.federation.bundle_endpoint.port, b.federation.bundle_endpoint.port);
  EXPECT_EQ(a.federation.bundle_endpoint.refresh_hint, b.federation.bundle_endpoint.refresh_hint);
  EXPECT_EQ(a.federation.bundle_endpoint.profile, b.federation.bundle_endpoint.profile);
  ASSERT_EQ(a.federation.federates_with.size(), b.federation.federates_with.size());
  for (size_t i = 0; i < a.federation.federates_with.size(); ++i) {
    const FederationRelationship& x = a.federation.federates_with[i];
    const FederationRelationship& y = b.federation.federates_with[i];
    EXPECT_EQ(x.trust_domain.name(), y.trust_domain.name());
    EXPECT_EQ(x.bundle_endpoint_url, y.bundle_endpoint_url);
    EXPECT_EQ(x.profile, y.profile);
    EXPECT_EQ(x.endpoint_spiffe_id.has_value(), y.endpoint_spiffe_id.has_value());
    if (x.endpoint_spiffe_id && y.endpoint_spiffe_id) {
      EXPECT_EQ(x.endpoint_spiffe_id->str(), y.endpoint_spiffe_id->str());
    }
  }
}

// The README's bare-metal server: CA key in a PKCS#11 token, SQLite, join tokens and TPM DevIDs,
// health checks and Prometheus, a federation partner; as SPIRE writes it (uppercase log level,
// quoted port, the CA subject's lists).
constexpr std::string_view kBareMetalConf = R"(
server {
    bind_address = "0.0.0.0"
    bind_port = "8081"
    trust_domain = "example.org"
    data_dir = "/var/lib/sigil/server"
    socket_path = "/tmp/sigil-server/private/api.sock"
    log_level = "DEBUG"
    log_format = "json"
    log_file = "/var/log/sigil/server.log"
    ca_ttl = "24h"
    ca_key_type = "ec-p384"
    ca_subject {
        country = ["DE"]
        organization = ["Example"]
        common_name = "Example CA"
    }
    default_x509_svid_ttl = "1h"
    default_jwt_svid_ttl = "5m"
    agent_ttl = "30m"
    jwt_issuer = "https://oidc.example.org"
    ca_mode = "delegated"

    federation {
        bundle_endpoint {
            address = "0.0.0.0"
            port = 8443
            refresh_hint = "5m"
        }
        federates_with "partner.test" {
            bundle_endpoint_url = "https://partner.example:8443"
            bundle_endpoint_profile "https_spiffe" {
                endpoint_spiffe_id = "spiffe://partner.test/spire/server"
            }
        }
    }
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "/var/lib/sigil/server/datastore.sqlite3"
        }
    }
    KeyManager "pkcs11" {
        plugin_data {
            module_path = "/usr/lib/softhsm/libsofthsm2.so"
            token_label = "sigil-ca"
            pin_file = "/etc/sigil/token.pin"
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
    NodeAttestor "tpm_devid" {
        plugin_data {
            devid_ca_path = "/etc/sigil/devid-ca.crt"
            endorsement_ca_path = "/etc/sigil/tpm-vendor-ca.pem"
        }
    }
}

health_checks {
    listener_enabled = true
    bind_address = "127.0.0.1"
    bind_port = "8080"
    live_path = "/live"
    ready_path = "/ready"
}

telemetry {
    Prometheus {
        host = "127.0.0.1"
        port = 9988
    }
}
)";

constexpr std::string_view kBareMetalYaml = R"(
server:
  bind_address: 0.0.0.0
  bind_port: 8081
  trust_domain: example.org
  data_dir: /var/lib/sigil/server
  socket_path: /tmp/sigil-server/private/api.sock
  log_level: DEBUG  # in any case, in either language
  log_format: json
  log_file: /var/log/sigil/server.log
  ca_ttl: 24h
  ca_key_type: ec-p384
  ca_subject: {country: DE, organization: Example, common_name: Example CA}
  default_x509_svid_ttl: 1h
  default_jwt_svid_ttl: 5m
  agent_ttl: 30m
  jwt_issuer: https://oidc.example.org
  ca_mode: delegated
federation:
  bundle_endpoint: {address: 0.0.0.0, port: 8443, refresh_hint: 5m}
  federates_with:
    partner.test:
      bundle_endpoint_url: https://partner.example:8443
      bundle_endpoint_profile: {https_spiffe: {endpoint_spiffe_id: spiffe://partner.test/spire/server}}
datastore:
  sqlite_path: /var/lib/sigil/server/datastore.sqlite3
key_store:
  kind: pkcs11
  module_path: /usr/lib/softhsm/libsofthsm2.so
  token_label: sigil-ca
  pin_file: /etc/sigil/token.pin
node_attestors:
  join_token: {}
  tpm_devid:
    devid_ca_path: /etc/sigil/devid-ca.crt
    endorsement_ca_path: /etc/sigil/tpm-vendor-ca.pem
health_checks:
  listener_enabled: true
  bind_address: 127.0.0.1
  bind_port: 8080
  live_path: /live
  ready_path: /ready
telemetry:
  prometheus: {host: 127.0.0.1, port: 9988}
)";

Result<ServerConfig> FromConf(std::string_view conf) { return ParseServerConfig(conf, "server.conf"); }

TEST(SpireServerConfTest, TheBareMetalSetUpAsSpireWritesItIsTheYamlOne) {
  auto from_conf = FromConf(kBareMetalConf);
  ASSERT_TRUE(from_conf.ok()) << from_conf.status().ToString();
  auto from_yaml = ParseServerConfig(kBareMetalYaml, "server.yaml");
  ASSERT_TRUE(from_yaml.ok()) << from_yaml.status().ToString();
  ExpectSameServerConfig(*from_conf, *from_yaml);
  // Not just the defaults on both sides: the file's own values arrived.
  EXPECT_EQ(from_conf->log_level, "debug");
  EXPECT_EQ(from_conf->ca_subject.country, "DE");
  EXPECT_EQ(from_conf->ca_mode, CaMode::kDelegated);
  EXPECT_EQ(from_conf->key_store.kind, hw::KeyStoreKind::kPkcs11);
  ASSERT_EQ(from_conf->node_attestors.size(), 2u);
  EXPECT_EQ(from_conf->telemetry.port, 9988);
  ASSERT_EQ(from_conf->federation.federates_with.size(), 1u);

  // The node attestors' own sections (held inside closures in ServerConfig) are the same tree.
  auto hcl = ParseHcl(kBareMetalConf, "server.conf");
  ASSERT_TRUE(hcl.ok());
  const spire::Translation translated = TranslateSpireServerTree(*hcl);
  EXPECT_TRUE(translated.problems.empty());
  EXPECT_EQ(TreeDifference(translated.tree, YAML::Load(std::string(kBareMetalYaml))), "");
}

TEST(SpireServerConfTest, DiskKeysLiveInAFolderNamedAfterSpiresKeysFile) {
  auto conf = FromConf(R"(
server { trust_domain = "example.org" }
plugins {
    KeyManager "disk" { plugin_data { keys_path = "/var/lib/spire/server/keys.json" } }
    NodeAttestor "join_token" { plugin_data {} }
}
)");
  ASSERT_TRUE(conf.ok()) << conf.status().ToString();
  auto yaml = ParseServerConfig(
      "server: {trust_domain: example.org}\nkey_store: {kind: soft, key_dir: /var/lib/spire/server/keys}\n",
      "server.yaml");
  ASSERT_TRUE(yaml.ok()) << yaml.status().ToString();
  ExpectSameServerConfig(*conf, *yaml);
  EXPECT_EQ(conf->key_store.key_dir, "/var/lib/spire/server/keys");
}

TEST(SpireServerConfTest, TheNodeAttestorsOnAreThoseThePluginsName) {
  auto devid_only = FromConf(R"(
server { trust_domain = "example.org" }
plugins {
    NodeAttestor "tpm_devid" { plugin_data { devid_ca_path = "/ca.pem", allow_ek_without_certificate = true } }
}
)");
  ASSERT_TRUE(devid_only.ok()) << devid_only.status().ToString();
  ASSERT_EQ(devid_only->node_attestors.size(), 1u);
  EXPECT_EQ(devid_only->node_attestors[0].name, "tpm_devid");
  auto none = FromConf("server { trust_domain = \"example.org\" }\n");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->node_attestors.empty()) << "SPIRE's server runs no node attestor its plugins do not name";
  auto disabled = FromConf(R"(
server { trust_domain = "example.org" }
plugins { NodeAttestor "join_token" { enabled = false } }
)");
  ASSERT_TRUE(disabled.ok()) << disabled.status().ToString();
  EXPECT_TRUE(disabled->node_attestors.empty());
}

// conf/server/server.conf of SPIRE, as it is.
constexpr std::string_view kSpireSample = R"(server {
    bind_address = "127.0.0.1"
    bind_port = "8081"
    socket_path = "/tmp/spire-server/private/api.sock"
    trust_domain = "example.org"
    data_dir = "./.data"
    log_level = "DEBUG"
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "./.data/datastore.sqlite3"
        }
    }

    NodeAttestor "join_token" {
        plugin_data {
        }
    }

    KeyManager "memory" {
        plugin_data = {}
    }

    UpstreamAuthority "disk" {
        plugin_data {
            key_file_path = "./conf/server/dummy_upstream_ca.key"
            cert_file_path = "./conf/server/dummy_upstream_ca.crt"
        }
    }
}
)";

TEST(SpireServerConfTest, SpiresOwnSampleIsRefusedForWhatServerdLacksAlone) {
  auto sample = FromConf(kSpireSample);
  ASSERT_FALSE(sample.ok());
  const std::string m = sample.status().message();
  EXPECT_EQ(m.rfind("server.conf: ", 0), 0u) << m;
  EXPECT_NE(m.find("plugins.KeyManager \"memory\": would lose the CA key at every restart"), std::string::npos) << m;
  EXPECT_NE(m.find("use KeyManager \"disk\""), std::string::npos) << m;
  EXPECT_NE(m.find("plugins.UpstreamAuthority \"disk\": is not supported"), std::string::npos) << m;
  auto hcl = ParseHcl(kSpireSample, "server.conf");
  ASSERT_TRUE(hcl.ok());
  EXPECT_EQ(TranslateSpireServerTree(*hcl).problems.size(), 2u) << m;

  // With those two blocks as serverd has them, the rest of the sample is read as SPIRE reads it.
  std::string fixed(kSpireSample);
  const std::string memory = "KeyManager \"memory\"";
  fixed.replace(fixed.find(memory), memory.size(), "KeyManager \"disk\"");
  fixed.erase(fixed.find("    UpstreamAuthority"), fixed.rfind("}\n}") - fixed.find("    UpstreamAuthority") + 2);
  auto read = FromConf(fixed);
  ASSERT_TRUE(read.ok()) << read.status().ToString() << "\n" << fixed;
  EXPECT_EQ(read->bind_address, "127.0.0.1");
  EXPECT_EQ(read->bind_port, 8081);
  EXPECT_EQ(read->socket_path, "/tmp/spire-server/private/api.sock");
  EXPECT_EQ(read->data_dir, "./.data");
  EXPECT_EQ(read->log_level, "debug");
  EXPECT_EQ(read->sqlite_path, "./.data/datastore.sqlite3");
  EXPECT_EQ(read->key_store.kind, hw::KeyStoreKind::kSoft);
  EXPECT_EQ(read->key_store.key_dir, "./.data/keys");
  ASSERT_EQ(read->node_attestors.size(), 1u);
  EXPECT_EQ(read->node_attestors[0].name, "join_token");
}

TEST(SpireServerConfTest, TheAuditLogIsSpiresKey) {
  auto conf = FromConf("server {\n  trust_domain = \"example.org\"\n  audit_log_enabled = true\n"
                       "  audit_log_path = \"/var/log/sigil/audit.log\"\n}\n");
  ASSERT_TRUE(conf.ok()) << conf.status().ToString();
  EXPECT_TRUE(conf->audit_log_enabled);
  EXPECT_EQ(conf->audit_log_path, "/var/log/sigil/audit.log");
}

// SPIRE's shared-database set-up: DataStore "sql" with database_type "postgres".
TEST(SpireServerConfTest, APostgresDataStoreIsServerdsPostgresDatastore) {
  auto conf = FromConf(R"(
server { trust_domain = "example.org" }
plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "postgres"
            connection_string = "host=/run/postgresql dbname=spire user=spire"
            max_open_conns = 12
        }
    }
    KeyManager "disk" { plugin_data { keys_path = "/var/lib/sigil/keys.json" } }
    NodeAttestor "join_token" { plugin_data {} }
}
)");
  ASSERT_TRUE(conf.ok()) << conf.status().ToString();
  EXPECT_EQ(conf->datastore_kind, DatastoreKind::kPostgres);
  EXPECT_EQ(conf->postgres_connection_string, "host=/run/postgresql dbname=spire user=spire");
  EXPECT_EQ(conf->postgres_max_connections, 12);
}

TEST(SpireServerConfTest, WhatServerdLacksIsRefusedByName) {
  auto conf = FromConf(R"(
server {
    trust_domain = "example.org"
    admin_ids = ["spiffe://example.org/admin"]
    ratelimit { attestation = false }
    jwt_key_type = "rsa-2048"
    colour = "blue"
    ca_subject { organization = ["A", "B"], locality = ["Berlin"] }
}
plugins {
    DataStore "sql" {
        plugin_data { database_type = "mysql", connection_string = "spire@tcp(db)/spire", max_idle_conns = 10 }
    }
    KeyManager "aws_kms" { plugin_data { region = "us-east-2" } }
    NodeAttestor "x509pop" { plugin_data {} }
    NodeAttestor "join_token" { plugin_cmd = "/opt/join_token" }
    BundlePublisher "aws_s3" {}
}
telemetry {
    Statsd = [{ address = "localhost:8125" }]
    Prometheus { port = 9988, tls { use_spire_svid = true } }
}
key_store { kind = "soft" }
)");
  ASSERT_FALSE(conf.ok());
  const std::string m = conf.status().message();
  for (const char* expected : {
           "server.admin_ids: serverd's admin API is its Unix socket",
           "server.ratelimit: serverd's rates are set in agent_api_limits",
           "server.jwt_key_type: serverd signs JWT-SVIDs with a key of ca_key_type",
           "server.colour: unknown key",
           "server.ca_subject.organization: lists 2 values, and Sigil takes one",
           "server.ca_subject.locality: unknown key",
           "plugins.DataStore \"sql\".plugin_data.database_type: \"mysql\" is not available; serverd's datastores "
           "are \"sqlite3\" and \"postgres\"",
           "plugins.DataStore \"sql\".plugin_data.max_idle_conns: is SPIRE's, and serverd has no such setting",
           "plugins.KeyManager \"aws_kms\": is not available in Sigil; its KeyManager plugins are disk, pkcs11, tpm",
           "plugins.NodeAttestor \"x509pop\": is not available in Sigil; its NodeAttestor plugins are join_token, "
           "tpm_devid",
           "plugins.NodeAttestor \"join_token\".plugin_cmd: Sigil runs no external plugins",
           "plugins.BundlePublisher \"aws_s3\": is not available in Sigil",
           "telemetry.Statsd: Sigil exports metrics to Prometheus only",
           "telemetry.Prometheus.tls: /metrics is served in plain HTTP",
           "key_store: in SPIRE's format the CA key's store is plugins { KeyManager",
       }) {
    EXPECT_NE(m.find(expected), std::string::npos) << expected << "\nin: " << m;
  }
}

TEST(SpireServerConfTest, ServerdsChecksNameTheFilesKeys) {
  auto conf = FromConf(R"(
server {
    trust_domain = "example.org"
    ca_ttl = "1 day"
    federation {
        federates_with "partner.test" { bundle_endpoint_url = "http://partner.example" }
    }
}
plugins {
    DataStore "sql" { plugin_data { database_type = "sqlite3" } }
    KeyManager "pkcs11" { plugin_data { module_path = "/m.so", token_label = "t", pin = "1234" } }
    NodeAttestor "tpm_devid" { plugin_data { endorsement_ca_path = "/ek.pem" } }
}
health_checks { live_path = "live" }
)");
  ASSERT_FALSE(conf.ok());
  const std::string m = conf.status().message();
  for (const char* expected : {
           "server.ca_ttl: '1 day' is not a duration",
           "server.federation.federates_with.partner.test",
           "plugins.KeyManager \"pkcs11\".plugin_data.pin: a PIN in the config file ends up in backups",
           "plugins.NodeAttestor \"tpm_devid\".plugin_data.devid_ca_path: is required for tpm_devid attestation",
           "health_checks.live_path: must start with '/'",
       }) {
    EXPECT_NE(m.find(expected), std::string::npos) << expected << "\nin: " << m;
  }
  EXPECT_EQ(m.find("node_attestors."), std::string::npos) << "Sigil's YAML path where the file has its own: " << m;
  EXPECT_EQ(m.find("key_store."), std::string::npos) << m;
}

TEST(SpireServerConfTest, TheLogLevelFlagWinsOverTheFile) {
  ServerFlagOverrides flags;
  flags.log_level = "WARN";
  auto conf = ParseServerConfig("server {\n  trust_domain = \"example.org\"\n  log_level = \"DEBUG\"\n}\n",
                                "server.conf", flags);
  ASSERT_TRUE(conf.ok()) << conf.status().ToString();
  EXPECT_EQ(conf->log_level, "warn");
}

}  // namespace
}  // namespace sigil::serverd
