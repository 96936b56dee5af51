// Scenario 8: serverd replicas on one PostgreSQL. First, from an entry's creation at replica a
// (the admin call's start) to the new SVID reaching a workload that watches
// FetchX509SVID on a real agentd attached to replica b: p50 and p99 over many entries, the
// change crossing replicas by PostgreSQL's notification. Then batched signing (SignCsrBatch of
// 64) with two replicas against one, on the same machine in the same run, the same agents
// spread over the replicas; the one-replica rate is the two-replica figure's ceiling.
//
//   build-bench/bench/replicas_bench [--quick]
#include <algorithm>
#include <cstdio>

#include "bench/agentd_env.h"
#include "bench/bench_report.h"
#include "bench/signing_load.h"
#include "bench/workload_watcher.h"
#include "tests/support/postgres.h"

namespace sigil::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Replica `name`'s options on `database`: its own key store (soft, in memory) and folder.
BenchServerOptions Replica(const std::string& database, const std::string& name) {
  BenchServerOptions options;
  options.postgres_connection_string = database;
  options.replica_name = name;
  return options;
}

Status RunPropagation(bool quick, testing::Postgres& postgres, const std::filesystem::path& dir, Report& report) {
  SIGIL_ASSIGN_OR_RETURN(std::string database, postgres.CreateDatabase("bench_replicas_propagation"));
  SIGIL_ASSIGN_OR_RETURN(auto a, BenchServer::Start(Replica(database, "a"), dir / "propagation-a"));
  SIGIL_ASSIGN_OR_RETURN(auto b, BenchServer::Start(Replica(database, "b"), dir / "propagation-b"));
  SIGIL_ASSIGN_OR_RETURN(auto env, AgentdEnv::StartOn(std::move(b)));
  SIGIL_RETURN_IF_ERROR(a->CreateEntries({env->Entry("replicas/base")}).status());
  Watcher watcher(env->socket_path());
  SIGIL_RETURN_IF_ERROR(watcher.WaitFor(1, std::chrono::seconds(20)).status());

  const int entries = quick ? 30 : 100;
  std::fprintf(stderr, "replicas: %d entries created at a, watched under b, load %s\n", entries, LoadAverage().c_str());
  std::vector<double> ms;
  for (int i = 0; i < entries; ++i) {
    // From the admin call's start: the SVID may reach the workload before the admin answer does.
    const auto created = Clock::now();
    SIGIL_RETURN_IF_ERROR(a->CreateEntries({env->Entry("replicas/entry" + std::to_string(i))}).status());
    SIGIL_ASSIGN_OR_RETURN(Clock::time_point arrived, watcher.WaitFor(i + 2, std::chrono::seconds(10)));
    ms.push_back(std::chrono::duration<double, std::milli>(arrived - created).count());
  }
  std::sort(ms.begin(), ms.end());
  report.Metric("across_replicas/entry_to_workload/p50_ms", Percentile(ms, 0.5), "ms", false);
  report.Metric("across_replicas/entry_to_workload/p99_ms", Percentile(ms, 0.99), "ms", false);
  report.Distribution("across_replicas/entry_to_workload", ms, "ms");
  return Status::Ok();
}

constexpr size_t kAgents = 4;
constexpr size_t kEntriesPerAgent = 64;
constexpr int kBatch = 64;

// Batched signing through `replicas` replicas on a database of their own, agent n attached to
// replica n mod replicas.
Result<LoadResult> RunSigning(int replicas, bool quick, testing::Postgres& postgres, const std::filesystem::path& dir) {
  const std::string name = "replicas" + std::to_string(replicas);
  SIGIL_ASSIGN_OR_RETURN(std::string database, postgres.CreateDatabase("bench_replicas_signing_" + name));
  std::vector<std::unique_ptr<BenchServer>> servers;
  for (int r = 0; r < replicas; ++r) {
    const std::string replica = std::string(1, static_cast<char>('a' + r));
    SIGIL_ASSIGN_OR_RETURN(auto server, BenchServer::Start(Replica(database, replica), dir / (name + "-" + replica)));
    servers.push_back(std::move(server));
  }
  std::vector<AgentWithEntries> agents(kAgents);
  for (size_t n = 0; n < kAgents; ++n) {
    BenchServer& server = *servers[n % servers.size()];
    SIGIL_ASSIGN_OR_RETURN(agents[n].agent, BenchAgent::Attest(server));
    std::vector<RegistrationEntry> entries;
    for (size_t e = 0; e < kEntriesPerAgent; ++e) {
      entries.push_back(WorkloadEntry(server.trust_domain(), "agent" + std::to_string(n) + "/workload" + std::to_string(e),
                                      agents[n].agent->spiffe_id()));
    }
    SIGIL_ASSIGN_OR_RETURN(agents[n].entry_ids, server.CreateEntries(entries));
    agents[n].csrs = NewCsrs(kEntriesPerAgent);
  }
  std::fprintf(stderr, "replicas: signing through %d replica(s), load %s\n", replicas, LoadAverage().c_str());
  LoadResult load = RunLoad(agents, kBatch, 8, Seconds(quick ? 0.3 : 0.5), Seconds(quick ? 1.0 : 4.0));
  if (load.failed_items > 0) {
    return Status(Code::kInternal, name + ": " + std::to_string(load.failed_items) + " items failed, first: " +
                                       load.first_failure);
  }
  return load;
}

Status Run(bool quick, Report& report) {
  SIGIL_ASSIGN_OR_RETURN(testing::Postgres * postgres, testing::SharedPostgres());
  testing::TempDir dir("sigil-replicas-bench");
  SIGIL_RETURN_IF_ERROR(RunPropagation(quick, *postgres, dir.path(), report));
  SIGIL_ASSIGN_OR_RETURN(LoadResult one, RunSigning(1, quick, *postgres, dir.path()));
  SIGIL_ASSIGN_OR_RETURN(LoadResult two, RunSigning(2, quick, *postgres, dir.path()));
  report.Detail("signing/replicas1/batch64/svids_per_s", one.svids_per_s, "1/s");
  report.MetricWithCeiling("signing/replicas2/batch64/svids_per_s", two.svids_per_s, one.svids_per_s, "1/s");
  for (auto [name, load] : {std::pair{"replicas1", &one}, std::pair{"replicas2", &two}}) {
    std::sort(load->latencies_ms.begin(), load->latencies_ms.end());
    report.Metric(std::string("signing/") + name + "/batch64/p99_ms", Percentile(load->latencies_ms, 0.99), "ms", false);
    report.Detail(std::string("signing/") + name + "/batch64/cpu_us_per_svid", load->cpu_us_per_svid, "us");
    std::fprintf(stderr, "%s: %.0f SVIDs/s, p99 %.2f ms\n", name, load->svids_per_s,
                 Percentile(load->latencies_ms, 0.99));
  }
  return Status::Ok();
}

}  // namespace
}  // namespace sigil::bench

int main(int argc, char** argv) {
  return sigil::bench::ScenarioMain(argc, argv, "replicas", sigil::bench::Run);
}
