// Scenario 5: serverd holding many entries — 100 per agent for 1,000 agents, 100,000 in all
// (--quick: 100 agents, 10,000). One agent is real (attested with a join token over the agent
// API); its first entry sync and its incremental syncs are timed through agentd's client, and
// serverd's resident memory is read before and after the entries exist.
//
//   build-bench/bench/scale_bench [--quick]
//
// serverd runs in this process, so the memory figure is this process's VmRSS growth: the
// server's entry caches and SQLite's page cache, plus the little the client holds.
#include <algorithm>
#include <cstdio>

#include "bench/bench_report.h"
#include "bench/bench_server.h"
#include "tests/support/process.h"

namespace sigil::bench {
namespace {

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

constexpr size_t kEntriesPerAgent = 100;

Status Run(bool quick, Report& report) {
  const size_t agents = quick ? 100 : 1000;
  const int sync_rounds = quick ? 10 : 30;
  testing::TempDir dir("sigil-scale-bench");
  SIGIL_ASSIGN_OR_RETURN(auto server, BenchServer::Start({}, dir.path()));
  SIGIL_ASSIGN_OR_RETURN(auto agent, BenchAgent::Attest(*server));
  const long resident_before = ResidentKiB();

  // The real agent is one of the parents; the others are agents that never connect.
  std::vector<RegistrationEntry> entries;
  entries.reserve(agents * kEntriesPerAgent);
  for (size_t a = 0; a < agents; ++a) {
    const std::string parent = a == 0 ? agent->spiffe_id()
                                      : "spiffe://" + server->trust_domain().name() +
                                            "/spire/agent/join_token/scale-" + std::to_string(a);
    for (size_t e = 0; e < kEntriesPerAgent; ++e) {
      entries.push_back(WorkloadEntry(server->trust_domain(),
                                      "scale/agent" + std::to_string(a) + "/workload" + std::to_string(e), parent));
    }
  }
  std::fprintf(stderr, "scale: creating %zu entries, load %s\n", entries.size(), LoadAverage().c_str());
  const auto create_start = Clock::now();
  SIGIL_ASSIGN_OR_RETURN(auto ids, server->CreateEntries(entries));
  const double create_ms = MillisecondsSince(create_start);
  entries.clear();
  entries.shrink_to_fit();
  report.Metric("entries", static_cast<double>(ids.size()), "", true);
  report.Metric("entries_created_per_s", static_cast<double>(ids.size()) / (create_ms / 1000), "1/s", true);

  const auto first_start = Clock::now();
  SIGIL_ASSIGN_OR_RETURN(agentd::EntrySyncAnswer first, agent->client().SyncEntries(0, std::chrono::milliseconds(0)));
  const double first_ms = MillisecondsSince(first_start);
  if (first.entries.size() != kEntriesPerAgent) {
    report.Error("first sync returned " + std::to_string(first.entries.size()) + " entries, expected " +
                 std::to_string(kEntriesPerAgent));
  }
  report.Metric("first_sync_cold_ms", first_ms, "ms", false);

  std::vector<double> full_ms;
  for (int i = 0; i < sync_rounds; ++i) {
    const auto start = Clock::now();
    SIGIL_ASSIGN_OR_RETURN(auto answer, agent->client().SyncEntries(0, std::chrono::milliseconds(0)));
    full_ms.push_back(MillisecondsSince(start));
  }
  std::sort(full_ms.begin(), full_ms.end());
  report.Metric("first_sync/p50_ms", Percentile(full_ms, 0.5), "ms", false);
  report.Metric("first_sync/p99_ms", Percentile(full_ms, 0.99), "ms", false);
  report.Distribution("first_sync", full_ms, "ms");

  // Each round: one new entry for the agent, then a sync from the revision it last saw.
  std::vector<double> incremental_ms;
  int64_t revision = first.revision;
  for (int i = 0; i < sync_rounds; ++i) {
    SIGIL_ASSIGN_OR_RETURN(auto added, server->CreateEntries({WorkloadEntry(
                                           server->trust_domain(), "scale/added" + std::to_string(i),
                                           agent->spiffe_id())}));
    const auto start = Clock::now();
    SIGIL_ASSIGN_OR_RETURN(auto answer, agent->client().SyncEntries(revision, std::chrono::milliseconds(0)));
    incremental_ms.push_back(MillisecondsSince(start));
    if (answer.full || answer.entries.size() != 1) {
      report.Error("incremental sync returned " + std::to_string(answer.entries.size()) + " entries (full: " +
                   (answer.full ? "yes" : "no") + "), expected the one new entry");
      break;
    }
    revision = answer.revision;
  }
  std::sort(incremental_ms.begin(), incremental_ms.end());
  report.Metric("incremental_sync/p50_ms", Percentile(incremental_ms, 0.5), "ms", false);
  report.Metric("incremental_sync/p99_ms", Percentile(incremental_ms, 0.99), "ms", false);
  report.Distribution("incremental_sync", incremental_ms, "ms");

  const long resident_after = ResidentKiB();
  report.Metric("serverd_resident_mib", static_cast<double>(resident_after) / 1024, "MiB", false);
  report.Metric("serverd_resident_per_entry_bytes",
                static_cast<double>(resident_after - resident_before) * 1024 / static_cast<double>(ids.size()),
                "B", false);
  return Status::Ok();
}

}  // namespace
}  // namespace sigil::bench

int main(int argc, char** argv) {
  return sigil::bench::ScenarioMain(argc, argv, "scale", sigil::bench::Run);
}
