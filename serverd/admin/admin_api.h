// The admin API: what `serverd entry|agent|token|bundle|x509|jwt …` and operators' scripts
// call on the admin socket. Methods are named as SPIRE's API services name them
// (/v1/entry/BatchCreateEntry, /v1/agent/ListAgents, …); bodies are JSON in SPIRE's shapes, so
// `curl --unix-socket … --http2-prior-knowledge -d '{…}' http://localhost/v1/entry/ListEntries`
// works too. The transport (HTTP/2 on a Unix socket, peer uid checked) is the caller's; this
// class maps one request body to one response body.
//
//   entry:  BatchCreateEntry {"entries": [...]} -> {"results": [{"status", "entry"}]} (an
//           entry's "id", when given, is kept, as SPIRE keeps it)
//           ListEntries {"filter": {"by_spiffe_id", "by_parent_id", "by_selectors":
//                        {"selectors": [...], "match": "MATCH_SUPERSET"}, "by_federates_with":
//                        {"trust_domains": [...], "match"}, "by_downstream", "by_hint"}}
//                        -> {"entries"}
//           GetEntry {"id"}, BatchUpdateEntry {"entries"}, BatchDeleteEntry {"ids"},
//           CountEntries {"filter"} -> {"count"}
//   agent:  ListAgents {"filter"} (agent_json.h), GetAgent {"id"}, DeleteAgent {"id"},
//           BanAgent {"id"}, CountAgents {"filter"},
//           CreateJoinToken {"ttl", "agent_id"} -> {"value", "expires_at"}
//   bundle: CountBundles -> {"count"}, ListFederatedBundles, BatchSetFederatedBundle {"bundles"},
//           BatchDeleteFederatedBundle {"trust_domains", "mode": "RESTRICT" | "DISSOCIATE" |
//           "DELETE"} (EntryService::BundleDeleteMode; RESTRICT when absent),
//           ListBundleHistory {"trust_domain"} -> {"versions": [{"jwks", "stored_at"}]}
//   trustdomain (federation_api.h): ListFederationRelationships, GetFederationRelationship,
//           BatchCreate|BatchUpdate|BatchDeleteFederationRelationship, RefreshBundle
//
// Per-item results carry {"code", "message"} with gRPC's numbering; a request-level error is
// the returned Status.
//
// Thread safety: Handle may be called from any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include "core/status.h"
#include "serverd/admin/entry_json.h"
#include "serverd/datastore/datastore.h"
#include "serverd/entry/entry_service.h"
#include "serverd/federation/federated_bundles.h"

namespace sigil::serverd {

class AdminApi {
 public:
  using Method = std::function<Result<nlohmann::json>(const nlohmann::json& body)>;

  // `federated` is reloaded after every change to a federated bundle.
  AdminApi(EntryService& entries, Datastore& store, FederatedBundles& federated);

  // NotFound for an unknown path; InvalidArgument when the body does not fit the method.
  Result<nlohmann::json> Handle(std::string_view path, const nlohmann::json& body);

  // Later parts of the server (bundles, minting, federation) add their methods here.
  void Register(std::string path, Method method);

  // Stores a federated bundle as `bundle set` does (checked, kept as a SPIFFE JWKS); the caller
  // then calls ReloadFederatedBundles.
  Status SetFederatedBundle(const FederatedBundleRequest& item);

  // Agents see a bundle change at their next sync tick; when this read fails, serverd's next
  // periodic one (within a second) still brings it.
  void ReloadFederatedBundles();

 private:
  // The agents a ListAgents or CountAgents body's filter takes.
  Result<std::vector<AttestedAgent>> FilteredAgents(const nlohmann::json& body);

  EntryService& entries_;
  Datastore& store_;
  FederatedBundles& federated_;
  std::map<std::string, Method, std::less<>> methods_;
};

// {"code": 0, "message": "OK"} for a Status, as SPIRE's per-item results carry it.
nlohmann::json StatusToJson(const Status& status);

// SPIRE's join tokens are random UUIDs.
std::string NewJoinToken();

// spiffe://<td>/spire/agent/join_token/<token>
std::string JoinTokenAgentId(const TrustDomain& trust_domain, const std::string& token);

}  // namespace sigil::serverd
