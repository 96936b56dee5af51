// The CA and X509-SVID issuing and checking with soft keys: CA arrangements (root, delegated
// intermediate, under an upstream PKI), issuing limits, and every rule the checker enforces.
#include "core/x509_svid.h"

#include <gtest/gtest.h>

#include <limits>

#include <thread>

#include "core/csr.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"
#include "tests/core/x509_test_util.h"

namespace sigil {
namespace {

using namespace std::chrono_literals;
using testing::Contains;
using testing::NewKey;
using testing::OpenSslCsr;
using testing::SoftSigner;

class X509SvidTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root = X509Ca::NewRoot(td_, SoftSigner(KeyType::kEcP256, &root_private_), {.ttl = 24h, .now = now_});
    ASSERT_TRUE(root.ok()) << root.status().ToString();
    root_ = std::make_unique<X509Ca>(std::move(*root));
    bundle_.Add(root_->cert());
  }

  X509SvidParams Params(const std::string& id) {
    X509SvidParams params(*SpiffeId::Parse(id));
    params.now = now_;
    return params;
  }

  Result<X509Svid> Mint(const X509Ca& ca, const std::string& id) {
    EvpPkeyPtr key = NewKey("P-256");
    return MintX509SvidFromCsr(ca, OpenSslCsr(key.get()), Params(id));
  }

  // A leaf template the checker should refuse in one respect.
  CertTemplate Leaf(EVP_PKEY* key) {
    CertTemplate t;
    t.subject.organization = "SPIRE";
    t.public_key = key;
    t.not_before = now_ - 1min;
    t.not_after = now_ + 1h;
    t.uri_sans = {"spiffe://example.org/w"};
    return t;
  }

  Status Check(X509* leaf, TimePoint at) {
    std::vector<X509*> chain = {leaf};
    return VerifyX509Svid(chain, bundle_, at).status();
  }

  // A leaf built and signed by OpenSSL with the root's private key, with extensions Sigil's
  // templates never make.
  X509Ptr CraftLeaf(const std::vector<std::pair<int, std::string>>& extensions) {
    EvpPkeyPtr key = NewKey("P-256");
    X509Ptr x(X509_new());
    X509_set_version(x.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 7);
    X509_set_issuer_name(x.get(), X509_get_subject_name(root_->cert()));
    X509_set_pubkey(x.get(), key.get());
    X509_time_adj_ex(X509_getm_notBefore(x.get()), 0, -60, nullptr);
    X509_time_adj_ex(X509_getm_notAfter(x.get()), 1, 0, nullptr);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, root_->cert(), x.get(), nullptr, nullptr, 0);
    for (const auto& [nid, value] : extensions) {
      X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
      EXPECT_NE(ext, nullptr) << value;
      X509_add_ext(x.get(), ext.get(), -1);
    }
    EXPECT_GT(X509_sign(x.get(), root_private_.get(), EVP_sha256()), 0);
    return x;
  }

  const TrustDomain td_ = *TrustDomain::Parse("example.org");
  const TimePoint now_ = std::chrono::system_clock::now();
  EvpPkeyPtr root_private_;
  std::unique_ptr<X509Ca> root_;
  X509Bundle bundle_{td_};
};

