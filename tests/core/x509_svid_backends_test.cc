// X509-SVIDs issued by CAs whose keys live in each real key store (OpenSSL in memory, a
// SoftHSM2 token, a swtpm TPM), from CSRs made by OpenSSL, checked field by field with OpenSSL's
// parser and then by the `openssl verify` command for TLS client and server use.
#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <functional>

#include "core/csr.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"
#include "core/x509_svid.h"
#include "hw/key_store.h"
#include "tests/core/x509_test_util.h"
#include "tests/support/hw_backends.h"
#include "tests/support/process.h"

namespace sigil {
namespace {

using namespace std::chrono_literals;
using sigil::testing::Contains;
using sigil::testing::ExtensionCritical;
using sigil::testing::NameEntry;
using sigil::testing::TempDir;

struct BackendCase {
  std::string name;
  std::function<std::string(const std::filesystem::path& dir)> uri;
};

TimePoint Seconds(TimePoint t) { return std::chrono::time_point_cast<std::chrono::seconds>(t); }

Bytes KeyId(const ASN1_OCTET_STRING* id) {
  if (id == nullptr) return {};
  return Bytes(ASN1_STRING_get0_data(id), ASN1_STRING_get0_data(id) + ASN1_STRING_length(id));
}

Bytes PublicKeySha1(X509* cert) {
  unsigned char md[SHA_DIGEST_LENGTH];
  unsigned int len = 0;
  EXPECT_EQ(X509_pubkey_digest(cert, EVP_sha1(), md, &len), 1);
  return Bytes(md, md + len);
}

int ExpectedSignatureNid(SignatureScheme scheme) {
  switch (scheme) {
    case SignatureScheme::kES256: return NID_ecdsa_with_SHA256;
    case SignatureScheme::kES384: return NID_ecdsa_with_SHA384;
    case SignatureScheme::kRS256: return NID_sha256WithRSAEncryption;
  }
  return NID_undef;
}

void ExpectCaCert(X509* cert, X509* issuer, const TrustDomain& td) {
  EXPECT_EQ(X509_get_version(cert), X509_VERSION_3);
  EXPECT_EQ(X509_check_issued(issuer, cert), X509_V_OK);
  EXPECT_EQ(X509_verify(cert, X509_get0_pubkey(issuer)), 1) << "signature does not verify";
  EXPECT_EQ(testing::SansOfType(cert, GEN_URI), std::vector<std::string>{td.IdString()});
  EXPECT_NE(X509_get_extension_flags(cert) & EXFLAG_CA, 0u);
  EXPECT_EQ(ExtensionCritical(cert, NID_basic_constraints), 1);
  EXPECT_EQ(X509_get_key_usage(cert), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_EQ(ExtensionCritical(cert, NID_key_usage), 1);
  EXPECT_EQ(KeyId(X509_get0_subject_key_id(cert)), PublicKeySha1(cert));
  EXPECT_EQ(KeyId(X509_get0_authority_key_id(cert)), KeyId(X509_get0_subject_key_id(issuer)));
}

struct LeafExpectation {
  X509* issuer;
  EVP_PKEY* key;
  std::string spiffe_id;
  std::vector<std::string> dns;
  TimePoint now;
  TimePoint not_after;
  SignatureScheme scheme;
};

void ExpectLeaf(X509* leaf, const LeafExpectation& want) {
  EXPECT_EQ(X509_get_version(leaf), X509_VERSION_3);
  EXPECT_EQ(X509_check_issued(want.issuer, leaf), X509_V_OK);
  EXPECT_EQ(X509_verify(leaf, X509_get0_pubkey(want.issuer)), 1) << "signature does not verify";
  EXPECT_EQ(X509_get_signature_nid(leaf), ExpectedSignatureNid(want.scheme));
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf), want.key), 1) << "not the CSR's key";

  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), nullptr));
  EXPECT_FALSE(BN_is_negative(serial.get()));
  EXPECT_GE(BN_num_bits(serial.get()), 64);

  EXPECT_EQ(testing::SansOfType(leaf, GEN_URI), std::vector<std::string>{want.spiffe_id});
  EXPECT_EQ(testing::SansOfType(leaf, GEN_DNS), want.dns);
  const X509_NAME* subject = X509_get_subject_name(leaf);
  EXPECT_EQ(NameEntry(subject, NID_commonName), want.dns.empty() ? "" : want.dns.front());
  EXPECT_EQ(NameEntry(subject, NID_organizationName), "SPIRE");
  EXPECT_EQ(NameEntry(subject, NID_countryName), "US");

  const uint32_t flags = X509_get_extension_flags(leaf);
  EXPECT_NE(flags & EXFLAG_BCONS, 0u) << "basicConstraints missing";
  EXPECT_EQ(flags & EXFLAG_CA, 0u);
  EXPECT_EQ(ExtensionCritical(leaf, NID_basic_constraints), 1);
  uint32_t usage = KU_DIGITAL_SIGNATURE;
  if (EVP_PKEY_is_a(want.key, "RSA")) usage |= KU_KEY_ENCIPHERMENT;
  EXPECT_EQ(X509_get_key_usage(leaf), usage);
  EXPECT_EQ(ExtensionCritical(leaf, NID_key_usage), 1);
  EXPECT_EQ(testing::ExtendedKeyUsages(leaf), (std::vector<std::string>{"serverAuth", "clientAuth"}));
  EXPECT_EQ(KeyId(X509_get0_subject_key_id(leaf)), PublicKeySha1(leaf));
  EXPECT_EQ(KeyId(X509_get0_authority_key_id(leaf)), KeyId(X509_get0_subject_key_id(want.issuer)));

  EXPECT_EQ(CertNotBefore(leaf), Seconds(want.now) - kBackdate);
  EXPECT_EQ(CertNotAfter(leaf), Seconds(want.not_after));
}

