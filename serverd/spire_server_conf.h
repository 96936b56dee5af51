// SPIRE's server.conf (HCL), read as serverd's config: every SPIRE setting serverd has mapped to
// serverd's own key, every one it lacks refused by name with what to use instead. The mapping is
// the table in spire_server_conf.cc; ParseServerConfig reads the result with the same checks as
// a YAML file (server_config.h).
//
//   server { ... }                       server: (ca_subject's country and organization as lists
//                                        of one; admin_uids, ca_mode, delegated_ca_ttl as in YAML)
//   server { federation { ... } }        federation:
//   plugins {
//     DataStore "sql"                    datastore: sqlite_path (database_type "sqlite3" only)
//     KeyManager "disk"                  key_store: soft, key_dir = keys_path without its
//                                        extension (keys.json: the folder keys)
//     KeyManager "pkcs11" | "tpm"        key_store: pkcs11 or tpm, plugin_data as key_store's keys
//     NodeAttestor "join_token"          node_attestors: join_token
//     NodeAttestor "tpm_devid"           node_attestors: tpm_devid
//   }
//   health_checks { ... }                health_checks:
//   telemetry { Prometheus { ... } }     telemetry: prometheus:
//   signing, agent_api_limits,
//   oidc_discovery { ... }               the same (serverd's own, SPIRE has none)
//
// As in SPIRE, the node attestors on are exactly those plugins names: join_token is off unless
// named. Absent keys keep serverd's defaults (server_config.h), which are SPIRE's except the
// paths under /tmp/sigil-server and /var/lib/sigil-server, and health_checks on 127.0.0.1:8080
// (SPIRE: localhost:80).
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "core/config.h"
#include "core/spire_config.h"

namespace sigil::serverd {

// The document ParseServerConfig reads, from the tree ParseHcl gave for `source`.
ConfigDocument TranslateSpireServerConf(const YAML::Node& hcl, const std::string& source);

// The translation it reads: Sigil's tree, where the file wrote each key, and what was refused.
spire::Translation TranslateSpireServerTree(const YAML::Node& hcl);

}  // namespace sigil::serverd
