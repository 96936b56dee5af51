// The X.509 certificate authority of a trust domain, and the templates of what it signs.
//
// A CA is a signing certificate, the chain above it, and a Signer holding its key. The key is
// never an OpenSSL private key: the certificate's TBS part is built with OpenSSL, its DER is
// signed through Signer::SignMessage (a TPM, a PKCS#11 token or a soft key), and the signature
// is set into the certificate. The root, every intermediate and every X509-SVID are built and
// signed by that same code.
//
// Shapes, per the SPIFFE X509-SVID standard:
//  - CA certificates: URI SAN spiffe://<td>, basicConstraints CA:true (critical), keyUsage
//    keyCertSign + cRLSign (critical), SKI, and AKI when issued by another CA.
//  - leaves: basicConstraints CA:false (critical), keyUsage digitalSignature (+ keyEncipherment
//    for RSA keys) critical, EKU serverAuth + clientAuth, SKI and AKI.
//  - serials are 128-bit positive integers, 126 of their bits random.
//  - notAfter never passes the issuing CA's notAfter.
//
// Modes (DESIGN.md): `direct` issues SVIDs from the CA whose key is in the token; `delegated`
// has that CA sign a short-lived intermediate (NewIntermediate) with an in-memory soft key,
// which then issues SVIDs at software speed. Under an existing PKI, FromChain wraps the
// upstream CA (its chain and a Signer for its key) and NewIntermediate makes the trust
// domain's CA beneath it.
//
// Thread safety: an X509Ca is immutable once made; Issue and NewIntermediate may be called from
// any number of threads at once (the Signer is thread-safe; signing may block on hardware, so
// call from worker threads).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/csr.h"
#include "core/openssl_util.h"
#include "core/signer.h"
#include "core/spiffe_id.h"
#include "core/status.h"

namespace sigil {

using TimePoint = std::chrono::system_clock::time_point;

// Seconds since the Unix epoch, as certificates, JWTs and the datastore count time.
inline int64_t UnixSeconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
inline int64_t NowUnixSeconds() { return UnixSeconds(std::chrono::system_clock::now()); }
// Times beyond what the clock holds (its nanoseconds reach the years 1677 to 2262) saturate, so
// a far-off time a peer sends stays far off rather than wrapping into the past.
inline TimePoint FromUnixSeconds(int64_t s) {
  constexpr int64_t kLimit = std::chrono::duration_cast<std::chrono::seconds>(TimePoint::duration::max()).count();
  if (s >= kLimit) return TimePoint::max();
  if (s <= -kLimit) return TimePoint::min();
  return TimePoint(std::chrono::seconds(s));
}

// Subject distinguished name; empty parts are left out.
struct SubjectName {
  std::string country;
  std::string organization;
  std::string common_name;
};

// Everything about a certificate that is not the issuer's.
struct CertTemplate {
  SubjectName subject;
  EVP_PKEY* public_key = nullptr;  // not owned
  TimePoint not_before;
  TimePoint not_after;  // capped at the issuer's notAfter
  bool is_ca = false;
  int path_len = -1;  // CA only; -1 leaves the path length unconstrained
  std::vector<std::string> uri_sans;
  std::vector<std::string> dns_sans;
};

// A certificate as an OpenSSL object and as the DER it was parsed from.
struct IssuedCert {
  X509Ptr cert;
  Bytes der;
};

struct CaOptions {
  SubjectName subject{.country = "US", .organization = "SPIFFE"};
  std::chrono::seconds ttl{std::chrono::hours(24)};
  TimePoint now = std::chrono::system_clock::now();
  int path_len = -1;
};

// Certificates are backdated this much, so a peer whose clock is a little behind accepts them.
inline constexpr std::chrono::seconds kBackdate{10};

class X509Ca {
 public:
  // A self-signed root for `td`, with `key` as its key.
  static Result<X509Ca> NewRoot(const TrustDomain& td, std::shared_ptr<Signer> key,
                                const CaOptions& options);

  // An existing CA: `chain` is its certificate first, then the certificates above it, ending
  // with a self-signed root; `key` holds the first certificate's key. InvalidArgument when the
  // key does not match, the first certificate is not a CA, or the chain does not end at a root.
  static Result<X509Ca> FromChain(const TrustDomain& td, std::vector<X509Ptr> chain,
                                  std::shared_ptr<Signer> key);

