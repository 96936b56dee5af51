#include "serverd/admin/localauthority_api.h"

#include <chrono>

#include "serverd/admin/entry_json.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;
using Kind = CaManager::AuthorityKind;

// Every field present, as SPIRE's CLI prints protobuf's JSON; Sigil has no upstream authority.
json StateToJson(const CaManager::AuthorityState& state) {
  return json{{"authority_id", state.authority_id},
              {"expires_at", std::to_string(state.expires_at)},
              {"upstream_authority_subject_key_id", ""}};
}

}  // namespace

void RegisterLocalAuthorityMethods(AdminApi& api, CaManager& ca, std::function<void()> changed) {
  for (const auto& [kind, name] : {std::pair{Kind::kX509, "X509"}, std::pair{Kind::kJwt, "JWT"}}) {
    const std::string prefix = "/v1/localauthority/";
    api.Register(prefix + "Get" + name + "AuthorityState", [&ca, kind](const json&) -> Result<json> {
      const CaManager::AuthorityStates states = ca.Authorities(kind);
      json out = json::object();
      if (states.active) out["active"] = StateToJson(*states.active);
      if (states.prepared) out["prepared"] = StateToJson(*states.prepared);
      if (states.old) out["old"] = StateToJson(*states.old);
      return out;
    });
    api.Register(prefix + "Prepare" + name + "Authority", [&ca, kind, changed](const json&) -> Result<json> {
      SIGIL_ASSIGN_OR_RETURN(auto state, ca.Prepare(kind, std::chrono::system_clock::now()));
      changed();
      return json{{"prepared_authority", StateToJson(state)}};
    });
    // Activate, Taint and Revoke name one authority and answer with it.
    const auto by_id = [&](const std::string& method, const char* answer, auto change) {
      api.Register(prefix + method + name + "Authority", [&ca, kind, changed, answer, change](const json& body) -> Result<json> {
        SIGIL_ASSIGN_OR_RETURN(std::string id, RequiredStringFromJson(body, "authority_id"));
        SIGIL_ASSIGN_OR_RETURN(auto state, change(ca, kind, id));
        changed();
        return json{{answer, StateToJson(state)}};
      });
    };
    by_id("Activate", "activated_authority", [](CaManager& manager, Kind k, const std::string& id) {
      return manager.Activate(k, id, std::chrono::system_clock::now());
    });
    by_id("Taint", "tainted_authority",
          [](CaManager& manager, Kind k, const std::string& id) { return manager.Taint(k, id); });
    by_id("Revoke", "revoked_authority",
          [](CaManager& manager, Kind k, const std::string& id) { return manager.Revoke(k, id); });
  }
}

}  // namespace sigil::serverd
