// SPIRE's agent.conf read by agentd: the README's bare-metal agents (join token, TPM DevID)
// written as SPIRE writes them give the same AgentConfig, field by field, as the same agents in
// agentd's YAML; what agentd lacks is refused by name.
#include "agentd/spire_agent_conf.h"

#include <gtest/gtest.h>

#include "agentd/agent_config.h"
#include "core/hcl.h"
#include "tests/support/config_check.h"
#include "tests/support/config_tree.h"
#include "tests/support/process.h"

namespace sigil::agentd {
namespace {

using sigil::testing::ExpectSameListenerLimits;
using sigil::testing::TreeDifference;

void ExpectSameAgentConfig(const AgentConfig& a, const AgentConfig& b) {
  EXPECT_EQ(a.trust_domain.name(), b.trust_domain.name());
  EXPECT_EQ(a.server_addresses, b.server_addresses);
  EXPECT_EQ(a.server_port, b.server_port);
  EXPECT_EQ(a.socket_path, b.socket_path);
  EXPECT_EQ(a.data_dir, b.data_dir);
  EXPECT_EQ(a.log_level, b.log_level);
  EXPECT_EQ(a.log_format, b.log_format);
  EXPECT_EQ(a.log_file, b.log_file);
  EXPECT_EQ(a.trust_bundle_path, b.trust_bundle_path);
  EXPECT_EQ(a.insecure_bootstrap, b.insecure_bootstrap);
  EXPECT_EQ(a.join_token, b.join_token);
  EXPECT_EQ(a.workload_key_type, b.workload_key_type);
  EXPECT_EQ(a.retry.initial, b.retry.initial);
  EXPECT_EQ(a.retry.ceiling, b.retry.ceiling);
  EXPECT_EQ(a.jwt_svid_cache_max_size, b.jwt_svid_cache_max_size);
  ASSERT_EQ(a.tpm_devid.has_value(), b.tpm_devid.has_value());
  if (a.tpm_devid) {
    EXPECT_EQ(a.tpm_devid->tcti, b.tpm_devid->tcti);
    EXPECT_EQ(a.tpm_devid->devid_public_path, b.tpm_devid->devid_public_path);
    EXPECT_EQ(a.tpm_devid->devid_private_path, b.tpm_devid->devid_private_path);
    EXPECT_EQ(a.tpm_devid->devid_certificate_path, b.tpm_devid->devid_certificate_path);
    EXPECT_EQ(a.tpm_devid->devid_persistent_handle, b.tpm_devid->devid_persistent_handle);
    EXPECT_EQ(a.tpm_devid->devid_auth_file, b.tpm_devid->devid_auth_file);
    EXPECT_EQ(a.tpm_devid->endorsement_auth_file, b.tpm_devid->endorsement_auth_file);
  }
  EXPECT_EQ(a.health_checks.listener_enabled, b.health_checks.listener_enabled);
  EXPECT_EQ(a.health_checks.bind_address, b.health_checks.bind_address);
  EXPECT_EQ(a.health_checks.bind_port, b.health_checks.bind_port);
  EXPECT_EQ(a.health_checks.live_path, b.health_checks.live_path);
  EXPECT_EQ(a.health_checks.ready_path, b.health_checks.ready_path);
  EXPECT_EQ(a.telemetry.host, b.telemetry.host);
  EXPECT_EQ(a.telemetry.port, b.telemetry.port);
  ExpectSameListenerLimits(a.workload_api_limits, b.workload_api_limits);
}

// The README's join-token agent, as SPIRE's conf/agent/agent.conf writes an agent.
constexpr std::string_view kJoinTokenConf = R"(
agent {
    data_dir = "/var/lib/sigil-agent"
    log_level = "WARN"
    log_format = "json"
    log_file = "/var/log/sigil/agent.log"
    server_address = "10.0.0.5"
    server_port = "8081"
    socket_path = "/tmp/sigil-agent/public/api.sock"
    trust_bundle_path = "/etc/sigil/bundle.pem"
    trust_bundle_format = "pem"
    trust_domain = "example.org"
    join_token = "4b7a3c1e-5d5f-4f7b-9d7e-1c2d3e4f5a6b"
    workload_x509_svid_key_type = "ec-p384"
    jwt_svid_cache_max_size = 500
    retry_max_backoff = "30s"
}

plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "disk" {
        plugin_data {
            directory = "/var/lib/sigil-agent/"
        }
    }
    WorkloadAttestor "unix" {
        plugin_data {
            discover_workload_path = true
        }
    }
}

health_checks {
    listener_enabled = true
    bind_port = "8082"
}

telemetry {
    Prometheus {
        host = "127.0.0.1"
        port = 9989
    }
}
)";

