// Scenario 6: from an entry's creation at serverd (the admin call's start) to the new SVID
// reaching a workload that watches FetchX509SVID on a real agentd — p50 and p99 over
// many entries. Then agentd's resident memory per cached X509-SVID: its VmRSS before and after
// 5,000 more SVIDs reach the same workload.
//
//   build-bench/bench/propagation_bench [--quick]
#include <algorithm>
#include <cstdio>

#include "bench/agentd_env.h"
#include "bench/bench_report.h"
#include "bench/workload_watcher.h"

namespace sigil::bench {
namespace {

using Clock = std::chrono::steady_clock;

Status Run(bool quick, Report& report) {
  // The one workload here ends up holding 5,131 X509-SVIDs, so each FetchX509SVID answer is
  // about 10 MB, over the default bound of what a stream may leave unsent (8 MiB, sized for
  // workloads holding a few); a slow reader of such answers is not what this measures.
  SIGIL_ASSIGN_OR_RETURN(auto env, AgentdEnv::Start("", "workload_api_limits:\n  max_stream_unsent_bytes: 268435456\n"
                                                        "  max_connection_unsent_bytes: 268435456\n"
                                                        "  max_source_unsent_bytes: 268435456\n"));
  SIGIL_RETURN_IF_ERROR(env->server().CreateEntries({env->Entry("propagation/base")}).status());
  Watcher watcher(env->socket_path());
  SIGIL_RETURN_IF_ERROR(watcher.WaitFor(1, std::chrono::seconds(20)).status());

  const int entries = quick ? 30 : 100;
  std::fprintf(stderr, "propagation: %d entries, load %s\n", entries, LoadAverage().c_str());
  std::vector<double> ms;
  for (int i = 0; i < entries; ++i) {
    // From the admin call's start: the SVID may reach the workload before the admin answer
    // reaches this process, since a commit wakes the agent's parked sync at once.
    const auto created = Clock::now();
    SIGIL_RETURN_IF_ERROR(
        env->server().CreateEntries({env->Entry("propagation/entry" + std::to_string(i))}).status());
    SIGIL_ASSIGN_OR_RETURN(Clock::time_point arrived, watcher.WaitFor(i + 2, std::chrono::seconds(10)));
    ms.push_back(std::chrono::duration<double, std::milli>(arrived - created).count());
  }
  std::sort(ms.begin(), ms.end());
  report.Metric("entry_to_workload/p50_ms", Percentile(ms, 0.5), "ms", false);
  report.Metric("entry_to_workload/p99_ms", Percentile(ms, 0.99), "ms", false);
  report.Distribution("entry_to_workload", ms, "ms");

  // Memory per cached SVID at scenario 4's scale: what 5,000 more SVIDs add to the agent. At
  // that scale what is paid once (the signing threads' stacks, library pages first touched, the
  // heap's first growth) counts for little, as it does in an agent serving for months.
  const int more = 5000;
  const long before_kib = ResidentKiB(env->agent_pid());
  std::vector<RegistrationEntry> batch;
  for (int i = 0; i < more; ++i) batch.push_back(env->Entry("propagation/memory" + std::to_string(i)));
  SIGIL_RETURN_IF_ERROR(env->server().CreateEntries(batch).status());
  SIGIL_RETURN_IF_ERROR(watcher.WaitFor(entries + 1 + more, std::chrono::seconds(120)).status());
  const long after_kib = ResidentKiB(env->agent_pid());
  if (before_kib < 0 || after_kib < 0) return InternalError("cannot read agentd's VmRSS");
  report.Metric("agent_rss_per_svid_bytes", static_cast<double>(after_kib - before_kib) * 1024 / more, "B", false);
  report.Detail("agent_rss_kib", static_cast<double>(after_kib), "KiB");
  return Status::Ok();
}

}  // namespace
}  // namespace sigil::bench

int main(int argc, char** argv) {
  return sigil::bench::ScenarioMain(argc, argv, "propagation", sigil::bench::Run);
}
