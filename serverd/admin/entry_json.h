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
// Reading also takes what SPIRE's -data files have: IDs as plain strings ("spiffe_id":
// "spiffe://example.org/web"), numbers as strings or integers, "entry_id" for "id" and
// "entryExpiry" for "expires_at"; so both a file written for `spire-server entry create -data`
// and the output of `entry show -output json` (either server's) read, with their IDs.
// The SPIRE fields Sigil has no behaviour for (kUnsupportedEntryFields) are refused when set.
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

// SPIRE entry fields for behaviour Sigil does not have: a JSON body or -data file setting one,
// or `entry create|update` given its flag, is refused with `why` rather than stored and ignored.
struct UnsupportedEntryField {
  const char* json_path;  // as SPIRE's types.Entry names it, "additional_attributes.…" nested
  const char* flag;       // `spire-server entry create` flag
  const char* why;
};
inline constexpr UnsupportedEntryField kUnsupportedEntryFields[] = {
    {"admin", "-admin",
     "Sigil has no admin workloads: serverd's admin API is its Unix socket, open to root, serverd's own user and "
     "the uids of admin_uids, never to a SPIFFE ID"},
    {"store_svid", "-storeSVID",
     "Sigil has no SVIDStore plugins: an SVID goes only to the workloads its agent attests, over the Workload API"},
    {"additional_attributes.disable_x509_svid_prefetch", "-disableX509SVIDPrefetch",
     "Sigil's agents sign every X509-SVID they may issue before a workload asks, for every entry; there is no "
     "per-entry switch"},
    {"additional_attributes.jwt_svid_include_jti", "-jwtSVIDIncludeJTI",
     "Sigil's JWT-SVIDs carry no jti claim and agents cache them by audience; there is no per-entry switch"},
};

// The refusal of one of kUnsupportedEntryFields, named as `name` (a flag or a JSON path).
Status UnsupportedEntryFieldError(const UnsupportedEntryField& field, const std::string& name);

nlohmann::json EntryToJson(const RegistrationEntry& entry);
// InvalidArgument naming the field ("entries[2].x509_svid_ttl: expected a number").
Result<RegistrationEntry> EntryFromJson(const nlohmann::json& json, const std::string& where = "entry");

// A -data file: {"entries": [...]}.
Result<std::vector<RegistrationEntry>> EntriesFromDataFile(std::string_view text, const std::string& source);

// {"entries": [...]} of BatchCreateEntry and BatchUpdateEntry.
Result<std::vector<RegistrationEntry>> EntriesRequestFromJson(const nlohmann::json& body);

// The {"filter": {...}} of ListEntries and CountEntries, SPIRE's: "by_spiffe_id", "by_parent_id",
// "by_selectors": {"selectors", "match"}, "by_federates_with": {"trust_domains", "match"},
// "by_downstream": true|false, "by_hint"; no filter takes everything.
Result<EntryFilter> EntryFilterFromJson(const nlohmann::json& body);

// [{"type", "value"}, ...]
nlohmann::json SelectorsToJson(const std::vector<Selector>& selectors);

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
