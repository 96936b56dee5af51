#include "serverd/attestor/join_token_attestor.h"

#include "core/openssl_util.h"
#include "core/spiffe_id.h"
#include "core/x509_ca.h"
#include "core/wire/convert.h"

namespace sigil::serverd {

NodeAttestorPlugin JoinTokenAttestor::Plugin() {
  return {.name = "join_token", .on_by_default = true, .configure = [](ConfigSection& section) -> MakeNodeAttestor {
            section.RefuseUnknownKeys();
            return [](const NodeAttestorDeps& deps) -> Result<std::unique_ptr<NodeAttestor>> {
              return std::unique_ptr<NodeAttestor>(std::make_unique<JoinTokenAttestor>(deps.store));
            };
          }};
}

Result<AttestationStep> JoinTokenAttestor::Attest(const wire::AttestationRequest& request) {
  const std::string token = wire::StringOf(request.data_as_JoinTokenAttestation()->token());
  if (token.empty()) return InvalidArgumentError("join token is empty");
  const std::string agent_path = "join_token/" + token;
  // The token becomes a path segment of the agent's ID: refuse one that cannot be, before
  // reading the store.
  SIGIL_RETURN_IF_ERROR(ValidateSpiffeIdPath("/spire/agent/" + agent_path).AddContext("join token"));
  auto found = store_.FetchJoinToken(token);
  if (!found.ok()) {
    if (found.status().code() == Code::kNotFound) return PermissionDeniedError("join token is unknown or was already used");
    return found.status();
  }
  if (found->expires_at <= UnixSeconds(std::chrono::system_clock::now())) {
    return PermissionDeniedError("join token has expired");
  }
  return AttestationStep{
      .host = AttestedHost{.agent_path = agent_path, .attestation_type = "join_token", .join_token = token}};
}

}  // namespace sigil::serverd
