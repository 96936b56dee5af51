// Workload SVIDs: SignCsrBatch (many X509-SVIDs in one request, each item answered alone, up to
// max_csr_batch_items) and MintJwtSvid. A request worker authorises each item against the agent's entries and queues
// typed signing jobs; the signer workers sign them in batches and hand the results back to the
// loop, which answers once the last item of a request is done.
#include <atomic>

#include "core/jwt_svid.h"
#include "core/log.h"
#include "core/wire/convert.h"
#include "serverd/api/agent_api.h"
#include "serverd/api/agent_api_state.h"

namespace sigil::serverd {

// One SignCsrBatch request until it is answered. Its stream keeps the request body, and so the
// CSRs the signing jobs point into, alive.
struct AgentApi::CsrBatchAnswer final : X509SvidCompletion {
  struct Item {
    std::string entry_id;
    Status refused;  // set when the item never reached a signer
    Result<X509SvidDer> svid = Status(Code::kInternal, "not signed");
  };

  CsrBatchAnswer(AgentApi& api, StreamPtr stream, size_t count) : api(api), stream(std::move(stream)), items(count) {}

  // Loop thread; the request worker's writes happened before the job was queued.
  void OnSigned(size_t item, Result<X509SvidDer> svid) override {
    if (!svid.ok()) svid = std::move(svid).status().AddContext("entry " + items[item].entry_id + ": CSR");
    items[item].svid = std::move(svid);
    OneDone();
  }

  // Whoever takes the last pending item answers, on the loop.
  void OneDone() {
    if (pending.fetch_sub(1) == 1) api.AnswerCsrBatch(*this);
  }

  AgentApi& api;
  StreamPtr stream;
  std::vector<Item> items;
  std::atomic<size_t> pending{0};  // items not yet done
};

struct AgentApi::JwtSvidAnswer final : JwtSvidCompletion {
  JwtSvidAnswer(AgentApi& api, StreamPtr stream) : api(api), stream(std::move(stream)) {}

  void OnSigned(Result<JwtSvid> jwt) override {  // loop
    flatbuffers::FlatBufferBuilder builder(1024);
    auto outcome = wire::BuildOutcome(builder, jwt.status());
    auto token = builder.CreateString(jwt.ok() ? jwt->token : std::string());
    const int64_t expires_at = jwt.ok() ? UnixSeconds(jwt->expires_at) : 0;
    api.Respond(*stream, FinishAnswer(builder, wire::CreateJwtSvidResponse(builder, outcome, token, expires_at)));
    if (jwt.ok()) api.ca_.CountSignedJwtSvid();
  }

