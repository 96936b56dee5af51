#include "core/csr.h"

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>

#include "core/signer.h"

namespace sigil {

Status CheckCertifiableKey(EVP_PKEY* key) {
  if (key == nullptr) return InvalidArgumentError("no public key");
  if (EVP_PKEY_is_a(key, "RSA")) {
    const int bits = EVP_PKEY_get_bits(key);
    if (bits < kMinCsrRsaBits) {
      return InvalidArgumentError("RSA key of " + std::to_string(bits) +
                                  " bits is too weak: at least " +
                                  std::to_string(kMinCsrRsaBits) + " bits are required");
    }
    return Status::Ok();
  }
  if (EVP_PKEY_is_a(key, "EC")) {
    auto type = KeyTypeOf(key);
    if (!type.ok()) return type.status();
    return Status::Ok();
  }
  const char* name = EVP_PKEY_get0_type_name(key);
  return InvalidArgumentError(std::string("unsupported key algorithm ") +
                              (name != nullptr ? name : "(unknown)") +
                              ": expected EC P-256, EC P-384 or RSA");
}

Result<Bytes> MakeCsr(EVP_PKEY* private_key, const std::optional<SpiffeId>& spiffe_id) {
  SIGIL_RETURN_IF_ERROR(CheckCertifiableKey(private_key));
  X509ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_pubkey(req.get(), private_key) != 1) {
    return OpenSSLError(Code::kInternal, "building CSR");
  }
  if (spiffe_id.has_value()) {
    GeneralNamesPtr names(GENERAL_NAMES_new());
    GENERAL_NAME* uri = GENERAL_NAME_new();
    ASN1_IA5STRING* text = ASN1_IA5STRING_new();
    if (!names || uri == nullptr || text == nullptr ||
        ASN1_STRING_set(text, spiffe_id->str().data(), static_cast<int>(spiffe_id->str().size())) !=
            1) {
      GENERAL_NAME_free(uri);
      ASN1_IA5STRING_free(text);
      return OpenSSLError(Code::kInternal, "building CSR URI SAN");
    }
    GENERAL_NAME_set0_value(uri, GEN_URI, text);
    sk_GENERAL_NAME_push(names.get(), uri);
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION* san = X509V3_EXT_i2d(NID_subject_alt_name, 0, names.get());
    const bool ok = exts != nullptr && san != nullptr && sk_X509_EXTENSION_push(exts, san) > 0 &&
                    X509_REQ_add_extensions(req.get(), exts) == 1;
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    if (!ok) return OpenSSLError(Code::kInternal, "adding URI SAN to CSR");
  }
  const EVP_MD* md = EVP_sha256();
  if (EVP_PKEY_is_a(private_key, "EC") && EVP_PKEY_get_bits(private_key) > 256) md = EVP_sha384();
  if (X509_REQ_sign(req.get(), private_key, md) <= 0) {
    return OpenSSLError(Code::kInvalidArgument, "signing CSR");
  }
  const int len = i2d_X509_REQ(req.get(), nullptr);
  if (len <= 0) return OpenSSLError(Code::kInternal, "encoding CSR");
  Bytes der(static_cast<size_t>(len));
  unsigned char* p = der.data();
  i2d_X509_REQ(req.get(), &p);
  return der;
}

Result<EvpPkeyPtr> CheckCsr(std::span<const uint8_t> der) {
  if (der.empty()) return InvalidArgumentError("CSR is empty");
  const unsigned char* p = der.data();
  X509ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (!req) return OpenSSLError(Code::kInvalidArgument, "CSR is not valid PKCS#10 DER");
  if (p != der.data() + der.size()) {
    return InvalidArgumentError("CSR has " + std::to_string(der.data() + der.size() - p) +
                                " trailing bytes after its DER");
  }
  EvpPkeyPtr key(X509_REQ_get_pubkey(req.get()));
  if (!key) return OpenSSLError(Code::kInvalidArgument, "CSR public key cannot be read");
  SIGIL_RETURN_IF_ERROR(CheckCertifiableKey(key.get()).AddContext("checking CSR public key"));
  if (X509_REQ_verify(req.get(), key.get()) != 1) {
    return OpenSSLError(Code::kInvalidArgument,
                        "CSR signature does not verify against its own public key");
  }
  return key;
}

}  // namespace sigil
