#include "core/call_metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace sigil {
namespace {

TEST(CallMetricsTest, CountsByStatusAndTimesInMillisecondsAsSpireNamesThem) {
  MetricsRegistry registry;
  CallCounter calls(&registry, "spire_agent_rpc_workload_api_fetch_x509svid",
                    "FetchX509SVID calls");
  calls.Record(Code::kOk, std::chrono::microseconds(300));
  calls.Record(Code::kOk, std::chrono::milliseconds(3));
  calls.Record(Code::kPermissionDenied, std::chrono::milliseconds(1));
  const std::string text = registry.Render();
  EXPECT_NE(text.find("# TYPE spire_agent_rpc_workload_api_fetch_x509svid counter\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("spire_agent_rpc_workload_api_fetch_x509svid{status=\"OK\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("spire_agent_rpc_workload_api_fetch_x509svid{status=\"PermissionDenied\"} 1\n"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find("# TYPE spire_agent_rpc_workload_api_fetch_x509svid_elapsed_time histogram\n"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          "spire_agent_rpc_workload_api_fetch_x509svid_elapsed_time_count{status=\"OK\"} 2\n"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          "spire_agent_rpc_workload_api_fetch_x509svid_elapsed_time_sum{status=\"OK\"} 3.3\n"),
      std::string::npos)
      << text;
  // Only the statuses seen are exported, as SPIRE's.
  EXPECT_EQ(text.find("Unavailable"), std::string::npos) << text;
}

TEST(CallMetricsTest, GoSpellingsOfEveryCode) {
  EXPECT_EQ(SpireStatusName(Code::kOk), "OK");
  EXPECT_EQ(SpireStatusName(Code::kCancelled), "Canceled");
  EXPECT_EQ(SpireStatusName(Code::kResourceExhausted), "ResourceExhausted");
  EXPECT_EQ(SpireStatusName(Code::kUnauthenticated), "Unauthenticated");
}

TEST(CallMetricsTest, ConcurrentFirstCallsOfOneStatusCountOnce) {
  MetricsRegistry registry;
  CallCounter calls(&registry, "calls", "calls");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) calls.Record(Code::kUnavailable, std::chrono::microseconds(1));
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_NE(registry.Render().find("calls{status=\"Unavailable\"} 4000\n"), std::string::npos)
      << registry.Render();
}

}  // namespace
}  // namespace sigil
