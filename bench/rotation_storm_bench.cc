// Scenario 4: the rotation storm — an agent with 5,000 entries (--quick: 1,000), from a cold
// start until every SVID is in its cache, then a forced rotation of all of them (every entry's
// X.509 TTL changed at serverd, so every SVID must be signed again).
//
//   build-bench/bench/rotation_storm_bench [--quick]
//
// serverd (BenchServer) and the agent (agentd's own Agent class, as `agentd run` runs it) share
// this process so the cache can be watched directly; the CPU figure is therefore the process's,
// server and agent together, per SVID.
#include <sys/resource.h>

#include <cstdio>
#include <thread>

#include "agentd/agent.h"
#include "bench/bench_report.h"
#include "bench/bench_server.h"
#include "serverd/admin/entry_json.h"
#include "tests/support/process.h"

namespace sigil::bench {
namespace {

using Clock = std::chrono::steady_clock;

double CpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Waits until `count` SVIDs in the cache satisfy `done`; returns the seconds it took.
Result<double> WaitForSvids(agentd::Agent& agent, size_t count, Clock::time_point start,
                            const std::function<bool(const agentd::WorkloadX509Svid&)>& done) {
  while (Clock::now() - start < std::chrono::minutes(5)) {
    auto snapshot = agent.cache().snapshot();
    size_t ready = 0;
    for (const auto& [id, cached] : *snapshot->entries) ready += cached.svid && done(*cached.svid) ? 1 : 0;
    if (ready >= count) return std::chrono::duration<double>(Clock::now() - start).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return DeadlineExceededError("the agent's cache never held " + std::to_string(count) + " SVIDs");
}

Status Run(bool quick, Report& report) {
  const size_t entries = quick ? 1000 : 5000;
  testing::TempDir dir("sigil-rotation-bench");
  SIGIL_ASSIGN_OR_RETURN(auto server, BenchServer::Start({}, dir.path()));
  SIGIL_ASSIGN_OR_RETURN(std::string token, server->NewJoinToken());
  SIGIL_ASSIGN_OR_RETURN(X509Bundle bundle, server->Bundle());
  SIGIL_ASSIGN_OR_RETURN(std::string pem, X509BundleToPem(bundle));
  testing::WriteFile(dir.path() / "bundle.pem", pem);
  const std::string agent_id = "spiffe://" + server->trust_domain().name() + "/spire/agent/join_token/" + token;

  std::vector<RegistrationEntry> batch;
  for (size_t i = 0; i < entries; ++i) {
    batch.push_back(WorkloadEntry(server->trust_domain(), "storm/workload" + std::to_string(i), agent_id));
  }
  std::fprintf(stderr, "rotation_storm: creating %zu entries, load %s\n", entries, LoadAverage().c_str());
  SIGIL_ASSIGN_OR_RETURN(std::vector<std::string> ids, server->CreateEntries(batch));

  agentd::AgentConfig config;
  config.trust_domain = server->trust_domain();
  config.server_port = server->agent_port();
  config.socket_path = dir.path() / "agent" / "api.sock";
  config.data_dir = dir.path() / "agent-data";
  config.trust_bundle_path = dir.path() / "bundle.pem";
  config.join_token = token;
  agentd::Agent agent(config);

  std::fprintf(stderr, "rotation_storm: cold start, load %s\n", LoadAverage().c_str());
  double cpu_before = CpuSeconds();
  const auto cold_start = Clock::now();
  SIGIL_RETURN_IF_ERROR(agent.Start());
  SIGIL_ASSIGN_OR_RETURN(double cold_seconds,
                         WaitForSvids(agent, entries, cold_start, [](const auto&) { return true; }));
  report.Metric("cold_start/seconds", cold_seconds, "s", false);
  report.Detail("cold_start/svids_per_s", static_cast<double>(entries) / cold_seconds, "1/s");
  report.Detail("cold_start/process_cpu_per_svid_us", (CpuSeconds() - cpu_before) * 1e6 / entries, "us");

  // Every entry's TTL changes: each SVID was issued for an older shape and must be replaced.
  const auto new_ttl = std::chrono::seconds(7200);
  std::fprintf(stderr, "rotation_storm: forced rotation, load %s\n", LoadAverage().c_str());
  cpu_before = CpuSeconds();
  const auto rotation_start = Clock::now();
  constexpr size_t kAdminBatch = 1000;
  for (size_t start = 0; start < entries; start += kAdminBatch) {
    nlohmann::json update = nlohmann::json::array();
    for (size_t i = start; i < std::min(entries, start + kAdminBatch); ++i) {
      RegistrationEntry entry = batch[i];
      entry.id = ids[i];
      entry.x509_svid_ttl = new_ttl;
      update.push_back(serverd::EntryToJson(entry));
    }
    SIGIL_RETURN_IF_ERROR(server->admin().Call("/v1/entry/BatchUpdateEntry", {{"entries", update}}).status());
  }
  SIGIL_ASSIGN_OR_RETURN(double rotation_seconds,
                         WaitForSvids(agent, entries, rotation_start,
                                      [&](const agentd::WorkloadX509Svid& svid) { return svid.issued_for->x509_svid_ttl == new_ttl; }));
  report.Metric("forced_rotation/seconds", rotation_seconds, "s", false);
  report.Detail("forced_rotation/svids_per_s", static_cast<double>(entries) / rotation_seconds, "1/s");
  report.Detail("forced_rotation/process_cpu_per_svid_us", (CpuSeconds() - cpu_before) * 1e6 / entries, "us");
  agent.Stop();
  return Status::Ok();
}

}  // namespace
}  // namespace sigil::bench

int main(int argc, char** argv) {
  return sigil::bench::ScenarioMain(argc, argv, "rotation_storm", sigil::bench::Run);
}
