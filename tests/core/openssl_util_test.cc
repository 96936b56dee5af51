#include "core/openssl_util.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "core/base64url.h"

namespace sigil {
namespace {

EvpPkeyPtr MakeEcKey(const char* curve) {
  return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}

Bytes SignDer(EVP_PKEY* key, std::string_view msg) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key), 1);
  size_t len = 0;
  auto data = reinterpret_cast<const unsigned char*>(msg.data());
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, data, msg.size()), 1);
  Bytes sig(len);
  EXPECT_EQ(EVP_DigestSign(ctx.get(), sig.data(), &len, data, msg.size()), 1);
  sig.resize(len);
  return sig;
}

bool VerifyDer(EVP_PKEY* key, std::string_view msg, const Bytes& sig) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key);
  return EVP_DigestVerify(ctx.get(), sig.data(), sig.size(),
                          reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1;
}

// PKCS#8 of EC keys is built from the key's parts; it must be what OpenSSL itself writes.
TEST(PrivateKeyEncoding, EcPkcs8IsOpenSslsOwnAndRoundTrips) {
  for (const char* curve : {"P-256", "P-384"}) {
    for (int i = 0; i < 20; ++i) {  // some private scalars are short: exercise the padding
      EvpPkeyPtr key = MakeEcKey(curve);
      ASSERT_TRUE(key);
      auto der = PrivateKeyToPkcs8Der(key.get());
      ASSERT_TRUE(der.ok()) << der.status().ToString();
      std::unique_ptr<PKCS8_PRIV_KEY_INFO, OpenSSLDeleter<PKCS8_PRIV_KEY_INFO_free>> reference(EVP_PKEY2PKCS8(key.get()));
      ASSERT_TRUE(reference);
      unsigned char* out = nullptr;
      const int length = i2d_PKCS8_PRIV_KEY_INFO(reference.get(), &out);
      ASSERT_GT(length, 0);
      EXPECT_EQ(*der, Bytes(out, out + length)) << curve;
      OPENSSL_free(out);
      auto back = PrivateKeyFromDer(*der);
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_EQ(EVP_PKEY_eq(back->get(), key.get()), 1);
    }
  }
  // Other keys take OpenSSL's own path.
  EvpPkeyPtr rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  auto rsa_der = PrivateKeyToPkcs8Der(rsa.get());
  ASSERT_TRUE(rsa_der.ok());
  EXPECT_EQ(EVP_PKEY_eq(PrivateKeyFromDer(*rsa_der)->get(), rsa.get()), 1);
}

TEST(EcdsaSignatureForms, DerToRawAndBackStillVerifies) {
  for (auto [curve, field] : {std::pair{"P-256", 32}, std::pair{"P-384", 48}}) {
    EvpPkeyPtr key = MakeEcKey(curve);
    ASSERT_TRUE(key);
    for (int i = 0; i < 50; ++i) {  // some signatures have short r or s: exercise the padding
      std::string msg = "message " + std::to_string(i);
      Bytes der = SignDer(key.get(), msg);
      auto raw = EcdsaDerToRaw(der, field);
      ASSERT_TRUE(raw.ok()) << raw.status().ToString();
      EXPECT_EQ(raw->size(), 2u * field);
      auto back = EcdsaRawToDer(*raw);
      ASSERT_TRUE(back.ok());
      EXPECT_TRUE(VerifyDer(key.get(), msg, *back)) << curve << " " << i;
    }
  }
}

TEST(EcdsaSignatureForms, RejectsGarbageWithReason) {
  Bytes junk = {0x30, 0x05, 0x01};
  auto raw = EcdsaDerToRaw(junk, 32);
  ASSERT_FALSE(raw.ok());
  EXPECT_EQ(raw.status().code(), Code::kInvalidArgument);
  EXPECT_NE(raw.status().message().find("not valid DER"), std::string::npos);
  EXPECT_EQ(ERR_peek_error(), 0u) << "error queue must be drained";

  auto der = EcdsaRawToDer(Bytes{1, 2, 3});
  ASSERT_FALSE(der.ok());
  EXPECT_NE(der.status().message().find("equal halves"), std::string::npos);
}

