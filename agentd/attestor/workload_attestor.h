// Workload attestation: turning the process at the other end of a Workload API connection into
// selectors, which pick the registration entries it is given. Each kind (unix today) is a
// WorkloadAttestor registered by name in attestor/registrations.cc; the Workload API asks every
// attestor its options name and gives the caller the union of their selectors.
//
// Thread safety: Attest may block (it reads /proc, hashes binaries): call it off the event
// loop. AttestWithoutBlocking may be called on a loop. Both from any thread at once.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/plugin_registry.h"
#include "core/selector.h"
#include "core/status.h"
#include "transport/peer_process.h"
#include "transport/socket_stream.h"

namespace sigil::agentd {

class WorkloadAttestor {
 public:
  virtual ~WorkloadAttestor() = default;
  // The caller's selectors, from the credentials its connection carries. An error when the
  // caller cannot be attested (e.g. it is gone): the call is then refused.
  virtual Result<std::vector<Selector>> Attest(const transport::PeerCredentials& caller) = 0;
  // The same when it can be answered without blocking work (from what the attestor remembers);
  // nullopt when only Attest can answer. `binary_now`: the caller's binary as the Workload API
  // stat'ed it through the held process at the start of this call (nullopt when it did not),
  // so that a remembered caller costs no second stat of /proc.
  virtual std::optional<Result<std::vector<Selector>>> AttestWithoutBlocking(
      const transport::PeerCredentials&, const std::optional<transport::PeerProcess::ExecutableKey>& /*binary_now*/) {
    return std::nullopt;
  }
};

struct WorkloadAttestorPlugin {
  std::string name;
  std::function<Result<std::shared_ptr<WorkloadAttestor>>()> create;
};

using WorkloadAttestorRegistry = PluginRegistry<WorkloadAttestorPlugin>;

// The attestors this build has (attestor/registrations.cc).
const WorkloadAttestorRegistry& WorkloadAttestors();

// The attestor registered as `name`; NotFound naming it and the known ones.
Result<std::shared_ptr<WorkloadAttestor>> MakeWorkloadAttestor(std::string_view name,
                                                               const WorkloadAttestorRegistry& registry = WorkloadAttestors());

}  // namespace sigil::agentd
