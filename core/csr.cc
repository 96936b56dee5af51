#include "core/csr.h"

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <openssl/bn.h>

#include <algorithm>
#include <string>

#include "core/signer.h"
#include "core/x509_ca.h"

namespace sigil {

namespace {

constexpr uint8_t kRsaExponent65537[] = {0x01, 0x00, 0x01};

Status RsaKeyRefused(const std::string& why) {
  return InvalidArgumentError("RSA key " + why + ": expected a " + std::to_string(kMinCsrRsaBits) + "-" +
                              std::to_string(kMaxCsrRsaBits) + "-bit modulus and exponent 65537");
}

// The bits of a positive big-endian integer, leading zero bytes ignored.
size_t IntegerBits(std::span<const uint8_t> value) {
  while (!value.empty() && value.front() == 0) value = value.subspan(1);
  if (value.empty()) return 0;
  size_t bits = (value.size() - 1) * 8;
  for (uint8_t top = value.front(); top != 0; top >>= 1) ++bits;
  return bits;
}

// Refuses what the server will not certify, from the sizes alone (the parts are DER INTEGER
// contents, big-endian and signed): a big modulus or exponent
// makes the signature check cost milliseconds, which an unauthenticated peer must not buy.
Status CheckRsaParts(std::span<const uint8_t> modulus, std::span<const uint8_t> exponent) {
  if ((!modulus.empty() && (modulus.front() & 0x80) != 0) || (!exponent.empty() && (exponent.front() & 0x80) != 0)) {
    return RsaKeyRefused("with a negative modulus or exponent");
  }
  const size_t bits = IntegerBits(modulus);
  if (bits < static_cast<size_t>(kMinCsrRsaBits)) {
    return RsaKeyRefused("of " + std::to_string(bits) + " bits is too weak");
  }
  if (bits > static_cast<size_t>(kMaxCsrRsaBits)) {
    return RsaKeyRefused("of " + std::to_string(bits) + " bits is too large");
  }
  while (!exponent.empty() && exponent.front() == 0) exponent = exponent.subspan(1);
  if (!std::equal(exponent.begin(), exponent.end(), std::begin(kRsaExponent65537), std::end(kRsaExponent65537))) {
    return RsaKeyRefused("with a " + std::to_string(IntegerBits(exponent)) + "-bit public exponent other than 65537");
  }
  return Status::Ok();
}

}  // namespace

Status CheckCertifiableKey(EVP_PKEY* key) {
  if (key == nullptr) return InvalidArgumentError("no public key");
  if (EVP_PKEY_is_a(key, "RSA")) {
    const auto [n, e] = RsaPartsOf(key);
    if (!n || !e) return InvalidArgumentError("the RSA key's modulus and exponent cannot be read");
    // As DER INTEGER contents: a leading zero byte keeps them positive.
    Bytes modulus(1 + static_cast<size_t>(BN_num_bytes(n.get())));
    Bytes exponent(1 + static_cast<size_t>(BN_num_bytes(e.get())));
    BN_bn2bin(n.get(), modulus.data() + 1);
    BN_bn2bin(e.get(), exponent.data() + 1);
    return CheckRsaParts(modulus, exponent);
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

Result<CertifiableKey> CertifiableKey::Check(EVP_PKEY* key) {
  SIGIL_RETURN_IF_ERROR(CheckCertifiableKey(key));
  EVP_PKEY_up_ref(key);
  return CertifiableKey(EvpPkeyPtr(key), Bytes());
}

Result<Bytes> MakeCsr(EVP_PKEY* private_key, const std::optional<SpiffeId>& spiffe_id) {
  SIGIL_RETURN_IF_ERROR(CheckCertifiableKey(private_key));
  X509ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1) {
    return OpenSSLError(Code::kInternal, "building CSR");
  }
  SIGIL_ASSIGN_OR_RETURN(bool filled, FillPublicKeyInfo(X509_REQ_get_X509_PUBKEY(req.get()), private_key));
  if (!filled && X509_REQ_set_pubkey(req.get(), private_key) != 1) {
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

namespace {

// One DER element: where it starts, its whole length, and its contents.
struct Tlv {
  int tag = 0;
  int cls = 0;
  bool constructed = false;
  std::span<const uint8_t> whole;
  std::span<const uint8_t> content;
};

// Reads the next element of `in` and advances past it. Only definite lengths, as DER requires.
Result<Tlv> ReadTlv(std::span<const uint8_t>& in, int want_tag, const char* what) {
  const unsigned char* p = in.data();
  long len = 0;
  int tag = 0;
  int cls = 0;
  const int ret = ASN1_get_object(&p, &len, &tag, &cls, static_cast<long>(in.size()));
  if ((ret & 0x80) != 0 || (ret & 0x01) != 0) {
    ClearOpenSSLErrors();
    return InvalidArgumentError(std::string("CSR is not valid PKCS#10 DER: ") + what +
                                " is truncated or malformed");
  }
  Tlv tlv;
  tlv.tag = tag;
  tlv.cls = cls;
  tlv.constructed = (ret & V_ASN1_CONSTRUCTED) != 0;
  const size_t header = static_cast<size_t>(p - in.data());
  tlv.content = in.subspan(header, static_cast<size_t>(len));
  tlv.whole = in.first(header + static_cast<size_t>(len));
  if (want_tag >= 0 && (tag != want_tag || cls != V_ASN1_UNIVERSAL)) {
    return InvalidArgumentError(std::string("CSR is not valid PKCS#10 DER: ") + what +
                                " has the wrong type");
  }
  in = in.subspan(header + static_cast<size_t>(len));
  return tlv;
}

Status ExpectEnd(std::span<const uint8_t> rest, const char* what) {
  if (rest.empty()) return Status::Ok();
  return InvalidArgumentError(std::string("CSR is not valid PKCS#10 DER: unexpected data after ") +
                              what);
}

using AlgorPtr = std::unique_ptr<X509_ALGOR, OpenSSLDeleter<X509_ALGOR_free>>;

Result<AlgorPtr> ReadAlgorithm(const Tlv& tlv, const char* what) {
  const unsigned char* p = tlv.whole.data();
  AlgorPtr alg(d2i_X509_ALGOR(nullptr, &p, static_cast<long>(tlv.whole.size())));
  if (!alg) return OpenSSLError(Code::kInvalidArgument, std::string("CSR ") + what + " is malformed");
  return alg;
}

// The bits of a BIT STRING that has no unused bits (keys and signatures never do).
Result<std::span<const uint8_t>> BitStringBytes(const Tlv& tlv, const char* what) {
  if (tlv.content.empty() || tlv.content[0] != 0) {
    return InvalidArgumentError(std::string("CSR ") + what + " is not a whole number of bytes");
  }
  return tlv.content.subspan(1);
}

std::string ObjectName(int nid, const ASN1_OBJECT* obj) {
  if (nid != NID_undef) return OBJ_nid2sn(nid);
  char buf[128];
  OBJ_obj2txt(buf, sizeof(buf), obj, 1);
  return buf;
}

// The public key of a SubjectPublicKeyInfo, built straight from its parts: OpenSSL 3.0's
// generic decoder costs several times an ECDSA verification, and a server pays it per CSR.
// `ec_point` is set to an EC key's point as encoded in `spki`.
Result<EvpPkeyPtr> ReadPublicKey(const Tlv& spki, std::span<const uint8_t>* ec_point) {
  std::span<const uint8_t> in = spki.content;
  SIGIL_ASSIGN_OR_RETURN(Tlv alg_tlv, ReadTlv(in, V_ASN1_SEQUENCE, "public key algorithm"));
  SIGIL_ASSIGN_OR_RETURN(Tlv bits_tlv, ReadTlv(in, V_ASN1_BIT_STRING, "public key"));
  SIGIL_RETURN_IF_ERROR(ExpectEnd(in, "the public key"));
  SIGIL_ASSIGN_OR_RETURN(AlgorPtr alg, ReadAlgorithm(alg_tlv, "public key algorithm"));
  SIGIL_ASSIGN_OR_RETURN(std::span<const uint8_t> bits, BitStringBytes(bits_tlv, "public key"));
  const ASN1_OBJECT* obj = nullptr;
  int param_type = 0;
  const void* param = nullptr;
  X509_ALGOR_get0(&obj, &param_type, &param, alg.get());
  const int nid = OBJ_obj2nid(obj);
  if (nid == NID_X9_62_id_ecPublicKey) {
    if (param_type != V_ASN1_OBJECT) {
      return InvalidArgumentError("CSR EC key does not name its curve: expected P-256 or P-384");
    }
    const auto* curve_obj = static_cast<const ASN1_OBJECT*>(param);
    const int curve = OBJ_obj2nid(curve_obj);
    *ec_point = bits;
    if (curve == NID_X9_62_prime256v1) return EcPublicKeyFromPoint("P-256", bits);
    if (curve == NID_secp384r1) return EcPublicKeyFromPoint("P-384", bits);
    return InvalidArgumentError("unsupported EC curve " + ObjectName(curve, curve_obj) +
                                ": expected P-256 or P-384");
  }
  if (nid == NID_rsaEncryption) {
    std::span<const uint8_t> rsa = bits;
    SIGIL_ASSIGN_OR_RETURN(Tlv seq, ReadTlv(rsa, V_ASN1_SEQUENCE, "RSA public key"));
    SIGIL_RETURN_IF_ERROR(ExpectEnd(rsa, "the RSA public key"));
    std::span<const uint8_t> parts = seq.content;
    SIGIL_ASSIGN_OR_RETURN(Tlv n, ReadTlv(parts, V_ASN1_INTEGER, "RSA modulus"));
    SIGIL_ASSIGN_OR_RETURN(Tlv e, ReadTlv(parts, V_ASN1_INTEGER, "RSA exponent"));
    SIGIL_RETURN_IF_ERROR(ExpectEnd(parts, "the RSA exponent"));
    SIGIL_RETURN_IF_ERROR(CheckRsaParts(n.content, e.content));
    return RsaPublicKeyFromParts(n.content, e.content);
  }
  return InvalidArgumentError("unsupported key algorithm " + ObjectName(nid, obj) +
                              ": expected EC P-256, EC P-384 or RSA");
}

// The digest of a CSR signature algorithm that fits `key`; null when none does.
const EVP_MD* SignatureDigest(int nid, EVP_PKEY* key) {
  const bool ec = EVP_PKEY_is_a(key, "EC");
  switch (nid) {
    case NID_ecdsa_with_SHA256: return ec ? EVP_sha256() : nullptr;
    case NID_ecdsa_with_SHA384: return ec ? EVP_sha384() : nullptr;
    case NID_ecdsa_with_SHA512: return ec ? EVP_sha512() : nullptr;
    case NID_sha256WithRSAEncryption: return ec ? nullptr : EVP_sha256();
    case NID_sha384WithRSAEncryption: return ec ? nullptr : EVP_sha384();
    case NID_sha512WithRSAEncryption: return ec ? nullptr : EVP_sha512();
    default: return nullptr;
  }
}

}  // namespace

// Parsed by hand, element by element (see ReadPublicKey for why). The subject and attributes
// are checked for DER framing only: the server takes nothing from them.
Result<CertifiableKey> CheckCsr(std::span<const uint8_t> der) {
  if (der.empty()) return InvalidArgumentError("CSR is empty");
  std::span<const uint8_t> in = der;
  SIGIL_ASSIGN_OR_RETURN(Tlv csr, ReadTlv(in, V_ASN1_SEQUENCE, "CertificationRequest"));
  if (!in.empty()) {
    return InvalidArgumentError("CSR has " + std::to_string(in.size()) +
                                " trailing bytes after its DER");
  }
  std::span<const uint8_t> body = csr.content;
  SIGIL_ASSIGN_OR_RETURN(Tlv info, ReadTlv(body, V_ASN1_SEQUENCE, "CertificationRequestInfo"));
  SIGIL_ASSIGN_OR_RETURN(Tlv sig_alg_tlv, ReadTlv(body, V_ASN1_SEQUENCE, "signature algorithm"));
  SIGIL_ASSIGN_OR_RETURN(Tlv sig_tlv, ReadTlv(body, V_ASN1_BIT_STRING, "signature"));
  SIGIL_RETURN_IF_ERROR(ExpectEnd(body, "the signature"));

  std::span<const uint8_t> fields = info.content;
  SIGIL_ASSIGN_OR_RETURN(Tlv version, ReadTlv(fields, V_ASN1_INTEGER, "version"));
  if (version.content.size() != 1 || version.content[0] != 0) {
    return InvalidArgumentError("CSR version is not 1 (encoded 0)");
  }
  SIGIL_ASSIGN_OR_RETURN(Tlv subject, ReadTlv(fields, V_ASN1_SEQUENCE, "subject"));
  SIGIL_ASSIGN_OR_RETURN(Tlv spki, ReadTlv(fields, V_ASN1_SEQUENCE, "subjectPublicKeyInfo"));
  SIGIL_ASSIGN_OR_RETURN(Tlv attributes, ReadTlv(fields, -1, "attributes"));
  if (attributes.cls != V_ASN1_CONTEXT_SPECIFIC || attributes.tag != 0 || !attributes.constructed) {
    return InvalidArgumentError("CSR is not valid PKCS#10 DER: attributes have the wrong type");
  }
  SIGIL_RETURN_IF_ERROR(ExpectEnd(fields, "the attributes"));
  (void)subject;

  // ReadPublicKey takes only the keys CheckCertifiableKey accepts, and refuses the rest from
  // their encoded sizes, before anything costly (building the key, verifying the signature).
  std::span<const uint8_t> ec_point;
  auto key = ReadPublicKey(spki, &ec_point);
  if (!key.ok()) return key.status().AddContext("checking CSR public key");

  SIGIL_ASSIGN_OR_RETURN(AlgorPtr sig_alg, ReadAlgorithm(sig_alg_tlv, "signature algorithm"));
  const ASN1_OBJECT* sig_obj = nullptr;
  int sig_param_type = 0;
  X509_ALGOR_get0(&sig_obj, &sig_param_type, nullptr, sig_alg.get());
  const int sig_nid = OBJ_obj2nid(sig_obj);
  const EVP_MD* md = SignatureDigest(sig_nid, key->get());
  if (md == nullptr) {
    return InvalidArgumentError("CSR signature algorithm " + ObjectName(sig_nid, sig_obj) +
                                " is not supported for its key");
  }
  // The algorithm identifier lies outside what the signature covers; only the forms RFC 5758
  // (ECDSA: no parameters) and RFC 4055 (RSA: NULL or none) allow are taken.
  const bool ec = EVP_PKEY_is_a(key->get(), "EC");
  if (ec ? sig_param_type != V_ASN1_UNDEF
         : sig_param_type != V_ASN1_NULL && sig_param_type != V_ASN1_UNDEF) {
    return InvalidArgumentError("CSR signature algorithm " + ObjectName(sig_nid, sig_obj) +
                                " has parameters it must not have");
  }
  SIGIL_ASSIGN_OR_RETURN(std::span<const uint8_t> signature, BitStringBytes(sig_tlv, "signature"));
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  const bool verified =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key->get()) == 1 &&
      EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), info.whole.data(),
                       info.whole.size()) == 1;
  ClearOpenSSLErrors();
  if (!verified) {
    return InvalidArgumentError("CSR signature does not verify against its own public key");
  }
  // Kept uncompressed only: that is the form certificates carry.
  const bool uncompressed = !ec_point.empty() && ec_point.front() == 0x04;
  return CertifiableKey(std::move(*key), uncompressed ? Bytes(ec_point.begin(), ec_point.end()) : Bytes());
}

}  // namespace sigil
