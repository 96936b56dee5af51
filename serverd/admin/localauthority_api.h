// The admin API's local authority methods, as SPIRE's LocalAuthority API names them, for X509
// and for JWT:
//
//   Get{X509,JWT}AuthorityState {} -> {"active", "prepared", "old"} (each present when there is one)
//   Prepare{X509,JWT}Authority {} -> {"prepared_authority"}
//   Activate{X509,JWT}Authority {"authority_id"} -> {"activated_authority"}
//   Taint{X509,JWT}Authority {"authority_id"} -> {"tainted_authority"}
//   Revoke{X509,JWT}Authority {"authority_id"} -> {"revoked_authority"}
//
// An authority is SPIRE's AuthorityState: {"authority_id", "expires_at" (Unix seconds, a string
// as protobuf's JSON has int64s), "upstream_authority_subject_key_id" (always empty: Sigil has
// no upstream authority)}. The rules of each change are CaManager's.
#pragma once

#include <functional>

#include "serverd/admin/admin_api.h"
#include "serverd/ca/ca_manager.h"

namespace sigil::serverd {

// `changed` runs after each change that succeeded, to hand the new bundle to what serves it.
void RegisterLocalAuthorityMethods(AdminApi& api, CaManager& ca, std::function<void()> changed);

}  // namespace sigil::serverd
