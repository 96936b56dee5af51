#include "core/base64url.h"

#include <gtest/gtest.h>

namespace sigil {
namespace {

std::string Text(const Bytes& b) { return std::string(b.begin(), b.end()); }

TEST(Base64Test, Rfc4648VectorsRoundTrip) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(AsBytes(plain)), encoded);
    auto decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded << ": " << decoded.status().ToString();
    EXPECT_EQ(Text(*decoded), plain);
  }
}

TEST(Base64UrlTest, UsesUrlAlphabetWithoutPadding) {
  const Bytes bytes = {0xfb, 0xff, 0xbf, 0x3e};
  EXPECT_EQ(Base64Encode(bytes), "+/+/Pg==");
  EXPECT_EQ(Base64UrlEncode(bytes), "-_-_Pg");
  auto decoded = Base64UrlDecode("-_-_Pg");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, bytes);
  // RFC 7515 appendix C.
  EXPECT_EQ(Base64UrlEncode(Bytes{3, 236, 255, 224, 193}), "A-z_4ME");
}

TEST(Base64UrlTest, EveryLengthRoundTrips) {
  Bytes data;
  for (int i = 0; i < 70; ++i) {
    auto decoded = Base64UrlDecode(Base64UrlEncode(data));
    ASSERT_TRUE(decoded.ok()) << i << ": " << decoded.status().ToString();
    EXPECT_EQ(*decoded, data);
    data.push_back(static_cast<uint8_t>(i * 37 + 250));
  }
}

TEST(Base64UrlTest, RejectsWhatIsNotCanonicalBase64Url) {
  const std::pair<std::string, std::string> bad[] = {
      {"Zm9=", "'='"},   {"Zg==", "'='"},     {"+/8", "'+'"},       {"a/b", "'/'"},
      {"Zm 9", "' '"},   {"Zm9\n", "offset 3"}, {"Z", "whole bytes"}, {"Zm9vY", "whole bytes"},
      {"Zm9\xff", "offset 3"}};
  for (const auto& [text, why] : bad) {
    auto decoded = Base64UrlDecode(text);
    ASSERT_FALSE(decoded.ok()) << "accepted '" << text << "'";
    EXPECT_EQ(decoded.status().code(), Code::kInvalidArgument);
    EXPECT_NE(decoded.status().message().find(why), std::string::npos)
        << text << ": " << decoded.status().message();
  }
}

TEST(Base64Test, RejectsMalformedPaddedBase64) {
  EXPECT_FALSE(Base64Decode("Zm9").ok());
  EXPECT_FALSE(Base64Decode("Zm=v").ok());
  EXPECT_FALSE(Base64Decode("Z===").ok());
  EXPECT_FALSE(Base64Decode("Zm9-").ok());
  EXPECT_NE(Base64Decode("Zm9").status().message().find("multiple of 4"), std::string::npos);
}

}  // namespace
}  // namespace sigil
