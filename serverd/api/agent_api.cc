// The agent API's listener and router, and what its services share: the calling agent and the
// entries it may issue.
#include "serverd/api/agent_api.h"

#include "core/base64url.h"
#include "core/log.h"
#include "core/wire/convert.h"
#include "hw/soft_key_store.h"
#include "serverd/api/agent_api_state.h"

namespace sigil::serverd {

using transport::Http2ServerStream;

namespace {

bool IsAgentId(const SpiffeId& id, const TrustDomain& td) {
  return id.MemberOf(td) && id.path().starts_with("/spire/agent/");
}

// "127.0.0.1:40112" without its port: a peer reconnecting is still the same peer.
std::string_view SourceAddress(std::string_view address) {
  const size_t colon = address.rfind(':');
  return colon == std::string_view::npos ? address : address.substr(0, colon);
}

}  // namespace

AgentApi::AgentApi(AgentApiOptions options, const TrustDomain& trust_domain, Datastore& store,
                   EntryService& entries, CaManager& ca, const FederatedBundles& federated,
                   MetricsRegistry* metrics)
    : options_(std::move(options)),
      trust_domain_(trust_domain),
      server_id_(ServerSpiffeId(trust_domain)),
      store_(store),
      entries_(entries),
      ca_(ca),
      federated_(federated),
      refusals_(LogLevel::kWarn, "agent API call refused", options_.refusal_log_interval),
      attestations_(options_.attestations_per_ip),
      signatures_(options_.svids_per_agent),
      metrics_(metrics) {
  if (metrics_ != nullptr) {
    batch_items_ = &metrics_->GetHistogram("sigil_server_csr_batch_items", "CSRs in one SignCsrBatch request",
                                           Histogram::ExponentialBounds(1, 4096));
  }
  // SPIRE's RPC of the same purpose, where it has one; entry sync is a long poll SPIRE lacks.
  const struct {
    std::string_view path, service, method, spire;
  } methods[] = {
      {wire::kAttestPath, "node_attestation", "Attest", "spire_server_rpc_agent_v1_agent_attest_agent"},
      {wire::kRenewAgentSvidPath, "node_attestation", "RenewAgentSvid", "spire_server_rpc_agent_v1_agent_renew_agent"},
      {wire::kSyncEntriesPath, "entry_sync", "SyncEntries", ""},
      {wire::kSignCsrBatchPath, "svid_signing", "SignCsrBatch", "spire_server_rpc_svid_v1_svid_batch_new_x509svid"},
      {wire::kMintJwtSvidPath, "svid_signing", "MintJwtSvid", "spire_server_rpc_svid_v1_svid_new_jwtsvid"},
  };
  for (const auto& m : methods) {
    MethodMetrics& of_method = method_metrics_[std::string(m.path)];
    of_method.service = m.service;
    of_method.method = m.method;
    if (!m.spire.empty()) {
      of_method.spire = std::make_unique<CallCounter>(metrics_, std::string(m.spire),
                                                      "Agent API calls to " + std::string(m.method) + ", by status");
    }
  }
}

AgentApi::~AgentApi() { Stop(); }

void AgentApi::AddNodeAttestor(NodeAttestor* attestor) {
  for (wire::AttestationData type : attestor->data_types()) attestors_[type] = attestor;
}

Status AgentApi::Start() {
  auto current = ca_.current();
  peer_bundle_ = std::make_shared<transport::TrustBundleSource>(
      std::make_shared<const X509Bundle>(current->bundle.x509));
  SIGIL_RETURN_IF_ERROR(RefreshCredentials(std::chrono::system_clock::now()));
  signer_ = std::make_unique<SvidSigner>(options_.pipeline, metrics_);
  agent_workers_ = std::make_unique<WorkerPool>(options_.agent_workers, metrics_);
  attestation_workers_ = std::make_unique<WorkerPool>(options_.attestation_workers, metrics_);
  sync_worker_ = std::make_unique<WorkerPool>(
      WorkerPool::Options{.queue_capacity = 4, .workers = 1, .max_batch = 1, .max_wait = {}, .name = "entry_sync"},
      metrics_);
  io_.Start();
  started_ = true;
  io_target_ = std::make_unique<EventLoopCompletionTarget>(io_.loop());
  Status listening = io_.loop().Invoke([&]() -> Status {
    http_ = std::make_unique<transport::Http2Server>(
        &io_.loop(), options_.http2, [this](StreamPtr stream) { Handle(std::move(stream)); });
    transport::TcpListenerOptions listen;
    listen.host = options_.bind_address;
    listen.port = options_.bind_port;
    SIGIL_RETURN_IF_ERROR(http_->ListenTcp(listen, tls_));
    port_ = http_->tcp_port();
    sync_timer_ = new uv_timer_t;
    uv_timer_init(io_.loop().uv(), sync_timer_);
    sync_timer_->data = this;
    return Status::Ok();
  });
  if (!listening.ok()) {
    Stop();
    return listening.AddContext("agent API on " + options_.bind_address + ":" + std::to_string(options_.bind_port));
  }
  entry_changes_ = store_.changes().Subscribe([this](StoreChange change) {
    if (change == StoreChange::kEntries) WakeParkedSyncs();
  });
  LogInfo("agent API listening", {{"address", options_.bind_address + ":" + std::to_string(port_)}});
  return Status::Ok();
}

void AgentApi::Stop() {
  if (!started_) return;
  started_ = false;
  entry_changes_ = {};  // no wake-up is posted to the loop from here on
  io_.loop().Invoke([&] {
    for (auto& [deadline, sync] : parked_) {
      sync->is_parked = false;
      Respond(*sync->stream, ErrorAnswer(UnavailableError("serverd is stopping")));
    }
    parked_.clear();
    if (sync_timer_ != nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(sync_timer_),
               [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
      sync_timer_ = nullptr;
    }
    if (http_) http_->Shutdown();
  });
  // Requests still queued finish and post their answers to the loop before it drains; request
  // workers may still queue signing jobs, so they stop before the signers.
  if (attestation_workers_) attestation_workers_->Stop();
  if (agent_workers_) agent_workers_->Stop();
  if (sync_worker_) sync_worker_->Stop();
  if (signer_) signer_->Stop();
  io_.Stop();
  http_.reset();
  attestation_workers_.reset();
  agent_workers_.reset();
  sync_worker_.reset();
  signer_.reset();
  refusals_.Flush();
}

Status AgentApi::RefreshCredentials(TimePoint now) {
  auto current = ca_.current();
  const bool bundle_changed = current->bundle.sequence != credentials_bundle_sequence_;
  if (bundle_changed && peer_bundle_) {
    peer_bundle_->Set(std::make_shared<const X509Bundle>(current->bundle.x509));
  }
  if (!bundle_changed && current->issuer == credentials_issuer_ && now < credentials_renew_at_) {
    return Status::Ok();
  }
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(KeyType::kEcP256));
  X509SvidParams params(server_id_);
  params.ttl = options_.default_x509_svid_ttl;
  params.now = now;
  SIGIL_ASSIGN_OR_RETURN(X509Svid svid, MintX509Svid(*current->issuer, key.get(), params));
  auto credentials = std::make_shared<transport::TlsCredentials>();
  credentials->leaf = UpRef(svid.leaf());
  for (size_t i = 1; i < svid.chain.size(); ++i) credentials->intermediates.push_back(UpRef(svid.chain[i].get()));
  credentials->key = std::move(key);
  transport::TlsOptions tls;
  tls.credentials = credentials;
  tls.peer_bundle = peer_bundle_;
  tls.require_peer_certificate = false;  // Attest comes before the agent has an SVID
  tls.authorize = transport::AuthorizeMemberOf(trust_domain_);
  SIGIL_ASSIGN_OR_RETURN(auto context, transport::TlsContext::CreateServer(std::move(tls)));
  if (tls_) {
    tls_->Set(std::move(context));
  } else {
    tls_ = std::make_shared<transport::TlsContextSource>(std::move(context));
  }
  credentials_issuer_ = current->issuer;
  credentials_bundle_sequence_ = current->bundle.sequence;
  credentials_.Set(credentials);
  const TimePoint not_before = CertNotBefore(svid.leaf());
  credentials_renew_at_ = not_before + (svid.expires_at - not_before) / 2;
  return Status::Ok();
}

std::string AgentApi::ErrorAnswer(const Status& status) {
  flatbuffers::FlatBufferBuilder builder(256);
  return FinishAnswer(builder, wire::BuildOutcome(builder, status));
}

// The call's outcome: a whole-call refusal is an Outcome body; a JWT-SVID answer carries its
// own; anything else answered the call (a batch's items have outcomes of their own).
Code AgentApi::AnswerCode(const std::string& message) {
  const auto* envelope = wire::GetEnvelope(message.data());
  if (const auto* outcome = envelope->body_as_Outcome()) return wire::StatusFromOutcome(outcome).code();
  if (const auto* jwt = envelope->body_as_JwtSvidResponse()) return wire::StatusFromOutcome(jwt->outcome()).code();
  return Code::kOk;
}

void AgentApi::RecordCall(const Http2ServerStream& stream, Code code) {
  if (metrics_ == nullptr) return;
  auto it = method_metrics_.find(stream.request().path);
  if (it == method_metrics_.end()) return;
  const MethodMetrics& of_method = it->second;
  if (of_method.spire) of_method.spire->Record(code, std::chrono::steady_clock::now() - stream.request_started());
  metrics_
      ->GetCounter("sigil_server_agent_api_calls_total", "Agent API calls by service, method and status",
                   {{"service", of_method.service}, {"method", of_method.method},
                    {"status", std::string(SpireStatusName(code))}})
      .Add();
}

void AgentApi::Respond(Http2ServerStream& stream, std::string message) {
  if (stream.responded()) return;
  if (stream.closed()) {  // the agent gave up on the call, or its connection went
    RecordCall(stream, Code::kCancelled);
    return;
  }
  RecordCall(stream, AnswerCode(message));
  stream.Respond(200, {{"content-type", wire::kContentType}});
  stream.Write(std::move(message));
  stream.End();
}

void AgentApi::Answer(StreamPtr stream, std::string message) {
  io_.loop().Post([this, stream = std::move(stream), message = std::move(message)]() mutable {
    Respond(*stream, std::move(message));
  });
}

void AgentApi::AnswerError(StreamPtr stream, const Status& status) { Answer(std::move(stream), ErrorAnswer(status)); }

void AgentApi::Audit(const StreamPtr& stream, std::string_view method, nlohmann::ordered_json fields,
                     const Status& status) {
  if (options_.audit == nullptr) return;
  const transport::PeerInfo& peer = stream->peer();
  nlohmann::ordered_json event{{"api", "agent"}, {"caller_address", peer.address}};
  if (peer.spiffe_id) event["caller_id"] = peer.spiffe_id->str();
  event["method"] = method;
  event["request"] = std::move(fields);
  event["status"] = CodeName(status.code());
  if (!status.ok()) event["status_message"] = status.message();
  options_.audit->Record(std::move(event));
}

// The request is complete and no longer written once the server hands the stream over, so the
// worker reads its body and peer in place; only the loop touches the stream otherwise.
template <typename Request>
void AgentApi::Route(StreamPtr stream, WorkerPool& pool, void (AgentApi::*method)(const StreamPtr&, const Request&)) {
  auto request = wire::VerifiedMessage<Request>(AsBytes(stream->request().body));
  if (!request.ok()) return Respond(*stream, ErrorAnswer(request.status()));
  const Request* typed = *request;
  Status queued = pool.Submit({.run = [this, stream, method, typed] { (this->*method)(stream, *typed); }});
  if (!queued.ok()) Respond(*stream, ErrorAnswer(queued));
}

template <typename Request>
void AgentApi::RouteAgent(StreamPtr stream,
                          void (AgentApi::*method)(const StreamPtr&, const Request&, const AttestedAgent&)) {
  const auto& peer_id = stream->peer().spiffe_id;
  Status refused;
  if (!peer_id) {
    refused = UnauthenticatedError("this call needs the agent's X509-SVID (mutual TLS); attest first");
  } else if (!IsAgentId(*peer_id, trust_domain_)) {
    refused = PermissionDeniedError(peer_id->str() + " is not an agent of " + trust_domain_.name());
  }
  if (!refused.ok()) {
    LogRefusal(*stream, refused);
    return Respond(*stream, ErrorAnswer(refused));
  }
  auto request = wire::VerifiedMessage<Request>(AsBytes(stream->request().body));
  if (!request.ok()) return Respond(*stream, ErrorAnswer(request.status()));
  const Request* typed = *request;
  Status queued = agent_workers_->Submit({.run = [this, stream, method, typed] {
    auto agent = CallingAgent(*stream);
    if (!agent.ok()) {
      LogRefusal(*stream, agent.status());
      return AnswerError(stream, agent.status());
    }
    (this->*method)(stream, *typed, *agent);
  }});
  if (!queued.ok()) Respond(*stream, ErrorAnswer(queued));
}

void AgentApi::Handle(StreamPtr stream) {
  const auto& request = stream->request();
  if (request.method != "POST") {
    stream->Respond(405, {{"content-type", "text/plain"}});
    stream->Write("the agent API takes POST\n");
    stream->End();
    return;
  }
  const std::string& path = request.path;
  if (path == wire::kAttestPath) {
    const std::string source(SourceAddress(stream->peer().address));
    if (!attestations_.TrySpend(source, 1)) {
      const Status refused = ResourceExhaustedError(
          "attestations from " + source + " exceed " + std::to_string(static_cast<int64_t>(attestations_.limit().per_second)) +
          " per second (agent_api_limits.attestations_per_second_per_ip); retry later");
      LogRefusal(*stream, refused);
      return Respond(*stream, ErrorAnswer(refused));
    }
    return Route(std::move(stream), *attestation_workers_, &AgentApi::Attest);
  }
  if (path == wire::kRenewAgentSvidPath) return RouteAgent(std::move(stream), &AgentApi::RenewAgentSvid);
  if (path == wire::kSyncEntriesPath) return RouteAgent(std::move(stream), &AgentApi::SyncEntries);
  if (path == wire::kSignCsrBatchPath) return RouteAgent(std::move(stream), &AgentApi::SignCsrBatch);
  if (path == wire::kMintJwtSvidPath) return RouteAgent(std::move(stream), &AgentApi::MintJwtSvid);
  stream->Respond(404, {{"content-type", "text/plain"}});
  stream->Write("no agent API method " + path + "\n");
  stream->End();
}

void AgentApi::LogRefusal(const Http2ServerStream& stream, const Status& refused) {
  const transport::PeerInfo& peer = stream.peer();
  std::string key = peer.spiffe_id ? peer.spiffe_id->str() : std::string(SourceAddress(peer.address));
  key += ' ';
  key += CodeName(refused.code());
  refusals_.Failed(key, {{"path", stream.request().path}, {"peer", peer.address}, {"error", refused.ToString()}});
}

Status AgentApi::SpendSignatures(const Http2ServerStream& stream, const AttestedAgent& agent, size_t count) {
  if (signatures_.TrySpend(agent.spiffe_id, static_cast<double>(count))) return Status::Ok();
  const Status refused = ResourceExhaustedError(
      "agent " + agent.spiffe_id + " asked for " + std::to_string(count) + " SVIDs, over its " +
      std::to_string(static_cast<int64_t>(signatures_.limit().per_second)) +
      " per second (agent_api_limits.svids_per_second_per_agent); retry later");
  LogRefusal(stream, refused);
  return refused;
}

Result<AttestedAgent> AgentApi::CallingAgent(const Http2ServerStream& stream) {
  const std::string agent_id = stream.peer().spiffe_id->str();
  auto agent = store_.FetchAgent(agent_id);
  if (!agent.ok()) {
    if (agent.status().code() == Code::kNotFound) {
      return UnauthenticatedError("agent " + agent_id + " is not attested (evicted?); it must attest again");
    }
    return agent.status();
  }
  if (agent->banned) return PermissionDeniedError("agent " + agent_id + " is banned");
  const std::string& presented = stream.peer().serial;
  const bool previous = !agent->previous_serial.empty() && presented == agent->previous_serial &&
                        NowUnixSeconds() < agent->previous_serial_valid_until;
  if (presented != agent->serial && !previous) {
    return UnauthenticatedError("agent " + agent_id + " presented an SVID (serial " + presented +
                                ") that is no longer its current one; it must attest again");
  }
  return agent;
}

Result<std::shared_ptr<const AgentApi::AuthorizedSet>> AgentApi::Authorized(const AttestedAgent& agent) {
  std::lock_guard lock(authorized_mutex_);
  SIGIL_ASSIGN_OR_RETURN(int64_t revision, store_.CurrentRevision());
  std::shared_ptr<AuthorizedSet>& cached = authorized_[agent.spiffe_id];
  if (cached && cached->revision == revision && cached->agent_updated_at == agent.updated_at) {
    return std::shared_ptr<const AuthorizedSet>(cached);
  }
  const int64_t now = NowUnixSeconds();
  if (cached && cached->agent_updated_at == agent.updated_at) {
    // Calls still running hold the old set; they keep it unchanged and this one moves on a
    // copy. Nobody takes a new reference without the lock, so a count of one is exact.
    auto next = cached.use_count() == 1 ? cached : std::make_shared<AuthorizedSet>(*cached);
    if (entries_.Advance(agent, now, *next).ok()) {
      next->ParseIds();
      cached = std::move(next);
      return std::shared_ptr<const AuthorizedSet>(cached);
    }
  }
  auto set = std::make_shared<AuthorizedSet>();
  cached.reset();
  SIGIL_ASSIGN_OR_RETURN(static_cast<EntryService::Authorization&>(*set), entries_.Authorize(agent, now));
  set->agent_updated_at = agent.updated_at;
  set->ParseIds();
  cached = set;
  return std::shared_ptr<const AuthorizedSet>(cached);
}

}  // namespace sigil::serverd
