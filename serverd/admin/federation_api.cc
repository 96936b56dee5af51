#include "serverd/admin/federation_api.h"

#include "core/log.h"
#include "serverd/admin/entry_json.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;

Status RelationshipRefused(const Status& error) {
  return InvalidArgumentError(FieldOf(error) + ": " + error.message());
}

// The relationship of a create or update request, checked; a config file's is refused.
Result<FederationRelationship> CheckedRelationship(const FederationRelationshipRequest& request, const TrustDomain& own,
                                                   const BundleRefresher& refresher) {
  auto relationship = RelationshipFrom(request.fields, own);
  if (!relationship.ok()) return RelationshipRefused(relationship.status());
  if (refresher.IsConfigured(relationship->trust_domain)) {
    return FailedPreconditionError("the config file's federation.federates_with names " +
                                   relationship->trust_domain.name() + "; change it there");
  }
  return relationship;
}

// Stores the bundle a create or update request carries; for https_spiffe it is what the
// endpoint is first checked against.
Status SetCarriedBundle(AdminApi& api, const FederationRelationshipRequest& request) {
  if (!request.bundle) return Status::Ok();
  return api.SetFederatedBundle(*request.bundle).AddContext("trust_domain_bundle");
}

// Runs `change` for each relationship of the body; every item gets its status.
template <typename Change>
Result<json> EachRelationship(const json& body, Change change) {
  SIGIL_ASSIGN_OR_RETURN(std::vector<FederationRelationshipRequest> requests, FederationRelationshipsFromJson(body));
  json results = json::array();
  for (const FederationRelationshipRequest& request : requests) {
    Result<FederationRelationship> changed = change(request);
    json item{{"status", StatusToJson(changed.status())}};
    if (changed.ok()) item["federation_relationship"] = FederationRelationshipToJson(*changed);
    results.push_back(std::move(item));
  }
  return json{{"results", results}};
}

}  // namespace

void RegisterFederationMethods(AdminApi& api, const TrustDomain& own, Datastore& store, BundleRefresher& refresher) {
  // After a change: the refresher fetches a new or changed relationship at once, and agents get
  // a bundle that came with it at their next sync.
  const auto reload = [&api, &refresher] {
    if (Status reloaded = refresher.Reload(); !reloaded.ok()) {
      LogWarn("reading the federation relationships after a change failed", {{"error", reloaded.ToString()}});
    }
    api.ReloadFederatedBundles();
  };

  api.Register("/v1/trustdomain/ListFederationRelationships", [&refresher](const json&) -> Result<json> {
    SIGIL_RETURN_IF_ERROR(refresher.Reload());
    json out = json::array();
    for (const FederationRelationship& relationship : refresher.Relationships()) {
      out.push_back(FederationRelationshipToJson(relationship));
    }
    return json{{"federation_relationships", out}};
  });
  api.Register("/v1/trustdomain/GetFederationRelationship", [&refresher](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::string name, RequiredStringFromJson(body, "trust_domain"));
    SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse(name));
    SIGIL_RETURN_IF_ERROR(refresher.Reload());
    for (const FederationRelationship& relationship : refresher.Relationships()) {
      if (relationship.trust_domain == td) return FederationRelationshipToJson(relationship);
    }
    return NotFoundError("there is no federation relationship with trust domain " + td.name());
  });
  api.Register("/v1/trustdomain/BatchCreateFederationRelationship", [&, reload](const json& body) -> Result<json> {
    auto results = EachRelationship(body, [&](const FederationRelationshipRequest& request) -> Result<FederationRelationship> {
      SIGIL_ASSIGN_OR_RETURN(FederationRelationship relationship, CheckedRelationship(request, own, refresher));
      SIGIL_RETURN_IF_ERROR(store.CreateFederationRelationship(ToStored(relationship)));
      if (Status set = SetCarriedBundle(api, request); !set.ok()) {
        (void)store.DeleteFederationRelationship(relationship.trust_domain.name());
        return set;
      }
      LogInfo("federation relationship created", {{"trust_domain", relationship.trust_domain.name()},
                                                   {"bundle_endpoint_url", relationship.bundle_endpoint_url}});
      return relationship;
    });
    reload();
    return results;
  });
  api.Register("/v1/trustdomain/BatchUpdateFederationRelationship", [&, reload](const json& body) -> Result<json> {
    auto results = EachRelationship(body, [&](const FederationRelationshipRequest& request) -> Result<FederationRelationship> {
      SIGIL_ASSIGN_OR_RETURN(FederationRelationship relationship, CheckedRelationship(request, own, refresher));
      SIGIL_RETURN_IF_ERROR(store.UpdateFederationRelationship(ToStored(relationship)));
      SIGIL_RETURN_IF_ERROR(SetCarriedBundle(api, request));
      LogInfo("federation relationship updated", {{"trust_domain", relationship.trust_domain.name()},
                                                   {"bundle_endpoint_url", relationship.bundle_endpoint_url}});
      return relationship;
    });
    reload();
    return results;
  });
  api.Register("/v1/trustdomain/BatchDeleteFederationRelationship", [&, reload](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::vector<std::string> names, StringListFromJson(body, "trust_domains"));
    json results = json::array();
    for (const std::string& name : names) {
      const Status deleted = [&]() -> Status {
        SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse(name));
        if (refresher.IsConfigured(td)) {
          return FailedPreconditionError("the config file's federation.federates_with names " + td.name() +
                                         "; remove it there");
        }
        SIGIL_RETURN_IF_ERROR(store.DeleteFederationRelationship(td.name()));
        LogInfo("federation relationship deleted", {{"trust_domain", td.name()}});
        return Status::Ok();
      }();
      results.push_back(json{{"status", StatusToJson(deleted)}, {"trust_domain", name}});
    }
    reload();
    return json{{"results", results}};
  });
  api.Register("/v1/trustdomain/RefreshBundle", [&refresher](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::string name, RequiredStringFromJson(body, "trust_domain"));
    SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse(name));
    SIGIL_RETURN_IF_ERROR(refresher.Reload());
    SIGIL_RETURN_IF_ERROR(refresher.RefreshNow(td));
    return json::object();
  });
}

}  // namespace sigil::serverd
