#include "agentd/svid_cache.h"

#include <algorithm>
#include <set>

namespace sigil::agentd {

namespace {

bool SvidFitsEntry(const WorkloadX509Svid& svid, const RegistrationEntry& entry) {
  const RegistrationEntry& issued_for = *svid.issued_for;
  return &issued_for == &entry || (issued_for.spiffe_id == entry.spiffe_id && issued_for.dns_names == entry.dns_names &&
                                   issued_for.x509_svid_ttl == entry.x509_svid_ttl);
}

// `id` views the id inside `value`; the key is replaced with the value, since the old key's
// storage goes with the old value.
template <typename Value>
void PutById(std::map<std::string_view, std::shared_ptr<const Value>>& map, std::string_view id,
             std::shared_ptr<const Value> value) {
  if (auto node = map.extract(id)) {
    node.key() = id;
    node.mapped() = std::move(value);
    map.insert(std::move(node));
  } else {
    map.emplace(id, std::move(value));
  }
}

// Bundles compare by what a workload receives: their SPIFFE JWKS documents.
bool SameBundle(const TrustBundle* held, const TrustBundle& incoming) {
  if (held == nullptr) return false;
  auto held_jwks = TrustBundleToJwks(*held);
  auto incoming_jwks = TrustBundleToJwks(incoming);
  return held_jwks.ok() && incoming_jwks.ok() && *held_jwks == *incoming_jwks;
}

}  // namespace

std::shared_ptr<const SvidCache::Snapshot> SvidCache::snapshot() const {
  std::lock_guard lock(snapshot_mutex_);
  return snapshot_;
}

void SvidCache::Publish(std::shared_ptr<Snapshot> next) {
  ++next->version;
  {
    std::lock_guard lock(snapshot_mutex_);
    snapshot_ = std::move(next);
  }
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
  auto next = std::make_shared<Snapshot>(*current);
  EntryMap entries = full ? EntryMap() : *current->entries;
  for (auto& entry : changed) {
    std::shared_ptr<const RegistrationEntry> kept;
    if (auto held = current->entries->find(entry.id); held != current->entries->end() && *held->second == entry) {
      kept = held->second;
    } else {
      kept = std::make_shared<const RegistrationEntry>(std::move(entry));
    }
    const std::string_view id = kept->id;
    PutById(entries, id, std::move(kept));
  }
  for (const auto& id : removed) entries.erase(id);
  // SVIDs only for entries still held; an SVID whose entry changed shape stays until its
  // replacement arrives, so workloads are never left without an identity meanwhile.
  std::erase_if(next->svids, [&](const auto& item) { return entries.count(item.first) == 0; });
  next->entries = std::make_shared<const EntryMap>(std::move(entries));
  next->revision = revision;
  Publish(std::move(next));
}

void SvidCache::StoreSvid(std::shared_ptr<const WorkloadX509Svid> svid) { StoreSvids({std::move(svid)}); }

void SvidCache::StoreSvids(std::vector<std::shared_ptr<const WorkloadX509Svid>> svids) {
  std::lock_guard write(write_mutex_);
  auto current = snapshot();
  std::shared_ptr<Snapshot> next;
  for (auto& svid : svids) {
    if (current->entries->count(svid->entry_id()) == 0) continue;
    // One copy of the snapshot for the whole batch, and one notice to the subscribers.
    if (!next) next = std::make_shared<Snapshot>(*current);
    const std::string_view id = svid->entry_id();
    PutById(next->svids, id, std::move(svid));
  }
  if (next) Publish(std::move(next));
}

std::vector<std::shared_ptr<const WorkloadX509Svid>> SvidCache::SvidsFor(const SelectorSet& selectors,
                                                                 size_t* matched_entries) const {
  auto current = snapshot();
  std::vector<std::shared_ptr<const WorkloadX509Svid>> out;
  size_t matched = 0;
  for (const auto& [id, entry] : *current->entries) {
    if (!EntryMatchesWorkload(entry->selector_set(), selectors)) continue;
    ++matched;
    if (auto it = current->svids.find(id); it != current->svids.end()) out.push_back(it->second);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a->spiffe_id(), a->entry_id()) < std::tie(b->spiffe_id(), b->entry_id());
  });
  if (matched_entries != nullptr) *matched_entries = matched;
  return out;
}

