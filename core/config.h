// Reading config documents: a YAML mapping walked key by key into typed fields that already
// hold their defaults. Every problem is collected with the dotted path of its key
// ("server.ca_ttl: '1 day' is not a duration"), unknown keys included, so one start-up error
// lists everything an operator has to fix. No I/O here: the daemons read the file and hand
// over its text.
//
// A daemon's file may also be SPIRE's (server.conf, agent.conf, in HCL): ReadConfigDocument
// tells the languages apart, and a daemon's translation (spire_config.h) turns SPIRE's tree
// into the tree of Sigil's YAML, so the same reads and checks apply to both. A problem is then
// named as the operator's file spells the key (ConfigSpellings).
//
// Thread safety: a ConfigDocument and its sections are used by one thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace sigil {

// "90s", "5m", "1h30m", "24h", "7d", or a bare number of seconds. InvalidArgument otherwise.
Result<std::chrono::seconds> ParseDuration(std::string_view text);
// The inverse, in the largest exact units: 5400s -> "1h30m".
std::string FormatDuration(std::chrono::seconds duration);

// Where the keys of a translated document are written in the operator's file: pairs of a dotted
// path prefix in Sigil's tree ("key_store") and the file's own path for it
// ("plugins.KeyManager \"disk\".plugin_data"). A problem's path takes the longest prefix that
// matches whole components; a path no prefix matches is spelled as Sigil's.
using ConfigSpellings = std::vector<std::pair<std::string, std::string>>;

class ConfigSection {
 public:
  // True when the key is present (even when its value is invalid).
  bool Has(std::string_view key) const;

  // Each Read leaves `value` unchanged when the key is absent and records a problem when the
  // value has the wrong type or is out of range.
  void Read(std::string_view key, std::string& value);
  void Read(std::string_view key, bool& value);
  void Read(std::string_view key, int64_t& value, int64_t min, int64_t max);
  void Read(std::string_view key, int& value, int min, int max);
  void Read(std::string_view key, std::chrono::seconds& value,
            std::chrono::seconds min = std::chrono::seconds(0));
  void Read(std::string_view key, std::vector<std::string>& value);
  // One of `choices`, compared exactly.
  void ReadChoice(std::string_view key, std::string& value, const std::vector<std::string>& choices);
  // A choice that may carry settings of its own, written `key: name` or `key: {name: {...}}`
  // (the shape SPIRE's labelled blocks take: `profile "https_web" { ... }`). Sets `value` to
  // the name, one of `choices`, and returns its settings (empty when written bare, or when the
  // key is absent and `value` keeps its default). A problem when it names no choice or several.
  ConfigSection ReadChoiceWithSettings(std::string_view key, std::string& value, const std::vector<std::string>& choices);

  // The keys present, in document order, for a section whose keys are names a caller looks up
  // (plug-ins by name). Marks none of them seen.
  std::vector<std::string> Keys() const;

  // A nested mapping; an empty section when absent.
  ConfigSection Section(std::string_view key);

  // Records a problem with `key` found by a caller's own check.
  void Problem(std::string_view key, std::string_view message);

  // Records every key of this section that no Read, Has or Section asked for.
  void RefuseUnknownKeys();

  // "server.ca_ttl", for messages.
  std::string PathOf(std::string_view key) const;

 private:
  friend class ConfigDocument;
  struct Shared {
    std::vector<std::string> problems;
    ConfigSpellings spellings;
  };
  ConfigSection(YAML::Node node, std::string path, std::shared_ptr<Shared> shared);
  YAML::Node Get(std::string_view key);

  YAML::Node node_;
  std::string path_;
  std::shared_ptr<Shared> shared_;
  std::set<std::string, std::less<>> seen_;
};

class ConfigDocument {
 public:
  // InvalidArgument naming the line and column when the text is not YAML or not a mapping.
  // `source` names the file in messages.
  static Result<ConfigDocument> Parse(std::string_view text, std::string source);
  // A tree already read and translated (from SPIRE's HCL), with how its keys are spelled in
  // the file and the problems the translation found, which Finish reports first.
  static ConfigDocument FromTree(YAML::Node root, std::string source, ConfigSpellings spellings,
                                 std::vector<std::string> problems);

  ConfigSection& root() { return root_; }

  // OK, or InvalidArgument "<source>: a; b; c" listing every recorded problem.
  Status Finish() const;

 private:
  ConfigDocument(ConfigSection root, std::string source, std::shared_ptr<ConfigSection::Shared> shared)
      : root_(std::move(root)), source_(std::move(source)), shared_(std::move(shared)) {}
  ConfigSection root_;
  std::string source_;
  std::shared_ptr<ConfigSection::Shared> shared_;
};

// Turns the tree ParseHcl gives for SPIRE's file into a document over Sigil's tree.
using SpireTranslation = ConfigDocument (*)(const YAML::Node& hcl, const std::string& source);

// Reads a daemon's config file (`text`, the file at `source`) in either language: YAML as it
// is, SPIRE's HCL through `translate`. The name says which is tried first: .conf and .hcl
// (SPIRE's server.conf, agent.conf) HCL, any other YAML; the other is tried when the first
// fails, so a YAML file named .conf still reads. When neither reads, the error is the named
// language's (its line and column; both, for a name that names none) followed by which
// languages `daemon` ("serverd") reads. SPIRE's JSON form reads as YAML and is refused by its
// `plugins` key.
Result<ConfigDocument> ReadConfigDocument(std::string_view text, const std::string& source, std::string_view daemon,
                                          SpireTranslation translate);

// `text` with $NAME and ${NAME} replaced by the value `lookup` gives for NAME (empty for a
// variable that is not set), as SPIRE's -expandEnv expands a config file before parsing it:
// Go's os.Expand, so `$$` is one `$`, a `$` before no name stays, and `${}` is dropped.
using EnvLookup = std::function<const char*(const char* name)>;  // std::getenv's shape
std::string ExpandEnv(std::string_view text, const EnvLookup& lookup);

// `log_level` of `section` (debug, info, warn or error) into `level`, unless `flag` (the
// -logLevel flag) gives one: as in SPIRE, a flag wins over the file. Both are read in any case,
// as SPIRE's files write them (DEBUG), and stored in lowercase.
void ReadLogLevel(ConfigSection& section, std::string_view flag, std::string& level);

// `log_format` of `section` (text or json) into `format`, unless `flag` (-logFormat) gives one;
// read in any case, as SPIRE takes them (JSON), and stored in lowercase.
void ReadLogFormat(ConfigSection& section, std::string_view flag, std::string& format);

// The `health_checks:` section both daemons have, as SPIRE's: /live and /ready on a plain
// HTTP listener.
struct HealthCheckConfig {
  bool listener_enabled = false;
  std::string bind_address = "127.0.0.1";
  int bind_port = 8080;
  std::string live_path = "/live";
  std::string ready_path = "/ready";
};
void ReadHealthChecks(ConfigSection section, HealthCheckConfig& config);

// The `telemetry: {prometheus: {host, port}}` section both daemons have, as SPIRE's
// `telemetry { Prometheus { host port } }`: GET /metrics on a plain HTTP listener, on loopback
// unless the host says otherwise; port 0 (the default) serves nothing.
struct PrometheusConfig {
  std::string host = "127.0.0.1";
  int port = 0;
  bool enabled() const { return port != 0; }
};
void ReadTelemetry(ConfigSection section, PrometheusConfig& config);

}  // namespace sigil
