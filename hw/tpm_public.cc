#include "hw/tpm_public.h"

#include <openssl/rsa.h>

#include <cstring>

#include "hw/tss2_library.h"

namespace sigil::hw {

Result<KeyType> KeyTypeOfTpmPublic(const TPMT_PUBLIC& area) {
  if (area.type == TPM2_ALG_RSA && area.parameters.rsaDetail.keyBits == 2048)
    return KeyType::kRsa2048;
  if (area.type == TPM2_ALG_ECC && area.parameters.eccDetail.curveID == TPM2_ECC_NIST_P256)
    return KeyType::kEcP256;
  if (area.type == TPM2_ALG_ECC && area.parameters.eccDetail.curveID == TPM2_ECC_NIST_P384)
    return KeyType::kEcP384;
  return InvalidArgumentError("TPM key is neither EC P-256, EC P-384 nor RSA-2048");
}

Result<EvpPkeyPtr> PublicKeyOfTpmPublic(const TPMT_PUBLIC& area) {
  SIGIL_ASSIGN_OR_RETURN(KeyType type, KeyTypeOfTpmPublic(area));
  if (type == KeyType::kRsa2048) {
    const uint32_t exponent =
        area.parameters.rsaDetail.exponent == 0 ? 65537 : area.parameters.rsaDetail.exponent;
    const uint8_t e[] = {static_cast<uint8_t>(exponent >> 24), static_cast<uint8_t>(exponent >> 16),
                         static_cast<uint8_t>(exponent >> 8), static_cast<uint8_t>(exponent)};
    return RsaPublicKeyFromParts({area.unique.rsa.buffer, area.unique.rsa.size}, e);
  }
  const size_t field = EcdsaFieldSize(type);
  const TPM2B_ECC_PARAMETER& x = area.unique.ecc.x;
  const TPM2B_ECC_PARAMETER& y = area.unique.ecc.y;
  if (x.size > field || y.size > field)
    return InvalidArgumentError("TPM EC point is longer than its curve");
  Bytes point(1 + 2 * field, 0);
  point[0] = 0x04;
  std::memcpy(point.data() + 1 + field - x.size, x.buffer, x.size);
  std::memcpy(point.data() + 1 + 2 * field - y.size, y.buffer, y.size);
  return EcPublicKeyFromPoint(type == KeyType::kEcP384 ? "P-384" : "P-256", point);
}

const EVP_MD* TpmHashDigest(TPMI_ALG_HASH hash) {
  switch (hash) {
    case TPM2_ALG_SHA1:
      return EVP_sha1();
    case TPM2_ALG_SHA256:
      return EVP_sha256();
    case TPM2_ALG_SHA384:
      return EVP_sha384();
    case TPM2_ALG_SHA512:
      return EVP_sha512();
    default:
      return nullptr;
  }
}

Result<Bytes> TpmObjectName(const TPMT_PUBLIC& area) {
  const EVP_MD* md = TpmHashDigest(area.nameAlg);
  if (md == nullptr) return InvalidArgumentError("TPM object has an unsupported name algorithm");
  Bytes marshalled(sizeof(TPMT_PUBLIC));
  size_t size = 0;
  if (Tss2().Tss2_MU_TPMT_PUBLIC_Marshal(&area, marshalled.data(), marshalled.size(), &size) != 0) {
    return InvalidArgumentError("TPM public area cannot be marshalled");
  }
  Bytes name(2 + EVP_MD_get_size(md));
  name[0] = static_cast<uint8_t>(area.nameAlg >> 8);
  name[1] = static_cast<uint8_t>(area.nameAlg);
  unsigned int digest_size = 0;
  if (EVP_Digest(marshalled.data(), size, name.data() + 2, &digest_size, md, nullptr) != 1) {
    return OpenSSLError(Code::kInternal, "hashing a TPM public area");
  }
  return name;
}

Bytes MarshalTpm2bPublic(const TPM2B_PUBLIC& value) {
  Bytes out(sizeof(TPM2B_PUBLIC));
  size_t size = 0;
  Tss2().Tss2_MU_TPM2B_PUBLIC_Marshal(&value, out.data(), out.size(), &size);
  out.resize(size);
  return out;
}

Result<TPM2B_PUBLIC> ParseTpm2bPublic(std::span<const uint8_t> bytes, std::string_view what) {
  TPM2B_PUBLIC value{};
  size_t offset = 0;
  if (Tss2().Tss2_MU_TPM2B_PUBLIC_Unmarshal(bytes.data(), bytes.size(), &offset, &value) != 0 ||
      offset != bytes.size()) {
    return InvalidArgumentError(std::string(what) + " is not a marshalled TPM2B_PUBLIC");
  }
  return value;
}

Bytes MarshalTpmtSignature(const TPMT_SIGNATURE& value) {
  Bytes out(sizeof(TPMT_SIGNATURE));
  size_t size = 0;
  Tss2().Tss2_MU_TPMT_SIGNATURE_Marshal(&value, out.data(), out.size(), &size);
  out.resize(size);
  return out;
}

Result<TPMT_SIGNATURE> ParseTpmtSignature(std::span<const uint8_t> bytes, std::string_view what) {
  TPMT_SIGNATURE value{};
  size_t offset = 0;
  if (Tss2().Tss2_MU_TPMT_SIGNATURE_Unmarshal(bytes.data(), bytes.size(), &offset, &value) != 0 ||
      offset != bytes.size()) {
    return InvalidArgumentError(std::string(what) + " is not a marshalled TPMT_SIGNATURE");
  }
  return value;
}

Status VerifyTpmSignature(EVP_PKEY* key, const TPMT_SIGNATURE& signature,
                          std::span<const uint8_t> message) {
  SIGIL_ASSIGN_OR_RETURN(KeyType type, KeyTypeOf(key));
  Bytes der;
  TPMI_ALG_HASH hash = TPM2_ALG_NULL;
  int rsa_padding = 0;
  if (signature.sigAlg == TPM2_ALG_ECDSA && type != KeyType::kRsa2048) {
    const size_t field = EcdsaFieldSize(type);
    const TPM2B_ECC_PARAMETER& r = signature.signature.ecdsa.signatureR;
    const TPM2B_ECC_PARAMETER& s = signature.signature.ecdsa.signatureS;
    if (r.size > field || s.size > field)
      return InvalidArgumentError("ECDSA signature is longer than its curve");
    Bytes raw(2 * field, 0);
    std::memcpy(raw.data() + field - r.size, r.buffer, r.size);
    std::memcpy(raw.data() + 2 * field - s.size, s.buffer, s.size);
    SIGIL_ASSIGN_OR_RETURN(der, EcdsaRawToDer(raw));
    hash = signature.signature.ecdsa.hash;
  } else if ((signature.sigAlg == TPM2_ALG_RSASSA || signature.sigAlg == TPM2_ALG_RSAPSS) &&
             type == KeyType::kRsa2048) {
    const TPMS_SIGNATURE_RSA& rsa = signature.signature.rsassa;
    der.assign(rsa.sig.buffer, rsa.sig.buffer + rsa.sig.size);
    hash = rsa.hash;
    rsa_padding = signature.sigAlg == TPM2_ALG_RSAPSS ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING;
  } else {
    return InvalidArgumentError("TPM signature algorithm does not fit a " +
                                std::string(KeyTypeName(type)) + " key");
  }
  const EVP_MD* md = TpmHashDigest(hash);
  if (md == nullptr || hash == TPM2_ALG_SHA1)
    return InvalidArgumentError("TPM signature uses an unsupported hash");
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pkey_ctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pkey_ctx, md, nullptr, key) != 1) {
    return OpenSSLError(Code::kInternal, "starting a signature check");
  }
  if (rsa_padding != 0 && EVP_PKEY_CTX_set_rsa_padding(pkey_ctx, rsa_padding) != 1) {
    return OpenSSLError(Code::kInternal, "choosing the RSA padding");
  }
  if (rsa_padding == RSA_PKCS1_PSS_PADDING &&
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pkey_ctx, RSA_PSS_SALTLEN_AUTO) != 1) {
    return OpenSSLError(Code::kInternal, "choosing the RSA-PSS salt length");
  }
  if (EVP_DigestVerify(ctx.get(), der.data(), der.size(), message.data(), message.size()) != 1) {
    ClearOpenSSLErrors();
    return PermissionDeniedError("signature does not verify");
  }
  return Status::Ok();
}

}  // namespace sigil::hw
