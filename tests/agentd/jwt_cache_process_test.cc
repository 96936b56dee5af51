// FetchJWTSVID from a caller choosing its own audiences, against a real serverd and agentd:
// the agent keeps at most jwt_svid_cache_max_size JWT-SVIDs, dropping the least recently used,
// and refuses audience lists over the bounds of core/jwt_svid.h itself, without asking serverd.
#include <unistd.h>

#include <string>
#include <vector>

#include "core/jwt_svid.h"
#include "tests/agentd/agent_server_fixture.h"

namespace sigil::agentd::testing {
namespace {

using nlohmann::json;

constexpr int kCacheSize = 100;
const std::string kWorkload = "spiffe://example.org/jwt-client";

class JwtCacheProcessTest : public AgentServerFixture {
 protected:
  void SetUp() override {
    AgentServerFixture::SetUp();
    ASSERT_NO_FATAL_FAILURE(StartServer());
    ASSERT_NO_FATAL_FAILURE(StartAgent("  jwt_svid_cache_max_size: " + std::to_string(kCacheSize) + "\n"));
    CreateEntry("/jwt-client", ::getuid());
    ASSERT_FALSE(WaitForSvidSerial().empty()) << "the workload never received its identity";
  }

  // The tokens for audiences "aud-<i>", first <= i < end, asked one call each.
  std::vector<std::string> TokensFor(int first, int end) {
    json answer = Python({"jwt-each", kWorkload, "aud-", std::to_string(first), std::to_string(end)});
    EXPECT_FALSE(answer.contains("code")) << answer.dump().substr(0, 2000);
    std::vector<std::string> tokens;
    for (int i = first; i < end; ++i) tokens.push_back(answer["tokens"].value(std::to_string(i), ""));
    return tokens;
  }
};

TEST_F(JwtCacheProcessTest, ThreeThousandAudiencesLeaveOnlyTheLastHundredCached) {
  const std::vector<std::string> first_pass = TokensFor(0, 3000);
  ASSERT_EQ(first_pass.size(), 3000u);
  for (const std::string& token : first_pass) ASSERT_FALSE(token.empty());

  // The hundred asked last are still held: asked again, they come back unchanged.
  const std::vector<std::string> newest = TokensFor(2900, 3000);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(newest[i], first_pass[2900 + i]) << "aud-" << 2900 + i << " was not kept";
  // Only those: the one before them was dropped and is signed anew (ECDSA signatures differ).
  const std::vector<std::string> dropped = TokensFor(2899, 2900);
  EXPECT_NE(dropped[0], first_pass[2899]) << "a 101st JWT-SVID was kept";
  const std::vector<std::string> oldest = TokensFor(0, 1);
  EXPECT_NE(oldest[0], first_pass[0]) << "the first JWT-SVID is still cached after 3000 others";
}

TEST_F(JwtCacheProcessTest, OverBoundAudiencesAreRefusedByTheAgentItself) {
  std::vector<std::string> too_many = {"jwt", kWorkload};
  for (size_t i = 0; i <= kMaxJwtAudiences; ++i) too_many.push_back("aud-" + std::to_string(i));
  const std::vector<std::string> too_long = {"jwt", kWorkload, std::string(kMaxJwtAudienceBytes + 1, 'a')};
  const std::string many = std::to_string(kMaxJwtAudiences + 1) + " audiences; at most " +
                           std::to_string(kMaxJwtAudiences);
  const std::string length = std::to_string(kMaxJwtAudienceBytes + 1) + " bytes; at most " +
                             std::to_string(kMaxJwtAudienceBytes);

  // With serverd gone, only the agent can answer: a good request cannot be signed, and the
  // over-bound ones are refused for what they are, as they are with serverd up.
  server_->Stop();
  json unsignable = Python({"jwt", kWorkload, "fresh-audience"});
  EXPECT_EQ(unsignable.value("code", ""), "UNAVAILABLE") << unsignable.dump();

  json refused_count = Python(too_many);
  EXPECT_EQ(refused_count.value("code", ""), "INVALID_ARGUMENT") << refused_count.dump();
  EXPECT_NE(refused_count.value("details", "").find(many), std::string::npos) << refused_count.dump();
  json refused_length = Python(too_long);
  EXPECT_EQ(refused_length.value("code", ""), "INVALID_ARGUMENT") << refused_length.dump();
  EXPECT_NE(refused_length.value("details", "").find(length), std::string::npos) << refused_length.dump();
}

}  // namespace
}  // namespace sigil::agentd::testing
