// The workload X509-SVIDs the agent holds, kept in data_dir so that an agent restarted while
// serverd is unreachable serves them until they expire or serverd answers.
//
// One file per entry in data_dir/svids/, named by the SHA-256 of the entry id, mode 0600 and
// written whole (durable_file.h): PEM blocks of the entry as serverd last sent it (its
// selectors decide who receives the SVID), of the entry the SVID was issued for when its shape
// differs (so a change still waiting for its new SVID is signed after a restart too), of the
// certificate chain and of the key. Beside them, trust_bundle.jwks: the trust domain's bundle,
// X.509 and JWT authorities, for the answers that carry it; and federated_bundles.json: the
// bundles of the other trust domains the agent's entries federate with, as serverd last sent
// them, so that a workload restarted meanwhile can still check its partners' SVIDs. One JSON
// object, each trust domain ID ("spiffe://partner.example") to its SPIFFE JWKS, replaced whole
// as the sync replaces them: one file rather than one per trust domain, whose name may take
// all of the 255 bytes a file name has.
//
// What Load restores goes into the cache at revision 0 (SvidCache::Restore): the first sync
// is a full one and drops every entry serverd no longer has, and Save then removes its file.
//
// Thread safety: one thread at a time; the agent calls Load at start and then Run on a thread
// of its own.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agentd/sync/retry.h"
#include "agentd/sync/svid_cache.h"
#include "core/spiffe_id.h"

namespace sigil::agentd {

class SvidStore {
 public:
  SvidStore(std::filesystem::path dir, TrustDomain trust_domain)
      : dir_(std::move(dir)), trust_domain_(std::move(trust_domain)) {}

  struct Loaded {
    std::vector<SvidCache::CachedEntry> entries;
    std::shared_ptr<const TrustBundle> bundle;  // null when none was kept
    std::map<std::string, TrustBundle> federated_bundles;  // by trust domain name, as the cache's
  };
  // What an earlier run kept and is still valid at `now`. A file that does not read back,
  // whose key is not its certificate's, whose certificate is not its entry's SPIFFE ID or that
  // has expired is removed, and logged; so are the federated bundles when their file does not
  // read back whole (serverd sends them again when it answers).
  Loaded Load(Clock::time_point now);

  // Removes every SVID kept: they were issued to an identity the agent does not hold any more.
  Status Clear();

  // Makes the folder hold what `snapshot` holds: writes the SVIDs, entries and bundles that
  // changed, removes those of entries gone (first, so a removed entry's SVID is never restored)
  // and the federated bundles' file when there are none. Returns early, with the rest for the
  // next call, when `stop` is set.
  Status Save(const SvidCache::Snapshot& snapshot, WakeSignal* stop = nullptr);

  // Saves after every change of `cache` (it wakes `changed`) until `changed` stops; a failed
  // save is retried with back-off.
  void Run(SvidCache* cache, WakeSignal* changed, BackoffPolicy retry);

 private:
  // What a file holds: the objects it was written from. Keyed by a view of the id inside
  // `entry`, which the map keeps alive, so a kept SVID costs no string of its own.
  struct Written {
    std::shared_ptr<const RegistrationEntry> entry;
    std::shared_ptr<const WorkloadX509Svid> svid;
  };
  std::filesystem::path FileOf(const std::string& entry_id) const;
  Result<SvidCache::CachedEntry> Read(const std::filesystem::path& path, Clock::time_point now) const;
  Status Write(const SvidCache::CachedEntry& cached) const;
  Status SaveBundle(const std::shared_ptr<const TrustBundle>& bundle);
  using FederatedBundles = std::map<std::string, std::shared_ptr<const TrustBundle>>;
  Result<std::map<std::string, TrustBundle>> ReadFederatedBundles() const;
  Status SaveFederatedBundles(const FederatedBundles& bundles);

  const std::filesystem::path dir_;
  const TrustDomain trust_domain_;
  std::map<std::string_view, Written> written_;
  std::shared_ptr<const TrustBundle> written_bundle_;
  // What federated_bundles.json holds, by trust domain name; null for a bundle read by Load,
  // which the cache holds a copy of (so the first Save writes the file once more).
  FederatedBundles written_federated_;
};

}  // namespace sigil::agentd
