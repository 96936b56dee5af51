#include "serverd/attestor/node_attestor.h"

#include <algorithm>

namespace sigil::serverd {

std::vector<ConfiguredNodeAttestor> ReadNodeAttestors(ConfigSection& section, const NodeAttestorRegistry& registry) {
  const std::vector<std::string> named = section.Keys();
  for (const std::string& name : named) {
    if (auto known = registry.Find(name); !known.ok()) section.Problem(name, known.status().message());
  }
  std::vector<ConfiguredNodeAttestor> configured;
  for (const NodeAttestorPlugin& plugin : registry.plugins()) {
    const bool is_named = std::find(named.begin(), named.end(), plugin.name) != named.end();
    if (!is_named && !plugin.on_by_default) continue;
    ConfigSection own = section.Section(plugin.name);
    bool enabled = true;
    own.Read("enabled", enabled);
    if (!enabled) {
      own.RefuseUnknownKeys();
      continue;
    }
    configured.push_back({plugin.name, plugin.configure(own)});
  }
  return configured;
}

}  // namespace sigil::serverd
