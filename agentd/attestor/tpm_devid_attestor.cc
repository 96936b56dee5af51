#include "agentd/attestor/tpm_devid_attestor.h"

#include "core/tpm_devid.h"
#include "core/wire/convert.h"

namespace sigil::agentd {

NodeAttestorPlugin TpmDevIdNodeAttestor::Plugin() {
  return {
      .name = "tpm_devid",
      .configured_by = "a tpm_devid section",
      .configured = [](const AgentConfig& config) { return config.tpm_devid.has_value(); },
      .create = [](const AgentConfig& config) -> Result<std::unique_ptr<NodeAttestor>> {
        return std::unique_ptr<NodeAttestor>(std::make_unique<TpmDevIdNodeAttestor>(*config.tpm_devid));
      },
  };
}

Result<AgentSvidAnswer> TpmDevIdNodeAttestor::Attest(ServerClient& server, const Bytes& csr) {
  SIGIL_ASSIGN_OR_RETURN(auto tpm, hw::TpmDevIdAgent::Open(config_));
  SIGIL_ASSIGN_OR_RETURN(TpmDevIdEvidence evidence, tpm->MakeEvidence());
  auto request = [&](auto build_data) {
    flatbuffers::FlatBufferBuilder builder(4096);
    auto [type, data] = build_data(builder);
    auto csr_vector = builder.CreateVector(csr);
    return wire::FinishMessage(builder, wire::CreateAttestationRequest(builder, type, data, csr_vector));
  };
  SIGIL_ASSIGN_OR_RETURN(AttestAnswer first, server.Attest(request([&](flatbuffers::FlatBufferBuilder& b) {
    return std::pair{wire::AttestationData::TpmDevIdAttestation, wire::TpmDevIdEvidenceToWire(b, evidence).Union()};
  })));
  auto* challenge = std::get_if<TpmDevIdChallenge>(&first);
  if (challenge == nullptr) return InternalError("serverd answered tpm_devid evidence without a challenge");
  SIGIL_ASSIGN_OR_RETURN(TpmDevIdAnswer answer, tpm->AnswerChallenge(*challenge));
  SIGIL_ASSIGN_OR_RETURN(AttestAnswer second, server.Attest(request([&](flatbuffers::FlatBufferBuilder& b) {
    return std::pair{wire::AttestationData::TpmDevIdChallengeAnswer, wire::TpmDevIdAnswerToWire(b, answer).Union()};
  })));
  auto* svid = std::get_if<AgentSvidAnswer>(&second);
  if (svid == nullptr) return InternalError("serverd answered a challenge answer with another challenge");
  return std::move(*svid);
}

}  // namespace sigil::agentd