class X509SvidBackendTest : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>("sigil-x509-svid");
    auto store = hw::OpenKeyStore(GetParam().uri(dir_->path()));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
  }

  std::shared_ptr<Signer> CaKey(KeyType type) {
    auto signer = store_->CreateKey("ca-" + std::to_string(counter_++), type);
    EXPECT_TRUE(signer.ok()) << signer.status().ToString();
    return signer.ok() ? *signer : nullptr;
  }

  // Runs `openssl verify` on the SVID for both TLS purposes, with `root` as the only anchor.
  void ExpectOpenSslVerifies(const X509Svid& svid, X509* root, bool should_pass = true) {
    const auto root_pem = CertsToPem(std::vector<X509*>{root});
    const std::string chain_pem = svid.ChainPem();
    const auto leaf_pem = CertsToPem(std::vector<X509*>{svid.leaf()});
    ASSERT_TRUE(root_pem.ok() && leaf_pem.ok());
    testing::WriteFile(*dir_ / "root.pem", *root_pem);
    testing::WriteFile(*dir_ / "chain.pem", chain_pem);
    testing::WriteFile(*dir_ / "leaf.pem", *leaf_pem);
    for (const char* purpose : {"sslclient", "sslserver"}) {
      auto out = testing::RunProcess({"openssl", "verify", "-CAfile", (*dir_ / "root.pem").string(),
                                      "-untrusted", (*dir_ / "chain.pem").string(), "-purpose",
                                      purpose, (*dir_ / "leaf.pem").string()});
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      if (should_pass) {
        EXPECT_EQ(out->exit_code, 0) << purpose << ": " << out->out << out->err;
        EXPECT_TRUE(Contains(out->out, "leaf.pem: OK")) << out->out;
      } else {
        EXPECT_NE(out->exit_code, 0) << purpose << " verified against the wrong root";
      }
    }
  }

  static inline int counter_ = 0;
  const TrustDomain td_ = *TrustDomain::Parse("example.org");
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<hw::KeyStore> store_;
};

