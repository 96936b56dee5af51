// SPIRE's agent.conf (HCL), read as agentd's config: every SPIRE setting agentd has mapped to
// agentd's own key, every one it lacks refused by name with what to use instead. The mapping is
// the table in spire_agent_conf.cc; ParseAgentConfig reads the result with the same checks as a
// YAML file (agent_config.h).
//
//   agent { ... }                        agent: (workload_x509_svid_key_type is
//                                        workload_key_type; trust_bundle_format "pem" only;
//                                        retry_initial_backoff, retry_max_backoff as in YAML)
//   plugins {
//     NodeAttestor "join_token"          the join token of agent.join_token or -joinToken
//     NodeAttestor "tpm_devid"           tpm_devid: (tpm_device_path as the TCTI
//                                        device:<path>; tcti, devid_auth_file,
//                                        endorsement_auth_file as in YAML; the passwords only
//                                        empty: give them in those files)
//     KeyManager "disk"                  the agent's key lives in data_dir: directory, if
//                                        given, must be data_dir
//     WorkloadAttestor "unix"            always on; discover_workload_path only true (agentd
//                                        always gives unix:path and unix:sha256),
//                                        workload_size_limit only 0
//   }
//   health_checks { ... }                health_checks:
//   telemetry { Prometheus { host port } }   telemetry: prometheus: (no other sink)
//   workload_api_limits { ... }          the same (agentd's own, SPIRE has none)
//
// Absent keys keep agentd's defaults (agent_config.h), which are SPIRE's except the paths under
// /tmp/sigil-agent and /var/lib/sigil-agent, and health_checks on 127.0.0.1:8080.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "core/config.h"
#include "core/spire_config.h"

namespace sigil::agentd {

// The document ParseAgentConfig reads, from the tree ParseHcl gave for `source`.
ConfigDocument TranslateSpireAgentConf(const YAML::Node& hcl, const std::string& source);

// The translation it reads: Sigil's tree, where the file wrote each key, and what was refused.
spire::Translation TranslateSpireAgentTree(const YAML::Node& hcl);

}  // namespace sigil::agentd
