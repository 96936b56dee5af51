#include "core/registration_entry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

namespace sigil {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const TrustDomain kTd = *TrustDomain::Parse("example.org");

RegistrationEntry ValidEntry() {
  RegistrationEntry e;
  e.spiffe_id = "spiffe://example.org/web";
  e.parent_id = "spiffe://example.org/spire/agent/join_token/abc";
  e.selectors = {*Selector::Parse("unix:uid:1001")};
  e.x509_svid_ttl = std::chrono::seconds(3600);
  e.dns_names = {"web.example.org", "*.web.example.org"};
  e.federates_with = {"spiffe://partner.org", "other.org"};
  e.hint = "internal";
  return e;
}

TEST(RegistrationEntry, ValidEntryHasNoProblems) {
  EXPECT_THAT(ValidEntry().Problems(kTd), IsEmpty());
  EXPECT_TRUE(ValidEntry().Validate(kTd).ok());
}

TEST(RegistrationEntry, ReportsEveryProblemAtOnceEachNamingItsField) {
  RegistrationEntry e;
  e.spiffe_id = "spiffe://Example.org/web";
  e.parent_id = "spiffe://other.org/agent";
  e.x509_svid_ttl = std::chrono::seconds(-1);
  e.jwt_svid_ttl = std::chrono::seconds(-5);
  e.dns_names = {"-bad.example.org"};
  e.federates_with = {"example.org"};
  auto problems = e.Problems(kTd);
  EXPECT_THAT(problems,
              ElementsAre(HasSubstr("spiffe_id: trust domain has an upper-case letter"),
                          HasSubstr("parent_id: 'spiffe://other.org/agent' is not in trust domain example.org"),
                          HasSubstr("selectors: at least one selector is required"),
                          HasSubstr("x509_svid_ttl: must not be negative, got -1"),
                          HasSubstr("jwt_svid_ttl: must not be negative, got -5"),
                          HasSubstr("dns_names: DNS name '-bad.example.org' has a label starting"),
                          HasSubstr("federates_with: 'example.org' is this server's own trust domain")));
  Status s = e.Validate(kTd);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("entry is invalid: spiffe_id:"));
  EXPECT_THAT(s.message(), HasSubstr("; federates_with:"));
}

TEST(RegistrationEntry, TtlsBeyondAYearAreProblemsNamingTheField) {
  RegistrationEntry e = ValidEntry();
  e.x509_svid_ttl = std::chrono::seconds(std::numeric_limits<int64_t>::max());
  e.jwt_svid_ttl = kMaxSvidTtl + std::chrono::seconds(1);
  EXPECT_THAT(e.Problems(kTd),
              ElementsAre(HasSubstr("x509_svid_ttl: must be at most 31536000 seconds (a year), got 9223372036854775807"),
                          HasSubstr("jwt_svid_ttl: must be at most 31536000 seconds (a year), got 31536001")));
  e.x509_svid_ttl = kMaxSvidTtl;
  e.jwt_svid_ttl = kMaxSvidTtl;
  EXPECT_THAT(e.Problems(kTd), IsEmpty());
}

TEST(RegistrationEntry, SpiffeIdMustBeAWorkloadIdInTheServersTrustDomain) {
  struct Case {
    std::string id;
    std::string problem;
  };
  for (const Case& c : {Case{"spiffe://other.org/web", "not in trust domain example.org"},
                        Case{"spiffe://example.org", "is the trust domain itself"},
                        Case{"spiffe://example.org/spire/agent/x", "reserved"},
                        Case{"spiffe://example.org/web/", "trailing '/'"},
                        Case{"web", "must start with \"spiffe://\""}}) {
    RegistrationEntry e = ValidEntry();
    e.spiffe_id = c.id;
    EXPECT_THAT(e.Problems(kTd), ElementsAre(HasSubstr(c.problem))) << c.id;
  }
}

TEST(RegistrationEntry, SelectorsAreCheckedAndDeduplicatedIntoASet) {
  RegistrationEntry e = ValidEntry();
  e.selectors.push_back(Selector{"unix", ""});
  EXPECT_THAT(e.Problems(kTd), ElementsAre(HasSubstr("selectors: selector 'unix:' has an empty value")));
  e.selectors = {*Selector::Parse("unix:uid:1"), *Selector::Parse("unix:uid:1")};
  EXPECT_EQ(e.selector_set().size(), 1u);
}

TEST(RegistrationEntry, DuplicateDnsNamesAndLongHintsAreProblems) {
  RegistrationEntry e = ValidEntry();
  e.dns_names = {"a.example.org", "a.example.org"};
  e.hint = std::string(kMaxHintLength + 1, 'h');
  EXPECT_THAT(e.Problems(kTd), ElementsAre(HasSubstr("listed twice"), HasSubstr("hint: is longer")));
}

TEST(ValidateDnsName, FollowsRfc1123WithLeadingWildcard) {
  for (const std::string& ok : std::vector<std::string>{"a", "web", "web.example.org", "WEB.Example.ORG", "x-1.y2", "*.example.org",
                         std::string(63, 'a') + ".org"}) {
    EXPECT_TRUE(ValidateDnsName(ok).ok()) << ok;
  }
  struct Case {
    std::string name;
    std::string reason;
  };
  for (const Case& c : {Case{"", "empty"}, Case{"a..b", "empty label"}, Case{"a.", "empty label"},
                        Case{"-a.org", "starting or ending with '-'"},
                        Case{"a-.org", "starting or ending with '-'"},
                        Case{"a_b.org", "'_'"}, Case{"a b", "' '"},
                        Case{"*.", "nothing after the wildcard"}, Case{"*", "wildcard that is not"},
                        Case{"a.*.org", "wildcard"}, Case{"*a.org", "wildcard"},
                        Case{std::string(64, 'a') + ".org", "longer than 63"},
                        Case{std::string(250, 'a') + ".org", "longer than 253"}}) {
    Status s = ValidateDnsName(c.name);
    ASSERT_FALSE(s.ok()) << c.name;
    EXPECT_THAT(s.message(), HasSubstr(c.reason)) << c.name;
  }
}

}  // namespace
}  // namespace sigil