TEST_P(X509SvidBackendTest, RootCaIssuesSvidsFromCsrsThatOpenSslVerifies) {
  for (KeyType ca_type : {KeyType::kEcP256, KeyType::kRsa2048}) {
    SCOPED_TRACE("CA key " + std::string(KeyTypeName(ca_type)));
    auto key = CaKey(ca_type);
    ASSERT_NE(key, nullptr);
    const TimePoint now = std::chrono::system_clock::now();
    auto root = X509Ca::NewRoot(td_, key, {.subject = {.country = "US", .organization = "Sigil Test",
                                                        .common_name = "root"},
                                           .ttl = 48h, .now = now});
    ASSERT_TRUE(root.ok()) << root.status().ToString();
    ExpectCaCert(root->cert(), root->cert(), td_);
    EXPECT_EQ(NameEntry(X509_get_subject_name(root->cert()), NID_organizationName), "Sigil Test");
    EXPECT_EQ(CertNotAfter(root->cert()), Seconds(now + 48h));
    EXPECT_TRUE(root->intermediates().empty());

    X509Bundle bundle(td_);
    bundle.Add(root->root());
    for (const std::string kind : {"P-256", "P-384", "RSA-2048"}) {
      SCOPED_TRACE("CSR key " + kind);
      EvpPkeyPtr csr_key = testing::NewKey(kind);
      const Bytes csr = testing::OpenSslCsr(csr_key.get(), kind == "P-384" ? EVP_sha384() : EVP_sha256());
      X509SvidParams params(*SpiffeId::Parse("spiffe://example.org/ns/prod/sa/web"));
      params.dns_names = {"web.example.org", "web.internal"};
      params.ttl = 1h;
      params.now = now;
      auto svid = MintX509SvidFromCsr(*root, csr, params);
      ASSERT_TRUE(svid.ok()) << svid.status().ToString();
      ASSERT_EQ(svid->chain.size(), 1u);
      ASSERT_EQ(svid->chain_der.size(), 1u);
      EXPECT_EQ(*CertToDer(svid->leaf()), svid->chain_der[0]);
      ExpectLeaf(svid->leaf(), {.issuer = root->cert(), .key = csr_key.get(),
                                .spiffe_id = "spiffe://example.org/ns/prod/sa/web",
                                .dns = params.dns_names, .now = now, .not_after = now + 1h,
                                .scheme = root->scheme()});
      EXPECT_EQ(svid->expires_at, Seconds(now + 1h));
      ExpectOpenSslVerifies(*svid, root->cert());
      auto id = VerifyX509Svid(svid->raw_chain(), bundle, now);
      ASSERT_TRUE(id.ok()) << id.status().ToString();
      EXPECT_EQ(id->str(), "spiffe://example.org/ns/prod/sa/web");
    }
  }
}

