#include "serverd/api/agent_api.h"

#include <algorithm>

#include "core/base64url.h"
#include "core/csr.h"
#include "core/jwt_svid.h"
#include "core/log.h"
#include "core/tpm_devid.h"
#include "core/wire/convert.h"
#include "core/x509_svid.h"
#include "hw/soft_key_store.h"

namespace sigil::serverd {

using transport::Http2ServerStream;
using StreamPtr = std::shared_ptr<Http2ServerStream>;

namespace {

bool IsAgentId(const SpiffeId& id, const TrustDomain& td) {
  return id.MemberOf(td) && id.path().starts_with("/spire/agent/");
}

}  // namespace

// The entries an agent may issue, read at one store revision.
struct AgentApi::AuthorizedSet : EntryService::Authorization {
  int64_t agent_updated_at = 0;
};

// What the last sync answer gave an agent, so the next one can say only what changed.
struct AgentApi::SentState {
  int64_t revision = 0;
  uint64_t bundle_sequence = 0;
  std::unordered_map<std::string, int64_t> entry_revisions;  // by entry ID
};

struct AgentApi::ParkedSync {
  StreamPtr stream;
  AttestedAgent agent;
  int64_t since_revision = 0;
  std::chrono::steady_clock::time_point deadline;
};

// What node attestation proved about a host.
struct AgentApi::HostIdentity {
  SpiffeId agent_id;
  std::string attestation_type;
  std::vector<Selector> selectors;
};

AgentApi::AgentApi(AgentApiOptions options, const TrustDomain& trust_domain, Datastore& store,
                   EntryService& entries, CaManager& ca, MetricsRegistry* metrics)
    : options_(std::move(options)),
      trust_domain_(trust_domain),
      server_id_(ServerSpiffeId(trust_domain)),
      store_(store),
      entries_(entries),
      ca_(ca),
      metrics_(metrics) {
  if (metrics_ != nullptr) {
    x509_issued_ = &metrics_->GetCounter("svid_issued_total", "SVIDs issued", {{"type", "x509"}});
    jwt_issued_ = &metrics_->GetCounter("svid_issued_total", "SVIDs issued", {{"type", "jwt"}});
    agents_attested_ = &metrics_->GetCounter("node_attestations_total", "Agents attested");
    batch_items_ = &metrics_->GetHistogram("csr_batch_items", "CSRs in one SignCsrBatch request",
                                           Histogram::ExponentialBounds(1, 4096));
  }
}

AgentApi::~AgentApi() { Stop(); }

Status AgentApi::Start() {
  auto current = ca_.current();
  peer_bundle_ = std::make_shared<transport::TrustBundleSource>(
      std::make_shared<const X509Bundle>(current->bundle.x509));
  SIGIL_RETURN_IF_ERROR(RefreshCredentials(std::chrono::system_clock::now()));
  pipeline_ = std::make_unique<SigningPipeline>(options_.pipeline, metrics_);
  io_.Start();
  started_ = true;
  io_target_ = std::make_unique<EventLoopCompletionTarget>(io_.loop());
  Status listening = io_.loop().Invoke([&]() -> Status {
    http_ = std::make_unique<transport::Http2Server>(
        &io_.loop(), transport::Http2ServerOptions{},
        [this](StreamPtr stream) { Handle(std::move(stream)); });
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
  LogInfo("agent API listening", {{"address", options_.bind_address + ":" + std::to_string(port_)}});
  return Status::Ok();
}

void AgentApi::Stop() {
  if (!started_) return;
  started_ = false;
  io_.loop().Invoke([&] {
    for (auto& sync : parked_) RespondError(*sync->stream, UnavailableError("serverd is stopping"));
    parked_.clear();
    if (sync_timer_ != nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(sync_timer_),
               [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
      sync_timer_ = nullptr;
    }
    if (http_) http_->Shutdown();
  });
  // Jobs still queued finish and post their answers to the loop before it drains.
  if (pipeline_) pipeline_->Stop();
  io_.Stop();
  http_.reset();
  pipeline_.reset();
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
  const TimePoint not_before = CertNotBefore(svid.leaf());
  credentials_renew_at_ = not_before + (svid.expires_at - not_before) / 2;
  return Status::Ok();
}

void AgentApi::Respond(Http2ServerStream& stream, const Bytes& message) {
  if (stream.closed() || stream.responded()) return;
  stream.Respond(200, {{"content-type", wire::kContentType}});
  stream.Write(std::string(message.begin(), message.end()));
  stream.End();
}

void AgentApi::RespondError(Http2ServerStream& stream, const Status& status) {
  Respond(stream, wire::OutcomeMessage(status));
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
  if (path == wire::kAttestPath) return Attest(std::move(stream));
  using Method = void (AgentApi::*)(StreamPtr, const AttestedAgent&);
  Method method = nullptr;
  if (path == wire::kRenewAgentSvidPath) method = &AgentApi::RenewAgentSvid;
  if (path == wire::kSyncEntriesPath) method = &AgentApi::SyncEntries;
  if (path == wire::kSignCsrBatchPath) method = &AgentApi::SignCsrBatch;
  if (path == wire::kMintJwtSvidPath) method = &AgentApi::MintJwtSvid;
  if (method == nullptr) {
    stream->Respond(404, {{"content-type", "text/plain"}});
    stream->Write("no agent API method " + path + "\n");
    stream->End();
    return;
  }
  auto agent = CallingAgent(*stream);
  if (!agent.ok()) {
    LogWarn("agent API call refused", {{"path", path}, {"peer", stream->peer().address},
                                       {"error", agent.status().ToString()}});
    return RespondError(*stream, agent.status());
  }
  (this->*method)(std::move(stream), *agent);
}

Result<AttestedAgent> AgentApi::CallingAgent(const Http2ServerStream& stream) {
  const auto& peer_id = stream.peer().spiffe_id;
  if (!peer_id) return UnauthenticatedError("this call needs the agent's X509-SVID (mutual TLS); attest first");
  if (!IsAgentId(*peer_id, trust_domain_)) {
    return PermissionDeniedError(peer_id->str() + " is not an agent of " + trust_domain_.name());
  }
  auto agent = store_.FetchAgent(peer_id->str());
  if (!agent.ok()) {
    if (agent.status().code() == Code::kNotFound) {
      return UnauthenticatedError("agent " + peer_id->str() + " is not attested (evicted?); it must attest again");
    }
    return agent.status();
  }
  if (agent->banned) return PermissionDeniedError("agent " + peer_id->str() + " is banned");
  return agent;
}

Result<std::shared_ptr<const AgentApi::AuthorizedSet>> AgentApi::Authorized(const AttestedAgent& agent) {
  SIGIL_ASSIGN_OR_RETURN(int64_t revision, store_.CurrentRevision());
  std::shared_ptr<AuthorizedSet>& cached = authorized_[agent.spiffe_id];
  if (cached && cached->revision == revision && cached->agent_updated_at == agent.updated_at) return std::shared_ptr<const AuthorizedSet>(cached);
  const int64_t now = NowUnixSeconds();
  if (cached && cached->agent_updated_at == agent.updated_at) {
    // Calls still running hold the old set; they keep it unchanged and this one moves on a copy.
    auto next = cached.use_count() == 1 ? cached : std::make_shared<AuthorizedSet>(*cached);
    if (entries_.Advance(agent, now, *next).ok()) {
      cached = std::move(next);
      return std::shared_ptr<const AuthorizedSet>(cached);
    }
  }
  auto set = std::make_shared<AuthorizedSet>();
  cached.reset();
  SIGIL_ASSIGN_OR_RETURN(static_cast<EntryService::Authorization&>(*set), entries_.Authorize(agent, now));
  set->agent_updated_at = agent.updated_at;
  cached = set;
  return std::shared_ptr<const AuthorizedSet>(cached);
}

// ---- node attestation ----

void AgentApi::Attest(StreamPtr stream) {
  const std::string& body = stream->request().body;
  auto request = wire::VerifiedMessage<wire::AttestationRequest>(
      AsBytes(body));
  if (!request.ok()) return RespondError(*stream, request.status());
  auto csr_bytes = wire::BytesOf((*request)->csr());
  Bytes csr(csr_bytes.begin(), csr_bytes.end());
  if (auto checked = CheckCsr(csr); !checked.ok()) {
    // Before the token is spent: a bad CSR must not burn a good token.
    return RespondError(*stream, std::move(checked).status().AddContext("agent CSR"));
  }
  const std::string peer = stream->peer().address;
  switch ((*request)->data_type()) {
    case wire::AttestationData::JoinTokenAttestation: {
      const std::string token = wire::StringOf((*request)->data_as_JoinTokenAttestation()->token());
      if (token.empty()) return RespondError(*stream, InvalidArgumentError("join token is empty"));
      auto agent_id = AgentSpiffeId(trust_domain_, "join_token/" + token);
      if (!agent_id.ok()) return RespondError(*stream, std::move(agent_id).status().AddContext("join token"));
      auto consumed = store_.ConsumeJoinToken(token, UnixSeconds(std::chrono::system_clock::now()));
      if (!consumed.ok()) {
        Status refused = consumed.status().code() == Code::kNotFound
                             ? PermissionDeniedError("join token is unknown or was already used")
                             : consumed.status().code() == Code::kPermissionDenied
                                   ? PermissionDeniedError("join token has expired")
                                   : consumed.status();
        LogWarn("join token attestation refused", {{"peer", peer}, {"error", refused.message()}});
        return RespondError(*stream, refused);
      }
      return IssueAgentSvid(std::move(stream), HostIdentity{*agent_id, "join_token", {}}, std::move(csr));
    }
    case wire::AttestationData::TpmDevIdAttestation: {
      if (devid_ == nullptr) {
        return RespondError(*stream, FailedPreconditionError("tpm_devid attestation is not configured on this server"));
      }
      auto challenge = devid_->Begin(wire::TpmDevIdEvidenceFromWire(*(*request)->data_as_TpmDevIdAttestation()));
      if (!challenge.ok()) {
        LogWarn("tpm_devid attestation refused", {{"peer", peer}, {"error", challenge.status().message()}});
        return RespondError(*stream, challenge.status());
      }
      flatbuffers::FlatBufferBuilder builder(1024);
      return Respond(*stream, wire::FinishMessage(builder, wire::TpmDevIdChallengeToWire(builder, *challenge)));
    }
    case wire::AttestationData::TpmDevIdChallengeAnswer: {
      if (devid_ == nullptr) {
        return RespondError(*stream, FailedPreconditionError("tpm_devid attestation is not configured on this server"));
      }
      auto host = devid_->Finish(wire::TpmDevIdAnswerFromWire(*(*request)->data_as_TpmDevIdChallengeAnswer()));
      if (!host.ok()) {
        LogWarn("tpm_devid attestation refused", {{"peer", peer}, {"error", host.status().message()}});
        return RespondError(*stream, host.status());
      }
      auto agent_id = AgentSpiffeId(trust_domain_, host->agent_path);
      if (!agent_id.ok()) return RespondError(*stream, agent_id.status());
      return IssueAgentSvid(std::move(stream), HostIdentity{*agent_id, "tpm_devid", host->selectors}, std::move(csr));
    }
    default:
      return RespondError(*stream, InvalidArgumentError("attestation data of an unknown kind"));
  }
}

void AgentApi::IssueAgentSvid(StreamPtr stream, HostIdentity host, Bytes csr) {
  auto existing = store_.FetchAgent(host.agent_id.str());
  if (existing.ok() && existing->banned) {
    LogWarn("banned agent refused", {{"agent", host.agent_id.str()}});
    return RespondError(*stream, PermissionDeniedError("agent " + host.agent_id.str() + " is banned"));
  }
  auto current = ca_.current();
  struct Job {
    Result<X509SvidDer> svid = Status(Code::kInternal, "not signed");
  };
  auto job = std::make_shared<Job>();
  X509SvidParams params(host.agent_id);
  params.ttl = options_.agent_svid_ttl;
  const bool renewal = host.attestation_type.empty();
  auto sign = [job, current, params, csr = std::move(csr)]() mutable {
    params.now = std::chrono::system_clock::now();
    job->svid = MintX509SvidDerFromCsr(*current->issuer, csr, params);
  };
  auto complete = [this, job, current, stream, host = std::move(host), renewal,
                   existed = existing.ok()]() {
    if (!job->svid.ok()) return RespondError(*stream, job->svid.status().AddContext("agent CSR"));
    auto leaf = CertFromDer(job->svid->chain_der.front());
    if (!leaf.ok()) return RespondError(*stream, leaf.status());
    const std::string serial = SerialHex(leaf->get());
    const int64_t expires_at = UnixSeconds(job->svid->expires_at);
    Status recorded;
    if (renewal) {
      recorded = store_.UpdateAgentSvid(host.agent_id.str(), serial, expires_at);
    } else {
      // Re-attestation of a known host (TPM) replaces what was learnt about it.
      if (existed) (void)store_.DeleteAgent(host.agent_id.str());
      AttestedAgent agent;
      agent.spiffe_id = host.agent_id.str();
      agent.attestation_type = host.attestation_type;
      agent.serial = serial;
      agent.expires_at = expires_at;
      agent.selectors = host.selectors;
      recorded = store_.CreateAgent(agent);
    }
    if (!recorded.ok()) return RespondError(*stream, recorded.AddContext("recording the agent"));
    flatbuffers::FlatBufferBuilder builder(4096);
    auto bundle = wire::BuildTrustBundle(builder, current->bundle);
    if (!bundle.ok()) return RespondError(*stream, bundle.status());
    auto chain = wire::BuildCertificates(builder, job->svid->chain_der);
    auto id = builder.CreateString(host.agent_id.str());
    Respond(*stream, wire::FinishMessage(builder, wire::CreateAgentSvidResponse(builder, id, chain, *bundle)));
    if (x509_issued_ != nullptr) x509_issued_->Add();
    if (!renewal) {
      if (agents_attested_ != nullptr) agents_attested_->Add();
      LogInfo("agent attested", {{"agent", host.agent_id.str()}, {"type", host.attestation_type},
                                 {"serial", serial}});
    }
  };
  Status queued = pipeline_->Submit({.sign = std::move(sign), .complete = std::move(complete), .target = io_target_.get()});
  if (!queued.ok()) RespondError(*stream, queued);
}

void AgentApi::RenewAgentSvid(StreamPtr stream, const AttestedAgent& agent) {
  const std::string& body = stream->request().body;
  auto request = wire::VerifiedMessage<wire::AgentSvidRequest>(
      AsBytes(body));
  if (!request.ok()) return RespondError(*stream, request.status());
  auto csr = wire::BytesOf((*request)->csr());
  auto agent_id = SpiffeId::Parse(agent.spiffe_id);
  if (!agent_id.ok()) return RespondError(*stream, agent_id.status());
  // An empty attestation type marks a renewal of the agent already on record.
  IssueAgentSvid(std::move(stream), HostIdentity{*agent_id, "", agent.selectors}, Bytes(csr.begin(), csr.end()));
}

// ---- entry sync ----

void AgentApi::SyncEntries(StreamPtr stream, const AttestedAgent& agent) {
  const std::string& body = stream->request().body;
  auto request = wire::VerifiedMessage<wire::EntrySyncRequest>(
      AsBytes(body));
  if (!request.ok()) return RespondError(*stream, request.status());
  auto sync = std::make_unique<ParkedSync>();
  sync->stream = stream;
  sync->agent = agent;
  sync->since_revision = static_cast<int64_t>((*request)->since_revision());
  const auto wait = std::min(std::chrono::milliseconds((*request)->wait_ms()), options_.max_sync_wait);
  sync->deadline = std::chrono::steady_clock::now() + wait;
  if (AnswerSync(*sync, wait.count() == 0)) return;
  parked_.push_back(std::move(sync));
  ArmSyncTimer();
}

bool AgentApi::AnswerSync(ParkedSync& sync, bool force) {
  if (sync.stream->closed()) return true;
  auto set = Authorized(sync.agent);
  if (!set.ok()) {
    RespondError(*sync.stream, set.status());
    return true;
  }
  auto current = ca_.current();
  std::shared_ptr<SentState>& sent = sent_[sync.agent.spiffe_id];
  const bool full = sync.since_revision == 0 || !sent || sent->revision != sync.since_revision;
  std::vector<const RegistrationEntry*> changed;
  std::vector<std::string> removed;
  if (full) {
    for (const auto& [id, entry] : (*set)->by_id) changed.push_back(&entry);
  } else {
    for (const auto& [id, entry] : (*set)->by_id) {
      auto it = sent->entry_revisions.find(id);
      if (it == sent->entry_revisions.end() || it->second != entry.revision) changed.push_back(&entry);
    }
    for (const auto& [id, revision] : sent->entry_revisions) {
      if (!(*set)->by_id.contains(id)) removed.push_back(id);
    }
  }
  const bool bundle_changed = !sent || sent->bundle_sequence != current->bundle.sequence;
  if (!full && changed.empty() && removed.empty() && !bundle_changed && !force) return false;

  std::sort(changed.begin(), changed.end(),
            [](const RegistrationEntry* a, const RegistrationEntry* b) { return a->id < b->id; });
  flatbuffers::FlatBufferBuilder builder(1024 + changed.size() * 512);
  std::vector<flatbuffers::Offset<wire::Entry>> entries;
  entries.reserve(changed.size());
  for (const RegistrationEntry* entry : changed) entries.push_back(wire::BuildEntry(builder, *entry));
  auto entry_vector = builder.CreateVector(entries);
  auto removed_vector = builder.CreateVectorOfStrings(removed);
  auto bundle = wire::BuildTrustBundle(builder, current->bundle);
  if (!bundle.ok()) {
    RespondError(*sync.stream, bundle.status());
    return true;
  }
  auto response = wire::CreateEntrySyncResponse(builder, static_cast<uint64_t>((*set)->revision), full,
                                                 entry_vector, removed_vector, *bundle);
  Respond(*sync.stream, wire::FinishMessage(builder, response));

  auto next = std::make_shared<SentState>();
  next->revision = (*set)->revision;
  next->bundle_sequence = current->bundle.sequence;
  next->entry_revisions.reserve((*set)->by_id.size());
  for (const auto& [id, entry] : (*set)->by_id) next->entry_revisions.emplace(id, entry.revision);
  sent = std::move(next);
  return true;
}

void AgentApi::ArmSyncTimer() {
  if (sync_timer_armed_ || sync_timer_ == nullptr) return;
  sync_timer_armed_ = true;
  const auto interval = static_cast<uint64_t>(options_.sync_poll_interval.count());
  uv_timer_start(sync_timer_, &AgentApi::OnSyncTimer, interval, interval);
}

void AgentApi::OnSyncTimer(uv_timer_t* timer) {
  auto* self = static_cast<AgentApi*>(timer->data);
  const auto now = std::chrono::steady_clock::now();
  auto revision = self->store_.CurrentRevision();
  const uint64_t bundle_sequence = self->ca_.current()->bundle.sequence;
  const bool something_changed = !revision.ok() || *revision != self->last_seen_revision_ ||
                                 bundle_sequence != self->last_seen_bundle_sequence_;
  if (revision.ok()) self->last_seen_revision_ = *revision;
  self->last_seen_bundle_sequence_ = bundle_sequence;
  std::erase_if(self->parked_, [&](const std::unique_ptr<ParkedSync>& sync) {
    if (sync->stream->closed()) return true;
    const bool expired = now >= sync->deadline;
    if (!something_changed && !expired) return false;
    return self->AnswerSync(*sync, expired);
  });
  if (self->parked_.empty()) {
    uv_timer_stop(timer);
    self->sync_timer_armed_ = false;
  }
}

// ---- workload SVIDs ----

void AgentApi::SignCsrBatch(StreamPtr stream, const AttestedAgent& agent) {
  const std::string& body = stream->request().body;
  auto request = wire::VerifiedMessage<wire::CsrBatchRequest>(
      AsBytes(body));
  if (!request.ok()) return RespondError(*stream, request.status());
  auto set = Authorized(agent);
  if (!set.ok()) return RespondError(*stream, set.status());

  struct Item {
    std::string entry_id;
    Status refused;  // set when the item never reached a signer
    Result<X509SvidDer> svid = Status(Code::kInternal, "not signed");
  };
  struct Batch {
    StreamPtr stream;
    std::vector<Item> items;
    size_t pending = 0;
  };
  auto batch = std::make_shared<Batch>();
  batch->stream = stream;
  const auto* items = (*request)->items();
  const size_t count = items == nullptr ? 0 : items->size();
  batch->items.resize(count);
  if (batch_items_ != nullptr) batch_items_->Observe(static_cast<double>(count));
  auto current = ca_.current();

  auto finish = [this, batch] {
    flatbuffers::FlatBufferBuilder builder(1024 + batch->items.size() * 1200);
    std::vector<flatbuffers::Offset<wire::CsrResult>> results;
    results.reserve(batch->items.size());
    uint64_t issued = 0;
    for (const Item& item : batch->items) {
      const Status status = !item.refused.ok() ? item.refused : item.svid.status();
      auto entry_id = builder.CreateString(item.entry_id);
      auto outcome = wire::BuildOutcome(builder, status);
      flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Certificate>>> chain;
      int64_t not_before = 0;
      int64_t not_after = 0;
      if (status.ok()) {
        chain = wire::BuildCertificates(builder, item.svid->chain_der);
        not_before = UnixSeconds(item.svid->not_before);
        not_after = UnixSeconds(item.svid->expires_at);
        ++issued;
      }
      results.push_back(wire::CreateCsrResult(builder, entry_id, outcome, chain, not_before, not_after));
    }
    auto vector = builder.CreateVector(results);
    Respond(*batch->stream, wire::FinishMessage(builder, wire::CreateCsrBatchResponse(builder, vector)));
    if (x509_issued_ != nullptr && issued > 0) x509_issued_->Add(issued);
  };

  // Count every job before submitting any, so an early completion cannot finish the batch.
  std::vector<std::pair<size_t, const RegistrationEntry*>> to_sign;
  for (size_t i = 0; i < count; ++i) {
    const auto* wire_item = items->Get(static_cast<flatbuffers::uoffset_t>(i));
    Item& item = batch->items[i];
    item.entry_id = wire::StringOf(wire_item->entry_id());
    auto it = (*set)->by_id.find(item.entry_id);
    if (item.entry_id.empty()) {
      item.refused = InvalidArgumentError("item " + std::to_string(i) + " has no entry_id");
    } else if (it == (*set)->by_id.end()) {
      item.refused = PermissionDeniedError("entry " + item.entry_id + " does not exist or is not authorized for agent " +
                                           agent.spiffe_id);
      LogWarn("CSR refused: entry not authorized", {{"agent", agent.spiffe_id}, {"entry_id", item.entry_id}});
    } else if (wire_item->csr() == nullptr || wire_item->csr()->size() == 0) {
      item.refused = InvalidArgumentError("entry " + item.entry_id + ": the CSR is empty");
    } else {
      to_sign.emplace_back(i, &it->second);
    }
  }
  batch->pending = to_sign.size();
  if (to_sign.empty()) return finish();
  for (const auto& [index, entry] : to_sign) {
    auto parsed_id = SpiffeId::Parse(entry->spiffe_id);
    if (!parsed_id.ok()) {
      batch->items[index].refused = parsed_id.status();
      if (--batch->pending == 0) finish();
      continue;
    }
    X509SvidParams params(*parsed_id);
    params.ttl = entry->x509_svid_ttl.count() > 0 ? entry->x509_svid_ttl : options_.default_x509_svid_ttl;
    params.dns_names = entry->dns_names;
    auto csr = wire::BytesOf(items->Get(static_cast<flatbuffers::uoffset_t>(index))->csr());
    auto sign = [batch, index, current, params, csr = Bytes(csr.begin(), csr.end())]() mutable {
      params.now = std::chrono::system_clock::now();
      Result<X509SvidDer> svid = MintX509SvidDerFromCsr(*current->issuer, csr, params);
      if (!svid.ok()) svid = std::move(svid).status().AddContext("entry " + batch->items[index].entry_id + ": CSR");
      batch->items[index].svid = std::move(svid);
    };
    auto complete = [batch, finish] {
      if (--batch->pending == 0) finish();
    };
    Status queued = pipeline_->Submit({.sign = std::move(sign), .complete = std::move(complete), .target = io_target_.get()});
    if (!queued.ok()) {
      batch->items[index].refused = queued;
      if (--batch->pending == 0) finish();
    }
  }
}

void AgentApi::MintJwtSvid(StreamPtr stream, const AttestedAgent& agent) {
  const std::string& body = stream->request().body;
  auto request = wire::VerifiedMessage<wire::JwtSvidRequest>(
      AsBytes(body));
  if (!request.ok()) return RespondError(*stream, request.status());
  auto set = Authorized(agent);
  if (!set.ok()) return RespondError(*stream, set.status());
  const std::string entry_id = wire::StringOf((*request)->entry_id());
  auto it = (*set)->by_id.find(entry_id);
  if (it == (*set)->by_id.end()) {
    return RespondError(*stream, PermissionDeniedError("entry " + entry_id + " does not exist or is not authorized for agent " +
                                                       agent.spiffe_id));
  }
  auto id = SpiffeId::Parse(it->second.spiffe_id);
  if (!id.ok()) return RespondError(*stream, id.status());
  JwtSvidParams params(*id);
  if ((*request)->audience() != nullptr) {
    for (const auto* audience : *(*request)->audience()) params.audience.push_back(audience->str());
  }
  if (params.audience.empty()) return RespondError(*stream, InvalidArgumentError("a JWT-SVID needs at least one audience"));
  params.ttl = it->second.jwt_svid_ttl.count() > 0 ? it->second.jwt_svid_ttl : options_.default_jwt_svid_ttl;
  auto current = ca_.current();
  auto result = std::make_shared<Result<JwtSvid>>(Status(Code::kInternal, "not signed"));
  auto sign = [result, current, params]() mutable {
    params.now = std::chrono::system_clock::now();
    *result = sigil::MintJwtSvid(*current->jwt_key, current->jwt_key_id, params);
  };
  auto complete = [this, result, stream] {
    flatbuffers::FlatBufferBuilder builder(1024);
    auto outcome = wire::BuildOutcome(builder, result->status());
    auto token = builder.CreateString(result->ok() ? (*result)->token : std::string());
    const int64_t expires_at = result->ok() ? UnixSeconds((*result)->expires_at) : 0;
    Respond(*stream, wire::FinishMessage(builder, wire::CreateJwtSvidResponse(builder, outcome, token, expires_at)));
    if (result->ok() && jwt_issued_ != nullptr) jwt_issued_->Add();
  };
  Status queued = pipeline_->Submit({.sign = std::move(sign), .complete = std::move(complete), .target = io_target_.get()});
  if (!queued.ok()) RespondError(*stream, queued);
}

}  // namespace sigil::serverd
