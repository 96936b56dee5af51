// The agent API: what agentd calls on serverd, over HTTP/2 with TLS on TCP. Every body is a
// flatbuffers Envelope (core/wire); the paths are in core/wire/convert.h.
//
//   Attest          AttestationRequest -> AgentSvidResponse | AttestationChallenge
//                   (no client certificate: the agent has no SVID yet)
//   RenewAgentSvid  AgentSvidRequest   -> AgentSvidResponse        mTLS with the agent's SVID
//   SyncEntries     EntrySyncRequest   -> EntrySyncResponse        mTLS, long poll
//   SignCsrBatch    CsrBatchRequest    -> CsrBatchResponse         mTLS, one result per item
//   MintJwtSvid     JwtSvidRequest     -> JwtSvidResponse          mTLS
//
// A request that fails as a whole is answered with an Outcome body (HTTP 200): Unauthenticated
// when the agent must attest again (evicted, unknown, or calling with an SVID older than its
// current one, beyond a short overlap after a renewal), PermissionDenied when it is banned or
// asks for what it may not have, ResourceExhausted when a work queue is full or the caller
// is over its rate (attestations per IP address, SVIDs per agent; back off),
// InvalidArgument naming what was malformed (a SignCsrBatch over max_csr_batch_items is refused
// whole). Refusals of a request as a whole are logged once per interval per peer with a count,
// not once each.
//
// One file per service: node_attestation.cc (Attest, RenewAgentSvid), entry_sync.cc
// (SyncEntries), svid_signing.cc (SignCsrBatch, MintJwtSvid); this header and agent_api.cc
// are the listener and the router.
//
// Threads. The I/O loop only moves bytes: it reads a request, checks that the caller presented
// an agent SVID where one is needed, verifies the envelope, and posts the typed request to a
// worker pool; a full pool is answered ResourceExhausted there and then. Attest goes to the
// attestation workers, apart, so that a flood of anonymous requests queues behind itself and
// never before an attested agent's; everything else goes to the agent workers. Workers do
// whatever may block or cost: datastore reads and writes, node attestors, CSR checks,
// authorisation. Every SVID and JWT is signed by the signing pipeline (serverd/ca/svid_signer.h,
// whose signer workers take typed jobs in batches): a workload's are handed back to the loop,
// an agent's to the worker waiting to record the agent. Answers are posted back to the loop,
// which writes them. Parked entry syncs live on the loop; an announced change (or the resync
// timer) hands the check for news to a worker.
//
// serverd's own certificate is an X509-SVID for spiffe://<td>/spire/server from the active CA,
// renewed at half-life and whenever the CA changes; agents pin the trust bundle.
//
// Thread safety: AddNodeAttestor, Start, Stop and RefreshCredentials from the owning thread;
// the rest runs on the loop and the workers as said above.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/failure_log.h"
#include "core/call_metrics.h"
#include "core/metrics.h"
#include "core/rate_limiter.h"
#include "core/spiffe_id.h"
#include "core/wire/wire.h"
#include "core/x509_svid.h"
#include "serverd/attestor/node_attestor.h"
#include "serverd/ca/ca_manager.h"
#include "serverd/ca/svid_signer.h"
#include "serverd/datastore/datastore.h"
#include "serverd/entry/entry_service.h"
#include "serverd/federation/federated_bundles.h"
#include "serverd/audit_log.h"
#include "serverd/worker_pool.h"
#include "transport/event_loop.h"
#include "transport/http2_server.h"
#include "transport/tls.h"

