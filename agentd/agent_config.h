// agentd's config file (YAML), with SPIRE's defaults. Every value is checked at start and a
// bad one stops start-up with a message naming its key. SPIRE's agent.conf (HCL) is read too,
// mapped onto these keys by spire_agent_conf.h; a file's language is told by its name and
// text (core/config.h).
//
//   agent:
//     trust_domain: example.org         # required
//     server_address: 127.0.0.1         # or a list of replicas, each host or host:port; a DNS name
//                                       # may resolve to several; agentd fails over between them
//     server_port: 8081
//     socket_path: /tmp/sigil-agent/public/api.sock
//     data_dir: /var/lib/sigil-agent
//     log_level: info                   # debug | info | warn | error, in any case; -logLevel wins
//     log_format: text                  # text | json, in any case; -logFormat wins
//     log_file: ""                      # appended to instead of stderr, reopened on SIGHUP; -logFile wins
//     trust_bundle_path: ""             # PEM roots of the server's trust domain; -trustBundle wins
//     insecure_bootstrap: false         # trust the server's first answer; logged loudly
//     join_token: ""                    # or -joinToken
//     join_token_file: ""               # or -joinTokenFile: a file holding the token (not with join_token)
//     workload_key_type: ec-p256        # ec-p256 | ec-p384 | rsa-2048
//     retry_initial_backoff: 1s         # first wait of every retry towards serverd, then doubled
//     retry_max_backoff: 60s            # the longest wait; a repeated failure is logged once per this
//     jwt_svid_cache_max_size: 1000     # JWT-SVIDs kept for reuse, least recently used dropped first
//   tpm_devid:                          # attest with the TPM's DevID instead of a join token
//     tcti: device:/dev/tpmrm0
//     devid_cert_path: /var/lib/sigil-agent/devid/devid.crt.pem   # as tools/provision-devid writes
//     devid_pub_path: /var/lib/sigil-agent/devid/devid.pub
//     devid_priv_path: /var/lib/sigil-agent/devid/devid.priv
//     devid_auth_file: ""                # SPIRE's devid_password, from a file
//     endorsement_auth_file: ""          # SPIRE's endorsement_hierarchy_password, from a file
//   health_checks: {listener_enabled, bind_address, bind_port, live_path, ready_path}
//   telemetry: {prometheus: {host: 127.0.0.1, port: 0}}   # GET /metrics; port 0: off
//   workload_api_limits: {max_connections_per_source: 256, ...}   # per uid; transport/listener_limits.h
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "agentd/sync/retry.h"
#include "agentd/sync/svid_cache.h"
#include "core/config.h"
#include "core/signer.h"
#include "core/spiffe_id.h"
#include "core/status.h"
#include "hw/tpm_devid.h"
#include "transport/http2_server.h"

namespace sigil::agentd {

struct AgentConfig {
  TrustDomain trust_domain;
  // serverd's replicas, tried in this order (each name's addresses in the resolver's order);
  // agentd moves to the next when the one in use fails. All on server_port.
  std::vector<std::string> server_addresses = {"127.0.0.1"};
  int server_port = 8081;
  std::filesystem::path socket_path = "/tmp/sigil-agent/public/api.sock";
  std::filesystem::path data_dir = "/var/lib/sigil-agent";
  std::string log_level = "info";
  std::string log_format = "text";
  std::filesystem::path log_file;  // empty: stderr
  std::filesystem::path trust_bundle_path;
  bool insecure_bootstrap = false;
  std::string join_token;  // join_token, or the contents of join_token_file
  KeyType workload_key_type = KeyType::kEcP256;
  BackoffPolicy retry;  // retry_initial_backoff, retry_max_backoff
  size_t jwt_svid_cache_max_size = kDefaultJwtSvidCacheMaxSize;
  std::optional<hw::TpmDevIdConfig> tpm_devid;  // set: tpm_devid attestation
  HealthCheckConfig health_checks;
  PrometheusConfig telemetry;
  transport::Http2ServerOptions workload_api_limits;  // workload_api_limits: (transport/listener_limits.h)
};

// One entry of server_address as agentd connects to it: "host" on `server_port`, or "host:port"
// (an IPv6 address takes server_port). InvalidArgument for a bad port.
Result<transport::Endpoint> ServerEndpoint(const std::string& address, int server_port);

// Flags that override single keys, as SPIRE's `agent run` has them. Empty: not given.
struct AgentFlagOverrides {
  std::string trust_domain;
  std::string server_address;
  int server_port = 0;
  std::string socket_path;
  std::string data_dir;
  std::string join_token;
  std::string join_token_file;
  std::string trust_bundle_path;
  std::string log_level;
  std::string log_format;
  std::string log_file;
  bool expand_env = false;  // -expandEnv: $VAR and ${VAR} in the file replaced before parsing
};

// Parses `text` (the file at `source`, YAML or SPIRE's HCL: ReadConfigDocument), applies
// `overrides`, and checks every value.
Result<AgentConfig> ParseAgentConfig(std::string_view text, const std::string& source,
                                     const AgentFlagOverrides& overrides = {});
Result<AgentConfig> LoadAgentConfig(const std::filesystem::path& path,
                                    const AgentFlagOverrides& overrides = {});

}  // namespace sigil::agentd