constexpr std::string_view kJoinTokenYaml = R"(
agent:
  data_dir: /var/lib/sigil-agent
  log_level: WARN  # in any case, in either language
  log_format: json
  log_file: /var/log/sigil/agent.log
  server_address: 10.0.0.5
  server_port: 8081
  socket_path: /tmp/sigil-agent/public/api.sock
  trust_bundle_path: /etc/sigil/bundle.pem
  trust_domain: example.org
  join_token: 4b7a3c1e-5d5f-4f7b-9d7e-1c2d3e4f5a6b
  workload_key_type: ec-p384
  jwt_svid_cache_max_size: 500
  retry_max_backoff: 30s
health_checks:
  listener_enabled: true
  bind_port: 8082
telemetry:
  prometheus: {host: 127.0.0.1, port: 9989}
)";

// The README's TPM DevID agent, with the plugin SPIRE's docs show.
constexpr std::string_view kDevIdConf = R"(
agent {
    trust_domain = "example.org"
    server_address = "10.0.0.5"
    trust_bundle_path = "/etc/sigil/bundle.pem"
}
plugins {
    NodeAttestor "tpm_devid" {
        plugin_data {
            tpm_device_path = "/dev/tpmrm0"
            devid_cert_path = "/opt/spire/conf/agent/devid.crt.pem"
            devid_priv_path = "/opt/spire/conf/agent/devid.priv.blob"
            devid_pub_path = "/opt/spire/conf/agent/devid.pub.blob"
            devid_password = ""
            devid_auth_file = "/etc/sigil/devid.auth"
        }
    }
    KeyManager "disk" { plugin_data {} }
    WorkloadAttestor "unix" {}
}
)";

constexpr std::string_view kDevIdYaml = R"(
agent:
  trust_domain: example.org
  server_address: 10.0.0.5
  trust_bundle_path: /etc/sigil/bundle.pem
tpm_devid:
  tcti: device:/dev/tpmrm0
  devid_cert_path: /opt/spire/conf/agent/devid.crt.pem
  devid_priv_path: /opt/spire/conf/agent/devid.priv.blob
  devid_pub_path: /opt/spire/conf/agent/devid.pub.blob
  devid_auth_file: /etc/sigil/devid.auth
)";

Result<AgentConfig> FromConf(std::string_view conf) { return ParseAgentConfig(conf, "agent.conf"); }

void ExpectSameAsYaml(std::string_view conf, std::string_view yaml) {
  auto from_conf = FromConf(conf);
  ASSERT_TRUE(from_conf.ok()) << from_conf.status().ToString();
  auto from_yaml = ParseAgentConfig(yaml, "agent.yaml");
  ASSERT_TRUE(from_yaml.ok()) << from_yaml.status().ToString();
  ExpectSameAgentConfig(*from_conf, *from_yaml);
  auto hcl = ParseHcl(conf, "agent.conf");
  ASSERT_TRUE(hcl.ok());
  const spire::Translation translated = TranslateSpireAgentTree(*hcl);
  EXPECT_TRUE(translated.problems.empty());
  EXPECT_EQ(TreeDifference(translated.tree, YAML::Load(std::string(yaml))), "");
}

TEST(SpireAgentConfTest, AJoinTokenAgentAsSpireWritesItIsTheYamlOne) {
  ExpectSameAsYaml(kJoinTokenConf, kJoinTokenYaml);
  auto conf = FromConf(kJoinTokenConf);
  ASSERT_TRUE(conf.ok());
  // Not just the defaults on both sides.
  EXPECT_EQ(conf->log_level, "warn");
  EXPECT_EQ(conf->log_file, "/var/log/sigil/agent.log");
  EXPECT_EQ(conf->server_addresses, std::vector<std::string>{"10.0.0.5"});
  EXPECT_EQ(conf->workload_key_type, KeyType::kEcP384);
  EXPECT_EQ(conf->jwt_svid_cache_max_size, 500u);
  EXPECT_EQ(conf->health_checks.bind_port, 8082);
  EXPECT_EQ(conf->telemetry.port, 9989);
  EXPECT_FALSE(conf->tpm_devid.has_value());
}

