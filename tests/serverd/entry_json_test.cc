#include "serverd/admin/entry_json.h"

#include <gtest/gtest.h>

#include "serverd/admin/agent_json.h"

namespace sigil::serverd {
namespace {

RegistrationEntry Sample() {
  RegistrationEntry e;
  e.id = "b7c3a2d4-0000-4000-8000-000000000001";
  e.spiffe_id = "spiffe://example.org/web";
  e.parent_id = "spiffe://example.org/spire/agent/join_token/abc";
  e.selectors = {{"k8s", "pod-label:app:web"}, {"unix", "uid:1001"}};
  e.x509_svid_ttl = std::chrono::seconds(3600);
  e.jwt_svid_ttl = std::chrono::seconds(300);
  e.dns_names = {"web.example.org"};
  e.federates_with = {"other.org"};
  e.downstream = true;
  e.expires_at = 1900000000;
  e.hint = "external";
  e.revision = 7;
  e.created_at = 1763967600;
  return e;
}

TEST(EntryJsonTest, SpireShapeRoundTrips) {
  const nlohmann::json json = EntryToJson(Sample());
  EXPECT_EQ(json["spiffe_id"]["trust_domain"], "example.org");
  EXPECT_EQ(json["spiffe_id"]["path"], "/web");
  EXPECT_EQ(json["selectors"][0]["value"], "pod-label:app:web");
  EXPECT_EQ(json["revision_number"], "7");  // int64 as a string, as protobuf's JSON writes it
  auto back = EntryFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, Sample());
}

TEST(EntryJsonTest, ReadsSpiresOlderDataFiles) {
  auto entries = EntriesFromDataFile(R"({"entries": [
    {"selectors": [{"type": "unix", "value": "uid:1111"}],
     "spiffe_id": "spiffe://example.org/Blog",
     "parent_id": "spiffe://example.org/spire/agent/join_token/TokenBlog",
     "x509_svid_ttl": 200, "admin": false},
    {"selectors": ["unix:uid:2222"], "spiffe_id": "spiffe://example.org/db",
     "parent_id": "spiffe://example.org/host", "dns_names": ["db.example.org"]}
  ]})", "entries.json");
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].spiffe_id, "spiffe://example.org/Blog");
  EXPECT_EQ((*entries)[0].x509_svid_ttl, std::chrono::seconds(200));
  EXPECT_FALSE((*entries)[0].admin);
  EXPECT_EQ((*entries)[1].selectors[0].value, "uid:2222");
}

TEST(EntryJsonTest, BadFieldsAreNamedWithTheirPosition) {
  auto bad = EntriesFromDataFile(R"({"entries": [
    {"spiffe_id": "spiffe://example.org/a", "parent_id": "spiffe://example.org/p", "selectors": ["unix:uid:1"]},
    {"spiffe_id": 5, "x509_svid_ttl": "soon", "admin": "yes", "selectors": [{"type": 1}]}
  ]})", "entries.json");
  ASSERT_FALSE(bad.ok());
  const std::string m = bad.status().message();
  EXPECT_NE(m.find("entries[1].spiffe_id: expected a SPIFFE ID"), std::string::npos) << m;
  EXPECT_NE(m.find("entries[1].x509_svid_ttl: expected a whole number"), std::string::npos) << m;
  EXPECT_NE(m.find("entries[1].admin: expected true or false"), std::string::npos) << m;
  EXPECT_NE(m.find("entries[1].selectors:"), std::string::npos) << m;

  EXPECT_NE(EntriesFromDataFile("{not json", "f.json").status().message().find("not valid JSON"),
            std::string::npos);
  EXPECT_NE(EntriesFromDataFile("[]", "f.json").status().message().find("{\"entries\""), std::string::npos);
  EXPECT_FALSE(EntryFromJson(nlohmann::json::array()).ok());
}

// What `spire-server entry create -data` reads (its own field names) and what `entry show
// -output json` writes both read, with the entry's ID.
TEST(EntryJsonTest, ReadsSpiresDataFileNamesAndKeepsIds) {
  auto entries = EntriesFromDataFile(R"({"entries": [
    {"entry_id": "from-data", "entryExpiry": 1900000000, "selectors": ["unix:uid:1"],
     "spiffe_id": "spiffe://example.org/a", "parent_id": "spiffe://example.org/h", "store_svid": false},
    {"id": "from-show", "expires_at": "1900000001", "selectors": [{"type": "unix", "value": "uid:2"}],
     "spiffe_id": {"trust_domain": "example.org", "path": "/b"}, "parent_id": {"trust_domain": "example.org", "path": "/h"},
     "additional_attributes": null}
  ]})", "entries.json");
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  EXPECT_EQ((*entries)[0].id, "from-data");
  EXPECT_EQ((*entries)[0].expires_at, 1900000000);
  EXPECT_EQ((*entries)[1].id, "from-show");
  EXPECT_EQ((*entries)[1].expires_at, 1900000001);
}

TEST(EntryJsonTest, FieldsSigilHasNoBehaviourForAreRefusedWhenSet) {
  for (const UnsupportedEntryField& field : kUnsupportedEntryFields) {
    const std::string path = field.json_path;
    nlohmann::json entry{{"spiffe_id", "spiffe://example.org/a"}, {"parent_id", "spiffe://example.org/h"},
                         {"selectors", {"unix:uid:1"}}};
    if (path.starts_with("additional_attributes.")) {
      entry["additional_attributes"][path.substr(22)] = true;
    } else {
      entry[path] = true;
    }
    auto refused = EntryFromJson(entry);
    ASSERT_FALSE(refused.ok()) << path;
    EXPECT_EQ(refused.status().message(), "entry." + path + ": " + field.why);
    EXPECT_EQ(UnsupportedEntryFieldError(field, field.flag).message(), std::string(field.flag) + ": " + field.why);
  }
  EXPECT_NE(EntryFromJson({{"additional_attributes", 3}}).status().message().find("additional_attributes: expected an object"),
            std::string::npos);
}

