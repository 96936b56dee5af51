#include "core/spire_config.h"

#include <algorithm>
#include <filesystem>

namespace sigil::spire {
namespace {

std::string Quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string Join(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

YAML::Node Text(const std::string& text) { return YAML::Node(text); }

class Translator {
 public:
  Translator(const Mapping& mapping, Translation& out) : mapping_(mapping), out_(out) {}

  void Top(const YAML::Node& root);

 private:
  void Block(const YAML::Node& block, std::span<const Key> keys, const std::string& path);
  void Apply(const Key& key, const YAML::Node& value, const std::string& path);
  void Plugins(const YAML::Node& plugins);
  void PluginsOfType(const PluginType& type, const YAML::Node& by_name, const std::string& path);
  bool OnePlugin(const PluginType& type, const std::string& name, const YAML::Node& block, const std::string& path);
  void Problem(const std::string& path, std::string_view message) {
    out_.problems.push_back(path + ": " + std::string(message));
  }

  const Mapping& mapping_;
  Translation& out_;
};

// ParseHcl gives a mapping for every document; its top level is a block like any other but for
// `plugins`, whose blocks are found by their type and name.
void Translator::Top(const YAML::Node& root) { Block(root, mapping_.top, ""); }

void Translator::Block(const YAML::Node& block, std::span<const Key> keys, const std::string& path) {
  if (!block.IsDefined() || block.IsNull()) return;
  if (!block.IsMap()) return Problem(path, "expected a block { ... }");
  for (const auto& item : block) {
    const std::string key = item.first.Scalar();
    if (path.empty() && key == "plugins") {
      Plugins(item.second);
      continue;
    }
    const auto rule = std::find_if(keys.begin(), keys.end(), [&](const Key& k) { return k.spire == key; });
    if (rule == keys.end()) {
      Problem(Join(path, key), "unknown key");
    } else {
      Apply(*rule, item.second, Join(path, key));
    }
  }
}

void Translator::Apply(const Key& key, const YAML::Node& value, const std::string& path) {
  const std::string text = value.IsScalar() ? value.Scalar() : "";
  switch (key.rule) {
    case Rule::kCopy:
      return Set(out_, key.sigil, value, path);
    case Rule::kOnlyElement:
      if (!value.IsSequence()) return Set(out_, key.sigil, value, path);
      if (value.size() > 1) {
        return Problem(path, "lists " + std::to_string(value.size()) + " values, and Sigil takes one; give one");
      }
      return Set(out_, key.sigil, value.size() == 1 ? value[0] : Text(""), path);
    case Rule::kDevicePath:
      // Unset or empty, SPIRE looks for the TPM; Sigil's default is the kernel's resource manager.
      if (value.IsScalar() && text.empty()) return;
      return Set(out_, key.sigil, value.IsScalar() ? Text("device:" + text) : value, path);
    case Rule::kStem:
      return Set(out_, key.sigil,
                 value.IsScalar() ? Text(std::filesystem::path(text).replace_extension().string()) : value, path);
    case Rule::kBlock:
      return Block(value, key.keys, path);
    case Rule::kMatches:
      if (value.IsScalar() && text == key.expected) return;
      return Problem(path, (value.IsScalar() && !key.secret ? Quoted(text) + " " : std::string()) +
                               std::string(key.why));
    case Rule::kCheckedAfter:
      out_.checked[std::string(key.sigil)] = Checked{path, value};
      return;
    case Rule::kRefuse:
      if (value.IsMap() && value.size() == 0) return;  // an empty block asks for nothing
      return Problem(path, key.why);
  }
}

void Translator::Plugins(const YAML::Node& plugins) {
  if (!plugins.IsDefined() || plugins.IsNull()) return;
  if (!plugins.IsMap()) return Problem("plugins", "expected a block plugins { ... }");
  for (const auto& item : plugins) {
    const std::string type_name = item.first.Scalar();
    const std::string path = "plugins." + type_name;
    const auto type = std::find_if(mapping_.plugin_types.begin(), mapping_.plugin_types.end(),
                                   [&](const PluginType& t) { return t.type == type_name; });
    if (type == mapping_.plugin_types.end()) {
      std::string known;
      for (const PluginType& t : mapping_.plugin_types) known += (known.empty() ? "" : ", ") + std::string(t.type);
      Problem(path, "is not a plugin type; the types are " + known);
      continue;
    }
    PluginsOfType(*type, item.second, path);
  }
}

void Translator::PluginsOfType(const PluginType& type, const YAML::Node& by_name, const std::string& path) {
  if (!by_name.IsMap()) {
    return Problem(path, "expected " + std::string(type.type) + " \"<name>\" { plugin_data { ... } }");
  }
  std::vector<std::string> enabled;
  for (const auto& item : by_name) {
    const std::string name = item.first.Scalar();
    const std::string plugin_path = path + " " + Quoted(name);
    if (!type.why.empty()) {
      Problem(plugin_path, type.why);
    } else if (OnePlugin(type, name, item.second, plugin_path)) {
      enabled.push_back(name);
    }
  }
  if (type.at_most_one && enabled.size() > 1) {
    std::string names;
    for (const std::string& name : enabled) names += (names.empty() ? "" : ", ") + Quoted(name);
    Problem(path, "names " + names + "; give one, as SPIRE takes one " + std::string(type.type));
  }
}

// True when the plugin is named, enabled and available (its problems recorded otherwise).
bool Translator::OnePlugin(const PluginType& type, const std::string& name, const YAML::Node& block,
                           const std::string& path) {
  if (!block.IsMap()) {
    Problem(path, "expected a block { plugin_data { ... } }");
    return false;
  }
  bool enabled = true;
  YAML::Node data;
  for (const auto& item : block) {
    const std::string key = item.first.Scalar();
    if (key == "plugin_data") {
      data.reset(item.second);
    } else if (key == "enabled") {
      if (!item.second.IsScalar() || !YAML::convert<bool>::decode(item.second, enabled)) {
        Problem(Join(path, key), "expected true or false");
      }
    } else if (key == "plugin_cmd" || key == "plugin_checksum") {
      Problem(Join(path, key), "Sigil runs no external plugins; its plugins are built in");
    } else if (key == "plugin_data_file") {
      Problem(Join(path, key), "is not read; write the settings in plugin_data { ... }");
    } else {
      Problem(Join(path, key), "unknown key");
    }
  }
  if (!enabled) return false;
  const auto plugin = std::find_if(mapping_.plugins.begin(), mapping_.plugins.end(),
                                   [&](const Plugin& p) { return p.type == type.type && p.name == name; });
  if (plugin == mapping_.plugins.end()) {
    std::string names;
    for (const Plugin& p : mapping_.plugins) {
      if (p.type == type.type && p.why.empty()) names += (names.empty() ? "" : ", ") + std::string(p.name);
    }
    Problem(path, "is not available in Sigil; its " + std::string(type.type) + " plugins are " + names);
    return false;
  }
  if (!plugin->why.empty()) {
    Problem(path, plugin->why);
    return false;
  }
  out_.plugins[std::string(type.type)].push_back(name);
  const std::string data_path = path + ".plugin_data";
  if (!plugin->sigil.empty()) {
    Set(out_, plugin->sigil, YAML::Node(YAML::NodeType::Map), data_path);
  }
  for (const Setting& setting : plugin->sets) Set(out_, setting.sigil, Text(std::string(setting.value)), path);
  Block(data, plugin->data, data_path);
  return true;
}

std::vector<std::string> Components(std::string_view dotted) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= dotted.size()) {
    const size_t dot = std::min(dotted.find('.', start), dotted.size());
    parts.emplace_back(dotted.substr(start, dot - start));
    start = dot + 1;
  }
  return parts;
}

}  // namespace

