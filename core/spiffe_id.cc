#include "core/spiffe_id.h"

#include <string>

namespace sigil {
namespace {

bool IsTrustDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

bool IsPathChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '-' || c == '_';
}

std::string Quoted(char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + c + "'";
  char buf[8];
  snprintf(buf, sizeof(buf), "0x%02x", static_cast<unsigned char>(c));
  return buf;
}

// A URI part that the standard forbids outright gets its own message: "bad character '@'"
// would not say why.
Status ForbiddenUriPart(char c, std::string_view where) {
  switch (c) {
    case '@': return InvalidArgumentError(std::string(where) + " has userinfo ('@'); SPIFFE IDs carry no userinfo");
    case '?': return InvalidArgumentError(std::string(where) + " has a query ('?'); SPIFFE IDs carry no query");
    case '#': return InvalidArgumentError(std::string(where) + " has a fragment ('#'); SPIFFE IDs carry no fragment");
    case '%': return InvalidArgumentError(std::string(where) + " is percent-encoded ('%'); SPIFFE IDs allow no percent-encoding");
    default: return Status::Ok();
  }
}

// A ':' is a port only when digits follow it to the end or to the path; otherwise the text is
// most often a SPIFFE ID with its "//" missing ("spiffe:/example.org"), and saying "port"
// would send the operator looking for a number that is not there.
Status ColonInTrustDomain(std::string_view name, size_t at) {
  const std::string_view after = name.substr(at + 1);
  size_t digits = 0;
  while (digits < after.size() && after[digits] >= '0' && after[digits] <= '9') ++digits;
  if (digits > 0 && (digits == after.size() || after[digits] == '/')) {
    return InvalidArgumentError("trust domain has a port (':" + std::string(after.substr(0, digits)) +
                                "'); SPIFFE IDs carry no port");
  }
  if (name.find('@') != std::string_view::npos) return ForbiddenUriPart('@', "trust domain");  // user:password@
  if (name.substr(0, at) == "spiffe") {
    return InvalidArgumentError("'" + std::string(name) + "' is not a SPIFFE ID: one starts with \"spiffe://\"");
  }
  return InvalidArgumentError("trust domain has a character that is not allowed: ':' at position " +
                              std::to_string(at) + " (allowed: a-z 0-9 . - _)");
}

}  // namespace

Status ValidateTrustDomainName(std::string_view name) {
  if (name.empty()) return InvalidArgumentError("trust domain is empty");
  if (name.size() > kMaxTrustDomainLength) {
    return InvalidArgumentError("trust domain is " + std::to_string(name.size()) +
                                " characters long; the maximum is " +
                                std::to_string(kMaxTrustDomainLength));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (IsTrustDomainChar(c)) continue;
    if (c == ':') return ColonInTrustDomain(name, i);
    if (Status s = ForbiddenUriPart(c, "trust domain"); !s.ok()) return s;
    if (c >= 'A' && c <= 'Z') {
      return InvalidArgumentError("trust domain has an upper-case letter " + Quoted(c) +
                                  " at position " + std::to_string(i) +
                                  "; trust domains are lower case");
    }
    return InvalidArgumentError("trust domain has a character that is not allowed: " + Quoted(c) +
                                " at position " + std::to_string(i) +
                                " (allowed: a-z 0-9 . - _)");
  }
  return Status::Ok();
}

Status ValidateSpiffeIdPath(std::string_view path) {
  if (path.empty()) return Status::Ok();
  if (path.front() != '/') return InvalidArgumentError("path must start with '/'");
  size_t pos = 1;
  while (true) {
    size_t end = path.find('/', pos);
    std::string_view segment =
        path.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (segment.empty()) {
      if (end == std::string_view::npos) {
        return InvalidArgumentError("path has a trailing '/'");
      }
      return InvalidArgumentError("path has an empty segment ('//') at position " +
                                  std::to_string(pos));
    }
    if (segment == "." || segment == "..") {
      return InvalidArgumentError("path has a '" + std::string(segment) +
                                  "' segment; relative segments are not allowed");
    }
    for (size_t i = 0; i < segment.size(); ++i) {
      char c = segment[i];
      if (IsPathChar(c)) continue;
      if (c == '?' || c == '#' || c == '%') return ForbiddenUriPart(c, "path");
      return InvalidArgumentError("path has a character that is not allowed: " + Quoted(c) +
                                  " at position " + std::to_string(pos + i) +
                                  " (allowed: a-z A-Z 0-9 . - _)");
    }
    if (end == std::string_view::npos) return Status::Ok();
    pos = end + 1;
  }
}

Result<TrustDomain> TrustDomain::Parse(std::string_view name_or_id) {
  if (name_or_id.find("://") != std::string_view::npos) {
    SIGIL_ASSIGN_OR_RETURN(SpiffeId id, SpiffeId::Parse(name_or_id));
    if (!id.path().empty()) {
      return InvalidArgumentError("trust domain ID has a path '" + id.path() + "'");
    }
    return id.trust_domain();
  }
  SIGIL_RETURN_IF_ERROR(ValidateTrustDomainName(name_or_id));
  return TrustDomain(std::string(name_or_id));
}

SpiffeId::SpiffeId(TrustDomain td, std::string path)
    : trust_domain_(std::move(td)), path_(std::move(path)) {
  id_ = trust_domain_.IdString() + path_;
}

Result<SpiffeId> SpiffeId::Parse(std::string_view id) {
  if (id.empty()) return InvalidArgumentError("SPIFFE ID is empty");
  if (id.size() > kMaxSpiffeIdLength) {
    return InvalidArgumentError("SPIFFE ID is " + std::to_string(id.size()) +
                                " bytes long; the maximum is " +
                                std::to_string(kMaxSpiffeIdLength));
  }
  if (!id.starts_with(kSpiffeScheme)) {
    size_t sep = id.find("://");
    if (sep == std::string_view::npos) {
      return InvalidArgumentError("SPIFFE ID must start with \"spiffe://\"");
    }
    return InvalidArgumentError("SPIFFE ID has scheme '" + std::string(id.substr(0, sep)) +
                                "'; the scheme must be \"spiffe\" in lower case");
  }
  std::string_view rest = id.substr(kSpiffeScheme.size());
  size_t slash = rest.find('/');
  std::string_view td_name = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  // A query or fragment right after the trust domain ("spiffe://td?x") belongs to neither
  // part by URI rules; report it as what it is rather than as a trust-domain character.
  for (char c : {'?', '#'}) {
    if (td_name.find(c) != std::string_view::npos) return ForbiddenUriPart(c, "SPIFFE ID");
  }
  if (td_name.empty()) return InvalidArgumentError("SPIFFE ID has an empty trust domain");
  SIGIL_RETURN_IF_ERROR(ValidateTrustDomainName(td_name));
  SIGIL_RETURN_IF_ERROR(ValidateSpiffeIdPath(path));
  return SpiffeId(TrustDomain(std::string(td_name)), std::string(path));
}

Result<SpiffeId> SpiffeId::FromPath(const TrustDomain& td, std::string_view path) {
  SIGIL_RETURN_IF_ERROR(ValidateSpiffeIdPath(path));
  if (kSpiffeScheme.size() + td.name().size() + path.size() > kMaxSpiffeIdLength) {
    return InvalidArgumentError("SPIFFE ID would be longer than " +
                                std::to_string(kMaxSpiffeIdLength) + " bytes");
  }
  return SpiffeId(td, std::string(path));
}

}  // namespace sigil
