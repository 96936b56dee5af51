#include "agentd/attestor/node_attestor.h"

namespace sigil::agentd {

Result<std::unique_ptr<NodeAttestor>> ChooseNodeAttestor(const AgentConfig& config, std::string* chosen_name,
                                                         const NodeAttestorRegistry& registry) {
  std::string ways;
  for (const NodeAttestorPlugin& plugin : registry.plugins()) {
    if (plugin.configured(config)) {
      if (chosen_name != nullptr) *chosen_name = plugin.name;
      return plugin.create(config);
    }
    ways += (ways.empty() ? "" : ", or ") + plugin.configured_by;
  }
  return FailedPreconditionError("nothing to attest with (" + (ways.empty() ? std::string("no ") + registry.kind() + " is built in" : ways) + ")");
}

}  // namespace sigil::agentd
