#include "core/x509_ca.h"

#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>

#include "core/csr.h"
#include "core/trust_bundle.h"

namespace sigil {
namespace {

using std::chrono::system_clock;

struct AlgorithmId {
  int nid;
  int param_type;
};

AlgorithmId SignatureAlgorithm(SignatureScheme scheme) {
  switch (scheme) {
    case SignatureScheme::kES256: return {NID_ecdsa_with_SHA256, V_ASN1_UNDEF};
    case SignatureScheme::kES384: return {NID_ecdsa_with_SHA384, V_ASN1_UNDEF};
    case SignatureScheme::kRS256: return {NID_sha256WithRSAEncryption, V_ASN1_NULL};
  }
  return {NID_undef, V_ASN1_UNDEF};
}

Status SetSerial(X509* x) {
  uint8_t bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return OpenSSLError(Code::kInternal, "drawing a random serial number");
  }
  // Positive, and always 127 bits long, so no serial loses a byte to a leading zero.
  bytes[0] = static_cast<uint8_t>((bytes[0] & 0x7f) | 0x40);
  BignumPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x)) == nullptr) {
    return OpenSSLError(Code::kInternal, "setting serial number");
  }
  return Status::Ok();
}

Status SetSubject(X509* x, const SubjectName& subject) {
  X509_NAME* name = X509_get_subject_name(x);
  const std::pair<const char*, const std::string*> parts[] = {
      {"C", &subject.country}, {"O", &subject.organization}, {"CN", &subject.common_name}};
  // By NID: by text, OpenSSL looks the short name up among all it knows, on every certificate.
  constexpr int kNids[] = {NID_countryName, NID_organizationName, NID_commonName};
  for (size_t i = 0; i < std::size(parts); ++i) {
    const auto& [field, value] = parts[i];
    if (value->empty()) continue;
    if (X509_NAME_add_entry_by_NID(name, kNids[i], MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value->data()),
                                   static_cast<int>(value->size()), -1, 0) != 1) {
      return OpenSSLError(Code::kInvalidArgument,
                          std::string("subject ") + field + " '" + *value + "' is not valid");
    }
  }
  return Status::Ok();
}

Status AddExtension(X509* x, int nid, void* value, bool critical, const char* what) {
  if (X509_add1_ext_i2d(x, nid, value, critical ? 1 : 0, X509V3_ADD_DEFAULT) != 1) {
    return OpenSSLError(Code::kInternal, std::string("adding ") + what);
  }
  return Status::Ok();
}

Status AddGeneralName(GENERAL_NAMES* names, int type, const std::string& value) {
  ASN1_IA5STRING* text = ASN1_IA5STRING_new();
  GENERAL_NAME* name = GENERAL_NAME_new();
  if (text == nullptr || name == nullptr ||
      ASN1_STRING_set(text, value.data(), static_cast<int>(value.size())) != 1) {
    ASN1_IA5STRING_free(text);
    GENERAL_NAME_free(name);
    return OpenSSLError(Code::kInternal, "building subject alternative name");
  }
  GENERAL_NAME_set0_value(name, type, text);
  if (sk_GENERAL_NAME_push(names, name) <= 0) {
    GENERAL_NAME_free(name);
    return OpenSSLError(Code::kInternal, "building subject alternative name");
  }
  return Status::Ok();
}

