// The admin API's federation methods, as SPIRE's trust domain API names them:
//
//   ListFederationRelationships {} -> {"federation_relationships": [...]}
//   GetFederationRelationship {"trust_domain"} -> a relationship
//   BatchCreateFederationRelationship {"federation_relationships": [...]}
//   BatchUpdateFederationRelationship {"federation_relationships": [...]}
//       -> {"results": [{"status", "federation_relationship"}]}
//   BatchDeleteFederationRelationship {"trust_domains": [...]} -> {"results": [{"status", "trust_domain"}]}
//   RefreshBundle {"trust_domain"} -> {}
//
// Relationships are entry_json.h's FederationRelationshipToJson shape. These methods manage the
// relationships kept in the datastore; the config file's federates_with are listed with them
// but changed only in the file (create, update and delete refuse them by name). Deleting a
// relationship stops the fetches and keeps the bundle (`bundle delete` removes it), as SPIRE.
#pragma once

#include "core/spiffe_id.h"
#include "serverd/admin/admin_api.h"
#include "serverd/datastore/datastore.h"
#include "serverd/federation/bundle_refresher.h"

namespace sigil::serverd {

void RegisterFederationMethods(AdminApi& api, const TrustDomain& own, Datastore& store, BundleRefresher& refresher);

}  // namespace sigil::serverd
