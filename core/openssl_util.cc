#include "core/openssl_util.h"

#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include <openssl/err.h>
#include <openssl/pem.h>

namespace sigil {

Status OpenSSLError(Code code, std::string_view what) {
  std::string message(what);
  bool first = true;
  unsigned long err;  // NOLINT(google-runtime-int): OpenSSL's type
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    // Keep only "library::reason"; the numeric prefix helps nobody reading a log line.
    std::string_view text(buf);
    if (auto pos = text.find(':', text.find(':') + 1); pos != std::string_view::npos) {
      text.remove_prefix(pos + 1);
    }
    message += first ? ": " : "; ";
    message += text;
    first = false;
  }
  return Status(code, std::move(message));
}

void ClearOpenSSLErrors() { ERR_clear_error(); }

Result<Bytes> EcdsaDerToRaw(std::span<const uint8_t> der, size_t field_size) {
  const unsigned char* p = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig || p != der.data() + der.size()) {
    return OpenSSLError(Code::kInvalidArgument, "ECDSA signature is not valid DER");
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  if (BN_num_bytes(r) > static_cast<int>(field_size) ||
      BN_num_bytes(s) > static_cast<int>(field_size)) {
    return InvalidArgumentError("ECDSA signature component is longer than the curve's field size " +
                                std::to_string(field_size));
  }
  Bytes raw(2 * field_size);
  if (BN_bn2binpad(r, raw.data(), static_cast<int>(field_size)) < 0 ||
      BN_bn2binpad(s, raw.data() + field_size, static_cast<int>(field_size)) < 0) {
    return OpenSSLError(Code::kInternal, "encoding ECDSA signature as r||s");
  }
  return raw;
}