Status AddExtensions(X509* x, const CertTemplate& t, const ASN1_OCTET_STRING* issuer_key_id) {
  {
    std::unique_ptr<BASIC_CONSTRAINTS, OpenSSLDeleter<BASIC_CONSTRAINTS_free>> bc(
        BASIC_CONSTRAINTS_new());
    if (!bc) return OpenSSLError(Code::kInternal, "allocating basicConstraints");
    bc->ca = t.is_ca ? 0xff : 0;
    if (t.is_ca && t.path_len >= 0) {
      bc->pathlen = ASN1_INTEGER_new();
      if (bc->pathlen == nullptr || ASN1_INTEGER_set(bc->pathlen, t.path_len) != 1) {
        return OpenSSLError(Code::kInternal, "setting path length");
      }
    }
    SIGIL_RETURN_IF_ERROR(AddExtension(x, NID_basic_constraints, bc.get(), true, "basicConstraints"));
  }
  {
    std::unique_ptr<ASN1_BIT_STRING, OpenSSLDeleter<ASN1_BIT_STRING_free>> ku(ASN1_BIT_STRING_new());
    if (!ku) return OpenSSLError(Code::kInternal, "allocating keyUsage");
    // Bit numbers from RFC 5280 4.2.1.3.
    constexpr int kDigitalSignature = 0, kKeyEncipherment = 2, kKeyCertSign = 5, kCrlSign = 6;
    bool ok = true;
    if (t.is_ca) {
      ok = ASN1_BIT_STRING_set_bit(ku.get(), kKeyCertSign, 1) == 1 &&
           ASN1_BIT_STRING_set_bit(ku.get(), kCrlSign, 1) == 1;
    } else {
      ok = ASN1_BIT_STRING_set_bit(ku.get(), kDigitalSignature, 1) == 1;
      if (ok && EVP_PKEY_is_a(t.public_key, "RSA")) {
        ok = ASN1_BIT_STRING_set_bit(ku.get(), kKeyEncipherment, 1) == 1;
      }
    }
    if (!ok) return OpenSSLError(Code::kInternal, "setting keyUsage bits");
    SIGIL_RETURN_IF_ERROR(AddExtension(x, NID_key_usage, ku.get(), true, "keyUsage"));
  }
  if (!t.is_ca) {
    std::unique_ptr<EXTENDED_KEY_USAGE, OpenSSLDeleter<EXTENDED_KEY_USAGE_free>> eku(
        sk_ASN1_OBJECT_new_null());
    if (!eku || sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(NID_server_auth)) <= 0 ||
        sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(NID_client_auth)) <= 0) {
      return OpenSSLError(Code::kInternal, "building extendedKeyUsage");
    }
    SIGIL_RETURN_IF_ERROR(AddExtension(x, NID_ext_key_usage, eku.get(), false, "extendedKeyUsage"));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  // RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
  if (X509_pubkey_digest(x, EVP_sha1(), digest, &digest_len) != 1) {
    return OpenSSLError(Code::kInternal, "hashing public key for subjectKeyIdentifier");
  }
  std::unique_ptr<ASN1_OCTET_STRING, OpenSSLDeleter<ASN1_OCTET_STRING_free>> ski(
      ASN1_OCTET_STRING_new());
  if (!ski || ASN1_OCTET_STRING_set(ski.get(), digest, static_cast<int>(digest_len)) != 1) {
    return OpenSSLError(Code::kInternal, "building subjectKeyIdentifier");
  }
  SIGIL_RETURN_IF_ERROR(
      AddExtension(x, NID_subject_key_identifier, ski.get(), false, "subjectKeyIdentifier"));
  const ASN1_OCTET_STRING* aki_id = issuer_key_id != nullptr ? issuer_key_id : ski.get();
  {
    std::unique_ptr<AUTHORITY_KEYID, OpenSSLDeleter<AUTHORITY_KEYID_free>> aki(
        AUTHORITY_KEYID_new());
    if (!aki || (aki->keyid = ASN1_OCTET_STRING_dup(aki_id)) == nullptr) {
      return OpenSSLError(Code::kInternal, "building authorityKeyIdentifier");
    }
    SIGIL_RETURN_IF_ERROR(
        AddExtension(x, NID_authority_key_identifier, aki.get(), false, "authorityKeyIdentifier"));
  }
  if (!t.uri_sans.empty() || !t.dns_sans.empty()) {
    GeneralNamesPtr names(GENERAL_NAMES_new());
    if (!names) return OpenSSLError(Code::kInternal, "allocating subjectAltName");
    for (const auto& uri : t.uri_sans) SIGIL_RETURN_IF_ERROR(AddGeneralName(names.get(), GEN_URI, uri));
    for (const auto& dns : t.dns_sans) SIGIL_RETURN_IF_ERROR(AddGeneralName(names.get(), GEN_DNS, dns));
    // RFC 5280 4.2.1.6: critical only when the subject is empty.
    const bool critical = X509_NAME_entry_count(X509_get_subject_name(x)) == 0;
    SIGIL_RETURN_IF_ERROR(AddExtension(x, NID_subject_alt_name, names.get(), critical,
                                       "subjectAltName"));
  }
  return Status::Ok();
}

