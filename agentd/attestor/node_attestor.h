// The agent's side of node attestation: proving this host to serverd once, for the key of a new
// agent SVID, and receiving that SVID. Each way of proving (join_token, tpm_devid) is a
// NodeAttestor registered by name in attestor/registrations.cc; config chooses one.
//
// Thread safety: Attest blocks on serverd and, for some attestors, on hardware (the TPM): call
// it from a thread of the agent's own, never from an event loop. A NodeAttestor is used by one
// thread at a time; the registry may be read from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agentd/agent_config.h"
#include "agentd/sync/server_client.h"
#include "core/plugin_registry.h"
#include "core/status.h"

namespace sigil::agentd {

class NodeAttestor {
 public:
  virtual ~NodeAttestor() = default;
  // Proves the host to `server` for the key that signed `csr` (PKCS#10 DER); serverd answers
  // with the agent's SVID for that key.
  virtual Result<AgentSvidAnswer> Attest(ServerClient& server, const Bytes& csr) = 0;
};

struct NodeAttestorPlugin {
  std::string name;
  // What an operator sets to choose it, for the message when nothing is chosen.
  std::string configured_by;
  // True when `config` asks for this attestor.
  std::function<bool(const AgentConfig&)> configured;
  std::function<Result<std::unique_ptr<NodeAttestor>>(const AgentConfig&)> create;
};

using NodeAttestorRegistry = PluginRegistry<NodeAttestorPlugin>;

// The attestors this build has (attestor/registrations.cc).
const NodeAttestorRegistry& NodeAttestors();

// The first attestor of `registry` that `config` asks for, made from `config`.
// FailedPrecondition saying what to configure when none is asked for.
Result<std::unique_ptr<NodeAttestor>> ChooseNodeAttestor(const AgentConfig& config, std::string* chosen_name,
                                                         const NodeAttestorRegistry& registry = NodeAttestors());

}  // namespace sigil::agentd
