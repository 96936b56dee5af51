// The rules around registration entries, between the APIs and the datastore: validation
// against the server's trust domain, SPIRE's batch semantics, and which entries an agent may
// issue SVIDs for.
//
// Authorisation follows SPIRE: an agent may issue the entries parented to its own SPIFFE ID,
// the entries parented to a node alias that selects it (an alias is an entry parented to the
// server, spiffe://<td>/spire/server, whose selectors are all among the agent's), and, going
// down, the entries parented to any SPIFFE ID already issuable (nested workloads).
//
// Thread safety: as the Datastore it wraps; methods may be called from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/registration_entry.h"
#include "core/spiffe_id.h"
#include "core/x509_svid.h"
#include "serverd/datastore/datastore.h"

namespace sigil::serverd {

// An entry id a caller chooses: at most kMaxEntryIdLength characters of a-z A-Z 0-9 - . _, as
// SPIRE's datastore allows; empty (the store assigns one) passes.
inline constexpr size_t kMaxEntryIdLength = 255;
Status ValidateEntryId(std::string_view id);

class EntryService {
 public:
  EntryService(TrustDomain trust_domain, Datastore& store)
      : trust_domain_(std::move(trust_domain)), store_(store) {}

  // InvalidArgument listing every problem, AlreadyExists for a duplicate (or an id in use);
  // nothing is written on error. The entry keeps an id it comes with (ValidateEntryId), as
  // SPIRE's; without one the store assigns a random UUID. An entry may federate only with trust domains whose bundle the server holds
  // (set by hand or fetched from a federation relationship), as SPIRE requires.
  Result<RegistrationEntry> Create(RegistrationEntry entry);
  // One result per entry, in order, as SPIRE's BatchCreateEntry: a bad entry fails alone.
  // The good ones are written in one transaction.
  std::vector<Result<RegistrationEntry>> CreateBatch(std::vector<RegistrationEntry> entries);
  Result<RegistrationEntry> Update(RegistrationEntry entry);
  // The same for BatchUpdateEntry.
  std::vector<Result<RegistrationEntry>> UpdateBatch(std::vector<RegistrationEntry> entries);
  Status Delete(const std::string& id);
  Result<std::vector<RegistrationEntry>> List(const EntryFilter& filter);

  // The entries `agent` may issue as of store revision `revision` (or later), the expired ones
  // left out as SPIRE leaves them out, and the walk that found them.
  struct Authorization {
    struct Found {
      std::string spiffe_id;
      std::string parent_id;
    };
    int64_t revision = 0;
    std::unordered_map<std::string, RegistrationEntry> by_id;
    // The agent's own ID and its node aliases' IDs: where the walk starts.
    std::unordered_set<std::string> roots;
    // Every node alias in the store, selecting this agent or not, by entry id.
    std::unordered_set<std::string> alias_ids;
    // Every entry below the roots, expired or not, by entry id.
    std::unordered_map<std::string, Found> found;
    // SPIFFE ID -> how many roots and found entries hold it: the IDs whose children are issuable.
    std::unordered_map<std::string, size_t> holders;
    // Parent SPIFFE ID -> how many found entries sit directly below it.
    std::unordered_map<std::string, size_t> children;
  };

  // Reads the whole authorisation of `agent` from the store: its aliases, then one query per
  // level of nesting.
  Result<Authorization> Authorize(const AttestedAgent& agent, int64_t now_unix);
  // Brings `authorization` to the store's current revision from only what changed since its
  // own: changed entries under a known parent replace theirs, removed ones go, and a new SPIFFE
  // ID brings the entries below it. A change that can take authority away from others (an alias
  // changed, the only holder of a parent's ID moved or removed) reads everything again. On
  // error `authorization` is unusable and must be read again with Authorize.
  Status Advance(const AttestedAgent& agent, int64_t now_unix, Authorization& authorization);

  // The entries `agent` may issue, in id order.
  Result<std::vector<RegistrationEntry>> AuthorizedEntries(const AttestedAgent& agent);

  const TrustDomain& trust_domain() const { return trust_domain_; }

  // What deleting the federated bundle of a trust domain does to the entries that federate
  // with it (SPIRE's BatchDeleteFederatedBundle modes).
  enum class BundleDeleteMode {
    kRestrict,    // refuse (FailedPrecondition naming an entry) while any entry federates with it
    kDissociate,  // remove the trust domain from those entries' federates_with
    kDelete,      // delete those entries
  };
  // Deletes the federated bundle of `td`, doing to its entries what `mode` says first.
  // NotFound when there is no such bundle.
  Status DeleteFederatedBundle(const TrustDomain& td, BundleDeleteMode mode);

 private:
  // The checks of Create and CreateBatch; clears what the store assigns.
  Status CheckNewEntry(RegistrationEntry& entry);
  // InvalidArgument naming the first trust domain of entry.federates_with without a bundle.
  Status CheckFederatedBundles(const RegistrationEntry& entry);

  // Adds to `authorization` every entry below `frontier`, level by level.
  Status WalkDown(std::vector<std::string> frontier, int64_t now_unix, Authorization& authorization);
  static void Admit(RegistrationEntry entry, int64_t now_unix, Authorization& authorization,
                    std::vector<std::string>& new_parents);
  // Drops a found entry; false when that leaves entries below an ID nobody holds any more.
  static bool Drop(const std::string& entry_id, Authorization& authorization);
  // Every entry change since `revision`, read once per revision pair: after a write, each
  // agent's set advances from the same revision, and one read of the store serves the fleet.
  Result<std::shared_ptr<const EntryChanges>> ChangesSince(int64_t revision);

  TrustDomain trust_domain_;
  Datastore& store_;
  std::mutex changes_mutex_;
  int64_t changes_since_ = -1;  // what changes_ was read since
  std::shared_ptr<const EntryChanges> changes_;
};

}  // namespace sigil::serverd
