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
// when the agent must attest again (evicted, unknown), PermissionDenied when it is banned or
// asks for what it may not have, ResourceExhausted when the signing queue is full (back off),
// InvalidArgument naming what was malformed.
//
// serverd's own certificate is an X509-SVID for spiffe://<td>/spire/server from the active CA,
// renewed at half-life and whenever the CA changes; agents pin the trust bundle.
//
// Signing never runs on the I/O loop: every SVID and JWT goes through the signing pipeline, and
// results come back to the loop once per batch.
//
// Thread safety: Start, Stop and RefreshCredentials from the owning thread; the rest runs on
// the API's loop.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/metrics.h"
#include "core/spiffe_id.h"
#include "serverd/ca/ca_manager.h"
#include "serverd/datastore/datastore.h"
#include "serverd/entry/entry_service.h"
#include "serverd/ca/signing_pipeline.h"
#include "serverd/attestor/tpm_devid_attestor.h"
#include "transport/event_loop.h"
#include "transport/http2_server.h"
#include "transport/tls.h"

namespace sigil::serverd {

struct AgentApiOptions {
  std::string bind_address = "0.0.0.0";
  int bind_port = 8081;  // 0: any free port (tests)
  std::chrono::seconds agent_svid_ttl{3600};
  std::chrono::seconds default_x509_svid_ttl{3600};
  std::chrono::seconds default_jwt_svid_ttl{300};
  SigningPipeline::Options pipeline;
  // How often parked entry syncs look for a newer revision or bundle. Changes made through this
  // server are seen at the next tick; so are changes written by another replica to a shared
  // store.
  std::chrono::milliseconds sync_poll_interval{50};
  std::chrono::milliseconds max_sync_wait{60'000};
};

class AgentApi {
 public:
  AgentApi(AgentApiOptions options, const TrustDomain& trust_domain, Datastore& store,
           EntryService& entries, CaManager& ca, MetricsRegistry* metrics);
  ~AgentApi();
  AgentApi(const AgentApi&) = delete;
  AgentApi& operator=(const AgentApi&) = delete;

  // Enables tpm_devid attestation; `devid` must outlive the API. Before Start.
  void SetTpmDevIdAttestor(TpmDevIdAttestor* devid) { devid_ = devid; }

  Status Start();
  void Stop();
  int port() const { return port_; }

  // Renews serverd's own SVID when it passed half-life or the CA changed, and points peer
  // verification at the current bundle. Signs with the CA key: call it off the I/O loop.
  Status RefreshCredentials(TimePoint now);

 private:
  struct AuthorizedSet;
  struct SentState;
  struct ParkedSync;
  struct HostIdentity;

  void Handle(std::shared_ptr<transport::Http2ServerStream> stream);
  void Attest(std::shared_ptr<transport::Http2ServerStream> stream);
  void RenewAgentSvid(std::shared_ptr<transport::Http2ServerStream> stream, const AttestedAgent& agent);
  void SyncEntries(std::shared_ptr<transport::Http2ServerStream> stream, const AttestedAgent& agent);
  void SignCsrBatch(std::shared_ptr<transport::Http2ServerStream> stream, const AttestedAgent& agent);
  void MintJwtSvid(std::shared_ptr<transport::Http2ServerStream> stream, const AttestedAgent& agent);

  // The attested agent behind an mTLS request: Unauthenticated when it has no SVID or is no
  // longer attested, PermissionDenied when banned.
  Result<AttestedAgent> CallingAgent(const transport::Http2ServerStream& stream);
  Result<std::shared_ptr<const AuthorizedSet>> Authorized(const AttestedAgent& agent);
  // Mints the agent's SVID from `csr` on a signer worker, records the agent, and answers.
  void IssueAgentSvid(std::shared_ptr<transport::Http2ServerStream> stream, HostIdentity host, Bytes csr);
  // Answers a parked or fresh sync when there is something to say (or `force`); false when it
  // stays parked.
  bool AnswerSync(ParkedSync& sync, bool force);
  void ArmSyncTimer();
  static void OnSyncTimer(uv_timer_t* timer);

  void Respond(transport::Http2ServerStream& stream, const Bytes& message);
  void RespondError(transport::Http2ServerStream& stream, const Status& status);

  AgentApiOptions options_;
  TrustDomain trust_domain_;
  SpiffeId server_id_;
  Datastore& store_;
  EntryService& entries_;
  CaManager& ca_;
  TpmDevIdAttestor* devid_ = nullptr;

  transport::LoopThread io_;
  std::unique_ptr<EventLoopCompletionTarget> io_target_;
  std::unique_ptr<SigningPipeline> pipeline_;
  std::unique_ptr<transport::Http2Server> http_;
  std::shared_ptr<transport::TrustBundleSource> peer_bundle_;
  std::shared_ptr<transport::TlsContextSource> tls_;
  int port_ = 0;
  bool started_ = false;

  // Owning thread (RefreshCredentials): when the current server SVID should be renewed.
  TimePoint credentials_renew_at_{};
  std::shared_ptr<const X509Ca> credentials_issuer_;
  uint64_t credentials_bundle_sequence_ = 0;

  // Loop thread only.
  std::unordered_map<std::string, std::shared_ptr<AuthorizedSet>> authorized_;  // by agent ID
  std::unordered_map<std::string, std::shared_ptr<SentState>> sent_;                 // by agent ID
  std::vector<std::unique_ptr<ParkedSync>> parked_;
  uv_timer_t* sync_timer_ = nullptr;
  bool sync_timer_armed_ = false;
  int64_t last_seen_revision_ = -1;
  uint64_t last_seen_bundle_sequence_ = 0;

  MetricsRegistry* metrics_;
  Counter* x509_issued_ = nullptr;
  Counter* jwt_issued_ = nullptr;
  Counter* agents_attested_ = nullptr;
  Histogram* batch_items_ = nullptr;
};

}  // namespace sigil::serverd
