// The signing load of the end-to-end scenarios: agents that each hold entries and a CSR per
// entry, and threads sending SignCsrBatch to serverd through them, counting what came back
// signed. Scenario 3 (agent_api_bench) and scenario 8 (replicas_bench) measure with it.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_server.h"

namespace sigil::bench {

using Seconds = std::chrono::duration<double>;

// The CPU time (user and system) this process has used.
double ProcessCpuSeconds();

// `count` CSRs, each for a fresh P-256 key; exits the program when one cannot be made.
std::vector<Bytes> NewCsrs(size_t count);

struct LoadResult {
  double svids_per_s = 0;
  double cpu_us_per_svid = 0;
  std::vector<double> latencies_ms;  // one per batch request
  uint64_t failed_items = 0;
  std::string first_failure;
};

struct AgentWithEntries {
  std::unique_ptr<BenchAgent> agent;
  std::vector<std::string> entry_ids;
  std::vector<Bytes> csrs;  // one per entry
};

// `concurrency` threads, each with one batch request in flight at a time, spread over the
// agents; a warm-up round first so that connections and caches exist before the clock starts.
LoadResult RunLoad(std::vector<AgentWithEntries>& agents, int batch, int concurrency, Seconds warm_up,
                   Seconds duration);

}  // namespace sigil::bench
