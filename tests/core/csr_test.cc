#include "core/csr.h"

#include <gtest/gtest.h>
#include <openssl/rsa.h>

#include "core/base64url.h"
#include "core/x509_svid.h"
#include "tests/core/x509_test_util.h"

namespace sigil {
namespace {

using testing::Contains;
using testing::NewKey;
using testing::OpenSslCsr;
using testing::CsrWithFillerSignature;
using testing::RsaPublicKeyOfSizes;

TEST(CsrTest, AcceptsOpenSslCsrsForEverySupportedKey) {
  const std::pair<std::string, const EVP_MD*> kinds[] = {
      {"P-256", EVP_sha256()}, {"P-384", EVP_sha384()}, {"RSA-2048", EVP_sha256()},
      {"RSA-3072", EVP_sha256()}};
  for (const auto& [kind, md] : kinds) {
    EvpPkeyPtr key = NewKey(kind);
    auto checked = CheckCsr(OpenSslCsr(key.get(), md));
    ASSERT_TRUE(checked.ok()) << kind << ": " << checked.status().ToString();
    EXPECT_EQ(EVP_PKEY_eq(checked->get(), key.get()), 1) << kind;
  }
}

TEST(CsrTest, MakeCsrProducesWhatCheckCsrAndOpenSslAccept) {
  EvpPkeyPtr key = NewKey("P-384");
  auto id = SpiffeId::Parse("spiffe://example.org/spire/agent/join_token/abc");
  auto der = MakeCsr(key.get(), *id);
  ASSERT_TRUE(der.ok()) << der.status().ToString();
  const unsigned char* p = der->data();
  X509ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size())));
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(X509_REQ_verify(req.get(), key.get()), 1);
  EXPECT_EQ(X509_REQ_get_signature_nid(req.get()), NID_ecdsa_with_SHA384);
  EXPECT_EQ(X509_NAME_entry_count(X509_REQ_get_subject_name(req.get())), 0);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req.get());
  ASSERT_NE(exts, nullptr);
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr)));
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  ASSERT_NE(names, nullptr);
  ASSERT_EQ(sk_GENERAL_NAME_num(names.get()), 1);
  const GENERAL_NAME* uri = sk_GENERAL_NAME_value(names.get(), 0);
  ASSERT_EQ(uri->type, GEN_URI);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri->d.ia5))),
            id->str());
  auto checked = CheckCsr(*der);
  ASSERT_TRUE(checked.ok()) << checked.status().ToString();

  auto plain = MakeCsr(NewKey("RSA-2048").get());
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_TRUE(CheckCsr(*plain).ok());
}

TEST(CsrTest, RejectsACsrWhoseSignatureDoesNotVerify) {
  EvpPkeyPtr key = NewKey("P-256");
  Bytes der = OpenSslCsr(key.get());
  // The signature BIT STRING is the last element; flipping its last byte breaks it without
  // breaking the DER.
  der.back() ^= 0x01;
  auto checked = CheckCsr(der);
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(checked.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(checked.status().message(), "signature does not verify"))
      << checked.status().ToString();
}

TEST(CsrTest, RejectsACsrWhoseKeyWasSwappedAfterSigning) {
  EvpPkeyPtr signer = NewKey("P-256");
  EvpPkeyPtr other = NewKey("P-256");
  const Bytes der = OpenSslCsr(signer.get());
  const unsigned char* p = der.data();
  X509ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  ASSERT_EQ(X509_REQ_set_pubkey(req.get(), other.get()), 1);
  // Re-encode with the original signature over the original body.
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  const int len = i2d_X509_REQ(req.get(), nullptr);
  Bytes swapped(static_cast<size_t>(len));
  unsigned char* out = swapped.data();
  i2d_X509_REQ(req.get(), &out);
  auto checked = CheckCsr(swapped);
  ASSERT_FALSE(checked.ok());
  EXPECT_TRUE(Contains(checked.status().message(), "signature does not verify"));
}

TEST(CsrTest, RejectsWeakAndUnsupportedKeysNamingThem) {
  const std::tuple<std::string, const EVP_MD*, std::string> cases[] = {
      {"RSA-1024", EVP_sha256(), "1024 bits is too weak"},
      {"P-521", EVP_sha512(), "secp521r1"},
      {"Ed25519", nullptr, "ED25519"},
  };
  for (const auto& [kind, md, why] : cases) {
    EvpPkeyPtr key = NewKey(kind);
    ASSERT_NE(key, nullptr) << kind;
    auto checked = CheckCsr(OpenSslCsr(key.get(), md));
    ASSERT_FALSE(checked.ok()) << kind << " accepted";
    EXPECT_EQ(checked.status().code(), Code::kInvalidArgument);
    EXPECT_TRUE(Contains(checked.status().ToString(), why)) << checked.status().ToString();
    EXPECT_FALSE(MakeCsr(key.get()).ok()) << kind;
  }
}