// Signs a certificate whose TBS fields are all set. OpenSSL's X509_sign wants the private key
// as an EVP_PKEY; ours may live in a token, so the TBS DER goes through the Signer and the
// signature is set into the certificate as X509_sign would set it.
Result<Bytes> SignTbs(X509Ptr x, Signer& signer, SignatureScheme scheme) {
  const AlgorithmId alg_id = SignatureAlgorithm(scheme);
  std::unique_ptr<X509_ALGOR, OpenSSLDeleter<X509_ALGOR_free>> alg(X509_ALGOR_new());
  if (!alg || X509_ALGOR_set0(alg.get(), OBJ_nid2obj(alg_id.nid), alg_id.param_type, nullptr) != 1) {
    return OpenSSLError(Code::kInternal, "building signature algorithm");
  }
  const ASN1_BIT_STRING* sig_field = nullptr;
  const X509_ALGOR* outer_alg = nullptr;
  X509_get0_signature(&sig_field, &outer_alg, x.get());
  // OpenSSL 3.0 has no setters for a certificate's signature fields (3.2 adds some); the
  // object is ours and not yet signed, so writing through the accessors is what X509_sign
  // itself does.
  if (X509_ALGOR_copy(const_cast<X509_ALGOR*>(X509_get0_tbs_sigalg(x.get())), alg.get()) != 1 ||
      X509_ALGOR_copy(const_cast<X509_ALGOR*>(outer_alg), alg.get()) != 1) {
    return OpenSSLError(Code::kInternal, "setting signature algorithm");
  }
  const int tbs_len = i2d_re_X509_tbs(x.get(), nullptr);
  if (tbs_len <= 0) return OpenSSLError(Code::kInternal, "encoding TBS certificate");
  Bytes tbs(static_cast<size_t>(tbs_len));
  unsigned char* p = tbs.data();
  i2d_re_X509_tbs(x.get(), &p);

  auto signature = signer.SignMessage(scheme, tbs);
  if (!signature.ok()) return signature.status().AddContext("signing certificate");

  auto* sig = const_cast<ASN1_BIT_STRING*>(sig_field);
  if (ASN1_BIT_STRING_set(sig, signature->data(), static_cast<int>(signature->size())) != 1) {
    return OpenSSLError(Code::kInternal, "setting signature");
  }
  sig->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
  sig->flags |= ASN1_STRING_FLAG_BITS_LEFT;  // no unused bits

  const int der_len = i2d_X509(x.get(), nullptr);
  if (der_len <= 0) return OpenSSLError(Code::kInternal, "encoding certificate");
  Bytes der(static_cast<size_t>(der_len));
  p = der.data();
  i2d_X509(x.get(), &p);
  return der;
}

Status SetPublicKey(X509* x, EVP_PKEY* key, std::span<const uint8_t> ec_point) {
  SIGIL_ASSIGN_OR_RETURN(bool filled, FillPublicKeyInfo(X509_get_X509_PUBKEY(x), key, ec_point));
  if (!filled && X509_set_pubkey(x, key) != 1) return OpenSSLError(Code::kInternal, "setting public key");
  return Status::Ok();
}

time_t ToTimeT(TimePoint t) { return system_clock::to_time_t(t); }

TimePoint FromAsn1Time(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return TimePoint{};
  return system_clock::from_time_t(timegm(&tm));
}

// Builds and signs a certificate whose key was checked. `issuer` null: self-issued (subject as
// issuer, own SKI as AKI). `ec_point`: as FillPublicKeyInfo's.
Result<Bytes> BuildAndSign(const CertTemplate& t, X509* issuer, Signer& signer, SignatureScheme scheme,
                           std::span<const uint8_t> ec_point = {}) {
  if (t.not_after <= t.not_before) {
    return InvalidArgumentError("certificate would expire before it becomes valid");
  }
  X509Ptr x(X509_new());
  if (!x || X509_set_version(x.get(), X509_VERSION_3) != 1) {
    return OpenSSLError(Code::kInternal, "allocating certificate");
  }
  SIGIL_RETURN_IF_ERROR(SetPublicKey(x.get(), t.public_key, ec_point));
  SIGIL_RETURN_IF_ERROR(SetSerial(x.get()));
  SIGIL_RETURN_IF_ERROR(SetSubject(x.get(), t.subject));
  X509_NAME* issuer_name = issuer != nullptr ? X509_get_subject_name(issuer)
                                             : X509_get_subject_name(x.get());
  if (X509_set_issuer_name(x.get(), issuer_name) != 1 ||
      ASN1_TIME_set(X509_getm_notBefore(x.get()), ToTimeT(t.not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(x.get()), ToTimeT(t.not_after)) == nullptr) {
    return OpenSSLError(Code::kInternal, "setting issuer and validity");
  }
  const ASN1_OCTET_STRING* issuer_key_id =
      issuer != nullptr ? X509_get0_subject_key_id(issuer) : nullptr;
  SIGIL_RETURN_IF_ERROR(AddExtensions(x.get(), t, issuer_key_id));
  return SignTbs(std::move(x), signer, scheme);
}

CertTemplate CaTemplate(const TrustDomain& td, EVP_PKEY* key, const CaOptions& options) {
  CertTemplate t;
  t.subject = options.subject;
  t.public_key = key;
  t.not_before = options.now - kBackdate;
  t.not_after = options.now + options.ttl;
  t.is_ca = true;
  t.path_len = options.path_len;
  t.uri_sans = {td.IdString()};
  return t;
}

}  // namespace

