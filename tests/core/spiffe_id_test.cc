#include "core/spiffe_id.h"

#include <gtest/gtest.h>

#include <string>
#include <unordered_set>

namespace sigil {
namespace {

struct ValidCase {
  std::string id;
  std::string trust_domain;
  std::string path;
};

class SpiffeIdValid : public ::testing::TestWithParam<ValidCase> {};

TEST_P(SpiffeIdValid, ParsesIntoTrustDomainAndPath) {
  const ValidCase& c = GetParam();
  auto id = SpiffeId::Parse(c.id);
  ASSERT_TRUE(id.ok()) << c.id << ": " << id.status().ToString();
  EXPECT_EQ(id->trust_domain().name(), c.trust_domain);
  EXPECT_EQ(id->path(), c.path);
  EXPECT_EQ(id->str(), c.id);
  auto rebuilt = SpiffeId::FromPath(id->trust_domain(), id->path());
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_EQ(*rebuilt, *id);
}

INSTANTIATE_TEST_SUITE_P(
    Standard, SpiffeIdValid,
    ::testing::Values(
        ValidCase{"spiffe://example.org", "example.org", ""},
        ValidCase{"spiffe://example.org/workload", "example.org", "/workload"},
        ValidCase{"spiffe://example.org/ns/prod/sa/web", "example.org", "/ns/prod/sa/web"},
        ValidCase{"spiffe://a-b_c.9/A-Z_a.z-0", "a-b_c.9", "/A-Z_a.z-0"},
        ValidCase{"spiffe://td/...", "td", "/..."},       // three dots is a name, not relative
        ValidCase{"spiffe://td/.hidden", "td", "/.hidden"},
        ValidCase{"spiffe://1.2.3.4/x", "1.2.3.4", "/x"},  // IP-like names are plain names
        ValidCase{"spiffe://td/spire/agent/join_token/8f1c", "td", "/spire/agent/join_token/8f1c"}));

struct InvalidCase {
  std::string id;
  std::string rule;  // a phrase the error message must contain
};

class SpiffeIdInvalid : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(SpiffeIdInvalid, IsRejectedNamingTheRule) {
  const InvalidCase& c = GetParam();
  auto id = SpiffeId::Parse(c.id);
  ASSERT_FALSE(id.ok()) << c.id << " was accepted";
  EXPECT_EQ(id.status().code(), Code::kInvalidArgument);
  EXPECT_NE(id.status().message().find(c.rule), std::string::npos)
      << c.id << " -> " << id.status().message() << " (expected to mention '" << c.rule << "')";
}

INSTANTIATE_TEST_SUITE_P(
    Standard, SpiffeIdInvalid,
    ::testing::Values(
        // scheme
        InvalidCase{"", "empty"},
        InvalidCase{"example.org/workload", "must start with \"spiffe://\""},
        InvalidCase{"http://example.org/workload", "scheme 'http'"},
        InvalidCase{"SPIFFE://example.org/workload", "lower case"},
        InvalidCase{"spiffe:/example.org", "must start with \"spiffe://\""},
        InvalidCase{"spiffe:example.org", "must start with \"spiffe://\""},
        // trust domain
        InvalidCase{"spiffe://", "empty trust domain"},
        InvalidCase{"spiffe:///path", "empty trust domain"},
        InvalidCase{"spiffe://Example.org/x", "upper-case letter 'E' at position 0"},
        InvalidCase{"spiffe://exa mple.org", "' ' at position 3"},
        InvalidCase{"spiffe://exa*mple.org", "'*' at position 3"},
        InvalidCase{"spiffe://example.org:8443/x", "port"},
        InvalidCase{"spiffe://user@example.org/x", "userinfo"},
        InvalidCase{"spiffe://user:pw@example.org/x", "userinfo"},  // the ':' is no port
        InvalidCase{"spiffe://example.org:8443", "port (':8443')"},
        InvalidCase{"spiffe://example.org:web/x", "':' at position 11"},
        InvalidCase{"spiffe://example.org?q=1", "query"},
        InvalidCase{"spiffe://example.org#frag", "fragment"},
        InvalidCase{"spiffe://exa%41mple.org", "percent-encoded"},
        InvalidCase{"spiffe://" + std::string(256, 'a'), "the maximum is 255"},
        // path
        InvalidCase{"spiffe://example.org/", "trailing '/'"},
        InvalidCase{"spiffe://example.org/a/", "trailing '/'"},
        InvalidCase{"spiffe://example.org//a", "empty segment"},
        InvalidCase{"spiffe://example.org/a//b", "empty segment"},
        InvalidCase{"spiffe://example.org/./a", "'.' segment"},
        InvalidCase{"spiffe://example.org/a/..", "'..' segment"},
        InvalidCase{"spiffe://example.org/a?b", "query"},
        InvalidCase{"spiffe://example.org/a#b", "fragment"},
        InvalidCase{"spiffe://example.org/a%20b", "percent-encoded"},
        InvalidCase{"spiffe://example.org/a b", "' ' at position 2"},
        InvalidCase{"spiffe://example.org/a:b", "':' at position 2"},
        InvalidCase{"spiffe://example.org/caf\xc3\xa9", "0xc3"},
        // length of the whole ID
        InvalidCase{"spiffe://td/" + std::string(2048, 'a'), "the maximum is 2048"}));

TEST(SpiffeId, LongestAllowedIdIsAccepted) {
  std::string id = "spiffe://td/" + std::string(kMaxSpiffeIdLength - 12, 'a');
  ASSERT_EQ(id.size(), kMaxSpiffeIdLength);
  EXPECT_TRUE(SpiffeId::Parse(id).ok());
  EXPECT_FALSE(SpiffeId::Parse(id + "a").ok());
  EXPECT_TRUE(TrustDomain::Parse(std::string(255, 'a')).ok());
}

TEST(TrustDomain, ParsesNameOrId) {
  auto a = TrustDomain::Parse("example.org");
  auto b = TrustDomain::Parse("spiffe://example.org");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->IdString(), "spiffe://example.org");