namespace sigil::serverd {

struct AgentApiOptions {
  std::string bind_address = "0.0.0.0";
  int bind_port = 8081;  // 0: any free port (tests)
  // The listener's limits (agent_api_limits:); per source means per IP address.
  transport::Http2ServerOptions http2;
  std::chrono::seconds agent_svid_ttl{3600};
  std::chrono::seconds default_x509_svid_ttl{3600};
  std::chrono::seconds default_jwt_svid_ttl{300};
  std::string jwt_issuer;  // the "iss" claim of every JWT-SVID; none when empty
  // How long an agent's SVID stays accepted after the agent renewed it: calls it made while
  // the renewal was answered. Older SVIDs are refused (attest again).
  std::chrono::seconds previous_agent_svid_overlap{300};
  // Signer workers: batches of agent and workload SVIDs and JWTs.
  WorkerPool::Options pipeline;
  // Authenticated agents' requests: one request per job. The queue holds a fleet's worth of
  // requests (agent_api_limits.max_queued_requests): after a restart every agent syncs and
  // renews at once, and a job only points at a request whose bytes the listener limits bound.
  WorkerPool::Options agent_workers{
      .queue_capacity = 8192, .workers = 2, .max_batch = 1, .max_wait = {}, .name = "agent_api"};
  // Attest requests, which anyone may send: a small queue, so a flood is refused early.
  WorkerPool::Options attestation_workers{
      .queue_capacity = 128, .workers = 1, .max_batch = 1, .max_wait = {}, .name = "attestation"};
  // Parked entry syncs are answered when the store announces a committed entry change (this
  // replica's or, on a shared store, another's; Datastore::changes) or when serverd's bundles
  // change (WakeParkedSyncs). They also look for news this often, as a net under a lost
  // announcement. A sync's wait counts from its request's arrival, not from when a worker took
  // it, and the looks run on a worker of their own: a queue of other agents' requests never
  // makes a long poll late.
  std::chrono::milliseconds sync_resync_interval{5'000};
  std::chrono::milliseconds max_sync_wait{60'000};
  // Items one SignCsrBatch may carry (agent_api_limits.max_csr_batch_items); an item named
  // many times counts each time. agentd sends 64 at a time, SPIRE's agent at most 500.
  size_t max_csr_batch_items = 1000;
  // Attest calls per IP address, counted on the loop before a worker is asked; and SVIDs per
  // agent (each CSR of a batch, each JWT), counted when the agent is known. Defaults and why:
  // serverd/server_config.h.
  RateLimit attestations_per_ip{.per_second = 20, .burst = 100};
  RateLimit svids_per_agent{.per_second = 500, .burst = 5000};
  // A refusal that a peer repeats (an evicted agent retries every second, forever) is logged
  // once per this per peer and kind, with a count; the counts left are logged at Stop.
  std::chrono::milliseconds refusal_log_interval{60'000};
  // Where attestations and agent SVID renewals are audited; none when null.
  AuditLog* audit = nullptr;
};

class AgentApi {
 public:
  AgentApi(AgentApiOptions options, const TrustDomain& trust_domain, Datastore& store,
           EntryService& entries, CaManager& ca, const FederatedBundles& federated,
           MetricsRegistry* metrics);
  ~AgentApi();
  AgentApi(const AgentApi&) = delete;
  AgentApi& operator=(const AgentApi&) = delete;

  // Enables the attestor for the attestation data kinds it takes; it must outlive the API.
  // Before Start.
  void AddNodeAttestor(NodeAttestor* attestor);

  Status Start();
  void Stop();
  int port() const { return port_; }

  // Renews serverd's own SVID when it passed half-life or the CA changed, and points peer
  // verification at the current bundle. Signs with the CA key: call it off the I/O loop.
  Status RefreshCredentials(TimePoint now);
  // serverd's own X509-SVID and key as RefreshCredentials last made them (the bundle endpoint's
  // https_spiffe presents it too); any thread.
  std::shared_ptr<const transport::TlsCredentials> server_credentials() const { return credentials_.Current(); }

  // The CA's bundle or the federated bundles changed: parked syncs look for news now. Any
  // thread, between Start and Stop.
  void WakeParkedSyncs();

 private:
  using StreamPtr = std::shared_ptr<transport::Http2ServerStream>;
  struct AuthorizedSet;
  struct SentState;
  struct ParkedSync;
  struct CsrBatchAnswer;
  struct JwtSvidAnswer;

  // ---- listener and router (agent_api.cc); loop thread ----
  void Handle(StreamPtr stream);
  // Verifies the body as a Request and runs `method` with it on a worker of `pool`.
  template <typename Request>
  void Route(StreamPtr stream, WorkerPool& pool, void (AgentApi::*method)(const StreamPtr&, const Request&));
  // The same for calls that need an attested agent, looked up on the worker.
  template <typename Request>
  void RouteAgent(StreamPtr stream, void (AgentApi::*method)(const StreamPtr&, const Request&, const AttestedAgent&));
  // Writes `message` as the answer: Respond on the loop, Answer from any thread.
  void Respond(transport::Http2ServerStream& stream, std::string message);
  void Answer(StreamPtr stream, std::string message);
  void AnswerError(StreamPtr stream, const Status& status);
  // One audit line for a call that changes state (or was refused before it could).
  void Audit(const StreamPtr& stream, std::string_view method, nlohmann::ordered_json fields, const Status& status);

  // ---- on workers (agent_api.cc) ----
  // The attested agent behind an mTLS request: Unauthenticated when it is no longer attested or
  // presented an SVID it has renewed since (beyond the overlap), PermissionDenied when banned.
  Result<AttestedAgent> CallingAgent(const transport::Http2ServerStream& stream);
  Result<std::shared_ptr<const AuthorizedSet>> Authorized(const AttestedAgent& agent);
  // Logs a request refused as a whole through refusals_, keyed by the peer (its agent ID, or
  // its IP address before mutual TLS) and the refusal's code. Any thread.
  void LogRefusal(const transport::Http2ServerStream& stream, const Status& refused);
  // Spends `count` of the agent's SVID budget; ResourceExhausted, logged, when it is over.
  Status SpendSignatures(const transport::Http2ServerStream& stream, const AttestedAgent& agent, size_t count);

  // ---- node attestation and agent SVIDs (node_attestation.cc); workers ----
  void Attest(const StreamPtr& stream, const wire::AttestationRequest& request);
  void RenewAgentSvid(const StreamPtr& stream, const wire::AgentSvidRequest& request, const AttestedAgent& agent);
  // Signs the agent's SVID for `csr_key`, records the agent (`host` set: a new attestation;
  // null: a renewal), and answers.
  void IssueAgentSvid(const StreamPtr& stream, const SpiffeId& agent_id, const AttestedHost* host,
                      CertifiableKey csr_key);
  // The agent's SVID from the signing pipeline, waited for.
  Result<X509SvidDer> SignAgentSvid(std::shared_ptr<const CaManager::Current> ca, CertifiableKey key,
                                    const SpiffeId& agent_id);

  // ---- entry sync (entry_sync.cc) ----
  void SyncEntries(const StreamPtr& stream, const wire::EntrySyncRequest& request, const AttestedAgent& agent);
  // Worker: the answer to a sync when there is something to say (or `force`); nothing when it
  // stays parked.
  std::optional<std::string> AnswerSync(ParkedSync& sync, bool force);
  void Park(std::shared_ptr<ParkedSync> sync);  // loop
  // Loop: the timer at the earliest wait's end, or the resync, whichever is first, and not
  // before `at_least`.
  void ArmSyncTimer(std::chrono::milliseconds at_least = std::chrono::milliseconds(0));
  static constexpr std::chrono::milliseconds kSyncRetryWhenBusy{50};
  // Waits ending this close together are answered by one look.
  static constexpr std::chrono::milliseconds kSyncDeadlineSlack{2};
  static void OnSyncTimer(uv_timer_t* timer);   // loop
  // Loop: hands parked syncs to the sync worker, or marks that another look is due when one is
  // running. After a wake-up or at the resync every parked sync is looked at for news;
  // otherwise only those whose wait has ended, so a fleet's long polls ending one by one cost a
  // look each at a few syncs, not at all of them.
  void LookForNews();
  // Sync worker: answers the parked syncs that have news (when `look_for_news`) or have waited
  // long enough.
  void CheckParkedSyncs(std::vector<std::shared_ptr<ParkedSync>> parked, bool look_for_news);

  // ---- workload SVIDs (svid_signing.cc); workers ----
  void SignCsrBatch(const StreamPtr& stream, const wire::CsrBatchRequest& request, const AttestedAgent& agent);
  void MintJwtSvid(const StreamPtr& stream, const wire::JwtSvidRequest& request, const AttestedAgent& agent);
  void AnswerCsrBatch(const CsrBatchAnswer& batch);  // loop

  // The finished envelope of `body`, copied once out of the builder into what Write takes.
  template <typename T>
  static std::string FinishAnswer(flatbuffers::FlatBufferBuilder& builder, flatbuffers::Offset<T> body) {
    auto envelope = wire::CreateEnvelope(builder, wire::BodyTraits<T>::enum_value, body.Union());
    builder.Finish(envelope, wire::EnvelopeIdentifier());
    return std::string(reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize());
  }
  static std::string ErrorAnswer(const Status& status);

  AgentApiOptions options_;
  TrustDomain trust_domain_;
  SpiffeId server_id_;
  Datastore& store_;
  EntryService& entries_;
  CaManager& ca_;
  const FederatedBundles& federated_;
  // By the attestation data kind they take; set before Start, read-only after.
  std::map<wire::AttestationData, NodeAttestor*> attestors_;

  transport::LoopThread io_;
  std::unique_ptr<EventLoopCompletionTarget> io_target_;
  std::unique_ptr<SvidSigner> signer_;
  std::unique_ptr<WorkerPool> agent_workers_;
  std::unique_ptr<WorkerPool> attestation_workers_;
  std::unique_ptr<WorkerPool> sync_worker_;  // CheckParkedSyncs, one at a time
  std::unique_ptr<transport::Http2Server> http_;
  std::shared_ptr<transport::TrustBundleSource> peer_bundle_;
  std::shared_ptr<transport::TlsContextSource> tls_;
  int port_ = 0;
  bool started_ = false;

  // Owning thread (RefreshCredentials): when the current server SVID should be renewed.
  TimePoint credentials_renew_at_{};
  std::shared_ptr<const X509Ca> credentials_issuer_;
  uint64_t credentials_bundle_sequence_ = 0;
  Swappable<transport::TlsCredentials> credentials_;

  // Workers.
  std::mutex authorized_mutex_;  // held while a set is read or advanced
  std::unordered_map<std::string, std::shared_ptr<AuthorizedSet>> authorized_;  // by agent ID
  std::mutex sent_mutex_;
  std::unordered_map<std::string, std::shared_ptr<const SentState>> sent_;  // by agent ID

  // Loop thread only. Parked syncs by the end of their wait; each knows its place.
  std::multimap<std::chrono::steady_clock::time_point, std::shared_ptr<ParkedSync>> parked_;
  uv_timer_t* sync_timer_ = nullptr;
  bool sync_check_running_ = false;  // one CheckParkedSyncs at a time
  bool sync_check_again_ = false;    // another look is due when the running one ends
  bool news_pending_ = false;        // a wake-up since the last look for news began
  std::chrono::steady_clock::time_point next_resync_{};
  std::atomic<uint64_t> wakeups_{0};  // WakeParkedSyncs calls; any thread
  ChangeFeed::Subscription entry_changes_;

  FailureLogByKey refusals_;
  RateLimiterByKey attestations_;  // by IP address
  RateLimiterByKey signatures_;    // by agent ID

  // Loop: each answered call, by its path (RecordCall, from Respond).
  struct MethodMetrics {
    std::string service;  // node_attestation, entry_sync, svid_signing: the file serving it
    std::string method;
    std::unique_ptr<CallCounter> spire;  // null where SPIRE has no such RPC
  };
  static Code AnswerCode(const std::string& message);
  void RecordCall(const transport::Http2ServerStream& stream, Code code);

  MetricsRegistry* metrics_;
  std::map<std::string, MethodMetrics, std::less<>> method_metrics_;  // set in the constructor
  Histogram* batch_items_ = nullptr;
};

}  // namespace sigil::serverd
