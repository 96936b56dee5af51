// Node attestors: how serverd learns which host an agent runs on. Each takes the attestation
// data of one or more kinds in an AttestationRequest (core/wire/attestation.fbs) and either
// proves the host or answers with a challenge the agent must answer in a later request.
//
// Attestors are plug-ins: each registers a NodeAttestorPlugin by name (attestor/registrations.cc),
// the node_attestors: section of the config chooses and configures them, and the agent API sees
// only this interface.
//
// Thread safety: Attest may be called from several worker threads at once, never from an
// event loop: it may read and write the datastore and do RSA, ECDSA or TPM work.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/openssl_util.h"
#include "core/plugin_registry.h"
#include "core/selector.h"
#include "core/status.h"
#include "core/wire/messages_generated.h"

namespace sigil::serverd {

class Datastore;

// What node attestation proved about a host.
struct AttestedHost {
  std::string agent_path;        // below /spire/agent/, e.g. "join_token/<token>"
  std::string attestation_type;  // the attestor's name, recorded with the agent
  std::vector<Selector> selectors;
  // A join token to spend in the transaction that records the agent, once its SVID is signed;
  // empty when the proof spends nothing.
  std::string join_token;
};

// One step of node attestation: the host is proven, or the agent must answer `challenge` (a
// finished wire message, sent back as the answer to this request).
struct AttestationStep {
  std::optional<AttestedHost> host;
  Bytes challenge;
};

class NodeAttestor {
 public:
  virtual ~NodeAttestor() = default;

  // The name in config and in the agent's record: "join_token", "tpm_devid".
  virtual std::string_view name() const = 0;
  // The kinds of attestation data it takes (a challenge's answer included).
  virtual std::vector<wire::AttestationData> data_types() const = 0;
  // PermissionDenied naming the check that failed; InvalidArgument for data that does not
  // parse. Called after the request's CSR was checked. Spends nothing that a failure after it
  // (signing, recording the agent) would waste: see AttestedHost::join_token.
  virtual Result<AttestationStep> Attest(const wire::AttestationRequest& request) = 0;
};

// What serverd hands an attestor when it makes one, at start.
struct NodeAttestorDeps {
  Datastore& store;
};

using MakeNodeAttestor = std::function<Result<std::unique_ptr<NodeAttestor>>(const NodeAttestorDeps&)>;

struct NodeAttestorPlugin {
  std::string name;
  // On when node_attestors: does not name it (join_token, as SPIRE's quickstart expects);
  // `<name>: {enabled: false}` turns it off.
  bool on_by_default = false;
  // Reads the attestor's own section of node_attestors: (recording problems on it, unknown keys
  // included) and returns what makes the attestor once serverd's datastore is open.
  std::function<MakeNodeAttestor(ConfigSection& section)> configure;
};

using NodeAttestorRegistry = PluginRegistry<NodeAttestorPlugin>;

// The attestors this build has (attestor/registrations.cc).
const NodeAttestorRegistry& NodeAttestors();

struct ConfiguredNodeAttestor {
  std::string name;
  MakeNodeAttestor make;
};

// The attestors `section` (node_attestors:) turns on, in registration order: each one it names
// (unless `enabled: false`) and each on by default that it does not turn off. A name the
// registry does not know is a problem naming the known ones.
std::vector<ConfiguredNodeAttestor> ReadNodeAttestors(ConfigSection& section,
                                                      const NodeAttestorRegistry& registry = NodeAttestors());

}  // namespace sigil::serverd