TEST(PublicKeyDer, RoundTrips) {
  EvpPkeyPtr key = MakeEcKey("P-256");
  auto der = PublicKeyToDer(key.get());
  ASSERT_TRUE(der.ok());
  auto back = PublicKeyFromDer(*der);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(EVP_PKEY_eq(key.get(), back->get()), 1);

  Bytes truncated(der->begin(), der->end() - 5);
  auto bad = PublicKeyFromDer(truncated);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("SubjectPublicKeyInfo"), std::string::npos);
}

TEST(OpenSSLUtilTest, EcPublicKeyFromPointMatchesTheKey) {
  EvpPkeyPtr key(EVP_EC_gen("P-384"));
  unsigned char point[200];
  size_t length = 0;
  ASSERT_EQ(EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_PUB_KEY, point,
                                            sizeof(point), &length), 1);
  auto rebuilt = EcPublicKeyFromPoint("P-384", std::span<const uint8_t>(point, length));
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  EXPECT_EQ(EVP_PKEY_eq(key.get(), rebuilt->get()), 1);

  point[length - 1] ^= 1;  // now off the curve
  auto off_curve = EcPublicKeyFromPoint("P-384", std::span<const uint8_t>(point, length));
  ASSERT_FALSE(off_curve.ok());
  EXPECT_EQ(off_curve.status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(EcPublicKeyFromPoint("P-256", std::span<const uint8_t>(point, length)).ok());
}

// Keys are copied from one key per curve: each copy holds its own point and nothing private,
// and what is not a point on the curve is refused as before.
TEST(OpenSSLUtilTest, EcPublicKeysFromPointsAreTheirOwnAndPublicOnly) {
  for (const char* curve : {"P-256", "P-384"}) {
    EvpPkeyPtr first(EVP_EC_gen(curve));
    EvpPkeyPtr second(EVP_EC_gen(curve));
    unsigned char point[200];
    size_t length = 0;
    ASSERT_EQ(EVP_PKEY_get_octet_string_param(first.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &length), 1);
    auto a = EcPublicKeyFromPoint(curve, std::span<const uint8_t>(point, length));
    ASSERT_EQ(EVP_PKEY_get_octet_string_param(second.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &length), 1);
    auto b = EcPublicKeyFromPoint(curve, std::span<const uint8_t>(point, length));
    ASSERT_TRUE(a.ok() && b.ok()) << curve;
    EXPECT_EQ(EVP_PKEY_eq(first.get(), a->get()), 1) << curve;
    EXPECT_EQ(EVP_PKEY_eq(second.get(), b->get()), 1) << curve;
    BIGNUM* private_part = nullptr;
    EXPECT_EQ(EVP_PKEY_get_bn_param(a->get(), OSSL_PKEY_PARAM_PRIV_KEY, &private_part), 0) << curve;
    BN_free(private_part);

    const uint8_t infinity[] = {0x00};
    EXPECT_FALSE(EcPublicKeyFromPoint(curve, infinity).ok()) << curve;
    point[0] = 0x02;  // x of a valid point, compressed; an x with no point on the curve follows
    const size_t field = (length - 1) / 2;
    auto compressed = EcPublicKeyFromPoint(curve, std::span<const uint8_t>(point, 1 + field));
    ASSERT_TRUE(compressed.ok()) << curve << ": " << compressed.status().ToString();
    unsigned char encoded[200];
    size_t encoded_length = 0;
    ASSERT_EQ(EVP_PKEY_get_octet_string_param(compressed->get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, encoded,
                                              sizeof(encoded), &encoded_length), 1);
    EXPECT_EQ(encoded_length, length) << curve << ": certificates carry the point uncompressed";
    EXPECT_EQ(encoded[0], 0x04) << curve;
    bool refused_some_x = false;
    for (int tries = 0; tries < 16 && !refused_some_x; ++tries) {
      point[field] ^= static_cast<uint8_t>(tries + 1);
      refused_some_x = !EcPublicKeyFromPoint(curve, std::span<const uint8_t>(point, 1 + field)).ok();
    }
    EXPECT_TRUE(refused_some_x) << curve;
  }
}