Result<bool> FillPublicKeyInfo(X509_PUBKEY* spki, EVP_PKEY* key, std::span<const uint8_t> ec_point) {
  if (EVP_PKEY_is_a(key, "EC")) {
    SIGIL_ASSIGN_OR_RETURN(KeyType type, KeyTypeOf(key));
    unsigned char point[1 + 2 * 48];
    size_t len = ec_point.size();
    if (ec_point.empty() || ec_point.size() > sizeof(point)) {
      if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof(point), &len) != 1) {
        return OpenSSLError(Code::kInternal, "reading EC public point");
      }
    } else {
      std::copy(ec_point.begin(), ec_point.end(), point);
    }
    auto* bits = static_cast<unsigned char*>(OPENSSL_memdup(point, len));
    const int curve = type == KeyType::kEcP384 ? NID_secp384r1 : NID_X9_62_prime256v1;
    if (bits == nullptr ||
        X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                               OBJ_nid2obj(curve), bits, static_cast<int>(len)) != 1) {
      OPENSSL_free(bits);
      return OpenSSLError(Code::kInternal, "setting EC public key");
    }
    return true;
  }
  if (EVP_PKEY_is_a(key, "RSA")) {
    const auto [n, e] = RsaPartsOf(key);
    Asn1IntegerPtr n_int(n ? BN_to_ASN1_INTEGER(n.get(), nullptr) : nullptr);
    Asn1IntegerPtr e_int(e ? BN_to_ASN1_INTEGER(e.get(), nullptr) : nullptr);
    if (!n_int || !e_int) return OpenSSLError(Code::kInternal, "reading RSA public key");
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    const int n_len = i2d_ASN1_INTEGER(n_int.get(), nullptr);
    const int e_len = i2d_ASN1_INTEGER(e_int.get(), nullptr);
    Bytes body(static_cast<size_t>(n_len + e_len));
    unsigned char* p = body.data();
    i2d_ASN1_INTEGER(n_int.get(), &p);
    i2d_ASN1_INTEGER(e_int.get(), &p);
    Bytes der{V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED};
    AppendDerLength(der, body.size());
    der.insert(der.end(), body.begin(), body.end());
    auto* bits = static_cast<unsigned char*>(OPENSSL_memdup(der.data(), der.size()));
    if (bits == nullptr ||
        X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, nullptr, bits,
                               static_cast<int>(der.size())) != 1) {
      OPENSSL_free(bits);
      return OpenSSLError(Code::kInternal, "setting RSA public key");
    }
    return true;
  }
  return false;
}

TimePoint CertNotBefore(const X509* cert) { return FromAsn1Time(X509_get0_notBefore(cert)); }
TimePoint CertNotAfter(const X509* cert) { return FromAsn1Time(X509_get0_notAfter(cert)); }

namespace {

// One DER header at `*p`; on success `*p` is at the contents and `*length` their size.
bool ReadDerHeader(const unsigned char** p, const unsigned char* end, int expected_tag, int expected_class,
                   long* length) {
  int tag = 0;
  int cls = 0;
  const int flags = ASN1_get_object(p, length, &tag, &cls, end - *p);
  // 0x80: malformed or longer than what is left; 0x21: indefinite length, which DER forbids.
  return (flags & 0x80) == 0 && flags != 0x21 && tag == expected_tag && cls == expected_class;
}

bool SkipDerElement(const unsigned char** p, const unsigned char* end, int expected_tag) {
  long length = 0;
  if (!ReadDerHeader(p, end, expected_tag, V_ASN1_UNIVERSAL, &length)) return false;
  *p += length;
  return true;
}

}  // namespace

