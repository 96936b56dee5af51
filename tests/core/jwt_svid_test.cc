#include "core/jwt_svid.h"

#include <gtest/gtest.h>

#include <limits>

#include <nlohmann/json.hpp>

#include "core/base64url.h"
#include "tests/core/x509_test_util.h"

namespace sigil {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::Contains;
using testing::SoftSigner;

Json DecodePart(const std::string& token, int index) {
  size_t start = 0;
  for (int i = 0; i < index; ++i) start = token.find('.', start) + 1;
  const size_t end = token.find('.', start);
  auto bytes = Base64UrlDecode(std::string_view(token).substr(start, end - start));
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return Json::parse(bytes->begin(), bytes->end());
}

class JwtSvidTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (KeyType type : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048}) {
      auto signer = SoftSigner(type);
      ASSERT_NE(signer, nullptr);
      const std::string kid = "kid-" + std::string(KeyTypeName(type));
      signers_[type] = signer;
      bundle_.authorities.emplace(kid, JwtAuthority(UpRef(signer->public_key())));
    }
  }

  static std::string Kid(KeyType type) { return "kid-" + std::string(KeyTypeName(type)); }

  JwtSvidParams Params(std::vector<std::string> audience = {"db"}) {
    JwtSvidParams params(*SpiffeId::Parse("spiffe://example.org/web"));
    params.audience = std::move(audience);
    params.now = now_;
    return params;
  }

  std::string Mint(KeyType type = KeyType::kEcP256) {
    auto svid = MintJwtSvid(*signers_[type], Kid(type), Params());
    EXPECT_TRUE(svid.ok()) << svid.status().ToString();
    return svid.ok() ? svid->token : "";
  }

  // A token with the given header and claims, signed by the P-256 key as `scheme` says.
  std::string Craft(const std::string& header, const std::string& claims,
                    SignatureScheme scheme = SignatureScheme::kES256, KeyType key = KeyType::kEcP256) {
    std::string token = Base64UrlEncode(AsBytes(header)) + "." + Base64UrlEncode(AsBytes(claims));
    auto signature = signers_[key]->SignMessageJws(scheme, AsBytes(token));
    EXPECT_TRUE(signature.ok()) << signature.status().ToString();
    return token + "." + (signature.ok() ? Base64UrlEncode(*signature) : "");
  }

  std::string Claims(const std::string& sub = "spiffe://example.org/web",
                     const std::string& aud = "\"db\"") {
    return R"({"sub":")" + sub + R"(","aud":)" + aud + R"(,"exp":)" +
           std::to_string(std::chrono::system_clock::to_time_t(now_ + 5min)) + "}";
  }

  // The validation error for `token`, which must be one.
  Status Reject(const std::string& token, std::string_view audience = "db") {
    auto result = ValidateJwtSvid(token, bundle_, audience, now_);
    EXPECT_FALSE(result.ok()) << "accepted " << token;
    return result.status();
  }

  const TimePoint now_ = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  std::map<KeyType, std::shared_ptr<Signer>> signers_;
  JwtBundle bundle_{*TrustDomain::Parse("example.org")};
};