  // A CA beneath this one, for `key` (a soft key in delegated mode, the trust domain's token
  // key under an upstream PKI).
  Result<X509Ca> NewIntermediate(std::shared_ptr<Signer> key, const CaOptions& options) const;

  // Signs `tbs` as this CA. InvalidArgument when the template is unusable (no key, a key
  // CheckCertifiableKey refuses, a lifetime that ends before it starts); FailedPrecondition
  // when this CA is not valid for any of it.
  Result<IssuedCert> Issue(const CertTemplate& tbs) const;

  // As Issue, DER only. Parsing a certificate back costs OpenSSL 3.0 more than signing it
  // with a soft key, and a server only sends the DER on.
  Result<Bytes> IssueDer(const CertTemplate& tbs) const;

  // As IssueDer, certifying `key` (the template's public_key is not read): the issuing hot
  // path, whose key CheckCsr has already checked.
  Result<Bytes> IssueDer(const CertTemplate& tbs, const CertifiableKey& key) const;

  const TrustDomain& trust_domain() const { return trust_domain_; }
  X509* cert() const { return cert_.get(); }
  const Bytes& cert_der() const { return cert_der_; }
  // The certificates from cert() up to, and excluding, the root: what an issued SVID's chain
  // carries after its leaf. Empty when cert() is the root.
  const std::vector<X509Ptr>& intermediates() const { return intermediates_; }
  const std::vector<Bytes>& intermediates_der() const { return intermediates_der_; }
  X509* root() const { return root_.get(); }
  Signer& signer() const { return *signer_; }
  SignatureScheme scheme() const { return scheme_; }
  TimePoint not_before() const { return not_before_; }
  TimePoint not_after() const { return not_after_; }

 private:
  X509Ca(TrustDomain td) : trust_domain_(std::move(td)) {}
  Status Init(X509Ptr cert, std::vector<X509Ptr> above, std::shared_ptr<Signer> key);

  TrustDomain trust_domain_;
  X509Ptr cert_;
  Bytes cert_der_;
  std::vector<X509Ptr> intermediates_;
  std::vector<Bytes> intermediates_der_;
  X509Ptr root_;
  std::shared_ptr<Signer> signer_;
  SignatureScheme scheme_ = SignatureScheme::kES256;
  TimePoint not_before_;
  TimePoint not_after_;
};

// Fills a subjectPublicKeyInfo, a certificate's or a CSR's, from an EC or RSA key's parts;
// false for other key types, which the caller sets through OpenSSL. X509_set_pubkey and
// X509_REQ_set_pubkey go through OpenSSL 3.0's generic encoder, which costs several
// signatures' worth of time per certificate. `ec_point`, when not empty, is the EC key's point
// already encoded uncompressed, taken as it is.
Result<bool> FillPublicKeyInfo(X509_PUBKEY* spki, EVP_PKEY* key, std::span<const uint8_t> ec_point = {});

// A certificate's notBefore / notAfter.
TimePoint CertNotBefore(const X509* cert);
TimePoint CertNotAfter(const X509* cert);

struct CertValidity {
  TimePoint not_before;
  TimePoint not_after;
};
// The validity of each certificate in `der` (DER certificates one after another, as the
// Workload API carries a chain), read with OpenSSL's ASN.1 primitives from the encoding alone.
// d2i_X509 in OpenSSL 3.0 also decodes the public key through the generic decoder, whose first
// use costs a short command such as `agentd api fetch x509` a millisecond or more.
// InvalidArgument names what is malformed.
Result<std::vector<CertValidity>> CertValiditiesFromDer(std::span<const uint8_t> der);

// An X.509 authority's ID as SPIRE names it (`localauthority x509 show`, a tainted authority in
// a bundle): its subjectKeyIdentifier in lowercase hex. Empty when the certificate has none.
std::string X509AuthorityId(const X509* cert);

// The authorities that issued the certificates of `der` (DER certificates one after another,
// as an SVID's chain): each one's authorityKeyIdentifier in lowercase hex, in chain order; a
// certificate without one adds nothing. InvalidArgument when a certificate does not parse.
Result<std::vector<std::string>> IssuingAuthorityIds(std::span<const uint8_t> der);

}  // namespace sigil
