// Streams reset by the client, against a real agentd (and serverd): real clients that cancel
// their calls as they use them — the stock Python gRPC client (grpcio) and one on the gRPC C++
// library (grpc++) — must never be cut off, while a peer resetting streams in a tight loop
// before their answers still is (Http2ServerOptions::premature_resets_per_second).
//
// Before (commit e72463f), nghttp2's own reset limit (1,000 at once, then 33 a second, every
// reset counted) ended busy clients' connections: of grpcio's 100,000 calls 14 failed
// "UNAVAILABLE: Broken pipe", of the grpc++ client's 20,000 36 failed "14: GOAWAY received",
// and the tight loop was cut off only after 1,000 streams, with INTERNAL_ERROR.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/agentd/agent_server_fixture.h"
#include "tests/support/raw_http2.h"
#include "transport/http2_server.h"

namespace sigil::agentd::testing {
namespace {

using nlohmann::json;
using sigil::testing::Http2Frame;
using sigil::testing::Http2Frames;
using sigil::testing::RawClient;

// What agentd runs with when nobody set workload_api_limits:.
const transport::Http2ServerOptions kLimits{};

// Runs a client that makes `calls` calls and prints {"calls": n, "failed": k, ...}; expects
// every call made and none failed.
void ExpectNoCallLost(const char* client, const std::vector<std::string>& argv,
                      const sigil::testing::ProcessOptions& options, std::chrono::minutes timeout, int calls) {
  auto run = sigil::testing::RunProcess(argv, options, timeout);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->exit_code, 0) << run->err;
  const json report = json::parse(run->out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << run->out << run->err;
  std::cerr << client << ": " << report.dump() << "\n";
  EXPECT_EQ(report.value("calls", 0), calls);
  EXPECT_EQ(report.value("failed", -1), 0) << client << " lost calls: " << report.dump();
}

class StreamResetsTest : public AgentServerFixture {
 protected:
  void SetUp() override {
    AgentServerFixture::SetUp();
    ASSERT_NO_FATAL_FAILURE(StartServer());
    CreateEntry("/busy", ::getuid());
    ASSERT_NO_FATAL_FAILURE(StartAgent());
    ASSERT_FALSE(WaitForSvidSerial().empty()) << "the workload never received its identity";
  }
};

// grpcio's normal use: 100,000 calls on one channel, two of every three a stream whose first
// message is read before the stream is cancelled (RST_STREAM CANCEL once its answer arrived).
TEST_F(StreamResetsTest, AHundredThousandGrpcioCallsOnOneChannelWithCancelledStreamsLoseNone) {
  constexpr int kCalls = 100'000;
  ExpectNoCallLost("grpcio",
                   python_->Argv(agent_->socket_path().string(),
                                 {"calls", std::to_string(kCalls), "4", "spiffe://example.org/reset-test"}),
                   {}, std::chrono::minutes(8), kCalls);
}

// A grpc++ client reading the first FetchX509SVID message of each call and cancelling it, 32
// calls at a time on one channel.
TEST_F(StreamResetsTest, AGrpcppClientFetchingAndCancellingThirtyTwoCallsAtATimeLosesNone) {
  constexpr int kCalls = 20'000;
  const char* helper = std::getenv("SIGIL_GRPCPP_FETCH_AND_CANCEL");
  ASSERT_NE(helper, nullptr) << "SIGIL_GRPCPP_FETCH_AND_CANCEL names the grpc++ client";
  // The client is a tool of the test, not Sigil: gRPC's own threads are not built for the
  // sanitizers' runtimes (TSan reports its lock-free code, LSan its process-lifetime objects).
  sigil::testing::ProcessOptions options{
      .env = {{"TSAN_OPTIONS", "report_bugs=0"}, {"ASAN_OPTIONS", "detect_leaks=0"}}};
  ExpectNoCallLost("grpc++", {helper, agent_->socket_path().string(), "32", std::to_string(kCalls)}, options,
                   std::chrono::minutes(5), kCalls);
}

// The attack nghttp2's limit was for: a peer opening streams and resetting each in the same
// breath, so that the server starts requests nobody reads, unbounded by its stream limit. The
// connection ends with GOAWAY ENHANCE_YOUR_CALM after premature_reset_burst of them, and the
// same uid's workloads are served on their own connections.
TEST_F(StreamResetsTest, ATightLoopOfStreamsResetBeforeTheirAnswerIsCutOff) {
  constexpr uint32_t kStreams = 20'000;
  const std::string fetch = sigil::testing::Http2Headers({{":method", "POST"},
                                                          {":scheme", "http"},
                                                          {":path", "/SpiffeWorkloadAPI/FetchX509SVID"},
                                                          {":authority", "localhost"},
                                                          {"content-type", "application/grpc"},
                                                          {"te", "trailers"},
                                                          {"workload.spiffe.io", "true"}});
  const std::string empty_request("\0\0\0\0\0", 5);  // a gRPC frame of an empty X509SVIDRequest
  RawClient attacker = RawClient::Unix(agent_->socket_path().string());
  attacker.Send(sigil::testing::Http2ClientPreface());
  uint32_t sent = 0;
  constexpr uint32_t kBatch = 500;
  while (sent < kStreams) {
    std::string batch;
    for (uint32_t i = 0; i < kBatch; ++i, ++sent) {
      const uint32_t id = 2 * sent + 1;
      batch += Http2Frame(sigil::testing::kFrameHeaders, sigil::testing::kFlagEndHeaders, id, fetch);
      batch += Http2Frame(sigil::testing::kFrameData, sigil::testing::kFlagEndStream, id, empty_request);
      batch += sigil::testing::Http2RstStream(id, sigil::testing::kErrorCancel);
    }
    if (!attacker.TrySend(batch)) break;
  }
  ASSERT_TRUE(attacker.WaitForClose(std::chrono::seconds(20))) << "agentd never ended the connection";

  uint32_t goaway_code = 0;
  uint32_t last_stream = 0;
  bool goaway = false;
  for (const auto& frame : Http2Frames(attacker.received())) {
    if (frame.type == sigil::testing::kFrameGoaway) {
      goaway = true;
      last_stream = sigil::testing::Http2GoawayLastStream(frame);
      goaway_code = sigil::testing::Http2ErrorCode(frame);
    }
  }
  std::cerr << "sent " << sent << " streams, each reset at once; GOAWAY " << goaway_code << " after stream "
            << last_stream << "\n";
  ASSERT_TRUE(goaway) << "the connection closed without a GOAWAY";
  EXPECT_EQ(goaway_code, sigil::testing::kErrorEnhanceYourCalm);
  // Cut off near the burst: the streams after it were never started.
  EXPECT_LE((last_stream + 1) / 2, static_cast<uint32_t>(kLimits.premature_reset_burst) + kBatch)
      << "agentd took " << (last_stream + 1) / 2 << " streams before ending the connection";
  EXPECT_TRUE(sigil::testing::WaitUntil(
      [&] { return agent_->logs().find("premature_resets_per_second") != std::string::npos; }))
      << "agentd did not say why it ended the connection";

  json answer;
  EXPECT_FALSE(LeafSerial(FirstSvid(std::nullopt, &answer)).empty())
      << "the uid's workload was not served after its other connection was cut off: " << answer.dump();
}

}  // namespace
}  // namespace sigil::agentd::testing