TEST_F(JwtSvidTest, MintsAndValidatesEveryAlgorithm) {
  for (KeyType type : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048}) {
    SCOPED_TRACE(std::string(KeyTypeName(type)));
    auto svid = MintJwtSvid(*signers_[type], Kid(type), Params());
    ASSERT_TRUE(svid.ok()) << svid.status().ToString();
    const Json header = DecodePart(svid->token, 0);
    EXPECT_EQ(header["alg"], JwsAlgorithmName(DefaultSchemeFor(type)));
    EXPECT_EQ(header["kid"], Kid(type));
    EXPECT_EQ(header["typ"], "JWT");
    const Json claims = DecodePart(svid->token, 1);
    EXPECT_EQ(claims["sub"], "spiffe://example.org/web");
    EXPECT_EQ(claims["aud"], "db");
    EXPECT_EQ(claims["iat"], std::chrono::system_clock::to_time_t(now_));
    EXPECT_EQ(claims["exp"], std::chrono::system_clock::to_time_t(now_ + 5min));
    EXPECT_EQ(svid->token.find('='), std::string::npos);

    auto valid = ValidateJwtSvid(svid->token, bundle_, "db", now_);
    ASSERT_TRUE(valid.ok()) << valid.status().ToString();
    EXPECT_EQ(valid->spiffe_id.str(), "spiffe://example.org/web");
    EXPECT_EQ(valid->audience, std::vector<std::string>{"db"});
    EXPECT_EQ(valid->expires_at, now_ + 5min);
    EXPECT_EQ(valid->issued_at, now_);
  }
}

TEST_F(JwtSvidTest, SeveralAudiencesAreAnArrayAndAnyOneMatches) {
  auto svid = MintJwtSvid(*signers_[KeyType::kEcP256], Kid(KeyType::kEcP256), Params({"db", "cache"}));
  ASSERT_TRUE(svid.ok());
  EXPECT_EQ(DecodePart(svid->token, 1)["aud"], Json::array({"db", "cache"}));
  EXPECT_TRUE(ValidateJwtSvid(svid->token, bundle_, "cache", now_).ok());
  EXPECT_TRUE(ValidateJwtSvid(svid->token, bundle_, "db", now_).ok());
  EXPECT_TRUE(Contains(Reject(svid->token, "web").message(), "audience \"web\""));
}

TEST_F(JwtSvidTest, MintRefusesBadParameters) {
  Signer& key = *signers_[KeyType::kEcP256];
  EXPECT_TRUE(Contains(MintJwtSvid(key, "k", Params({})).status().message(), "audience"));
  EXPECT_TRUE(Contains(MintJwtSvid(key, "k", Params({""})).status().message(), "audience"));
  EXPECT_TRUE(Contains(MintJwtSvid(key, "", Params()).status().message(), "key ID"));
  JwtSvidParams zero = Params();
  zero.ttl = 0s;
  EXPECT_TRUE(Contains(MintJwtSvid(key, "k", zero).status().message(), "TTL"));
  JwtSvidParams forever = Params();
  forever.ttl = std::chrono::seconds(std::numeric_limits<int64_t>::max());
  auto refused = MintJwtSvid(key, "k", forever);
  EXPECT_EQ(refused.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(refused.status().message(), "at most 31536000s")) << refused.status().message();
}

TEST_F(JwtSvidTest, AnExpiryBeyondWhatTheClockHoldsStaysInTheFuture) {
  // exp in the year 9999 is within the claim's bound but past the clock's nanoseconds (2262).
  const std::string claims = R"({"sub":"spiffe://example.org/web","aud":"db","exp":253402300799})";
  auto svid = ValidateJwtSvid(Craft(R"({"alg":"ES256","kid":")" + Kid(KeyType::kEcP256) + R"("})", claims),
                              bundle_, "db", now_);
  ASSERT_TRUE(svid.ok()) << svid.status().ToString();
  EXPECT_EQ(svid->expires_at, TimePoint::max());
}

TEST_F(JwtSvidTest, RejectsAlgNoneAndEveryOtherAlgorithm) {
  const std::string claims = Base64UrlEncode(AsBytes(Claims()));
  const std::string kid = Kid(KeyType::kEcP256);
  const std::string none =
      Base64UrlEncode(AsBytes(R"({"alg":"none","kid":")" + kid + R"(","typ":"JWT"})")) + "." + claims + ".";
  Status status = Reject(none);
  EXPECT_EQ(status.code(), Code::kUnauthenticated);
  EXPECT_TRUE(Contains(status.message(), "\"none\"")) << status.message();

  for (const std::string alg : {"HS256", "PS256", "ES512", "RS384", "es256"}) {
    status = Reject(Craft(R"({"alg":")" + alg + R"(","kid":")" + kid + R"("})", Claims()));
    EXPECT_EQ(status.code(), Code::kUnauthenticated) << alg;
    EXPECT_TRUE(Contains(status.message(), "\"" + alg + "\" is not accepted")) << status.message();
  }
}

