// The agent's cache: the registration entries this agent may issue, the X509-SVID of each,
// JWT-SVIDs by audience, and the trust bundles (the agent's own trust domain and the federated
// ones). The Workload API answers from here without touching the server;
// the sync and rotation code fills it.
//
// Readers take an immutable snapshot (one shared_ptr copy under a short lock) and never wait
// for a writer to finish its work; writers build a new snapshot and swap it in, then tell the
// subscribers (the Workload API's open streams) that something changed.
//
// Thread safety: every method may be called from any thread. Subscriber callbacks run on the
// writer's thread and must only hand work to their own loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/openssl_util.h"
#include "core/registration_entry.h"
#include "core/selector.h"
#include "core/swappable.h"
#include "core/trust_bundle.h"

namespace sigil::agentd {

using Clock = std::chrono::system_clock;

// Halfway from `from` to `to`, for any two times: `from + (to - from) / 2` overflows when they
// lie near the clock's ends, as times a peer sends may (FromUnixSeconds saturates there).
inline Clock::time_point Midpoint(Clock::time_point from, Clock::time_point to) {
  const auto half = std::midpoint(from.time_since_epoch().count(), to.time_since_epoch().count());
  return Clock::time_point(Clock::duration(half));
}

// An X509-SVID in the form the Workload API hands out.
struct WorkloadX509Svid {
  // The entry as it stood when this SVID was issued: what the SVID was issued for (SPIFFE ID,
  // DNS names, TTL; a change in any of these needs a new SVID) and its hint. It is the cache's
  // own entry object, shared, so an SVID costs little beyond its certificates and key.
  std::shared_ptr<const RegistrationEntry> issued_for;
  Bytes chain_der;      // leaf first, DER certificates concatenated (the API's x509_svid)
  Bytes key_pkcs8_der;  // the private key, PKCS#8 DER (the API's x509_svid_key)
  Clock::time_point not_before;
  Clock::time_point not_after;
  // Who issued the chain's certificates (IssuingAuthorityIds, core/x509_ca.h), read once when
  // the SVID arrives: it is replaced at once when the bundle marks one of them tainted.
  std::vector<std::string> issuing_authority_ids;

  const std::string& entry_id() const { return issued_for->id; }
  const std::string& spiffe_id() const { return issued_for->spiffe_id; }
  const std::string& hint() const { return issued_for->hint; }
  // Half of the lifetime, as SPIRE rotates.
  Clock::time_point RotateAt() const { return Midpoint(not_before, not_after); }
};

struct WorkloadJwtSvid {
  std::string spiffe_id;
  std::string token;
  std::string hint;
  Clock::time_point issued_at;
  Clock::time_point expires_at;
  Clock::time_point RefreshAt() const { return Midpoint(issued_at, expires_at); }
};

// SPIRE's jwt_svid_cache_max_size: enough for every audience set a host's workloads really use.
inline constexpr size_t kDefaultJwtSvidCacheMaxSize = 1000;

class SvidCache {
 public:
  // At most `jwt_svid_cache_max_size` JWT-SVIDs are kept (at least one).
  explicit SvidCache(size_t jwt_svid_cache_max_size = kDefaultJwtSvidCacheMaxSize);

  // An entry and the X509-SVID held for it: null until the first arrives. After the entry
  // changes shape, the SVID issued for the old shape stays until its replacement arrives, so
  // workloads are never left without an identity meanwhile.
  struct CachedEntry {
    std::shared_ptr<const RegistrationEntry> entry;
    std::shared_ptr<const WorkloadX509Svid> svid;
  };
  // By entry id; one map for both, so an SVID costs no map node of its own. Keyed by a view of
  // the id inside the entry itself: a key costs no string of its own, and an entry replaced
  // takes its key's storage with it (the cache replaces key and entry together).
  using EntryMap = std::map<std::string_view, CachedEntry>;
  struct Snapshot {
    int64_t revision = 0;
    uint64_t version = 0;  // bumped on every change, entries or SVIDs
    // A change makes a new map; the entries and SVIDs in it are shared with the map before,
    // and the map itself with every snapshot until the next change to entries or SVIDs.
    std::shared_ptr<const EntryMap> entries = std::make_shared<const EntryMap>();
    // The agent's own trust domain's bundle; null until the first sync brings it.
    std::shared_ptr<const TrustBundle> bundle;
    // Bundles of other trust domains, by trust domain name ("example.org").
    std::map<std::string, std::shared_ptr<const TrustBundle>> federated_bundles;
    // The X.509 authorities of `bundle` and of each federated bundle, DER certificates
    // concatenated as the Workload API sends them: encoded once when a bundle changes, and
    // shared by every message and snapshot after, rather than encoded again per message.
    std::shared_ptr<const std::string> bundle_der;
    std::map<std::string, std::shared_ptr<const std::string>> federated_bundle_der;
  };

  std::shared_ptr<const Snapshot> snapshot() const;

  // A full sync replaces the entry set; an incremental one adds, changes and removes. SVIDs
  // of removed entries go with them. An entry that arrives equal to the one held keeps the
  // object held, which its SVID shares.
  void ApplyEntries(std::vector<RegistrationEntry> changed, const std::vector<std::string>& removed,
                    int64_t revision, bool full);