TEST(EntryJsonTest, EntryFiltersReadSpiresFields) {
  auto filter = EntryFilterFromJson(nlohmann::json::parse(R"({"filter": {
    "by_federates_with": {"trust_domains": ["spiffe://other.org"], "match": "MATCH_EXACT"},
    "by_downstream": true, "by_hint": "internal",
    "by_selectors": {"selectors": [{"type": "unix", "value": "uid:1"}], "match": "MATCH_ANY"}}})"));
  ASSERT_TRUE(filter.ok()) << filter.status().ToString();
  EXPECT_EQ(filter->federates_with, (std::vector<std::string>{"spiffe://other.org"}));
  EXPECT_EQ(filter->federates_with_match, SelectorMatch::kExact);
  EXPECT_TRUE(filter->downstream_only);
  EXPECT_EQ(filter->hint, "internal");
  EXPECT_EQ(filter->match, SelectorMatch::kAny);
  RegistrationEntry e = Sample();
  e.hint = "internal";
  EXPECT_TRUE(EntryMatchesFilter(e, *filter) == false);  // federates with other.org, selectors do not match
  e.selectors = {{"unix", "uid:1"}};
  EXPECT_TRUE(EntryMatchesFilter(e, *filter));
  e.downstream = false;
  EXPECT_FALSE(EntryMatchesFilter(e, *filter));
  // SPIRE's by_downstream false filters nothing.
  EXPECT_FALSE(EntryFilterFromJson(nlohmann::json::parse(R"({"filter": {"by_downstream": false}})"))->downstream_only);
  auto bad = EntryFilterFromJson(nlohmann::json::parse(R"({"filter": {"by_federates_with": {"match": "MATCH_MOST"}}})"));
  EXPECT_NE(bad.status().message().find("filter.by_federates_with.match"), std::string::npos) << bad.status().ToString();
}

TEST(EntryJsonTest, AgentFiltersAndSpiresTimeLayout) {
  EXPECT_EQ(*ParseExpiresBefore("2026-12-05 10:00:00 +0000 +00"), 1796464800);
  EXPECT_EQ(*ParseExpiresBefore("2026-12-05 11:30:00 +0130 +01"), 1796464800);
  EXPECT_EQ(*ParseExpiresBefore("2026-12-05 05:00:00 -0500"), 1796464800);
  for (const char* bad : {"2026-12-05", "2026-12-05 10:00:00", "2026-13-05 10:00:00 +0000", "2026-12-05 10:00:00 +0000 +02",
                          "2026-12-05T10:00:00 +0000"}) {
    EXPECT_FALSE(ParseExpiresBefore(bad).ok()) << bad;
  }
  auto filter = AgentFilterFromJson(nlohmann::json::parse(R"({"filter": {"by_attestation_type": "tpm_devid",
    "by_banned": false, "by_can_reattest": true, "by_expires_before": "2026-12-05 10:00:00 +0000 +00",
    "by_selector_match": {"selectors": [{"type": "tpm_devid", "value": "subject:cn:a"}], "match": "MATCH_SUPERSET"}}})"));
  ASSERT_TRUE(filter.ok()) << filter.status().ToString();
  AttestedAgent agent{"spiffe://example.org/spire/agent/tpm_devid/a", "tpm_devid", "0a", 1796464799, false,
                      {{"tpm_devid", "subject:cn:a"}, {"tpm_devid", "issuer:cn:ca"}}, 0, 0};
  EXPECT_TRUE(AgentMatchesFilter(agent, *filter));
  agent.expires_at = 1796464800;
  EXPECT_FALSE(AgentMatchesFilter(agent, *filter));
  agent.expires_at = 1;
  agent.attestation_type = "join_token";
  EXPECT_FALSE(AgentMatchesFilter(agent, *filter));
  auto bad = AgentFilterFromJson(nlohmann::json::parse(R"({"filter": {"by_banned": "yes", "by_expires_before": "now"}})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("filter.by_banned: expected true or false"), std::string::npos);
  EXPECT_NE(bad.status().message().find("filter.by_expires_before: 'now' is not a time"), std::string::npos);
}

TEST(EntryJsonTest, AgentsRoundTrip) {
  AttestedAgent agent{"spiffe://example.org/spire/agent/join_token/abc", "join_token", "0a1b", 1900000000,
                      true, {{"join_token", "abc"}}, 1763967600, 0};
  auto back = AgentFromJson(AgentToJson(agent));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->spiffe_id, agent.spiffe_id);
  EXPECT_EQ(back->serial, "0a1b");
  EXPECT_TRUE(back->banned);
  EXPECT_EQ(back->selectors, agent.selectors);
  EXPECT_FALSE(AgentToJson(agent)["can_reattest"].get<bool>());  // a join token is spent once
  agent.attestation_type = "tpm_devid";
  EXPECT_TRUE(AgentToJson(agent)["can_reattest"].get<bool>());
}

}  // namespace
}  // namespace sigil::serverd
