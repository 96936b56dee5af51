// agentd as one object: everything `agentd run` starts, in order, and stops in reverse.
//
//  1. The link to serverd (sync/server_client.h) and the trust bundle it checks serverd with.
//  2. The agent's own SVID (sync/agent_svid.h): restored from data_dir, else node attestation
//     with the attestor config chooses (attestor/node_attestor.h). With a restored SVID, the
//     workload SVIDs and federated bundles an earlier run kept (sync/svid_store.h) fill the
//     cache until serverd answers; after a fresh attestation they are dropped.
//  3. The Workload API on the public socket (workload/workload_api.h), answered from the cache
//     only; JWT-SVIDs are minted by serverd and cached until half-life. Then /metrics (telemetry)
//     and the health probes.
//  4. Entry sync (sync/entry_sync.h) and SVID rotation (sync/svid_rotator.h), each on a thread
//     of its own: the cache follows serverd's entries, and every SVID, the agent's own
//     included, is renewed at half of its lifetime. A third thread keeps the cache's workload
//     SVIDs and bundles in data_dir as they change.
// While serverd is unreachable the cache keeps answering; every loop retries with exponential
// back-off and jitter (sync/retry.h).
//
// Thread safety: Start and Stop from the owning thread; Ready from any thread.
#pragma once

#include <memory>
#include <optional>
#include <thread>

#include "agentd/agent_config.h"
#include "agentd/sync/agent_svid.h"
#include "agentd/sync/entry_sync.h"
#include "agentd/sync/retry.h"
#include "agentd/sync/server_client.h"
#include "agentd/sync/svid_cache.h"
#include "agentd/sync/svid_rotator.h"
#include "agentd/sync/svid_store.h"
#include "agentd/workload/workload_api.h"
#include "core/metrics.h"
#include "transport/event_loop.h"
#include "transport/http_get_server.h"
#include "transport/metrics_endpoint.h"

namespace sigil::agentd {

class Agent {
 public:
  explicit Agent(AgentConfig config);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Attested (or restored from data_dir) and serving, or the first failure.
  Status Start();
  void Stop();

  // True once the agent holds an SVID and has synced its entries at least once.
  bool Ready() const { return rotator_ && rotator_->ready(); }
  SvidCache& cache() { return cache_; }

 private:
  Status StartServerClient();
  // The workload SVIDs and federated bundles kept in data_dir: into the cache when the agent
  // SVID was restored too, else removed.
  Status RestoreSvids(AgentSvid::Established established);
  Status StartWorkloadApi();
  Status StartProbes();
  Status StartMetrics();  // telemetry.prometheus, on the Workload API's loop
  void UpdateCacheMetrics();

  AgentConfig config_;
  MetricsRegistry metrics_;
  SvidCache cache_;
  WakeSignal signal_;
  transport::LoopThread client_loop_;    // connections to serverd
  transport::LoopThread workload_loop_;  // the Workload API and the health probes
  std::unique_ptr<ServerClient> client_;
  std::unique_ptr<AgentSvid> agent_svid_;
  std::unique_ptr<WorkloadApiServer> workload_api_;
  std::unique_ptr<transport::HttpGetServer> health_server_;
  std::unique_ptr<transport::MetricsEndpoint> metrics_server_;
  std::unique_ptr<EntrySync> sync_;
  std::unique_ptr<SvidRotator> rotator_;
  std::thread sync_thread_;
  std::thread rotation_thread_;
  std::optional<X509Bundle> loaded_bundle_;  // from data_dir or trust_bundle_path, at start
  std::unique_ptr<SvidStore> store_;
  WakeSignal store_signal_;  // woken by every change of the cache
  uint64_t store_subscription_ = 0;
  std::thread store_thread_;
  bool started_ = false;
};

}  // namespace sigil::agentd