  AgentApi& api;
  StreamPtr stream;
};

void AgentApi::AnswerCsrBatch(const CsrBatchAnswer& batch) {
  flatbuffers::FlatBufferBuilder builder(1024 + batch.items.size() * 1200);
  std::vector<flatbuffers::Offset<wire::CsrResult>> results;
  results.reserve(batch.items.size());
  uint64_t issued = 0;
  for (const CsrBatchAnswer::Item& item : batch.items) {
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
  Respond(*batch.stream, FinishAnswer(builder, wire::CreateCsrBatchResponse(builder, vector)));
  if (issued > 0) ca_.CountSignedX509Svids(issued);
}

void AgentApi::SignCsrBatch(const StreamPtr& stream, const wire::CsrBatchRequest& request,
                            const AttestedAgent& agent) {
  const auto* items = request.items();
  const size_t count = items == nullptr ? 0 : items->size();
  // The vector's length counts every reference to an item, so a small body naming one item a
  // million times is refused here, whole, before any per-item work or log line.
  if (count > options_.max_csr_batch_items) {
    Status refused = InvalidArgumentError("SignCsrBatch carries " + std::to_string(count) + " items; at most " +
                                          std::to_string(options_.max_csr_batch_items) +
                                          " are allowed (agent_api_limits.max_csr_batch_items)");
    LogRefusal(*stream, refused);
    return AnswerError(stream, refused);
  }
  if (Status within = SpendSignatures(*stream, agent, count); !within.ok()) return AnswerError(stream, within);
  auto set = Authorized(agent);
  if (!set.ok()) return AnswerError(stream, set.status());
  auto batch = std::make_shared<CsrBatchAnswer>(*this, stream, count);
  if (batch_items_ != nullptr) batch_items_->Observe(static_cast<double>(count));

  std::vector<WorkloadX509SvidJob> jobs;
  jobs.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const auto* wire_item = items->Get(static_cast<flatbuffers::uoffset_t>(i));
    CsrBatchAnswer::Item& item = batch->items[i];
    item.entry_id = wire::StringOf(wire_item->entry_id());
    if (item.entry_id.empty()) {
      item.refused = InvalidArgumentError("item " + std::to_string(i) + " has no entry_id");
      continue;
    }
    auto found = (*set)->Find(item.entry_id, agent.spiffe_id);
    if (!found.ok()) {
      item.refused = found.status();
      if (found.status().code() == Code::kPermissionDenied) {
        // An agent asks again at every retry; one line per interval with a count says as much.
        refusals_.Failed(agent.spiffe_id + " CSR for an entry not authorized",
                         {{"agent", agent.spiffe_id}, {"entry_id", item.entry_id}, {"error", found.status().ToString()}});
      }
    } else if (wire_item->csr() == nullptr || wire_item->csr()->size() == 0) {
      item.refused = InvalidArgumentError("entry " + item.entry_id + ": the CSR is empty");
    } else {
      jobs.push_back({.csr_der = wire::BytesOf(wire_item->csr()),
                      .params = X509SvidParamsForEntry(*found->first, *found->second, options_.default_x509_svid_ttl,
                                                       TimePoint{}),
                      .completion = batch,
                      .item = i});
    }
  }
  // Every job is counted before any is queued, so an early completion cannot finish the batch.
  batch->pending = jobs.size();
  if (jobs.empty()) return io_.loop().Post([this, batch] { AnswerCsrBatch(*batch); });
  auto current = ca_.current();
  for (WorkloadX509SvidJob& job : jobs) {
    const size_t index = job.item;
    Status queued = signer_->SignWorkloadX509Svid(current, io_target_.get(), std::move(job));
    if (!queued.ok()) {
      batch->items[index].refused = queued;
      if (batch->pending.fetch_sub(1) == 1) io_.loop().Post([this, batch] { AnswerCsrBatch(*batch); });
    }
  }
}

void AgentApi::MintJwtSvid(const StreamPtr& stream, const wire::JwtSvidRequest& request,
                           const AttestedAgent& agent) {
  auto set = Authorized(agent);
  if (!set.ok()) return AnswerError(stream, set.status());
  auto found = (*set)->Find(wire::StringOf(request.entry_id()), agent.spiffe_id);
  if (!found.ok()) return AnswerError(stream, found.status());
  const RegistrationEntry& entry = *found->first;
  JwtSvidParams params(*found->second);
  params.issuer = options_.jwt_issuer;
  // Counted before a string is copied: flatbuffers lets one audience be named a million times.
  if (request.audience() != nullptr && request.audience()->size() > kMaxJwtAudiences) {
    return AnswerError(stream, InvalidArgumentError("a JWT-SVID request names " +
                                                    std::to_string(request.audience()->size()) +
                                                    " audiences; at most " + std::to_string(kMaxJwtAudiences)));
  }
  if (request.audience() != nullptr) {
    for (const auto* audience : *request.audience()) params.audience.push_back(audience->str());
  }
  if (params.audience.empty()) return AnswerError(stream, InvalidArgumentError("a JWT-SVID needs at least one audience"));
  if (Status bounded = CheckJwtAudiences(params.audience); !bounded.ok()) return AnswerError(stream, bounded);
  params.ttl = entry.jwt_svid_ttl.count() > 0 ? entry.jwt_svid_ttl : options_.default_jwt_svid_ttl;
  if (Status within = SpendSignatures(*stream, agent, 1); !within.ok()) return AnswerError(stream, within);
  Status queued = signer_->SignJwtSvid(ca_.current(), io_target_.get(),
                                       {.params = std::move(params),
                                        .completion = std::make_shared<JwtSvidAnswer>(*this, stream)});
  if (!queued.ok()) AnswerError(stream, queued);
}

}  // namespace sigil::serverd
