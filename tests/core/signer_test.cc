#include "core/signer.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

namespace sigil {
namespace {

TEST(SignerTest, KeyTypeNamesRoundTrip) {
  for (KeyType type : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048}) {
    auto parsed = ParseKeyType(KeyTypeName(type));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, type);
  }
  auto bad = ParseKeyType("ed25519");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'ed25519'"), std::string::npos);
}

TEST(SignerTest, JwsAlgorithmsRoundTripAndRefuseNone) {
  for (SignatureScheme scheme :
       {SignatureScheme::kES256, SignatureScheme::kES384, SignatureScheme::kRS256}) {
    auto parsed = ParseJwsAlgorithm(JwsAlgorithmName(scheme));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, scheme);
  }
  EXPECT_FALSE(ParseJwsAlgorithm("none").ok());
  EXPECT_FALSE(ParseJwsAlgorithm("HS256").ok());
  EXPECT_FALSE(ParseJwsAlgorithm("es256").ok());
}

TEST(SignerTest, SchemesFitOnlyTheirKeys) {
  EXPECT_TRUE(SchemeFitsKey(SignatureScheme::kES256, KeyType::kEcP256));
  EXPECT_FALSE(SchemeFitsKey(SignatureScheme::kES384, KeyType::kEcP256));
  EXPECT_FALSE(SchemeFitsKey(SignatureScheme::kRS256, KeyType::kEcP384));
  EXPECT_TRUE(SchemeFitsKey(SignatureScheme::kRS256, KeyType::kRsa2048));
  EXPECT_EQ(EVP_MD_get_size(SchemeDigest(SignatureScheme::kES384)), 48);
  EXPECT_EQ(EVP_MD_get_size(SchemeDigest(SignatureScheme::kES256)), 32);
  EXPECT_EQ(EcdsaFieldSize(KeyType::kEcP384), 48u);
}

TEST(SignerTest, KeyTypeOfNamesWhatItRefuses) {
  EvpPkeyPtr p256(EVP_EC_gen("P-256"));
  EvpPkeyPtr p384(EVP_EC_gen("P-384"));
  EvpPkeyPtr p521(EVP_EC_gen("P-521"));
  EvpPkeyPtr rsa(EVP_RSA_gen(2048));
  EvpPkeyPtr rsa_small(EVP_RSA_gen(1024));
  EvpPkeyPtr ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  EXPECT_EQ(*KeyTypeOf(p256.get()), KeyType::kEcP256);
  EXPECT_EQ(*KeyTypeOf(p384.get()), KeyType::kEcP384);
  EXPECT_EQ(*KeyTypeOf(rsa.get()), KeyType::kRsa2048);
  EXPECT_NE(KeyTypeOf(p521.get()).status().message().find("secp521r1"), std::string::npos);
  EXPECT_NE(KeyTypeOf(rsa_small.get()).status().message().find("1024"), std::string::npos);
  EXPECT_NE(KeyTypeOf(ed.get()).status().message().find("ED25519"), std::string::npos);
  EXPECT_FALSE(KeyTypeOf(nullptr).ok());
}

}  // namespace
}  // namespace sigil