TEST(SpireAgentConfTest, ATpmDevIdAgentAsSpireWritesItIsTheYamlOne) {
  ExpectSameAsYaml(kDevIdConf, kDevIdYaml);
  auto conf = FromConf(kDevIdConf);
  ASSERT_TRUE(conf.ok());
  ASSERT_TRUE(conf->tpm_devid.has_value());
  EXPECT_EQ(conf->tpm_devid->tcti, "device:/dev/tpmrm0");
  EXPECT_EQ(conf->tpm_devid->devid_private_path, "/opt/spire/conf/agent/devid.priv.blob");
}

TEST(SpireAgentConfTest, SpiresOwnSampleIsRead) {
  // conf/agent/agent.conf of SPIRE, as it is: its KeyManager's directory is its data_dir.
  auto sample = FromConf(R"(agent {
    data_dir = "./.data"
    log_level = "DEBUG"
    server_address = "127.0.0.1"
    server_port = "8081"
    socket_path ="/tmp/spire-agent/public/api.sock"
    trust_bundle_path = "./conf/agent/dummy_root_ca.crt"
    trust_domain = "example.org"
}

plugins {
    NodeAttestor "join_token" {
        plugin_data {
        }
    }
    KeyManager "disk" {
        plugin_data {
            directory = "./.data"
        }
    }
    WorkloadAttestor "unix" {
        plugin_data {
        }
    }
}
)");
  ASSERT_TRUE(sample.ok()) << sample.status().ToString();
  EXPECT_EQ(sample->data_dir, "./.data");
  EXPECT_EQ(sample->log_level, "debug");
  EXPECT_EQ(sample->socket_path, "/tmp/spire-agent/public/api.sock");
  EXPECT_EQ(sample->trust_bundle_path, "./conf/agent/dummy_root_ca.crt");
}

TEST(SpireAgentConfTest, WhatAgentdLacksIsRefusedByName) {
  auto conf = FromConf(R"(
agent {
    trust_domain = "example.org"
    trust_bundle_url = "https://bundle.example"
    trust_bundle_format = "spiffe"
    admin_socket_path = "/tmp/admin.sock"
    sds { default_svid_name = "default" }
    workload_key_type = "ec-p256"
    colour = "blue"
    data_dir = "/var/lib/agent"
}
plugins {
    NodeAttestor "join_token" {}
    NodeAttestor "tpm_devid" {
        plugin_data {
            devid_cert_path = "/d.pem"
            devid_password = "secret"
            owner_hierarchy_password = "owner"
        }
    }
    KeyManager "disk" { plugin_data { directory = "/var/lib/elsewhere" } }
    WorkloadAttestor "unix" { plugin_data { discover_workload_path = false, workload_size_limit = 1024 } }
    WorkloadAttestor "k8s" { plugin_data {} }
    SVIDStore "aws_secretsmanager" {}
}
telemetry {
    Prometheus { port = 9988, tls { use_spire_svid = true } }
    Statsd { address = "localhost:8125" }
}
tpm_devid { tcti = "device:/dev/tpmrm0" }
)");
  ASSERT_FALSE(conf.ok());
  const std::string m = conf.status().message();
  for (const char* expected : {
           "agent.trust_bundle_url: is not read: agentd takes the server's bundle from trust_bundle_path",
           "agent.trust_bundle_format: \"spiffe\" is not read: agentd reads trust_bundle_path as PEM",
           "agent.admin_socket_path: agentd has no admin API",
           "agent.sds: agentd serves the SPIFFE Workload API, not Envoy's SDS",
           "agent.workload_key_type: is agentd's YAML name; in SPIRE's format it is workload_x509_svid_key_type",
           "agent.colour: unknown key",
           "plugins.NodeAttestor: names \"join_token\", \"tpm_devid\"; give one, as SPIRE takes one NodeAttestor",
           "plugins.NodeAttestor \"tpm_devid\".plugin_data.devid_password: holds a secret in the config file; put it "
           "on the first line of a file and name that file devid_auth_file",
           "plugins.NodeAttestor \"tpm_devid\".plugin_data.owner_hierarchy_password: is not available",
           "plugins.KeyManager \"disk\".plugin_data.directory: agentd keeps its key with its SVID in data_dir "
           "(/var/lib/agent)",
           "plugins.WorkloadAttestor \"unix\".plugin_data.discover_workload_path: \"false\" cannot be had",
           "plugins.WorkloadAttestor \"unix\".plugin_data.workload_size_limit: \"1024\" is not available",
           "plugins.WorkloadAttestor \"k8s\": is not available in Sigil; its WorkloadAttestor plugins are unix",
           "plugins.SVIDStore \"aws_secretsmanager\": is not available in Sigil",
           "telemetry.Statsd: Sigil exports metrics to Prometheus only",
           "telemetry.Prometheus.tls: /metrics is served in plain HTTP",
           "tpm_devid: is agentd's YAML name; in SPIRE's format it is plugins { NodeAttestor \"tpm_devid\"",
       }) {
    EXPECT_NE(m.find(expected), std::string::npos) << expected << "\nin: " << m;
  }
  EXPECT_EQ(m.find("secret\""), std::string::npos) << "a password was repeated: " << m;
  EXPECT_EQ(m.find("owner\""), std::string::npos) << "a password was repeated: " << m;
}

