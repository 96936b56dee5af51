#include "serverd/entry/entry_service.h"

#include <algorithm>

namespace sigil::serverd {

Status EntryService::CheckFederatedBundles(const RegistrationEntry& entry) {
  for (const std::string& name : entry.federates_with) {
    SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse(name));
    auto bundle = store_.FetchBundle(td.name());
    if (bundle.ok() && bundle->federated) continue;
    if (!bundle.ok() && bundle.status().code() != Code::kNotFound) return bundle.status();
    return InvalidArgumentError("entry is invalid: federates_with: unable to find federated bundle \"" +
                                td.IdString() + "\"; set it with `serverd bundle set` or a federation relationship first");
  }
  return Status::Ok();
}

Status ValidateEntryId(std::string_view id) {
  if (id.size() > kMaxEntryIdLength) {
    return InvalidArgumentError("entry id is " + std::to_string(id.size()) + " characters long; the maximum is " +
                                std::to_string(kMaxEntryIdLength));
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_') {
      continue;
    }
    return InvalidArgumentError("entry id '" + std::string(id) + "' has a character that is not allowed at position " +
                                std::to_string(i) + " (allowed: a-z A-Z 0-9 - . _)");
  }
  return Status::Ok();
}

Status EntryService::CheckNewEntry(RegistrationEntry& entry) {
  // The caller may choose the id, as SPIRE's -entryID; the rest of the bookkeeping is the store's.
  entry.revision = 0;
  entry.created_at = 0;
  SIGIL_RETURN_IF_ERROR(ValidateEntryId(entry.id));
  SIGIL_RETURN_IF_ERROR(entry.Validate(trust_domain_));
  return CheckFederatedBundles(entry);
}

Result<RegistrationEntry> EntryService::Create(RegistrationEntry entry) {
  SIGIL_RETURN_IF_ERROR(CheckNewEntry(entry));
  return store_.CreateEntry(std::move(entry));
}

namespace {

// Checks every entry with `check`, writes the ones that pass with one `write` call, and answers
// one result per entry in the order given.
template <typename Check, typename Write>
std::vector<Result<RegistrationEntry>> EachInOneWrite(std::vector<RegistrationEntry> entries, Check check,
                                                      Write write) {
  std::vector<Result<RegistrationEntry>> results(entries.size(), Status(Code::kInternal, "not written"));
  std::vector<RegistrationEntry> valid;
  std::vector<size_t> positions;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (Status checked = check(entries[i]); !checked.ok()) {
      results[i] = std::move(checked);
      continue;
    }
    valid.push_back(std::move(entries[i]));
    positions.push_back(i);
  }
  if (valid.empty()) return results;
  auto written = write(std::move(valid));
  for (size_t j = 0; j < positions.size(); ++j) {
    results[positions[j]] = written.ok() ? std::move((*written)[j]) : Result<RegistrationEntry>(written.status());
  }
  return results;
}

}  // namespace

std::vector<Result<RegistrationEntry>> EntryService::CreateBatch(std::vector<RegistrationEntry> entries) {
  return EachInOneWrite(
      std::move(entries),
      [this](RegistrationEntry& entry) { return CheckNewEntry(entry); },
      [this](std::vector<RegistrationEntry> valid) { return store_.BatchCreateEntries(std::move(valid)); });
}

std::vector<Result<RegistrationEntry>> EntryService::UpdateBatch(std::vector<RegistrationEntry> entries) {
  return EachInOneWrite(
      std::move(entries),
      [this](RegistrationEntry& entry) {
        if (entry.id.empty()) return InvalidArgumentError("entry id is required to update an entry");
        SIGIL_RETURN_IF_ERROR(entry.Validate(trust_domain_));
        return CheckFederatedBundles(entry);
      },
      [this](std::vector<RegistrationEntry> valid) { return store_.BatchUpdateEntries(std::move(valid)); });
}

