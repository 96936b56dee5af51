// Owning handles for OpenSSL objects and the one way Sigil turns OpenSSL's error queue into a
// Status. Everything in core/, hw/ and transport/ that calls OpenSSL uses these, so no file
// frees an OpenSSL object by hand.
//
// Thread safety: OpenSSLError reads and clears the calling thread's error queue only.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace sigil {

template <auto FreeFn>
struct OpenSSLDeleter {
  template <typename T>
  void operator()(T* p) const { FreeFn(p); }
};

using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpenSSLDeleter<EVP_PKEY_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpenSSLDeleter<EVP_PKEY_CTX_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpenSSLDeleter<EVP_MD_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, OpenSSLDeleter<X509_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, OpenSSLDeleter<X509_REQ_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, OpenSSLDeleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OpenSSLDeleter<X509_STORE_CTX_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, OpenSSLDeleter<X509_NAME_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, OpenSSLDeleter<X509_EXTENSION_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, OpenSSLDeleter<GENERAL_NAMES_free>>;
using BioPtr = std::unique_ptr<BIO, OpenSSLDeleter<BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSSLDeleter<BN_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, OpenSSLDeleter<ECDSA_SIG_free>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, OpenSSLDeleter<ASN1_INTEGER_free>>;
using Asn1TimePtr = std::unique_ptr<ASN1_TIME, OpenSSLDeleter<ASN1_TIME_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, OpenSSLDeleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OpenSSLDeleter<SSL_free>>;

struct X509StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

using Bytes = std::vector<uint8_t>;

// A Status with `code` whose message is `what`, followed by the reasons OpenSSL queued on this
// thread ("reading CSR: asn1 encoding routines::too long"). Clears the queue.
Status OpenSSLError(Code code, std::string_view what);

// Discards whatever OpenSSL queued on this thread, for calls whose failure is expected.
void ClearOpenSSLErrors();

// ECDSA signatures: X.509 and PKCS#10 carry DER (SEQUENCE { r, s }); JWS and PKCS#11 carry
// r||s, each left-padded to the curve's field size (32 for P-256, 48 for P-384).
Result<Bytes> EcdsaDerToRaw(std::span<const uint8_t> der, size_t field_size);
Result<Bytes> EcdsaRawToDer(std::span<const uint8_t> raw);

// Appends a DER length (X.690 definite form) for the few structures built by hand here.
void AppendDerLength(Bytes& out, size_t len);

// Lower-case hex, as SPIFFE selectors and serial numbers are printed.
std::string HexEncode(std::span<const uint8_t> bytes);

// A certificate's serial number in lower-case hex, without leading zeros.
std::string SerialHex(X509* cert);

// The SHA-256 digest of `data`.
Bytes Sha256(std::span<const uint8_t> data);

// DER encodings of a public key (SubjectPublicKeyInfo) and back.
Result<Bytes> PublicKeyToDer(EVP_PKEY* key);
Result<EvpPkeyPtr> PublicKeyFromDer(std::span<const uint8_t> der);

// Private keys as PKCS#8: DER (what the Workload API carries) and PEM ("PRIVATE KEY", what
// files on disk hold). Callers that keep the bytes should wipe them (OPENSSL_cleanse).
Result<Bytes> PrivateKeyToPkcs8Der(EVP_PKEY* key);
Result<std::string> PrivateKeyToPkcs8Pem(EVP_PKEY* key);
Result<EvpPkeyPtr> PrivateKeyFromDer(std::span<const uint8_t> der);
Result<EvpPkeyPtr> PrivateKeyFromPem(std::string_view pem);

// The modulus and public exponent of an RSA key; both null when `key` is not one.
struct RsaParts {
  BignumPtr modulus;
  BignumPtr exponent;
};
RsaParts RsaPartsOf(const EVP_PKEY* key);

// Public keys from the parts hardware hands out (PKCS#11 attributes, TPM2B_PUBLIC):
// an EC point in uncompressed form (0x04||x||y) on a named curve ("P-256", "P-384"), or an
// RSA modulus and exponent as big-endian integers. InvalidArgument when the parts do not
// make a valid key.
Result<EvpPkeyPtr> EcPublicKeyFromPoint(std::string_view curve, std::span<const uint8_t> point);
Result<EvpPkeyPtr> RsaPublicKeyFromParts(std::span<const uint8_t> modulus,
                                         std::span<const uint8_t> exponent);

}  // namespace sigil