TEST(SpireAgentConfTest, AgentdsChecksNameTheFilesKeys) {
  auto conf = FromConf(R"(
agent {
    trust_domain = "example.org"
    server_port = 70000
    join_token = "abc"
}
plugins {
    NodeAttestor "tpm_devid" {
        plugin_data { tpm_device_path = "/dev/tpm0", tcti = "swtpm:port=2321" }
    }
    KeyManager "memory" {}
}
)");
  ASSERT_FALSE(conf.ok());
  const std::string m = conf.status().message();
  for (const char* expected : {
           "agent.server_port: 70000 is outside 1..65535",
           "agent.trust_bundle_path: is required unless insecure_bootstrap is true",
           "agent.join_token: cannot be used together with tpm_devid attestation",
           "plugins.NodeAttestor \"tpm_devid\".plugin_data.tcti: sets what "
           "plugins.NodeAttestor \"tpm_devid\".plugin_data.tpm_device_path already set",
           "plugins.KeyManager \"memory\": would lose the agent's key at every restart",
       }) {
    EXPECT_NE(m.find(expected), std::string::npos) << expected << "\nin: " << m;
  }
}

TEST(SpireAgentConfTest, TheFlagsWinOverTheFile) {
  AgentFlagOverrides flags;
  flags.log_level = "ERROR";
  flags.join_token = "from-the-flag";
  auto conf = ParseAgentConfig(
      "agent {\n  trust_domain = \"example.org\"\n  insecure_bootstrap = true\n  log_level = \"DEBUG\"\n"
      "  join_token = \"from-the-file\"\n}\n",
      "agent.conf", flags);
  ASSERT_TRUE(conf.ok()) << conf.status().ToString();
  EXPECT_EQ(conf->log_level, "error");
  EXPECT_EQ(conf->join_token, "from-the-flag");
}

TEST(SpireAgentConfTest, JoinTokenFileIsReadAsSpireReadsIt) {
  sigil::testing::TempDir dir;
  sigil::testing::WriteFile(dir / "token", "4b7a3c1e-token\n");
  auto conf = ParseAgentConfig("agent {\n  trust_domain = \"example.org\"\n  insecure_bootstrap = true\n"
                               "  join_token_file = \"" + (dir / "token").string() + "\"\n}\n",
                               "agent.conf");
  ASSERT_TRUE(conf.ok()) << conf.status().ToString();
  EXPECT_EQ(conf->join_token, "4b7a3c1e-token");
  auto both = ParseAgentConfig("agent {\n  trust_domain = \"example.org\"\n  insecure_bootstrap = true\n"
                               "  join_token = \"t\"\n  join_token_file = \"" + (dir / "token").string() + "\"\n}\n",
                               "agent.conf");
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("agent.join_token_file: cannot be given together with join_token"),
            std::string::npos)
      << both.status().message();
}

}  // namespace
}  // namespace sigil::agentd
