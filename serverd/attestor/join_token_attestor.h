// The join_token node attestor (SPIRE's join_token): a single-use token made by
// `serverd token generate`, with a TTL. The agent becomes
// spiffe://<td>/spire/agent/join_token/<token>.
//
// Thread safety: as NodeAttestor; Attest reads the token from the datastore. The token is spent
// when the agent is recorded, in the same transaction (Datastore::RecordAttestedAgent), so a
// failure before that leaves it usable.
#pragma once

#include "serverd/attestor/node_attestor.h"
#include "serverd/datastore/datastore.h"

namespace sigil::serverd {

class JoinTokenAttestor final : public NodeAttestor {
 public:
  explicit JoinTokenAttestor(Datastore& store) : store_(store) {}
  // On by default; it has no settings.
  static NodeAttestorPlugin Plugin();

  std::string_view name() const override { return "join_token"; }
  std::vector<wire::AttestationData> data_types() const override {
    return {wire::AttestationData::JoinTokenAttestation};
  }
  // PermissionDenied when the token is unknown, already used or expired.
  Result<AttestationStep> Attest(const wire::AttestationRequest& request) override;

 private:
  Datastore& store_;
};

}  // namespace sigil::serverd
