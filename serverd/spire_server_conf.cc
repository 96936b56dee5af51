#include "serverd/spire_server_conf.h"

#include <algorithm>

#include "core/spire_config.h"

namespace sigil::serverd {
namespace {

using spire::Key;
using spire::Plugin;
using spire::PluginType;
using spire::Rule;
using spire::Setting;

constexpr std::string_view kNotInSigil = "is SPIRE's, and serverd has no such setting; remove it";

constexpr Key kCaSubject[] = {
    {"country", Rule::kOnlyElement, "server.ca_subject.country"},
    {"organization", Rule::kOnlyElement, "server.ca_subject.organization"},
    {"common_name", Rule::kCopy, "server.ca_subject.common_name"},
};

constexpr Key kServer[] = {
    {"trust_domain", Rule::kCopy, "server.trust_domain"},
    {"bind_address", Rule::kCopy, "server.bind_address"},
    {"bind_port", Rule::kCopy, "server.bind_port"},
    {"socket_path", Rule::kCopy, "server.socket_path"},
    {"data_dir", Rule::kCopy, "server.data_dir"},
    {"log_level", Rule::kCopy, "server.log_level"},  // DEBUG too: ReadLogLevel takes any case
    {"log_format", Rule::kCopy, "server.log_format"},
    {"log_file", Rule::kCopy, "server.log_file"},
    {"default_x509_svid_ttl", Rule::kCopy, "server.default_x509_svid_ttl"},
    {"default_jwt_svid_ttl", Rule::kCopy, "server.default_jwt_svid_ttl"},
    {"ca_ttl", Rule::kCopy, "server.ca_ttl"},
    {"ca_key_type", Rule::kCopy, "server.ca_key_type"},
    {.spire = "ca_subject", .rule = Rule::kBlock, .keys = kCaSubject},
    {"jwt_issuer", Rule::kCopy, "server.jwt_issuer"},
    {"audit_log_enabled", Rule::kCopy, "server.audit_log_enabled"},
    {"agent_ttl", Rule::kCopy, "server.agent_ttl"},
    {"federation", Rule::kCopy, "federation"},
    // serverd's own, with no SPIRE name.
    {"admin_uids", Rule::kCopy, "server.admin_uids"},
    {"ca_mode", Rule::kCopy, "server.ca_mode"},
    {"delegated_ca_ttl", Rule::kCopy, "server.delegated_ca_ttl"},
    {"audit_log_path", Rule::kCopy, "server.audit_log_path"},
    // SPIRE's, with something else in serverd.
    {.spire = "admin_ids", .rule = Rule::kRefuse,
     .why = "serverd's admin API is its Unix socket, open to root, serverd's own uid and the uids admin_uids lists; "
            "it admits no SVIDs"},
    {.spire = "jwt_key_type", .rule = Rule::kRefuse, .why = "serverd signs JWT-SVIDs with a key of ca_key_type"},
    {.spire = "ratelimit", .rule = Rule::kRefuse,
     .why = "serverd's rates are set in agent_api_limits { attestations_per_second_per_ip, attestation_burst_per_ip, "
            "svids_per_second_per_agent, svid_burst_per_agent }"},
    {.spire = "experimental", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "disable_jwt_svids", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "log_source_location", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "profiling_enabled", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "profiling_port", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "profiling_freq", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "profiling_names", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "prune_attested_nodes_expired_for", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "prune_attested_nodes_batch_size", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "prune_tofu_nodes", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "proxy_protocol_trusted_cidrs", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "max_attested_node_info_staleness", .rule = Rule::kRefuse, .why = kNotInSigil},
};

constexpr Key kTop[] = {
    {.spire = "server", .rule = Rule::kBlock, .keys = kServer},
    {"health_checks", Rule::kCopy, "health_checks"},
    {.spire = "telemetry", .rule = Rule::kBlock, .keys = spire::kTelemetry},
    // serverd's own sections, with no SPIRE name: as in YAML.
    {"signing", Rule::kCopy, "signing"},
    {"agent_api_limits", Rule::kCopy, "agent_api_limits"},
    {"oidc_discovery", Rule::kCopy, "oidc_discovery"},
    // serverd's YAML names of what SPIRE's file says otherwise: one spelling per language.
    {.spire = "key_store", .rule = Rule::kRefuse,
     .why = "in SPIRE's format the CA key's store is plugins { KeyManager \"disk\" | \"pkcs11\" | \"tpm\" { ... } }"},
    {.spire = "datastore", .rule = Rule::kRefuse,
     .why = "in SPIRE's format the datastore is plugins { DataStore \"sql\" { ... } }"},
    {.spire = "node_attestors", .rule = Rule::kRefuse,
     .why = "in SPIRE's format node attestors are plugins { NodeAttestor \"<name>\" { ... } }"},
    {.spire = "federation", .rule = Rule::kRefuse, .why = "in SPIRE's format federation { } goes inside server { }"},
};

constexpr std::string_view kMySqlOnly = "is MySQL's, and serverd's datastores are SQLite and PostgreSQL";

// database_type chooses what connection_string is (a file or libpq's string), so both are read
// together after the walk (TranslateSpireServerTree).
constexpr Key kSqlData[] = {
    {"database_type", Rule::kCheckedAfter, "datastore.database_type"},
    {"connection_string", Rule::kCheckedAfter, "datastore.connection_string"},
    {.spire = "ro_connection_string", .rule = Rule::kRefuse,
     .why = "serverd reads and writes one datastore; PostgreSQL's read replicas are not used"},
    {.spire = "root_ca_path", .rule = Rule::kRefuse, .why = kMySqlOnly},
    {.spire = "client_cert_path", .rule = Rule::kRefuse, .why = kMySqlOnly},
    {.spire = "client_key_path", .rule = Rule::kRefuse, .why = kMySqlOnly},
    {"max_open_conns", Rule::kCopy, "datastore.max_connections"},
    {.spire = "max_idle_conns", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "conn_max_lifetime", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "disable_migration", .rule = Rule::kRefuse, .why = kNotInSigil},
};

constexpr Key kDiskKeysData[] = {{"keys_path", Rule::kStem, "key_store.key_dir"}};

constexpr Key kPkcs11Data[] = {
    {"module_path", Rule::kCopy, "key_store.module_path"},
    {"token_label", Rule::kCopy, "key_store.token_label"},
    {"token_serial", Rule::kCopy, "key_store.token_serial"},
    {"pin_file", Rule::kCopy, "key_store.pin_file"},
    {"pin_env", Rule::kCopy, "key_store.pin_env"},
    {.spire = "pin", .rule = Rule::kRefuse,
     .why = "a PIN in the config file ends up in backups and logs; use pin_file or pin_env"},
};

constexpr Key kTpmData[] = {
    {"tcti", Rule::kCopy, "key_store.tcti"},
    {"data_dir", Rule::kCopy, "key_store.data_dir"},
    {"auth_file", Rule::kCopy, "key_store.auth_file"},
};

constexpr Key kTpmDevIdData[] = {
    {"devid_ca_path", Rule::kCopy, "node_attestors.tpm_devid.devid_ca_path"},
    {"endorsement_ca_path", Rule::kCopy, "node_attestors.tpm_devid.endorsement_ca_path"},
    {"allow_ek_without_certificate", Rule::kCopy, "node_attestors.tpm_devid.allow_ek_without_certificate"},
};

constexpr Setting kSoftKeys[] = {{"key_store.kind", "soft"}};
constexpr Setting kPkcs11Keys[] = {{"key_store.kind", "pkcs11"}};
constexpr Setting kTpmKeys[] = {{"key_store.kind", "tpm"}};

constexpr std::string_view kNoPublisher =
    "is not available in Sigil; `serverd bundle show` prints the bundle, and federation's bundle_endpoint serves it";

constexpr PluginType kPluginTypes[] = {
    {"DataStore", true},
    {"KeyManager", true},
    {"NodeAttestor"},
    {.type = "UpstreamAuthority",
     .why = "is not supported: serverd's CA is its own root, its key kept in serverd's key store (KeyManager)"},
    {.type = "Notifier", .why = kNoPublisher},
    {.type = "BundlePublisher", .why = kNoPublisher},
    {.type = "CredentialComposer", .why = "is not available in Sigil"},
};

constexpr Plugin kPlugins[] = {
    {.type = "DataStore", .name = "sql", .sigil = "datastore", .data = kSqlData},
    {.type = "KeyManager", .name = "disk", .sigil = "key_store", .sets = kSoftKeys, .data = kDiskKeysData},
    {.type = "KeyManager", .name = "pkcs11", .sigil = "key_store", .sets = kPkcs11Keys, .data = kPkcs11Data},
    {.type = "KeyManager", .name = "tpm", .sigil = "key_store", .sets = kTpmKeys, .data = kTpmData},
    {.type = "KeyManager", .name = "memory",
     .why = "would lose the CA key at every restart, and serverd has no such key store; use KeyManager \"disk\" "
            "(key files in a folder), \"pkcs11\" (a token) or \"tpm\""},
    {.type = "NodeAttestor", .name = "join_token", .sigil = "node_attestors.join_token"},
    {.type = "NodeAttestor", .name = "tpm_devid", .sigil = "node_attestors.tpm_devid", .data = kTpmDevIdData},
};

constexpr spire::Mapping kServerConf = {kTop, kPluginTypes, kPlugins};

}  // namespace

namespace {

// SPIRE's DataStore "sql": database_type "sqlite3" (connection_string a file) or "postgres"
// (libpq's connection string); MySQL is refused.
void TranslateSqlDataStore(spire::Translation& translation) {
  auto type = translation.checked.find("datastore.database_type");
  auto connection = translation.checked.find("datastore.connection_string");
  const bool postgres = type != translation.checked.end() && type->second.value.IsScalar() &&
                        type->second.value.Scalar() == "postgres";
  if (type != translation.checked.end() && !postgres &&
      !(type->second.value.IsScalar() && type->second.value.Scalar() == "sqlite3")) {
    const std::string value = type->second.value.IsScalar() ? "\"" + type->second.value.Scalar() + "\" " : "";
    translation.problems.push_back(type->second.spire_path + ": " + value +
                                   "is not available; serverd's datastores are \"sqlite3\" and \"postgres\"");
    return;
  }
  if (postgres) spire::Set(translation, "datastore.kind", YAML::Node("postgres"), type->second.spire_path);
  if (connection != translation.checked.end()) {
    spire::Set(translation, postgres ? "datastore.connection_string" : "datastore.sqlite_path",
               connection->second.value, connection->second.spire_path);
  }
}

}  // namespace

spire::Translation TranslateSpireServerTree(const YAML::Node& hcl) {
  spire::Translation translation = spire::Translate(hcl, kServerConf);
  TranslateSqlDataStore(translation);
  // SPIRE's server runs the node attestors its plugins name and no other; serverd's YAML keeps
  // join_token on unless turned off.
  const std::vector<std::string>& named = translation.plugins["NodeAttestor"];
  if (std::find(named.begin(), named.end(), "join_token") == named.end()) {
    spire::Set(translation, "node_attestors.join_token.enabled", YAML::Node("false"),
               "plugins (no NodeAttestor \"join_token\")");
  }
  return translation;
}

ConfigDocument TranslateSpireServerConf(const YAML::Node& hcl, const std::string& source) {
  return spire::Document(TranslateSpireServerTree(hcl), source);
}

}  // namespace sigil::serverd
