// Keeps the bundle of each trust domain this server federates with (the config file's
// federation.federates_with and the relationships `serverd federation create` stored) current
// from that domain's bundle endpoint: fetched at start, then again after the refresh
// hint the endpoint's bundle carries (at least a second, at most an hour; five minutes when it
// names none), stored in the datastore as `bundle set` stores one, and so on to every agent
// whose entries federate with the domain.
//
// A fetch that fails (unreachable, an endpoint presenting another SPIFFE ID, a document that is
// not a bundle of that domain, a sequence number lower than the one held) keeps the bundle held
// and is tried again after a back-off, from one second doubling to five minutes; the error is
// logged once a minute per trust domain, and at once when it differs from the last one. An
// https_spiffe endpoint is checked against the bundle already held for its domain, so the first
// one is set by hand (`serverd bundle set`), as SPIRE asks; the endpoint is tried as soon as it
// is.
//
// Stored relationships are read at Start and again on Reload (after the admin API changed them,
// and on the server's periodic tick, which picks up another replica's change); a relationship
// added or changed is fetched at once, one removed is no longer fetched (its bundle stays until
// `bundle delete`).
//
// Thread safety: Start and Stop from the owning thread; the fetches run on a thread of their own,
// since each may block for its whole timeout. Reload and RefreshNow from any thread off an event
// loop; fetches are one at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/failure_log.h"
#include "core/status.h"
#include "serverd/datastore/datastore.h"
#include "serverd/federation/federated_bundles.h"
#include "serverd/federation/federation_config.h"
#include "transport/https_get.h"
#include "transport/tls.h"

namespace sigil::serverd {

class BundleRefresher {
 public:
  BundleRefresher(std::vector<FederationRelationship> configured, TrustDomain own, Datastore& store,
                  FederatedBundles& federated, transport::HttpsGetOptions fetch = {});
  ~BundleRefresher();

  Status Start();
  void Stop();

  // Reads the stored relationships again; a stored one that no longer passes the checks is
  // logged and left out.
  Status Reload();

  // Whether the config file's federates_with names `trust_domain` (those are changed there, not
  // through the admin API).
  bool IsConfigured(const TrustDomain& trust_domain) const;

  // The config file's relationships, then the stored ones, as of the last Reload.
  std::vector<FederationRelationship> Relationships() const;

  // `federation refresh`: one fetch of `trust_domain`'s endpoint now. NotFound when this server
  // does not federate with it.
  Status RefreshNow(const TrustDomain& trust_domain);

  // One fetch of `relationship`'s endpoint, stored when it is newer than the bundle held.
  // Returns the refresh hint to wait before the next.
  Result<std::chrono::seconds> Refresh(const FederationRelationship& relationship);

  static constexpr std::chrono::seconds kMinRefresh{1};
  static constexpr std::chrono::seconds kMaxRefresh{3600};
  static constexpr std::chrono::seconds kDefaultRefresh{300};
  static constexpr std::chrono::seconds kMaxBackoff{300};

 private:
  void Run();

  const std::vector<FederationRelationship> configured_;
  const TrustDomain own_;
  Datastore& store_;
  FederatedBundles& federated_;
  const transport::HttpsGetOptions fetch_;
  std::mutex fetch_mutex_;  // one fetch at a time: the rollback check reads what the last stored
  std::shared_ptr<const transport::TlsContext> web_tls_;  // guarded by fetch_mutex_; made at the first https_web fetch
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<FederationRelationship> stored_;  // guarded by mutex_
  uint64_t relationships_version_ = 0;          // guarded by mutex_; moves on every Reload change
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sigil::serverd
