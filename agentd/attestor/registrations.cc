// Every attestor this build has, one line each. A new attestor is its own files and a line
// here; nothing else changes.
#include "agentd/attestor/join_token_attestor.h"
#include "agentd/attestor/node_attestor.h"
#include "agentd/attestor/tpm_devid_attestor.h"
#include "agentd/attestor/unix_attestor.h"
#include "agentd/attestor/workload_attestor.h"
#include "core/log.h"

namespace sigil::agentd {

namespace {

template <typename Registry, typename Plugin>
void Add(Registry& registry, Plugin plugin) {
  // Two attestors of one name are a mistake in this file, found by the first test that starts.
  if (Status added = registry.Register(std::move(plugin)); !added.ok()) LogError(added.ToString());
}

}  // namespace

const NodeAttestorRegistry& NodeAttestors() {
  // In order of preference: the first whose config is present is used.
  static const NodeAttestorRegistry registry = [] {
    NodeAttestorRegistry r("node attestor");
    Add(r, TpmDevIdNodeAttestor::Plugin());
    Add(r, JoinTokenNodeAttestor::Plugin());
    return r;
  }();
  return registry;
}

const WorkloadAttestorRegistry& WorkloadAttestors() {
  static const WorkloadAttestorRegistry registry = [] {
    WorkloadAttestorRegistry r("workload attestor");
    Add(r, UnixWorkloadAttestor::Plugin());
    return r;
  }();
  return registry;
}

}  // namespace sigil::agentd
