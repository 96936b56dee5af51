#include "serverd/entry_service.h"

#include <deque>
#include <set>

namespace sigil::serverd {

Result<RegistrationEntry> EntryService::Create(RegistrationEntry entry) {
  SIGIL_RETURN_IF_ERROR(entry.Validate(trust_domain_));
  entry.id.clear();  // the server assigns ids
  return store_.CreateEntry(std::move(entry));
}

std::vector<Result<RegistrationEntry>> EntryService::CreateBatch(std::vector<RegistrationEntry> entries) {
  std::vector<Result<RegistrationEntry>> results;
  results.reserve(entries.size());
  for (auto& entry : entries) results.push_back(Create(std::move(entry)));
  return results;
}

Result<RegistrationEntry> EntryService::Update(RegistrationEntry entry) {
  if (entry.id.empty()) return InvalidArgumentError("entry id is required to update an entry");
  SIGIL_RETURN_IF_ERROR(entry.Validate(trust_domain_));
  return store_.UpdateEntry(std::move(entry));
}

Status EntryService::Delete(const std::string& id) {
  if (id.empty()) return InvalidArgumentError("entry id is required to delete an entry");
  return store_.DeleteEntry(id);
}

Result<std::vector<RegistrationEntry>> EntryService::List(const EntryFilter& filter) {
  return store_.ListEntries(filter);
}

Result<std::vector<std::string>> EntryService::AuthorizedParents(const AttestedAgent& agent) {
  std::set<std::string> parents = {agent.spiffe_id};
  // Every agent is selected by its own ID too: how a join token's alias entry names its agent.
  std::vector<Selector> selectors = agent.selectors;
  selectors.push_back({"spiffe_id", agent.spiffe_id});
  const SelectorSet agent_selectors(std::move(selectors));
  SIGIL_ASSIGN_OR_RETURN(auto aliases, store_.ListEntries({.parent_id = ServerSpiffeId(trust_domain_).str()}));
  for (const auto& alias : aliases) {
    if (EntryMatchesWorkload(alias.selector_set(), agent_selectors)) parents.insert(alias.spiffe_id);
  }
  // Walk down: an issuable entry's ID may itself be the parent of further entries.
  std::deque<std::string> frontier(parents.begin(), parents.end());
  while (!frontier.empty()) {
    const std::string parent = frontier.front();
    frontier.pop_front();
    SIGIL_ASSIGN_OR_RETURN(auto children, store_.ListEntries({.parent_id = parent}));
    for (const auto& child : children) {
      if (parents.insert(child.spiffe_id).second) frontier.push_back(child.spiffe_id);
    }
  }
  return std::vector<std::string>(parents.begin(), parents.end());
}

Result<std::vector<RegistrationEntry>> EntryService::AuthorizedEntries(const AttestedAgent& agent) {
  SIGIL_ASSIGN_OR_RETURN(auto parents, AuthorizedParents(agent));
  SIGIL_ASSIGN_OR_RETURN(EntryChanges all, store_.EntriesChangedSince(0, parents));
  std::sort(all.changed.begin(), all.changed.end(),
            [](const RegistrationEntry& a, const RegistrationEntry& b) { return a.id < b.id; });
  return std::move(all.changed);
}

}  // namespace sigil::serverd
