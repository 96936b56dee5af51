#include "core/trust_bundle.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <nlohmann/json.hpp>

#include "core/base64url.h"
#include "core/signer.h"

namespace sigil {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kUseX509 = "x509-svid";
constexpr std::string_view kUseJwt = "jwt-svid";

Result<Bytes> BignumParam(EVP_PKEY* key, const char* name, size_t pad_to) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) {
    return OpenSSLError(Code::kInternal, std::string("reading key parameter ") + name);
  }
  BignumPtr bn(raw);
  const size_t len = std::max(pad_to, static_cast<size_t>(BN_num_bytes(bn.get())));
  Bytes out(len);
  if (BN_bn2binpad(bn.get(), out.data(), static_cast<int>(len)) < 0) {
    return OpenSSLError(Code::kInternal, std::string("encoding key parameter ") + name);
  }
  return out;
}

// The JWK members that describe `key` (kty and its parameters).
Result<Json> PublicKeyToJwk(EVP_PKEY* key) {
  Json jwk;
  if (EVP_PKEY_is_a(key, "RSA")) {
    SIGIL_ASSIGN_OR_RETURN(Bytes n, BignumParam(key, OSSL_PKEY_PARAM_RSA_N, 0));
    SIGIL_ASSIGN_OR_RETURN(Bytes e, BignumParam(key, OSSL_PKEY_PARAM_RSA_E, 0));
    jwk["kty"] = "RSA";
    jwk["n"] = Base64UrlEncode(n);
    jwk["e"] = Base64UrlEncode(e);
    return jwk;
  }
  SIGIL_ASSIGN_OR_RETURN(KeyType type, KeyTypeOf(key));
  const size_t field = EcdsaFieldSize(type);
  SIGIL_ASSIGN_OR_RETURN(Bytes x, BignumParam(key, OSSL_PKEY_PARAM_EC_PUB_X, field));
  SIGIL_ASSIGN_OR_RETURN(Bytes y, BignumParam(key, OSSL_PKEY_PARAM_EC_PUB_Y, field));
  jwk["kty"] = "EC";
  jwk["crv"] = type == KeyType::kEcP384 ? "P-384" : "P-256";
  jwk["x"] = Base64UrlEncode(x);
  jwk["y"] = Base64UrlEncode(y);
  return jwk;
}

Result<std::string> StringMember(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) return InvalidArgumentError(std::string("\"") + name + "\" is missing");
  if (!it->is_string()) return InvalidArgumentError(std::string("\"") + name + "\" is not a string");
  return it->get<std::string>();
}

Result<Bytes> Base64UrlMember(const Json& obj, const char* name) {
  SIGIL_ASSIGN_OR_RETURN(std::string text, StringMember(obj, name));
  auto bytes = Base64UrlDecode(text);
  if (!bytes.ok()) return bytes.status().AddContext(std::string("in \"") + name + "\"");
  return bytes;
}

Result<EvpPkeyPtr> PublicKeyFromJwk(const Json& jwk) {
  SIGIL_ASSIGN_OR_RETURN(std::string kty, StringMember(jwk, "kty"));
  if (kty == "EC") {
    SIGIL_ASSIGN_OR_RETURN(std::string crv, StringMember(jwk, "crv"));
    size_t field = 0;
    if (crv == "P-256") field = 32;
    if (crv == "P-384") field = 48;
    if (field == 0) {
      return InvalidArgumentError("unsupported curve \"" + crv + "\": expected P-256 or P-384");
    }
    SIGIL_ASSIGN_OR_RETURN(Bytes x, Base64UrlMember(jwk, "x"));
    SIGIL_ASSIGN_OR_RETURN(Bytes y, Base64UrlMember(jwk, "y"));
    if (x.size() != field || y.size() != field) {
      return InvalidArgumentError("\"x\" and \"y\" of a " + crv + " key must be " +
                                  std::to_string(field) + " bytes each");
    }
    Bytes point{0x04};
    point.insert(point.end(), x.begin(), x.end());
    point.insert(point.end(), y.begin(), y.end());
    return EcPublicKeyFromPoint(crv, point);
  }
  if (kty == "RSA") {
    SIGIL_ASSIGN_OR_RETURN(Bytes n, Base64UrlMember(jwk, "n"));
    SIGIL_ASSIGN_OR_RETURN(Bytes e, Base64UrlMember(jwk, "e"));
    SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, RsaPublicKeyFromParts(n, e));
    if (EVP_PKEY_get_bits(key.get()) < 2048) {
      return InvalidArgumentError("RSA key of " + std::to_string(EVP_PKEY_get_bits(key.get())) +
                                  " bits is too weak: at least 2048 bits are required");
    }
    return key;
  }
  return InvalidArgumentError("unsupported key type \"" + kty + "\": expected EC or RSA");
}