Result<RegistrationEntry> EntryService::Update(RegistrationEntry entry) {
  if (entry.id.empty()) return InvalidArgumentError("entry id is required to update an entry");
  SIGIL_RETURN_IF_ERROR(entry.Validate(trust_domain_));
  SIGIL_RETURN_IF_ERROR(CheckFederatedBundles(entry));
  return store_.UpdateEntry(std::move(entry));
}

Status EntryService::Delete(const std::string& id) {
  if (id.empty()) return InvalidArgumentError("entry id is required to delete an entry");
  return store_.DeleteEntry(id);
}

Status EntryService::DeleteFederatedBundle(const TrustDomain& td, BundleDeleteMode mode) {
  SIGIL_ASSIGN_OR_RETURN(StoredBundle bundle, store_.FetchBundle(td.name()));
  if (!bundle.federated) return InvalidArgumentError("the server's own bundle cannot be deleted");
  SIGIL_ASSIGN_OR_RETURN(std::vector<RegistrationEntry> all, store_.ListEntries({}));
  std::vector<RegistrationEntry> federating;
  for (RegistrationEntry& entry : all) {
    const size_t before = entry.federates_with.size();
    std::erase_if(entry.federates_with, [&](const std::string& name) {
      auto parsed = TrustDomain::Parse(name);
      return parsed.ok() && *parsed == td;
    });
    if (entry.federates_with.size() != before) federating.push_back(std::move(entry));
  }
  if (!federating.empty()) {
    switch (mode) {
      case BundleDeleteMode::kRestrict:
        return Status(Code::kFailedPrecondition,
                      "registration entries federate with " + td.IdString() + " (" + std::to_string(federating.size()) +
                          ", entry " + federating.front().id +
                          " among them); delete with -mode dissociate or -mode delete");
      case BundleDeleteMode::kDissociate:
      {
        SIGIL_ASSIGN_OR_RETURN(auto updated, store_.BatchUpdateEntries(std::move(federating)));
        for (const auto& result : updated) SIGIL_RETURN_IF_ERROR(result.status());
        break;
      }
      case BundleDeleteMode::kDelete:
        for (const RegistrationEntry& entry : federating) SIGIL_RETURN_IF_ERROR(store_.DeleteEntry(entry.id));
        break;
    }
  }
  return store_.DeleteBundle(td.name());
}

Result<std::vector<RegistrationEntry>> EntryService::List(const EntryFilter& filter) {
  return store_.ListEntries(filter);
}

Result<EntryService::Authorization> EntryService::Authorize(const AttestedAgent& agent, int64_t now_unix) {
  Authorization authorization;
  SIGIL_ASSIGN_OR_RETURN(authorization.revision, store_.CurrentRevision());
  authorization.roots.insert(agent.spiffe_id);
  // Every agent is selected by its own ID too: how a join token's alias entry names its agent.
  std::vector<Selector> selectors = agent.selectors;
  selectors.push_back({"spiffe_id", agent.spiffe_id});
  const SelectorSet agent_selectors(std::move(selectors));
  SIGIL_ASSIGN_OR_RETURN(auto aliases, store_.ListEntries({.parent_id = ServerSpiffeId(trust_domain_).str()}));
  for (const auto& alias : aliases) {
    authorization.alias_ids.insert(alias.id);
    if (EntryMatchesWorkload(alias.selector_set(), agent_selectors)) authorization.roots.insert(alias.spiffe_id);
  }
  for (const auto& root : authorization.roots) authorization.holders[root] = 1;
  SIGIL_RETURN_IF_ERROR(WalkDown({authorization.roots.begin(), authorization.roots.end()}, now_unix, authorization));
  return authorization;
}

Status EntryService::WalkDown(std::vector<std::string> frontier, int64_t now_unix, Authorization& authorization) {
  while (!frontier.empty()) {
    SIGIL_ASSIGN_OR_RETURN(auto below, store_.ListEntries({.parent_ids = std::move(frontier)}));
    frontier.clear();
    for (auto& entry : below) Admit(std::move(entry), now_unix, authorization, frontier);
  }
  return Status::Ok();
}

