#include "core/signer.h"

#include <openssl/core_names.h>

#include <string>

namespace sigil {

std::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kEcP256: return "ec-p256";
    case KeyType::kEcP384: return "ec-p384";
    case KeyType::kRsa2048: return "rsa-2048";
  }
  return "unknown";
}

Result<KeyType> ParseKeyType(std::string_view name) {
  for (KeyType t : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048}) {
    if (name == KeyTypeName(t)) return t;
  }
  return InvalidArgumentError("unsupported key type '" + std::string(name) +
                              "': expected ec-p256, ec-p384 or rsa-2048");
}

std::string_view JwsAlgorithmName(SignatureScheme scheme) {
  switch (scheme) {
    case SignatureScheme::kES256: return "ES256";
    case SignatureScheme::kES384: return "ES384";
    case SignatureScheme::kRS256: return "RS256";
  }
  return "unknown";
}

Result<SignatureScheme> ParseJwsAlgorithm(std::string_view name) {
  for (SignatureScheme s : {SignatureScheme::kES256, SignatureScheme::kES384,
                            SignatureScheme::kRS256}) {
    if (name == JwsAlgorithmName(s)) return s;
  }
  return InvalidArgumentError("unsupported signature algorithm '" + std::string(name) +
                              "': expected ES256, ES384 or RS256");
}

SignatureScheme DefaultSchemeFor(KeyType type) {
  switch (type) {
    case KeyType::kEcP256: return SignatureScheme::kES256;
    case KeyType::kEcP384: return SignatureScheme::kES384;
    case KeyType::kRsa2048: return SignatureScheme::kRS256;
  }
  return SignatureScheme::kES256;
}

bool SchemeFitsKey(SignatureScheme scheme, KeyType type) {
  return DefaultSchemeFor(type) == scheme;
}

const EVP_MD* SchemeDigest(SignatureScheme scheme) {
  return scheme == SignatureScheme::kES384 ? EVP_sha384() : EVP_sha256();
}

size_t EcdsaFieldSize(KeyType type) {
  switch (type) {
    case KeyType::kEcP256: return 32;
    case KeyType::kEcP384: return 48;
    case KeyType::kRsa2048: return 0;
  }
  return 0;
}

Result<KeyType> KeyTypeOf(const EVP_PKEY* key) {
  if (key == nullptr) return InvalidArgumentError("no key");
  if (EVP_PKEY_is_a(key, "EC")) {
    char curve[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve),
                                       &len) != 1) {
      return OpenSSLError(Code::kInvalidArgument, "EC key without a named curve");
    }
    std::string_view name(curve, len);
    if (name == "prime256v1" || name == "P-256") return KeyType::kEcP256;
    if (name == "secp384r1" || name == "P-384") return KeyType::kEcP384;
    return InvalidArgumentError("unsupported EC curve " + std::string(name) +
                                ": expected P-256 or P-384");
  }
  if (EVP_PKEY_is_a(key, "RSA")) {
    int bits = EVP_PKEY_get_bits(key);
    if (bits == 2048) return KeyType::kRsa2048;
    return InvalidArgumentError("unsupported RSA key size " + std::to_string(bits) +
                                " bits: key stores hold RSA-2048");
  }
  return InvalidArgumentError(std::string("unsupported key algorithm ") +
                              EVP_PKEY_get0_type_name(key));
}

Status Signer::CheckSignRequest(SignatureScheme scheme, std::span<const uint8_t> digest) const {
  if (!SchemeFitsKey(scheme, key_type())) {
    return InvalidArgumentError("signature algorithm " + std::string(JwsAlgorithmName(scheme)) +
                                " does not fit a " + std::string(KeyTypeName(key_type())) +
                                " key");
  }
  const size_t want = static_cast<size_t>(EVP_MD_get_size(SchemeDigest(scheme)));
  if (digest.size() != want) {
    return InvalidArgumentError("digest for " + std::string(JwsAlgorithmName(scheme)) + " must be " +
                                std::to_string(want) + " bytes, got " +
                                std::to_string(digest.size()));
  }
  return Status::Ok();
}

Result<Bytes> Signer::SignMessage(SignatureScheme scheme, std::span<const uint8_t> message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(message.data(), message.size(), digest, &len, SchemeDigest(scheme), nullptr) !=
      1) {
    return OpenSSLError(Code::kInternal, "hashing message to sign");
  }
  return SignDigest(scheme, std::span<const uint8_t>(digest, len));
}

Result<Bytes> Signer::SignMessageJws(SignatureScheme scheme, std::span<const uint8_t> message) {
  SIGIL_ASSIGN_OR_RETURN(Bytes der, SignMessage(scheme, message));
  if (scheme == SignatureScheme::kRS256) return der;
  return EcdsaDerToRaw(der, EcdsaFieldSize(key_type()));
}

}  // namespace sigil
