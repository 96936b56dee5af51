// agentd's reading of serverd's answers, from bytes built as serverd builds them: times at the
// ends of int64 seconds saturate at the clock's ends rather than wrap.
#include <gtest/gtest.h>

#include <limits>

#include "agentd/sync/server_client.h"
#include "core/wire/convert.h"
#include "core/x509_ca.h"

namespace sigil::agentd {
namespace {

Bytes JwtSvidResponseMessage(int64_t expires_at) {
  flatbuffers::FlatBufferBuilder builder(256);
  auto outcome = wire::BuildOutcome(builder, Status::Ok());
  auto token = builder.CreateString("header.claims.signature");
  return wire::FinishMessage(builder, wire::CreateJwtSvidResponse(builder, outcome, token, expires_at));
}

TEST(ServerAnswersTest, AJwtSvidExpiryIsReadInUnixSeconds) {
  auto answer = JwtAnswerFromMessage(JwtSvidResponseMessage(1'800'000'000));
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(answer->token, "header.claims.signature");
  EXPECT_EQ(UnixSeconds(answer->expires_at), 1'800'000'000);
}

TEST(ServerAnswersTest, AJwtSvidExpiryAtTheEndsOfInt64SaturatesInsteadOfWrapping) {
  // Seconds past what nanoseconds hold wrapped: INT64_MAX seconds became a time before 1970,
  // and the agent treated a JWT-SVID valid for ever as expired.
  auto far_future = JwtAnswerFromMessage(JwtSvidResponseMessage(std::numeric_limits<int64_t>::max()));
  ASSERT_TRUE(far_future.ok()) << far_future.status().ToString();
  EXPECT_EQ(far_future->expires_at, std::chrono::system_clock::time_point::max());

  auto far_past = JwtAnswerFromMessage(JwtSvidResponseMessage(std::numeric_limits<int64_t>::min()));
  ASSERT_TRUE(far_past.ok()) << far_past.status().ToString();
  EXPECT_EQ(far_past->expires_at, std::chrono::system_clock::time_point::min());
}

}  // namespace
}  // namespace sigil::agentd
