// Trust bundles: the keys a trust domain's identities verify against, in the SPIFFE Trust
// Domain and Bundle standard's forms.
//
//  - X509Bundle: the X.509 authorities (CA certificates) X509-SVIDs chain to.
//  - JwtBundle: the JWT authorities, public keys by key ID ("kid"), JWT-SVIDs verify against.
//  - TrustBundle: both, with the bundle's sequence number and refresh hint, emitted and parsed
//    as a SPIFFE JWKS document, or its X.509 part alone as concatenated PEM.
//
// JWKS: each X.509 authority is a key with "use": "x509-svid" and exactly one certificate in
// "x5c"; each JWT authority a key with "use": "jwt-svid" and a "kid". Keys are EC (P-256,
// P-384) or RSA. Keys of any other "use" are skipped on parse, as the standard asks, so a
// bundle from a newer peer still loads. A JWT authority's expiry is Sigil's bookkeeping and is
// not carried in JWKS.
//
// Thread safety: values. Copies share the immutable OpenSSL objects (reference counted), so a
// bundle may be copied and read from any number of threads; do not mutate a shared copy.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/openssl_util.h"
#include "core/spiffe_id.h"
#include "core/status.h"

namespace sigil {

// New owning references to shared OpenSSL objects.
X509Ptr UpRef(X509* cert);
EvpPkeyPtr UpRef(EVP_PKEY* key);

struct X509Bundle {
  explicit X509Bundle(TrustDomain td) : trust_domain(std::move(td)) {}
  X509Bundle(const X509Bundle& other);
  X509Bundle& operator=(const X509Bundle& other);
  X509Bundle(X509Bundle&&) = default;
  X509Bundle& operator=(X509Bundle&&) = default;

  // Adds a reference to `cert`; a certificate already present (same DER) is not added twice.
  void Add(X509* cert);
  std::vector<X509*> raw() const;

  TrustDomain trust_domain;
  std::vector<X509Ptr> authorities;
};

struct JwtAuthority {
  JwtAuthority() = default;
  JwtAuthority(EvpPkeyPtr key, std::optional<std::chrono::system_clock::time_point> expiry = {})
      : public_key(std::move(key)), expires_at(expiry) {}
  JwtAuthority(const JwtAuthority& other);
  JwtAuthority& operator=(const JwtAuthority& other);
  JwtAuthority(JwtAuthority&&) = default;
  JwtAuthority& operator=(JwtAuthority&&) = default;

  EvpPkeyPtr public_key;
  std::optional<std::chrono::system_clock::time_point> expires_at;
};

struct JwtBundle {
  explicit JwtBundle(TrustDomain td) : trust_domain(std::move(td)) {}

  TrustDomain trust_domain;
  std::map<std::string, JwtAuthority, std::less<>> authorities;  // by key ID
};

struct TrustBundle {
  explicit TrustBundle(TrustDomain td) : x509(td), jwt(td) {}

  const TrustDomain& trust_domain() const { return x509.trust_domain; }

  X509Bundle x509;
  JwtBundle jwt;
  uint64_t sequence = 0;                // spiffe_sequence; 0: not set
  std::chrono::seconds refresh_hint{0};  // spiffe_refresh_hint; 0: not set
  // SPIRE's tainted authorities: still trusted, but an operator suspects their keys, so every
  // identity they issued is to be replaced now, not at its half-life. X.509 authorities by
  // X509AuthorityId (x509_ca.h), JWT authorities by key ID. Carried between serverd and its
  // agents only: a SPIFFE JWKS has no place for them.
  std::set<std::string, std::less<>> tainted_x509_authorities;
  std::set<std::string, std::less<>> tainted_jwt_authorities;
};

// The SPIFFE JWKS document of `bundle`.
Result<std::string> TrustBundleToJwks(const TrustBundle& bundle);

// The JWT authorities alone as a plain JWKS, the form OIDC relying parties read (an OIDC
// discovery document's jwks_uri): each key with its "kid" and "alg", and "use": "sig" when
// `set_key_use`; no SPIFFE members.
Result<std::string> JwtAuthoritiesToOidcJwks(const JwtBundle& bundle, bool set_key_use);

// Parses a SPIFFE JWKS document for trust domain `td`. InvalidArgument naming the key (by
// index) and field that is wrong: not JSON, "keys" missing, an x509-svid key without exactly
// one x5c certificate or whose parameters do not match that certificate, a jwt-svid key
// without kid, a duplicate kid, an unsupported key type or curve.
Result<TrustBundle> TrustBundleFromJwks(const TrustDomain& td, std::string_view jwks);

// Concatenated PEM certificates, in order.
Result<std::string> CertsToPem(std::span<X509* const> certs);
// Every certificate in `pem`; InvalidArgument when there is none or one does not parse.
Result<std::vector<X509Ptr>> CertsFromPem(std::string_view pem);

// The X.509 authorities of a bundle as PEM and back.
Result<std::string> X509BundleToPem(const X509Bundle& bundle);
Result<X509Bundle> X509BundleFromPem(const TrustDomain& td, std::string_view pem);

// DER of one certificate.
Result<Bytes> CertToDer(X509* cert);
// One certificate from DER; trailing bytes are an error.
Result<X509Ptr> CertFromDer(std::span<const uint8_t> der);

}  // namespace sigil
