#include "core/config.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <limits>

#include "core/hcl.h"

namespace sigil {

Result<std::chrono::seconds> ParseDuration(std::string_view text) {
  const std::string original(text);
  auto invalid = [&] {
    return InvalidArgumentError("'" + original +
                                "' is not a duration: use seconds or units like 90s, 5m, 1h30m, 7d");
  };
  if (text.empty()) return invalid();
  int64_t total = 0;
  bool bare = true;
  while (!text.empty()) {
    size_t digits = 0;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
    if (digits == 0 || digits > 12) return invalid();
    const int64_t number = std::stoll(std::string(text.substr(0, digits)));
    text.remove_prefix(digits);
    int64_t unit = 1;
    if (!text.empty()) {
      bare = false;
      switch (text[0]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return invalid();
      }
      text.remove_prefix(1);
    } else if (!bare) {
      return invalid();  // "1h30": a number without its unit after a unit
    }
    total += number * unit;
    if (total > std::numeric_limits<int32_t>::max() * int64_t{100}) return invalid();
  }
  return std::chrono::seconds(total);
}

std::string FormatDuration(std::chrono::seconds duration) {
  int64_t s = duration.count();
  if (s == 0) return "0s";
  std::string out;
  if (s < 0) {
    out = "-";
    s = -s;
  }
  for (auto [unit, name] : {std::pair<int64_t, const char*>{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}}) {
    if (s >= unit) {
      out += std::to_string(s / unit) + name;
      s %= unit;
    }
  }
  return out;
}

ConfigSection::ConfigSection(YAML::Node node, std::string path, std::shared_ptr<Shared> shared)
    : node_(std::move(node)), path_(std::move(path)), shared_(std::move(shared)) {}

std::string ConfigSection::PathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

namespace {

// `path` as the operator's file spells it (ConfigSpellings).
std::string Spelled(const std::string& path, const ConfigSpellings& spellings) {
  const std::pair<std::string, std::string>* best = nullptr;
  for (const auto& spelling : spellings) {
    const std::string& prefix = spelling.first;
    const bool matches = path.compare(0, prefix.size(), prefix) == 0 &&
                         (path.size() == prefix.size() || path[prefix.size()] == '.');
    if (matches && (best == nullptr || prefix.size() > best->first.size())) best = &spelling;
  }
  return best == nullptr ? path : best->second + path.substr(best->first.size());
}

}  // namespace

void ConfigSection::Problem(std::string_view key, std::string_view message) {
  shared_->problems.push_back(Spelled(PathOf(key), shared_->spellings) + ": " + std::string(message));
}

YAML::Node ConfigSection::Get(std::string_view key) {
  seen_.emplace(key);
  if (!node_.IsMap()) return YAML::Node();
  return node_[std::string(key)];
}

bool ConfigSection::Has(std::string_view key) const {
  const_cast<ConfigSection*>(this)->seen_.emplace(key);
  return node_.IsMap() && node_[std::string(key)].IsDefined() && !node_[std::string(key)].IsNull();
}

void ConfigSection::Read(std::string_view key, std::string& value) {
  YAML::Node node = Get(key);
  if (!node.IsDefined() || node.IsNull()) return;
  if (!node.IsScalar()) return Problem(key, "expected a single value");
  value = node.Scalar();
}

void ConfigSection::Read(std::string_view key, bool& value) {
  YAML::Node node = Get(key);
  if (!node.IsDefined() || node.IsNull()) return;
  bool parsed = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, parsed)) {
    return Problem(key, "expected true or false");
  }
  value = parsed;
}

void ConfigSection::Read(std::string_view key, int64_t& value, int64_t min, int64_t max) {
  YAML::Node node = Get(key);
  if (!node.IsDefined() || node.IsNull()) return;
  int64_t parsed = 0;
  if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, parsed)) {
    return Problem(key, "'" + (node.IsScalar() ? node.Scalar() : std::string("?")) + "' is not a whole number");
  }
  if (parsed < min || parsed > max) {
    return Problem(key, std::to_string(parsed) + " is outside " + std::to_string(min) + ".." +
                            std::to_string(max));
  }
  value = parsed;
}

void ConfigSection::Read(std::string_view key, int& value, int min, int max) {
  int64_t wide = value;
  Read(key, wide, min, max);
  value = static_cast<int>(wide);
}

void ConfigSection::Read(std::string_view key, std::chrono::seconds& value, std::chrono::seconds min) {
  YAML::Node node = Get(key);
  if (!node.IsDefined() || node.IsNull()) return;
  if (!node.IsScalar()) return Problem(key, "expected a duration such as 1h");
  if (!node.Scalar().empty() && node.Scalar()[0] == '-') {
    return Problem(key, "'" + node.Scalar() + "' is negative");
  }
  auto parsed = ParseDuration(node.Scalar());
  if (!parsed.ok()) return Problem(key, parsed.status().message());
  if (*parsed < min) return Problem(key, node.Scalar() + " is shorter than " + FormatDuration(min));
  value = *parsed;
}