void EntryService::Admit(RegistrationEntry entry, int64_t now_unix, Authorization& authorization,
                         std::vector<std::string>& new_parents) {
  auto [found, added] = authorization.found.try_emplace(entry.id, Authorization::Found{entry.spiffe_id, entry.parent_id});
  if (added) {
    ++authorization.children[entry.parent_id];
    if (authorization.holders[entry.spiffe_id]++ == 0) new_parents.push_back(entry.spiffe_id);
  }
  if (entry.expires_at != 0 && entry.expires_at <= now_unix) {
    authorization.by_id.erase(entry.id);
  } else {
    authorization.by_id.insert_or_assign(entry.id, std::move(entry));
  }
}

bool EntryService::Drop(const std::string& entry_id, Authorization& authorization) {
  authorization.by_id.erase(entry_id);
  auto found = authorization.found.find(entry_id);
  if (found == authorization.found.end()) return true;
  if (auto below = authorization.children.find(found->second.parent_id); --below->second == 0) {
    authorization.children.erase(below);
  }
  bool still_sound = true;
  if (auto held = authorization.holders.find(found->second.spiffe_id); --held->second == 0) {
    authorization.holders.erase(held);
    still_sound = !authorization.children.contains(found->second.spiffe_id);
  }
  authorization.found.erase(found);
  return still_sound;
}

Result<std::shared_ptr<const EntryChanges>> EntryService::ChangesSince(int64_t revision) {
  std::lock_guard lock(changes_mutex_);
  SIGIL_ASSIGN_OR_RETURN(int64_t current, store_.CurrentRevision());
  if (changes_ && changes_since_ == revision && changes_->revision >= current) return changes_;
  SIGIL_ASSIGN_OR_RETURN(EntryChanges changes, store_.EntriesChangedSince(revision, {}));
  changes_since_ = revision;
  changes_ = std::make_shared<const EntryChanges>(std::move(changes));
  return changes_;
}

Status EntryService::Advance(const AttestedAgent& agent, int64_t now_unix, Authorization& authorization) {
  SIGIL_ASSIGN_OR_RETURN(std::shared_ptr<const EntryChanges> shared, ChangesSince(authorization.revision));
  const EntryChanges& changes = *shared;
  const std::string server_id = ServerSpiffeId(trust_domain_).str();
  bool read_again = false;
  std::vector<std::string> new_parents;
  for (const auto& entry : changes.changed) {
    // An alias may now select this agent or stop selecting it.
    if (entry.parent_id == server_id || authorization.alias_ids.contains(entry.id)) {
      read_again = true;
      break;
    }
    auto found = authorization.found.find(entry.id);
    const bool below_roots = authorization.holders.contains(entry.parent_id);
    if (found != authorization.found.end() &&
        (!below_roots || found->second.spiffe_id != entry.spiffe_id || found->second.parent_id != entry.parent_id)) {
      if (!Drop(entry.id, authorization)) {
        read_again = true;
        break;
      }
    }
    if (authorization.holders.contains(entry.parent_id)) Admit(entry, now_unix, authorization, new_parents);
  }
  for (const auto& id : changes.removed_ids) {
    if (read_again) break;
    if (authorization.alias_ids.contains(id) || !Drop(id, authorization)) read_again = true;
  }
  if (!read_again) {
    authorization.revision = changes.revision;
    return WalkDown(std::move(new_parents), now_unix, authorization);
  }
  SIGIL_ASSIGN_OR_RETURN(authorization, Authorize(agent, now_unix));
  return Status::Ok();
}

Result<std::vector<RegistrationEntry>> EntryService::AuthorizedEntries(const AttestedAgent& agent) {
  SIGIL_ASSIGN_OR_RETURN(Authorization authorization,
                         Authorize(agent, NowUnixSeconds()));
  std::vector<RegistrationEntry> entries;
  entries.reserve(authorization.by_id.size());
  for (auto& [id, entry] : authorization.by_id) entries.push_back(std::move(entry));
  std::sort(entries.begin(), entries.end(),
            [](const RegistrationEntry& a, const RegistrationEntry& b) { return a.id < b.id; });
  return entries;
}

}  // namespace sigil::serverd