TEST_F(X509SvidTest, ValiditiesReadFromTheDerAreOpenSslsOwn) {
  auto svid = Mint(*root_, "spiffe://example.org/w");
  ASSERT_TRUE(svid.ok()) << svid.status().ToString();
  X509Ptr v1 = CraftLeaf({});
  X509_set_version(v1.get(), X509_VERSION_1);  // no version field at all
  X509_time_adj_ex(X509_getm_notAfter(v1.get()), 3, 0, nullptr);
  ASSERT_GT(X509_sign(v1.get(), root_private_.get(), EVP_sha256()), 0);
  std::vector<X509*> certs = {svid->leaf(), root_->cert(), v1.get()};
  Bytes concatenated;
  for (X509* cert : certs) {
    const Bytes der = *CertToDer(cert);
    concatenated.insert(concatenated.end(), der.begin(), der.end());
  }
  auto validities = CertValiditiesFromDer(concatenated);
  ASSERT_TRUE(validities.ok()) << validities.status().ToString();
  ASSERT_EQ(validities->size(), 3u);
  for (size_t i = 0; i < certs.size(); ++i) {
    EXPECT_EQ((*validities)[i].not_before, CertNotBefore(certs[i])) << i;
    EXPECT_EQ((*validities)[i].not_after, CertNotAfter(certs[i])) << i;
  }
  EXPECT_NE((*validities)[2].not_after, (*validities)[0].not_after);

  const Bytes first = *CertToDer(svid->leaf());
  Bytes truncated(concatenated.begin(), concatenated.begin() + static_cast<long>(first.size()) + 40);
  auto cut = CertValiditiesFromDer(truncated);
  EXPECT_EQ(cut.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(cut.status().message(), "certificate #2")) << cut.status().ToString();
  Bytes junk = first;
  junk.push_back(0x30);
  EXPECT_EQ(CertValiditiesFromDer(junk).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(CertValiditiesFromDer(Bytes{0x04, 0x01, 0x00}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(CertValiditiesFromDer(Bytes{}).status().code(), Code::kInvalidArgument);
  Bytes no_times = first;
  // The validity's first time's tag (UTCTime 0x17 or GeneralizedTime 0x18) made an INTEGER.
  for (size_t i = 0; i + 1 < no_times.size(); ++i) {
    if ((no_times[i] == 0x17 || no_times[i] == 0x18) && (no_times[i + 1] == 13 || no_times[i + 1] == 15)) {
      no_times[i] = 0x02;
      break;
    }
  }
  auto bad_time = CertValiditiesFromDer(no_times);
  EXPECT_TRUE(Contains(bad_time.status().message(), "malformed validity")) << bad_time.status().ToString();
}

TEST_F(X509SvidTest, VerifiesAnSvidAndReturnsItsId) {
  auto svid = Mint(*root_, "spiffe://example.org/ns/a");
  ASSERT_TRUE(svid.ok()) << svid.status().ToString();
  auto id = VerifyX509Svid(svid->raw_chain(), bundle_, now_);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->str(), "spiffe://example.org/ns/a");
  EXPECT_EQ(X509SvidSpiffeId(svid->leaf())->str(), "spiffe://example.org/ns/a");
}

TEST_F(X509SvidTest, IdentityComesFromTheCallerNeverFromTheCsr) {
  EvpPkeyPtr key = NewKey("P-256");
  // The CSR asks for an admin identity in another trust domain; the SVID carries the entry's.
  auto svid = MintX509SvidFromCsr(*root_, OpenSslCsr(key.get(), EVP_sha256(), "spiffe://example.org/admin"),
                                  Params("spiffe://example.org/ns/a"));
  ASSERT_TRUE(svid.ok()) << svid.status().ToString();
  EXPECT_EQ(testing::SansOfType(svid->leaf(), GEN_URI),
            std::vector<std::string>{"spiffe://example.org/ns/a"});
  EXPECT_EQ(testing::NameEntry(X509_get_subject_name(svid->leaf()), NID_commonName), "");
}

TEST_F(X509SvidTest, ParamsForEntryTakeIdDnsAndTtlFromTheEntry) {
  RegistrationEntry entry;
  entry.spiffe_id = "spiffe://example.org/web";
  entry.dns_names = {"web.example.org"};
  auto params = X509SvidParamsForEntry(entry, 2h, now_);
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  EXPECT_EQ(params->ttl, 2h);
  EXPECT_EQ(params->dns_names, entry.dns_names);
  entry.x509_svid_ttl = 600s;
  EXPECT_EQ(X509SvidParamsForEntry(entry, 2h, now_)->ttl, 600s);
  entry.spiffe_id = "spiffe://Example.org/web";
  EXPECT_TRUE(Contains(X509SvidParamsForEntry(entry, 2h, now_).status().ToString(), "spiffe_id"));
}

TEST_F(X509SvidTest, LifetimeIsCappedAtTheCasNotAfter) {
  X509SvidParams params = Params("spiffe://example.org/long");
  params.ttl = 24h * 30;
  EvpPkeyPtr key = NewKey("P-256");
  auto svid = MintX509Svid(*root_, key.get(), params);
  ASSERT_TRUE(svid.ok()) << svid.status().ToString();
  EXPECT_EQ(CertNotAfter(svid->leaf()), root_->not_after());
  EXPECT_EQ(svid->expires_at, root_->not_after());
}

TEST_F(X509SvidTest, ATtlBeyondWhatTheClockHoldsIsCappedAtTheCasNotAfter) {
  // INT64_MAX seconds overflowed `now + ttl` and gave a leaf of a few seconds.
  X509SvidParams params = Params("spiffe://example.org/forever");
  params.ttl = std::chrono::seconds(std::numeric_limits<int64_t>::max());
  EvpPkeyPtr key = NewKey("P-256");
  auto svid = MintX509SvidDer(*root_, key.get(), params);
  ASSERT_TRUE(svid.ok()) << svid.status().ToString();
  EXPECT_EQ(svid->expires_at, root_->not_after());
  auto leaf = CertFromDer(svid->chain_der.front());
  ASSERT_TRUE(leaf.ok());
  EXPECT_EQ(CertNotAfter(leaf->get()), root_->not_after());
}

TEST_F(X509SvidTest, MintRefusesBadRequestsNamingWhatIsWrong) {
  EvpPkeyPtr key = NewKey("P-256");
  auto foreign = MintX509Svid(*root_, key.get(), Params("spiffe://other.org/w"));
  EXPECT_EQ(foreign.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(foreign.status().message(), "not in the CA's trust domain example.org"));

  X509SvidParams bad_dns = Params("spiffe://example.org/w");
  bad_dns.dns_names = {"bad_name..example"};
  EXPECT_EQ(MintX509Svid(*root_, key.get(), bad_dns).status().code(), Code::kInvalidArgument);

  X509SvidParams zero_ttl = Params("spiffe://example.org/w");
  zero_ttl.ttl = 0s;
  EXPECT_TRUE(Contains(MintX509Svid(*root_, key.get(), zero_ttl).status().message(), "TTL"));

  X509SvidParams late = Params("spiffe://example.org/w");
  late.now = root_->not_after() + 1h;
  auto expired_ca = MintX509Svid(*root_, key.get(), late);
  EXPECT_EQ(expired_ca.status().code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Contains(expired_ca.status().message(), "not valid"));

  EXPECT_FALSE(MintX509Svid(*root_, nullptr, Params("spiffe://example.org/w")).ok());
}

TEST_F(X509SvidTest, UpstreamPkiCanHoldTheTrustDomainCa) {
  // An existing corporate PKI: a root and an issuing intermediate, with no SPIFFE in sight.
  const TrustDomain corp = *TrustDomain::Parse("corp.internal");
  auto upstream_root = X509Ca::NewRoot(corp, SoftSigner(KeyType::kEcP384), {.ttl = 24h * 365, .now = now_});
  ASSERT_TRUE(upstream_root.ok()) << upstream_root.status().ToString();
  auto upstream_key = SoftSigner(KeyType::kRsa2048);
  auto issuing = upstream_root->NewIntermediate(upstream_key, {.ttl = 24h * 90, .now = now_});
  ASSERT_TRUE(issuing.ok()) << issuing.status().ToString();

  // What an operator configures: the upstream chain as certificates, and its key.
  std::vector<X509Ptr> chain;
  chain.push_back(UpRef(issuing->cert()));
  chain.push_back(UpRef(upstream_root->cert()));
  auto upstream = X509Ca::FromChain(td_, std::move(chain), upstream_key);
  ASSERT_TRUE(upstream.ok()) << upstream.status().ToString();
  EXPECT_EQ(upstream->scheme(), SignatureScheme::kRS256);

  auto ca = upstream->NewIntermediate(SoftSigner(KeyType::kEcP256), {.ttl = 24h, .now = now_});
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  ASSERT_EQ(ca->intermediates().size(), 2u);
  EXPECT_EQ(X509_cmp(ca->root(), upstream_root->cert()), 0);
  EXPECT_EQ(testing::SansOfType(ca->cert(), GEN_URI), std::vector<std::string>{"spiffe://example.org"});

  auto svid = Mint(*ca, "spiffe://example.org/w");
  ASSERT_TRUE(svid.ok()) << svid.status().ToString();
  ASSERT_EQ(svid->chain.size(), 3u);
  X509Bundle corp_bundle(td_);
  corp_bundle.Add(upstream_root->cert());
  auto id = VerifyX509Svid(svid->raw_chain(), corp_bundle, now_);
  EXPECT_TRUE(id.ok()) << id.status().ToString();
  // The bundle of the trust domain's own root does not vouch for the upstream's chain.
  EXPECT_EQ(VerifyX509Svid(svid->raw_chain(), bundle_, now_).status().code(), Code::kPermissionDenied);
}

TEST_F(X509SvidTest, FromChainRefusesChainsThatDoNotHoldTogether) {
  auto leaf = Mint(*root_, "spiffe://example.org/w");
  ASSERT_TRUE(leaf.ok());
  std::vector<X509Ptr> not_ca;
  not_ca.push_back(UpRef(leaf->leaf()));
  not_ca.push_back(UpRef(root_->cert()));
  EXPECT_TRUE(Contains(X509Ca::FromChain(td_, std::move(not_ca), SoftSigner(KeyType::kEcP256))
                           .status().message(), "not a CA"));

  std::vector<X509Ptr> wrong_key;
  wrong_key.push_back(UpRef(root_->cert()));
  EXPECT_TRUE(Contains(X509Ca::FromChain(td_, std::move(wrong_key), SoftSigner(KeyType::kEcP256))
                           .status().message(), "does not match"));

  auto key = SoftSigner(KeyType::kEcP256);
  auto intermediate = root_->NewIntermediate(key, {.now = now_});
  ASSERT_TRUE(intermediate.ok());
  std::vector<X509Ptr> no_root;
  no_root.push_back(UpRef(intermediate->cert()));
  EXPECT_TRUE(Contains(X509Ca::FromChain(td_, std::move(no_root), key).status().message(),
                       "self-signed root"));

  EXPECT_FALSE(X509Ca::FromChain(td_, {}, key).ok());
}

TEST_F(X509SvidTest, CheckerRejectsTwoUriSans) {
  EvpPkeyPtr key = NewKey("P-256");
  CertTemplate t = Leaf(key.get());
  t.uri_sans.push_back("spiffe://example.org/second");
  auto cert = root_->Issue(t);
  ASSERT_TRUE(cert.ok()) << cert.status().ToString();
  const Status status = Check(cert->cert.get(), now_);
  EXPECT_EQ(status.code(), Code::kPermissionDenied);
  EXPECT_TRUE(Contains(status.message(), "2 URI SANs")) << status.message();
}

TEST_F(X509SvidTest, CheckerRejectsMissingOrNonSpiffeUriSan) {
  EvpPkeyPtr key = NewKey("P-256");
  CertTemplate none = Leaf(key.get());
  none.uri_sans.clear();
  none.dns_sans = {"w.example.org"};
  EXPECT_TRUE(Contains(Check(root_->Issue(none)->cert.get(), now_).message(), "no URI SAN"));

  CertTemplate https = Leaf(key.get());
  https.uri_sans = {"https://example.org/w"};
  const Status status = Check(root_->Issue(https)->cert.get(), now_);
  EXPECT_EQ(status.code(), Code::kPermissionDenied);
  EXPECT_TRUE(Contains(status.message(), "leaf URI SAN")) << status.message();
}

TEST_F(X509SvidTest, CheckerRejectsACaLeaf) {
  EvpPkeyPtr key = NewKey("P-256");
  CertTemplate t = Leaf(key.get());
  t.is_ca = true;
  const Status status = Check(root_->Issue(t)->cert.get(), now_);
  EXPECT_EQ(status.code(), Code::kPermissionDenied);
  EXPECT_TRUE(Contains(status.message(), "CA:true")) << status.message();
}

TEST_F(X509SvidTest, CheckerEnforcesLeafKeyUsage) {
  const std::string san = "URI:spiffe://example.org/w";
  const std::pair<std::vector<std::pair<int, std::string>>, std::string> cases[] = {
      {{{NID_subject_alt_name, san}}, "no keyUsage"},
      {{{NID_subject_alt_name, san}, {NID_key_usage, "critical,keyEncipherment"}},
       "lacks digitalSignature"},
      {{{NID_subject_alt_name, san}, {NID_key_usage, "critical,digitalSignature,keyCertSign"}},
       "keyCertSign"},
      {{{NID_subject_alt_name, san}, {NID_key_usage, "critical,digitalSignature,cRLSign"}},
       "cRLSign"},
  };
  for (const auto& [extensions, why] : cases) {
    X509Ptr leaf = CraftLeaf(extensions);
    const Status status = Check(leaf.get(), now_);
    EXPECT_EQ(status.code(), Code::kPermissionDenied) << why;
    EXPECT_TRUE(Contains(status.message(), why)) << why << ": " << status.message();
  }
  // The crafting itself is sound: the same leaf with a proper keyUsage passes.
  X509Ptr good = CraftLeaf({{NID_subject_alt_name, san}, {NID_key_usage, "critical,digitalSignature"}});
  EXPECT_TRUE(Check(good.get(), now_).ok()) << Check(good.get(), now_).ToString();
}

TEST_F(X509SvidTest, CheckerRejectsOtherTrustDomains) {
  // An SVID of other.org, presented to a checker of example.org.
  const TrustDomain other = *TrustDomain::Parse("other.org");
  auto other_ca = X509Ca::NewRoot(other, SoftSigner(KeyType::kEcP256), {.now = now_});
  ASSERT_TRUE(other_ca.ok());
  auto foreign = Mint(*other_ca, "spiffe://other.org/w");
  ASSERT_TRUE(foreign.ok());
  auto denied = VerifyX509Svid(foreign->raw_chain(), bundle_, now_);
  EXPECT_EQ(denied.status().code(), Code::kPermissionDenied);
  EXPECT_TRUE(Contains(denied.status().message(), "not in trust domain example.org"))
      << denied.status().message();

  // A rogue CA claiming example.org: right name, key outside the bundle.
  auto rogue = X509Ca::NewRoot(td_, SoftSigner(KeyType::kEcP256), {.now = now_});
  ASSERT_TRUE(rogue.ok());
  auto forged = Mint(*rogue, "spiffe://example.org/w");
  ASSERT_TRUE(forged.ok());
  auto forged_denied = VerifyX509Svid(forged->raw_chain(), bundle_, now_);
  EXPECT_EQ(forged_denied.status().code(), Code::kPermissionDenied);
  EXPECT_TRUE(Contains(forged_denied.status().message(), "does not verify"))
      << forged_denied.status().message();
}

TEST_F(X509SvidTest, CheckerRejectsExpiredAndNotYetValid) {
  auto svid = Mint(*root_, "spiffe://example.org/w");
  ASSERT_TRUE(svid.ok());
  auto expired = VerifyX509Svid(svid->raw_chain(), bundle_, svid->expires_at + 1s);
  EXPECT_EQ(expired.status().code(), Code::kPermissionDenied);
  EXPECT_TRUE(Contains(expired.status().message(), "certificate has expired"))
      << expired.status().message();
  auto early = VerifyX509Svid(svid->raw_chain(), bundle_, now_ - 1h);
  EXPECT_TRUE(Contains(early.status().message(), "not yet valid")) << early.status().message();
  EXPECT_TRUE(VerifyX509Svid(svid->raw_chain(), bundle_, svid->expires_at - 1s).ok());
}

TEST_F(X509SvidTest, CheckerNeedsAChainAndAnAuthority) {
  EXPECT_EQ(VerifyX509Svid({}, bundle_, now_).status().code(), Code::kInvalidArgument);
  auto svid = Mint(*root_, "spiffe://example.org/w");
  ASSERT_TRUE(svid.ok());
  X509Bundle empty(td_);
  EXPECT_TRUE(Contains(VerifyX509Svid(svid->raw_chain(), empty, now_).status().message(),
                       "no X.509 authorities"));
}

TEST_F(X509SvidTest, ChainPemRoundTrips) {
  auto intermediate = root_->NewIntermediate(SoftSigner(KeyType::kEcP384), {.now = now_});
  ASSERT_TRUE(intermediate.ok());
  EXPECT_EQ(intermediate->scheme(), SignatureScheme::kES384);
  auto svid = Mint(*intermediate, "spiffe://example.org/w");
  ASSERT_TRUE(svid.ok());
  const std::string pem = svid->ChainPem();
  auto parsed = CertsFromPem(pem);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(*CertToDer((*parsed)[i].get()), svid->chain_der[i]);
}

TEST_F(X509SvidTest, OneCaIssuesFromManyThreadsAtOnce) {
  auto intermediate = root_->NewIntermediate(SoftSigner(KeyType::kEcP256), {.now = now_});
  ASSERT_TRUE(intermediate.ok());
  EvpPkeyPtr key = NewKey("P-256");
  const Bytes csr = OpenSslCsr(key.get());
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto svid = MintX509SvidFromCsr(*intermediate, csr,
                                        Params("spiffe://example.org/t" + std::to_string(t)));
        if (svid.ok() && VerifyX509Svid(svid->raw_chain(), bundle_, now_).ok()) ++good;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(good.load(), 100);
}

}  // namespace
}  // namespace sigil
