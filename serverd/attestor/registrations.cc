// Every node attestor this build has, one line each. A new attestor is its own files and a line
// here; nothing else changes.
#include "core/log.h"
#include "serverd/attestor/join_token_attestor.h"
#include "serverd/attestor/node_attestor.h"
#include "serverd/attestor/tpm_devid_attestor.h"

namespace sigil::serverd {

const NodeAttestorRegistry& NodeAttestors() {
  static const NodeAttestorRegistry registry = [] {
    NodeAttestorRegistry r("node attestor");
    for (NodeAttestorPlugin plugin : {JoinTokenAttestor::Plugin(), TpmDevIdAttestor::Plugin()}) {
      // Two attestors of one name are a mistake in this file, found by the first test that starts.
      if (Status added = r.Register(std::move(plugin)); !added.ok()) LogError(added.ToString());
    }
    return r;
  }();
  return registry;
}

}  // namespace sigil::serverd
