#include "serverd/federation/federated_bundles.h"

#include "core/log.h"

namespace sigil::serverd {
namespace {

Result<TrustBundle> ParseStoredBundle(const std::string& trust_domain, const std::string& jwks) {
  SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse(trust_domain));
  return TrustBundleFromJwks(td, jwks);
}

}  // namespace

FederatedBundles::FederatedBundles(Datastore& store)
    : store_(store), current_(std::make_shared<const Snapshot>()) {}

Status FederatedBundles::Reload() {
  std::lock_guard lock(reload_mutex_);
  SIGIL_ASSIGN_OR_RETURN(std::vector<StoredBundle> stored, store_.ListBundles());
  std::map<std::string, std::string> read;
  for (StoredBundle& bundle : stored) {
    if (bundle.federated) read.emplace(std::move(bundle.trust_domain), std::move(bundle.data));
  }
  if (read == stored_) return Status::Ok();

  auto current = current_.Current();
  auto next = std::make_shared<Snapshot>();
  next->version = current->version + 1;
  for (const auto& [name, jwks] : read) {
    auto unchanged = stored_.find(name);
    auto kept = current->by_trust_domain.find(name);
    if (unchanged != stored_.end() && unchanged->second == jwks && kept != current->by_trust_domain.end()) {
      next->by_trust_domain.emplace(name, kept->second);
      continue;
    }
    Result<TrustBundle> parsed = ParseStoredBundle(name, jwks);
    if (!parsed.ok()) {
      LogError("a stored federated bundle does not parse; agents do not get it",
               {{"trust_domain", name}, {"error", parsed.status().ToString()}});
      continue;
    }
    next->by_trust_domain.emplace(name, std::make_shared<const TrustBundle>(std::move(*parsed)));
  }
  stored_ = std::move(read);
  current_.Set(std::move(next));
  return Status::Ok();
}

}  // namespace sigil::serverd
