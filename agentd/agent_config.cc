#include "agentd/agent_config.h"

#include <algorithm>
#include <cstdlib>

#include "agentd/spire_agent_conf.h"
#include "core/file.h"
#include "transport/listener_limits.h"

namespace sigil::agentd {

Result<transport::Endpoint> ServerEndpoint(const std::string& address, int server_port) {
  const size_t colon = address.find(':');
  if (colon == std::string::npos || address.find(':', colon + 1) != std::string::npos) {
    return transport::Endpoint::Tcp(address, server_port);  // a name, an IPv4 or an IPv6 address
  }
  auto endpoint = transport::Endpoint::Parse(address);
  if (!endpoint.ok() || endpoint->host.empty()) {
    return InvalidArgumentError("'" + address + "' is not host or host:port with a port from 1 to 65535");
  }
  return endpoint;
}

namespace {

// Replicas an agent may be given: a handful in practice; the bound keeps a typo from a huge list.
constexpr size_t kMaxServerAddresses = 32;

void ReadPath(ConfigSection& section, const char* key, std::filesystem::path& path,
              const std::string& override_value = "") {
  std::string value = path.string();
  section.Read(key, value);
  if (!override_value.empty()) value = override_value;
  path = value;
}

// The back-off of every retry towards serverd. Its ceiling bounds how long an agent takes to
// notice serverd back after an outage, so it stays within an hour.
void ReadRetry(ConfigSection& section, BackoffPolicy& retry) {
  auto initial = std::chrono::duration_cast<std::chrono::seconds>(retry.initial);
  auto ceiling = std::chrono::duration_cast<std::chrono::seconds>(retry.ceiling);
  section.Read("retry_initial_backoff", initial, std::chrono::seconds(1));
  section.Read("retry_max_backoff", ceiling, std::chrono::seconds(1));
  if (ceiling < initial) {
    section.Problem("retry_max_backoff",
                    "must not be shorter than retry_initial_backoff (" + FormatDuration(initial) + ")");
  }
  if (ceiling > std::chrono::hours(1)) section.Problem("retry_max_backoff", "must be at most 1h");
  if (initial > std::chrono::hours(1)) section.Problem("retry_initial_backoff", "must be at most 1h");
  retry = {initial, ceiling};
}

// SPIRE's join_token_file: the token is the file's contents without surrounding white space.
void ReadJoinToken(ConfigSection& agent, const AgentFlagOverrides& overrides, std::string& token) {
  agent.Read("join_token", token);
  if (!overrides.join_token.empty()) token = overrides.join_token;
  std::string token_file;
  agent.Read("join_token_file", token_file);
  if (!overrides.join_token_file.empty()) token_file = overrides.join_token_file;
  if (token_file.empty()) return;
  if (!token.empty()) {
    agent.Problem("join_token_file", "cannot be given together with join_token (or -joinToken); choose one");
    return;
  }
  auto text = ReadWholeFile(token_file, "join token file");
  if (!text.ok()) {
    agent.Problem("join_token_file", text.status().message());
    return;
  }
  const size_t first = text->find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    agent.Problem("join_token_file", "the join token file " + token_file + " is empty");
    return;
  }
  token = text->substr(first, text->find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace

Result<AgentConfig> ParseAgentConfig(std::string_view text, const std::string& source,
                                     const AgentFlagOverrides& overrides) {
  SIGIL_ASSIGN_OR_RETURN(ConfigDocument doc, ReadConfigDocument(text, source, "agentd", TranslateSpireAgentConf));
  AgentConfig config;
  ConfigSection agent = doc.root().Section("agent");

  std::string trust_domain;
  agent.Read("trust_domain", trust_domain);
  if (!overrides.trust_domain.empty()) trust_domain = overrides.trust_domain;
  if (trust_domain.empty()) {
    agent.Problem("trust_domain", "is required (or -trustDomain)");
  } else if (auto parsed = TrustDomain::Parse(trust_domain); !parsed.ok()) {
    agent.Problem("trust_domain", parsed.status().message());
  } else {
    config.trust_domain = *parsed;
  }
  agent.Read("server_address", config.server_addresses);
  if (!overrides.server_address.empty()) config.server_addresses = {overrides.server_address};
  if (config.server_addresses.empty() || config.server_addresses.size() > kMaxServerAddresses ||
      std::ranges::any_of(config.server_addresses, [](const std::string& a) { return a.empty(); })) {
    agent.Problem("server_address", "must be one address or a list of 1 to " + std::to_string(kMaxServerAddresses) +
                                        ", none empty");
  }
  for (const std::string& address : config.server_addresses) {
    if (auto endpoint = ServerEndpoint(address, 1); !endpoint.ok()) {
      agent.Problem("server_address", endpoint.status().message());
    }
  }
  agent.Read("server_port", config.server_port, 1, 65535);
  if (overrides.server_port != 0) config.server_port = overrides.server_port;
  ReadPath(agent, "socket_path", config.socket_path, overrides.socket_path);
  if (!config.socket_path.is_absolute()) agent.Problem("socket_path", "must be an absolute path");
  ReadPath(agent, "data_dir", config.data_dir, overrides.data_dir);
  ReadLogLevel(agent, overrides.log_level, config.log_level);
  ReadLogFormat(agent, overrides.log_format, config.log_format);
  ReadPath(agent, "log_file", config.log_file, overrides.log_file);
  ReadPath(agent, "trust_bundle_path", config.trust_bundle_path, overrides.trust_bundle_path);
  agent.Read("insecure_bootstrap", config.insecure_bootstrap);
  ReadJoinToken(agent, overrides, config.join_token);
  std::string key_type(KeyTypeName(config.workload_key_type));
  agent.ReadChoice("workload_key_type", key_type, {"ec-p256", "ec-p384", "rsa-2048"});
  config.workload_key_type = *ParseKeyType(key_type);
  ReadRetry(agent, config.retry);
  // A million JWT-SVIDs is already gigabytes; a bound past it is no bound.
  int64_t jwt_cache_size = static_cast<int64_t>(config.jwt_svid_cache_max_size);
  agent.Read("jwt_svid_cache_max_size", jwt_cache_size, 1, 1'000'000);
  config.jwt_svid_cache_max_size = static_cast<size_t>(jwt_cache_size);
  if (!config.insecure_bootstrap && config.trust_bundle_path.empty()) {
    agent.Problem("trust_bundle_path", "is required unless insecure_bootstrap is true");
  }
  if (config.insecure_bootstrap && !config.trust_bundle_path.empty()) {
    agent.Problem("insecure_bootstrap", "cannot be true while trust_bundle_path is set");
  }
  agent.RefuseUnknownKeys();

  if (doc.root().Has("tpm_devid")) {
    ConfigSection devid = doc.root().Section("tpm_devid");
    hw::TpmDevIdConfig tpm = hw::TpmDevIdConfig::InDir("device:/dev/tpmrm0");
    devid.Read("tcti", tpm.tcti);
    ReadPath(devid, "devid_cert_path", tpm.devid_certificate_path);
    ReadPath(devid, "devid_pub_path", tpm.devid_public_path);
    ReadPath(devid, "devid_priv_path", tpm.devid_private_path);
    ReadPath(devid, "devid_auth_file", tpm.devid_auth_file);
    ReadPath(devid, "endorsement_auth_file", tpm.endorsement_auth_file);
    if (tpm.tcti.empty()) devid.Problem("tcti", "must not be empty");
    devid.RefuseUnknownKeys();
    if (!config.join_token.empty()) {
      agent.Problem("join_token", "cannot be used together with tpm_devid attestation; choose one");
    }
    config.tpm_devid = std::move(tpm);
  }
  ReadHealthChecks(doc.root().Section("health_checks"), config.health_checks);
  ReadTelemetry(doc.root().Section("telemetry"), config.telemetry);
  ConfigSection limits = doc.root().Section("workload_api_limits");
  transport::ReadListenerLimits(limits, config.workload_api_limits);
  doc.root().RefuseUnknownKeys();
  SIGIL_RETURN_IF_ERROR(doc.Finish());
  return config;
}

Result<AgentConfig> LoadAgentConfig(const std::filesystem::path& path, const AgentFlagOverrides& overrides) {
  SIGIL_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path, "config file"));
  if (overrides.expand_env) text = ExpandEnv(text, std::getenv);
  return ParseAgentConfig(text, path.string(), overrides);
}

}  // namespace sigil::agentd
