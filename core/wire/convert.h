// Domain values to and from their wire tables, one place for both ends: serverd builds what
// agentd reads with the same functions. Readers take verified messages (wire.h) and still check
// what the verifier cannot: that certificates parse and IDs are well formed.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <span>
#include <string>
#include <vector>

#include "core/openssl_util.h"
#include "core/registration_entry.h"
#include "core/status.h"
#include "core/trust_bundle.h"
#include "core/wire/messages_generated.h"
#include "core/wire/wire.h"

namespace sigil::wire {

// The paths of the agent API (serverd) — HTTP/2 POSTs whose bodies are Envelopes.
inline constexpr const char* kAttestPath = "/sigil.agent.v1.Agent/Attest";
inline constexpr const char* kRenewAgentSvidPath = "/sigil.agent.v1.Agent/RenewAgentSvid";
inline constexpr const char* kSyncEntriesPath = "/sigil.agent.v1.Agent/SyncEntries";
inline constexpr const char* kSignCsrBatchPath = "/sigil.agent.v1.Agent/SignCsrBatch";
inline constexpr const char* kMintJwtSvidPath = "/sigil.agent.v1.Agent/MintJwtSvid";
inline constexpr const char* kContentType = "application/x-sigil-flatbuffers";

flatbuffers::Offset<Outcome> BuildOutcome(flatbuffers::FlatBufferBuilder& builder, const Status& status);
Status StatusFromOutcome(const Outcome* outcome);
// A whole message that is only an Outcome: how a request that failed as a whole is answered.
Bytes OutcomeMessage(const Status& status);

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<Certificate>>> BuildCertificates(
    flatbuffers::FlatBufferBuilder& builder, const std::vector<Bytes>& ders);
std::vector<Bytes> CertificatesFromWire(const flatbuffers::Vector<flatbuffers::Offset<Certificate>>* certs);

Result<flatbuffers::Offset<TrustBundle>> BuildTrustBundle(flatbuffers::FlatBufferBuilder& builder,
                                                          const sigil::TrustBundle& bundle);
// InvalidArgument when a certificate or key does not parse or the trust domain is invalid.
Result<sigil::TrustBundle> TrustBundleFromWire(const TrustBundle* bundle);

flatbuffers::Offset<Entry> BuildEntry(flatbuffers::FlatBufferBuilder& builder, const RegistrationEntry& entry);
RegistrationEntry EntryFromWire(const Entry* entry);

}  // namespace sigil::wire