bool SvidCache::SetBundles(TrustBundle own, std::map<std::string, TrustBundle> federated) {
  std::lock_guard write(write_mutex_);
  auto current = snapshot();
  bool changed = !SameBundle(current->bundle.get(), own) ||
                 current->federated_bundles.size() != federated.size();
  for (const auto& [name, bundle] : federated) {
    if (changed) break;
    auto it = current->federated_bundles.find(name);
    changed = it == current->federated_bundles.end() || !SameBundle(it->second.get(), bundle);
  }
  if (!changed) return false;
  auto next = std::make_shared<Snapshot>(*current);
  next->bundle = std::make_shared<const TrustBundle>(std::move(own));
  next->federated_bundles.clear();
  for (auto& [name, bundle] : federated) {
    next->federated_bundles.emplace(name, std::make_shared<const TrustBundle>(std::move(bundle)));
  }
  Publish(std::move(next));
  return true;
}

bool SvidCache::SetBundle(TrustBundle own) {
  std::lock_guard write(write_mutex_);
  auto current = snapshot();
  if (SameBundle(current->bundle.get(), own)) return false;
  auto next = std::make_shared<Snapshot>(*current);
  next->bundle = std::make_shared<const TrustBundle>(std::move(own));
  Publish(std::move(next));
  return true;
}

std::vector<RegistrationEntry> SvidCache::EntriesFor(const SelectorSet& selectors) const {
  auto current = snapshot();
  std::vector<RegistrationEntry> out;
  for (const auto& [id, entry] : *current->entries) {
    if (EntryMatchesWorkload(entry->selector_set(), selectors)) out.push_back(*entry);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.spiffe_id, a.id) < std::tie(b.spiffe_id, b.id);
  });
  return out;
}

std::vector<std::shared_ptr<const RegistrationEntry>> SvidCache::EntriesNeedingSvid(Clock::time_point now) const {
  auto current = snapshot();
  std::vector<std::shared_ptr<const RegistrationEntry>> out;
  for (const auto& [id, entry] : *current->entries) {
    auto it = current->svids.find(id);
    if (it == current->svids.end() || now >= it->second->RotateAt() || !SvidFitsEntry(*it->second, *entry)) {
      out.push_back(entry);
    }
  }
  return out;
}

std::optional<Clock::time_point> SvidCache::NextRotation() const {
  auto current = snapshot();
  std::optional<Clock::time_point> next;
  for (const auto& [id, svid] : current->svids) {
    if (!next || svid->RotateAt() < *next) next = svid->RotateAt();
  }
  return next;
}

std::optional<WorkloadJwtSvid> SvidCache::FindJwt(const std::string& spiffe_id, std::vector<std::string> audience,
                                          Clock::time_point now) const {
  std::sort(audience.begin(), audience.end());
  std::lock_guard lock(jwt_mutex_);
  auto it = jwts_.find({spiffe_id, audience});
  if (it == jwts_.end() || now >= it->second.RefreshAt()) return std::nullopt;
  return it->second;
}

void SvidCache::StoreJwt(WorkloadJwtSvid svid, std::vector<std::string> audience) {
  std::sort(audience.begin(), audience.end());
  std::lock_guard lock(jwt_mutex_);
  const auto now = Clock::now();
  std::erase_if(jwts_, [&](const auto& item) { return item.second.expires_at <= now; });
  std::string spiffe_id = svid.spiffe_id;
  jwts_[{std::move(spiffe_id), std::move(audience)}] = std::move(svid);
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
