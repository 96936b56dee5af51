#include "agentd/spire_agent_conf.h"

#include <filesystem>

#include "agentd/agent_config.h"
#include "core/spire_config.h"

namespace sigil::agentd {
namespace {

using spire::Key;
using spire::Plugin;
using spire::PluginType;
using spire::Rule;

constexpr std::string_view kNotInSigil = "is SPIRE's, and agentd has no such setting; remove it";
constexpr std::string_view kNoSds = "agentd serves the SPIFFE Workload API, not Envoy's SDS";
constexpr std::string_view kBundleFromFile =
    "is not read: agentd takes the server's bundle from trust_bundle_path (or insecure_bootstrap)";

constexpr Key kAgent[] = {
    {"trust_domain", Rule::kCopy, "agent.trust_domain"},
    {"server_address", Rule::kCopy, "agent.server_address"},
    {"server_port", Rule::kCopy, "agent.server_port"},
    {"socket_path", Rule::kCopy, "agent.socket_path"},
    {"data_dir", Rule::kCopy, "agent.data_dir"},
    {"log_level", Rule::kCopy, "agent.log_level"},  // DEBUG too: ReadLogLevel takes any case
    {"log_format", Rule::kCopy, "agent.log_format"},
    {"log_file", Rule::kCopy, "agent.log_file"},
    {"trust_bundle_path", Rule::kCopy, "agent.trust_bundle_path"},
    {"insecure_bootstrap", Rule::kCopy, "agent.insecure_bootstrap"},
    {"join_token", Rule::kCopy, "agent.join_token"},
    {"join_token_file", Rule::kCopy, "agent.join_token_file"},
    {"workload_x509_svid_key_type", Rule::kCopy, "agent.workload_key_type"},
    {"jwt_svid_cache_max_size", Rule::kCopy, "agent.jwt_svid_cache_max_size"},
    {.spire = "trust_bundle_format", .rule = Rule::kMatches, .expected = "pem",
     .why = "is not read: agentd reads trust_bundle_path as PEM (trust_bundle_format = \"pem\")"},
    // agentd's own, with no SPIRE name.
    {"retry_initial_backoff", Rule::kCopy, "agent.retry_initial_backoff"},
    {"retry_max_backoff", Rule::kCopy, "agent.retry_max_backoff"},
    // SPIRE's, with something else in agentd.
    {.spire = "workload_key_type", .rule = Rule::kRefuse,
     .why = "is agentd's YAML name; in SPIRE's format it is workload_x509_svid_key_type"},
    {.spire = "trust_bundle_url", .rule = Rule::kRefuse, .why = kBundleFromFile},
    {.spire = "trust_bundle_unix_socket", .rule = Rule::kRefuse, .why = kBundleFromFile},
    {.spire = "trust_bundle_spiffe_workload_api", .rule = Rule::kRefuse, .why = kBundleFromFile},
    {.spire = "rebootstrap_mode", .rule = Rule::kRefuse,
     .why = "is not available: agentd never bootstraps again by itself (rebootstrap_mode \"never\"); a new join "
            "token or the TPM DevID attests again"},
    {.spire = "rebootstrap_delay", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "availability_target", .rule = Rule::kRefuse,
     .why = "is not available: agentd renews each SVID at half of its life"},
    {.spire = "x509_svid_cache_max_size", .rule = Rule::kRefuse,
     .why = "is not available: agentd keeps an X509-SVID for every entry of its host"},
    {.spire = "sds", .rule = Rule::kRefuse, .why = kNoSds},
    {.spire = "disable_sds_api", .rule = Rule::kRefuse, .why = kNoSds},
    {.spire = "disable_workload_api", .rule = Rule::kRefuse, .why = "agentd always serves the Workload API"},
    {.spire = "admin_socket_path", .rule = Rule::kRefuse, .why = "agentd has no admin API"},
    {.spire = "authorized_delegates", .rule = Rule::kRefuse, .why = "agentd has no Delegated Identity API"},
    {.spire = "allow_unauthenticated_verifiers", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "allowed_foreign_jwt_claims", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "experimental", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "log_selectors", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "log_source_location", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "profiling_enabled", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "profiling_port", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "profiling_freq", .rule = Rule::kRefuse, .why = kNotInSigil},
    {.spire = "profiling_names", .rule = Rule::kRefuse, .why = kNotInSigil},
};

constexpr Key kTop[] = {
    {.spire = "agent", .rule = Rule::kBlock, .keys = kAgent},
    {"health_checks", Rule::kCopy, "health_checks"},
    {"workload_api_limits", Rule::kCopy, "workload_api_limits"},  // agentd's own: as in YAML
    {.spire = "telemetry", .rule = Rule::kBlock, .keys = spire::kTelemetry},
    {.spire = "tpm_devid", .rule = Rule::kRefuse,
     .why = "is agentd's YAML name; in SPIRE's format it is "
            "plugins { NodeAttestor \"tpm_devid\" { plugin_data { ... } } }"},
};

constexpr Key kTpmDevIdData[] = {
    {"tpm_device_path", Rule::kDevicePath, "tpm_devid.tcti"},
    {"devid_cert_path", Rule::kCopy, "tpm_devid.devid_cert_path"},
    {"devid_priv_path", Rule::kCopy, "tpm_devid.devid_priv_path"},
    {"devid_pub_path", Rule::kCopy, "tpm_devid.devid_pub_path"},
    {.spire = "devid_password", .rule = Rule::kMatches, .expected = "",
     .why = "holds a secret in the config file; put it on the first line of a file and name that file devid_auth_file",
     .secret = true},
    {.spire = "endorsement_hierarchy_password", .rule = Rule::kMatches, .expected = "",
     .why = "holds a secret in the config file; put it on the first line of a file and name that file "
            "endorsement_auth_file",
     .secret = true},
    {.spire = "owner_hierarchy_password", .rule = Rule::kMatches, .expected = "",
     .why = "is not available in this version: agentd uses the owner hierarchy without a password", .secret = true},
    // agentd's own, as in its YAML.
    {"tcti", Rule::kCopy, "tpm_devid.tcti"},
    {"devid_auth_file", Rule::kCopy, "tpm_devid.devid_auth_file"},
    {"endorsement_auth_file", Rule::kCopy, "tpm_devid.endorsement_auth_file"},
};

constexpr Key kDiskKeysData[] = {{"directory", Rule::kCheckedAfter, "key_manager_directory"}};

constexpr Key kUnixData[] = {
    {.spire = "discover_workload_path", .rule = Rule::kMatches, .expected = "true",
     .why = "cannot be had: agentd always reads the caller's binary and gives unix:path and unix:sha256; "
            "remove the key or set it to true"},
    {.spire = "workload_size_limit", .rule = Rule::kMatches, .expected = "0",
     .why = "is not available: agentd hashes every caller's binary, whatever its size, once per binary; "
            "remove the key"},
};

constexpr PluginType kPluginTypes[] = {
    {"NodeAttestor", true},
    {"KeyManager", true},
    {"WorkloadAttestor"},
    {.type = "SVIDStore", .why = "is not available in Sigil; workloads fetch their SVIDs over the Workload API"},
};

constexpr Plugin kPlugins[] = {
    {.type = "NodeAttestor", .name = "join_token"},
    {.type = "NodeAttestor", .name = "tpm_devid", .sigil = "tpm_devid", .data = kTpmDevIdData},
    {.type = "KeyManager", .name = "disk", .data = kDiskKeysData},
    {.type = "KeyManager", .name = "memory",
     .why = "would lose the agent's key at every restart; agentd keeps it with its SVID in data_dir so that a restart "
            "needs no new attestation: use KeyManager \"disk\""},
    {.type = "WorkloadAttestor", .name = "unix", .data = kUnixData},
};

constexpr spire::Mapping kAgentConf = {kTop, kPluginTypes, kPlugins};

}  // namespace

spire::Translation TranslateSpireAgentTree(const YAML::Node& hcl) {
  spire::Translation translation = spire::Translate(hcl, kAgentConf);
  // SPIRE's disk key manager keeps the agent's key in `directory`; agentd keeps it with the
  // agent's SVID in data_dir, so the two must be one folder.
  if (auto directory = translation.checked.find("key_manager_directory"); directory != translation.checked.end()) {
    const YAML::Node& value = directory->second.value;
    std::string data_dir = AgentConfig{}.data_dir.string();
    const YAML::Node& tree = translation.tree;  // const: a lookup adds no key
    // A lookup that finds nothing gives an invalid node, on which IsScalar and [] throw; IsDefined
    // does not: each step is checked before the next.
    if (const YAML::Node agent = tree["agent"]; agent.IsDefined() && agent.IsMap()) {
      if (const YAML::Node set = agent["data_dir"]; set.IsDefined() && set.IsScalar()) data_dir = set.Scalar();
    }
    const auto normal = [](const std::string& path) {
      std::filesystem::path normal = std::filesystem::path(path).lexically_normal();
      return normal.has_filename() || !normal.has_relative_path() ? normal : normal.parent_path();
    };
    if (!value.IsScalar() || normal(value.Scalar()) != normal(data_dir)) {
      translation.problems.push_back(directory->second.spire_path +
                                     ": agentd keeps its key with its SVID in data_dir (" + data_dir +
                                     "); give data_dir that folder, or remove directory");
    }
  }
  return translation;
}

ConfigDocument TranslateSpireAgentConf(const YAML::Node& hcl, const std::string& source) {
  return spire::Document(TranslateSpireAgentTree(hcl), source);
}

}  // namespace sigil::agentd