TEST_F(JwtSvidTest, RejectsAnAlgorithmThatDoesNotFitTheKey) {
  // Signed correctly by the P-256 key, but claiming ES384; and an RSA kid with an EC alg.
  const std::string kid = Kid(KeyType::kEcP256);
  Status status = Reject(Craft(R"({"alg":"ES384","kid":")" + kid + R"("})", Claims()));
  EXPECT_TRUE(Contains(status.message(), "does not fit")) << status.message();
  status = Reject(Craft(R"({"alg":"ES256","kid":")" + Kid(KeyType::kRsa2048) + R"("})", Claims()));
  EXPECT_TRUE(Contains(status.message(), "does not fit")) << status.message();
}

TEST_F(JwtSvidTest, RejectsUnknownKidAndExpiredAuthority) {
  Status status = Reject(Craft(R"({"alg":"ES256","kid":"nobody"})", Claims()));
  EXPECT_EQ(status.code(), Code::kUnauthenticated);
  EXPECT_TRUE(Contains(status.message(), "\"nobody\" is not in the JWT bundle of example.org"));

  const std::string token = Mint();
  bundle_.authorities[Kid(KeyType::kEcP256)].expires_at = now_ - 1s;
  EXPECT_TRUE(Contains(Reject(token).message(), "has expired"));
}

TEST_F(JwtSvidTest, RejectsTamperedPayloadAndSignature) {
  const std::string token = Mint();
  const size_t dot1 = token.find('.');
  const size_t dot2 = token.find('.', dot1 + 1);
  const std::string forged_claims = Base64UrlEncode(AsBytes(Claims("spiffe://example.org/admin")));
  const std::string tampered = token.substr(0, dot1 + 1) + forged_claims + token.substr(dot2);
  Status status = Reject(tampered);
  EXPECT_EQ(status.code(), Code::kUnauthenticated);
  EXPECT_TRUE(Contains(status.message(), "signature does not verify")) << status.message();

  std::string bad_sig = token;
  bad_sig[dot2 + 5] = bad_sig[dot2 + 5] == 'A' ? 'B' : 'A';
  EXPECT_TRUE(Contains(Reject(bad_sig).message(), "signature does not verify"));

  const std::string short_sig = token.substr(0, dot2 + 1) + Base64UrlEncode(Bytes(63, 1));
  EXPECT_TRUE(Contains(Reject(short_sig).message(), "must be 64 bytes"));
}

TEST_F(JwtSvidTest, RejectsExpiredTokens) {
  const std::string token = Mint();
  auto at_expiry = ValidateJwtSvid(token, bundle_, "db", now_ + 5min);
  EXPECT_EQ(at_expiry.status().code(), Code::kUnauthenticated);
  EXPECT_TRUE(Contains(at_expiry.status().message(), "expired")) << at_expiry.status().message();
  EXPECT_FALSE(ValidateJwtSvid(token, bundle_, "db", now_ + 1h).ok());
  EXPECT_TRUE(ValidateJwtSvid(token, bundle_, "db", now_ + 5min - 1s).ok());

  const std::string kid = Kid(KeyType::kEcP256);
  const std::string future = R"({"sub":"spiffe://example.org/web","aud":"db","exp":)" +
      std::to_string(std::chrono::system_clock::to_time_t(now_ + 5min)) + R"(,"nbf":)" +
      std::to_string(std::chrono::system_clock::to_time_t(now_ + 1min)) + "}";
  EXPECT_TRUE(Contains(Reject(Craft(R"({"alg":"ES256","kid":")" + kid + R"("})", future)).message(),
                       "nbf"));
}

