// Who may talk to whom over mutual TLS: the trust bundle that peers' X509-SVIDs must chain
// to, and the authorisers that decide whether the peer's SPIFFE ID is welcome. The chain
// itself is checked by core's X509-SVID checker (core/x509_svid.h).
//
// TrustBundleSource holds the current bundle and may be swapped at run time (bundle
// rotation): every handshake that starts after Set() verifies against the new roots, without
// restarting listeners or rebuilding TLS contexts.
//
// Thread safety: bundles and Authorizers are immutable and shareable across threads.
// TrustBundleSource::Set() and Current() may be called from any thread at once.
#pragma once

#include <openssl/x509.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/openssl_util.h"
#include "core/spiffe_id.h"
#include "core/status.h"
#include "core/swappable.h"
#include "core/trust_bundle.h"

namespace sigil::transport {

// The bundle peers' X509-SVIDs are checked against (core's X509Bundle, by core's
// VerifyX509Svid), swappable at run time.
using TrustBundleSource = Swappable<X509Bundle>;

// Decides whether an authenticated peer may proceed; OK or PermissionDenied naming the ID.
using Authorizer = std::function<Status(const SpiffeId& peer)>;

Authorizer AuthorizeAny();
Authorizer AuthorizeMemberOf(TrustDomain trust_domain);
Authorizer AuthorizeId(SpiffeId id);
Authorizer AuthorizeOneOf(std::vector<SpiffeId> ids);

}  // namespace sigil::transport
