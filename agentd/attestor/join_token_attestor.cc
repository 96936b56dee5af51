#include "agentd/attestor/join_token_attestor.h"

namespace sigil::agentd {

NodeAttestorPlugin JoinTokenNodeAttestor::Plugin() {
  return {
      .name = "join_token",
      .configured_by = "agent.join_token or -joinToken",
      .configured = [](const AgentConfig& config) { return !config.join_token.empty(); },
      .create = [](const AgentConfig& config) -> Result<std::unique_ptr<NodeAttestor>> {
        return std::unique_ptr<NodeAttestor>(std::make_unique<JoinTokenNodeAttestor>(config.join_token));
      },
  };
}

Result<AgentSvidAnswer> JoinTokenNodeAttestor::Attest(ServerClient& server, const Bytes& csr) {
  return server.AttestWithJoinToken(token_, csr);
}

}  // namespace sigil::agentd