TEST_P(X509SvidBackendTest, DelegatedIntermediateWithSoftKeyIssuesVerifiableChains) {
  auto key = CaKey(KeyType::kEcP256);
  ASSERT_NE(key, nullptr);
  const TimePoint now = std::chrono::system_clock::now();
  auto root = X509Ca::NewRoot(td_, key, {.ttl = 24h, .now = now});
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  auto intermediate =
      root->NewIntermediate(testing::SoftSigner(KeyType::kEcP256), {.ttl = 10min, .now = now});
  ASSERT_TRUE(intermediate.ok()) << intermediate.status().ToString();
  ExpectCaCert(intermediate->cert(), root->cert(), td_);
  EXPECT_EQ(CertNotAfter(intermediate->cert()), Seconds(now + 10min));
  ASSERT_EQ(intermediate->intermediates().size(), 1u);
  EXPECT_EQ(X509_cmp(intermediate->root(), root->cert()), 0);

  // An hour asked for, ten minutes granted: no SVID outlives the CA that issued it.
  EvpPkeyPtr csr_key = testing::NewKey("P-256");
  X509SvidParams params(*SpiffeId::Parse("spiffe://example.org/db"));
  params.ttl = 1h;
  params.now = now;
  auto svid = MintX509SvidFromCsr(*intermediate, testing::OpenSslCsr(csr_key.get()), params);
  ASSERT_TRUE(svid.ok()) << svid.status().ToString();
  ASSERT_EQ(svid->chain.size(), 2u);
  EXPECT_EQ(X509_cmp(svid->chain[1].get(), intermediate->cert()), 0);
  EXPECT_EQ(svid->chain_der[1], intermediate->cert_der());
  ExpectLeaf(svid->leaf(), {.issuer = intermediate->cert(), .key = csr_key.get(),
                            .spiffe_id = "spiffe://example.org/db", .dns = {}, .now = now,
                            .not_after = now + 10min, .scheme = SignatureScheme::kES256});
  ExpectOpenSslVerifies(*svid, root->cert());

  X509Bundle bundle(td_);
  bundle.Add(root->cert());
  EXPECT_TRUE(VerifyX509Svid(svid->raw_chain(), bundle, now).ok());
  // Without its intermediate the leaf has no path to the root.
  std::vector<X509*> leaf_only = {svid->leaf()};
  auto orphan = VerifyX509Svid(leaf_only, bundle, now);
  EXPECT_EQ(orphan.status().code(), Code::kPermissionDenied);
  EXPECT_TRUE(Contains(orphan.status().message(), "unable to get local issuer")) << orphan.status().message();

  // The same SVID does not verify against another trust domain's root.
  auto other = X509Ca::NewRoot(*TrustDomain::Parse("other.org"), testing::SoftSigner(KeyType::kEcP256),
                               {.now = now});
  ASSERT_TRUE(other.ok());
  ExpectOpenSslVerifies(*svid, other->cert(), /*should_pass=*/false);
}

TEST_P(X509SvidBackendTest, AgentAndServerSvidsTakeTheSamePath) {
  auto key = CaKey(KeyType::kEcP256);
  ASSERT_NE(key, nullptr);
  const TimePoint now = std::chrono::system_clock::now();
  auto root = X509Ca::NewRoot(td_, key, {.now = now});
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  auto agent_id = AgentSpiffeId(td_, "join_token/4f9a");
  ASSERT_TRUE(agent_id.ok());
  EXPECT_EQ(agent_id->str(), "spiffe://example.org/spire/agent/join_token/4f9a");
  for (const SpiffeId& id : {*agent_id, ServerSpiffeId(td_)}) {
    SCOPED_TRACE(id.str());
    EvpPkeyPtr agent_key = testing::NewKey("P-256");
    auto csr = MakeCsr(agent_key.get(), id);
    ASSERT_TRUE(csr.ok()) << csr.status().ToString();
    X509SvidParams params(id);
    params.now = now;
    auto svid = MintX509SvidFromCsr(*root, *csr, params);
    ASSERT_TRUE(svid.ok()) << svid.status().ToString();
    ExpectLeaf(svid->leaf(), {.issuer = root->cert(), .key = agent_key.get(), .spiffe_id = id.str(),
                              .dns = {}, .now = now, .not_after = now + params.ttl,
                              .scheme = SignatureScheme::kES256});
    ExpectOpenSslVerifies(*svid, root->cert());
  }
  EXPECT_EQ(ServerSpiffeId(td_).str(), "spiffe://example.org/spire/server");
}

INSTANTIATE_TEST_SUITE_P(
    KeyStores, X509SvidBackendTest,
    ::testing::Values(
        BackendCase{"soft", [](const std::filesystem::path&) { return std::string("soft:"); }},
        BackendCase{"pkcs11_softhsm",
                    [](const std::filesystem::path&) { return hw::Backends()->ca_token.uri(); }},
        BackendCase{"tpm_swtpm",
                    [](const std::filesystem::path& dir) {
                      return "tpm:" + hw::Backends()->tpm->tcti() + "?data-dir=" + (dir / "tpm").string();
                    }}),
    [](const ::testing::TestParamInfo<BackendCase>& info) { return info.param.name; });

}  // namespace
}  // namespace sigil
