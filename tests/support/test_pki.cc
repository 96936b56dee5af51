#include "tests/support/test_pki.h"

#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cstdlib>

namespace sigil::testing {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "test PKI: %s failed: %s\n", what,
                 OpenSSLError(Code::kInternal, what).ToString().c_str());
    std::abort();
  }
}

EvpPkeyPtr NewKey() {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  Check(key != nullptr, "generating a P-256 key");
  return key;
}

void AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  Check(ext != nullptr, "building an extension");
  Check(X509_add_ext(cert, ext.get(), -1) == 1, "adding an extension");
}

X509Ptr Build(EVP_PKEY* subject_key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key,
              const SvidOptions& o) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BignumPtr bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), static_cast<long>(o.not_before.count()));
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(o.not_after.count()));
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Sigil test"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(cert.get(), subject_key);
  X509* issuer_cert = issuer ? issuer : cert.get();
  AddExtension(cert.get(), issuer_cert, NID_basic_constraints,
               o.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  AddExtension(cert.get(), issuer_cert, NID_key_usage,
               o.is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  if (!o.is_ca) AddExtension(cert.get(), issuer_cert, NID_ext_key_usage, "serverAuth,clientAuth");
  AddExtension(cert.get(), issuer_cert, NID_subject_key_identifier, "hash");
  if (issuer) AddExtension(cert.get(), issuer_cert, NID_authority_key_identifier, "keyid:always");
  std::string san;
  for (const auto& uri : o.uris) san += (san.empty() ? "" : ",") + std::string("URI:") + uri;
  for (const auto& dns : o.dns_names) san += (san.empty() ? "" : ",") + std::string("DNS:") + dns;
  if (!san.empty()) AddExtension(cert.get(), issuer_cert, NID_subject_alt_name, san);
  Check(X509_sign(cert.get(), issuer_key, EVP_sha256()) > 0, "signing a certificate");
  return cert;
}

std::string BioString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace

std::string TestCert::CertPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert.get());
  return BioString(bio.get());
}

std::string TestCert::KeyPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return BioString(bio.get());
}

TestCa::TestCa(const std::string& trust_domain) {
  root_.key = NewKey();
  SvidOptions o{.uris = {"spiffe://" + trust_domain},
                .not_after = std::chrono::hours(24),
                .is_ca = true};
  root_.cert = Build(root_.key.get(), trust_domain + " root", nullptr, root_.key.get(), o);
}

TestCert TestCa::Issue(const SvidOptions& options) const {
  TestCert out;
  out.key = NewKey();
  std::string cn = options.uris.empty() ? "no uri" : options.uris.front();
  out.cert = Build(out.key.get(), cn, root_.cert.get(), root_.key.get(), options);
  return out;
}

TestCert TestCa::IssueSvid(const std::string& spiffe_id) const {
  return Issue(SvidOptions{.uris = {spiffe_id}, .dns_names = {"localhost"}});
}

}  // namespace sigil::testing
