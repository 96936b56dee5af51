// X509-SVIDs: issued from a CSR by an X509Ca, and checked against a bundle as the SPIFFE
// X509-SVID standard asks.
//
// Issuing takes only the CSR's public key; the SPIFFE ID, DNS names and lifetime come from the
// caller (the registration entry, the agent's attestation, the server itself). The leaf carries
// exactly one URI SAN (the SPIFFE ID), the DNS names as DNS SANs with the first also as subject
// CN (as SPIRE does), and expires at min(now + ttl, the CA's notAfter).
//
// Thread safety: pure functions over immutable inputs; safe from any thread.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <vector>

#include "core/openssl_util.h"
#include "core/registration_entry.h"
#include "core/spiffe_id.h"
#include "core/status.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"

namespace sigil {

struct X509SvidParams {
  explicit X509SvidParams(SpiffeId id) : spiffe_id(std::move(id)) {}

  SpiffeId spiffe_id;
  std::vector<std::string> dns_names;
  std::chrono::seconds ttl{std::chrono::hours(1)};
  TimePoint now = std::chrono::system_clock::now();
  // SPIRE's SVID subject, kept so tools that group certificates by subject see the same thing.
  std::string country = "US";
  std::string organization = "SPIRE";
};

// An issued SVID as DER only: what the server's signing pipeline hands on.
struct X509SvidDer {
  SpiffeId spiffe_id;
  std::vector<Bytes> chain_der;  // leaf first, then intermediates; never the root
  TimePoint not_before;          // the leaf's, as written in it
  TimePoint expires_at;

  std::string ChainPem() const;
};

// An issued SVID with its certificates parsed as well.
struct X509Svid {
  SpiffeId spiffe_id;
  std::vector<X509Ptr> chain;    // leaf first, then intermediates; never the root
  std::vector<Bytes> chain_der;  // the same certificates as DER
  TimePoint expires_at;

  X509* leaf() const { return chain.front().get(); }
  std::vector<X509*> raw_chain() const;
  std::string ChainPem() const;
};

// Concatenated PEM of DER certificates, without parsing them.
std::string DerChainToPem(std::span<const Bytes> chain_der);

// The parameters for `entry`'s SVID: its SPIFFE ID, DNS names and TTL (`default_ttl` when the
// entry has none). InvalidArgument when the entry's ID or a DNS name is invalid.
Result<X509SvidParams> X509SvidParamsForEntry(const RegistrationEntry& entry,
                                              std::chrono::seconds default_ttl, TimePoint now);
// The same with the entry's ID already parsed: the server parses it once, when it loads the
// entry, not once per CSR.
X509SvidParams X509SvidParamsForEntry(const RegistrationEntry& entry, SpiffeId id,
                                      std::chrono::seconds default_ttl, TimePoint now);

// An SVID certifying `public_key`, which must be EC P-256/P-384 or RSA with a 2048-4096-bit modulus
// and exponent 65537 (CheckCertifiableKey).
// InvalidArgument naming the bad ID, DNS name, TTL or key; FailedPrecondition when the CA has
// expired by `params.now`; the Signer's error when signing fails.
Result<X509SvidDer> MintX509SvidDer(const X509Ca& ca, EVP_PKEY* public_key,
                                    const X509SvidParams& params);

// As MintX509SvidDer, for a key already checked (a CSR's, from CheckCsr): it is not checked a
// second time.
Result<X509SvidDer> MintX509SvidDer(const X509Ca& ca, const CertifiableKey& public_key,
                                    const X509SvidParams& params);

// As MintX509SvidDer, for the public key of a DER CSR whose signature and key CheckCsr accepts.
// This is the server's hot path.
Result<X509SvidDer> MintX509SvidDerFromCsr(const X509Ca& ca, std::span<const uint8_t> csr_der,
                                           const X509SvidParams& params);

// The same, with the leaf parsed too (intermediates are shared with the CA).
Result<X509Svid> MintX509Svid(const X509Ca& ca, EVP_PKEY* public_key, const X509SvidParams& params);
Result<X509Svid> MintX509SvidFromCsr(const X509Ca& ca, std::span<const uint8_t> csr_der,
                                     const X509SvidParams& params);

// spiffe://<td>/spire/agent/<suffix> (e.g. "join_token/abc"), and spiffe://<td>/spire/server:
// the IDs SPIRE gives agents and servers, so existing entries parented to them keep working.
Result<SpiffeId> AgentSpiffeId(const TrustDomain& td, std::string_view suffix);
SpiffeId ServerSpiffeId(const TrustDomain& td);

// Checks a presented X509-SVID chain (leaf first, then intermediates in any order) against
// `bundle` at time `now`, and returns the leaf's SPIFFE ID. Enforces: exactly one URI SAN, a
// valid SPIFFE ID in the bundle's trust domain, CA:false, keyUsage present with
// digitalSignature and without keyCertSign or cRLSign; then the chain must verify to one of the
// bundle's authorities (any of which is a trust anchor) with every certificate valid at `now`.
// PermissionDenied naming the rule broken; InvalidArgument for an empty chain.
Result<SpiffeId> VerifyX509Svid(std::span<X509* const> chain, const X509Bundle& bundle,
                                TimePoint now = std::chrono::system_clock::now());

// The leaf's SPIFFE ID without any chain check (for logs and for picking a bundle).
Result<SpiffeId> X509SvidSpiffeId(X509* leaf);

}  // namespace sigil