Result<Bytes> EcdsaRawToDer(std::span<const uint8_t> raw) {
  if (raw.empty() || raw.size() % 2 != 0) {
    return InvalidArgumentError("raw ECDSA signature must be r||s of equal halves, got " +
                                std::to_string(raw.size()) + " bytes");
  }
  const size_t half = raw.size() / 2;
  BignumPtr r(BN_bin2bn(raw.data(), static_cast<int>(half), nullptr));
  BignumPtr s(BN_bin2bn(raw.data() + half, static_cast<int>(half), nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    return OpenSSLError(Code::kInternal, "building ECDSA signature");
  }
  r.release();  // owned by sig now
  s.release();
  unsigned char* out = nullptr;
  int len = i2d_ECDSA_SIG(sig.get(), &out);
  if (len <= 0) return OpenSSLError(Code::kInternal, "DER-encoding ECDSA signature");
  Bytes der(out, out + len);
  OPENSSL_free(out);
  return der;
}

Result<Bytes> PublicKeyToDer(EVP_PKEY* key) {
  unsigned char* out = nullptr;
  int len = i2d_PUBKEY(key, &out);
  if (len <= 0) return OpenSSLError(Code::kInvalidArgument, "DER-encoding public key");
  Bytes der(out, out + len);
  OPENSSL_free(out);
  return der;
}

Result<EvpPkeyPtr> PublicKeyFromDer(std::span<const uint8_t> der) {
  const unsigned char* p = der.data();
  EvpPkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (!key || p != der.data() + der.size()) {
    return OpenSSLError(Code::kInvalidArgument, "public key is not a valid SubjectPublicKeyInfo");
  }
  return key;
}

void AppendDerLength(Bytes& out, size_t len) {
  if (len < 0x80) {
    out.push_back(static_cast<uint8_t>(len));
    return;
  }
  uint8_t buf[sizeof(size_t)];
  int n = 0;
  for (size_t v = len; v != 0; v >>= 8) buf[n++] = static_cast<uint8_t>(v & 0xff);
  out.push_back(static_cast<uint8_t>(0x80 | n));
  while (n > 0) out.push_back(buf[--n]);
}

namespace {

using Pkcs8Ptr = std::unique_ptr<PKCS8_PRIV_KEY_INFO, OpenSSLDeleter<PKCS8_PRIV_KEY_INFO_free>>;

// PKCS#8 of a P-256 or P-384 key from its parts, as OpenSSL writes it: an RFC 5915
// ECPrivateKey with the public key and without the curve, which the outer algorithm names.
// EVP_PKEY2PKCS8 sets up OpenSSL 3.0's generic encoder for every key, which cost an agent as
// much as making the key; nullptr for any other key, which takes that path.
Pkcs8Ptr EcPkcs8(EVP_PKEY* key) {
  char group[32];
  if (!EVP_PKEY_is_a(key, "EC") ||
      EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), nullptr) != 1) {
    return nullptr;
  }
  const std::string_view name(group);
  const int curve = name == "prime256v1" || name == "P-256" ? NID_X9_62_prime256v1
                    : name == "secp384r1" || name == "P-384" ? NID_secp384r1
                                                             : NID_undef;
  if (curve == NID_undef) return nullptr;
  const size_t field = curve == NID_secp384r1 ? 48 : 32;
  BIGNUM* raw_private = nullptr;
  if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &raw_private) != 1) return nullptr;
  std::unique_ptr<BIGNUM, OpenSSLDeleter<BN_clear_free>> private_value(raw_private);
  unsigned char point[1 + 2 * 48];
  size_t point_length = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof(point),
                                      &point_length) != 1) {
    return nullptr;
  }
  // SEQUENCE { INTEGER 1, OCTET STRING d, [1] { BIT STRING point } }
  Bytes body = {V_ASN1_INTEGER, 1, 1, V_ASN1_OCTET_STRING, static_cast<uint8_t>(field)};
  body.resize(body.size() + field);
  if (BN_bn2binpad(private_value.get(), body.data() + body.size() - field, static_cast<int>(field)) < 0) {
    OPENSSL_cleanse(body.data(), body.size());
    return nullptr;
  }
  Bytes bits = {V_ASN1_BIT_STRING};
  AppendDerLength(bits, point_length + 1);
  bits.push_back(0);  // no unused bits
  bits.insert(bits.end(), point, point + point_length);
  body.push_back(V_ASN1_CONTEXT_SPECIFIC | V_ASN1_CONSTRUCTED | 1);
  AppendDerLength(body, bits.size());
  body.insert(body.end(), bits.begin(), bits.end());
  Bytes inner = {V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED};
  AppendDerLength(inner, body.size());
  inner.insert(inner.end(), body.begin(), body.end());
  OPENSSL_cleanse(body.data(), body.size());

  Pkcs8Ptr info(PKCS8_PRIV_KEY_INFO_new());
  auto* owned = static_cast<unsigned char*>(OPENSSL_memdup(inner.data(), inner.size()));
  const int length = static_cast<int>(inner.size());
  OPENSSL_cleanse(inner.data(), inner.size());
  if (!info || owned == nullptr ||
      PKCS8_pkey_set0(info.get(), OBJ_nid2obj(NID_X9_62_id_ecPublicKey), 0, V_ASN1_OBJECT, OBJ_nid2obj(curve),
                      owned, length) != 1) {
    OPENSSL_clear_free(owned, static_cast<size_t>(length));
    return nullptr;
  }
  return info;
}

}  // namespace

Result<Bytes> PrivateKeyToPkcs8Der(EVP_PKEY* key) {
  Pkcs8Ptr info = EcPkcs8(key);
  if (!info) info.reset(EVP_PKEY2PKCS8(key));
  if (!info) return OpenSSLError(Code::kInternal, "encoding a private key as PKCS#8");
  unsigned char* out = nullptr;
  const int len = i2d_PKCS8_PRIV_KEY_INFO(info.get(), &out);
  if (len <= 0) return OpenSSLError(Code::kInternal, "encoding a private key as PKCS#8");
  Bytes der(out, out + len);
  OPENSSL_clear_free(out, static_cast<size_t>(len));
  return der;
}

Result<std::string> PrivateKeyToPkcs8Pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSSLError(Code::kInternal, "encoding a private key as PEM");
  }
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<size_t>(length));
  OPENSSL_cleanse(data, static_cast<size_t>(length));
  return pem;
}