Result<std::vector<CertValidity>> CertValiditiesFromDer(std::span<const uint8_t> der) {
  std::vector<CertValidity> out;
  const unsigned char* p = der.data();
  const unsigned char* const end = p + der.size();
  while (p < end) {
    const std::string which = "certificate #" + std::to_string(out.size() + 1);
    const auto malformed = [&](const char* part) { return InvalidArgumentError(which + ": malformed " + part); };
    long length = 0;
    if (!ReadDerHeader(&p, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &length)) return malformed("Certificate");
    const unsigned char* const cert_end = p + length;
    if (!ReadDerHeader(&p, cert_end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &length)) return malformed("TBSCertificate");
    const unsigned char* const tbs_end = p + length;
    // version [0] EXPLICIT, absent for v1.
    const unsigned char* after_version = p;
    if (p < tbs_end && *p == (V_ASN1_CONTEXT_SPECIFIC | V_ASN1_CONSTRUCTED | 0)) {
      if (!ReadDerHeader(&after_version, tbs_end, 0, V_ASN1_CONTEXT_SPECIFIC, &length)) return malformed("version");
      after_version += length;
    }
    p = after_version;
    if (!SkipDerElement(&p, tbs_end, V_ASN1_INTEGER)) return malformed("serialNumber");
    if (!SkipDerElement(&p, tbs_end, V_ASN1_SEQUENCE)) return malformed("signature algorithm");
    if (!SkipDerElement(&p, tbs_end, V_ASN1_SEQUENCE)) return malformed("issuer");
    if (!ReadDerHeader(&p, tbs_end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &length)) return malformed("validity");
    const unsigned char* const validity_end = p + length;
    Asn1TimePtr not_before(d2i_ASN1_TIME(nullptr, &p, validity_end - p));
    Asn1TimePtr not_after(not_before ? d2i_ASN1_TIME(nullptr, &p, validity_end - p) : nullptr);
    if (!not_before || !not_after || p != validity_end) return malformed("validity");
    out.push_back({FromAsn1Time(not_before.get()), FromAsn1Time(not_after.get())});
    p = cert_end;
  }
  if (out.empty()) return InvalidArgumentError("no certificate");
  return out;
}

std::string X509AuthorityId(const X509* cert) {
  const ASN1_OCTET_STRING* id = X509_get0_subject_key_id(const_cast<X509*>(cert));
  if (id == nullptr) return {};
  return HexEncode({ASN1_STRING_get0_data(id), static_cast<size_t>(ASN1_STRING_length(id))});
}

Result<std::vector<std::string>> IssuingAuthorityIds(std::span<const uint8_t> der) {
  std::vector<std::string> out;
  const unsigned char* p = der.data();
  const unsigned char* const end = p + der.size();
  for (int n = 1; p < end; ++n) {
    X509Ptr cert(d2i_X509(nullptr, &p, end - p));
    if (!cert) {
      ClearOpenSSLErrors();
      return InvalidArgumentError("certificate #" + std::to_string(n) + " does not parse");
    }
    const ASN1_OCTET_STRING* id = X509_get0_authority_key_id(cert.get());
    if (id != nullptr) out.push_back(HexEncode({ASN1_STRING_get0_data(id), static_cast<size_t>(ASN1_STRING_length(id))}));
  }
  return out;
}

Status X509Ca::Init(X509Ptr cert, std::vector<X509Ptr> above, std::shared_ptr<Signer> key) {
  if (!key) return InvalidArgumentError("CA has no signing key");
  if (X509_check_ca(cert.get()) == 0) {
    return InvalidArgumentError("CA certificate is not a CA (basicConstraints CA:false or missing)");
  }
  if (EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key->public_key()) != 1) {
    ClearOpenSSLErrors();
    return InvalidArgumentError("CA signing key does not match the CA certificate's public key");
  }
  X509* previous = cert.get();
  for (size_t i = 0; i < above.size(); ++i) {
    if (X509_check_issued(above[i].get(), previous) != X509_V_OK) {
      return InvalidArgumentError("CA chain certificate " + std::to_string(i + 1) +
                                  " did not issue the certificate before it");
    }
    previous = above[i].get();
  }
  if (X509_check_issued(previous, previous) != X509_V_OK) {
    return InvalidArgumentError("CA chain does not end with a self-signed root");
  }
  root_ = UpRef(previous);
  if (!above.empty()) {
    intermediates_.push_back(UpRef(cert.get()));
    for (size_t i = 0; i + 1 < above.size(); ++i) intermediates_.push_back(UpRef(above[i].get()));
  }
  for (const auto& c : intermediates_) {
    SIGIL_ASSIGN_OR_RETURN(Bytes der, CertToDer(c.get()));
    intermediates_der_.push_back(std::move(der));
  }
  SIGIL_ASSIGN_OR_RETURN(cert_der_, CertToDer(cert.get()));
  // OpenSSL fills per-certificate caches on first use; doing it now keeps later concurrent
  // readers off that path.
  X509_check_purpose(cert.get(), -1, 0);
  X509_check_purpose(root_.get(), -1, 0);
  not_before_ = CertNotBefore(cert.get());
  not_after_ = CertNotAfter(cert.get());
  cert_ = std::move(cert);
  scheme_ = DefaultSchemeFor(key->key_type());
  signer_ = std::move(key);
  return Status::Ok();
}

