// tpm_devid node attestation: the agent sends its DevID certificate and the TPM's EK evidence,
// then answers serverd's challenge (proof of possession of the DevID key and credential
// activation against the EK); serverd answers with
// spiffe://<td>/spire/agent/tpm_devid/<fingerprint>. Chosen when config has a tpm_devid section.
//
// Thread safety: as NodeAttestor. The TPM is opened for one attestation and closed after it:
// between attestations it is other programs' too.
#pragma once

#include "agentd/attestor/node_attestor.h"
#include "hw/tpm_devid.h"

namespace sigil::agentd {

class TpmDevIdNodeAttestor : public NodeAttestor {
 public:
  static NodeAttestorPlugin Plugin();

  explicit TpmDevIdNodeAttestor(hw::TpmDevIdConfig config) : config_(std::move(config)) {}
  Result<AgentSvidAnswer> Attest(ServerClient& server, const Bytes& csr) override;

 private:
  hw::TpmDevIdConfig config_;
};

}  // namespace sigil::agentd
