#include "serverd/admin/admin_api.h"

#include "core/log.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"
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


Result<std::string> RequiredString(const json& body, const char* key) {
  if (!body.is_object() || !body.contains(key) || !body[key].is_string() || body[key].get<std::string>().empty()) {
    return InvalidArgumentError(std::string("\"") + key + "\" is required");
  }
  return body[key].get<std::string>();
}

Result<std::vector<RegistrationEntry>> EntriesOf(const json& body) {
  if (!body.is_object() || !body.contains("entries") || !body["entries"].is_array()) {
    return InvalidArgumentError("expected {\"entries\": [...]}");
  }
  std::vector<RegistrationEntry> entries;
  for (size_t i = 0; i < body["entries"].size(); ++i) {
    SIGIL_ASSIGN_OR_RETURN(auto entry, EntryFromJson(body["entries"][i], "entries[" + std::to_string(i) + "]"));
    entries.push_back(std::move(entry));
  }
  return entries;
}

Result<SelectorMatch> MatchOf(const std::string& name) {
  // SPIRE's API spells them MATCH_EXACT …; its CLI says exact ….
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.rfind("match_", 0) == 0) lower = lower.substr(6);
  return ParseSelectorMatch(lower);
}

Result<EntryFilter> FilterOf(const json& body) {
  EntryFilter filter;
  if (!body.is_object() || !body.contains("filter") || body["filter"].is_null()) return filter;
  const json& f = body["filter"];
  if (!f.is_object()) return InvalidArgumentError("\"filter\" must be an object");
  auto id_of = [&](const char* key) -> Result<std::optional<std::string>> {
    if (!f.contains(key)) return std::optional<std::string>();
    RegistrationEntry probe;
    SIGIL_ASSIGN_OR_RETURN(probe, EntryFromJson(json{{"spiffe_id", f[key]}}, std::string("filter.") + key));
    return std::optional<std::string>(probe.spiffe_id);
  };
  SIGIL_ASSIGN_OR_RETURN(filter.spiffe_id, id_of("by_spiffe_id"));
  SIGIL_ASSIGN_OR_RETURN(filter.parent_id, id_of("by_parent_id"));
  if (f.contains("by_selectors")) {
    const json& s = f["by_selectors"];
    SIGIL_ASSIGN_OR_RETURN(RegistrationEntry probe, EntryFromJson(json{{"selectors", s.value("selectors", json::array())}},
                                                                  "filter.by_selectors"));
    filter.selectors = SelectorSet(probe.selectors);
    if (s.contains("match")) {
      if (!s["match"].is_string()) return InvalidArgumentError("filter.by_selectors.match must be a string");
      SIGIL_ASSIGN_OR_RETURN(filter.match, MatchOf(s["match"].get<std::string>()));
    }
  }
  return filter;
}

json EntriesJson(const std::vector<RegistrationEntry>& entries) {
  json out = json::array();
  for (const auto& e : entries) out.push_back(EntryToJson(e));
  return out;
}

}  // namespace

