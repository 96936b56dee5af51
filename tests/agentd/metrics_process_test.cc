// Both daemons' /metrics with real processes: a real serverd (CA key in SoftHSM2) and agentd,
// a workload on the Python gRPC client. The counters of a workload fetch, an agent-API signing
// batch and a rotation of the agent's and the workload's SVIDs move between scrapes, and
// Debian's promtool reads both scrapes.
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <sstream>

#include "tests/agentd/agent_server_fixture.h"

namespace sigil::agentd::testing {
namespace {

using sigil::testing::FreeLoopbackPort;
using sigil::testing::RunProcess;
using sigil::testing::WaitUntil;

std::string Scrape(int port) {
  auto out = RunProcess(
      {"curl", "-sS", "--max-time", "5", "http://127.0.0.1:" + std::to_string(port) + "/metrics"});
  EXPECT_TRUE(out.ok() && out->exit_code == 0) << (out.ok() ? out->err : out.status().ToString());
  return out.ok() ? out->out : "";
}

// The sum of every series of `name` (any labels), or of the one series `name{labels}`; -1 when
// none is in `text`.
double Value(const std::string& text, const std::string& series) {
  const bool whole_family = series.find('{') == std::string::npos;
  double sum = -1;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    const std::string key = line.substr(0, space);
    const std::string name = key.substr(0, key.find('{'));
    if (whole_family ? name != series : key != series) continue;
    sum = (sum < 0 ? 0 : sum) + std::strtod(line.c_str() + space + 1, nullptr);
  }
  return sum;
}

// Only the families whose name starts with `prefix`, HELP and TYPE lines included.
std::string FamiliesStartingWith(const std::string& text, const std::string& prefix) {
  std::string out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const std::string name =
        line.starts_with("# ") ? line.substr(7) : line;  // "# HELP " and "# TYPE " alike
    if (name.starts_with(prefix)) out += line + "\n";
  }
  return out;
}

struct Promtool {
  int exit_code = -1;
  std::vector<std::string> problems;  // one per line of its output
};

Promtool CheckMetrics(const std::string& text) {
  auto out = RunProcess({"promtool", "check", "metrics"}, {.stdin_data = text});
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  Promtool result;
  if (!out.ok()) return result;
  result.exit_code = out->exit_code;
  std::istringstream lines(out->out + out->err);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) result.problems.push_back(line);
  }
  return result;
}

// SPIRE's names break two of Prometheus's naming conventions, and are kept so that SPIRE's
// dashboards and alerts read Sigil: its counters have no _total suffix, and its uptime is
// uptime_in_ms. promtool says so of each, and of nothing else.
bool IsSpireNamingConvention(const std::string& problem) {
  if (!problem.starts_with("spire_")) return false;
  return problem.ends_with(" counter metrics should have \"_total\" suffix") ||
         problem.ends_with("_uptime_in_ms metric names should not contain abbreviated units");
}

void ExpectPromtoolAccepts(const std::string& text, const std::string& daemon) {
  // Sigil's own names follow the conventions: not one problem.
  const std::string own = FamiliesStartingWith(text, "sigil_");
  ASSERT_FALSE(own.empty()) << daemon << " exports none of Sigil's own metrics:\n" << text;
  const Promtool strict = CheckMetrics(own);
  EXPECT_EQ(strict.exit_code, 0) << daemon;
  EXPECT_TRUE(strict.problems.empty())
      << daemon << ": " << ::testing::PrintToString(strict.problems);
  // The whole scrape parses (exit code 1 is a parse error; 3 is lint only), and every problem
  // is one of SPIRE's names.
  const Promtool whole = CheckMetrics(text);
  EXPECT_TRUE(whole.exit_code == 0 || whole.exit_code == 3)
      << daemon << " exit " << whole.exit_code << ": " << ::testing::PrintToString(whole.problems);
  for (const std::string& problem : whole.problems) {
    EXPECT_TRUE(IsSpireNamingConvention(problem)) << daemon << ": " << problem;
  }
}

class MetricsProcessTest : public AgentServerFixture {
 protected:
  void SetUp() override {
    AgentServerFixture::SetUp();
    server_metrics_ = FreeLoopbackPort();
    agent_metrics_ = FreeLoopbackPort();
    // Agent and workload SVIDs of 20 s: both are renewed at half-life, within the test.
    StartServer({.default_x509_svid_ttl = "20s",
                 .top_level_yaml = "telemetry:\n  prometheus: {port: " +
                                   std::to_string(server_metrics_) + "}\n"});
    StartAgent("", "telemetry:\n  prometheus: {port: " + std::to_string(agent_metrics_) + "}\n");
  }

  int server_metrics_ = 0;
  int agent_metrics_ = 0;
};