void ConfigSection::Read(std::string_view key, std::vector<std::string>& value) {
  YAML::Node node = Get(key);
  if (!node.IsDefined() || node.IsNull()) return;
  if (node.IsScalar()) {
    value = {node.Scalar()};
    return;
  }
  if (!node.IsSequence()) return Problem(key, "expected a list");
  std::vector<std::string> items;
  for (const auto& item : node) {
    if (!item.IsScalar()) return Problem(key, "expected a list of single values");
    items.push_back(item.Scalar());
  }
  value = std::move(items);
}

namespace {

std::string ChoiceList(const std::vector<std::string>& choices) {
  std::string list;
  for (const auto& choice : choices) list += (list.empty() ? "" : ", ") + choice;
  return list;
}

}  // namespace

void ConfigSection::ReadChoice(std::string_view key, std::string& value,
                               const std::vector<std::string>& choices) {
  std::string read = value;
  Read(key, read);
  for (const auto& choice : choices) {
    if (read == choice) {
      value = read;
      return;
    }
  }
  Problem(key, "'" + read + "' is not one of " + ChoiceList(choices));
}

ConfigSection ConfigSection::ReadChoiceWithSettings(std::string_view key, std::string& value,
                                                    const std::vector<std::string>& choices) {
  YAML::Node node = Get(key);
  ConfigSection none(YAML::Node(), PathOf(key), shared_);
  if (!node.IsDefined() || node.IsNull() || !node.IsMap()) {
    ReadChoice(key, value, choices);
    return none;
  }
  if (node.size() != 1) {
    Problem(key, "names " + std::to_string(node.size()) + " choices; give exactly one of " + ChoiceList(choices));
    return none;
  }
  const std::string name = node.begin()->first.Scalar();
  if (std::find(choices.begin(), choices.end(), name) == choices.end()) {
    Problem(key, "'" + name + "' is not one of " + ChoiceList(choices));
    return none;
  }
  value = name;
  ConfigSection choice(node, PathOf(key), shared_);
  return choice.Section(name);
}

ConfigSection ConfigSection::Section(std::string_view key) {
  YAML::Node node = Get(key);
  if (node.IsDefined() && !node.IsNull() && !node.IsMap()) {
    Problem(key, "expected a mapping of keys");
    return ConfigSection(YAML::Node(), PathOf(key), shared_);
  }
  return ConfigSection(node, PathOf(key), shared_);
}

std::vector<std::string> ConfigSection::Keys() const {
  std::vector<std::string> keys;
  if (!node_.IsMap()) return keys;
  for (const auto& item : node_) keys.push_back(item.first.Scalar());
  return keys;
}

void ConfigSection::RefuseUnknownKeys() {
  if (!node_.IsMap()) return;
  for (const auto& item : node_) {
    const std::string key = item.first.Scalar();
    if (seen_.find(key) == seen_.end()) Problem(key, "unknown key");
  }
}