AdminApi::AdminApi(EntryService& entries, Datastore& store) : entries_(entries), store_(store) {
  Register("/v1/entry/BatchCreateEntry", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(auto entries, EntriesOf(body));
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
    SIGIL_ASSIGN_OR_RETURN(EntryFilter filter, FilterOf(body));
    SIGIL_ASSIGN_OR_RETURN(auto entries, entries_.List(filter));
    return json{{"entries", EntriesJson(entries)}};
  });
  Register("/v1/entry/GetEntry", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::string id, RequiredString(body, "id"));
    SIGIL_ASSIGN_OR_RETURN(auto entry, store_.FetchEntry(id));
    return EntryToJson(entry);
  });
  Register("/v1/entry/BatchUpdateEntry", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(auto entries, EntriesOf(body));
    json results = json::array();
    for (auto& updated : entries_.UpdateBatch(std::move(entries))) {
      json item{{"status", StatusToJson(updated.status())}};
      if (updated.ok()) item["entry"] = EntryToJson(*updated);
      results.push_back(std::move(item));
    }
    return json{{"results", results}};
  });
  Register("/v1/entry/BatchDeleteEntry", [this](const json& body) -> Result<json> {
    if (!body.is_object() || !body.contains("ids") || !body["ids"].is_array()) {
      return InvalidArgumentError("expected {\"ids\": [...]}");
    }
    json results = json::array();
    for (const auto& id : body["ids"]) {
      const std::string text = id.is_string() ? id.get<std::string>() : "";
      const Status deleted = entries_.Delete(text);
      if (deleted.ok()) LogInfo("entry deleted", {{"entry_id", text}});
      results.push_back(json{{"status", StatusToJson(deleted)}, {"id", text}});
    }
    return json{{"results", results}};
  });
  Register("/v1/entry/CountEntries", [this](const json&) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(int64_t count, store_.CountEntries());
    return json{{"count", count}};
  });

  Register("/v1/agent/ListAgents", [this](const json&) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(auto agents, store_.ListAgents());
    json out = json::array();
    for (const auto& a : agents) out.push_back(AgentToJson(a));
    return json{{"agents", out}};
  });
  Register("/v1/agent/CountAgents", [this](const json&) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(int64_t count, store_.CountAgents());
    return json{{"count", count}};
  });
  Register("/v1/agent/GetAgent", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::string id, RequiredString(body, "id"));
    SIGIL_ASSIGN_OR_RETURN(auto agent, store_.FetchAgent(id));
    return AgentToJson(agent);
  });
  Register("/v1/agent/DeleteAgent", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::string id, RequiredString(body, "id"));
    SIGIL_RETURN_IF_ERROR(store_.DeleteAgent(id));
    LogInfo("agent evicted", {{"spiffe_id", id}});
    return json::object();
  });
  Register("/v1/agent/BanAgent", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(std::string id, RequiredString(body, "id"));
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
  Register("/v1/bundle/BatchSetFederatedBundle", [this](const json& body) -> Result<json> {
    if (!body.is_object() || !body.contains("bundles") || !body["bundles"].is_array()) {
      return InvalidArgumentError("expected {\"bundles\": [{\"trust_domain\", \"jwks\" or \"pem\"}]}");
    }
    json results = json::array();
    for (const auto& item : body["bundles"]) {
      const Status stored = [&]() -> Status {
        if (!item.is_object()) return InvalidArgumentError("each bundle must be an object");
        SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse(item.value("trust_domain", "")));
        if (td == entries_.trust_domain()) {
          return InvalidArgumentError(td.name() + " is this server's own trust domain, not a federated one");
        }
        std::string jwks;
        if (item.contains("jwks") && item["jwks"].is_string()) {
          SIGIL_ASSIGN_OR_RETURN(TrustBundle parsed, TrustBundleFromJwks(td, item["jwks"].get<std::string>()));
          SIGIL_ASSIGN_OR_RETURN(jwks, TrustBundleToJwks(parsed));
        } else if (item.contains("pem") && item["pem"].is_string()) {
          TrustBundle bundle(td);
          SIGIL_ASSIGN_OR_RETURN(bundle.x509, X509BundleFromPem(td, item["pem"].get<std::string>()));
          SIGIL_ASSIGN_OR_RETURN(jwks, TrustBundleToJwks(bundle));
        } else {
          return InvalidArgumentError("a bundle needs \"jwks\" or \"pem\"");
        }
        SIGIL_RETURN_IF_ERROR(store_.SetBundle({td.name(), jwks, true, 0}));
        LogInfo("federated bundle set", {{"trust_domain", td.name()}});
        return Status::Ok();
      }();
      results.push_back(json{{"status", StatusToJson(stored)}, {"trust_domain", item.value("trust_domain", "")}});
    }
    return json{{"results", results}};
  });
  Register("/v1/bundle/BatchDeleteFederatedBundle", [this](const json& body) -> Result<json> {
    if (!body.is_object() || !body.contains("trust_domains") || !body["trust_domains"].is_array()) {
      return InvalidArgumentError("expected {\"trust_domains\": [...]}");
    }
    json results = json::array();
    for (const auto& item : body["trust_domains"]) {
      const std::string name = item.is_string() ? item.get<std::string>() : "";
      const Status deleted = [&]() -> Status {
        SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse(name));
        if (td == entries_.trust_domain()) return InvalidArgumentError("the server's own bundle cannot be deleted");
        return store_.DeleteBundle(td.name());
      }();
      results.push_back(json{{"status", StatusToJson(deleted)}, {"trust_domain", name}});
    }
    return json{{"results", results}};
  });

  Register("/v1/agent/CreateJoinToken", [this](const json& body) -> Result<json> {
    int64_t ttl = 600;  // SPIRE's default
    if (body.is_object() && body.contains("ttl")) {
      if (!body["ttl"].is_number_integer() || body["ttl"].get<int64_t>() <= 0) {
        return InvalidArgumentError("\"ttl\" must be a positive number of seconds");
      }
      ttl = body["ttl"].get<int64_t>();
    }
    std::string alias;
    if (body.is_object() && body.contains("agent_id")) {
      RegistrationEntry probe;
      SIGIL_ASSIGN_OR_RETURN(probe, EntryFromJson(json{{"spiffe_id", body["agent_id"]}}, "agent_id"));
      alias = probe.spiffe_id;
      auto parsed = SpiffeId::Parse(alias);
      if (!parsed.ok()) return std::move(parsed).status().AddContext("agent_id");
      if (!parsed->MemberOf(entries_.trust_domain())) {
        return InvalidArgumentError("agent_id '" + alias + "' is not in trust domain " + entries_.trust_domain().name());
      }
    }
    const std::string token = NewJoinToken();
    const int64_t expires_at = NowUnixSeconds() + ttl;
    std::string alias_entry_id;
    if (!alias.empty()) {
      // The token's agent also answers to `alias`: a node alias entry that selects it.
      RegistrationEntry node;
      node.spiffe_id = alias;
      node.parent_id = ServerSpiffeId(entries_.trust_domain()).str();
      node.selectors = {{"spiffe_id", JoinTokenAgentId(entries_.trust_domain(), token)}};
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

void AdminApi::Register(std::string path, Method method) { methods_[std::move(path)] = std::move(method); }

Result<json> AdminApi::Handle(std::string_view path, const json& body) {
  auto it = methods_.find(path);
  if (it == methods_.end()) return NotFoundError("no admin method " + std::string(path));
  return it->second(body);
}

}  // namespace sigil::serverd
