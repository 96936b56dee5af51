// Scenario 2: `agentd api fetch x509` as a whole command — from starting the process to the
// printed SVID and its exit — against a real agentd whose cache holds the SVID; the median of
// many runs. Beside it (not judged), the same binary's `--help`: what starting the process
// alone costs.
//
//   build-bench/bench/agentd_fetch_command_bench [--quick]
#include <algorithm>
#include <cstdio>

#include "bench/agentd_env.h"
#include "bench/bench_report.h"

namespace sigil::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds from starting `argv` to its exit.
Result<double> TimeCommand(const std::vector<std::string>& argv, bool expect_svid) {
  const auto start = Clock::now();
  SIGIL_ASSIGN_OR_RETURN(auto out, testing::RunProcess(argv, {}, std::chrono::seconds(30)));
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (out.exit_code != 0) return InternalError(argv[1] + " exited " + std::to_string(out.exit_code) + ": " + out.err);
  if (expect_svid && out.out.find("SPIFFE ID:") == std::string::npos) {
    return InternalError("agentd api fetch x509 printed no SVID: " + out.out);
  }
  return ms;
}

Status Run(bool quick, Report& report) {
  SIGIL_ASSIGN_OR_RETURN(auto env, AgentdEnv::Start());
  SIGIL_RETURN_IF_ERROR(env->server().CreateEntries({env->Entry("workload/command-bench")}).status());
  const std::vector<std::string> fetch = {SIGIL_AGENTD_BINARY, "api", "fetch", "x509", "-socketPath",
                                          env->socket_path()};
  if (!testing::WaitUntil([&] { return TimeCommand(fetch, true).ok(); }, std::chrono::seconds(20))) {
    return DeadlineExceededError("agentd never served the workload's SVID");
  }
  const int runs = quick ? 30 : 200;
  std::fprintf(stderr, "agentd_fetch_command: %d runs, load %s\n", runs, LoadAverage().c_str());
  // One of each in turn, so a change in the machine's load weighs on both alike.
  std::vector<double> fetch_ms;
  std::vector<double> help_ms;
  for (int i = 0; i < runs; ++i) {
    SIGIL_ASSIGN_OR_RETURN(double fetch_one, TimeCommand(fetch, true));
    SIGIL_ASSIGN_OR_RETURN(double help_one, TimeCommand({SIGIL_AGENTD_BINARY, "--help"}, false));
    fetch_ms.push_back(fetch_one);
    help_ms.push_back(help_one);
  }
  std::sort(fetch_ms.begin(), fetch_ms.end());
  std::sort(help_ms.begin(), help_ms.end());
  report.Metric("median_ms", Percentile(fetch_ms, 0.5), "ms", false);
  report.Detail("p90_ms", Percentile(fetch_ms, 0.9), "ms");
  report.Detail("process_start_only/median_ms", Percentile(help_ms, 0.5), "ms");
  report.Distribution("command_latency", fetch_ms, "ms");
  report.Distribution("process_start_only", help_ms, "ms");
  return Status::Ok();
}

}  // namespace
}  // namespace sigil::bench

int main(int argc, char** argv) {
  return sigil::bench::ScenarioMain(argc, argv, "agentd_fetch_command", sigil::bench::Run);
}
