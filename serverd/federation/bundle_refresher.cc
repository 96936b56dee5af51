#include "serverd/federation/bundle_refresher.h"

#include <algorithm>
#include <memory>

#include "core/log.h"
#include "transport/peer_auth.h"

namespace sigil::serverd {
namespace {

using Clock = std::chrono::steady_clock;

// The TLS a relationship's endpoint is checked with.
Result<std::shared_ptr<const transport::TlsContext>> EndpointTls(const FederationRelationship& relationship,
                                                                 const FederatedBundles& federated) {
  transport::TlsOptions options;
  options.alpn = {"http/1.1"};
  if (relationship.profile == BundleEndpointProfile::kHttpsWeb) {
    options.verify_web_pki = true;
    return transport::TlsContext::CreateClient(std::move(options));
  }
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

BundleRefresher::BundleRefresher(std::vector<FederationRelationship> relationships, Datastore& store,
                                 FederatedBundles& federated, transport::HttpsGetOptions fetch)
    : relationships_(std::move(relationships)), store_(store), federated_(federated), fetch_(fetch) {}

BundleRefresher::~BundleRefresher() { Stop(); }

void BundleRefresher::Start() {
  if (relationships_.empty() || thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void BundleRefresher::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<std::chrono::seconds> BundleRefresher::Refresh(const FederationRelationship& relationship) {
  const std::string name = relationship.trust_domain.name();
  SIGIL_ASSIGN_OR_RETURN(transport::HttpsUrl url, transport::HttpsUrl::Parse(relationship.bundle_endpoint_url));
  SIGIL_ASSIGN_OR_RETURN(auto tls, EndpointTls(relationship, federated_));
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
    Clock::time_point due;
    std::chrono::seconds backoff{0};
    // The last failure's message: a different one is news, logged at once.
    std::string last_error;
    // Failed for want of a bundle to check the endpoint with: tried again as soon as one is set.
    bool awaiting_bundle = false;
    std::unique_ptr<FailureLog> failures;
  };
  std::vector<State> states(relationships_.size());
  const auto new_log = [](const FederationRelationship& relationship) {
    return std::make_unique<FailureLog>(
        LogLevel::kWarn, "fetching the federated bundle of " + relationship.trust_domain.name() + " failed; the bundle held stays",
        std::chrono::minutes(1));
  };
  for (size_t i = 0; i < relationships_.size(); ++i) {
    states[i].due = Clock::now();
    states[i].failures = new_log(relationships_[i]);
  }
  uint64_t bundles_version = federated_.Current()->version;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    // A bundle set by hand (`bundle set`) is what an https_spiffe endpoint waits for.
    if (const uint64_t version = federated_.Current()->version; version != bundles_version) {
      bundles_version = version;
      for (State& state : states) {
        if (state.awaiting_bundle) state.due = Clock::now();
      }
    }
    for (size_t i = 0; i < relationships_.size(); ++i) {
      State& state = states[i];
      if (Clock::now() < state.due) continue;
      const FederationRelationship& relationship = relationships_[i];
      const std::string name = relationship.trust_domain.name();
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
    for (const State& state : states) next = std::min(next, state.due);
    lock.lock();
    wake_.wait_until(lock, next, [&] { return stopping_; });
  }
  for (State& state : states) state.failures->Flush();
}

}  // namespace sigil::serverd
