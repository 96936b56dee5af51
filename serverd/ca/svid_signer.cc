#include "serverd/ca/svid_signer.h"

#include <algorithm>
#include <utility>

namespace sigil::serverd {

namespace {

template <typename... Visitors>
struct Overloaded : Visitors... {
  using Visitors::operator()...;
};
// clang 14 (the fuzz build's) does not deduce an aggregate's template arguments by itself.
template <typename... Visitors>
Overloaded(Visitors...) -> Overloaded<Visitors...>;

// A finished job on its way to its completion.
struct SignedX509 {
  std::shared_ptr<X509SvidCompletion> completion;
  size_t item;
  Result<X509SvidDer> svid;
};
struct SignedJwt {
  std::shared_ptr<JwtSvidCompletion> completion;
  Result<JwtSvid> svid;
};
using Signed = std::variant<SignedX509, SignedJwt>;

void Deliver(Signed& done) {
  std::visit(Overloaded{[](SignedX509& x) { x.completion->OnSigned(x.item, std::move(x.svid)); },
                        [](SignedJwt& j) { j.completion->OnSigned(std::move(j.svid)); }},
             done);
}

// The jobs of one CA state, signed with what it holds looked up once.
class IssuerGroup {
 public:
  explicit IssuerGroup(const CaManager::Current& ca)
      : issuer_(*ca.issuer), jwt_key_(*ca.jwt_key), jwt_key_id_(ca.jwt_key_id),
        now_(std::chrono::system_clock::now()) {}

  Signed operator()(WorkloadX509SvidJob& job) const {
    job.params.now = now_;
    return SignedX509{std::move(job.completion), job.item, MintX509SvidDerFromCsr(issuer_, job.csr_der, job.params)};
  }
  Signed operator()(AgentX509SvidJob& job) const {
    X509SvidParams params(std::move(job.params.agent_id));
    params.ttl = job.params.ttl;
    params.now = now_;
    return SignedX509{std::move(job.completion), 0, MintX509SvidDer(issuer_, job.key, params)};
  }
  Signed operator()(JwtSvidJob& job) const {
    job.params.now = now_;
    return SignedJwt{std::move(job.completion), MintJwtSvid(jwt_key_, jwt_key_id_, job.params)};
  }

 private:
  const X509Ca& issuer_;
  Signer& jwt_key_;
  const std::string& jwt_key_id_;
  const TimePoint now_;
};

}  // namespace

SvidSigner::SvidSigner(WorkerPoolOptions options, MetricsRegistry* metrics)
    : issuer_groups_(metrics == nullptr
                         ? nullptr
                         : &metrics->GetCounter("sigil_server_" + options.name + "_issuer_groups_total",
                                                "Groups of a batch signed with one issuer lookup",
                                                options.metric_labels)),
      workers_(std::move(options), metrics, [this](std::vector<Job>& batch) { SignBatch(batch); }) {}

Status SvidSigner::SignWorkloadX509Svid(CaState ca, CompletionTarget* target, WorkloadX509SvidJob job) {
  return workers_.Submit({.ca = std::move(ca), .target = target, .work = std::move(job)});
}

Status SvidSigner::SignAgentX509Svid(CaState ca, CompletionTarget* target, AgentX509SvidJob job) {
  return workers_.Submit({.ca = std::move(ca), .target = target, .work = std::move(job)});
}

Status SvidSigner::SignJwtSvid(CaState ca, CompletionTarget* target, JwtSvidJob job) {
  return workers_.Submit({.ca = std::move(ca), .target = target, .work = std::move(job)});
}

void SvidSigner::SignBatch(std::vector<Job>& batch) {
  // A batch nearly always has one CA state; two while a rotation is under way.
  std::vector<const CaManager::Current*> issuers;
  for (const Job& job : batch) {
    if (std::find(issuers.begin(), issuers.end(), job.ca.get()) == issuers.end()) issuers.push_back(job.ca.get());
  }
  std::vector<std::pair<CompletionTarget*, std::vector<Signed>>> by_target;
  for (const CaManager::Current* ca : issuers) {
    const IssuerGroup group(*ca);
    for (Job& job : batch) {
      if (job.ca.get() != ca) continue;
      Signed done = std::visit(group, job.work);
      if (job.target == nullptr) {
        Deliver(done);
        continue;
      }
      auto target = std::find_if(by_target.begin(), by_target.end(), [&](const auto& t) { return t.first == job.target; });
      if (target == by_target.end()) target = by_target.insert(by_target.end(), {job.target, {}});
      target->second.push_back(std::move(done));
    }
  }
  if (issuer_groups_ != nullptr) issuer_groups_->Add(issuers.size());
  for (auto& [target, signed_jobs] : by_target) {
    std::vector<std::function<void()>> hand_off;
    hand_off.push_back([signed_jobs = std::move(signed_jobs)]() mutable {
      for (Signed& done : signed_jobs) Deliver(done);
    });
    target->PostBatch(std::move(hand_off));
  }
}

}  // namespace sigil::serverd
