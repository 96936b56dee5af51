// Signer: a private key that signs but never shows itself.
//
// Certificates, CSRs and JWTs in core/ are signed through this interface; hw/ implements it
// for software keys, PKCS#11 tokens and TPMs. A Signer is safe to call from several threads at
// once; an implementation that cannot sign concurrently (a TPM) queues internally.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <span>
#include <string_view>

#include "core/openssl_util.h"
#include "core/status.h"

namespace sigil {

enum class KeyType {
  kEcP256,
  kEcP384,
  kRsa2048,
};

// "ec-p256", "ec-p384", "rsa-2048": the spelling config files and URIs use.
std::string_view KeyTypeName(KeyType type);
Result<KeyType> ParseKeyType(std::string_view name);

// The signature schemes Sigil issues, named as JWS names them.
enum class SignatureScheme {
  kES256,  // ECDSA P-256 with SHA-256
  kES384,  // ECDSA P-384 with SHA-384
  kRS256,  // RSASSA-PKCS1-v1_5 with SHA-256
};

std::string_view JwsAlgorithmName(SignatureScheme scheme);  // "ES256"
Result<SignatureScheme> ParseJwsAlgorithm(std::string_view name);
SignatureScheme DefaultSchemeFor(KeyType type);
bool SchemeFitsKey(SignatureScheme scheme, KeyType type);
const EVP_MD* SchemeDigest(SignatureScheme scheme);  // SHA-256 or SHA-384
size_t EcdsaFieldSize(KeyType type);                 // 32, 48; 0 for RSA

// The key type of a public key, or InvalidArgument naming what it is instead.
Result<KeyType> KeyTypeOf(const EVP_PKEY* key);

class Signer {
 public:
  virtual ~Signer() = default;

  virtual KeyType key_type() const = 0;

  // The public half, owned by the Signer and valid for its lifetime; read-only from any thread.
  virtual EVP_PKEY* public_key() const = 0;

  // Signs `digest`, already hashed with SchemeDigest(scheme). ECDSA signatures come back DER
  // encoded (the X.509 and PKCS#10 form). InvalidArgument when the scheme does not fit the key
  // or the digest has the wrong length.
  virtual Result<Bytes> SignDigest(SignatureScheme scheme, std::span<const uint8_t> digest) = 0;

  // Hashes `message` with the scheme's digest, then SignDigest: the X.509 form.
  Result<Bytes> SignMessage(SignatureScheme scheme, std::span<const uint8_t> message);

  // As SignMessage, in the JWS form: ECDSA as r||s, RSA unchanged.
  Result<Bytes> SignMessageJws(SignatureScheme scheme, std::span<const uint8_t> message);

 protected:
  // For implementations: InvalidArgument unless `scheme` fits this key and `digest` has the
  // scheme's digest length.
  Status CheckSignRequest(SignatureScheme scheme, std::span<const uint8_t> digest) const;
};

}  // namespace sigil
