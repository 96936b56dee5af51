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

#include <string>
#include <vector>

#include "core/registration_entry.h"
#include "core/spiffe_id.h"
#include "core/x509_svid.h"
#include "serverd/datastore.h"

namespace sigil::serverd {

class EntryService {
 public:
  EntryService(TrustDomain trust_domain, Datastore& store)
      : trust_domain_(std::move(trust_domain)), store_(store) {}

  // InvalidArgument listing every problem, AlreadyExists for a duplicate; nothing is written
  // on error.
  Result<RegistrationEntry> Create(RegistrationEntry entry);
  // One result per entry, in order, as SPIRE's BatchCreateEntry: a bad entry fails alone.
  std::vector<Result<RegistrationEntry>> CreateBatch(std::vector<RegistrationEntry> entries);
  Result<RegistrationEntry> Update(RegistrationEntry entry);
  Status Delete(const std::string& id);
  Result<std::vector<RegistrationEntry>> List(const EntryFilter& filter);

  // The SPIFFE IDs whose children `agent` may issue: itself, its node aliases, and every
  // issuable entry's ID below them.
  Result<std::vector<std::string>> AuthorizedParents(const AttestedAgent& agent);
  // The entries `agent` may issue, in id order.
  Result<std::vector<RegistrationEntry>> AuthorizedEntries(const AttestedAgent& agent);

  const TrustDomain& trust_domain() const { return trust_domain_; }

 private:
  TrustDomain trust_domain_;
  Datastore& store_;
};

}  // namespace sigil::serverd
