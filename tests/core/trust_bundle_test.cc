#include "core/trust_bundle.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/base64url.h"
#include "core/x509_ca.h"
#include "tests/core/x509_test_util.h"

namespace sigil {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::Contains;
using testing::SoftSigner;

class TrustBundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (KeyType type : {KeyType::kEcP256, KeyType::kRsa2048}) {
      auto ca = X509Ca::NewRoot(td_, SoftSigner(type), {});
      ASSERT_TRUE(ca.ok()) << ca.status().ToString();
      bundle_.x509.Add(ca->cert());
    }
    for (KeyType type : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048}) {
      auto signer = SoftSigner(type);
      bundle_.jwt.authorities.emplace("jwt-" + std::string(KeyTypeName(type)),
                                      JwtAuthority(UpRef(signer->public_key())));
    }
    bundle_.sequence = 42;
    bundle_.refresh_hint = 300s;
  }

  std::string Jwks() {
    auto jwks = TrustBundleToJwks(bundle_);
    EXPECT_TRUE(jwks.ok()) << jwks.status().ToString();
    return jwks.ok() ? *jwks : "";
  }

  Status ParseError(const std::string& jwks) {
    auto parsed = TrustBundleFromJwks(td_, jwks);
    EXPECT_FALSE(parsed.ok()) << "accepted " << jwks;
    return parsed.status();
  }

  const TrustDomain td_ = *TrustDomain::Parse("example.org");
  TrustBundle bundle_{td_};
};

TEST_F(TrustBundleTest, JwksFollowsTheSpiffeBundleFormat) {
  const Json doc = Json::parse(Jwks());
  EXPECT_EQ(doc["spiffe_sequence"], 42);
  EXPECT_EQ(doc["spiffe_refresh_hint"], 300);
  ASSERT_EQ(doc["keys"].size(), 5u);
  int x509 = 0, jwt = 0;
  for (const Json& key : doc["keys"]) {
    if (key["use"] == "x509-svid") {
      ++x509;
      ASSERT_EQ(key["x5c"].size(), 1u);
      auto der = Base64Decode(key["x5c"][0].get<std::string>());
      ASSERT_TRUE(der.ok());
      EXPECT_EQ(*der, *CertToDer(bundle_.x509.authorities[x509 - 1].get()));
      EXPECT_FALSE(key.contains("kid"));
    } else {
      ++jwt;
      EXPECT_EQ(key["use"], "jwt-svid");
      EXPECT_TRUE(key["kid"].is_string());
    }
    if (key["kty"] == "EC") {
      const size_t field = key["crv"] == "P-384" ? 48 : 32;
      EXPECT_EQ(Base64UrlDecode(key["x"].get<std::string>())->size(), field);
      EXPECT_EQ(Base64UrlDecode(key["y"].get<std::string>())->size(), field);
    } else {
      EXPECT_EQ(key["kty"], "RSA");
      EXPECT_EQ(key["e"], "AQAB");
      EXPECT_EQ(Base64UrlDecode(key["n"].get<std::string>())->size(), 256u);
    }
  }
  EXPECT_EQ(x509, 2);
  EXPECT_EQ(jwt, 3);
}

TEST_F(TrustBundleTest, JwksRoundTrips) {
  auto parsed = TrustBundleFromJwks(td_, Jwks());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->trust_domain(), td_);
  EXPECT_EQ(parsed->sequence, 42u);
  EXPECT_EQ(parsed->refresh_hint, 300s);
  ASSERT_EQ(parsed->x509.authorities.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(X509_cmp(parsed->x509.authorities[i].get(), bundle_.x509.authorities[i].get()), 0);
  }
  ASSERT_EQ(parsed->jwt.authorities.size(), 3u);
  for (const auto& [kid, authority] : bundle_.jwt.authorities) {
    auto it = parsed->jwt.authorities.find(kid);
    ASSERT_NE(it, parsed->jwt.authorities.end()) << kid;
    EXPECT_EQ(EVP_PKEY_eq(it->second.public_key.get(), authority.public_key.get()), 1) << kid;
  }
  auto again = TrustBundleToJwks(*parsed);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, Jwks());
}

TEST_F(TrustBundleTest, PemRoundTripsTheX509Authorities) {
  auto pem = X509BundleToPem(bundle_.x509);
  ASSERT_TRUE(pem.ok());
  EXPECT_EQ(std::count(pem->begin(), pem->end(), '\n') > 0, true);
  auto parsed = X509BundleFromPem(td_, *pem);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->authorities.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(X509_cmp(parsed->authorities[i].get(), bundle_.x509.authorities[i].get()), 0);
  }
  EXPECT_TRUE(Contains(X509BundleFromPem(td_, "").status().message(), "no PEM certificate"));
  const std::string broken = pem->substr(0, 40) + "@@@@" + pem->substr(44);
  EXPECT_FALSE(X509BundleFromPem(td_, broken).ok());
}