TEST_F(MetricsProcessTest, CountersMoveWithAFetchASigningBatchAndARotation) {
  const std::string server_before = Scrape(server_metrics_);
  const std::string agent_before = Scrape(agent_metrics_);
  // The gauges every SPIRE daemon exports.
  EXPECT_GT(Value(server_before, "spire_server_uptime_in_ms"), 0) << server_before;
  EXPECT_GT(Value(agent_before, "spire_agent_uptime_in_ms"), 0) << agent_before;
  EXPECT_NE(server_before.find("spire_server_started{version=\""), std::string::npos)
      << server_before;
  EXPECT_NE(agent_before.find("trust_domain_id=\"example.org\"} 1\n"), std::string::npos)
      << agent_before;
  // The agent attested once and holds the server's CA expiry.
  EXPECT_EQ(Value(server_before, "spire_server_rpc_agent_v1_agent_attest_agent{status=\"OK\"}"), 1)
      << server_before;
  EXPECT_EQ(Value(agent_before, "spire_agent_node_attestor_new_svid{status=\"OK\"}"), 1)
      << agent_before;
  EXPECT_GT(
      Value(server_before,
            "spire_server_manager_x509_ca_rotate_expiration{trust_domain_id=\"example.org\"}"),
      static_cast<double>(::time(nullptr)));
  EXPECT_GE(
      Value(server_before,
            "sigil_server_datastore_latency_seconds_count{operation=\"RecordAttestedAgent\"}"),
      1)
      << server_before;
  EXPECT_GT(Value(server_before, "sigil_server_ca_expiry_timestamp_seconds{authority=\"jwt_key\"}"),
            static_cast<double>(::time(nullptr)));

  // An entry for this process: the agent has its SVID signed in one batch, and the workload
  // fetches it.
  ASSERT_FALSE(CreateEntry("/metrics", ::getuid()).empty());
  ASSERT_FALSE(WaitForSvidSerial().empty());
  const std::string server_fetched = Scrape(server_metrics_);
  const std::string agent_fetched = Scrape(agent_metrics_);
  const char* batches = "spire_server_rpc_svid_v1_svid_batch_new_x509svid{status=\"OK\"}";
  EXPECT_GE(Value(server_fetched, batches), 1) << server_fetched;
  EXPECT_GT(Value(server_fetched, "spire_server_server_ca_sign_x509_svid"),
            Value(server_before, "spire_server_server_ca_sign_x509_svid"));
  EXPECT_GT(Value(server_fetched, "sigil_server_signing_items_total{key_store=\"pkcs11\"}"),
            Value(server_before, "sigil_server_signing_items_total{key_store=\"pkcs11\"}"))
      << server_fetched;
  EXPECT_GE(Value(server_fetched,
                  "sigil_server_agent_api_calls_total{service=\"svid_signing\",method="
                  "\"SignCsrBatch\",status=\"OK\"}"),
            1);
  EXPECT_GT(Value(agent_fetched, "spire_agent_manager_sync_fetch_svids_updates"),
            Value(agent_before, "spire_agent_manager_sync_fetch_svids_updates"));
  EXPECT_GE(Value(agent_fetched, "sigil_agent_svids_rotated_total"), 1);
  EXPECT_EQ(Value(agent_fetched, "sigil_agent_cached_x509_svids"), 1);
  // The fetch: a stream the client cancels once it has its SVID, as SPIRE counts it.
  EXPECT_GT(Value(agent_fetched, "spire_agent_rpc_workload_api_fetch_x509svid"),
            Value(agent_before, "spire_agent_rpc_workload_api_fetch_x509svid"))
      << agent_fetched;
  EXPECT_GE(Value(agent_fetched,
                  "sigil_agent_workload_api_fetch_latency_seconds_count{method=\"FetchX509SVID\"}"),
            1);
  EXPECT_GT(Value(agent_fetched, "spire_agent_workload_api_connection"),
            Value(agent_before, "spire_agent_workload_api_connection"));
  // The Python client cancels the stream once it has its first message.
  EXPECT_GE(Value(agent_fetched,
                  "sigil_agent_workload_api_calls_total{method=\"FetchX509SVID\",status=\"Canceled\"}"),
            1)
      << agent_fetched;

  // At half of their life (backdated, so within seconds) the agent renews its own SVID and
  // has the workload's signed again.
  const double signed_before = Value(agent_fetched, "sigil_agent_svids_rotated_total");
  std::string server_rotated;
  std::string agent_rotated;
  EXPECT_TRUE(WaitUntil(
      [&] {
        server_rotated = Scrape(server_metrics_);
        agent_rotated = Scrape(agent_metrics_);
        return Value(agent_rotated, "spire_agent_agent_svid_rotate{status=\"OK\"}") >= 1 &&
               Value(agent_rotated, "sigil_agent_svids_rotated_total") > signed_before &&
               Value(server_rotated,
                     "spire_server_rpc_agent_v1_agent_renew_agent{status=\"OK\"}") >= 1;
      },
      std::chrono::seconds(30)))
      << agent_rotated << server_rotated;
  EXPECT_GE(Value(server_rotated,
                  "spire_server_rpc_agent_v1_agent_renew_agent_elapsed_time_count{status=\"OK\"}"),
            1);
  EXPECT_GT(Value(agent_rotated, "spire_agent_uptime_in_ms"),
            Value(agent_before, "spire_agent_uptime_in_ms"));

  ExpectPromtoolAccepts(server_rotated, "serverd");
  ExpectPromtoolAccepts(agent_rotated, "agentd");
}

TEST_F(MetricsProcessTest, TheListenerTakesOnlyGetAndKnowsOnlyMetrics) {
  const std::string url = "http://127.0.0.1:" + std::to_string(agent_metrics_);
  auto missing = RunProcess({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url + "/nope"});
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->out, "404");
  auto post = RunProcess(
      {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", url + "/metrics"});
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->out, "405");
  auto head = RunProcess({"curl", "-s", "-D", "-", "-o", "/dev/null", url + "/metrics"});
  ASSERT_TRUE(head.ok());
  EXPECT_NE(head->out.find("Content-Type: text/plain; version=0.0.4"), std::string::npos)
      << head->out;
}

}  // namespace
}  // namespace sigil::agentd::testing
