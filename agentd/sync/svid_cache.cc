#include "agentd/sync/svid_cache.h"

#include <algorithm>
#include <iterator>
#include <set>

#include "core/jwt_svid.h"

namespace sigil::agentd {

namespace {

bool SvidFitsEntry(const WorkloadX509Svid& svid, const RegistrationEntry& entry) {
  const RegistrationEntry& issued_for = *svid.issued_for;
  return &issued_for == &entry || (issued_for.spiffe_id == entry.spiffe_id && issued_for.dns_names == entry.dns_names &&
                                   issued_for.x509_svid_ttl == entry.x509_svid_ttl);
}

// The key views the id inside the entry, so it is replaced with the entry: the old key's
// storage goes with the old entry.
void Put(SvidCache::EntryMap& map, SvidCache::CachedEntry cached) {
  const std::string_view id = cached.entry->id;
  if (auto node = map.extract(id)) {
    node.key() = id;
    node.mapped() = std::move(cached);
    map.insert(std::move(node));
  } else {
    map.emplace(id, std::move(cached));
  }
}

// Bundles compare by what a workload receives, their SPIFFE JWKS documents, and by which
// authorities are tainted, which decides what the agent replaces.
bool SameBundle(const TrustBundle* held, const TrustBundle& incoming) {
  if (held == nullptr) return false;
  if (held->tainted_x509_authorities != incoming.tainted_x509_authorities ||
      held->tainted_jwt_authorities != incoming.tainted_jwt_authorities) {
    return false;
  }
  auto held_jwks = TrustBundleToJwks(*held);
  auto incoming_jwks = TrustBundleToJwks(incoming);
  return held_jwks.ok() && incoming_jwks.ok() && *held_jwks == *incoming_jwks;
}

std::shared_ptr<const std::string> ConcatenatedDer(const X509Bundle& bundle) {
  auto out = std::make_shared<std::string>();
  for (const auto& cert : bundle.authorities) {
    auto der = CertToDer(cert.get());
    if (der.ok()) out->append(der->begin(), der->end());
  }
  return out;
}

}  // namespace

SvidCache::SvidCache(size_t jwt_svid_cache_max_size) : jwt_max_size_(std::max<size_t>(jwt_svid_cache_max_size, 1)) {}

std::shared_ptr<const SvidCache::Snapshot> SvidCache::snapshot() const {
  return snapshot_.Current();
}

void SvidCache::Publish(std::shared_ptr<Snapshot> next) {
  ++next->version;
  snapshot_.Set(std::move(next));
  std::vector<Subscriber> to_notify;
  {
    std::lock_guard lock(subscribers_mutex_);
    for (const auto& [id, subscriber] : subscribers_) to_notify.push_back(subscriber);
  }
  for (const auto& notify : to_notify) notify();
}

void SvidCache::ApplyEntries(std::vector<RegistrationEntry> changed, const std::vector<std::string>& removed,
                             int64_t revision, bool full) {
  std::lock_guard write(write_mutex_);
  auto current = snapshot();
  const EntryMap& held = *current->entries;
  EntryMap entries = full ? EntryMap() : held;
  for (auto& entry : changed) {
    const auto found = held.find(entry.id);
    if (found == held.end()) {
      Put(entries, {std::make_shared<const RegistrationEntry>(std::move(entry)), nullptr});
    } else if (*found->second.entry == entry) {
      if (full) entries.insert(*found);  // the object held stays, and the SVIDs sharing it
    } else {
      Put(entries, {std::make_shared<const RegistrationEntry>(std::move(entry)), found->second.svid});
    }
  }
  for (const auto& id : removed) entries.erase(id);
  auto next = std::make_shared<Snapshot>(*current);
  next->entries = std::make_shared<const EntryMap>(std::move(entries));
  next->revision = revision;
  Publish(std::move(next));
}

void SvidCache::Restore(std::vector<CachedEntry> saved) {
  std::lock_guard write(write_mutex_);
  auto current = snapshot();
  EntryMap entries;
  for (auto& cached : saved) Put(entries, std::move(cached));
  auto next = std::make_shared<Snapshot>(*current);
  next->entries = std::make_shared<const EntryMap>(std::move(entries));
  next->revision = 0;
  Publish(std::move(next));
}

void SvidCache::StoreSvid(std::shared_ptr<const WorkloadX509Svid> svid) { StoreSvids({std::move(svid)}); }

void SvidCache::StoreSvids(std::vector<std::shared_ptr<const WorkloadX509Svid>> svids) {
  std::lock_guard write(write_mutex_);
  auto current = snapshot();
  std::optional<EntryMap> entries;
  for (auto& svid : svids) {
    if (!current->entries->contains(svid->entry_id())) continue;  // removed meanwhile
    // One copy of the map for the whole batch, and one notice to the subscribers.
    if (!entries) entries = *current->entries;
    entries->find(svid->entry_id())->second.svid = std::move(svid);
  }
  if (!entries) return;
  auto next = std::make_shared<Snapshot>(*current);
  next->entries = std::make_shared<const EntryMap>(std::move(*entries));
  Publish(std::move(next));
}

std::vector<std::shared_ptr<const WorkloadX509Svid>> SvidCache::SvidsFor(const SelectorSet& selectors,
                                                                 size_t* matched_entries) const {
  auto current = snapshot();
  std::vector<std::shared_ptr<const WorkloadX509Svid>> out;
  size_t matched = 0;
  for (const auto& [id, cached] : *current->entries) {
    if (!EntryMatchesWorkload(cached.entry->selector_set(), selectors)) continue;
    ++matched;
    if (cached.svid) out.push_back(cached.svid);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a->spiffe_id(), a->entry_id()) < std::tie(b->spiffe_id(), b->entry_id());
  });
  if (matched_entries != nullptr) *matched_entries = matched;
  return out;
}

