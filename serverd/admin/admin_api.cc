#include "serverd/admin/admin_api.h"

#include "core/log.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"
#include "serverd/admin/agent_json.h"
#include "serverd/admin/entry_json.h"

namespace sigil::serverd {

using nlohmann::json;

json StatusToJson(const Status& status) {
  return json{{"code", static_cast<int>(status.code())},
              {"message", status.ok() ? std::string("OK") : status.message()}};
}

std::string NewJoinToken() { return NewEntryId(); }

std::string JoinTokenAgentId(const TrustDomain& trust_domain, const std::string& token) {
  auto id = AgentSpiffeId(trust_domain, "join_token/" + token);
  return id.ok() ? id->str() : std::string();
}

namespace {

bool IsEmpty(const EntryFilter& filter) {
  return !filter.spiffe_id && !filter.parent_id && !filter.parent_ids && !filter.selectors && !filter.federates_with &&
         !filter.downstream_only && !filter.hint;
}

json EntriesJson(const std::vector<RegistrationEntry>& entries) {
  json out = json::array();
  for (const auto& e : entries) out.push_back(EntryToJson(e));
  return out;
}

}  // namespace

// Every admin method in one table, each a few lines over the service that does its work: longer
// than a function keeps to, and split it would no longer show the API whole.
AdminApi::AdminApi(EntryService& entries, Datastore& store, FederatedBundles& federated)
    : entries_(entries), store_(store), federated_(federated) {
  Register("/v1/entry/BatchCreateEntry", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(auto entries, EntriesRequestFromJson(body));
    json results = json::array();
    for (auto& result : entries_.CreateBatch(std::move(entries))) {
      json item{{"status", StatusToJson(result.status())}};
      if (result.ok()) {
        item["entry"] = EntryToJson(*result);
        LogInfo("entry created", {{"entry_id", result->id}, {"spiffe_id", result->spiffe_id}});
      }
      results.push_back(std::move(item));
    }
    return json{{"results", results}};
  });
  Register("/v1/entry/ListEntries", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(EntryFilter filter, EntryFilterFromJson(body));
    SIGIL_ASSIGN_OR_RETURN(auto entries, entries_.List(filter));
    return json{{"entries", EntriesJson(entries)}};
  });
  Register("/v1/entry/GetEntry", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::string id, RequiredStringFromJson(body, "id"));
    SIGIL_ASSIGN_OR_RETURN(auto entry, store_.FetchEntry(id));
    return EntryToJson(entry);
  });
  Register("/v1/entry/BatchUpdateEntry", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(auto entries, EntriesRequestFromJson(body));
    json results = json::array();
    for (auto& updated : entries_.UpdateBatch(std::move(entries))) {
      json item{{"status", StatusToJson(updated.status())}};
      if (updated.ok()) item["entry"] = EntryToJson(*updated);
      results.push_back(std::move(item));
    }
    return json{{"results", results}};
  });
  Register("/v1/entry/BatchDeleteEntry", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::vector<std::string> ids, StringListFromJson(body, "ids"));
    json results = json::array();
    for (const std::string& id : ids) {
      const Status deleted = entries_.Delete(id);
      if (deleted.ok()) LogInfo("entry deleted", {{"entry_id", id}});
      results.push_back(json{{"status", StatusToJson(deleted)}, {"id", id}});
    }
    return json{{"results", results}};
  });
  Register("/v1/entry/CountEntries", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(EntryFilter filter, EntryFilterFromJson(body));
    if (IsEmpty(filter)) {
      SIGIL_ASSIGN_OR_RETURN(int64_t count, store_.CountEntries());
      return json{{"count", count}};
    }
    SIGIL_ASSIGN_OR_RETURN(auto entries, entries_.List(filter));
    return json{{"count", entries.size()}};
  });

  Register("/v1/agent/ListAgents", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(auto agents, FilteredAgents(body));
    json out = json::array();
    for (const auto& a : agents) out.push_back(AgentToJson(a));
    return json{{"agents", out}};
  });
  Register("/v1/agent/CountAgents", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(auto agents, FilteredAgents(body));
    return json{{"count", agents.size()}};
  });
  Register("/v1/agent/GetAgent", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::string id, RequiredStringFromJson(body, "id"));
    SIGIL_ASSIGN_OR_RETURN(auto agent, store_.FetchAgent(id));
    return AgentToJson(agent);
  });
  Register("/v1/agent/DeleteAgent", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::string id, RequiredStringFromJson(body, "id"));
    SIGIL_RETURN_IF_ERROR(store_.DeleteAgent(id));
    LogInfo("agent evicted", {{"spiffe_id", id}});
    return json::object();
  });
  Register("/v1/agent/BanAgent", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::string id, RequiredStringFromJson(body, "id"));
    SIGIL_RETURN_IF_ERROR(store_.SetAgentBanned(id, true));
    LogInfo("agent banned", {{"spiffe_id", id}});
    return json::object();
  });
  // Federated bundles: other trust domains' bundles, kept as SPIFFE JWKS whichever form they
  // came in.
  Register("/v1/bundle/ListFederatedBundles", [this](const json&) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(auto bundles, store_.ListBundles());
    json out = json::array();
    for (const auto& b : bundles) {
      if (!b.federated) continue;
      json item{{"trust_domain", b.trust_domain}, {"jwks", b.data}};
      auto td = TrustDomain::Parse(b.trust_domain);
      auto parsed = td.ok() ? TrustBundleFromJwks(*td, b.data) : Result<TrustBundle>(td.status());
      if (parsed.ok()) {
        if (auto pem = X509BundleToPem(parsed->x509); pem.ok()) item["pem"] = *pem;
      }
      out.push_back(std::move(item));
    }
    return json{{"bundles", out}};
  });
  // As SPIRE's CountBundles: this trust domain's bundle and the federated ones.
  Register("/v1/bundle/CountBundles", [this](const json&) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(auto bundles, store_.ListBundles());
    return json{{"count", bundles.size()}};
  });
  Register("/v1/bundle/BatchSetFederatedBundle", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::vector<FederatedBundleRequest> bundles, FederatedBundlesFromJson(body));
    json results = json::array();
    for (const FederatedBundleRequest& item : bundles) {
      const Status stored = SetFederatedBundle(item);
      results.push_back(json{{"status", StatusToJson(stored)}, {"trust_domain", item.trust_domain}});
    }
    ReloadFederatedBundles();
    return json{{"results", results}};
  });
  Register("/v1/bundle/BatchDeleteFederatedBundle", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::vector<std::string> names, StringListFromJson(body, "trust_domains"));
    SIGIL_ASSIGN_OR_RETURN(EntryService::BundleDeleteMode mode, BundleDeleteModeFromJson(body));
    json results = json::array();
    for (const std::string& name : names) {
      const Status deleted = [&]() -> Status {
        SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse(name));
        if (td == entries_.trust_domain()) return InvalidArgumentError("the server's own bundle cannot be deleted");
        SIGIL_RETURN_IF_ERROR(entries_.DeleteFederatedBundle(td, mode));
        LogInfo("federated bundle deleted", {{"trust_domain", td.name()}});
        return Status::Ok();
      }();
      results.push_back(json{{"status", StatusToJson(deleted)}, {"trust_domain", name}});
    }
    ReloadFederatedBundles();
    return json{{"results", results}};
  });

  Register("/v1/bundle/ListBundleHistory", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::string name, RequiredStringFromJson(body, "trust_domain"));
    SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse(name));
    SIGIL_ASSIGN_OR_RETURN(std::vector<BundleVersion> versions, store_.ListBundleHistory(td.name()));
    json out = json::array();
    for (const BundleVersion& version : versions) {
      out.push_back(json{{"jwks", version.data}, {"stored_at", std::to_string(version.stored_at)}});
    }
    return json{{"trust_domain", td.name()}, {"versions", out}};
  });

  Register("/v1/agent/CreateJoinToken", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(JoinTokenRequest request, JoinTokenRequestFromJson(body));
    const std::string& alias = request.agent_id;
    if (!alias.empty()) {
      auto parsed = SpiffeId::Parse(alias);
      if (!parsed.ok()) return std::move(parsed).status().AddContext("agent_id");
      if (!parsed->MemberOf(entries_.trust_domain())) {
        return InvalidArgumentError("agent_id '" + alias + "' is not in trust domain " + entries_.trust_domain().name());
      }
    }
    const std::string token = NewJoinToken();
    const int64_t expires_at = NowUnixSeconds() + request.ttl.count();
    std::string alias_entry_id;
    if (!alias.empty()) {
      // The token's agent also answers to `alias`, as SPIRE makes it: an entry parented to the
      // agent's own ID that selects that ID, so the entries parented to `alias` are the agent's.
      const std::string agent_id = JoinTokenAgentId(entries_.trust_domain(), token);
      RegistrationEntry node;
      node.spiffe_id = alias;
      node.parent_id = agent_id;
      node.selectors = {{"spiffe_id", agent_id}};
      SIGIL_ASSIGN_OR_RETURN(RegistrationEntry created, store_.CreateEntry(node));
      alias_entry_id = created.id;
    }
    if (Status stored = store_.CreateJoinToken(token, {alias, expires_at}); !stored.ok()) {
      if (!alias_entry_id.empty()) (void)store_.DeleteEntry(alias_entry_id);
      return stored;
    }
    LogInfo("join token created", {{"expires_at", std::to_string(expires_at)}});
    return json{{"value", token}, {"expires_at", std::to_string(expires_at)}};
  });
}