Status ParseKey(const Json& jwk, TrustBundle& bundle) {
  if (!jwk.is_object()) return InvalidArgumentError("is not a JSON object");
  auto use_it = jwk.find("use");
  if (use_it == jwk.end() || !use_it->is_string()) return Status::Ok();  // not for SPIFFE
  const std::string use = use_it->get<std::string>();
  if (use != kUseX509 && use != kUseJwt) return Status::Ok();

  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, PublicKeyFromJwk(jwk));
  if (use == kUseX509) {
    auto x5c = jwk.find("x5c");
    if (x5c == jwk.end() || !x5c->is_array() || x5c->size() != 1 || !(*x5c)[0].is_string()) {
      return InvalidArgumentError("an x509-svid key needs \"x5c\" with exactly one certificate");
    }
    auto der = Base64Decode((*x5c)[0].get<std::string>());
    if (!der.ok()) return der.status().AddContext("in \"x5c\"");
    auto cert = CertFromDer(*der);
    if (!cert.ok()) return cert.status().AddContext("in \"x5c\"");
    if (EVP_PKEY_eq(X509_get0_pubkey(cert->get()), key.get()) != 1) {
      ClearOpenSSLErrors();
      return InvalidArgumentError("key parameters do not match the \"x5c\" certificate's key");
    }
    bundle.x509.Add(cert->get());
    return Status::Ok();
  }
  SIGIL_ASSIGN_OR_RETURN(std::string kid, StringMember(jwk, "kid"));
  if (kid.empty()) return InvalidArgumentError("\"kid\" is empty");
  if (bundle.jwt.authorities.contains(kid)) {
    return InvalidArgumentError("\"kid\" \"" + kid + "\" appears twice");
  }
  bundle.jwt.authorities.emplace(kid, JwtAuthority(std::move(key)));
  return Status::Ok();
}

}  // namespace

X509Ptr UpRef(X509* cert) {
  X509_up_ref(cert);
  return X509Ptr(cert);
}

EvpPkeyPtr UpRef(EVP_PKEY* key) {
  EVP_PKEY_up_ref(key);
  return EvpPkeyPtr(key);
}

X509Bundle::X509Bundle(const X509Bundle& other) : trust_domain(other.trust_domain) {
  for (const auto& cert : other.authorities) authorities.push_back(UpRef(cert.get()));
}

X509Bundle& X509Bundle::operator=(const X509Bundle& other) {
  if (this != &other) *this = X509Bundle(other);
  return *this;
}

void X509Bundle::Add(X509* cert) {
  for (const auto& have : authorities) {
    if (X509_cmp(have.get(), cert) == 0) return;
  }
  authorities.push_back(UpRef(cert));
}

std::vector<X509*> X509Bundle::raw() const {
  std::vector<X509*> out;
  out.reserve(authorities.size());
  for (const auto& cert : authorities) out.push_back(cert.get());
  return out;
}

JwtAuthority::JwtAuthority(const JwtAuthority& other)
    : public_key(other.public_key ? UpRef(other.public_key.get()) : nullptr),
      expires_at(other.expires_at) {}

JwtAuthority& JwtAuthority::operator=(const JwtAuthority& other) {
  if (this != &other) *this = JwtAuthority(other);
  return *this;
}

Result<Bytes> CertToDer(X509* cert) {
  const int len = i2d_X509(cert, nullptr);
  if (len <= 0) return OpenSSLError(Code::kInternal, "encoding certificate");
  Bytes der(static_cast<size_t>(len));
  unsigned char* p = der.data();
  i2d_X509(cert, &p);
  return der;
}

Result<X509Ptr> CertFromDer(std::span<const uint8_t> der) {
  if (der.empty()) return InvalidArgumentError("certificate is empty");
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) return OpenSSLError(Code::kInvalidArgument, "certificate is not valid X.509 DER");
  if (p != der.data() + der.size()) {
    return InvalidArgumentError("certificate has " + std::to_string(der.data() + der.size() - p) +
                                " trailing bytes after its DER");
  }
  return cert;
}

Result<std::string> CertsToPem(std::span<X509* const> certs) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return OpenSSLError(Code::kInternal, "allocating PEM buffer");
  for (X509* cert : certs) {
    if (PEM_write_bio_X509(bio.get(), cert) != 1) {
      return OpenSSLError(Code::kInternal, "writing certificate PEM");
    }
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

Result<std::vector<X509Ptr>> CertsFromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpenSSLError(Code::kInternal, "allocating PEM buffer");
  std::vector<X509Ptr> certs;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    certs.push_back(std::move(cert));
  }
  // The loop ends on the first block that is not a certificate; only running out of input is fine.
  const unsigned long err = ERR_peek_last_error();
  if (err != 0 && !(ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)) {
    return OpenSSLError(Code::kInvalidArgument,
                        "PEM certificate " + std::to_string(certs.size() + 1) + " does not parse");
  }
  ClearOpenSSLErrors();
  if (certs.empty()) return InvalidArgumentError("no PEM certificate found");
  return certs;
}