bool SvidCache::SetBundles(TrustBundle own, std::map<std::string, TrustBundle> federated) {
  return ReplaceBundles(&own, &federated);
}

bool SvidCache::SetFederatedBundles(std::map<std::string, TrustBundle> federated) {
  return ReplaceBundles(nullptr, &federated);
}

bool SvidCache::SetBundle(TrustBundle own) { return ReplaceBundles(&own, nullptr); }

bool SvidCache::ReplaceBundles(TrustBundle* own, std::map<std::string, TrustBundle>* federated) {
  std::lock_guard write(write_mutex_);
  auto current = snapshot();
  const bool own_changed = own != nullptr && !SameBundle(current->bundle.get(), *own);
  bool federated_changed = federated != nullptr && current->federated_bundles.size() != federated->size();
  if (federated != nullptr) {
    for (const auto& [name, bundle] : *federated) {
      if (federated_changed) break;
      auto it = current->federated_bundles.find(name);
      federated_changed = it == current->federated_bundles.end() || !SameBundle(it->second.get(), bundle);
    }
  }
  if (!own_changed && !federated_changed) return false;
  auto next = std::make_shared<Snapshot>(*current);
  std::set<std::string, std::less<>> next_tainted_jwt;
  if (own_changed) {
    next_tainted_jwt = own->tainted_jwt_authorities;
    next->bundle_der = ConcatenatedDer(own->x509);
    next->bundle = std::make_shared<const TrustBundle>(std::move(*own));
  }
  if (federated_changed) {
    next->federated_bundles.clear();
    next->federated_bundle_der.clear();
    for (auto& [name, bundle] : *federated) {
      next->federated_bundle_der.emplace(name, ConcatenatedDer(bundle.x509));
      next->federated_bundles.emplace(name, std::make_shared<const TrustBundle>(std::move(bundle)));
    }
  }
  Publish(std::move(next));
  if (own_changed && !next_tainted_jwt.empty()) DropJwtsSignedBy(next_tainted_jwt);
  return true;
}

void SvidCache::DropJwtsSignedBy(const std::set<std::string, std::less<>>& key_ids) {
  std::lock_guard lock(jwt_mutex_);
  for (auto it = jwts_.begin(); it != jwts_.end();) {
    auto kid = UnverifiedJwtKeyId(it->svid.token);
    if (!kid.ok() || !key_ids.contains(*kid)) {
      ++it;
      continue;
    }
    jwt_index_.erase(it);
    it = jwts_.erase(it);
  }
}

std::vector<RegistrationEntry> SvidCache::EntriesFor(const SelectorSet& selectors) const {
  auto current = snapshot();
  std::vector<RegistrationEntry> out;
  for (const auto& [id, cached] : *current->entries) {
    if (EntryMatchesWorkload(cached.entry->selector_set(), selectors)) out.push_back(*cached.entry);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.spiffe_id, a.id) < std::tie(b.spiffe_id, b.id);
  });
  return out;
}

