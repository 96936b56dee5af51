// Plug-ins by name: each kind of plug-in (serverd's node attestors, agentd's node and workload
// attestors) has one registry, filled by its daemon's attestor/registrations.cc, so a new
// attestor is its own files plus one line there. Names are what config and logs say
// ("join_token", "tpm_devid", "unix").
//
// Thread safety: a registry is filled once, before it is read; reading is safe from any thread.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace sigil {

// `Plugin` is a struct with a `std::string name` and whatever the kind needs to make one.
template <typename Plugin>
class PluginRegistry {
 public:
  // `kind` names the registry in errors: "node attestor", "workload attestor".
  explicit PluginRegistry(std::string kind) : kind_(std::move(kind)) {}

  // In registration order, which is also the order of preference where a choice is made.
  Status Register(Plugin plugin) {
    if (plugin.name.empty()) return InvalidArgumentError("a " + kind_ + " needs a name");
    if (Find(plugin.name).ok()) return AlreadyExistsError(kind_ + " \"" + plugin.name + "\" is registered twice");
    plugins_.push_back(std::move(plugin));
    return Status::Ok();
  }

  // NotFound naming `name` and the attestors there are.
  Result<const Plugin*> Find(std::string_view name) const {
    auto it = std::find_if(plugins_.begin(), plugins_.end(), [&](const Plugin& p) { return p.name == name; });
    if (it != plugins_.end()) return &*it;
    return NotFoundError("unknown " + kind_ + " \"" + std::string(name) + "\" (known: " + Names() + ")");
  }

  const std::vector<Plugin>& plugins() const { return plugins_; }
  const std::string& kind() const { return kind_; }

  // "a, b, c", for messages.
  std::string Names() const {
    std::string out;
    for (const Plugin& plugin : plugins_) out += (out.empty() ? "" : ", ") + plugin.name;
    return out.empty() ? "none" : out;
  }

 private:
  std::string kind_;
  std::vector<Plugin> plugins_;
};

}  // namespace sigil