TEST_F(TrustBundleTest, CopiesShareCertificatesAndKeys) {
  TrustBundle copy = bundle_;
  bundle_.x509.authorities.clear();
  bundle_.jwt.authorities.clear();
  EXPECT_EQ(copy.x509.authorities.size(), 2u);
  EXPECT_EQ(copy.jwt.authorities.size(), 3u);
  EXPECT_NE(X509_get_subject_name(copy.x509.authorities[0].get()), nullptr);
  copy.x509.Add(copy.x509.authorities[0].get());
  EXPECT_EQ(copy.x509.authorities.size(), 2u) << "a certificate already present was added again";
}

TEST_F(TrustBundleTest, SkipsKeysOfOtherUses) {
  Json doc = Json::parse(Jwks());
  doc["keys"].push_back({{"kty", "oct"}, {"k", "AAAA"}, {"use", "enc"}});
  doc["keys"].push_back({{"kty", "EC"}});
  auto parsed = TrustBundleFromJwks(td_, doc.dump());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->jwt.authorities.size(), 3u);
}

TEST_F(TrustBundleTest, RejectsMalformedBundlesNamingTheKeyAndField) {
  EXPECT_TRUE(Contains(ParseError("{").message(), "not valid JSON"));
  EXPECT_TRUE(Contains(ParseError("[]").message(), "not a JSON object"));
  EXPECT_TRUE(Contains(ParseError("{}").message(), "no \"keys\""));
  EXPECT_TRUE(Contains(ParseError(R"({"keys":[],"spiffe_sequence":-1})").message(), "spiffe_sequence"));
  EXPECT_TRUE(Contains(ParseError(R"({"keys":[],"spiffe_refresh_hint":"1m"})").message(),
                       "spiffe_refresh_hint"));

  const Json good = Json::parse(Jwks());
  auto mutate = [&](size_t index, const std::function<void(Json&)>& change) {
    Json doc = good;
    change(doc["keys"][index]);
    return ParseError(doc.dump());
  };
  // Keys 0 and 1 are X.509 authorities, 2..4 JWT authorities (jwt-ec-p256, jwt-ec-p384, jwt-rsa-2048).
  Status s = mutate(0, [](Json& k) { k.erase("x5c"); });
  EXPECT_TRUE(Contains(s.message(), "key 0")) << s.message();
  EXPECT_TRUE(Contains(s.message(), "exactly one certificate")) << s.message();
  s = mutate(1, [&](Json& k) { k["x5c"].push_back(good["keys"][0]["x5c"][0]); });
  EXPECT_TRUE(Contains(s.message(), "key 1")) << s.message();
  s = mutate(0, [](Json& k) { k["x5c"][0] = "not base64!"; });
  EXPECT_TRUE(Contains(s.message(), "x5c")) << s.message();
  s = mutate(0, [](Json& k) { k["x5c"][0] = Base64Encode(AsBytes("not a certificate")); });
  EXPECT_TRUE(Contains(s.message(), "not valid X.509 DER")) << s.message();
  s = mutate(0, [&](Json& k) {
    k["x"] = good["keys"][2]["x"];
    k["y"] = good["keys"][2]["y"];
  });
  EXPECT_TRUE(Contains(s.message(), "do not match")) << s.message();
  s = mutate(2, [](Json& k) { k.erase("kid"); });
  EXPECT_TRUE(Contains(s.message(), "key 2: \"kid\" is missing")) << s.message();
  s = mutate(3, [&](Json& k) { k["kid"] = good["keys"][2]["kid"]; });
  EXPECT_TRUE(Contains(s.message(), "appears twice")) << s.message();
  s = mutate(2, [](Json& k) { k["crv"] = "P-521"; });
  EXPECT_TRUE(Contains(s.message(), "unsupported curve \"P-521\"")) << s.message();
  s = mutate(2, [](Json& k) { k["x"] = "AAAA"; });
  EXPECT_TRUE(Contains(s.message(), "32 bytes")) << s.message();
  s = mutate(2, [](Json& k) { k["kty"] = "OKP"; });
  EXPECT_TRUE(Contains(s.message(), "unsupported key type \"OKP\"")) << s.message();
  TrustBundle weak(td_);
  weak.jwt.authorities.emplace("weak", JwtAuthority(testing::NewKey("RSA-1024")));
  s = ParseError(*TrustBundleToJwks(weak));
  EXPECT_TRUE(Contains(s.message(), "key 0: RSA key of 1024 bits is too weak")) << s.message();
  s = mutate(2, [](Json& k) { k["y"] = "A+B"; });
  EXPECT_TRUE(Contains(s.message(), "in \"y\"")) << s.message();
}

TEST(CertDerTest, RejectsTrailingAndTruncatedDer) {
  auto ca = X509Ca::NewRoot(*TrustDomain::Parse("example.org"), SoftSigner(KeyType::kEcP256), {});
  ASSERT_TRUE(ca.ok());
  Bytes der = ca->cert_der();
  EXPECT_TRUE(CertFromDer(der).ok());
  der.push_back(0);
  EXPECT_TRUE(Contains(CertFromDer(der).status().message(), "trailing"));
  der.resize(der.size() / 2);
  EXPECT_TRUE(Contains(CertFromDer(der).status().message(), "not valid X.509 DER"));
}

}  // namespace
}  // namespace sigil