Result<X509Ca> X509Ca::NewRoot(const TrustDomain& td, std::shared_ptr<Signer> key,
                               const CaOptions& options) {
  if (!key) return InvalidArgumentError("CA has no signing key");
  const CertTemplate t = CaTemplate(td, key->public_key(), options);
  if (Status checked = CheckCertifiableKey(t.public_key); !checked.ok()) {
    return checked.AddContext("certificate public key").AddContext("making root CA for " + td.name());
  }
  auto der = BuildAndSign(t, nullptr, *key, DefaultSchemeFor(key->key_type()));
  if (!der.ok()) return der.status().AddContext("making root CA for " + td.name());
  SIGIL_ASSIGN_OR_RETURN(X509Ptr cert, CertFromDer(*der));
  X509Ca ca(td);
  SIGIL_RETURN_IF_ERROR(ca.Init(std::move(cert), {}, std::move(key)));
  return ca;
}

Result<X509Ca> X509Ca::FromChain(const TrustDomain& td, std::vector<X509Ptr> chain,
                                 std::shared_ptr<Signer> key) {
  if (chain.empty()) return InvalidArgumentError("CA chain is empty");
  X509Ptr cert = std::move(chain.front());
  chain.erase(chain.begin());
  X509Ca ca(td);
  SIGIL_RETURN_IF_ERROR(ca.Init(std::move(cert), std::move(chain), std::move(key)));
  return ca;
}

Result<X509Ca> X509Ca::NewIntermediate(std::shared_ptr<Signer> key,
                                       const CaOptions& options) const {
  if (!key) return InvalidArgumentError("intermediate CA has no signing key");
  auto issued = Issue(CaTemplate(trust_domain_, key->public_key(), options));
  if (!issued.ok()) return issued.status().AddContext("making intermediate CA");
  std::vector<X509Ptr> above;
  for (const auto& c : intermediates_) above.push_back(UpRef(c.get()));
  if (above.empty() || X509_cmp(above.front().get(), cert_.get()) != 0) {
    above.insert(above.begin(), UpRef(cert_.get()));
  }
  if (X509_cmp(above.back().get(), root_.get()) != 0) above.push_back(UpRef(root_.get()));
  X509Ca ca(trust_domain_);
  SIGIL_RETURN_IF_ERROR(ca.Init(std::move(issued->cert), std::move(above), std::move(key)));
  return ca;
}

Result<IssuedCert> X509Ca::Issue(const CertTemplate& tbs) const {
  IssuedCert out;
  SIGIL_ASSIGN_OR_RETURN(out.der, IssueDer(tbs));
  SIGIL_ASSIGN_OR_RETURN(out.cert, CertFromDer(out.der));
  return out;
}

Result<Bytes> X509Ca::IssueDer(const CertTemplate& tbs) const {
  if (tbs.public_key == nullptr) return InvalidArgumentError("certificate template has no public key");
  auto key = CertifiableKey::Check(tbs.public_key);
  if (!key.ok()) return key.status().AddContext("certificate public key");
  return IssueDer(tbs, *key);
}

Result<Bytes> X509Ca::IssueDer(const CertTemplate& tbs, const CertifiableKey& key) const {
  CertTemplate capped = tbs;
  capped.public_key = key.get();
  capped.not_after = std::min(tbs.not_after, not_after_);
  capped.not_before = std::max(tbs.not_before, not_before_);
  if (capped.not_after <= capped.not_before) {
    return FailedPreconditionError("CA certificate is not valid for the requested lifetime");
  }
  return BuildAndSign(capped, cert_.get(), *signer_, scheme_, key.encoded_ec_point());
}

}  // namespace sigil
