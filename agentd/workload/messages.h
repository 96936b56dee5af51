// The Workload API's response messages, built from one snapshot of the SVID cache for one
// caller's selectors. Plain functions of their inputs: no socket, loop or server is needed to
// call them, and the tests call them directly.
//
// A streaming response is built framed for gRPC (the 5-byte prefix written in place before the
// protobuf bytes) and shared: the Workload API sends the same bytes to every stream of every
// caller with the same selectors without copying them, from here to the HTTP/2 DATA frame.
//
// Thread safety: every function is safe from any thread; a snapshot is immutable.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agentd/sync/svid_cache.h"
#include "core/selector.h"
#include "core/status.h"

namespace sigil::agentd {

// What one caller may see in one snapshot.
struct CallerView {
  std::vector<const RegistrationEntry*> entries;               // ordered by SPIFFE ID, then entry id
  std::vector<std::shared_ptr<const WorkloadX509Svid>> svids;  // same order
  // Federated bundles the caller's entries federate with, by trust domain ID.
  std::map<std::string, std::shared_ptr<const TrustBundle>> federated;
  // Their X.509 authorities' DER, by trust domain ID (from the snapshot, not encoded again).
  std::map<std::string, std::shared_ptr<const std::string>> federated_der;
};
CallerView ViewOf(const SvidCache::Snapshot& snapshot, const SelectorSet& selectors);

// A response message framed for gRPC, shared by every stream that sends it.
class FramedMessage {
 public:
  // `frame` holds transport::kGrpcFramePrefixBytes of room and then the message; sealed here.
  explicit FramedMessage(std::string frame);

  const std::shared_ptr<const std::string>& frame() const { return frame_; }
  // The protobuf bytes: a view into the frame.
  std::string_view payload() const;

 private:
  std::shared_ptr<const std::string> frame_;
};

// The messages a stream carries now: PermissionDenied "no identity issued" when no entry
// matches `selectors`; nullopt while there is nothing to send yet (entries without SVIDs, or
// no bundle yet: the sync is on its way, so the stream waits for it rather than tell a
// legitimate workload it has no identity).
Result<std::optional<FramedMessage>> X509SvidResponseFor(const SvidCache::Snapshot& snapshot,
                                                         const SelectorSet& selectors);
Result<std::optional<FramedMessage>> X509BundlesResponseFor(const SvidCache::Snapshot& snapshot,
                                                            const SelectorSet& selectors);
Result<std::optional<FramedMessage>> JwtBundlesResponseFor(const SvidCache::Snapshot& snapshot,
                                                           const SelectorSet& selectors);

// A JWTSVIDResponse of `svids` in order, with each hint kept only the first time it appears
// (the standard wants hints unique within a response).
struct JwtSvidItem {
  std::string spiffe_id;
  std::string token;
  std::string hint;
};
std::string JwtSvidResponse(const std::vector<JwtSvidItem>& svids);

// A ValidateJWTSVIDResponse from the token's SPIFFE ID and its claims as a serialized
// google.protobuf.Struct.
std::string ValidateJwtSvidResponse(const std::string& spiffe_id, const std::string& claims_struct);

// PermissionDenied "no identity issued", as the standard words it.
Status NoIdentity();

}  // namespace sigil::agentd
