// The signing pipeline: every SVID serverd issues to agents and workloads, as a typed job.
//
//   SignWorkloadX509Svid  a workload's X509-SVID for the CSR its agent sent (checked here, on a
//                         signer worker: its signature check is much of what an SVID costs)
//                         with the parameters its entry gives (X509SvidParamsForEntry)
//   SignAgentX509Svid     an agent's own X509-SVID, for the key of a CSR the caller has checked
//   SignJwtSvid           a workload's JWT-SVID
//
// A job names the CA state it was queued under (CaManager::current(), read once per request).
// Signer workers take up to max_batch jobs (waiting at most max_wait for a batch to fill),
// group them by that CA state, sign each group with its issuer looked up once and the clock
// read once, and hand the results to each job's completion target (the loop that owns the
// request) once per target per batch. Without a target a completion runs on the signer worker
// itself, and must only hand the result on.
//
// A full queue is back-pressure: Sign* answers ResourceExhausted at once and the completion is
// never called. Metrics, each labelled with the key store: sigil_server_signing_queue_depth,
// _batch_size, _latency_seconds, _items_total, _rejected_total (worker_pool.h), and
// sigil_server_signing_issuer_groups_total, the groups signed with one issuer lookup.
//
// Thread safety: Sign* from any thread; Stop once, by the owner, after which Sign* refuses.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <variant>
#include <vector>

#include "core/csr.h"
#include "core/jwt_svid.h"
#include "core/metrics.h"
#include "core/x509_svid.h"
#include "serverd/ca/ca_manager.h"
#include "serverd/worker_pool.h"

namespace sigil::serverd {

// Receives X509-SVIDs: `item` is the job's own (a position in a batch request), `svid` the
// SVID or why it was not signed.
class X509SvidCompletion {
 public:
  virtual ~X509SvidCompletion() = default;
  virtual void OnSigned(size_t item, Result<X509SvidDer> svid) = 0;
};

class JwtSvidCompletion {
 public:
  virtual ~JwtSvidCompletion() = default;
  virtual void OnSigned(Result<JwtSvid> svid) = 0;
};

struct WorkloadX509SvidJob {
  // Not copied: valid until the completion has run, so the completion should own what it
  // points into (the request body).
  std::span<const uint8_t> csr_der;
  X509SvidParams params;  // `now` is set when the job is signed
  std::shared_ptr<X509SvidCompletion> completion;
  size_t item = 0;
};

// What an agent's SVID says besides its key.
struct AgentX509SvidParams {
  SpiffeId agent_id;
  std::chrono::seconds ttl;
};

struct AgentX509SvidJob {
  CertifiableKey key;
  AgentX509SvidParams params;
  std::shared_ptr<X509SvidCompletion> completion;
};

struct JwtSvidJob {
  JwtSvidParams params;  // `now` is set when the job is signed
  std::shared_ptr<JwtSvidCompletion> completion;
};

class SvidSigner {
 public:
  using CaState = std::shared_ptr<const CaManager::Current>;

  // `options.name` prefixes the metric names ("signing"); `metrics` may be null.
  SvidSigner(WorkerPoolOptions options, MetricsRegistry* metrics);
  SvidSigner(const SvidSigner&) = delete;
  SvidSigner& operator=(const SvidSigner&) = delete;

  Status SignWorkloadX509Svid(CaState ca, CompletionTarget* target, WorkloadX509SvidJob job);
  Status SignAgentX509Svid(CaState ca, CompletionTarget* target, AgentX509SvidJob job);
  Status SignJwtSvid(CaState ca, CompletionTarget* target, JwtSvidJob job);

  // Refuses new jobs, signs and completes every queued one, and joins the workers.
  void Stop() { workers_.Stop(); }

  size_t queue_depth() const { return workers_.queue_depth(); }

 private:
  struct Job {
    CaState ca;
    CompletionTarget* target = nullptr;
    std::variant<WorkloadX509SvidJob, AgentX509SvidJob, JwtSvidJob> work;
    std::chrono::steady_clock::time_point enqueued;  // set by Submit
  };

  void SignBatch(std::vector<Job>& batch);

  Counter* issuer_groups_ = nullptr;
  BatchWorkers<Job> workers_;  // last: its threads call SignBatch
};

}  // namespace sigil::serverd
