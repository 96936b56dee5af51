// The workload X509-SVIDs the agent holds, kept in data_dir so that an agent restarted while
// serverd is unreachable serves them until they expire or serverd answers.
//
// One file per entry in data_dir/svids/, named by the SHA-256 of the entry id, mode 0600 and
// written whole (durable_file.h): PEM blocks of the entry as serverd last sent it (its
// selectors decide who receives the SVID), of the entry the SVID was issued for when its shape
// differs (so a change still waiting for its new SVID is signed after a restart too), of the
// certificate chain and of the key. Beside them, trust_bundle.jwks: the trust domain's bundle,
// X.509 and JWT authorities, for the answers that carry it.
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
  };
  // What an earlier run kept and is still valid at `now`. A file that does not read back,
  // whose key is not its certificate's, whose certificate is not its entry's SPIFFE ID or that
  // has expired is removed, and logged.
  Loaded Load(Clock::time_point now);

  // Removes every SVID kept: they were issued to an identity the agent does not hold any more.
  Status Clear();

  // Makes the folder hold what `snapshot` holds: writes the SVIDs and entries that changed,
  // removes those of entries gone (first, so a removed entry's SVID is never restored). Returns
  // early, with the rest for the next call, when `stop` is set.
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

  const std::filesystem::path dir_;
  const TrustDomain trust_domain_;
  std::map<std::string_view, Written> written_;
  std::shared_ptr<const TrustBundle> written_bundle_;
};

}  // namespace sigil::agentd
