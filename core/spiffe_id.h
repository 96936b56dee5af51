// TrustDomain and SpiffeId, parsed and checked exactly as the SPIFFE ID standard says
// (spiffe/spiffe standards/SPIFFE-ID.md): "spiffe://" + trust domain + optional path.
//
//  - scheme: exactly "spiffe", lower case, followed by "://"
//  - trust domain: 1..255 characters from a-z 0-9 . - _ (upper case is invalid, not folded);
//    no port, userinfo, query or fragment
//  - path: zero or more "/segment"; a segment is 1+ characters from a-z A-Z 0-9 . - _ and is
//    neither "." nor ".."; no trailing "/"; no percent-encoding, query or fragment
//  - the whole ID is at most 2048 bytes
//
// Errors are InvalidArgument and name the broken rule and where.
// Thread safety: immutable values.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace sigil {

inline constexpr std::string_view kSpiffeScheme = "spiffe://";
inline constexpr size_t kMaxTrustDomainLength = 255;
inline constexpr size_t kMaxSpiffeIdLength = 2048;

class TrustDomain {
 public:
  // The zero value: no trust domain yet (a config before parsing). Only Parse makes others.
  TrustDomain() = default;

  // Accepts a bare name ("example.org") or the trust domain's ID ("spiffe://example.org").
  static Result<TrustDomain> Parse(std::string_view name_or_id);

  bool empty() const { return name_.empty(); }

  const std::string& name() const { return name_; }
  std::string IdString() const { return std::string(kSpiffeScheme) + name_; }

  friend bool operator==(const TrustDomain&, const TrustDomain&) = default;
  friend auto operator<=>(const TrustDomain&, const TrustDomain&) = default;

 private:
  friend class SpiffeId;
  explicit TrustDomain(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

class SpiffeId {
 public:
  static Result<SpiffeId> Parse(std::string_view id);
  // `path` is "" (the trust domain's own ID) or "/seg/seg".
  static Result<SpiffeId> FromPath(const TrustDomain& td, std::string_view path);

  const TrustDomain& trust_domain() const { return trust_domain_; }
  const std::string& path() const { return path_; }
  const std::string& str() const { return id_; }
  bool MemberOf(const TrustDomain& td) const { return trust_domain_ == td; }

  friend bool operator==(const SpiffeId& a, const SpiffeId& b) { return a.id_ == b.id_; }
  friend auto operator<=>(const SpiffeId& a, const SpiffeId& b) { return a.id_ <=> b.id_; }

 private:
  SpiffeId(TrustDomain td, std::string path);
  TrustDomain trust_domain_;
  std::string path_;
  std::string id_;
};

// Checks one trust-domain name or one path ("/a/b"), for callers that build IDs in parts.
Status ValidateTrustDomainName(std::string_view name);
Status ValidateSpiffeIdPath(std::string_view path);

}  // namespace sigil

template <>
struct std::hash<sigil::TrustDomain> {
  size_t operator()(const sigil::TrustDomain& td) const noexcept {
    return std::hash<std::string>()(td.name());
  }
};

template <>
struct std::hash<sigil::SpiffeId> {
  size_t operator()(const sigil::SpiffeId& id) const noexcept {
    return std::hash<std::string>()(id.str());
  }
};