TEST(OpenSSLUtilTest, RsaPublicKeyFromPartsMatchesTheKey) {
  EvpPkeyPtr key(EVP_RSA_gen(2048));
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  ASSERT_EQ(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n), 1);
  ASSERT_EQ(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E, &e), 1);
  BignumPtr n_owned(n), e_owned(e);
  Bytes modulus(BN_num_bytes(n)), exponent(BN_num_bytes(e));
  BN_bn2bin(n, modulus.data());
  BN_bn2bin(e, exponent.data());
  auto rebuilt = RsaPublicKeyFromParts(modulus, exponent);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  EXPECT_EQ(EVP_PKEY_eq(key.get(), rebuilt->get()), 1);
}

// A modulus a fuzzer made from a real one by changing a few digits: composite, odd, not an RSA
// modulus. OpenSSL's own public check tries one random Miller-Rabin base and refused it on some
// runs only; the same key must load or fail the same way every time.
TEST(OpenSSLUtilTest, RsaPublicKeyCheckIsTheSameOnEveryRun) {
  auto modulus = Base64UrlDecode(
      "yIavUgmBdkovwLoLh0iFwVwPcDIva85dAKlVT0cEelA6vPjAGXp9f9ZPFnq05I_shhc7MJvMHlUp7FgyNZXlUNQgauXs"
      "6YFSrDedyxjFFn4mVnogjKT3sByE760OeDUG6ZDQS2JTuWZu3fm3IpJroAvOROSMH5B7mo4aonkU5C9cIRwAQ_tK5JZ2"
      "vTo51ne5eTnFPVYKCbUR5jFgnlPhFFL1vwB3koSCyTac69dC6t59nf90oZUcXrAAG7cQSWYgTu6aNWa8nBB3FcC5j9uI"
      "gNJ9I4P146mBcn30KsHcb6U8vHNtmNs1vSpdJNrWurW9Yw1IanQSnk3l3wSjb8RFSQ");
  ASSERT_TRUE(modulus.ok());
  const uint8_t exponent[] = {0x01, 0x00, 0x01};
  int loaded = 0;
  for (int run = 0; run < 1000; ++run) loaded += RsaPublicKeyFromParts(*modulus, exponent).ok() ? 1 : 0;
  EXPECT_EQ(loaded, 1000);
}

TEST(OpenSSLUtilTest, RsaPublicKeysThatCannotBeRsaAreRefusedByName) {
  EvpPkeyPtr key(EVP_RSA_gen(2048));
  BIGNUM* n = nullptr;
  ASSERT_EQ(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n), 1);
  BignumPtr n_owned(n);
  Bytes modulus(BN_num_bytes(n));
  BN_bn2bin(n, modulus.data());
  const uint8_t e65537[] = {0x01, 0x00, 0x01};
  const uint8_t e3[] = {0x03};
  const uint8_t e65536[] = {0x01, 0x00, 0x00};

  auto small_exponent = RsaPublicKeyFromParts(modulus, e3);
  ASSERT_FALSE(small_exponent.ok());
  EXPECT_NE(small_exponent.status().message().find("public exponent"), std::string::npos);
  EXPECT_FALSE(RsaPublicKeyFromParts(modulus, e65536).ok()) << "an even exponent";

  Bytes even = modulus;
  even.back() &= 0xfe;
  auto even_modulus = RsaPublicKeyFromParts(even, e65537);
  ASSERT_FALSE(even_modulus.ok());
  EXPECT_NE(even_modulus.status().message().find("even modulus"), std::string::npos);

  BignumPtr prime(BN_new());
  ASSERT_EQ(BN_generate_prime_ex(prime.get(), 1024, 0, nullptr, nullptr, nullptr), 1);
  Bytes prime_bytes(BN_num_bytes(prime.get()));
  BN_bn2bin(prime.get(), prime_bytes.data());
  auto prime_modulus = RsaPublicKeyFromParts(prime_bytes, e65537);
  ASSERT_FALSE(prime_modulus.ok());
  EXPECT_NE(prime_modulus.status().message().find("prime modulus"), std::string::npos);
}

}  // namespace
}  // namespace sigil
