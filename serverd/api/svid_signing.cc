// Workload SVIDs: SignCsrBatch (many X509-SVIDs in one request, each item answered alone) and
// MintJwtSvid. A request worker authorises each item against the agent's entries and queues
// signing jobs; the signing pipeline's workers sign them in batches and hand the results back
// to the loop, which answers once the last item of a request is done.
#include <atomic>

#include "core/jwt_svid.h"
#include "core/log.h"
#include "core/wire/convert.h"
#include "serverd/api/agent_api.h"
#include "serverd/api/agent_api_state.h"

namespace sigil::serverd {

namespace {

struct BatchItem {
  std::string entry_id;
  Status refused;  // set when the item never reached a signer
  Result<X509SvidDer> svid = Status(Code::kInternal, "not signed");
};

}  // namespace

void AgentApi::SignCsrBatch(const StreamPtr& stream, const wire::CsrBatchRequest& request,
                            const AttestedAgent& agent) {
  auto set = Authorized(agent);
  if (!set.ok()) return AnswerError(stream, set.status());

  // Filled by this worker; each signer writes its own item; the loop reads them all once the
  // last item is done.
  struct Batch {
    StreamPtr stream;
    std::vector<BatchItem> items;
    std::atomic<size_t> pending{0};  // jobs not yet done; who takes it to zero answers
  };
  auto batch = std::make_shared<Batch>();
  batch->stream = stream;
  const auto* items = request.items();
  const size_t count = items == nullptr ? 0 : items->size();
  batch->items.resize(count);
  if (batch_items_ != nullptr) batch_items_->Observe(static_cast<double>(count));
  auto current = ca_.current();

  // Loop thread: the answer, built once all items are done.
  auto finish = [this, batch] {
    flatbuffers::FlatBufferBuilder builder(1024 + batch->items.size() * 1200);
    std::vector<flatbuffers::Offset<wire::CsrResult>> results;
    results.reserve(batch->items.size());
    uint64_t issued = 0;
    for (const BatchItem& item : batch->items) {
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
    Respond(*batch->stream, FinishAnswer(builder, wire::CreateCsrBatchResponse(builder, vector)));
    if (x509_issued_ != nullptr && issued > 0) x509_issued_->Add(issued);
  };

  struct ToSign {
    size_t index;
    X509SvidParams params;
  };
  std::vector<ToSign> to_sign;
  to_sign.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const auto* wire_item = items->Get(static_cast<flatbuffers::uoffset_t>(i));
    BatchItem& item = batch->items[i];
    item.entry_id = wire::StringOf(wire_item->entry_id());
    if (item.entry_id.empty()) {
      item.refused = InvalidArgumentError("item " + std::to_string(i) + " has no entry_id");
      continue;
    }
    auto found = (*set)->Find(item.entry_id, agent.spiffe_id);
    if (!found.ok()) {
      item.refused = found.status();
      if (found.status().code() == Code::kPermissionDenied) {
        LogWarn("CSR refused: entry not authorized", {{"agent", agent.spiffe_id}, {"entry_id", item.entry_id}});
      }
    } else if (wire_item->csr() == nullptr || wire_item->csr()->size() == 0) {
      item.refused = InvalidArgumentError("entry " + item.entry_id + ": the CSR is empty");
    } else {
      to_sign.push_back({i, X509SvidParamsForEntry(*found->first, *found->second, options_.default_x509_svid_ttl,
                                                   TimePoint{})});
    }
  }
  // Every job is counted before any is queued, so an early completion cannot finish the batch.
  batch->pending = to_sign.size();
  if (to_sign.empty()) return io_.loop().Post(std::move(finish));
  for (auto& [index, params] : to_sign) {
    // The CSR stays in the request body, which the batch's stream keeps alive.
    auto csr = wire::BytesOf(items->Get(static_cast<flatbuffers::uoffset_t>(index))->csr());
    auto sign = [batch, index = index, current, params = std::move(params), csr]() mutable {
      params.now = std::chrono::system_clock::now();
      Result<X509SvidDer> svid = MintX509SvidDerFromCsr(*current->issuer, csr, params);
      if (!svid.ok()) svid = std::move(svid).status().AddContext("entry " + batch->items[index].entry_id + ": CSR");
      batch->items[index].svid = std::move(svid);
    };
    auto complete = [batch, finish] {
      if (batch->pending.fetch_sub(1) == 1) finish();
    };
    Status queued = pipeline_->Submit({.run = std::move(sign), .complete = std::move(complete), .target = io_target_.get()});
    if (!queued.ok()) {
      batch->items[index].refused = queued;
      if (batch->pending.fetch_sub(1) == 1) io_.loop().Post(finish);
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
  if (request.audience() != nullptr) {
    for (const auto* audience : *request.audience()) params.audience.push_back(audience->str());
  }
  if (params.audience.empty()) return AnswerError(stream, InvalidArgumentError("a JWT-SVID needs at least one audience"));
  params.ttl = entry.jwt_svid_ttl.count() > 0 ? entry.jwt_svid_ttl : options_.default_jwt_svid_ttl;
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
    Respond(*stream, FinishAnswer(builder, wire::CreateJwtSvidResponse(builder, outcome, token, expires_at)));
    if (result->ok() && jwt_issued_ != nullptr) jwt_issued_->Add();
  };
  Status queued = pipeline_->Submit({.run = std::move(sign), .complete = std::move(complete), .target = io_target_.get()});
  if (!queued.ok()) AnswerError(stream, queued);
}

}  // namespace sigil::serverd
