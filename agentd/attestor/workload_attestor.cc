#include "agentd/attestor/workload_attestor.h"

namespace sigil::agentd {

Result<std::shared_ptr<WorkloadAttestor>> MakeWorkloadAttestor(std::string_view name,
                                                               const WorkloadAttestorRegistry& registry) {
  SIGIL_ASSIGN_OR_RETURN(const WorkloadAttestorPlugin* plugin, registry.Find(name));
  return plugin->create();
}

}  // namespace sigil::agentd
