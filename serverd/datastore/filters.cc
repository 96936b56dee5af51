// The filters of entry and agent listings, checked on rows already read: the stores keep them
// in one place rather than in each query language.
#include <algorithm>
#include <set>

#include "serverd/datastore/datastore.h"

namespace sigil::serverd {
namespace {

// A trust domain as it is compared: its name, whether written "example.org" or
// "spiffe://example.org".
std::string TrustDomainName(const std::string& text) {
  auto parsed = TrustDomain::Parse(text);
  return parsed.ok() ? parsed->name() : text;
}

std::set<std::string> TrustDomainNames(const std::vector<std::string>& texts) {
  std::set<std::string> names;
  for (const std::string& text : texts) names.insert(TrustDomainName(text));
  return names;
}

bool Includes(const std::set<std::string>& outer, const std::set<std::string>& inner) {
  return std::includes(outer.begin(), outer.end(), inner.begin(), inner.end());
}

// SPIRE's FederatesWithMatch, the same four modes as for selectors.
bool FederatesWithMatch(const std::vector<std::string>& entry_texts,
                        const std::vector<std::string>& query_texts, SelectorMatch mode) {
  const std::set<std::string> entry = TrustDomainNames(entry_texts);
  const std::set<std::string> query = TrustDomainNames(query_texts);
  if (entry.empty()) return false;
  switch (mode) {
    case SelectorMatch::kExact:
      return entry == query;
    case SelectorMatch::kSubset:
      return Includes(query, entry);
    case SelectorMatch::kSuperset:
      return Includes(entry, query);
    case SelectorMatch::kAny:
      for (const std::string& name : entry) {
        if (query.contains(name)) return true;
      }
      return false;
  }
  return false;
}

}  // namespace

bool EntryMatchesFilter(const RegistrationEntry& entry, const EntryFilter& filter) {
  if (filter.selectors && !SelectorsMatch(entry.selector_set(), *filter.selectors, filter.match))
    return false;
  if (filter.federates_with && !filter.federates_with->empty() &&
      !FederatesWithMatch(entry.federates_with, *filter.federates_with,
                          filter.federates_with_match)) {
    return false;
  }
  if (filter.downstream_only && !entry.downstream) return false;
  if (filter.hint && entry.hint != *filter.hint) return false;
  return true;
}

bool AgentCanReattest(const AttestedAgent& agent) { return agent.attestation_type == "tpm_devid"; }

bool AgentMatchesFilter(const AttestedAgent& agent, const AgentFilter& filter) {
  if (filter.attestation_type && agent.attestation_type != *filter.attestation_type) return false;
  if (filter.selectors &&
      !SelectorsMatch(SelectorSet(agent.selectors), *filter.selectors, filter.match))
    return false;
  if (filter.banned && agent.banned != *filter.banned) return false;
  if (filter.can_reattest && AgentCanReattest(agent) != *filter.can_reattest) return false;
  if (filter.expires_before && agent.expires_at >= *filter.expires_before) return false;
  return true;
}

}  // namespace sigil::serverd
