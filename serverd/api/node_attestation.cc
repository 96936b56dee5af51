// Node attestation and agent SVIDs: Attest proves a host through the node attestor that takes
// its attestation data, and issues the agent's first SVID; RenewAgentSvid issues the next one
// over mTLS. Both run on workers: the CSR check, the attestor (datastore, TPM evidence) and the
// agent's record in the datastore may all take time an event loop must not spend.
#include <future>

#include "core/csr.h"
#include "core/log.h"
#include "core/wire/convert.h"
#include "serverd/api/agent_api.h"
#include "serverd/api/agent_api_state.h"

namespace sigil::serverd {

namespace {

// Hands an agent's SVID from the signer worker to the request worker waiting for it.
class AgentSvidHandOver final : public X509SvidCompletion {
 public:
  void OnSigned(size_t, Result<X509SvidDer> svid) override { signed_.set_value(std::move(svid)); }
  std::future<Result<X509SvidDer>> Signed() { return signed_.get_future(); }

 private:
  std::promise<Result<X509SvidDer>> signed_;
};

}  // namespace

// The request worker waits for the signer: recording the agent, which follows, must run off the
// loop too, and agent SVIDs are few beside workload SVIDs.
Result<X509SvidDer> AgentApi::SignAgentSvid(std::shared_ptr<const CaManager::Current> ca, CertifiableKey key,
                                            const SpiffeId& agent_id) {
  auto hand_over = std::make_shared<AgentSvidHandOver>();
  auto svid = hand_over->Signed();
  SIGIL_RETURN_IF_ERROR(signer_->SignAgentX509Svid(
      std::move(ca), nullptr,
      {.key = std::move(key), .params = {.agent_id = agent_id, .ttl = options_.agent_svid_ttl},
       .completion = std::move(hand_over)}));
  return svid.get();
}

void AgentApi::Attest(const StreamPtr& stream, const wire::AttestationRequest& request) {
  // Before the attestor: a bad CSR must not burn a good token, and an expensive key is refused
  // before anything else is spent on the request.
  auto csr_key = CheckCsr(wire::BytesOf(request.csr()));
  if (!csr_key.ok()) return AnswerError(stream, std::move(csr_key).status().AddContext("agent CSR"));
  auto attestor = attestors_.find(request.data_type());
  if (attestor == attestors_.end()) {
    return AnswerError(stream, request.data_type() == wire::AttestationData::NONE
                                   ? InvalidArgumentError("attestation data of an unknown kind")
                                   : FailedPreconditionError(std::string(wire::EnumNameAttestationData(request.data_type())) +
                                                             ": no node attestor for it is configured on this server"));
  }
  const std::string_view name = attestor->second->name();
  auto step = attestor->second->Attest(request);
  if (!step.ok()) {
    LogWarn(std::string(name) + " attestation refused",
            {{"peer", stream->peer().address}, {"error", step.status().message()}});
    Audit(stream, "AttestAgent", {{"attestation_type", name}}, step.status());
    return AnswerError(stream, step.status());
  }
  if (!step->host) return Answer(stream, std::string(step->challenge.begin(), step->challenge.end()));
  auto agent_id = AgentSpiffeId(trust_domain_, step->host->agent_path);
  if (!agent_id.ok()) return AnswerError(stream, agent_id.status());
  IssueAgentSvid(stream, *agent_id, &*step->host, std::move(*csr_key));
}

void AgentApi::RenewAgentSvid(const StreamPtr& stream, const wire::AgentSvidRequest& request,
                              const AttestedAgent& agent) {
  auto csr_key = CheckCsr(wire::BytesOf(request.csr()));
  if (!csr_key.ok()) return AnswerError(stream, std::move(csr_key).status().AddContext("agent CSR"));
  auto agent_id = SpiffeId::Parse(agent.spiffe_id);
  if (!agent_id.ok()) return AnswerError(stream, agent_id.status());
  IssueAgentSvid(stream, *agent_id, nullptr, std::move(*csr_key));
}

void AgentApi::IssueAgentSvid(const StreamPtr& stream, const SpiffeId& agent_id, const AttestedHost* host,
                              CertifiableKey csr_key) {
  const bool renewal = host == nullptr;
  const char* method = renewal ? "RenewAgent" : "AttestAgent";
  nlohmann::ordered_json audited{{"agent_id", agent_id.str()}};
  if (!renewal) {
    audited["attestation_type"] = host->attestation_type;
    if (!host->join_token.empty()) audited["join_token"] = AuditDigest(host->join_token);
  }
  auto existing = store_.FetchAgent(agent_id.str());
  if (existing.ok() && existing->banned) {
    LogWarn("banned agent refused", {{"agent", agent_id.str()}});
    const Status banned = PermissionDeniedError("agent " + agent_id.str() + " is banned");
    Audit(stream, method, audited, banned);
    return AnswerError(stream, banned);
  }
  auto current = ca_.current();
  auto svid = SignAgentSvid(current, std::move(csr_key), agent_id);
  if (!svid.ok()) return AnswerError(stream, std::move(svid).status().AddContext("signing the agent's SVID"));
  auto leaf = CertFromDer(svid->chain_der.front());
  if (!leaf.ok()) return AnswerError(stream, leaf.status());
  const std::string serial = SerialHex(leaf->get());
  flatbuffers::FlatBufferBuilder builder(4096);
  auto bundle = wire::BuildTrustBundle(builder, current->bundle);
  if (!bundle.ok()) return AnswerError(stream, bundle.status());
  auto chain = wire::BuildCertificates(builder, svid->chain_der);
  auto id = builder.CreateString(agent_id.str());
  std::string answer = FinishAnswer(builder, wire::CreateAgentSvidResponse(builder, id, chain, *bundle));

  // The last step that can fail: a join token is spent here, with the record, or not at all.
  const int64_t now = NowUnixSeconds();
  Status recorded;
  if (renewal) {
    recorded = store_.UpdateAgentSvid(agent_id.str(), serial, UnixSeconds(svid->expires_at), stream->peer().serial,
                                      now + options_.previous_agent_svid_overlap.count());
  } else {
    AttestedAgent agent;
    agent.spiffe_id = agent_id.str();
    agent.attestation_type = host->attestation_type;
    agent.serial = serial;
    agent.expires_at = UnixSeconds(svid->expires_at);
    agent.selectors = host->selectors;
    recorded = store_.RecordAttestedAgent(agent, host->join_token, now);
    // Another Attest spent the token since the attestor read it.
    if (recorded.code() == Code::kNotFound) recorded = PermissionDeniedError("join token is unknown or was already used");
  }
  if (!recorded.ok()) {
    Audit(stream, method, audited, recorded);
    return AnswerError(stream, recorded.AddContext("recording the agent"));
  }
  audited["serial"] = serial;
  Audit(stream, method, audited, Status::Ok());
  Answer(stream, std::move(answer));
  ca_.CountSignedX509Svids(1);
  if (!renewal) {
    LogInfo("agent attested", {{"agent", agent_id.str()}, {"type", host->attestation_type}, {"serial", serial}});
  }
}

}  // namespace sigil::serverd
