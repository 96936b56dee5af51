// PKCS#10 certificate signing requests: the agent makes one per key it wants certified, and the
// server checks one before it issues an X509-SVID for it.
//
// The server takes only the public key from a CSR. The identity in the certificate comes from
// the registration entry, so whatever subject or SANs a CSR carries is ignored.
//
// Thread safety: pure functions; an EVP_PKEY passed in is only read.
#pragma once

#include <openssl/evp.h>

#include <optional>
#include <span>

#include "core/openssl_util.h"
#include "core/spiffe_id.h"
#include "core/status.h"

namespace sigil {

// The RSA moduli a CSR may carry: smaller keys are breakable in practice, larger ones cost a
// verifier milliseconds that an unauthenticated peer could make the server pay. The public
// exponent must be 65537, for the same reason.
inline constexpr int kMinCsrRsaBits = 2048;
inline constexpr int kMaxCsrRsaBits = 4096;

// A DER CSR signed by `private_key` (EC P-256/P-384 with SHA-256/SHA-384, RSA with SHA-256).
// With `spiffe_id` it carries that ID as its one URI SAN, as SPIRE agents do; the subject is
// empty either way.
Result<Bytes> MakeCsr(EVP_PKEY* private_key, const std::optional<SpiffeId>& spiffe_id = {});

class CertifiableKey;

// Parses a DER CSR, checks its key and then its self-signature, and returns the public key.
// InvalidArgument naming the problem: malformed or truncated DER, trailing bytes, a key other
// than EC P-256, EC P-384 or RSA with a 2048-4096-bit modulus and exponent 65537 (refused from
// its encoding, before any signature check), a signature that does not verify, a signature
// algorithm other than ECDSA or RSA PKCS#1 v1.5 with SHA-256/384/512.
Result<CertifiableKey> CheckCsr(std::span<const uint8_t> der);

// The same check on a public key alone: what X509-SVIDs may certify.
Status CheckCertifiableKey(EVP_PKEY* key);

// A public key that passed CheckCertifiableKey, and the proof of it: only CheckCsr and Check
// make one, so whoever issues a certificate for it need not check it again.
class CertifiableKey {
 public:
  // CheckCertifiableKey's error, or `key` shared (up-referenced, not copied).
  static Result<CertifiableKey> Check(EVP_PKEY* key);

  EVP_PKEY* get() const { return key_.get(); }
  // An EC key's point, uncompressed, as the CSR carried it; empty when not known. A certificate
  // takes it as it is, rather than having OpenSSL encode the point again.
  std::span<const uint8_t> encoded_ec_point() const { return encoded_ec_point_; }

 private:
  CertifiableKey(EvpPkeyPtr key, Bytes encoded_ec_point)
      : key_(std::move(key)), encoded_ec_point_(std::move(encoded_ec_point)) {}
  friend Result<CertifiableKey> CheckCsr(std::span<const uint8_t> der);

  EvpPkeyPtr key_;
  Bytes encoded_ec_point_;
};

}  // namespace sigil
