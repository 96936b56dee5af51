#include "bench/signing_load.h"

#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "core/csr.h"
#include "hw/soft_key_store.h"

namespace sigil::bench {

using Clock = std::chrono::steady_clock;

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::vector<Bytes> NewCsrs(size_t count) {
  std::vector<Bytes> csrs;
  for (size_t i = 0; i < count; ++i) {
    auto key = hw::GenerateSoftKey(KeyType::kEcP256);
    auto csr = key.ok() ? MakeCsr(key->get()) : Result<Bytes>(key.status());
    if (!csr.ok()) {
      std::fprintf(stderr, "cannot make a CSR: %s\n", csr.status().ToString().c_str());
      std::exit(1);
    }
    csrs.push_back(std::move(*csr));
  }
  return csrs;
}

LoadResult RunLoad(std::vector<AgentWithEntries>& agents, int batch, int concurrency, Seconds warm_up,
                   Seconds duration) {
  LoadResult result;
  std::mutex mu;
  auto run = [&](Seconds length, bool record) {
    std::atomic<uint64_t> signed_svids{0};
    const auto start = Clock::now();
    const double cpu_start = ProcessCpuSeconds();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(length);
    std::vector<std::jthread> pool;
    for (int t = 0; t < concurrency; ++t) {
      pool.emplace_back([&, t] {
        AgentWithEntries& mine = agents[static_cast<size_t>(t) % agents.size()];
        std::vector<agentd::CsrRequestItem> items;
        for (int i = 0; i < batch; ++i) {
          const size_t at = (static_cast<size_t>(t) * 7 + static_cast<size_t>(i)) % mine.entry_ids.size();
          items.push_back({mine.entry_ids[at], mine.csrs[at]});
        }
        std::vector<double> latencies;
        uint64_t ok_items = 0, bad_items = 0;
        std::string failure;
        while (Clock::now() < deadline) {
          const auto sent = Clock::now();
          auto answers = mine.agent->client().SignCsrBatch(items);
          const auto received = Clock::now();
          if (!answers.ok()) {
            bad_items += items.size();
            if (failure.empty()) failure = answers.status().ToString();
            continue;
          }
          for (const auto& answer : *answers) {
            if (answer.status.ok() && !answer.chain_der.empty()) {
              ++ok_items;
            } else {
              ++bad_items;
              if (failure.empty()) failure = answer.status.ToString();
            }
          }
          latencies.push_back(std::chrono::duration<double, std::milli>(received - sent).count());
        }
        signed_svids += ok_items;
        if (!record) return;
        std::lock_guard lock(mu);
        result.latencies_ms.insert(result.latencies_ms.end(), latencies.begin(), latencies.end());
        result.failed_items += bad_items;
        if (result.first_failure.empty()) result.first_failure = failure;
      });
    }
    pool.clear();
    if (!record) return;
    const double elapsed = Seconds(Clock::now() - start).count();
    const double cpu = ProcessCpuSeconds() - cpu_start;
    result.svids_per_s = static_cast<double>(signed_svids) / elapsed;
    if (signed_svids > 0) result.cpu_us_per_svid = cpu * 1e6 / static_cast<double>(signed_svids);
  };
  run(warm_up, false);
  run(duration, true);
  return result;
}

}  // namespace sigil::bench