std::vector<std::shared_ptr<const RegistrationEntry>> SvidCache::EntriesNeedingSvid(Clock::time_point now) const {
  auto current = snapshot();
  static const std::set<std::string, std::less<>> kNone;
  const auto& tainted = current->bundle ? current->bundle->tainted_x509_authorities : kNone;
  const auto issued_by_tainted = [&](const WorkloadX509Svid& svid) {
    return std::any_of(svid.issuing_authority_ids.begin(), svid.issuing_authority_ids.end(),
                       [&](const std::string& id) { return tainted.contains(id); });
  };
  std::vector<std::shared_ptr<const RegistrationEntry>> out;
  for (const auto& [id, cached] : *current->entries) {
    const auto& svid = cached.svid;
    if (!svid || now >= svid->RotateAt() || !SvidFitsEntry(*svid, *cached.entry) ||
        (!tainted.empty() && issued_by_tainted(*svid))) {
      out.push_back(cached.entry);
    }
  }
  return out;
}

std::optional<Clock::time_point> SvidCache::NextRotation(Clock::time_point after) const {
  auto current = snapshot();
  std::optional<Clock::time_point> next;
  for (const auto& [id, cached] : *current->entries) {
    if (!cached.svid) continue;
    const auto rotate_at = cached.svid->RotateAt();
    if (rotate_at > after && (!next || rotate_at < *next)) next = rotate_at;
  }
  return next;
}

size_t SvidCache::DropExpiredSvids(Clock::time_point now) {
  std::lock_guard write(write_mutex_);
  auto current = snapshot();
  std::optional<EntryMap> entries;
  size_t dropped = 0;
  for (const auto& [id, cached] : *current->entries) {
    if (!cached.svid || cached.svid->not_after > now) continue;
    if (!entries) entries = *current->entries;
    entries->find(id)->second.svid = nullptr;
    ++dropped;
  }
  if (!entries) return 0;
  auto next = std::make_shared<Snapshot>(*current);
  next->entries = std::make_shared<const EntryMap>(std::move(*entries));
  Publish(std::move(next));
  return dropped;
}

std::optional<Clock::time_point> SvidCache::NextExpiry() const {
  auto current = snapshot();
  std::optional<Clock::time_point> next;
  for (const auto& [id, cached] : *current->entries) {
    if (cached.svid && (!next || cached.svid->not_after < *next)) next = cached.svid->not_after;
  }
  return next;
}

std::optional<WorkloadJwtSvid> SvidCache::FindJwt(const std::string& spiffe_id, std::vector<std::string> audience,
                                                  Clock::time_point now) {
  std::sort(audience.begin(), audience.end());
  std::lock_guard lock(jwt_mutex_);
  auto found = jwt_index_.find(std::make_pair(spiffe_id, std::move(audience)));
  if (found == jwt_index_.end() || now >= (*found)->svid.RefreshAt()) return std::nullopt;
  jwts_.splice(jwts_.begin(), jwts_, *found);
  return (*found)->svid;
}

void SvidCache::StoreJwt(WorkloadJwtSvid svid, std::vector<std::string> audience) {
  std::sort(audience.begin(), audience.end());
  std::lock_guard lock(jwt_mutex_);
  const auto now = Clock::now();
  for (auto it = jwts_.begin(); it != jwts_.end();) {
    if (it->svid.expires_at > now) {
      ++it;
      continue;
    }
    jwt_index_.erase(it);
    it = jwts_.erase(it);
  }
  auto key = std::make_pair(svid.spiffe_id, std::move(audience));
  if (auto held = jwt_index_.find(key); held != jwt_index_.end()) {
    (*held)->svid = std::move(svid);
    jwts_.splice(jwts_.begin(), jwts_, *held);
    return;
  }
  while (jwts_.size() >= jwt_max_size_) {
    jwt_index_.erase(std::prev(jwts_.end()));
    jwts_.pop_back();
  }
  jwts_.push_front({std::move(key), std::move(svid)});
  jwt_index_.insert(jwts_.begin());
}

size_t SvidCache::jwt_count() const {
  std::lock_guard lock(jwt_mutex_);
  return jwts_.size();
}

uint64_t SvidCache::Subscribe(Subscriber subscriber) {
  std::lock_guard lock(subscribers_mutex_);
  const uint64_t id = next_subscriber_++;
  subscribers_[id] = std::move(subscriber);
  return id;
}

void SvidCache::Unsubscribe(uint64_t id) {
  std::lock_guard lock(subscribers_mutex_);
  subscribers_.erase(id);
}

}  // namespace sigil::agentd