TEST(CsrTest, RejectsMalformedTruncatedAndPaddedDer) {
  EvpPkeyPtr key = NewKey("P-256");
  const Bytes good = OpenSslCsr(key.get());

  EXPECT_TRUE(Contains(CheckCsr({}).status().message(), "empty"));
  for (size_t cut : {size_t{1}, size_t{2}, good.size() / 2, good.size() - 1}) {
    auto checked = CheckCsr(std::span<const uint8_t>(good.data(), cut));
    ASSERT_FALSE(checked.ok()) << "accepted " << cut << " of " << good.size() << " bytes";
    EXPECT_TRUE(Contains(checked.status().message(), "not valid PKCS#10 DER"))
        << checked.status().message();
  }
  Bytes padded = good;
  padded.push_back(0);
  auto trailing = CheckCsr(padded);
  ASSERT_FALSE(trailing.ok());
  EXPECT_TRUE(Contains(trailing.status().message(), "1 trailing bytes"));

  const Bytes garbage = {0x30, 0x03, 0x02, 0x01, 0x00};
  EXPECT_FALSE(CheckCsr(garbage).ok());
  auto cert_not_csr = CheckCsr(AsBytes("-----BEGIN CERTIFICATE REQUEST-----"));
  EXPECT_FALSE(cert_not_csr.ok());
}

// The CSR reader is hand-written, so every byte of a real CSR is mutated: each is either signed,
// or names the algorithm, or is the signature, or frames one of them, so no mutation may pass.
TEST(CsrTest, EverySingleByteChangeAndEveryTruncationIsRejected) {
  for (const std::string kind : {"P-256", "RSA-2048"}) {
    EvpPkeyPtr key = NewKey(kind);
    const Bytes good = OpenSslCsr(key.get());
    ASSERT_TRUE(CheckCsr(good).ok()) << kind;
    int accepted = 0;
    for (size_t i = 0; i < good.size(); ++i) {
      for (uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}}) {
        Bytes bad = good;
        bad[i] ^= flip;
        if (CheckCsr(bad).ok()) {
          ++accepted;
          ADD_FAILURE() << kind << ": accepted with byte " << i << " ^ " << int(flip);
        }
      }
    }
    EXPECT_EQ(accepted, 0);
    for (size_t len = 0; len < good.size(); ++len) {
      EXPECT_FALSE(CheckCsr(std::span<const uint8_t>(good.data(), len)).ok()) << kind << " " << len;
    }
  }
}

TEST(CsrTest, RejectsSignatureAlgorithmsOutsideTheSupportedSet) {
  EvpPkeyPtr key = NewKey("RSA-2048");
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  X509_REQ_set_pubkey(req.get(), key.get());
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  ASSERT_EQ(EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key.get()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
  ASSERT_GT(X509_REQ_sign_ctx(req.get(), ctx.get()), 0);
  const int len = i2d_X509_REQ(req.get(), nullptr);
  Bytes der(static_cast<size_t>(len));
  unsigned char* p = der.data();
  i2d_X509_REQ(req.get(), &p);
  auto checked = CheckCsr(der);
  ASSERT_FALSE(checked.ok()) << "accepted an RSA-PSS CSR";
  EXPECT_TRUE(Contains(checked.status().message(), "RSASSA-PSS is not supported"))
      << checked.status().message();
}

TEST(CsrTest, ExpensiveKeysAreRefusedBeforeTheSignatureIsChecked) {
  struct Case {
    std::string kind;
    EvpPkeyPtr key;
    int signature_nid;
    std::string why;
  };
  Case cases[] = {
      {"RSA-8192", RsaPublicKeyOfSizes(8192, 17), NID_sha256WithRSAEncryption, "8192 bits is too large"},
      {"RSA-4096 e of 3072 bits", RsaPublicKeyOfSizes(4096, 3072), NID_sha256WithRSAEncryption,
       "3072-bit public exponent other than 65537"},
      {"RSA-2048 e=3", RsaPublicKeyOfSizes(2048, 2), NID_sha256WithRSAEncryption,
       "2-bit public exponent other than 65537"},
      {"P-521", NewKey("P-521"), NID_ecdsa_with_SHA512, "secp521r1"},
  };
  for (auto& [kind, key, signature_nid, why] : cases) {
    ASSERT_NE(key, nullptr) << kind;
    auto checked = CheckCsr(CsrWithFillerSignature(key.get(), signature_nid));
    ASSERT_FALSE(checked.ok()) << kind << " accepted";
    EXPECT_EQ(checked.status().code(), Code::kInvalidArgument) << kind;
    EXPECT_TRUE(Contains(checked.status().ToString(), why)) << kind << ": " << checked.status().ToString();
    // The filler signature would not verify: a refusal naming the key came first.
    EXPECT_FALSE(Contains(checked.status().ToString(), "signature")) << kind << ": " << checked.status().ToString();
    EXPECT_EQ(CheckCertifiableKey(key.get()).code(), Code::kInvalidArgument) << kind;
  }
}

TEST(CsrTest, MintFromCsrRefusesWhatCheckCsrRefuses) {
  auto ca = X509Ca::NewRoot(*TrustDomain::Parse("example.org"),
                            testing::SoftSigner(KeyType::kEcP256), {});
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  X509SvidParams params(*SpiffeId::Parse("spiffe://example.org/w"));
  EvpPkeyPtr weak = NewKey("RSA-1024");
  auto svid = MintX509SvidFromCsr(*ca, OpenSslCsr(weak.get()), params);
  ASSERT_FALSE(svid.ok());
  EXPECT_TRUE(Contains(svid.status().ToString(), "too weak"));
}

}  // namespace
}  // namespace sigil