TEST_F(JwtSvidTest, RejectsWrongAudienceAndForeignOrInvalidSubjects) {
  const std::string kid = Kid(KeyType::kEcP256);
  const std::string header = R"({"alg":"ES256","kid":")" + kid + R"(","typ":"JWT"})";
  EXPECT_TRUE(Contains(Reject(Mint(), "other").message(), "audience \"other\""));
  EXPECT_TRUE(Contains(Reject(Craft(header, Claims("spiffe://other.org/web"))).message(),
                       "not in trust domain example.org"));
  EXPECT_TRUE(Contains(Reject(Craft(header, Claims("https://example.org/web"))).message(),
                       "not a SPIFFE ID"));
  EXPECT_TRUE(Contains(Reject(Craft(header, Claims("spiffe://example.org/web", "[]"))).message(),
                       "\"aud\" is empty"));
  EXPECT_TRUE(Contains(Reject(Craft(header, Claims("spiffe://example.org/web", "7"))).message(),
                       "neither a string nor an array"));
  EXPECT_TRUE(Contains(Reject(Craft(header, Claims("spiffe://example.org/web", "[\"db\",1]"))).message(),
                       "not a string"));
}

TEST_F(JwtSvidTest, RejectsMalformedTokensNamingThePart) {
  const std::string kid = Kid(KeyType::kEcP256);
  const std::string header = R"({"alg":"ES256","kid":")" + kid + R"("})";
  const std::string exp = std::to_string(std::chrono::system_clock::to_time_t(now_ + 5min));
  const std::pair<std::string, std::string> cases[] = {
      {"", "three parts"},
      {"abc", "three parts"},
      {"a.b", "three parts"},
      {Mint() + ".x", "three parts"},
      {"e30.e30.A", "base64url"},
      {"%%%.e30.AAAA", "header is not base64url"},
      {Base64UrlEncode(AsBytes("{not json")) + ".e30.AAAA", "header is not valid JSON"},
      {Base64UrlEncode(AsBytes("[1]")) + ".e30.AAAA", "header is not a JSON object"},
      {Base64UrlEncode(AsBytes(header)) + "." + Base64UrlEncode(AsBytes("nope")) + ".AAAA",
       "payload is not valid JSON"},
      {Base64UrlEncode(AsBytes(header)) + ".e30.AA*A", "signature is not base64url"},
      {Craft(R"({"kid":")" + kid + R"("})", Claims()), "no \"alg\""},
      {Craft(R"({"alg":"ES256"})", Claims()), "no \"kid\""},
      {Craft(R"({"alg":"ES256","kid":")" + kid + R"(","typ":"XML"})", Claims()), "\"typ\""},
      {Craft(R"({"alg":"ES256","kid":")" + kid + R"(","crit":["exp"]})", Claims()), "crit"},
      {Craft(header, R"({"sub":"spiffe://example.org/web","aud":"db"})"), "\"exp\" is missing"},
      {Craft(header, R"({"sub":"spiffe://example.org/web","aud":"db","exp":"soon"})"),
       "\"exp\" is not a number"},
      {Craft(header, R"({"sub":"spiffe://example.org/web","aud":"db","exp":1e300})"),
       "\"exp\" is out of range"},
      {Craft(header, R"({"aud":"db","exp":)" + exp + "}"), "\"sub\" is missing"},
      {Craft(header, R"({"sub":"spiffe://example.org/web","exp":)" + exp + "}"), "\"aud\" is missing"},
      {std::string(kMaxJwtSvidLength + 1, 'a'), "more than"},
  };
  for (const auto& [token, why] : cases) {
    const Status status = Reject(token);
    EXPECT_TRUE(Contains(status.message(), why)) << token.substr(0, 80) << ": " << status.message();
  }
}

}  // namespace
}  // namespace sigil