Result<std::string> X509BundleToPem(const X509Bundle& bundle) {
  return CertsToPem(bundle.raw());
}

Result<X509Bundle> X509BundleFromPem(const TrustDomain& td, std::string_view pem) {
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, CertsFromPem(pem));
  X509Bundle bundle(td);
  for (const auto& cert : certs) bundle.Add(cert.get());
  return bundle;
}

Result<std::string> TrustBundleToJwks(const TrustBundle& bundle) {
  Json keys = Json::array();
  for (const auto& cert : bundle.x509.authorities) {
    auto jwk = PublicKeyToJwk(X509_get0_pubkey(cert.get()));
    if (!jwk.ok()) return jwk.status().AddContext("encoding an X.509 authority");
    SIGIL_ASSIGN_OR_RETURN(Bytes der, CertToDer(cert.get()));
    (*jwk)["use"] = kUseX509;
    (*jwk)["x5c"] = Json::array({Base64Encode(der)});
    keys.push_back(std::move(*jwk));
  }
  for (const auto& [kid, authority] : bundle.jwt.authorities) {
    auto jwk = PublicKeyToJwk(authority.public_key.get());
    if (!jwk.ok()) return jwk.status().AddContext("encoding JWT authority " + kid);
    (*jwk)["kid"] = kid;
    (*jwk)["use"] = kUseJwt;
    keys.push_back(std::move(*jwk));
  }
  Json doc;
  doc["keys"] = std::move(keys);
  if (bundle.sequence != 0) doc["spiffe_sequence"] = bundle.sequence;
  if (bundle.refresh_hint.count() != 0) doc["spiffe_refresh_hint"] = bundle.refresh_hint.count();
  return doc.dump(2);
}

Result<std::string> JwtAuthoritiesToOidcJwks(const JwtBundle& bundle, bool set_key_use) {
  Json keys = Json::array();
  for (const auto& [kid, authority] : bundle.authorities) {
    auto jwk = PublicKeyToJwk(authority.public_key.get());
    if (!jwk.ok()) return jwk.status().AddContext("encoding JWT authority " + kid);
    // Any RSA key verifies RS256, whatever its size (a bundle set by hand may hold one).
    KeyType type = KeyType::kRsa2048;
    if (!EVP_PKEY_is_a(authority.public_key.get(), "RSA")) {
      SIGIL_ASSIGN_OR_RETURN(type, KeyTypeOf(authority.public_key.get()));
    }
    (*jwk)["kid"] = kid;
    (*jwk)["alg"] = JwsAlgorithmName(DefaultSchemeFor(type));
    if (set_key_use) (*jwk)["use"] = "sig";
    keys.push_back(std::move(*jwk));
  }
  Json doc;
  doc["keys"] = std::move(keys);
  return doc.dump(2);
}

Result<TrustBundle> TrustBundleFromJwks(const TrustDomain& td, std::string_view jwks) {
  Json doc = Json::parse(jwks, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgumentError("trust bundle is not valid JSON");
  if (!doc.is_object()) return InvalidArgumentError("trust bundle is not a JSON object");
  auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) {
    return InvalidArgumentError("trust bundle has no \"keys\" array");
  }
  TrustBundle bundle(td);
  for (size_t i = 0; i < keys->size(); ++i) {
    Status status = ParseKey((*keys)[i], bundle);
    if (!status.ok()) {
      std::string what = status.message();
      for (const auto& frame : status.context()) what += " (" + frame + ")";
      return InvalidArgumentError("trust bundle key " + std::to_string(i) + ": " + what);
    }
  }
  if (auto seq = doc.find("spiffe_sequence"); seq != doc.end()) {
    if (!seq->is_number_unsigned()) {
      return InvalidArgumentError("\"spiffe_sequence\" is not a non-negative integer");
    }
    bundle.sequence = seq->get<uint64_t>();
  }
  if (auto hint = doc.find("spiffe_refresh_hint"); hint != doc.end()) {
    if (!hint->is_number_integer() || hint->get<int64_t>() < 0) {
      return InvalidArgumentError("\"spiffe_refresh_hint\" is not a non-negative integer");
    }
    bundle.refresh_hint = std::chrono::seconds(hint->get<int64_t>());
  }
  return bundle;
}

}  // namespace sigil
