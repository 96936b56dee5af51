#include "serverd/admin/entry_json.h"

#include <gtest/gtest.h>

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
  e.admin = true;
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
     "x509_svid_ttl": 200, "admin": true},
    {"selectors": ["unix:uid:2222"], "spiffe_id": "spiffe://example.org/db",
     "parent_id": "spiffe://example.org/host", "dns_names": ["db.example.org"]}
  ]})", "entries.json");
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].spiffe_id, "spiffe://example.org/Blog");
  EXPECT_EQ((*entries)[0].x509_svid_ttl, std::chrono::seconds(200));
  EXPECT_TRUE((*entries)[0].admin);
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

TEST(EntryJsonTest, AgentsRoundTrip) {
  AttestedAgent agent{"spiffe://example.org/spire/agent/join_token/abc", "join_token", "0a1b", 1900000000,
                      true, {{"join_token", "abc"}}, 1763967600, 0};
  auto back = AgentFromJson(AgentToJson(agent));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->spiffe_id, agent.spiffe_id);
  EXPECT_EQ(back->serial, "0a1b");
  EXPECT_TRUE(back->banned);
  EXPECT_EQ(back->selectors, agent.selectors);
}

}  // namespace
}  // namespace sigil::serverd