  // Before the first sync: the entries and SVIDs an earlier run kept (svid_store.h), at
  // revision 0, so that the first sync, a full one, replaces them all.
  void Restore(std::vector<CachedEntry> saved);

  // Keeps `svid` for its entry; ignored when the entry is gone meanwhile.
  void StoreSvid(std::shared_ptr<const WorkloadX509Svid> svid);
  // The same for many at once: one new snapshot and one notice for the batch.
  void StoreSvids(std::vector<std::shared_ptr<const WorkloadX509Svid>> svids);

  // The SVIDs a workload with `selectors` receives: one per matching entry that has an SVID,
  // ordered by SPIFFE ID then entry id, so the first is stable (the API's default identity).
  // `matched_entries` (optional) receives how many entries matched, SVID or not.
  std::vector<std::shared_ptr<const WorkloadX509Svid>> SvidsFor(const SelectorSet& selectors,
                                                        size_t* matched_entries = nullptr) const;

  // Replaces the bundles. A new snapshot is published, and subscribers told, only when a
  // bundle differs from the one held (the same keys arriving on every sync change nothing).
  // Returns whether anything changed.
  bool SetBundles(TrustBundle own, std::map<std::string, TrustBundle> federated);
  // Replaces the own trust domain's bundle and keeps the federated ones.
  bool SetBundle(TrustBundle own);
  // Replaces the federated bundles, by trust domain name, and keeps the own one.
  bool SetFederatedBundles(std::map<std::string, TrustBundle> federated);

  // The entries a workload with `selectors` matches, SVID or not, ordered as SvidsFor orders.
  std::vector<RegistrationEntry> EntriesFor(const SelectorSet& selectors) const;

  // Entries with no SVID, an SVID past half-life at `now`, an SVID issued for an older shape
  // of the entry, or one issued by an authority the bundle marks tainted.
  std::vector<std::shared_ptr<const RegistrationEntry>> EntriesNeedingSvid(Clock::time_point now) const;

  // When the next SVID reaches half-life after `after`; nullopt when none does. Those at or
  // before `after` are due already (EntriesNeedingSvid lists them).
  std::optional<Clock::time_point> NextRotation(Clock::time_point after) const;

  // Drops every X509-SVID whose notAfter is at or before `now`: while serverd cannot renew
  // them, a workload is told nothing rather than handed a certificate no peer accepts. Their
  // entries stay and get an SVID when serverd answers. Returns how many were dropped.
  size_t DropExpiredSvids(Clock::time_point now);
  // The earliest notAfter of the X509-SVIDs held; nullopt when none is held.
  std::optional<Clock::time_point> NextExpiry() const;

  // JWT-SVIDs are kept per SPIFFE ID and audience set until half of their life, and at most
  // the size given at construction: the audiences are the caller's choice, so a workload asking
  // for ever new ones would otherwise grow the agent without end. Beyond the bound, the one
  // found or stored longest ago goes first; a workload calling again keeps its own.
  std::optional<WorkloadJwtSvid> FindJwt(const std::string& spiffe_id, std::vector<std::string> audience,
                                         Clock::time_point now);
  void StoreJwt(WorkloadJwtSvid svid, std::vector<std::string> audience);
  size_t jwt_count() const;

  using Subscriber = std::function<void()>;
  uint64_t Subscribe(Subscriber subscriber);
  void Unsubscribe(uint64_t id);

 private:
  // One new snapshot (and one notice to subscribers) for whichever of the two changed; a null
  // argument keeps what is held. Moves from the arguments it uses.
  bool ReplaceBundles(TrustBundle* own, std::map<std::string, TrustBundle>* federated);
  void Publish(std::shared_ptr<Snapshot> next);  // with write_mutex_ held
  // Forgets the JWT-SVIDs signed by one of `key_ids`: a workload asking again gets a new one.
  void DropJwtsSignedBy(const std::set<std::string, std::less<>>& key_ids);

  Swappable<Snapshot> snapshot_{std::make_shared<Snapshot>()};
  std::mutex write_mutex_;  // one writer at a time builds the next snapshot

  // The JWT-SVIDs, most recently found or stored first, each with its key: SPIFFE ID and
  // sorted audiences. The index finds a node by its key without holding the key twice.
  struct CachedJwt {
    std::pair<std::string, std::vector<std::string>> key;
    WorkloadJwtSvid svid;
  };
  using JwtList = std::list<CachedJwt>;
  struct ByJwtKey {
    using is_transparent = void;
    using Key = std::pair<std::string, std::vector<std::string>>;
    bool operator()(JwtList::iterator a, JwtList::iterator b) const { return a->key < b->key; }
    bool operator()(JwtList::iterator a, const Key& b) const { return a->key < b; }
    bool operator()(const Key& a, JwtList::iterator b) const { return a < b->key; }
  };
  const size_t jwt_max_size_;
  mutable std::mutex jwt_mutex_;
  JwtList jwts_;
  std::set<JwtList::iterator, ByJwtKey> jwt_index_;

  std::mutex subscribers_mutex_;
  std::map<uint64_t, Subscriber> subscribers_;
  uint64_t next_subscriber_ = 1;
};

}  // namespace sigil::agentd
