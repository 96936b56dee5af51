#include "transport/peer_auth.h"

#include <algorithm>

namespace sigil::transport {

Authorizer AuthorizeAny() {
  return [](const SpiffeId&) { return Status::Ok(); };
}

Authorizer AuthorizeMemberOf(TrustDomain trust_domain) {
  return [td = std::move(trust_domain)](const SpiffeId& peer) {
    if (peer.MemberOf(td)) return Status::Ok();
    return PermissionDeniedError("peer " + peer.str() + " is not a member of " + td.name());
  };
}

Authorizer AuthorizeId(SpiffeId id) {
  return [want = std::move(id)](const SpiffeId& peer) {
    if (peer == want) return Status::Ok();
    return PermissionDeniedError("peer " + peer.str() + " is not " + want.str());
  };
}

Authorizer AuthorizeOneOf(std::vector<SpiffeId> ids) {
  std::sort(ids.begin(), ids.end());
  return [ids = std::move(ids)](const SpiffeId& peer) {
    if (std::binary_search(ids.begin(), ids.end(), peer)) return Status::Ok();
    return PermissionDeniedError("peer " + peer.str() + " is not among the " +
                                 std::to_string(ids.size()) + " allowed IDs");
  };
}

}  // namespace sigil::transport
