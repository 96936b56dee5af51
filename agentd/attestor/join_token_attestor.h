// join_token node attestation: the agent presents a single-use token made by `serverd token
// generate`; serverd answers with spiffe://<td>/spire/agent/join_token/<token>. Chosen when
// agent.join_token (or -joinToken) is set.
//
// Thread safety: as NodeAttestor.
#pragma once

#include "agentd/attestor/node_attestor.h"

namespace sigil::agentd {

class JoinTokenNodeAttestor : public NodeAttestor {
 public:
  static NodeAttestorPlugin Plugin();

  explicit JoinTokenNodeAttestor(std::string token) : token_(std::move(token)) {}
  Result<AgentSvidAnswer> Attest(ServerClient& server, const Bytes& csr) override;

 private:
  std::string token_;
};

}  // namespace sigil::agentd