Result<EvpPkeyPtr> PrivateKeyFromDer(std::span<const uint8_t> der) {
  const unsigned char* p = der.data();
  EvpPkeyPtr key(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.size())));
  if (!key) return OpenSSLError(Code::kInvalidArgument, "private key is not valid DER");
  return key;
}

Result<EvpPkeyPtr> PrivateKeyFromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpPkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return OpenSSLError(Code::kInvalidArgument, "private key is not valid PEM");
  return key;
}

std::string SerialHex(X509* cert) {
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  BignumPtr value(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!value) return "";
  Bytes bytes(static_cast<size_t>(BN_num_bytes(value.get())));
  BN_bn2bin(value.get(), bytes.data());
  return HexEncode(bytes);
}

std::string HexEncode(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

Bytes Sha256(std::span<const uint8_t> data) {
  Bytes digest(EVP_MAX_MD_SIZE);
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr);
  digest.resize(length);
  return digest;
}

namespace {

using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, OpenSSLDeleter<OSSL_PARAM_BLD_free>>;
using ParamsPtr = std::unique_ptr<OSSL_PARAM, OpenSSLDeleter<OSSL_PARAM_free>>;
using BnCtxPtr = std::unique_ptr<BN_CTX, OpenSSLDeleter<BN_CTX_free>>;

// SP 800-56B's partial public-key validation, less its step that tries one random Miller-Rabin
// base on the modulus: OpenSSL's public check refuses a composite modulus when that base happens
// to reveal a factor, so the same malformed key loaded or failed by chance. Deterministic instead:
// an odd modulus that is not prime, an odd exponent between 2^16 and 2^256.
Status CheckRsaPublicKey(EVP_PKEY* key, std::string_view what) {
  const auto [n, e] = RsaPartsOf(key);
  if (!n || !e) return OpenSSLError(Code::kInvalidArgument, std::string(what) + " has no modulus or exponent");
  if (!BN_is_odd(n.get())) return InvalidArgumentError(std::string(what) + " has an even modulus");
  if (!BN_is_odd(e.get()) || BN_num_bits(e.get()) <= 16 || BN_num_bits(e.get()) > 256) {
    return InvalidArgumentError(std::string(what) +
                                " has a public exponent that is not odd and between 2^16 and 2^256");
  }
  BnCtxPtr ctx(BN_CTX_new());
  const int prime = ctx ? BN_check_prime(n.get(), ctx.get(), nullptr) : -1;
  if (prime < 0) return OpenSSLError(Code::kInternal, std::string("checking the modulus of ") + std::string(what));
  if (prime == 1) return InvalidArgumentError(std::string(what) + " has a prime modulus");
  return Status::Ok();
}

// fromdata accepts points off the curve; a public key check refuses them. The quick check (on
// the curve, not infinity) suffices: P-256 and P-384 have cofactor 1, so every point on the
// curve is in the prime-order group, and the full check's scalar multiplication would cost as
// much as verifying a signature, on every CSR the server reads.
Result<EvpPkeyPtr> CheckedPublicKey(EvpPkeyPtr key, std::string_view what) {
  if (EVP_PKEY_is_a(key.get(), "RSA")) {
    SIGIL_RETURN_IF_ERROR(CheckRsaPublicKey(key.get(), what));
    return key;
  }
  EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) {
    return OpenSSLError(Code::kInvalidArgument, std::string(what) + " is not a valid public key");
  }
  return key;
}

Result<EvpPkeyPtr> PublicKeyFromParams(const char* type, OSSL_PARAM_BLD* builder,
                                       std::string_view what) {
  ParamsPtr params(OSSL_PARAM_BLD_to_param(builder));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return OpenSSLError(Code::kInvalidArgument, std::string("building ") + std::string(what));
  }
  return CheckedPublicKey(EvpPkeyPtr(key), what);
}

