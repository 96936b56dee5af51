#include "agentd/agent_config.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/support/config_check.h"
#include "tests/support/process.h"

namespace sigil::agentd {
namespace {

TEST(AgentConfigTest, DefaultsAreSpires) {
  auto config = ParseAgentConfig("agent:\n  trust_domain: example.org\n  trust_bundle_path: /etc/sigil/bundle.pem\n",
                                 "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->trust_domain.name(), "example.org");
  EXPECT_EQ(config->server_addresses, std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(config->server_port, 8081);
  EXPECT_EQ(config->socket_path, "/tmp/sigil-agent/public/api.sock");
  EXPECT_EQ(config->data_dir, "/var/lib/sigil-agent");
  EXPECT_EQ(config->workload_key_type, KeyType::kEcP256);
  EXPECT_FALSE(config->insecure_bootstrap);
  EXPECT_FALSE(config->health_checks.listener_enabled);
  EXPECT_EQ(config->retry.initial, std::chrono::seconds(1));
  EXPECT_EQ(config->retry.ceiling, std::chrono::seconds(60));
}

TEST(AgentConfigTest, ServerAddressIsOneOrAListOfReplicas) {
  auto listed = ParseAgentConfig("agent:\n  trust_domain: example.org\n  trust_bundle_path: /b.pem\n"
                                 "  server_address: [10.0.0.1, servers.example.org, 10.0.0.2:9091]\n",
                                 "agent.yaml");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(listed->server_addresses, (std::vector<std::string>{"10.0.0.1", "servers.example.org", "10.0.0.2:9091"}));
  EXPECT_EQ(ServerEndpoint("10.0.0.2:9091", 8081)->port, 9091);
  EXPECT_EQ(ServerEndpoint("servers.example.org", 8081)->port, 8081);
  EXPECT_EQ(ServerEndpoint("::1", 8081)->host, "::1");
  EXPECT_EQ(ServerEndpoint("10.0.0.2:0", 8081).status().code(), Code::kInvalidArgument);
  auto empty = ParseAgentConfig("agent:\n  trust_domain: example.org\n  trust_bundle_path: /b.pem\n"
                                "  server_address: []\n",
                                "agent.yaml");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("agent.server_address: must be one address or a list"), std::string::npos)
      << empty.status().ToString();
}

TEST(AgentConfigTest, RetryBackOffIsSetInSecondsAndChecked) {
  auto config = ParseAgentConfig(
      "agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n"
      "  retry_initial_backoff: 2s\n  retry_max_backoff: 5m\n",
      "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->retry.initial, std::chrono::seconds(2));
  EXPECT_EQ(config->retry.ceiling, std::chrono::minutes(5));

  auto inverted = ParseAgentConfig(
      "agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n"
      "  retry_initial_backoff: 10s\n  retry_max_backoff: 5s\n",
      "agent.yaml");
  EXPECT_NE(inverted.status().message().find("agent.retry_max_backoff: must not be shorter than retry_initial_backoff"),
            std::string::npos)
      << inverted.status().ToString();
  auto too_long = ParseAgentConfig(
      "agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n  retry_max_backoff: 2h\n", "agent.yaml");
  EXPECT_NE(too_long.status().message().find("agent.retry_max_backoff: must be at most 1h"), std::string::npos)
      << too_long.status().ToString();
  auto zero = ParseAgentConfig(
      "agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n  retry_initial_backoff: 0s\n", "agent.yaml");
  EXPECT_NE(zero.status().message().find("agent.retry_initial_backoff"), std::string::npos) << zero.status().ToString();
}

TEST(AgentConfigTest, JwtSvidCacheMaxSizeIsReadAndBounded) {
  auto defaults = ParseAgentConfig("agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n", "agent.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(defaults->jwt_svid_cache_max_size, 1000u);
  auto set = ParseAgentConfig(
      "agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n  jwt_svid_cache_max_size: 50\n",
      "agent.yaml");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->jwt_svid_cache_max_size, 50u);
  sigil::testing::ExpectEachValueRefusedNamingKey(
      [](const std::string& yaml) { return ParseAgentConfig(yaml, "agent.yaml").status(); },
      "agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n  jwt_svid_cache_max_size: ",
      {"0", "1000001", "-1", "many"}, "agent.jwt_svid_cache_max_size");
}

TEST(AgentConfigTest, FlagsOverrideTheFile) {
  AgentFlagOverrides flags;
  flags.join_token = "abc";
  flags.server_port = 9081;
  flags.socket_path = "/run/sigil/api.sock";
  auto config = ParseAgentConfig(
      "agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n  join_token: old\n  server_port: 1\n",
      "agent.yaml", flags);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->join_token, "abc");
  EXPECT_EQ(config->server_port, 9081);
  EXPECT_EQ(config->socket_path, "/run/sigil/api.sock");
  EXPECT_TRUE(config->insecure_bootstrap);
}

TEST(AgentConfigTest, WorkloadApiLimitsAreRead) {
  auto config = ParseAgentConfig("agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n"
                                 "workload_api_limits:\n  max_connections_per_source: 16\n  idle_timeout: 1m\n",
                                 "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->workload_api_limits.max_connections_per_source, 16u);
  EXPECT_EQ(config->workload_api_limits.idle_timeout, std::chrono::milliseconds(60'000));
  auto bad = ParseAgentConfig("agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n"
                              "workload_api_limits:\n  max_request_bytes: 10\n",
                              "agent.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("workload_api_limits.max_request_bytes: 10"), std::string::npos)
      << bad.status().message();
}

TEST(AgentConfigTest, EveryBadValueIsNamed) {
  auto config = ParseAgentConfig(R"(
agent:
  trust_domain: "spiffe://"
  server_port: 0
  socket_path: api.sock
  workload_key_type: dsa
  insecure_bootstrap: true
  trust_bundle_path: /b.pem
  sync_interval: 5s
health_checks:
  ready_path: ready
)", "agent.yaml");
  ASSERT_FALSE(config.ok());
  const std::string m = config.status().message();
  for (const char* expected :
       {"agent.trust_domain:", "agent.server_port: 0 is outside 1..65535", "agent.socket_path: must be an absolute",
        "agent.workload_key_type: 'dsa'", "agent.insecure_bootstrap: cannot be true while trust_bundle_path",
        "agent.sync_interval: unknown key", "health_checks.ready_path: must start with '/'"}) {
    EXPECT_NE(m.find(expected), std::string::npos) << "missing '" << expected << "' in: " << m;
  }
  auto no_bundle = ParseAgentConfig("agent: {trust_domain: example.org}\n", "agent.yaml");
  EXPECT_NE(no_bundle.status().message().find("trust_bundle_path: is required unless insecure_bootstrap"),
            std::string::npos);
}

TEST(AgentConfigTest, LogFileFormatAndTrustBundleFlagsOverrideTheFile) {
  AgentFlagOverrides flags;
  flags.log_file = "/var/log/sigil/agent.log";
  flags.log_format = "JSON";
  flags.trust_bundle_path = "/etc/sigil/flag-bundle.pem";
  const std::string yaml =
      "agent:\n  trust_domain: example.org\n  trust_bundle_path: /etc/sigil/bundle.pem\n"
      "  log_file: /tmp/agent.log\n  log_format: text\n";
  auto from_file = ParseAgentConfig(yaml, "agent.yaml");
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  EXPECT_EQ(from_file->log_file, "/tmp/agent.log");
  EXPECT_EQ(from_file->trust_bundle_path, "/etc/sigil/bundle.pem");
  auto config = ParseAgentConfig(yaml, "agent.yaml", flags);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->log_file, "/var/log/sigil/agent.log");
  EXPECT_EQ(config->log_format, "json");
  EXPECT_EQ(config->trust_bundle_path, "/etc/sigil/flag-bundle.pem");
}

TEST(AgentConfigTest, JoinTokenFileHoldsTheTokenAndIsNotTakenWithAToken) {
  sigil::testing::TempDir dir;
  const auto token_file = dir / "token";
  sigil::testing::WriteFile(token_file, "\n  f00d-token \n");
  const std::string base = "agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n";

  auto from_file = ParseAgentConfig(base + "  join_token_file: " + token_file.string() + "\n", "agent.yaml");
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  EXPECT_EQ(from_file->join_token, "f00d-token");
  AgentFlagOverrides flags;
  flags.join_token_file = token_file.string();
  auto from_flag = ParseAgentConfig(base, "agent.yaml", flags);
  ASSERT_TRUE(from_flag.ok()) << from_flag.status().ToString();
  EXPECT_EQ(from_flag->join_token, "f00d-token");

  auto both = ParseAgentConfig(base + "  join_token: abc\n", "agent.yaml", flags);
  EXPECT_NE(both.status().message().find("agent.join_token_file: cannot be given together with join_token"),
            std::string::npos)
      << both.status().ToString();
  auto missing = ParseAgentConfig(base + "  join_token_file: " + (dir / "nope").string() + "\n", "agent.yaml");
  EXPECT_NE(missing.status().message().find("agent.join_token_file: join token file " + (dir / "nope").string() +
                                            " does not exist"),
            std::string::npos)
      << missing.status().ToString();
  sigil::testing::WriteFile(dir / "empty", " \n");
  auto empty = ParseAgentConfig(base + "  join_token_file: " + (dir / "empty").string() + "\n", "agent.yaml");
  EXPECT_NE(empty.status().message().find("is empty"), std::string::npos) << empty.status().ToString();
}

TEST(AgentConfigTest, ExpandEnvFillsTheFileBeforeItIsRead) {
  sigil::testing::TempDir dir;
  const auto path = dir / "agent.yaml";
  sigil::testing::WriteFile(path,
                            "agent:\n  trust_domain: ${SIGIL_CONFIG_TEST_TD}\n  insecure_bootstrap: true\n"
                            "  server_port: $SIGIL_CONFIG_TEST_PORT\n");
  ::setenv("SIGIL_CONFIG_TEST_TD", "example.org", 1);
  ::setenv("SIGIL_CONFIG_TEST_PORT", "9443", 1);
  AgentFlagOverrides flags;
  flags.expand_env = true;
  auto expanded = LoadAgentConfig(path, flags);
  ASSERT_TRUE(expanded.ok()) << expanded.status().ToString();
  EXPECT_EQ(expanded->trust_domain.name(), "example.org");
  EXPECT_EQ(expanded->server_port, 9443);
  // Without the flag the text is read as written.
  auto literal = LoadAgentConfig(path);
  ASSERT_FALSE(literal.ok());
  EXPECT_NE(literal.status().message().find("agent.trust_domain"), std::string::npos) << literal.status().ToString();
  ::unsetenv("SIGIL_CONFIG_TEST_TD");
  ::unsetenv("SIGIL_CONFIG_TEST_PORT");
}

// As serverd's: off unless a port is given, on loopback unless a host is.
TEST(AgentConfigTest, TelemetryIsReadAsServerdsIs) {
  const std::string agent = "agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n";
  auto defaults = ParseAgentConfig(agent, "agent.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_FALSE(defaults->telemetry.enabled());
  EXPECT_EQ(defaults->telemetry.host, "127.0.0.1");
  auto set = ParseAgentConfig(agent + "telemetry:\n  prometheus: {host: 0.0.0.0, port: 9988}\n", "agent.yaml");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->telemetry.host, "0.0.0.0");
  EXPECT_EQ(set->telemetry.port, 9988);
  auto bad = ParseAgentConfig(agent + "telemetry:\n  prometheus: {host: '', port: 70000, tls: {}}\n  statsd: {}\n",
                              "agent.yaml");
  ASSERT_FALSE(bad.ok());
  const std::string m = bad.status().message();
  for (const char* expected : {"telemetry.prometheus.port: 70000 is outside 0..65535",
                               "telemetry.prometheus.host: must not be empty", "telemetry.prometheus.tls: unknown key",
                               "telemetry.statsd: unknown key"}) {
    EXPECT_NE(m.find(expected), std::string::npos) << "missing '" << expected << "' in: " << m;
  }
}

}  // namespace
}  // namespace sigil::agentd
