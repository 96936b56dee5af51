// What the agent API's services share beyond agent_api.h: the authorised set of an agent, what
// its last sync answer said, and a parked sync. Included only by serverd/api/*.cc.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

#include "serverd/api/agent_api.h"

namespace sigil::serverd {

// The entries an agent may issue, read at one store revision, with their SPIFFE IDs parsed
// once, when the entry comes in, rather than once per CSR.
struct AgentApi::AuthorizedSet : EntryService::Authorization {
  struct ParsedId {
    int64_t entry_revision = -1;
    Result<SpiffeId> id = Status(Code::kInternal, "not parsed");
  };
  int64_t agent_updated_at = 0;
  std::unordered_map<std::string, ParsedId> ids;  // by entry ID, for every entry of by_id

  // Parses the IDs of entries new or changed since the last call, and forgets removed ones.
  void ParseIds() {
    std::erase_if(ids, [&](const auto& parsed) { return !by_id.contains(parsed.first); });
    for (const auto& [entry_id, entry] : by_id) {
      ParsedId& parsed = ids[entry_id];
      if (parsed.entry_revision == entry.revision) continue;
      parsed.entry_revision = entry.revision;
      parsed.id = SpiffeId::Parse(entry.spiffe_id);
      if (!parsed.id.ok()) parsed.id = parsed.id.status().AddContext("entry " + entry_id + " spiffe_id");
    }
  }

  // The entry `entry_id` and its parsed ID; PermissionDenied when the agent may not have it.
  Result<std::pair<const RegistrationEntry*, const SpiffeId*>> Find(const std::string& entry_id,
                                                                    const std::string& agent_id) const {
    auto entry = by_id.find(entry_id);
    if (entry == by_id.end()) {
      return PermissionDeniedError("entry " + entry_id + " does not exist or is not authorized for agent " + agent_id);
    }
    const ParsedId& parsed = ids.at(entry_id);
    if (!parsed.id.ok()) return parsed.id.status();
    return std::make_pair(&entry->second, &*parsed.id);
  }
};

// What the last sync answer gave an agent, so the next one can say only what changed.
struct AgentApi::SentState {
  int64_t revision = 0;
  uint64_t bundle_sequence = 0;
  uint64_t federated_version = 0;  // FederatedBundles' version
  std::unordered_map<std::string, int64_t> entry_revisions;  // by entry ID
};

// A sync waiting for news. Set before it is parked; seen_* are then written only by the one
// CheckParkedSyncs running at a time.
struct AgentApi::ParkedSync {
  StreamPtr stream;  // loop thread only
  AttestedAgent agent;
  int64_t since_revision = 0;
  std::chrono::steady_clock::time_point deadline;
  int64_t seen_revision = -1;        // the store revision of the last look
  uint64_t seen_bundle_sequence = 0;  // and the bundle's
  uint64_t seen_federated_version = 0;  // and the federated bundles'
  // AgentApi::wakeups_ before its first look: a wake-up after it, posted before the sync was
  // parked, would otherwise be missed.
  uint64_t seen_wakeups = 0;
  // Its place in AgentApi::parked_ while parked; loop thread only.
  std::multimap<std::chrono::steady_clock::time_point, std::shared_ptr<ParkedSync>>::iterator place;
  bool is_parked = false;
};

}  // namespace sigil::serverd