Result<EvpPkeyPtr> EcPublicKeyFromParams(const std::string& group, std::span<const uint8_t> point) {
  ParamBldPtr builder(OSSL_PARAM_BLD_new());
  if (!builder ||
      OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, group.c_str(), 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return OpenSSLError(Code::kInternal, "preparing EC public key parameters");
  }
  return PublicKeyFromParams("EC", builder.get(), group + " public key");
}

// A public key on `curve` that the others are copied from. A key built from its parameters gets
// the curve's group built afresh (its Montgomery contexts and tables), which costs a server
// reading CSRs a fifth of each CSR's check; a copy shares them. Made once, at first use, and
// only read after, for the life of the process.
const EVP_PKEY* CurveTemplate(const std::string& curve) {
  auto make = [](const char* name) -> EVP_PKEY* {
    EvpPkeyPtr pair(EVP_EC_gen(name));
    unsigned char point[1 + 2 * 48];
    size_t length = 0;
    if (!pair || EVP_PKEY_get_octet_string_param(pair.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                                 sizeof(point), &length) != 1) {
      return nullptr;
    }
    auto key = EcPublicKeyFromParams(name, std::span<const uint8_t>(point, length));
    return key.ok() ? key->release() : nullptr;
  };
  static const EVP_PKEY* const p256 = make("P-256");
  static const EVP_PKEY* const p384 = make("P-384");
  if (curve == "P-256") return p256;
  if (curve == "P-384") return p384;
  return nullptr;
}

}  // namespace

Result<EvpPkeyPtr> EcPublicKeyFromPoint(std::string_view curve, std::span<const uint8_t> point) {
  const std::string group(curve);
  const EVP_PKEY* curve_template = CurveTemplate(group);
  if (curve_template == nullptr) return EcPublicKeyFromParams(group, point);
  // Only a whole point, compressed or not: the one-byte encoding of the point at infinity is
  // refused here, and OpenSSL refuses a point off the curve as it decodes it (setting affine
  // coordinates checks them), which is all the quick public key check would add.
  const size_t field = group == "P-256" ? 32 : 48;
  const bool whole = (point.size() == 1 + 2 * field && point.front() == 0x04) ||
                     (point.size() == 1 + field && (point.front() == 0x02 || point.front() == 0x03));
  if (!whole) return InvalidArgumentError(group + " public key is not a valid public key: not an encoded point");
  // EVP_PKEY_dup only reads its argument; OpenSSL 3.0 declares it non-const.
  EvpPkeyPtr key(EVP_PKEY_dup(const_cast<EVP_PKEY*>(curve_template)));
  if (!key || EVP_PKEY_set1_encoded_public_key(key.get(), point.data(), point.size()) != 1) {
    return OpenSSLError(Code::kInvalidArgument, group + " public key is not a valid public key");
  }
  // A compressed point sets the key's encoding to compressed; certificates carry it
  // uncompressed, the form every verifier takes.
  if (point.front() != 0x04 &&
      EVP_PKEY_set_utf8_string_param(key.get(), OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                     OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) != 1) {
    return OpenSSLError(Code::kInternal, "encoding a " + group + " public key uncompressed");
  }
  return key;
}

RsaParts RsaPartsOf(const EVP_PKEY* key) {
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 || EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
    BN_free(n);
    BN_free(e);
    ClearOpenSSLErrors();
    return {};
  }
  return {BignumPtr(n), BignumPtr(e)};
}

Result<EvpPkeyPtr> RsaPublicKeyFromParts(std::span<const uint8_t> modulus,
                                         std::span<const uint8_t> exponent) {
  BignumPtr n(BN_bin2bn(modulus.data(), static_cast<int>(modulus.size()), nullptr));
  BignumPtr e(BN_bin2bn(exponent.data(), static_cast<int>(exponent.size()), nullptr));
  ParamBldPtr builder(OSSL_PARAM_BLD_new());
  if (!n || !e || !builder || OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return OpenSSLError(Code::kInternal, "preparing RSA public key parameters");
  }
  return PublicKeyFromParams("RSA", builder.get(), "RSA public key");
}

}  // namespace sigil
