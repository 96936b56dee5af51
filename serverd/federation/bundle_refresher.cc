#include "serverd/federation/bundle_refresher.h"

#include <algorithm>
#include <map>
#include <memory>

#include "core/log.h"
#include "transport/peer_auth.h"

namespace sigil::serverd {
namespace {

using Clock = std::chrono::steady_clock;

// The TLS an https_spiffe endpoint is checked with: the bundle held for its domain, and its
// SPIFFE ID.
Result<std::shared_ptr<const transport::TlsContext>> SpiffeEndpointTls(const FederationRelationship& relationship,
                                                                       const FederatedBundles& federated) {
  transport::TlsOptions options;
  options.alpn = {"http/1.1"};
  const std::string name = relationship.trust_domain.name();
  auto held = federated.Current()->by_trust_domain.find(name);
  if (held == federated.Current()->by_trust_domain.end()) {
    return FailedPreconditionError("no bundle of " + name + " is held to authenticate its https_spiffe endpoint with; set the first one with `serverd bundle set -id spiffe://" + name + "`");
  }
  options.peer_bundle = std::make_shared<transport::TrustBundleSource>(std::make_shared<const X509Bundle>(held->second->x509));
  options.authorize = transport::AuthorizeId(*relationship.endpoint_spiffe_id);
  return transport::TlsContext::CreateClient(std::move(options));
}

}  // namespace

BundleRefresher::BundleRefresher(std::vector<FederationRelationship> configured, TrustDomain own, Datastore& store,
                                 FederatedBundles& federated, transport::HttpsGetOptions fetch)
    : configured_(std::move(configured)), own_(std::move(own)), store_(store), federated_(federated), fetch_(fetch) {}

BundleRefresher::~BundleRefresher() { Stop(); }

Status BundleRefresher::Start() {
  SIGIL_RETURN_IF_ERROR(Reload().AddContext("reading the federation relationships"));
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void BundleRefresher::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status BundleRefresher::Reload() {
  SIGIL_ASSIGN_OR_RETURN(std::vector<StoredFederationRelationship> rows, store_.ListFederationRelationships());
  std::vector<FederationRelationship> stored;
  for (const StoredFederationRelationship& row : rows) {
    auto relationship = FromStored(row, own_);
    if (!relationship.ok()) {
      LogError("a stored federation relationship does not pass its checks; its bundle is not fetched",
               {{"trust_domain", row.trust_domain},
                {"error", FieldOf(relationship.status()) + ": " + relationship.status().message()}});
      continue;
    }
    if (IsConfigured(relationship->trust_domain)) continue;  // the config file's wins
    stored.push_back(std::move(*relationship));
  }
  {
    std::lock_guard lock(mutex_);
    if (stored == stored_) return Status::Ok();
    stored_ = std::move(stored);
    ++relationships_version_;
  }
  wake_.notify_all();
  return Status::Ok();
}

bool BundleRefresher::IsConfigured(const TrustDomain& trust_domain) const {
  return std::any_of(configured_.begin(), configured_.end(),
                     [&](const FederationRelationship& r) { return r.trust_domain == trust_domain; });
}

std::vector<FederationRelationship> BundleRefresher::Relationships() const {
  std::vector<FederationRelationship> all = configured_;
  std::lock_guard lock(mutex_);
  all.insert(all.end(), stored_.begin(), stored_.end());
  return all;
}

Status BundleRefresher::RefreshNow(const TrustDomain& trust_domain) {
  for (const FederationRelationship& relationship : Relationships()) {
    if (relationship.trust_domain != trust_domain) continue;
    auto hint = Refresh(relationship);
    if (!hint.ok()) return std::move(hint).status().AddContext("refreshing the bundle of " + trust_domain.name());
    return Status::Ok();
  }
  return NotFoundError("there is no federation relationship with trust domain " + trust_domain.name());
}

Result<std::chrono::seconds> BundleRefresher::Refresh(const FederationRelationship& relationship) {
  std::lock_guard fetching(fetch_mutex_);
  const std::string name = relationship.trust_domain.name();
  SIGIL_ASSIGN_OR_RETURN(transport::HttpsUrl url, transport::HttpsUrl::Parse(relationship.bundle_endpoint_url));
  std::shared_ptr<const transport::TlsContext> tls;
  if (relationship.profile == BundleEndpointProfile::kHttpsWeb) {
    // Made once: it reads the system's CA file, the same for every https_web endpoint.
    if (!web_tls_) {
      transport::TlsOptions options;
      options.alpn = {"http/1.1"};
      options.verify_web_pki = true;
      SIGIL_ASSIGN_OR_RETURN(web_tls_, transport::TlsContext::CreateClient(std::move(options)));
    }
    tls = web_tls_;
  } else {
    SIGIL_ASSIGN_OR_RETURN(tls, SpiffeEndpointTls(relationship, federated_));
  }
  SIGIL_ASSIGN_OR_RETURN(transport::HttpResponse response, transport::HttpsGet(url, std::move(tls), fetch_));
  if (response.status != 200) {
    return UnavailableError("the endpoint answered " + std::to_string(response.status) + ": " + response.body.substr(0, 200));
  }
  auto fetched = TrustBundleFromJwks(relationship.trust_domain, response.body);
  if (!fetched.ok()) return std::move(fetched).status().AddContext("the endpoint's document is not a bundle of " + name);
  if (fetched->x509.authorities.empty()) return InvalidArgumentError("the endpoint's bundle of " + name + " has no X.509 authority");
  const std::chrono::seconds hint =
      fetched->refresh_hint.count() == 0 ? kDefaultRefresh : std::clamp(fetched->refresh_hint, kMinRefresh, kMaxRefresh);

  auto stored = store_.FetchBundle(name);
  if (stored.ok()) {
    if (stored->data == response.body) return hint;
    if (auto held = TrustBundleFromJwks(relationship.trust_domain, stored->data); held.ok() && held->sequence > fetched->sequence) {
      return FailedPreconditionError("the endpoint's bundle of " + name + " has sequence " + std::to_string(fetched->sequence) +
                                     ", lower than the " + std::to_string(held->sequence) + " held: a rollback is refused");
    }
  } else if (stored.status().code() != Code::kNotFound) {
    return stored.status();
  }
  SIGIL_ASSIGN_OR_RETURN(std::string jwks, TrustBundleToJwks(*fetched));
  if (stored.ok() && stored->data == jwks) return hint;
  SIGIL_RETURN_IF_ERROR(store_.SetBundle({name, jwks, true, 0}));
  SIGIL_RETURN_IF_ERROR(federated_.Reload());
  LogInfo("federated bundle refreshed", {{"trust_domain", name},
                                          {"sequence", std::to_string(fetched->sequence)},
                                          {"x509_authorities", std::to_string(fetched->x509.authorities.size())}});
  return hint;
}

void BundleRefresher::Run() {
  struct State {
    FederationRelationship relationship;
    Clock::time_point due;
    std::chrono::seconds backoff{0};
    // The last failure's message: a different one is news, logged at once.
    std::string last_error;
    // Failed for want of a bundle to check the endpoint with: tried again as soon as one is set.
    bool awaiting_bundle = false;
    std::unique_ptr<FailureLog> failures;
  };
  const auto new_log = [](const FederationRelationship& relationship) {
    return std::make_unique<FailureLog>(
        LogLevel::kWarn, "fetching the federated bundle of " + relationship.trust_domain.name() + " failed; the bundle held stays",
        std::chrono::minutes(1));
  };
  std::map<std::string, State> states;  // by trust domain name
  // A relationship added or changed is fetched at once; one removed is dropped.
  const auto track = [&](const std::vector<FederationRelationship>& relationships) {
    std::map<std::string, State> next;
    for (const FederationRelationship& relationship : relationships) {
      const std::string name = relationship.trust_domain.name();
      auto held = states.find(name);
      if (held != states.end() && held->second.relationship == relationship) {
        next.emplace(name, std::move(held->second));
        continue;
      }
      next.emplace(name, State{relationship, Clock::now(), std::chrono::seconds(0), {}, false, new_log(relationship)});
    }
    // The failures counted for a relationship removed or changed are logged, not lost.
    for (auto& [name, state] : states) {
      if (state.failures) state.failures->Flush();
    }
    states = std::move(next);
  };
  uint64_t relationships_version = 0;
  {
    std::lock_guard lock(mutex_);
    relationships_version = relationships_version_;
  }
  track(Relationships());
  uint64_t bundles_version = federated_.Current()->version;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (relationships_version != relationships_version_) {
      relationships_version = relationships_version_;
      lock.unlock();
      track(Relationships());
    } else {
      lock.unlock();
    }
    // A bundle set by hand (`bundle set`) is what an https_spiffe endpoint waits for.
    if (const uint64_t version = federated_.Current()->version; version != bundles_version) {
      bundles_version = version;
      for (auto& [name, state] : states) {
        if (state.awaiting_bundle) state.due = Clock::now();
      }
    }
    for (auto& [name, state] : states) {
      if (Clock::now() < state.due) continue;
      const FederationRelationship& relationship = state.relationship;
      auto hint = Refresh(relationship);
      if (hint.ok()) {
        state.due = Clock::now() + *hint;
        state.backoff = std::chrono::seconds(0);
        state.last_error.clear();
        state.awaiting_bundle = false;
        state.failures->Succeeded("federated bundle of " + name + " fetched again");
        continue;
      }
      state.backoff = std::min(kMaxBackoff, state.backoff.count() == 0 ? kMinRefresh : state.backoff * 2);
      state.due = Clock::now() + state.backoff;
      state.awaiting_bundle = hint.status().code() == Code::kFailedPrecondition &&
                              relationship.profile == BundleEndpointProfile::kHttpsSpiffe;
      const std::string error = hint.status().ToString();
      if (error != state.last_error && !state.last_error.empty()) {
        state.failures->Flush();
        state.failures = new_log(relationship);
      }
      state.last_error = error;
      state.failures->Failed({{"trust_domain", name},
                              {"endpoint", relationship.bundle_endpoint_url},
                              {"error", error},
                              {"retry_in", std::to_string(state.backoff.count()) + "s"}});
    }
    Clock::time_point next = Clock::now() + std::chrono::seconds(1);
    for (const auto& [name, state] : states) next = std::min(next, state.due);
    lock.lock();
    wake_.wait_until(lock, next, [&] { return stopping_ || relationships_version != relationships_version_; });
  }
  lock.unlock();
  for (auto& [name, state] : states) state.failures->Flush();
}

}  // namespace sigil::serverd
