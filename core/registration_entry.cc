#include "core/registration_entry.h"

#include <set>

namespace sigil {
namespace {

bool IsLabelChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

// Agents and servers live under /spire/ in SPIRE's ID layout; a workload entry must not claim
// one of those IDs, or a workload could impersonate an agent.
bool IsReservedPath(std::string_view path) {
  return path == "/spire" || path.starts_with("/spire/");
}

}  // namespace

Status ValidateDnsName(std::string_view name) {
  const std::string quoted = "DNS name '" + std::string(name) + "'";
  if (name.empty()) return InvalidArgumentError("DNS name is empty");
  if (name.size() > 253) return InvalidArgumentError(quoted + " is longer than 253 characters");
  std::string_view rest = name;
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  if (rest.empty()) return InvalidArgumentError(quoted + " has nothing after the wildcard");
  size_t pos = 0;
  while (true) {
    size_t dot = rest.find('.', pos);
    std::string_view label = rest.substr(pos, dot == std::string_view::npos ? dot : dot - pos);
    if (label.empty()) return InvalidArgumentError(quoted + " has an empty label");
    if (label.size() > 63) {
      return InvalidArgumentError(quoted + " has a label longer than 63 characters");
    }
    if (label.front() == '-' || label.back() == '-') {
      return InvalidArgumentError(quoted + " has a label starting or ending with '-'");
    }
    for (char c : label) {
      if (c == '*') return InvalidArgumentError(quoted + " has a wildcard that is not the whole first label");
      if (!IsLabelChar(c)) {
        return InvalidArgumentError(quoted + " has a character that is not allowed: '" +
                                    std::string(1, c) + "' (allowed: a-z A-Z 0-9 - .)");
      }
    }
    if (dot == std::string_view::npos) return Status::Ok();
    pos = dot + 1;
  }
}

std::vector<std::string> RegistrationEntry::Problems(const TrustDomain& trust_domain) const {
  std::vector<std::string> problems;
  auto add = [&](std::string_view field, const Status& s) {
    if (!s.ok()) problems.push_back(std::string(field) + ": " + s.message());
  };

  auto id = SpiffeId::Parse(spiffe_id);
  add("spiffe_id", id.status());
  if (id.ok()) {
    if (!id->MemberOf(trust_domain)) {
      add("spiffe_id", InvalidArgumentError("'" + spiffe_id + "' is not in trust domain " +
                                            trust_domain.name()));
    } else if (id->path().empty()) {
      add("spiffe_id", InvalidArgumentError("'" + spiffe_id +
                                            "' is the trust domain itself; an entry needs a path"));
    } else if (IsReservedPath(id->path())) {
      add("spiffe_id", InvalidArgumentError("'" + spiffe_id +
                                            "' is under /spire/, which is reserved for agents and servers"));
    }
  }

  auto parent = SpiffeId::Parse(parent_id);
  add("parent_id", parent.status());
  if (parent.ok() && !parent->MemberOf(trust_domain)) {
    add("parent_id", InvalidArgumentError("'" + parent_id + "' is not in trust domain " +
                                          trust_domain.name()));
  }

  if (selectors.empty()) add("selectors", InvalidArgumentError("at least one selector is required"));
  for (const Selector& s : selectors) add("selectors", s.Validate());

  auto check_ttl = [&](std::string_view field, std::chrono::seconds ttl) {
    if (ttl.count() < 0) {
      add(field, InvalidArgumentError("must not be negative, got " + std::to_string(ttl.count())));
    } else if (ttl > kMaxSvidTtl) {
      add(field, InvalidArgumentError("must be at most " + std::to_string(kMaxSvidTtl.count()) +
                                      " seconds (a year), got " + std::to_string(ttl.count())));
    }
  };
  check_ttl("x509_svid_ttl", x509_svid_ttl);
  check_ttl("jwt_svid_ttl", jwt_svid_ttl);
  if (expires_at < 0) add("expires_at", InvalidArgumentError("must not be negative"));

  std::set<std::string_view> seen_dns;
  for (const std::string& dns : dns_names) {
    add("dns_names", ValidateDnsName(dns));
    if (!seen_dns.insert(dns).second) {
      add("dns_names", InvalidArgumentError("'" + dns + "' is listed twice"));
    }
  }

  for (const std::string& fed : federates_with) {
    auto td = TrustDomain::Parse(fed);
    add("federates_with", td.status());
    if (td.ok() && *td == trust_domain) {
      add("federates_with",
          InvalidArgumentError("'" + fed + "' is this server's own trust domain"));
    }
  }

  if (hint.size() > kMaxHintLength) {
    add("hint", InvalidArgumentError("is longer than " + std::to_string(kMaxHintLength) +
                                     " characters"));
  }
  return problems;
}

Status RegistrationEntry::Validate(const TrustDomain& trust_domain) const {
  std::vector<std::string> problems = Problems(trust_domain);
  if (problems.empty()) return Status::Ok();
  std::string message = "entry is invalid: ";
  for (size_t i = 0; i < problems.size(); ++i) {
    if (i > 0) message += "; ";
    message += problems[i];
  }
  return InvalidArgumentError(std::move(message));
}

}  // namespace sigil
