// Reading SPIRE's server.conf and agent.conf as they are: the tree ParseHcl gives is translated
// into the tree of Sigil's YAML config, so that every read and check of Sigil's config readers
// applies to both languages unchanged. Each daemon writes its mapping once, as tables of the
// rules below (serverd/spire_server_conf.cc, agentd/spire_agent_conf.cc); Translate walks
// SPIRE's tree by them. Every key and plugin of the file is mapped, accepted because it asks
// for what Sigil does anyway, or refused by name with what to use instead: none is skipped.
//
// The translation is total: any tree gives a Translation, whose problems the daemon's
// ConfigDocument reports first, with the problems Sigil's readers then find in the tree. Each
// key written records where the file wrote it, so those problems name the file's keys too.
//
// Thread safety: functions of their arguments; the tables are constant.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"

namespace sigil::spire {

enum class Rule {
  kCopy,         // the value as written, to `sigil`
  kOnlyElement,  // to `sigil`, the one element of a list: SPIRE's ca_subject country = ["US"]
  kDevicePath,   // to `sigil` as a TCTI: tpm_device_path = "/dev/tpmrm0" is device:/dev/tpmrm0
  // To `sigil`, without the file name's extension: SPIRE's disk key manager keeps its keys in
  // one file (keys_path = "keys.json"), Sigil's in a folder of key files ("keys").
  kStem,
  kBlock,         // a block whose keys follow `keys`
  kMatches,       // accepted when its value is `expected` (what Sigil does anyway), else refused with `why`
  kCheckedAfter,  // kept in Translation::checked under `sigil`, for the daemon's own check
  kRefuse,        // refused with `why`; an empty block asks for nothing and is accepted
};

// One key of a SPIRE block. Positional order suits the common rules: {"ca_ttl", Rule::kCopy,
// "server.ca_ttl"}.
struct Key {
  std::string_view spire;
  Rule rule = Rule::kCopy;
  std::string_view sigil = {};     // a dotted path in Sigil's tree
  std::span<const Key> keys = {};  // kBlock
  std::string_view expected = {};  // kMatches
  std::string_view why = {};       // kMatches, kRefuse: a sentence, the key's path goes before it
  bool secret = false;             // kMatches: the value (a password) is not repeated in messages
};

// A value a plugin sets by being named: KeyManager "disk" is key_store.kind soft.
struct Setting {
  std::string_view sigil;
  std::string_view value;
};

// One plugin, `type "name" { plugin_data { ... } }`.
struct Plugin {
  std::string_view type;              // "KeyManager"
  std::string_view name;              // "disk"
  std::string_view sigil = {};        // the section it turns on, made even when empty; none when ""
  std::span<const Setting> sets = {};
  std::span<const Key> data = {};     // its plugin_data keys
  std::string_view why = {};          // refused: why, and what Sigil has instead
};

struct PluginType {
  std::string_view type;
  bool at_most_one = false;  // SPIRE takes one DataStore, one KeyManager, and one NodeAttestor per agent
  std::string_view why = {};  // refused as a whole (UpstreamAuthority): why
};

struct Mapping {
  std::span<const Key> top;  // the file's top level; "plugins" goes by the two below
  std::span<const PluginType> plugin_types;
  std::span<const Plugin> plugins;
};

struct Checked {
  std::string spire_path;  // for the daemon's message
  YAML::Node value;
};

struct Translation {
  YAML::Node tree{YAML::NodeType::Map};
  ConfigSpellings spellings;
  std::vector<std::string> problems;  // "plugins.KeyManager \"memory\": ..."
  // The plugins named and enabled, by type: {"NodeAttestor": {"join_token", "tpm_devid"}}.
  std::map<std::string, std::vector<std::string>> plugins;
  std::map<std::string, Checked, std::less<>> checked;  // kCheckedAfter keys, by their `sigil`
};

// SPIRE's `telemetry` block, the same in server.conf and agent.conf: Prometheus's host and port
// map onto `telemetry.prometheus` (ReadTelemetry); every other sink and option is refused.
inline constexpr std::string_view kPrometheusOnly =
    "Sigil exports metrics to Prometheus only (telemetry { Prometheus { } })";
inline constexpr std::string_view kNoSuchTelemetrySetting = "is SPIRE's, and Sigil has no such setting; remove it";
inline constexpr Key kPrometheus[] = {
    {"host", Rule::kCopy, "telemetry.prometheus.host"},
    {"port", Rule::kCopy, "telemetry.prometheus.port"},
    {.spire = "tls", .rule = Rule::kRefuse,
     .why = "/metrics is served in plain HTTP; put a TLS proxy in front of it if it must leave the host"},
};
inline constexpr Key kTelemetry[] = {
    {.spire = "Prometheus", .rule = Rule::kBlock, .keys = kPrometheus},
    {.spire = "DogStatsd", .rule = Rule::kRefuse, .why = kPrometheusOnly},
    {.spire = "Statsd", .rule = Rule::kRefuse, .why = kPrometheusOnly},
    {.spire = "M3", .rule = Rule::kRefuse, .why = kPrometheusOnly},
    {.spire = "InMem", .rule = Rule::kRefuse, .why = kPrometheusOnly},
    {.spire = "MetricPrefix", .rule = Rule::kRefuse, .why = kNoSuchTelemetrySetting},
    {.spire = "EnableTrustDomainLabel", .rule = Rule::kRefuse, .why = kNoSuchTelemetrySetting},
    {.spire = "EnableHostnameLabel", .rule = Rule::kRefuse, .why = kNoSuchTelemetrySetting},
    {.spire = "AllowedPrefixes", .rule = Rule::kRefuse, .why = kNoSuchTelemetrySetting},
    {.spire = "BlockedPrefixes", .rule = Rule::kRefuse, .why = kNoSuchTelemetrySetting},
    {.spire = "AllowedLabels", .rule = Rule::kRefuse, .why = kNoSuchTelemetrySetting},
    {.spire = "BlockedLabels", .rule = Rule::kRefuse, .why = kNoSuchTelemetrySetting},
};

Translation Translate(const YAML::Node& hcl, const Mapping& mapping);

// Sets `sigil` (a dotted path) in `translation`'s tree to `value`, recording that the file
// wrote it at `spire_path`; a problem when another key of the file set it already.
void Set(Translation& translation, std::string_view sigil, const YAML::Node& value, const std::string& spire_path);

// The translated document, for the daemon's config reader.
ConfigDocument Document(Translation translation, const std::string& source);

}  // namespace sigil::spire
