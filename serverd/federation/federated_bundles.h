// The bundles of the trust domains this server federates with, as agents receive them: read
// from the datastore and parsed once, with a version that moves whenever one of them is set,
// replaced or deleted, so that a parked entry sync wakes when a bundle its agent needs changed.
//
// Everything that changes a federated bundle in the datastore (the admin API's `bundle set` and
// `bundle delete`) calls Reload after it, so agents see the change at their next sync tick.
//
// Thread safety: Current may be called from any thread; Reload reads the datastore, so it runs
// on a worker, one at a time (it serialises itself).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"
#include "core/swappable.h"
#include "core/trust_bundle.h"
#include "serverd/datastore/datastore.h"

namespace sigil::serverd {

class FederatedBundles {
 public:
  struct Snapshot {
    uint64_t version = 0;
    std::map<std::string, std::shared_ptr<const TrustBundle>, std::less<>> by_trust_domain;  // by name
  };

  explicit FederatedBundles(Datastore& store);
  FederatedBundles(const FederatedBundles&) = delete;
  FederatedBundles& operator=(const FederatedBundles&) = delete;

  // Reads every federated bundle from the datastore and publishes a new snapshot when any was
  // added, changed or removed. A stored bundle that no longer parses is logged and left out;
  // the others still load.
  Status Reload();

  std::shared_ptr<const Snapshot> Current() const { return current_.Current(); }

 private:
  Datastore& store_;
  std::mutex reload_mutex_;
  std::map<std::string, std::string> stored_;  // the JWKS of each bundle last read; reload_mutex_
  Swappable<Snapshot> current_;
};

}  // namespace sigil::serverd