  auto with_path = TrustDomain::Parse("spiffe://example.org/x");
  ASSERT_FALSE(with_path.ok());
  EXPECT_NE(with_path.status().message().find("has a path"), std::string::npos);
  EXPECT_FALSE(TrustDomain::Parse("").ok());
  EXPECT_FALSE(TrustDomain::Parse("Example.org").ok());
  EXPECT_NE(TrustDomain::Parse("example.org:443").status().message().find("port (':443')"), std::string::npos);
  // An ID whose "//" is missing is named as that, not as a port.
  for (const char* text : {"spiffe:/example.org", "spiffe:example.org"}) {
    EXPECT_EQ(TrustDomain::Parse(text).status().message(),
              "'" + std::string(text) + "' is not a SPIFFE ID: one starts with \"spiffe://\"");
  }
}

TEST(SpiffeId, MembershipComparisonAndHashing) {
  auto td = *TrustDomain::Parse("example.org");
  auto other = *TrustDomain::Parse("other.org");
  auto a = *SpiffeId::Parse("spiffe://example.org/a");
  auto b = *SpiffeId::Parse("spiffe://example.org/b");
  EXPECT_TRUE(a.MemberOf(td));
  EXPECT_FALSE(a.MemberOf(other));
  EXPECT_LT(a, b);
  std::unordered_set<SpiffeId> set = {a, b, *SpiffeId::Parse("spiffe://example.org/a")};
  EXPECT_EQ(set.size(), 2u);
}

TEST(SpiffeId, FromPathChecksThePath) {
  auto td = *TrustDomain::Parse("example.org");
  EXPECT_EQ(SpiffeId::FromPath(td, "/x/y")->str(), "spiffe://example.org/x/y");
  EXPECT_EQ(SpiffeId::FromPath(td, "")->str(), "spiffe://example.org");
  EXPECT_FALSE(SpiffeId::FromPath(td, "x").ok());
  EXPECT_FALSE(SpiffeId::FromPath(td, "/x/").ok());
  EXPECT_FALSE(SpiffeId::FromPath(td, "/../x").ok());
}

}  // namespace
}  // namespace sigil

namespace sigil {
namespace {

TEST(TrustDomainTest, ZeroValueIsEmptyAndParsedOnesAreNot) {
  EXPECT_TRUE(TrustDomain().empty());
  EXPECT_FALSE(TrustDomain::Parse("example.org")->empty());
  EXPECT_NE(TrustDomain(), *TrustDomain::Parse("example.org"));
}

}  // namespace
}  // namespace sigil
