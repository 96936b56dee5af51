// Who may talk to whom over mutual TLS: the trust bundle that peers' X509-SVIDs must chain
// to, the check that turns a verified certificate chain into the peer's SPIFFE ID, and the
// authorisers that decide whether that ID is welcome.
//
// A TrustBundle is immutable; TrustBundleSource holds the current one and may be swapped at
// run time (bundle rotation): every handshake that starts after Set() verifies against the new
// roots, without restarting listeners or rebuilding TLS contexts.
//
// Thread safety: TrustBundle and Authorizer are immutable and shareable across threads.
// TrustBundleSource::Set() and Current() may be called from any thread at once.
#pragma once

#include <openssl/x509.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/openssl_util.h"
#include "core/spiffe_id.h"
#include "core/status.h"

namespace sigil::transport {

// The X.509 roots of one trust domain.
class TrustBundle {
 public:
  static Result<std::shared_ptr<const TrustBundle>> Create(TrustDomain trust_domain,
                                                           const std::vector<X509*>& roots);
  // Reads concatenated PEM certificates.
  static Result<std::shared_ptr<const TrustBundle>> FromPem(TrustDomain trust_domain,
                                                            std::string_view pem);

  const TrustDomain& trust_domain() const { return trust_domain_; }
  X509_STORE* store() const { return store_.get(); }
  size_t size() const { return size_; }

 private:
  TrustBundle(TrustDomain td, X509StorePtr store, size_t size)
      : trust_domain_(std::move(td)), store_(std::move(store)), size_(size) {}
  TrustDomain trust_domain_;
  X509StorePtr store_;
  size_t size_;
};

class TrustBundleSource {
 public:
  explicit TrustBundleSource(std::shared_ptr<const TrustBundle> initial)
      : current_(std::move(initial)) {}

  std::shared_ptr<const TrustBundle> Current() const {
    std::lock_guard lock(mu_);
    return current_;
  }
  void Set(std::shared_ptr<const TrustBundle> bundle) {
    std::lock_guard lock(mu_);
    current_ = std::move(bundle);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const TrustBundle> current_;
};

// The SPIFFE ID in a certificate: exactly one URI SAN, and it must parse as a SPIFFE ID.
Result<SpiffeId> SpiffeIdFromCertificate(X509* cert);

// Verifies an X509-SVID chain presented by a peer: `leaf` (with `intermediates`, which may be
// null) must chain to `bundle` at the current time, the leaf must not be a CA, and its SPIFFE
// ID must belong to the bundle's trust domain. Returns the peer's ID.
//
// Kept as one function so the full X509-SVID checker in core/ can take its place.
Result<SpiffeId> VerifyX509SvidChain(X509* leaf, STACK_OF(X509) * intermediates,
                                     const TrustBundle& bundle);

// Decides whether an authenticated peer may proceed; OK or PermissionDenied naming the ID.
using Authorizer = std::function<Status(const SpiffeId& peer)>;

Authorizer AuthorizeAny();
Authorizer AuthorizeMemberOf(TrustDomain trust_domain);
Authorizer AuthorizeId(SpiffeId id);
Authorizer AuthorizeOneOf(std::vector<SpiffeId> ids);

}  // namespace sigil::transport