void Set(Translation& translation, std::string_view sigil, const YAML::Node& value, const std::string& spire_path) {
  const std::vector<std::string> parts = Components(sigil);
  auto problem = [&](const std::string& at) {
    std::string by = at;
    for (const auto& [prefix, spelled] : translation.spellings) {
      if (prefix == at) by = spelled;
    }
    translation.problems.push_back(spire_path + ": sets what " + by + " already set; give one of the two");
  };
  YAML::Node node;
  node.reset(translation.tree);
  std::string at;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    at = at.empty() ? parts[i] : at + "." + parts[i];
    if (!node[parts[i]].IsMap()) {
      if (node[parts[i]].IsDefined() && !node[parts[i]].IsNull()) return problem(at);
      node[parts[i]] = YAML::Node(YAML::NodeType::Map);
    }
    YAML::Node child = node[parts[i]];
    node.reset(child);
  }
  const std::string& last = parts.back();
  const std::string full(sigil);
  if (node[last].IsDefined()) {
    // A plugin's section made before its data fills it is not a second setting.
    if (value.IsMap() && value.size() == 0 && node[last].IsMap()) return;
    return problem(full);
  }
  node[last] = value;
  translation.spellings.emplace_back(full, spire_path);
}

Translation Translate(const YAML::Node& hcl, const Mapping& mapping) {
  Translation translation;
  Translator(mapping, translation).Top(hcl);
  return translation;
}

ConfigDocument Document(Translation translation, const std::string& source) {
  return ConfigDocument::FromTree(translation.tree, source, std::move(translation.spellings),
                                  std::move(translation.problems));
}

}  // namespace sigil::spire
