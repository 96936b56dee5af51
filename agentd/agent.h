// agentd as one object: everything `agentd run` starts, in order, and stops in reverse.
//
//  - Attestation: the agent's SVID and key are kept in data_dir (agent_svid.pem, agent_svid.key
//    0600, bundle.pem), so a restart re-uses them without a new join token; otherwise it attests
//    with the join token or, when configured, the TPM's DevID (evidence, then the answer to
//    serverd's challenge). Renewal over mTLS at half-life; when serverd no longer knows the agent
//    (evicted) it attests again.
//  - Entry sync: one long poll always open at serverd, which answers as soon as an entry or the
//    bundle changes; the cache takes full or incremental answers by revision.
//  - Signing: one key pair and CSR per entry, sent in batches of up to 64, several batches in
//    flight; every SVID rotates at half of its lifetime; refused items back off one by one.
//  - Workload API on the public socket, answered from the cache only; JWT-SVIDs are minted by
//    serverd and cached until half-life.
// While serverd is unreachable the cache keeps answering; every loop retries with exponential
// back-off and jitter.
//
// Thread safety: Start and Stop from the owning thread; Ready from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "agentd/agent_config.h"
#include "agentd/sync/server_client.h"
#include "agentd/sync/svid_cache.h"
#include "agentd/workload/workload_api.h"
#include "core/metrics.h"
#include "transport/event_loop.h"
#include "transport/plain_http_server.h"

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
  bool Ready() const { return ready_.load(); }
  SvidCache& cache() { return cache_; }

 private:
  struct AgentSvid {
    SpiffeId id;
    std::vector<Bytes> chain_der;
    EvpPkeyPtr key;
    Clock::time_point renew_at;
    Clock::time_point expires_at;
  };

  Status LoadTrustBundle();
  Status RestoreAgentSvid();
  Status Attest();
  Result<AgentSvidAnswer> AttestWithTpmDevId(const Bytes& csr);
  Status UseAgentSvid(AgentSvid svid, bool persist);
  Status RenewAgentSvid();
  Status SaveBundle(const TrustBundle& bundle);

  void SyncLoop();
  void RotationLoop();
  // Signs what `due` lists; returns how many SVIDs were stored.
  size_t SignEntries(const std::vector<std::shared_ptr<const RegistrationEntry>>& due);
  void HandleUnauthenticated(const Status& why);
  // Waits until `deadline`, Stop() or a Wake() after the count `seen` (from Wakeups()) was
  // read: a wake while the caller was busy is not lost. False when stopping.
  bool SleepUntil(std::chrono::steady_clock::time_point deadline, uint64_t seen);
  uint64_t Wakeups();
  void Wake();
  std::chrono::milliseconds NextBackoff(std::chrono::milliseconds& backoff);
  Status StartProbes();

  AgentConfig config_;
  MetricsRegistry metrics_;
  SvidCache cache_;
  transport::LoopThread client_loop_;    // connections to serverd
  transport::LoopThread workload_loop_;  // the Workload API and the health probes
  std::unique_ptr<ServerClient> client_;
  std::unique_ptr<WorkloadApiServer> workload_api_;
  std::unique_ptr<transport::PlainHttpServer> health_server_;

  std::mutex svid_mutex_;  // guards agent_svid_
  std::unique_ptr<AgentSvid> agent_svid_;
  std::mutex attest_mutex_;  // one re-attestation at a time

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  uint64_t wakeups_ = 0;
  std::map<std::string, std::chrono::steady_clock::time_point> retry_after_;  // entry id -> when

  std::atomic<bool> ready_{false};
  std::atomic<bool> synced_once_{false};
  bool started_ = false;
  std::thread sync_thread_;
  std::thread rotation_thread_;
};

}  // namespace sigil::agentd