Result<ConfigDocument> ConfigDocument::Parse(std::string_view text, std::string source) {
  YAML::Node node;
  try {
    // yaml-cpp reports malformed documents only by exception; it stops here.
    node = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return InvalidArgumentError(source + ": not valid YAML at line " + std::to_string(e.mark.line + 1) +
                                ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!node.IsNull() && !node.IsMap()) {
    return InvalidArgumentError(source + ": expected a mapping of keys at the top level");
  }
  auto shared = std::make_shared<ConfigSection::Shared>();
  return ConfigDocument(ConfigSection(node, "", shared), std::move(source), shared);
}

ConfigDocument ConfigDocument::FromTree(YAML::Node root, std::string source, ConfigSpellings spellings,
                                        std::vector<std::string> problems) {
  auto shared = std::make_shared<ConfigSection::Shared>();
  shared->problems = std::move(problems);
  shared->spellings = std::move(spellings);
  return ConfigDocument(ConfigSection(std::move(root), "", shared), std::move(source), shared);
}

Status ConfigDocument::Finish() const {
  if (shared_->problems.empty()) return Status::Ok();
  std::string message = source_ + ": ";
  for (size_t i = 0; i < shared_->problems.size(); ++i) {
    message += (i == 0 ? "" : "; ") + shared_->problems[i];
  }
  return InvalidArgumentError(message);
}

namespace {

std::string LanguagesRead(std::string_view daemon) {
  return std::string(daemon) + " reads YAML (.yaml, .yml) and SPIRE's HCL (.conf, .hcl)";
}

Result<ConfigDocument> ReadYaml(std::string_view text, const std::string& source) {
  SIGIL_ASSIGN_OR_RETURN(ConfigDocument doc, ConfigDocument::Parse(text, source));
  if (doc.root().Has("plugins")) {
    // Sigil's YAML has no `plugins`; SPIRE's JSON form, which YAML reads, has.
    return InvalidArgumentError(source + ": SPIRE's JSON form is not read; write it as SPIRE's HCL or as YAML");
  }
  return doc;
}

Result<ConfigDocument> ReadHcl(std::string_view text, const std::string& source, SpireTranslation translate) {
  SIGIL_ASSIGN_OR_RETURN(YAML::Node tree, ParseHcl(text, source));
  return translate(tree, source);
}

}  // namespace

Result<ConfigDocument> ReadConfigDocument(std::string_view text, const std::string& source, std::string_view daemon,
                                          SpireTranslation translate) {
  const std::string extension = std::filesystem::path(source).extension().string();
  const bool named_hcl = extension == ".conf" || extension == ".hcl";
  const bool named_yaml = extension == ".yaml" || extension == ".yml";
  auto first = named_hcl ? ReadHcl(text, source, translate) : ReadYaml(text, source);
  if (first.ok()) return first;
  auto second = named_hcl ? ReadYaml(text, source) : ReadHcl(text, source, translate);
  if (second.ok()) return second;
  if (named_hcl || named_yaml) {
    return InvalidArgumentError(first.status().message() + " (read as " + (named_hcl ? "SPIRE's HCL" : "YAML") +
                                "; " + LanguagesRead(daemon) + ")");
  }
  return InvalidArgumentError(source + ": neither YAML nor HCL (as YAML, " + first.status().message() +
                              "; as HCL, " + second.status().message() + "); " + LanguagesRead(daemon));
}

namespace {

// Go's isShellSpecialVar: one character is the whole name ($1, $$, $?).
bool IsShellSpecialVar(char c) { return std::string_view("*#$@!?-0123456789").find(c) != std::string_view::npos; }

bool IsShellNameChar(char c) { return c == '_' || std::isalnum(static_cast<unsigned char>(c)); }

// Go's getShellName for the text after a '$': the name and how many characters it took. An
// empty name that took characters is bad syntax (`${}`, an unclosed `${`), dropped as Go does.
std::pair<std::string_view, size_t> ShellName(std::string_view s) {
  if (s[0] == '{') {
    if (s.size() > 2 && IsShellSpecialVar(s[1]) && s[2] == '}') return {s.substr(1, 1), 3};
    const size_t close = s.find('}', 1);
    if (close == std::string_view::npos) return {{}, 1};
    if (close == 1) return {{}, 2};
    return {s.substr(1, close - 1), close + 1};
  }
  if (IsShellSpecialVar(s[0])) return {s.substr(0, 1), 1};
  size_t length = 0;
  while (length < s.size() && IsShellNameChar(s[length])) ++length;
  return {s.substr(0, length), length};
}

}  // namespace

std::string ExpandEnv(std::string_view text, const EnvLookup& lookup) {
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  while (at < text.size()) {
    const char c = text[at];
    if (c != '$' || at + 1 == text.size()) {
      out += c;
      ++at;
      continue;
    }
    const auto [name, taken] = ShellName(text.substr(at + 1));
    if (name.empty() && taken == 0) {
      out += '$';  // no name follows: the '$' stays
    } else if (name == "$") {
      out += '$';  // SPIRE's escape of a '$'
    } else if (!name.empty()) {
      const char* value = lookup(std::string(name).c_str());
      if (value != nullptr) out += value;
    }
    at += 1 + taken;
  }
  return out;
}

void ReadLogLevel(ConfigSection& section, std::string_view flag, std::string& level) {
  std::string read = level;
  section.Read("log_level", read);
  if (!flag.empty()) read = flag;
  std::transform(read.begin(), read.end(), read.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* known : {"debug", "info", "warn", "error"}) {
    if (read == known) {
      level = read;
      return;
    }
  }
  section.Problem("log_level", "'" + read + "' is not one of debug, info, warn, error");
}

void ReadLogFormat(ConfigSection& section, std::string_view flag, std::string& format) {
  std::string read = format;
  section.Read("log_format", read);
  if (!flag.empty()) read = flag;
  std::transform(read.begin(), read.end(), read.begin(), [](unsigned char c) { return std::tolower(c); });
  if (read == "text" || read == "json") {
    format = read;
    return;
  }
  section.Problem("log_format", "'" + read + "' is not one of text, json");
}

void ReadHealthChecks(ConfigSection section, HealthCheckConfig& config) {
  section.Read("listener_enabled", config.listener_enabled);
  section.Read("bind_address", config.bind_address);
  section.Read("bind_port", config.bind_port, 0, 65535);
  section.Read("live_path", config.live_path);
  section.Read("ready_path", config.ready_path);
  if (config.live_path.empty() || config.live_path[0] != '/') section.Problem("live_path", "must start with '/'");
  if (config.ready_path.empty() || config.ready_path[0] != '/') section.Problem("ready_path", "must start with '/'");
  section.RefuseUnknownKeys();
}

void ReadTelemetry(ConfigSection section, PrometheusConfig& config) {
  ConfigSection prometheus = section.Section("prometheus");
  prometheus.Read("host", config.host);
  prometheus.Read("port", config.port, 0, 65535);
  if (config.host.empty()) prometheus.Problem("host", "must not be empty");
  prometheus.RefuseUnknownKeys();
  section.RefuseUnknownKeys();
}

}  // namespace sigil
