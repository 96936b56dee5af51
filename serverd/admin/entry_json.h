// Registration entries and agents as JSON, in the shapes SPIRE's API and CLI use, so
// `serverd entry show -output json` reads like `spire-server entry show -output json` and a
// `-data` file written for SPIRE works here.
//
//   {"id": "...", "spiffe_id": {"trust_domain": "example.org", "path": "/web"},
//    "parent_id": {...}, "selectors": [{"type": "unix", "value": "uid:1001"}],
//    "x509_svid_ttl": 3600, "jwt_svid_ttl": 300, "dns_names": [], "federates_with": [],
//    "admin": false, "downstream": false, "expires_at": "0", "hint": "",
//    "revision_number": "3", "created_at": "1763967600"}
//
// Reading also accepts IDs as plain strings ("spiffe_id": "spiffe://example.org/web") and
// numbers as strings or integers, as SPIRE's older -data files have them.
//
// The admin API's request bodies are read here too, one reader per shape. Every reader is
// total: any JSON value gives a result or InvalidArgument naming the field, never an exception.
//
// Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/openssl_util.h"
#include "core/registration_entry.h"
#include "core/status.h"
#include "serverd/datastore/datastore.h"
#include "serverd/entry/entry_service.h"
#include "serverd/federation/federation_config.h"

namespace sigil::serverd {

nlohmann::json EntryToJson(const RegistrationEntry& entry);
// InvalidArgument naming the field ("entries[2].x509_svid_ttl: expected a number").
Result<RegistrationEntry> EntryFromJson(const nlohmann::json& json, const std::string& where = "entry");

// A -data file: {"entries": [...]}.
Result<std::vector<RegistrationEntry>> EntriesFromDataFile(std::string_view text, const std::string& source);

nlohmann::json AgentToJson(const AttestedAgent& agent);
Result<AttestedAgent> AgentFromJson(const nlohmann::json& json);

// {"entries": [...]} of BatchCreateEntry and BatchUpdateEntry.
Result<std::vector<RegistrationEntry>> EntriesRequestFromJson(const nlohmann::json& body);

// ListEntries' {"filter": {"by_spiffe_id", "by_parent_id", "by_selectors": {"selectors", "match"}}};
// no filter lists everything.
Result<EntryFilter> EntryFilterFromJson(const nlohmann::json& body);

// A non-empty string member of the body: {"id": "..."}.
Result<std::string> RequiredStringFromJson(const nlohmann::json& body, const char* key);

// A list of strings member of the body: {"ids": [...]}, {"trust_domains": [...]}.
Result<std::vector<std::string>> StringListFromJson(const nlohmann::json& body, const char* key);

// One item of BatchSetFederatedBundle: a trust domain and its bundle as a SPIFFE JWKS or as PEM
// (exactly one of the two is set). Whether they parse is for the caller, per item.
struct FederatedBundleRequest {
  std::string trust_domain;
  std::optional<std::string> jwks;
  std::optional<std::string> pem;
};
Result<std::vector<FederatedBundleRequest>> FederatedBundlesFromJson(const nlohmann::json& body);
// A federation relationship as SPIRE's trust domain API has it:
//   {"trust_domain": "partner.test", "bundle_endpoint_url": "https://partner.example:8443",
//    "https_spiffe": {"endpoint_spiffe_id": "spiffe://partner.test/spire/server"}}
// or "https_web": {} in place of "https_spiffe". Create and update may carry the trust domain's
// bundle too, "trust_domain_bundle": {"jwks": ...} or {"pem": ...}, as `bundle set` stores it.
struct FederationRelationshipRequest {
  RelationshipFields fields;
  std::optional<FederatedBundleRequest> bundle;
};
nlohmann::json FederationRelationshipToJson(const FederationRelationship& relationship);
// {"federation_relationships": [...]} of BatchCreateFederationRelationship and
// BatchUpdateFederationRelationship. Whether the fields pass is for the caller, per item.
Result<std::vector<FederationRelationshipRequest>> FederationRelationshipsFromJson(const nlohmann::json& body);
// A `federation create|update -data` file as SPIRE's CLI reads it: {"federationRelationships":
// [{"trustDomain", "bundleEndpointURL", "bundleEndpointProfile", "endpointSPIFFEID",
// "trustDomainBundle" (a PEM string, or the JWKS itself), "trustDomainBundleFormat": "pem" |
// "spiffe"}]}.
Result<std::vector<FederationRelationshipRequest>> FederationRelationshipsFromDataFile(std::string_view text,
                                                                                     const std::string& source);

// BatchDeleteFederatedBundle's "mode": "RESTRICT" (also when absent), "DISSOCIATE" or "DELETE".
Result<EntryService::BundleDeleteMode> BundleDeleteModeFromJson(const nlohmann::json& body);

// CreateJoinToken's {"ttl": seconds, "agent_id": SPIFFE ID}: ttl 600 (SPIRE's default) when
// absent, refused beyond kMaxJoinTokenTtl; agent_id empty when absent.
inline constexpr std::chrono::seconds kMaxJoinTokenTtl = std::chrono::hours(24 * 365);
struct JoinTokenRequest {
  std::chrono::seconds ttl{600};
  std::string agent_id;
};
Result<JoinTokenRequest> JoinTokenRequestFromJson(const nlohmann::json& body);

// MintX509SVID's {"csr": base64 DER, "spiffe_id", "ttl": seconds, "dns": [...]} and
// MintJWTSVID's {"spiffe_id", "ttl", "audience": [...]}. A ttl of 0 (absent) means the server's
// default; one beyond kMaxSvidTtl is refused. Whether the ID and names are valid is the
// minting's check.
struct MintX509SvidRequest {
  Bytes csr;
  std::string spiffe_id;
  std::chrono::seconds ttl{0};
  std::vector<std::string> dns_names;
};
Result<MintX509SvidRequest> MintX509SvidRequestFromJson(const nlohmann::json& body);

struct MintJwtSvidRequest {
  std::string spiffe_id;
  std::chrono::seconds ttl{0};
  std::vector<std::string> audience;
};
Result<MintJwtSvidRequest> MintJwtSvidRequestFromJson(const nlohmann::json& body);

// {"trust_domain": "example.org", "path": "/web"} for a SPIFFE ID string.
nlohmann::json SpiffeIdToJson(const std::string& id);

}  // namespace sigil::serverd