Result<std::vector<AttestedAgent>> AdminApi::FilteredAgents(const json& body) {
  SIGIL_ASSIGN_OR_RETURN(AgentFilter filter, AgentFilterFromJson(body));
  SIGIL_ASSIGN_OR_RETURN(auto agents, store_.ListAgents());
  std::erase_if(agents, [&](const AttestedAgent& agent) { return !AgentMatchesFilter(agent, filter); });
  return agents;
}

Status AdminApi::SetFederatedBundle(const FederatedBundleRequest& item) {
  SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse(item.trust_domain));
  if (td == entries_.trust_domain()) {
    return InvalidArgumentError(td.name() + " is this server's own trust domain, not a federated one");
  }
  TrustBundle bundle(td);
  if (item.jwks) {
    SIGIL_ASSIGN_OR_RETURN(bundle, TrustBundleFromJwks(td, *item.jwks));
  } else {
    SIGIL_ASSIGN_OR_RETURN(bundle.x509, X509BundleFromPem(td, item.pem.value_or("")));
  }
  SIGIL_ASSIGN_OR_RETURN(std::string jwks, TrustBundleToJwks(bundle));
  SIGIL_RETURN_IF_ERROR(store_.SetBundle({td.name(), jwks, true, 0}));
  LogInfo("federated bundle set", {{"trust_domain", td.name()}});
  return Status::Ok();
}

void AdminApi::ReloadFederatedBundles() {
  if (Status reloaded = federated_.Reload(); !reloaded.ok()) {
    LogWarn("reading the federated bundles after a change failed", {{"error", reloaded.ToString()}});
  }
}

void AdminApi::Register(std::string path, Method method) { methods_[std::move(path)] = std::move(method); }

Result<json> AdminApi::Handle(std::string_view path, const json& body) {
  auto it = methods_.find(path);
  if (it == methods_.end()) return NotFoundError("no admin method " + std::string(path));
  // Every method reads its body with the checked readers of entry_json.h; this catch is the
  // backstop for a shape a method still reads unchecked, so that such a body is a refused
  // request rather than an exception that ends serverd.
  try {
    return it->second(body);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError("the body does not fit " + std::string(path) + ": " + e.what());
  }
}

}  // namespace sigil::serverd
