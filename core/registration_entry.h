// RegistrationEntry: which workloads (selectors) under which parent (an agent, or a node
// alias) receive which SPIFFE ID, and how their SVIDs are shaped. The fields are SPIRE's.
//
// Validation reports every problem at once, so an operator fixes an entry in one go.
// Thread safety: a value.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/selector.h"
#include "core/spiffe_id.h"
#include "core/status.h"

namespace sigil {

struct RegistrationEntry {
  std::string id;  // assigned by the server
  std::string spiffe_id;
  std::string parent_id;
  std::vector<Selector> selectors;
  std::chrono::seconds x509_svid_ttl{0};  // 0: the server's default
  std::chrono::seconds jwt_svid_ttl{0};   // 0: the server's default
  std::vector<std::string> dns_names;
  std::vector<std::string> federates_with;  // trust domains, "example.org" or "spiffe://example.org"
  bool admin = false;
  bool downstream = false;
  int64_t expires_at = 0;  // Unix seconds; 0: never
  std::string hint;
  int64_t revision = 0;    // assigned by the server on every change
  int64_t created_at = 0;  // Unix seconds, assigned by the server

  SelectorSet selector_set() const { return SelectorSet(selectors); }

  // Every problem with this entry for a server of `trust_domain`, each naming the field:
  // "spiffe_id: trust domain has an upper-case letter …". Empty when the entry is valid.
  std::vector<std::string> Problems(const TrustDomain& trust_domain) const;

  // OK, or InvalidArgument listing every problem ("entry is invalid: a; b; c").
  Status Validate(const TrustDomain& trust_domain) const;

  friend bool operator==(const RegistrationEntry&, const RegistrationEntry&) = default;
};

// RFC 1123 host name, optionally with one leading "*." wildcard label, as X.509 DNS SANs allow.
Status ValidateDnsName(std::string_view name);

inline constexpr size_t kMaxHintLength = 1024;

// The longest x509_svid_ttl or jwt_svid_ttl an entry may ask for, and the longest lifetime any
// SVID is minted with. An SVID never outlives its CA anyway; the bound refuses a typo (or
// INT64_MAX) with a message instead of letting it reach time arithmetic, where nanosecond clocks
// overflow after about 292 years.
inline constexpr std::chrono::seconds kMaxSvidTtl = std::chrono::hours(24 * 365);

}  // namespace sigil
